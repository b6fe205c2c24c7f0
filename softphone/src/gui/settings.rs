//! The settings form: one line's account as typed, checked field by field, and the
//! provisioning URL. Each problem is shown beside its field; nothing is written until every
//! field is valid. Saving rewrites that `[[account]]` of the configuration file (the other
//! settings are kept, comments are not), checks the result loads as a configuration, and replaces the file in one
//! rename, so a failed save leaves the old file whole. The password is written sealed under
//! the key file beside the configuration (`phone.toml.key`, mode 0600), never in clear.
//! The sound cards are chosen from the ones the system has now; one the configuration names
//! that is not there is said beside its field, and kept (a headset is plugged in later).

use crate::config::{Account, Audio, CODECS, Config};
use crate::engine::Role;
use media::device::Devices;
use std::path::Path;

/// The sound settings as chosen in the form, and the cards there are to choose from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoundForm {
    /// Card names; empty for the system's default.
    pub microphone: String,
    pub speaker: String,
    pub ringer: String,
    pub speaker_volume: u8,
    pub ringer_volume: u8,
    pub echo_cancellation: bool,
    pub noise_suppression: bool,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
}

impl Default for SoundForm {
    fn default() -> Self {
        SoundForm::from_audio(&Audio {
            system: Devices::new(media::device::Simulated::default()),
            ..Audio::default()
        })
    }
}

impl SoundForm {
    pub fn from_audio(a: &Audio) -> SoundForm {
        SoundForm {
            microphone: a.microphone.clone(),
            speaker: a.speaker.clone(),
            ringer: a.ringer.clone(),
            speaker_volume: a.speaker_volume,
            ringer_volume: a.ringer_volume,
            echo_cancellation: a.echo_cancellation,
            noise_suppression: a.noise_suppression,
            inputs: a.system.inputs(),
            outputs: a.system.outputs(),
        }
    }

    /// Looks again at the cards the system has (one was plugged in or pulled out).
    pub fn refresh(&mut self, system: &Devices) {
        self.inputs = system.inputs();
        self.outputs = system.outputs();
    }

    pub fn choice_mut(&mut self, role: Role) -> &mut String {
        match role {
            Role::Microphone => &mut self.microphone,
            Role::Speaker => &mut self.speaker,
            Role::Ringer => &mut self.ringer,
        }
    }

    /// The cards there are for `role`.
    pub fn choices(&self, role: Role) -> &[String] {
        match role {
            Role::Microphone => &self.inputs,
            Role::Speaker | Role::Ringer => &self.outputs,
        }
    }

    /// A chosen card the system does not have now.
    pub fn missing(&self, role: Role) -> Option<String> {
        let chosen = match role {
            Role::Microphone => &self.microphone,
            Role::Speaker => &self.speaker,
            Role::Ringer => &self.ringer,
        };
        (!chosen.is_empty() && !self.choices(role).contains(chosen)).then(|| {
            format!("{chosen:?} is not connected: the system's default is used until it is")
        })
    }

    /// Writes the choices into the `[audio]` table of `doc` (its other keys kept).
    fn save_into(&self, doc: &mut toml::Table) {
        let audio = doc
            .entry("audio")
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !audio.is_table() {
            *audio = toml::Value::Table(toml::Table::new());
        }
        let Some(a) = audio.as_table_mut() else {
            return;
        };
        let t = |v: &str| toml::Value::String(v.to_string());
        a.insert("microphone".into(), t(&self.microphone));
        a.insert("speaker".into(), t(&self.speaker));
        a.insert("ringer".into(), t(&self.ringer));
        for (k, v) in [
            ("speaker_volume", self.speaker_volume),
            ("ringer_volume", self.ringer_volume),
        ] {
            a.insert(k.into(), toml::Value::Integer(v.min(100).into()));
        }
        a.insert(
            "echo_cancellation".into(),
            toml::Value::Boolean(self.echo_cancellation),
        );
        a.insert(
            "noise_suppression".into(),
            toml::Value::Boolean(self.noise_suppression),
        );
    }
}

