//! SIP methods, matched exactly and case-sensitively (RFC 3261 §7.1).
//!
//! ezk's `Method` maps any token that merely *starts* with a known name (`INVITEX`) to that
//! method, so the core keeps its own.

use std::fmt;
use std::str::FromStr;

/// A request method.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Method {
    Invite,
    Ack,
    Cancel,
    Bye,
    Register,
    Options,
    Info,
    Update,
    Prack,
    Subscribe,
    Notify,
    Publish,
    Refer,
    Message,
    /// Any other token (RFC 3261 `extension-method`).
    Other(String),
}

const KNOWN: &[(&str, Method)] = &[
    ("INVITE", Method::Invite),
    ("ACK", Method::Ack),
    ("CANCEL", Method::Cancel),
    ("BYE", Method::Bye),
    ("REGISTER", Method::Register),
    ("OPTIONS", Method::Options),
    ("INFO", Method::Info),
    ("UPDATE", Method::Update),
    ("PRACK", Method::Prack),
    ("SUBSCRIBE", Method::Subscribe),
    ("NOTIFY", Method::Notify),
    ("PUBLISH", Method::Publish),
    ("REFER", Method::Refer),
    ("MESSAGE", Method::Message),
];

/// RFC 3261 `token` characters.
pub(crate) fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-.!%*_+`'~".contains(c)
}

/// An empty string or one with a non-token character is not a method.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a method token: {0:?}")]
pub struct BadMethod(pub String);

impl FromStr for Method {
    type Err = BadMethod;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() || !s.chars().all(is_token_char) {
            return Err(BadMethod(s.to_string()));
        }
        Ok(KNOWN
            .iter()
            .find(|(name, _)| *name == s)
            .map(|(_, m)| m.clone())
            .unwrap_or_else(|| Method::Other(s.to_string())))
    }
}

impl Method {
    /// The method's text as it appears on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Method::Other(s) => s,
            known => KNOWN
                .iter()
                .find(|(_, m)| m == known)
                .map(|(name, _)| *name)
                .unwrap_or_default(),
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_match_only() {
        assert_eq!("INVITE".parse::<Method>().unwrap(), Method::Invite);
        assert_eq!(
            "INVITEX".parse::<Method>().unwrap(),
            Method::Other("INVITEX".into())
        );
        assert_eq!(
            "invite".parse::<Method>().unwrap(),
            Method::Other("invite".into())
        );
        assert!("IN VITE".parse::<Method>().is_err());
        assert!("".parse::<Method>().is_err());
    }

    #[test]
    fn round_trip() {
        for (name, _) in KNOWN {
            assert_eq!(name.parse::<Method>().unwrap().to_string(), *name);
        }
        let odd = "!interesting-Method0123456789_*+`.%indeed'~";
        assert_eq!(odd.parse::<Method>().unwrap().to_string(), odd);
    }
}
