//! The softphone's configuration: a TOML file, in the same shape as the provisioner's native
//! softphone profile (`profiles/softphone/softphone.toml.j2`) — one `[[account]]` per line
//! key, the PBX's feature codes in `[features]`, and, for headless use, `[audio]` files.
//! A bad file is refused with its path, the line, and what is wrong.

use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {error}")]
    Read { path: String, error: std::io::Error },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error("{path}: account {account}: {field}: {reason}")]
    Invalid {
        path: String,
        account: usize,
        field: &'static str,
        reason: String,
    },
}

/// One line key: an account on a SIP server.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Account {
    /// The extension number, also the user part of the address of record.
    pub number: String,
    #[serde(default)]
    pub display_name: String,
    /// The digest user name (defaults to the number).
    #[serde(default)]
    pub user_id: String,
    #[serde(default)]
    pub password: String,
    /// The password sealed (XChaCha20-Poly1305) under the key file beside the configuration
    /// (`phone.toml.key`), as the settings form writes it; opened by [`Config::load`].
    #[serde(default)]
    pub password_sealed: String,
    /// Host name or address of the registrar and proxy.
    pub server: String,
    #[serde(default = "default_port")]
    pub port: u16,
    /// A second registrar and proxy, used when the first times out or answers 503 (the Cisco
    /// 7960's `proxy_backup`); empty for none.
    #[serde(default)]
    pub backup_server: String,
    /// Its port (the `port` when 0).
    #[serde(default)]
    pub backup_port: u16,
    /// `udp`, `tcp` or `tls` (SIP over TLS to the server's port, trusting the system's
    /// roots and the configuration's `tls_ca`).
    #[serde(default = "default_transport")]
    pub transport: String,
    /// SRTP (SDES): `off`; `optional` (default: taken when the other side offers keys, over
    /// TLS only); `mandatory` (our offers are RTP/SAVP, and a call without SRTP is refused
    /// with 488).
    #[serde(default = "default_srtp")]
    pub srtp: String,
    #[serde(default = "default_expiry")]
    pub registration_expiry: u32,
    /// `rfc2833` (RFC 4733 events) or `info`.
    #[serde(default = "default_dtmf")]
    pub dtmf: String,
    /// The number that reaches voicemail.
    #[serde(default)]
    pub voicemail: String,
    /// Answering without a key press: `never`; `requested` (default), when the line's own
    /// server asks for it (RFC 5373 `Answer-Mode: Auto`, `Call-Info: …;answer-after=0`, or
    /// `Alert-Info: …;info=alert-autoanswer`, as intercom and paging send them); `always`.
    #[serde(default = "default_auto_answer")]
    pub auto_answer: String,
    /// Voice codecs to offer, in order of preference: `PCMU`, `PCMA`, `opus`.
    #[serde(default = "default_codecs")]
    pub codecs: Vec<String>,
}

/// The codecs a call can carry.
pub const CODECS: [&str; 3] = ["PCMU", "PCMA", "opus"];

fn default_codecs() -> Vec<String> {
    vec!["PCMU".into(), "PCMA".into()]
}

fn default_port() -> u16 {
    5060
}
fn default_transport() -> String {
    "udp".into()
}
fn default_srtp() -> String {
    "optional".into()
}
fn default_expiry() -> u32 {
    600
}
fn default_auto_answer() -> String {
    "requested".into()
}
fn default_dtmf() -> String {
    "rfc2833".into()
}

/// The PBX's feature codes (OfficeServ defaults).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct Features {
    pub forward_clear: String,
    pub forward_all: String,
    pub forward_busy: String,
    pub forward_noanswer: String,
    pub forward_busy_noanswer: String,
    pub dnd: String,
    pub park: String,
    pub retrieve: String,
    pub conference: String,
    pub pickup_my_group: String,
    pub pickup_group: String,
    pub pickup_directed: String,
    /// Plays the own mailbox (the Voicemail key, when the account names no number).
    pub voicemail: String,
}

