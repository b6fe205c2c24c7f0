//! MAC addresses in any common notation, stored normalised (12 lower-case hex digits).

use std::fmt;
use std::str::FromStr;

/// A 48-bit MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mac([u8; 6]);

impl Mac {
    /// `001122aabbcc`: the stored form, and AudioCodes' `<mac>.cfg`.
    pub fn lower(&self) -> String {
        hex::encode(self.0)
    }

    /// `001122AABBCC`: Cisco's `SIP<MAC>.cnf`.
    pub fn upper(&self) -> String {
        hex::encode_upper(self.0)
    }
}

impl FromStr for Mac {
    type Err = String;

    /// Accepts `00:11:22:aa:bb:cc`, `00-11-22-AA-BB-CC`, `0011.22aa.bbcc`, `001122aabbcc`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let digits: String = s
            .trim()
            .chars()
            .filter(|c| !matches!(c, ':' | '-' | '.'))
            .collect();
        if digits.len() != 12 || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(format!("{s:?} is not a MAC address (12 hex digits)"));
        }
        let mut out = [0u8; 6];
        hex::decode_to_slice(&digits, &mut out).map_err(|e| e.to_string())?;
        Ok(Mac(out))
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.lower())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notations() {
        for s in [
            "00:11:22:aa:bb:cc",
            "00-11-22-AA-BB-CC",
            "0011.22aa.bbcc",
            "001122AABBCC",
        ] {
            let m: Mac = s.parse().unwrap();
            assert_eq!(m.lower(), "001122aabbcc");
            assert_eq!(m.upper(), "001122AABBCC");
        }
        for bad in ["", "00:11:22:33:44", "00112233445g", "00:11:22:33:44:55:66"] {
            assert!(bad.parse::<Mac>().is_err(), "{bad}");
        }
    }
}
