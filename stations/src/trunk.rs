//! Outside lines: a [`Trunk`] at a SIP provider, the office's numbers (DIDs) and where each
//! rings, and the outbound routes that pick a trunk by the dialled number's prefix.

use crate::error::StationError;

/// A SIP trunk at a provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trunk {
    /// A short name (`provider`).
    pub name: String,
    /// The provider's host name or address, and port.
    pub host: String,
    pub port: u16,
    /// `udp`, `tcp` or `tls`.
    pub transport: String,
    /// The account at the provider (digest user, and the registration's user).
    pub user: String,
    /// Plain text in memory only; sealed in the database.
    pub password: String,
    /// Register the trunk at the provider.
    pub register: bool,
    /// The From user of outgoing calls when the station has no caller ID of its own and the
    /// trunk none either (empty: `user`).
    pub from_user: String,
    /// The office's number shown to the called party (E.164, `+` optional), when the
    /// station has none.
    pub caller_id: String,
    /// Calls at once through the trunk (0: no limit).
    pub max_calls: u32,
    /// Where the called number of an incoming call is read: `ruri` (Request-URI) or `to`.
    pub did_from: String,
}

/// Field names, in display order.
pub const TRUNK_FIELDS: &[&str] = &[
    "host",
    "port",
    "transport",
    "user",
    "password",
    "register",
    "from_user",
    "caller_id",
    "max_calls",
    "did_from",
];

fn invalid(field: &'static str, value: &str, why: &str) -> StationError {
    StationError::invalid(field, value, why)
}

/// A dialled or called number: 1 to 20 digits, a leading `+` allowed.
pub fn number_ok(s: &str) -> bool {
    let digits = s.strip_prefix('+').unwrap_or(s);
    !digits.is_empty() && digits.len() <= 20 && digits.bytes().all(|b| b.is_ascii_digit())
}

