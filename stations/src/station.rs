//! A station (one line appearance of a phone, or a softphone account) and its validation.
//!
//! [`FIELDS`] is the one table that names every field: the command line flags, the CSV
//! columns, the TOML keys and the database columns are all these names, and every value
//! from any of them goes through [`Station::set`]. A refused value names its field.

use crate::error::StationError;
use crate::mac::Mac;

/// Phone models, by their command-line names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Model {
    Cisco7940,
    Cisco7960,
    AudioCodes405,
    AudioCodes420,
    AudioCodes430,
    AudioCodes440,
    XLite,
    Softphone,
}

/// (name, model, profile family, line keys).
pub const MODELS: &[(&str, Model, &str, u8)] = &[
    ("cisco-7940", Model::Cisco7940, "cisco-79x0", 2),
    ("cisco-7960", Model::Cisco7960, "cisco-79x0", 6),
    (
        "audiocodes-405hd",
        Model::AudioCodes405,
        "audiocodes-4xxhd",
        2,
    ),
    (
        "audiocodes-420hd",
        Model::AudioCodes420,
        "audiocodes-4xxhd",
        4,
    ),
    (
        "audiocodes-430hd",
        Model::AudioCodes430,
        "audiocodes-4xxhd",
        6,
    ),
    (
        "audiocodes-440hd",
        Model::AudioCodes440,
        "audiocodes-4xxhd",
        6,
    ),
    ("xlite", Model::XLite, "xlite", 1),
    ("softphone", Model::Softphone, "softphone", 6),
];

impl Model {
    fn row(self) -> &'static (&'static str, Model, &'static str, u8) {
        MODELS
            .iter()
            .find(|(_, m, _, _)| *m == self)
            .unwrap_or(&MODELS[0])
    }

    pub fn name(self) -> &'static str {
        self.row().0
    }

    /// The `profiles/` folder that renders this model.
    pub fn family(self) -> &'static str {
        self.row().2
    }

    pub fn max_lines(self) -> u8 {
        self.row().3
    }

    /// The model string AudioCodes phones report (`420HD`).
    pub fn short(self) -> &'static str {
        match self {
            Model::Cisco7940 => "7940",
            Model::Cisco7960 => "7960",
            Model::AudioCodes405 => "405HD",
            Model::AudioCodes420 => "420HD",
            Model::AudioCodes430 => "430HD",
            Model::AudioCodes440 => "440HD",
            Model::XLite => "X-Lite",
            Model::Softphone => "softphone",
        }
    }

    pub fn parse(s: &str) -> Result<Self, StationError> {
        let s = s.trim().to_ascii_lowercase();
        MODELS
            .iter()
            .find(|(n, _, _, _)| *n == s)
            .map(|(_, m, _, _)| *m)
            .ok_or_else(|| {
                let names: Vec<&str> = MODELS.iter().map(|r| r.0).collect();
                StationError::invalid("model", s, format!("is not one of {}", names.join(", ")))
            })
    }
}

/// One station.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Station {
    /// Extension number, the address-of-record user (`201`).
    pub number: String,
    /// Authentication user name (OfficeServ "User ID").
    pub user_id: String,
    /// Plain text in memory only; sealed in the database.
    pub password: String,
    pub name: String,
    pub mac: Option<Mac>,
    pub model: Model,
    /// Line key on a multi-line phone, 1-based.
    pub line: u8,
    pub pickup_group: Option<u32>,
    pub voicemail: Option<String>,
    /// OfficeServ Tone Source: `system` (the PBX plays hold tone) or `phone`.
    pub tone_source: String,
    /// `rfc2833` or `info`.
    pub dtmf: String,
    /// Call forwarding Unreachable: a station number.
    pub cf_unreachable: Option<String>,
    /// Insert Trunk Port (LCR code, trunk or trunk group) and how it is used.
    pub trunk_port: Option<String>,
    /// `none`, `incoming` or `outgoing`.
    pub trunk_type: String,
    /// `ip` or `ip-port`.
    pub nat_check: String,
    pub use_whitelist: bool,
    /// A second call rings this station while it is in a call (off by default, as in
    /// OfficeServ), instead of getting busy.
    pub call_waiting: bool,
    /// SRTP for this station's calls (OfficeServ "sRTP"): `off`, `optional` (the phone's
    /// offer decides) or `mandatory` (a call without it is refused).
    pub srtp: String,
    /// The number an outside party sees (E.164, `+` optional); empty: the trunk's.
    pub caller_id: String,
    /// Toll restriction: the outside calls the station may make — `internal` (none),
    /// `local`, `national` or `international`. Emergency numbers are always allowed.
    pub toll: String,
}

