//! The little SDP (RFC 4566) the PBX needs: where a phone's audio goes, which payload types it
//! offers, whether it holds, and the PBX's own offers and answers when media is anchored in
//! its relay (one audio stream, G.711 both laws and RFC 4733 events, and SDES `a=crypto`
//! keys when the leg is SRTP).

use std::net::{IpAddr, SocketAddr};

/// The media direction of an SDP (RFC 3264 §5.1), from the phone's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    #[default]
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    fn attribute(self) -> &'static str {
        match self {
            Direction::SendRecv => "a=sendrecv",
            Direction::SendOnly => "a=sendonly",
            Direction::RecvOnly => "a=recvonly",
            Direction::Inactive => "a=inactive",
        }
    }

    /// The answer's direction to an offer with this one (RFC 3264 §6.1).
    pub fn answer(self) -> Direction {
        match self {
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            d => d,
        }
    }
}

fn lines(body: &[u8]) -> impl Iterator<Item = String> + '_ {
    String::from_utf8_lossy(body)
        .lines()
        .map(|l| l.trim().to_string())
        .collect::<Vec<_>>()
        .into_iter()
}

/// The direction a body asks for; `c=0.0.0.0` (RFC 2543 hold) counts as inactive.
pub fn direction(body: &[u8]) -> Direction {
    let mut d = Direction::SendRecv;
    for l in lines(body) {
        match l.as_str() {
            "a=sendonly" => d = Direction::SendOnly,
            "a=recvonly" => d = Direction::RecvOnly,
            "a=inactive" => d = Direction::Inactive,
            _ if l.starts_with("c=IN ") && l.ends_with(" 0.0.0.0") => {
                return Direction::Inactive;
            }
            _ => {}
        }
    }
    d
}

/// Does this SDP put the call on hold (sendonly, recvonly, inactive, or c=0.0.0.0)?
pub fn is_hold(body: &[u8]) -> bool {
    !body.is_empty() && direction(body) != Direction::SendRecv
}

/// The audio address an SDP body names (None for no audio).
pub fn address(body: &[u8]) -> Option<SocketAddr> {
    let mut ip: Option<IpAddr> = None;
    let mut port = None;
    for l in lines(body) {
        if let Some(rest) = l.strip_prefix("c=IN ") {
            ip = rest
                .split_whitespace()
                .nth(1)
                .and_then(|a| a.parse().ok())
                .or(ip);
        }
        if let Some(rest) = l.strip_prefix("m=audio ") {
            port = rest
                .split_whitespace()
                .next()
                .and_then(|p| p.parse::<u16>().ok());
        }
    }
    Some(SocketAddr::new(ip?, port?))
}

/// The payload types of the audio m= line, in order.
pub fn payloads(body: &[u8]) -> Vec<u8> {
    lines(body)
        .find_map(|l| {
            l.strip_prefix("m=audio ").map(|r| {
                r.split_whitespace()
                    .skip(2)
                    .filter_map(|p| p.parse().ok())
                    .collect()
            })
        })
        .unwrap_or_default()
}

/// The payload type the body maps to telephone-event (RFC 4733), if any.
pub fn event_payload(body: &[u8]) -> Option<u8> {
    lines(body).find_map(|l| {
        let rest = l.strip_prefix("a=rtpmap:")?;
        let (pt, name) = rest.split_once(' ')?;
        name.to_ascii_lowercase()
            .starts_with("telephone-event/")
            .then(|| pt.parse().ok())?
    })
}

/// The G.711 payload type a phone chose (its first of 0 and 8), μ-law when it names neither.
pub fn g711(body: &[u8]) -> u8 {
    payloads(body)
        .into_iter()
        .find(|p| *p == 0 || *p == 8)
        .unwrap_or(0)
}

/// The PBX's own SDP for a phone whose media it anchors: `session`/`version` for the o=
/// line (the version goes up with each new body on a dialog), audio at `ip:port`, the G.711
/// `law` agreed (an answer) or both laws (an offer, `None`), telephone-event on `event`, and
/// for SRTP the keys and whether the m= line says RTP/SAVP (an offer may carry keys on
/// RTP/AVP, for phones that take SRTP when offered).
pub fn ours(
    ip: IpAddr,
    port: u16,
    (session, version): (u64, u64),
    direction: Direction,
    law: Option<u8>,
    event: Option<u8>,
    (savp, keys): (bool, &[media::srtp::Crypto]),
) -> Vec<u8> {
    let fam = if ip.is_ipv4() { "IP4" } else { "IP6" };
    let laws = match law {
        Some(l) => vec![l],
        None => vec![0, 8],
    };
    let mut pts: Vec<String> = laws.iter().map(u8::to_string).collect();
    pts.extend(event.map(|e| e.to_string()));
    let mut s = format!(
        "v=0\r\no=pbx-lite {session} {version} IN {fam} {ip}\r\ns=pbx-lite\r\nc=IN {fam} {ip}\r\nt=0 0\r\nm=audio {port} {} {}\r\n",
        if savp { "RTP/SAVP" } else { "RTP/AVP" },
        pts.join(" ")
    );
    for k in keys {
        s.push_str(&format!("a=crypto:{}\r\n", k.to_sdp()));
    }
    for l in laws {
        s.push_str(&format!(
            "a=rtpmap:{l} {}/8000\r\n",
            if l == 8 { "PCMA" } else { "PCMU" }
        ));
    }
    if let Some(e) = event {
        s.push_str(&format!(
            "a=rtpmap:{e} telephone-event/8000\r\na=fmtp:{e} 0-16\r\n"
        ));
    }
    s.push_str("a=ptime:20\r\n");
    s.push_str(direction.attribute());
    s.push_str("\r\n");
    s.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &[u8] = b"v=0\r\no=- 1 1 IN IP4 192.0.2.5\r\ns=-\r\nc=IN IP4 192.0.2.5\r\nt=0 0\r\nm=audio 4000 RTP/AVP 8 101\r\na=rtpmap:101 telephone-event/8000\r\na=rtcp:4001\r\n";

    #[test]
    fn reading() {
        assert_eq!(address(OFFER), Some("192.0.2.5:4000".parse().unwrap()));
        let hold = b"c=IN IP4 0.0.0.0\r\nm=audio 4000 RTP/AVP 0\r\n";
        assert!(is_hold(hold) && !is_hold(OFFER) && !is_hold(b""));
        assert_eq!((g711(OFFER), event_payload(OFFER)), (8, Some(101)));
    }

    #[test]
    fn our_offers_and_answers() {
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let offer = ours(
            ip,
            30000,
            (7, 1),
            Direction::SendOnly,
            None,
            Some(101),
            (false, &[]),
        );
        assert_eq!(payloads(&offer), vec![0, 8, 101]);
        assert_eq!(direction(&offer), Direction::SendOnly);
        assert_eq!(address(&offer), Some("127.0.0.1:30000".parse().unwrap()));
        let answer = ours(
            ip,
            30002,
            (7, 2),
            direction(OFFER).answer(),
            Some(g711(OFFER)),
            event_payload(OFFER),
            (false, &[]),
        );
        assert_eq!(payloads(&answer), vec![8, 101]);
        assert!(
            String::from_utf8(answer)
                .unwrap()
                .contains("o=pbx-lite 7 2 IN IP4")
        );
        assert_eq!(Direction::SendOnly.answer(), Direction::RecvOnly);
    }
}
