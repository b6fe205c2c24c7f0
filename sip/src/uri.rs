//! URIs that appear in a Request-URI: `sip:`, `sips:` (ezk's [`SipUri`]), `tel:` (RFC 3966)
//! and any other absolute URI, which is kept as text so the application can answer `416`.

use crate::error::ParseError;
use ezk_sip_types::print::{AppendCtx, PrintCtx, UriContext};
use ezk_sip_types::uri::SipUri;
use std::fmt;

/// A Request-URI.
#[derive(Debug, Clone)]
pub enum Uri {
    /// `sip:` or `sips:`.
    Sip(SipUri),
    /// `tel:` (RFC 3966).
    Tel(TelUri),
    /// Any other scheme, kept verbatim.
    Other(String),
}

/// A `tel:` URI: the number (with visual separators removed) and its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelUri {
    /// Digits, with a leading `+` for a global number; `-.()` separators removed.
    pub number: String,
    /// `;name=value` parameters in order (`phone-context`, `isub`, `ext`, ...).
    pub params: Vec<(String, Option<String>)>,
}

impl TelUri {
    /// Parses the part after `tel:`.
    pub fn parse(rest: &str) -> Result<Self, ParseError> {
        let mut parts = rest.split(';');
        let raw = parts.next().unwrap_or_default();
        let number: String = raw
            .chars()
            .filter(|c| !matches!(c, '-' | '.' | '(' | ')'))
            .collect();
        let digits = number.strip_prefix('+').unwrap_or(&number);
        if digits.is_empty()
            || !digits
                .chars()
                .all(|c| c.is_ascii_hexdigit() || matches!(c, '*' | '#'))
        {
            return Err(ParseError::StartLine(format!("bad tel number {raw:?}")));
        }
        let params = parts
            .map(|p| match p.split_once('=') {
                Some((k, v)) => (k.to_string(), Some(v.to_string())),
                None => (p.to_string(), None),
            })
            .collect();
        Ok(TelUri { number, params })
    }
}

impl fmt::Display for TelUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tel:{}", self.number)?;
        for (k, v) in &self.params {
            match v {
                Some(v) => write!(f, ";{k}={v}")?,
                None => write!(f, ";{k}")?,
            }
        }
        Ok(())
    }
}

impl Uri {
    /// Parses a Request-URI strictly: no whitespace, no `<>`, and a `sip:`/`sips:` URI must
    /// not carry `?headers` (RFC 3261 §19.1.5; RFC 4475 §3.1.2.11).
    pub fn parse_request_uri(s: &str) -> Result<Self, ParseError> {
        if s.is_empty() || s.contains(|c: char| c.is_whitespace() || c == '<' || c == '>') {
            return Err(ParseError::StartLine(format!(
                "malformed Request-URI {s:?}"
            )));
        }
        let (scheme, rest) = s
            .split_once(':')
            .ok_or_else(|| ParseError::StartLine(format!("Request-URI without scheme: {s:?}")))?;
        let valid_scheme = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        if !valid_scheme {
            return Err(ParseError::StartLine(format!("bad URI scheme {scheme:?}")));
        }
        match scheme.to_ascii_lowercase().as_str() {
            "sip" | "sips" => {
                // `?` is legal in the user part; after the host it starts URI headers.
                let host_part = rest.split_once('@').map_or(rest, |(_, host)| host);
                if host_part.contains('?') {
                    return Err(ParseError::StartLine(
                        "headers are not allowed in a SIP Request-URI".into(),
                    ));
                }
                let uri: SipUri = s
                    .parse()
                    .map_err(|_| ParseError::StartLine(format!("malformed SIP URI {s:?}")))?;
                Ok(Uri::Sip(uri))
            }
            "tel" => Ok(Uri::Tel(TelUri::parse(rest)?)),
            _ => Ok(Uri::Other(s.to_string())),
        }
    }

    /// The SIP URI, if this is one.
    pub fn as_sip(&self) -> Option<&SipUri> {
        match self {
            Uri::Sip(u) => Some(u),
            _ => None,
        }
    }

    /// The user part of a SIP URI, or the number of a tel URI.
    pub fn user(&self) -> Option<&str> {
        match self {
            Uri::Sip(u) => match &u.user_part {
                ezk_sip_types::uri::SipUriUserPart::Empty => None,
                ezk_sip_types::uri::SipUriUserPart::User(user) => Some(user.as_str()),
                ezk_sip_types::uri::SipUriUserPart::UserPw(up) => Some(up.user.as_str()),
            },
            Uri::Tel(t) => Some(&t.number),
            Uri::Other(_) => None,
        }
    }
}

impl From<SipUri> for Uri {
    fn from(u: SipUri) -> Self {
        Uri::Sip(u)
    }
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Uri::Sip(u) => {
                let ctx = PrintCtx {
                    method: None,
                    uri: Some(UriContext::ReqUri),
                };
                write!(f, "{}", u.print_ctx(ctx))
            }
            Uri::Tel(t) => t.fmt(f),
            Uri::Other(s) => f.write_str(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_uri_round_trips() {
        for s in [
            "sip:201@pbx.example.com",
            "sips:alice@example.com:5061;transport=tls",
            "tel:+15551234567",
            "tel:1234;phone-context=+1555",
            "urn:service:sos",
        ] {
            let uri = Uri::parse_request_uri(s).unwrap();
            assert_eq!(uri.to_string(), s);
        }
    }

    #[test]
    fn request_uri_rejects() {
        for s in [
            "<sip:a@b>",
            "sip:a@b; lr",
            "sip:a@b?Route=%3Csip:x%3E",
            "",
            "1sip:x",
            "tel:abcxyz",
        ] {
            assert!(Uri::parse_request_uri(s).is_err(), "{s}");
        }
    }

    #[test]
    fn tel_strips_visual_separators() {
        let t = TelUri::parse("+1-555-(123).4567").unwrap();
        assert_eq!(t.number, "+15551234567");
    }
}