/// Field names, in CSV/export order. The first six are the required CSV header.
pub const FIELDS: &[&str] = &[
    "number",
    "user_id",
    "password",
    "name",
    "mac",
    "model",
    "line",
    "pickup_group",
    "voicemail",
    "tone_source",
    "dtmf",
    "cf_unreachable",
    "trunk_port",
    "trunk_type",
    "nat_check",
    "use_whitelist",
    "call_waiting",
    "srtp",
    "caller_id",
    "toll",
];

/// Passwords no office should use, whatever their length.
const WEAK: &[&str] = &[
    "password",
    "12345678",
    "123456789",
    "00000000",
    "11111111",
    "cisco123",
    "admin123",
    "changeme",
    "qwertyui",
    "abcdefgh",
    "87654321",
];

fn digits(field: &'static str, v: &str, max: usize) -> Result<String, StationError> {
    if v.is_empty() || v.len() > max || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(StationError::invalid(
            field,
            v,
            format!("must be 1 to {max} digits"),
        ));
    }
    Ok(v.to_string())
}

fn optional<T>(
    v: &str,
    f: impl FnOnce(&str) -> Result<T, StationError>,
) -> Result<Option<T>, StationError> {
    if v.is_empty() {
        Ok(None)
    } else {
        f(v).map(Some)
    }
}

fn yes_no(field: &'static str, v: &str) -> Result<bool, StationError> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "yes" | "true" | "on" => Ok(true),
        "0" | "no" | "false" | "off" => Ok(false),
        _ => Err(StationError::invalid(field, v, "must be yes or no")),
    }
}

fn one_of(field: &'static str, v: &str, allowed: &[&str]) -> Result<String, StationError> {
    let l = v.to_ascii_lowercase();
    if allowed.contains(&l.as_str()) {
        Ok(l)
    } else {
        Err(StationError::invalid(
            field,
            v,
            format!("must be one of {}", allowed.join(", ")),
        ))
    }
}

/// Characters allowed in user IDs (they go into SIP URIs and every phone format unquoted).
fn user_id_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 30
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
}

impl Station {
    /// A station with the required fields and defaults for the rest (validated).
    pub fn new(
        number: &str,
        user_id: &str,
        password: &str,
        min_password: usize,
    ) -> Result<Self, StationError> {
        let mut s = Station::new_unchecked();
        s.set("number", number)?;
        s.set("user_id", user_id)?;
        s.set("password", password)?;
        s.check(min_password)?;
        Ok(s)
    }

    /// A station with defaults everywhere, to be filled by [`Station::set`] and then
    /// checked with [`Station::check`].
    pub fn new_unchecked() -> Self {
        Station {
            number: String::new(),
            user_id: String::new(),
            password: String::new(),
            name: String::new(),
            mac: None,
            model: Model::Softphone,
            line: 1,
            pickup_group: None,
            voicemail: None,
            tone_source: "system".into(),
            dtmf: "rfc2833".into(),
            cf_unreachable: None,
            trunk_port: None,
            trunk_type: "none".into(),
            nat_check: "ip".into(),
            use_whitelist: true,
            call_waiting: false,
            srtp: "optional".into(),
            caller_id: String::new(),
            toll: "national".into(),
        }
    }

