//! SDES negotiation (RFC 4568): whether a call leg is SRTP, decided from a setting
//! ([`Mode`]), whether keys may travel on the leg's signalling, and the other side's SDP;
//! and the master keys one side keeps for a leg ([`Keys`]). Pure: [`crate::srtp`] does the
//! encryption. The PBX (each leg it anchors) and the softphone (each call) both decide so.
//!
//! A leg keeps its keys for the whole call, so hold, resume, transfer and conference
//! re-INVITEs keep the SRTP sessions (and their rollover counters) going.

use crate::srtp::{Crypto, Suite};

fn lines(body: &[u8]) -> impl Iterator<Item = &str> {
    std::str::from_utf8(body)
        .unwrap_or_default()
        .lines()
        .map(str::trim)
}

/// Does the audio m= line of an SDP body ask for the secure profile (RTP/SAVP, RFC 3711)?
pub fn secure_profile(body: &[u8]) -> bool {
    lines(body).any(|l| {
        l.strip_prefix("m=audio ")
            .and_then(|r| r.split_whitespace().nth(1))
            .is_some_and(|proto| proto.eq_ignore_ascii_case("RTP/SAVP"))
    })
}

/// The values of an SDP body's `a=crypto` lines, in order.
pub fn crypto_lines(body: &[u8]) -> Vec<String> {
    lines(body)
        .filter_map(|l| l.strip_prefix("a=crypto:").map(str::to_string))
        .collect()
}

/// An `srtp` setting: the PBX's per station (OfficeServ "sRTP"), the softphone's per account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    Off,
    /// The other side's offer decides; our offers carry keys on RTP/AVP (the PBX's) or
    /// none (the softphone's).
    #[default]
    Optional,
    /// A call without SRTP is refused; our offers say RTP/SAVP.
    Mandatory,
}

impl Mode {
    /// From the setting's text (`off`, `optional`, `mandatory`); anything else is optional.
    pub fn parse(s: &str) -> Mode {
        match s {
            "off" => Mode::Off,
            "mandatory" => Mode::Mandatory,
            _ => Mode::Optional,
        }
    }
}

/// What decides a leg's SRTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Policy {
    pub mode: Mode,
    /// May `a=crypto` go on this leg's signalling: it is TLS, or a setting allows keys on
    /// plain SIP (the PBX's `srtp.plain_signalling`). Keys sent in the clear protect nothing.
    pub keys_may_travel: bool,
}

/// The outcome of an offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Plain RTP.
    Plain,
    /// SRTP with the offerer's key `theirs`; answer on RTP/SAVP when `savp`.
    Srtp { theirs: Crypto, savp: bool },
    /// 488 Not Acceptable Here, with why.
    Refuse(&'static str),
}

impl Policy {
    /// What to make of an SDP offer `body`.
    pub fn on_offer(&self, body: &[u8]) -> Verdict {
        let savp = secure_profile(body);
        let lines = crypto_lines(body);
        let usable = lines.iter().find_map(|l| Crypto::parse(l).ok());
        if !lines.is_empty() && usable.is_none() {
            return Verdict::Refuse("no a=crypto line the PBX can use");
        }
        match (self.mode, usable) {
            (Mode::Mandatory, None) => Verdict::Refuse("SRTP is mandatory for this station"),
            (_, None) if savp => Verdict::Refuse("RTP/SAVP without a=crypto"),
            (_, None) => Verdict::Plain,
            (Mode::Off, Some(_)) if savp => Verdict::Refuse("SRTP is off for this station"),
            (Mode::Off, Some(_)) => Verdict::Plain,
            (mode, Some(_)) if !self.keys_may_travel => {
                if savp || mode == Mode::Mandatory {
                    Verdict::Refuse("SRTP keys only over TLS")
                } else {
                    Verdict::Plain
                }
            }
            (_, Some(theirs)) => Verdict::Srtp { theirs, savp },
        }
    }

    /// Do our offers on this leg carry keys (the PBX's policy), and on RTP/SAVP?
    pub fn offers(&self) -> Option<bool> {
        match self.mode {
            _ if !self.keys_may_travel => None,
            Mode::Off => None,
            Mode::Optional => Some(false),
            Mode::Mandatory => Some(true),
        }
    }

    /// Could a call on this leg need SRTP (for the PBX: its media must go through the relay)?
    pub fn may_encrypt(&self) -> bool {
        self.offers().is_some()
    }
}

/// Our master keys for one leg: one per suite, made when the leg is, kept all call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    sha1_80: Crypto,
    sha1_32: Crypto,
}

impl Default for Keys {
    fn default() -> Self {
        Keys {
            sha1_80: Crypto::generate(1, Suite::AesCm128HmacSha1_80),
            sha1_32: Crypto::generate(2, Suite::AesCm128HmacSha1_32),
        }
    }
}

impl Keys {
    /// What we offer: both suites, the stronger first (tags 1 and 2).
    pub fn offer(&self) -> Vec<Crypto> {
        vec![self.sha1_80.clone(), self.sha1_32.clone()]
    }

    /// Our key answering the offerer's `theirs`: the same suite, under its tag.
    pub fn answer(&self, theirs: &Crypto) -> Crypto {
        let ours = match theirs.suite {
            Suite::AesCm128HmacSha1_80 => &self.sha1_80,
            Suite::AesCm128HmacSha1_32 => &self.sha1_32,
        };
        Crypto {
            tag: theirs.tag,
            ..ours.clone()
        }
    }

