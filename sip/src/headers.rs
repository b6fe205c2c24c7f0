//! Typed headers the core needs beyond ezk's set: [`CSeq`] (with our exact [`Method`]),
//! and the name-addr headers PBX features use: `Diversion` (RFC 5806), `Referred-By`
//! (RFC 3892), `Alert-Info`. Each has a parse/print round trip below.

use crate::method::Method;
use ezk_sip_types::Name;
use ezk_sip_types::header::HeaderParse;
use ezk_sip_types::header::typed::Contact;
use std::fmt;
use std::str::FromStr;

/// `CSeq: <number> <method>`; the number must be below 2^31 (RFC 3261 §8.1.1.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CSeq {
    pub seq: u32,
    pub method: Method,
}

impl CSeq {
    pub fn new(seq: u32, method: Method) -> Self {
        CSeq { seq, method }
    }
}

impl FromStr for CSeq {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut parts = s.split_ascii_whitespace();
        let (Some(n), Some(m), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(format!("expected <number> <method>, got {s:?}"));
        };
        let seq: u32 = n
            .parse()
            .ok()
            .filter(|n| *n < 1 << 31)
            .ok_or_else(|| format!("sequence number {n:?} is not below 2^31"))?;
        let method = m
            .parse()
            .map_err(|e: crate::method::BadMethod| e.to_string())?;
        Ok(CSeq { seq, method })
    }
}

impl fmt::Display for CSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.seq, self.method)
    }
}

/// A name-addr header with parameters, as `Diversion`, `Referred-By` and `Alert-Info` are.
/// Parsed with ezk's Contact grammar, which is exactly `name-addr *(; param)`.
#[derive(Debug, Clone)]
pub struct NameAddrHeader {
    pub name: Name,
    pub value: Contact,
}

impl NameAddrHeader {
    /// Parses one value of header `name`.
    pub fn parse(name: Name, value: &str) -> Result<Self, String> {
        let src = bytesstr::BytesStr::from(value);
        match Contact::parse(src.as_ref(), src.as_str()) {
            Ok((rest, value)) if rest.trim().is_empty() => Ok(NameAddrHeader { name, value }),
            _ => Err(format!("malformed {} value {value:?}", name.as_print_str())),
        }
    }

    /// The value of parameter `key` (`reason`, `counter`, ...).
    pub fn param(&self, key: &str) -> Option<&str> {
        self.value.params.get_val(key).map(|v| v.as_str())
    }
}

impl fmt::Display for NameAddrHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ezk_sip_types::print::AppendCtx;
        write!(f, "{}", self.value.default_print_ctx())
    }
}

/// The `tag` parameter of a From/To value, read without the full name-addr grammar, so that
/// odd but legal display names (`"J Rosenberg \\\""`, RFC 4475 §3.1.1.1) never hide it.
/// Parameters start after the `>` of a name-addr, or after the addr-spec.
pub fn tag(value: &str) -> Option<String> {
    let (mut quoted, mut escaped, mut angle) = (false, false, false);
    let mut params_at = None;
    for (i, c) in value.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '<' if !quoted => angle = true,
            '>' if !quoted && angle => {
                params_at = Some(i + 1);
                break;
            }
            ';' if !quoted && !angle => {
                params_at = Some(i);
                break;
            }
            _ => {}
        }
    }
    value[params_at?..].split(';').find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("tag")
            .then(|| v.trim().to_string())
    })
}

/// The event package a SUBSCRIBE or NOTIFY names (`Event`, or its compact form `o`),
/// lower-cased and without parameters: `message-summary`, `refer`, ….
pub fn event_package(headers: &ezk_sip_types::Headers) -> Option<String> {
    headers
        .get_raw(&Name::from("Event"))
        .next()
        .or_else(|| headers.get_raw(&Name::from("o")).next())
        .map(|e| {
            let e = e.split(';').next().unwrap_or_default();
            e.trim().to_ascii_lowercase()
        })
}

/// Does the `Subscription-State` say the subscription is over (RFC 6665 §8.2.3)?
pub fn subscription_terminated(headers: &ezk_sip_types::Headers) -> bool {
    headers
        .get_raw(&Name::from("Subscription-State"))
        .next()
        .is_some_and(|s| s.trim().to_ascii_lowercase().starts_with("terminated"))
}

/// `Diversion` header name (RFC 5806).
pub fn diversion_name() -> Name {
    Name::from("Diversion")
}

/// `Referred-By` header name (RFC 3892; compact `b`).
pub fn referred_by_name() -> Name {
    Name::from("Referred-By")
}

/// A `Refer-To` value (RFC 3515): the URI to call, without its `?headers`, and the
/// `Replaces` (RFC 3891) those headers carry, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferTo {
    pub uri: String,
    pub replaces: Option<Replaces>,
}

/// A `Replaces` value: the dialog to replace, by Call-ID and the two tags as the receiver
/// of the INVITE sees them (`to-tag` is its own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replaces {
    pub call_id: String,
    pub to_tag: String,
    pub from_tag: String,
}

impl Replaces {
    /// `callid;to-tag=a;from-tag=b` (parameters in any order).
    pub fn parse(value: &str) -> Option<Replaces> {
        let mut parts = value.split(';').map(str::trim);
        let call_id = parts.next().filter(|c| !c.is_empty())?.to_string();
        let (mut to_tag, mut from_tag) = (None, None);
        for p in parts {
            if let Some(t) = p.strip_prefix("to-tag=") {
                to_tag = Some(t.to_string());
            } else if let Some(f) = p.strip_prefix("from-tag=") {
                from_tag = Some(f.to_string());
            }
        }
        Some(Replaces {
            call_id,
            to_tag: to_tag?,
            from_tag: from_tag?,
        })
    }
}