/// The fields as the user typed them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Form {
    pub number: String,
    pub server: String,
    pub port: String,
    pub user_id: String,
    pub password: String,
    pub transport: String,
    pub codecs: String,
    pub dtmf: String,
    pub provisioning_url: String,
    pub sound: SoundForm,
}

/// The fields in the order the form shows them: (key, label).
pub const FIELDS: [(&str, &str); 9] = [
    ("number", "Number"),
    ("server", "Server"),
    ("port", "Port"),
    ("user_id", "Auth name"),
    ("password", "Password"),
    ("transport", "Transport"),
    ("codecs", "Codecs"),
    ("dtmf", "DTMF mode"),
    ("provisioning_url", "Provisioning URL"),
];

impl Form {
    /// The form for line `line` (1-based) of `c`.
    pub fn from_config(c: &Config, line: usize) -> Form {
        let a = &c.accounts[line.clamp(1, c.accounts.len()) - 1];
        let mut f = Form::from_account(a, &c.provisioning_url);
        f.sound = SoundForm::from_audio(&c.audio);
        f
    }

    pub fn from_account(a: &Account, provisioning_url: &str) -> Form {
        Form {
            number: a.number.clone(),
            server: a.server.clone(),
            port: a.port.to_string(),
            user_id: a.user_id.clone(),
            password: a.password.clone(),
            transport: a.transport.clone(),
            codecs: a.codecs.join(", "),
            dtmf: a.dtmf.clone(),
            provisioning_url: provisioning_url.to_string(),
            sound: SoundForm::default(),
        }
    }

    pub fn field_mut(&mut self, key: &str) -> &mut String {
        match key {
            "number" => &mut self.number,
            "server" => &mut self.server,
            "port" => &mut self.port,
            "user_id" => &mut self.user_id,
            "password" => &mut self.password,
            "transport" => &mut self.transport,
            "codecs" => &mut self.codecs,
            "dtmf" => &mut self.dtmf,
            _ => &mut self.provisioning_url,
        }
    }

    /// What is wrong with field `key`, if anything.
    pub fn problem(&self, key: &str) -> Option<String> {
        let s = |v: &str| v.trim().to_string();
        match key {
            "number" => {
                let n = s(&self.number);
                (n.is_empty() || n.contains(['@', ' ', ':']))
                    .then(|| "a user name without spaces, @ or :".into())
            }
            "server" => {
                let v = s(&self.server);
                if v.is_empty() {
                    Some("no server: a host name or address is needed".into())
                } else if !host_ok(&v) {
                    Some(format!("{v:?} is not a host name or address"))
                } else {
                    None
                }
            }
            "port" => match s(&self.port).parse::<u32>() {
                Ok(p) if (1..=65535).contains(&p) => None,
                _ => Some(format!("bad port {:?}: 1 to 65535", s(&self.port))),
            },
            "transport" => (!matches!(
                s(&self.transport).to_ascii_lowercase().as_str(),
                "udp" | "tcp" | "tls"
            ))
            .then(|| "udp, tcp or tls".into()),
            "dtmf" => (!matches!(
                s(&self.dtmf).to_ascii_lowercase().as_str(),
                "rfc2833" | "info"
            ))
            .then(|| "rfc2833 or info".into()),
            "codecs" => {
                let list = self.codec_list();
                if list.is_empty() {
                    return Some("at least one of PCMU, PCMA, opus".into());
                }
                list.iter()
                    .find(|c| !CODECS.iter().any(|k| k.eq_ignore_ascii_case(c)))
                    .map(|c| format!("{c:?} is not one of PCMU, PCMA, opus"))
            }
            "provisioning_url" => {
                let v = s(&self.provisioning_url);
                (!v.is_empty() && !url_ok(&v))
                    .then(|| format!("malformed URI {v:?}: http://host[:port]/path"))
            }
            _ => None,
        }
    }