    /// Sets one field from its text form.
    pub fn set(&mut self, field: &str, value: &str) -> Result<(), StationError> {
        let v = value.trim();
        match field {
            "number" => self.number = digits("number", v, 16)?,
            "user_id" => {
                if !user_id_ok(v) {
                    return Err(StationError::invalid(
                        "user_id",
                        v,
                        "must be 1 to 30 of A-Z a-z 0-9 . _ -",
                    ));
                }
                self.user_id = v.to_string();
            }
            "password" => {
                if value.len() > 31
                    || !value
                        .chars()
                        .all(|c| c.is_ascii_graphic() && c != '"' && c != '\\')
                {
                    return Err(StationError::invalid(
                        "password",
                        "(hidden)",
                        "must be at most 31 printable ASCII characters without quotes, backslashes or spaces",
                    ));
                }
                self.password = value.to_string();
            }
            "name" => {
                if v.chars().count() > 40
                    || v.chars()
                        .any(|c| c.is_control() || c == '"' || c == '<' || c == '>')
                {
                    return Err(StationError::invalid(
                        "name",
                        v,
                        "must be at most 40 characters without quotes, <, > or control characters",
                    ));
                }
                self.name = v.to_string();
            }
            "mac" => {
                self.mac = optional(v, |v| {
                    v.parse::<Mac>()
                        .map_err(|e| StationError::invalid("mac", v, e))
                })?
            }
            "model" => self.model = Model::parse(v)?,
            "line" => {
                self.line = v.parse().ok().filter(|l| *l >= 1).ok_or_else(|| {
                    StationError::invalid("line", v, "must be a line key number from 1")
                })?
            }
            "pickup_group" => {
                self.pickup_group = optional(v, |v| {
                    v.parse()
                        .ok()
                        .filter(|g| (1..=99).contains(g))
                        .ok_or_else(|| StationError::invalid("pickup_group", v, "must be 1 to 99"))
                })?
            }
            "voicemail" => self.voicemail = optional(v, |v| digits("voicemail", v, 16))?,
            "tone_source" => self.tone_source = one_of("tone_source", v, &["system", "phone"])?,
            "dtmf" => self.dtmf = one_of("dtmf", v, &["rfc2833", "info"])?,
            "cf_unreachable" => {
                self.cf_unreachable = optional(v, |v| digits("cf_unreachable", v, 16))?
            }
            "trunk_port" => self.trunk_port = optional(v, |v| digits("trunk_port", v, 8))?,
            "trunk_type" => {
                self.trunk_type = one_of("trunk_type", v, &["none", "incoming", "outgoing"])?
            }
            "nat_check" => self.nat_check = one_of("nat_check", v, &["ip", "ip-port"])?,
            "use_whitelist" => self.use_whitelist = yes_no("use_whitelist", v)?,
            "call_waiting" => self.call_waiting = yes_no("call_waiting", v)?,
            "srtp" => self.srtp = one_of("srtp", v, &["off", "optional", "mandatory"])?,
            "caller_id" => {
                if !v.is_empty() && !crate::trunk::number_ok(v) {
                    return Err(StationError::invalid(
                        "caller_id",
                        v,
                        "must be a number (digits, + first)",
                    ));
                }
                self.caller_id = v.to_string();
            }
            "toll" => {
                self.toll = one_of(
                    "toll",
                    v,
                    &["internal", "local", "national", "international"],
                )?
            }
            other => {
                return Err(StationError::invalid(
                    "field",
                    other,
                    format!("is not a station field ({})", FIELDS.join(", ")),
                ));
            }
        }
        Ok(())
    }

    /// One field in its text form (the password in plain text: callers decide who sees it).
    pub fn get(&self, field: &str) -> String {
        let opt = |o: &Option<String>| o.clone().unwrap_or_default();
        match field {
            "number" => self.number.clone(),
            "user_id" => self.user_id.clone(),
            "password" => self.password.clone(),
            "name" => self.name.clone(),
            "mac" => self.mac.map(|m| m.lower()).unwrap_or_default(),
            "model" => self.model.name().into(),
            "line" => self.line.to_string(),
            "pickup_group" => self.pickup_group.map(|g| g.to_string()).unwrap_or_default(),
            "voicemail" => opt(&self.voicemail),
            "tone_source" => self.tone_source.clone(),
            "dtmf" => self.dtmf.clone(),
            "cf_unreachable" => opt(&self.cf_unreachable),
            "trunk_port" => opt(&self.trunk_port),
            "trunk_type" => self.trunk_type.clone(),
            "nat_check" => self.nat_check.clone(),
            "use_whitelist" => if self.use_whitelist { "yes" } else { "no" }.into(),
            "call_waiting" => if self.call_waiting { "yes" } else { "no" }.into(),
            "srtp" => self.srtp.clone(),
            "caller_id" => self.caller_id.clone(),
            "toll" => self.toll.clone(),
            _ => String::new(),
        }
    }