impl Trunk {
    /// A trunk named `name` at `host` (`HOST[:PORT]`), with defaults for the rest.
    pub fn new(name: &str, host: &str) -> Result<Trunk, StationError> {
        if name.is_empty()
            || name.len() > 32
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(invalid(
                "name",
                name,
                "must be 1 to 32 of A-Z a-z 0-9 - _ .",
            ));
        }
        let mut t = Trunk {
            name: name.to_string(),
            host: String::new(),
            port: 5060,
            transport: "udp".into(),
            user: String::new(),
            password: String::new(),
            register: false,
            from_user: String::new(),
            caller_id: String::new(),
            max_calls: 0,
            did_from: "ruri".into(),
        };
        t.set("host", host)?;
        Ok(t)
    }

    /// Sets one field from its text form (`host` may carry the port: `HOST:PORT`).
    pub fn set(&mut self, field: &str, value: &str) -> Result<(), StationError> {
        let v = value.trim();
        match field {
            "host" => {
                let (host, port) = match v.rsplit_once(':') {
                    Some((h, p)) if !h.contains(':') || h.ends_with(']') => (h, Some(p)),
                    _ => (v, None),
                };
                let host = host.trim_start_matches('[').trim_end_matches(']');
                if host.is_empty()
                    || host.len() > 253
                    || !host
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-.:".contains(c))
                {
                    return Err(invalid("host", v, "must be a host name or an address"));
                }
                self.host = host.to_string();
                if let Some(p) = port {
                    self.set("port", p)?;
                }
            }
            "port" => {
                self.port = v
                    .parse()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| invalid("port", v, "must be 1 to 65535"))?
            }
            "transport" => {
                let t = v.to_ascii_lowercase();
                if !["udp", "tcp", "tls"].contains(&t.as_str()) {
                    return Err(invalid("transport", v, "must be udp, tcp or tls"));
                }
                self.transport = t;
            }
            "user" | "from_user" => {
                if v.len() > 64
                    || !v
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "+-_.".contains(c))
                {
                    return Err(invalid(
                        if field == "user" { "user" } else { "from_user" },
                        v,
                        "must be up to 64 of A-Z a-z 0-9 + - _ .",
                    ));
                }
                if field == "user" {
                    self.user = v.to_string();
                } else {
                    self.from_user = v.to_string();
                }
            }
            "password" => {
                if value.len() > 64 || value.chars().any(|c| c.is_control() || c == '"') {
                    return Err(invalid(
                        "password",
                        "(hidden)",
                        "must be up to 64 characters without quotes or control characters",
                    ));
                }
                self.password = value.to_string();
            }
            "register" => {
                self.register = match v.to_ascii_lowercase().as_str() {
                    "yes" | "true" | "1" | "on" => true,
                    "no" | "false" | "0" | "off" => false,
                    _ => return Err(invalid("register", v, "must be yes or no")),
                }
            }
            "caller_id" => {
                if !v.is_empty() && !number_ok(v) {
                    return Err(invalid(
                        "caller_id",
                        v,
                        "must be a number (digits, + first)",
                    ));
                }
                self.caller_id = v.to_string();
            }
            "max_calls" => {
                self.max_calls = v
                    .parse()
                    .ok()
                    .filter(|n| *n <= 10_000)
                    .ok_or_else(|| invalid("max_calls", v, "must be 0 (no limit) to 10000"))?
            }
            "did_from" => {
                let d = v.to_ascii_lowercase();
                if d != "ruri" && d != "to" {
                    return Err(invalid("did_from", v, "must be ruri or to"));
                }
                self.did_from = d;
            }
            other => {
                return Err(invalid(
                    "field",
                    other,
                    &format!("is not a trunk field ({})", TRUNK_FIELDS.join(", ")),
                ));
            }
        }
        Ok(())
    }

    /// One field in its text form (the password in plain text: callers decide who sees it).
    pub fn get(&self, field: &str) -> String {
        match field {
            "host" => self.host.clone(),
            "port" => self.port.to_string(),
            "transport" => self.transport.clone(),
            "user" => self.user.clone(),
            "password" => self.password.clone(),
            "register" => if self.register { "yes" } else { "no" }.into(),
            "from_user" => self.from_user.clone(),
            "caller_id" => self.caller_id.clone(),
            "max_calls" => self.max_calls.to_string(),
            "did_from" => self.did_from.clone(),
            _ => String::new(),
        }
    }

    /// Rules across fields: registering needs an account.
    pub fn check(&self) -> Result<(), StationError> {
        if self.register && (self.user.is_empty() || self.password.is_empty()) {
            return Err(invalid(
                "register",
                "yes",
                "needs --user and --password (the account at the provider)",
            ));
        }
        Ok(())
    }
}

/// What the trunk's registration looks like, as the running PBX last wrote it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrunkState {
    pub name: String,
    pub registered: bool,
    /// Unix time the registration lapses (0: none).
    pub expires_at: i64,
    /// The last failure (`423 Interval Too Brief`…), empty when none.
    pub last_error: String,
    /// Calls through the trunk now.
    pub calls: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_checked_and_named() {
        let mut t = Trunk::new("provider", "sip.example.net:5080").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("sip.example.net", 5080));
        t.set("host", "[2001:db8::1]:5062").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("2001:db8::1", 5062));
        for (f, v, want) in [
            ("transport", "sctp", "transport"),
            ("port", "0", "port"),
            ("caller_id", "12ab", "caller_id"),
            ("did_from", "from", "did_from"),
            ("register", "maybe", "register"),
            ("colour", "red", "field"),
        ] {
            let e = t.set(f, v).unwrap_err().to_string();
            assert!(e.starts_with(want), "{e}");
        }
        t.set("register", "yes").unwrap();
        assert!(t.check().unwrap_err().to_string().contains("--user"));
        assert!(Trunk::new("a b", "h").is_err());
        assert!(number_ok("+4930123") && number_ok("0301") && !number_ok("+") && !number_ok("1-2"));
    }
}