    /// Every problem, as (key, what is wrong).
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        FIELDS
            .iter()
            .filter_map(|(k, _)| self.problem(k).map(|p| (*k, p)))
            .collect()
    }

    fn codec_list(&self) -> Vec<String> {
        self.codecs
            .split([',', ' '])
            .filter(|c| !c.is_empty())
            .map(str::to_string)
            .collect()
    }

    /// Writes the form into account `line` (1-based) of the file at `path`, once it is
    /// valid. The file is replaced whole or not at all.
    pub fn save(&self, path: &Path, line: usize) -> Result<(), String> {
        if let Some((k, p)) = self.problems().into_iter().next() {
            return Err(format!("not saved: {k}: {p}"));
        }
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let mut doc: toml::Table =
            toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let accounts = doc
            .entry("account")
            .or_insert_with(|| toml::Value::Array(Vec::new()));
        let Some(accounts) = accounts.as_array_mut() else {
            return Err(format!("{}: account is not a list", path.display()));
        };
        while accounts.len() < line {
            accounts.push(toml::Value::Table(toml::Table::new()));
        }
        let Some(a) = accounts[line - 1].as_table_mut() else {
            return Err(format!("{}: account {line} is not a table", path.display()));
        };
        let t = |v: &str| toml::Value::String(v.trim().to_string());
        a.insert("number".into(), t(&self.number));
        a.insert("server".into(), t(&self.server));
        a.insert(
            "port".into(),
            toml::Value::Integer(self.port.trim().parse().unwrap_or(5060)),
        );
        a.insert("user_id".into(), t(&self.user_id));
        // Sealed by write_sealed, never written in clear.
        a.remove("password_sealed");
        a.insert(
            "password".into(),
            toml::Value::String(self.password.clone()),
        );
        a.insert("transport".into(), t(&self.transport.to_ascii_lowercase()));
        a.insert("dtmf".into(), t(&self.dtmf.to_ascii_lowercase()));
        a.insert(
            "codecs".into(),
            toml::Value::Array(self.codec_list().iter().map(|c| t(c)).collect()),
        );
        if self.provisioning_url.trim().is_empty() {
            doc.remove("provisioning_url");
        } else {
            doc.insert("provisioning_url".into(), t(&self.provisioning_url));
        }
        self.sound.save_into(&mut doc);
        crate::config::write_sealed(path, doc)
    }
}

/// A host name (letters, digits, dots, hyphens) or an IP address.
fn host_ok(h: &str) -> bool {
    h.parse::<std::net::IpAddr>().is_ok()
        || (h.len() <= 253
            && h.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            }))
}

/// `http://` or `https://`, a host, an optional port, an optional path.
fn url_ok(u: &str) -> bool {
    let Some(rest) = u
        .strip_prefix("http://")
        .or_else(|| u.strip_prefix("https://"))
    else {
        return false;
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (h, Some(p)),
        _ => (authority, None),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host_ok(host)
        && port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p > 0))
        && !rest.contains(char::is_whitespace)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> Form {
        Form {
            number: "201".into(),
            server: "pbx.office.lan".into(),
            port: "5060".into(),
            user_id: "u201".into(),
            password: "pw".into(),
            transport: "udp".into(),
            codecs: "PCMU, opus".into(),
            dtmf: "rfc2833".into(),
            provisioning_url: "http://10.0.0.2:8080/softphone-201.toml".into(),
            sound: SoundForm::default(),
        }
    }

    #[test]
    fn each_bad_field_is_named() {
        assert!(good().problems().is_empty(), "{:?}", good().problems());
        let bad = |f: fn(&mut Form)| {
            let mut x = good();
            f(&mut x);
            x.problems()
        };
        assert_eq!(bad(|f| f.server.clear())[0].0, "server");
        assert!(
            bad(|f| f.server = "pbx office".into())[0]
                .1
                .contains("not a host")
        );
        assert_eq!(bad(|f| f.port = "70000".into())[0].0, "port");
        assert_eq!(bad(|f| f.port = "x".into())[0].0, "port");
        assert_eq!(bad(|f| f.codecs = "G729".into())[0].0, "codecs");
        assert_eq!(bad(|f| f.dtmf = "inband".into())[0].0, "dtmf");
        for u in [
            "ftp://x/y",
            "http//x",
            "http://",
            "http://a b/c",
            "http://h:0/",
        ] {
            let p = bad(|f| f.provisioning_url = "".into());
            assert!(p.is_empty());
            let mut x = good();
            x.provisioning_url = u.into();
            assert_eq!(x.problems()[0].0, "provisioning_url", "{u}");
        }
    }
}