impl Default for Features {
    fn default() -> Self {
        let s = |v: &str| v.to_string();
        Features {
            voicemail: s("50"),
            forward_clear: s("600"),
            forward_all: s("601"),
            forward_busy: s("602"),
            forward_noanswer: s("603"),
            forward_busy_noanswer: s("604"),
            dnd: s("40"),
            park: s("11"),
            retrieve: s("12"),
            conference: s("46"),
            pickup_my_group: s("55"),
            pickup_group: s("56"),
            pickup_directed: s("57"),
        }
    }
}

/// A call's audio: the sound card (`devices`: the microphone and speaker named, or the
/// system's default), or for headless use what the phone says (a WAV file, looped) and where
/// what it hears is recorded (one WAV per call). With neither it sends silence and records
/// nothing.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct Audio {
    pub source: Option<PathBuf>,
    pub record_dir: Option<PathBuf>,
    /// Talk through the sound card (the window does; headless with `--audio device`).
    pub devices: bool,
    /// Device names (empty: the system's default).
    pub microphone: String,
    pub speaker: String,
    /// Where incoming calls ring (empty: the system's default).
    pub ringer: String,
    /// Loudness of the speaker and of the ring, in percent of full (0–100).
    pub speaker_volume: u8,
    pub ringer_volume: u8,
    /// The call-progress tones' plan for ring-back and call waiting: `us`, `uk` or `eu`.
    pub tones: String,
    /// With the sound card, cancel the speaker's echo in the microphone (on unless turned
    /// off, as with a headset that cannot hear its earpiece).
    pub echo_cancellation: bool,
    /// With the sound card, also suppress steady noise on the microphone.
    pub noise_suppression: bool,
    /// The sound cards those names are looked up in: the machine's, or simulated ones in
    /// tests.
    #[serde(skip)]
    pub system: media::device::Devices,
}

impl Default for Audio {
    fn default() -> Self {
        Audio {
            source: None,
            record_dir: None,
            devices: false,
            microphone: String::new(),
            speaker: String::new(),
            ringer: String::new(),
            speaker_volume: 100,
            ringer_volume: 100,
            tones: String::new(),
            echo_cancellation: true,
            noise_suppression: false,
            system: Default::default(),
        }
    }
}

impl Audio {
    /// `percent` (0–100) as a gain.
    pub fn gain(percent: u8) -> f32 {
        f32::from(percent.min(100)) / 100.0
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(rename = "account")]
    pub accounts: Vec<Account>,
    #[serde(default)]
    pub features: Features,
    #[serde(default)]
    pub audio: Audio,
    /// Where the provisioner serves this phone's profile (kept for the settings form).
    #[serde(default)]
    pub provisioning_url: String,
    /// The office CA (PEM) that TLS servers may chain to, besides the system's roots: the
    /// provisioned profile carries it.
    #[serde(default)]
    pub tls_ca: String,
    /// The SHA-256 of that CA certificate (hex, colons allowed): when given, `tls_ca` is
    /// trusted only if it matches.
    #[serde(default)]
    pub tls_ca_sha256: String,
    /// Names to call (`[[contact]]`: `name`, `number`).
    #[serde(rename = "contact", default)]
    pub contacts: Vec<crate::contacts::Contact>,
    /// The call history file: `<configuration file>.history`, set by [`Config::load`].
    #[serde(skip)]
    pub history_file: Option<PathBuf>,
}