    /// The answer to an offer of ours: `(our key, theirs)` for the line whose tag and suite
    /// it accepted, or None when it took none.
    pub fn accepted(&self, answer: &[u8]) -> Option<(Crypto, Crypto)> {
        crypto_lines(answer)
            .iter()
            .filter_map(|l| Crypto::parse(l).ok())
            .find_map(|theirs| {
                let ours = self.offer().into_iter().find(|o| o.tag == theirs.tag)?;
                (ours.suite == theirs.suite).then_some((ours, theirs))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(proto: &str, crypto: &[&str]) -> Vec<u8> {
        let mut s = format!("v=0\r\nc=IN IP4 192.0.2.5\r\nm=audio 4000 {proto} 0\r\n");
        for c in crypto {
            s.push_str(&format!("a=crypto:{c}\r\n"));
        }
        s.into_bytes()
    }

    #[test]
    fn reading_the_profile_and_the_keys() {
        let secure = b"m=audio 4000 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:x\r\n";
        assert!(secure_profile(secure) && !secure_profile(b"m=audio 4000 RTP/AVP 0\r\n"));
        assert_eq!(
            crypto_lines(secure),
            vec!["1 AES_CM_128_HMAC_SHA1_80 inline:x"]
        );
        assert!(crypto_lines(b"m=audio 4000 RTP/AVP 0\r\n").is_empty());
    }

    #[test]
    fn the_setting_and_the_offer_decide() {
        let key = Crypto::generate(3, Suite::AesCm128HmacSha1_32);
        let good = key.to_sdp();
        let (plain, savp, avp_keys) = (
            offer("RTP/AVP", &[]),
            offer("RTP/SAVP", &[&good]),
            offer("RTP/AVP", &[&good]),
        );
        let bad = offer("RTP/SAVP", &["1 AES_CM_128_HMAC_SHA1_80 inline:!!"]);
        let unknown_then_good = offer("RTP/SAVP", &["1 AES_256_CM_HMAC_SHA1_80 inline:x", &good]);
        let srtp = |savp| Verdict::Srtp {
            theirs: key.clone(),
            savp,
        };
        let p = |mode, keys_may_travel| Policy {
            mode,
            keys_may_travel,
        };
        use Mode::*;
        use Verdict::*;
        for (policy, body, want) in [
            (p(Optional, true), &plain, Plain),
            (p(Optional, true), &savp, srtp(true)),
            (p(Optional, true), &avp_keys, srtp(false)),
            (p(Optional, true), &unknown_then_good, srtp(true)),
            (
                p(Optional, true),
                &bad,
                Refuse("no a=crypto line the PBX can use"),
            ),
            (p(Optional, false), &savp, Refuse("SRTP keys only over TLS")),
            (p(Optional, false), &avp_keys, Plain),
            (
                p(Mandatory, true),
                &plain,
                Refuse("SRTP is mandatory for this station"),
            ),
            (p(Mandatory, true), &avp_keys, srtp(false)),
            (
                p(Mandatory, false),
                &savp,
                Refuse("SRTP keys only over TLS"),
            ),
            (p(Off, true), &savp, Refuse("SRTP is off for this station")),
            (p(Off, true), &avp_keys, Plain),
            (p(Off, true), &plain, Plain),
            (
                p(Optional, true),
                &offer("RTP/SAVP", &[]),
                Refuse("RTP/SAVP without a=crypto"),
            ),
        ] {
            assert_eq!(
                policy.on_offer(body),
                want,
                "{policy:?} {:?}",
                String::from_utf8_lossy(body)
            );
        }
        assert_eq!(p(Mandatory, true).offers(), Some(true));
        assert_eq!(p(Optional, true).offers(), Some(false));
        assert_eq!(p(Mandatory, false).offers(), None);
        assert_eq!(p(Off, true).offers(), None);
    }

    #[test]
    fn a_leg_keeps_its_keys_and_answers_under_the_phones_tag() {
        let keys = Keys::default();
        let theirs = Crypto::generate(7, Suite::AesCm128HmacSha1_32);
        let ours = keys.answer(&theirs);
        assert_eq!((ours.tag, ours.suite), (7, Suite::AesCm128HmacSha1_32));
        assert_eq!(keys.answer(&theirs), ours, "the same key every time");
        assert_ne!(ours.key, theirs.key);
        // The phone takes our tag 2 (the _32 suite) with its own key.
        let answer = offer(
            "RTP/SAVP",
            &[&Crypto {
                tag: 2,
                ..theirs.clone()
            }
            .to_sdp()],
        );
        let (o, t) = keys.accepted(&answer).unwrap();
        assert_eq!(
            (o.tag, o.suite, t.key),
            (2, Suite::AesCm128HmacSha1_32, theirs.key)
        );
        // A tag we never offered, or our tag with another suite, is not an acceptance.
        let wrong = Crypto {
            tag: 1,
            ..theirs.clone()
        };
        assert_eq!(keys.accepted(&offer("RTP/SAVP", &[&wrong.to_sdp()])), None);
        assert_eq!(keys.accepted(&offer("RTP/AVP", &[])), None);
    }
}