    /// Rules that involve more than one field, and the password policy.
    pub fn check(&self, min_password: usize) -> Result<(), StationError> {
        let pw = &self.password;
        let bad = |why: &str| Err(StationError::invalid("password", "(hidden)", why));
        if pw.len() < min_password {
            return bad(&format!("must be at least {min_password} characters"));
        }
        if pw.eq_ignore_ascii_case(&self.user_id) || *pw == self.number {
            return bad("must differ from the user ID and the number");
        }
        if WEAK.contains(&pw.to_ascii_lowercase().as_str())
            || pw.chars().all(|c| c == pw.chars().next().unwrap_or(' '))
        {
            return bad("is a well-known or repeated-character password");
        }
        if self.line > self.model.max_lines() {
            return Err(StationError::invalid(
                "line",
                self.line.to_string(),
                format!(
                    "is beyond the {} line keys of a {}",
                    self.model.max_lines(),
                    self.model.name()
                ),
            ));
        }
        if self.srtp == "mandatory"
            && (matches!(self.model, Model::Cisco7940 | Model::Cisco7960)
                || self.model.family() == "audiocodes-4xxhd")
        {
            return Err(StationError::invalid(
                "srtp",
                "mandatory",
                format!(
                    "is beyond a {}: its profile cannot turn SRTP on (use optional: the PBX encrypts the other legs)",
                    self.model.name()
                ),
            ));
        }
        if self.mac.is_none() && matches!(self.model, Model::Cisco7940 | Model::Cisco7960) {
            return Err(StationError::invalid(
                "mac",
                "",
                "is required for a Cisco phone (it names the phone's file)",
            ));
        }
        if self.mac.is_none() && self.model.family() == "audiocodes-4xxhd" {
            return Err(StationError::invalid(
                "mac",
                "",
                "is required for an AudioCodes phone (it names the phone's file)",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st() -> Station {
        Station::new("201", "u201", "Corr3ct-horse", 8).unwrap()
    }

    #[test]
    fn every_field_round_trips_through_text() {
        let mut s = st();
        for (f, v) in [
            ("name", "Front Desk"),
            ("mac", "00:11:22:AA:BB:CC"),
            ("model", "cisco-7960"),
            ("line", "3"),
            ("pickup_group", "2"),
            ("voicemail", "8201"),
            ("tone_source", "phone"),
            ("dtmf", "INFO"),
            ("cf_unreachable", "202"),
            ("trunk_port", "802"),
            ("trunk_type", "incoming"),
            ("nat_check", "ip-port"),
            ("use_whitelist", "no"),
            ("call_waiting", "yes"),
            ("srtp", "Mandatory"),
            ("caller_id", "+4930123456"),
            ("toll", "local"),
        ] {
            s.set(f, v).unwrap();
        }
        let mut t = st();
        for f in FIELDS {
            t.set(f, &s.get(f)).unwrap();
        }
        assert_eq!(s, t);
        assert_eq!(s.get("mac"), "001122aabbcc");
        assert_eq!(s.get("dtmf"), "info");
    }

    #[test]
    fn refusals_name_the_field() {
        let mut s = st();
        for (f, v, want) in [
            ("number", "20a", "number"),
            ("user_id", "u 201", "user_id"),
            ("mac", "zz", "mac"),
            ("model", "nokia", "model"),
            ("dtmf", "inband", "dtmf"),
            ("line", "0", "line"),
            ("color", "red", "field"),
            ("srtp", "always", "srtp"),
        ] {
            let e = s.set(f, v).unwrap_err().to_string();
            assert!(e.starts_with(want), "{e}");
            assert!(e.contains(v) || e.contains(f), "{e}");
        }
        // A phone whose profile cannot turn SRTP on may not have it mandatory.
        for (model, mac) in [
            ("cisco-7960", "001122aabb01"),
            ("audiocodes-420hd", "00908f000004"),
        ] {
            let mut s = st();
            for (f, v) in [("model", model), ("mac", mac), ("srtp", "mandatory")] {
                s.set(f, v).unwrap();
            }
            let e = s.check(8).unwrap_err().to_string();
            assert!(e.starts_with("srtp") && e.contains("optional"), "{e}");
        }
        let mut s = st();
        s.set("srtp", "mandatory").unwrap();
        assert!(s.check(8).is_ok(), "a softphone can");
    }

    #[test]
    fn password_policy() {
        for (pw, why) in [
            ("short1", "at least 8"),
            ("u201", "at least"),
            ("password", "well-known"),
            ("aaaaaaaaa", "repeated"),
            ("has space", "printable"),
        ] {
            let e = Station::new("201", "u201", pw, 8).unwrap_err().to_string();
            assert!(e.contains(why), "{pw}: {e}");
            if pw != "password" {
                assert!(
                    !e.contains(pw) || pw == "u201",
                    "the password is not echoed: {e}"
                );
            }
        }
        assert!(
            Station::new("201", "longuserid1", "longuserid1", 8).is_err(),
            "user ID = password"
        );
        let mut s = st();
        s.set("model", "cisco-7940").unwrap();
        s.set("mac", "001122334455").unwrap();
        s.set("line", "3").unwrap();
        assert!(
            s.check(8)
                .unwrap_err()
                .to_string()
                .contains("beyond the 2 line keys")
        );
    }
}