impl Config {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: p.clone(),
            error,
        })?;
        let mut c = Config::parse(&text, &p)?;
        let mut history = path.as_os_str().to_owned();
        history.push(".history");
        c.history_file = Some(PathBuf::from(history));
        if c.accounts.iter().any(|a| !a.password_sealed.is_empty()) {
            let key = stations::secret::key_path(path);
            let sealer = stations::secret::Sealer::load(&key).map_err(|e| ConfigError::Parse {
                path: p.clone(),
                message: format!("sealed passwords, but {e}"),
            })?;
            for (i, a) in c.accounts.iter_mut().enumerate() {
                if a.password_sealed.is_empty() {
                    continue;
                }
                let opened = sealer
                    .open(&a.password_sealed)
                    .and_then(|b| String::from_utf8(b).ok());
                a.password = opened.ok_or_else(|| ConfigError::Invalid {
                    path: p.clone(),
                    account: i + 1,
                    field: "password_sealed",
                    reason: format!("does not open with the key in {}", key.display()),
                })?;
            }
        }
        Ok(c)
    }

    /// Parses and checks a configuration; `path` names it in errors.
    pub fn parse(text: &str, path: &str) -> Result<Config, ConfigError> {
        let mut c: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_string(),
            message: e.to_string().trim_end().to_string(),
        })?;
        if c.accounts.is_empty() {
            return Err(ConfigError::Parse {
                path: path.to_string(),
                message: "no [[account]]: at least one line is needed".into(),
            });
        }
        for (i, a) in c.accounts.iter_mut().enumerate() {
            let bad = |field: &'static str, reason: &str| ConfigError::Invalid {
                path: path.to_string(),
                account: i + 1,
                field,
                reason: reason.to_string(),
            };
            if a.number.is_empty() || a.number.chars().any(|c| c.is_whitespace() || c == '@') {
                return Err(bad("number", "must be a user name without spaces or @"));
            }
            if a.server.is_empty() || a.server.contains(['/', ' ', '@']) {
                return Err(bad("server", "must be a host name or an address"));
            }
            if !a.backup_server.is_empty() && a.backup_server.contains(['/', ' ', '@']) {
                return Err(bad("backup_server", "must be a host name or an address"));
            }
            if a.backup_port == 0 {
                a.backup_port = a.port;
            }
            if a.port == 0 {
                return Err(bad("port", "must be 1 to 65535"));
            }
            a.transport = a.transport.to_ascii_lowercase();
            if !matches!(a.transport.as_str(), "udp" | "tcp" | "tls") {
                return Err(bad("transport", "must be udp, tcp or tls"));
            }
            a.srtp = a.srtp.to_ascii_lowercase();
            if !matches!(a.srtp.as_str(), "off" | "optional" | "mandatory") {
                return Err(bad("srtp", "must be off, optional or mandatory"));
            }
            if a.srtp == "mandatory" && a.transport != "tls" {
                return Err(bad(
                    "srtp",
                    "mandatory needs transport = \"tls\" (keys sent in the clear protect nothing)",
                ));
            }
            if !(30..=86400).contains(&a.registration_expiry) {
                return Err(bad("registration_expiry", "must be 30 to 86400 seconds"));
            }
            a.dtmf = a.dtmf.to_ascii_lowercase();
            if !matches!(a.dtmf.as_str(), "rfc2833" | "info") {
                return Err(bad("dtmf", "must be rfc2833 or info"));
            }
            a.auto_answer = a.auto_answer.to_ascii_lowercase();
            if !matches!(a.auto_answer.as_str(), "never" | "requested" | "always") {
                return Err(bad("auto_answer", "must be never, requested or always"));
            }
            if a.user_id.is_empty() {
                a.user_id = a.number.clone();
            }
            if a.codecs.is_empty() {
                return Err(bad("codecs", "must name at least one of PCMU, PCMA, opus"));
            }
            for c in &mut a.codecs {
                let Some(known) = CODECS.iter().find(|k| k.eq_ignore_ascii_case(c)) else {
                    return Err(bad(
                        "codecs",
                        &format!("{c:?} is not one of PCMU, PCMA, opus"),
                    ));
                };
                *c = known.to_string();
            }
        }
        c.check_tls_ca(path)?;
        c.check_audio(path)?;
        Ok(c)
    }

    /// `[audio]`: volumes in percent, a known tone plan.
    fn check_audio(&self, path: &str) -> Result<(), ConfigError> {
        let bad = |field: &str, reason: &str| ConfigError::Parse {
            path: path.to_string(),
            message: format!("[audio] {field}: {reason}"),
        };
        let a = &self.audio;
        for (field, v) in [
            ("speaker_volume", a.speaker_volume),
            ("ringer_volume", a.ringer_volume),
        ] {
            if v > 100 {
                return Err(bad(field, &format!("{v} is not 0 to 100 (percent)")));
            }
        }
        if !a.tones.is_empty() && media::tones::Country::parse(&a.tones).is_none() {
            return Err(bad("tones", &format!("{:?} is not us, uk or eu", a.tones)));
        }
        Ok(())
    }

    /// `tls_ca` must be PEM certificates, and the first must match `tls_ca_sha256` when
    /// that is given: a CA that does not match its pin is refused, never trusted.
    fn check_tls_ca(&self, path: &str) -> Result<(), ConfigError> {
        let bad = |message: String| ConfigError::Parse {
            path: path.to_string(),
            message,
        };
        if self.tls_ca.trim().is_empty() {
            return if self.tls_ca_sha256.is_empty() {
                Ok(())
            } else {
                Err(bad("tls_ca_sha256: there is no tls_ca to check".into()))
            };
        }
        let prints = sip::transport::fingerprints(self.tls_ca.as_bytes())
            .ok()
            .filter(|p| !p.is_empty())
            .ok_or_else(|| bad("tls_ca: not a PEM certificate".into()))?;
        let pin = self.tls_ca_sha256.replace(':', "").to_ascii_lowercase();
        if !pin.is_empty() && prints[0] != pin {
            return Err(bad(format!(
                "tls_ca_sha256: the CA's fingerprint is {}, not the one pinned: it is not trusted",
                prints[0]
            )));
        }
        Ok(())
    }

    /// What a TLS server's certificate may chain to: the system's roots and `tls_ca`.
    pub fn tls_roots(&self) -> Vec<u8> {
        let mut roots = sip::transport::system_roots();
        roots.push(b'\n');
        roots.extend_from_slice(self.tls_ca.as_bytes());
        roots
    }
}