impl fmt::Display for Replaces {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{};to-tag={};from-tag={}",
            self.call_id, self.to_tag, self.from_tag
        )
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Percent-encodes what may not stand in a URI header value.
pub fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'@' => {
                (b as char).to_string()
            }
            b => format!("%{b:02X}"),
        })
        .collect()
}

impl ReferTo {
    /// Reads `<sip:202@host:5070?Replaces=…>` (or a bare URI); None when it is no sip/sips
    /// URI with a user and a host.
    pub fn parse(value: &str) -> Option<ReferTo> {
        let v = value.trim();
        let inner = match v.find('<') {
            Some(i) => v[i + 1..].split('>').next()?,
            None => v.split(';').next()?,
        };
        let (uri, headers) = inner.split_once('?').unwrap_or((inner, ""));
        let rest = uri
            .strip_prefix("sip:")
            .or_else(|| uri.strip_prefix("sips:"))?;
        let (user, host) = rest.split_once('@')?;
        if user.is_empty() || host.is_empty() {
            return None;
        }
        let replaces = headers
            .split('&')
            .find_map(|h| {
                let (k, v) = h.split_once('=')?;
                k.eq_ignore_ascii_case("Replaces")
                    .then(|| percent_decode(v))
            })
            .and_then(|r| Replaces::parse(&r));
        Some(ReferTo {
            uri: uri.to_string(),
            replaces,
        })
    }

    /// The user part of the URI (a station number, usually).
    pub fn user(&self) -> &str {
        self.uri
            .split_once(':')
            .and_then(|(_, r)| r.split('@').next())
            .map_or("", |u| u.split(';').next().unwrap_or(u))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_package_and_subscription_state_whatever_their_spelling() {
        let headers = |lines: &[(&str, &str)]| {
            let mut h = ezk_sip_types::Headers::new();
            for (n, v) in lines {
                h.insert(Name::from(*n), v.to_string());
            }
            h
        };
        let h = headers(&[
            ("Event", " Message-Summary ;id=4"),
            ("Subscription-State", "Terminated;reason=timeout"),
        ]);
        assert_eq!(event_package(&h).as_deref(), Some("message-summary"));
        assert!(subscription_terminated(&h));
        let h = headers(&[("o", "refer"), ("Subscription-State", "active;expires=60")]);
        assert_eq!(event_package(&h).as_deref(), Some("refer"));
        assert!(!subscription_terminated(&h));
        assert_eq!(event_package(&headers(&[])), None);
    }

    #[test]
    fn cseq_round_trip_and_limits() {
        let c: CSeq = "4711 INVITE".parse().unwrap();
        assert_eq!(c, CSeq::new(4711, Method::Invite));
        assert_eq!(c.to_string(), "4711 INVITE");
        assert!("2147483648 INVITE".parse::<CSeq>().is_err());
        assert!("36893488147419103232 REGISTER".parse::<CSeq>().is_err());
        assert!("1".parse::<CSeq>().is_err());
        assert!("1 INVITE x".parse::<CSeq>().is_err());
    }

    #[test]
    fn tags_behind_odd_display_names() {
        assert_eq!(
            tag("\"J Rosenberg \\\\\\\"\"  <sip:j@x> ; tag = 98asjd8").as_deref(),
            Some("98asjd8")
        );
        assert_eq!(tag("sip:a@b;tag=1;x=2").as_deref(), Some("1"));
        assert_eq!(
            tag("<sip:a@b;tag=no>").as_deref(),
            None,
            "a URI parameter is not the tag"
        );
        assert_eq!(
            tag("\"a;tag=no\" <sip:a@b>;tag=yes").as_deref(),
            Some("yes")
        );
        assert_eq!(tag("<sip:a@b>"), None);
    }

    #[test]
    fn diversion_round_trip() {
        let v = "<sip:201@pbx.example.com>;reason=unconditional;counter=1";
        let d = NameAddrHeader::parse(diversion_name(), v).unwrap();
        assert_eq!(d.param("reason"), Some("unconditional"));
        assert_eq!(d.to_string(), v);
        assert!(NameAddrHeader::parse(diversion_name(), "<sip:x@y").is_err());
    }

    #[test]
    fn refer_to_round_trip() {
        let r = Replaces {
            call_id: "abc@host".into(),
            to_tag: "11".into(),
            from_tag: "22".into(),
        };
        let value = format!(
            "<sip:203@pbx:5070?Replaces={}>",
            percent_encode(&r.to_string())
        );
        let parsed = ReferTo::parse(&value).unwrap();
        assert_eq!(parsed.uri, "sip:203@pbx:5070");
        assert_eq!(parsed.user(), "203");
        assert_eq!(parsed.replaces, Some(r));
        assert_eq!(
            ReferTo::parse("sip:202@127.0.0.1").map(|r| r.replaces),
            Some(None)
        );
        for bad in ["garbage", "<sip:@>", "<http://x/>", "<sip:202>"] {
            assert_eq!(ReferTo::parse(bad), None, "{bad}");
        }
        assert_eq!(Replaces::parse("id;to-tag=1"), None);
    }
}