/// Writes a configuration document to `path`: every account's `password` is sealed
/// (`password_sealed`) under the key file beside it, created if missing, so no password is
/// kept in clear; the document must read as a configuration first, and the file is replaced
/// in one rename, so a failure leaves the old one whole.
pub fn write_sealed(path: &Path, mut doc: toml::Table) -> Result<(), String> {
    let key = stations::secret::key_path(path);
    let mut sealer = None;
    if let Some(accounts) = doc.get_mut("account").and_then(|a| a.as_array_mut()) {
        for a in accounts.iter_mut().filter_map(|a| a.as_table_mut()) {
            let Some(toml::Value::String(password)) = a.remove("password") else {
                continue;
            };
            if sealer.is_none() {
                let s = if key.exists() {
                    stations::secret::Sealer::load(&key)
                } else {
                    stations::secret::Sealer::create(&key)
                };
                sealer = Some(s.map_err(|e| e.to_string())?);
            }
            if let Some(s) = &sealer {
                a.insert(
                    "password_sealed".into(),
                    toml::Value::String(s.seal(password.as_bytes())),
                );
            }
        }
    }
    let out = toml::to_string(&doc).map_err(|e| e.to_string())?;
    Config::parse(&out, &path.display().to_string()).map_err(|e| e.to_string())?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".new");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, out).map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
}

/// The `Authorization` value of HTTP basic auth for the provisioner.
pub fn basic_auth(user: &str, password: &str) -> String {
    use base64::Engine as _;
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {token}")
}

/// Fetches the provisioner's softphone profile at `url` (HTTP basic auth with the station's
/// user ID and password) and keeps it at `path`, its password sealed. A profile that does not
/// read as a configuration is refused and nothing is written.
pub fn fetch(url: &str, auth: Option<(&str, &str)>, path: &Path) -> Result<(), String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(std::time::Duration::from_secs(10)))
        .build()
        .into();
    let mut request = agent.get(url);
    if let Some((user, password)) = auth {
        request = request.header("Authorization", basic_auth(user, password));
    }
    let text = match request.call() {
        Ok(r) => r
            .into_body()
            .read_to_string()
            .map_err(|e| format!("{url}: {e}"))?,
        Err(ureq::Error::StatusCode(401 | 403)) => {
            return Err(format!(
                "{url}: the provisioner refused these credentials: give the station's user ID and password with --auth"
            ));
        }
        Err(ureq::Error::StatusCode(s)) => return Err(format!("{url}: answered {s}")),
        Err(e) => return Err(format!("{url}: {e}")),
    };
    Config::parse(&text, url).map_err(|e| e.to_string())?;
    let mut doc: toml::Table = toml::from_str(&text).map_err(|e| format!("{url}: {e}"))?;
    doc.insert("provisioning_url".into(), toml::Value::String(url.into()));
    write_sealed(path, doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[[account]]
number = "201"
display_name = "Front Desk"
user_id = "u201"
password = "Pw-201-secret"
server = "127.0.0.1"
port = 5070

[features]
park = "71"
"#;

    #[test]
    fn a_provisioned_profile_reads_with_defaults() {
        let c = Config::parse(GOOD, "phone.toml").unwrap();
        let a = &c.accounts[0];
        assert_eq!(
            (a.port, a.transport.as_str(), a.registration_expiry),
            (5070, "udp", 600)
        );
        assert_eq!(
            (c.features.park.as_str(), c.features.conference.as_str()),
            ("71", "46")
        );
    }

    #[test]
    fn the_provisioners_profile_is_a_valid_configuration() {
        let text = include_str!("../../profiles/tests/expected/softphone/softphone-206.toml");
        let c = Config::parse(text, "softphone-206.toml").unwrap();
        assert_eq!(c.accounts[0].number, "206");
        assert_eq!(c.features.conference, "46");
        // Station 206 is srtp=mandatory: TLS, SRTP, and the office CA with its pin.
        let a = &c.accounts[0];
        assert_eq!(
            (a.transport.as_str(), a.srtp.as_str(), a.port),
            ("tls", "mandatory", 5061)
        );
        assert!(c.tls_ca.contains("BEGIN CERTIFICATE") && !c.tls_ca_sha256.is_empty());
        // The same CA with another pin is refused.
        let e = Config::parse(&text.replace("9a37", "0000"), "p.toml").unwrap_err();
        assert!(e.to_string().contains("tls_ca_sha256"), "{e}");
        let e = Config::parse(
            &GOOD.replace("[[account]]", "tls_ca = \"x\"\n[[account]]"),
            "p.toml",
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("tls_ca: not a PEM certificate"),
            "{e}"
        );
    }

    #[test]
    fn errors_name_the_file_the_line_and_the_field() {
        let e = Config::parse("[[account]]\nnumber = \"201\"\nserver = 5\n", "p.toml")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("p.toml: ") && e.contains("line 3"), "{e}");
        let e = Config::parse(&GOOD.replace("5070", "0"), "p.toml")
            .unwrap_err()
            .to_string();
        assert_eq!(e, "p.toml: account 1: port: must be 1 to 65535");
        let e = Config::parse(&GOOD.replace("park", "prak"), "p.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("prak"), "{e}");
        let e = Config::parse(
            &GOOD.replace("port = 5070", "codecs = [\"opus\", \"G729\"]"),
            "p.toml",
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            "p.toml: account 1: codecs: \"G729\" is not one of PCMU, PCMA, opus"
        );
        let e = Config::parse("", "p.toml").unwrap_err().to_string();
        assert!(
            e.contains("no [[account]]") || e.contains("missing field"),
            "{e}"
        );
    }
}
