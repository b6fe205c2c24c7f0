//! # profiles — phone configuration templates as data
//!
//! Layer: presentation of the station database to phones. Each model family is a folder
//! (`cisco-79x0/`, `audiocodes-4xxhd/`, `xlite/`, `softphone/`) with a `profile.toml`
//! manifest naming the files phones request and a minijinja template for each. The shipped
//! folders are compiled in; a user profile directory with the same layout overrides any
//! file without a rebuild (the way Wazo provd's `var/templates` overrides its plugins).
//!
//! ## Brief overview
//! - [`Profiles`]: loads manifests and templates; [`Profiles::resolve`] maps a requested
//!   file name (case-insensitively, MAC in any case) to a [`Target`]; [`Profiles::render`]
//!   renders it from a [`Input`] (stations, settings, server, date).
//! - [`plan`]: the dial plan from the number plan, and daylight-saving dates.
//! - Filters for templates: `cnf(n)` (Cisco value, cut to n characters), `xml`, `toml`.

mod embedded;
pub mod plan;

use minijinja::{Environment, Value};
use serde::{Deserialize, Serialize};
use stations::{Mac, Station};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Why a profile could not be loaded or rendered.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("{path}: {reason}")]
    Manifest { path: String, reason: String },
    #[error("template {name}: {reason}")]
    Template { name: String, reason: String },
}

/// Which files a family serves.
#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    pub models: Vec<String>,
    pub file: Vec<FileSpec>,
}

/// One file of a family.
#[derive(Debug, Clone, Deserialize)]
pub struct FileSpec {
    /// Requested name; `{MAC}`/`{mac}` stand for a MAC, `{number}` for a station number.
    pub name: String,
    pub template: String,
    pub scope: Scope,
    /// `firmware`: only exists when a firmware image is configured.
    #[serde(default)]
    pub requires: Option<String>,
    #[serde(default)]
    pub line_ending: Option<String>,
    /// Holds credentials for a user: served over HTTP with that user's own credentials only.
    #[serde(default)]
    pub http_only: bool,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Global,
    Phone,
    Station,
}

/// What a requested name asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    Global,
    Mac(Mac),
    Number(String),
}

/// A resolved request: the family, its file, and which phone or station.
#[derive(Debug, Clone)]
pub struct Target {
    pub family: String,
    pub spec: FileSpec,
    pub key: Key,
}

/// Where phones reach the PBX and the provisioning web server.
#[derive(Debug, Clone, Serialize)]
pub struct Server {
    pub host: String,
    pub port: u16,
    /// Base URL of the HTTP server (`http://host:port`).
    pub http: String,
    /// The PBX's SIP over TLS port (`pbx.tls_port`).
    pub tls_port: u16,
    /// The office CA (PEM) a phone on TLS trusts, and its SHA-256 (hex) to pin it by; empty
    /// before the PBX first made it.
    pub ca: String,
    pub ca_sha256: String,
}

/// Everything a render needs.
pub struct Input<'a> {
    /// Every setting with its value (defaults included).
    pub settings: &'a BTreeMap<String, String>,
    pub server: &'a Server,
    /// The stations of the phone (by line key) or the one station; empty for global files.
    pub stations: &'a [Station],
    /// The distinct first digits of the station numbers: what the dial plan is made of.
    pub number_starts: &'a [String],
    /// The year rendered for (daylight-saving dates).
    pub year: i32,
}

/// The loaded profiles.
pub struct Profiles {
    families: Vec<(String, Manifest)>,
    env: Environment<'static>,
}

fn embedded(path: &str) -> Option<&'static str> {
    embedded::FILES
        .iter()
        .find(|(p, _)| *p == path)
        .map(|(_, c)| *c)
}

fn read(overrides: Option<&Path>, path: &str) -> Option<String> {
    if let Some(dir) = overrides
        && let Ok(text) = std::fs::read_to_string(dir.join(path))
    {
        return Some(text);
    }
    embedded(path).map(str::to_string)
}

/// Cuts a Cisco value to `n` characters.
fn cnf(value: String, n: usize) -> String {
    value.chars().take(n).collect()
}

fn xml(value: String) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

fn toml_str(value: String) -> String {
    toml::Value::String(value).to_string()
}

impl Profiles {
    /// The shipped profiles, with files in `overrides` (same layout) taking precedence.
    pub fn load(overrides: Option<&Path>) -> Result<Self, ProfileError> {
        let mut families = Vec::new();
        for family in embedded::FAMILIES {
            let path = format!("{family}/profile.toml");
            let text = read(overrides, &path).ok_or_else(|| ProfileError::Manifest {
                path: path.clone(),
                reason: "missing".into(),
            })?;
            let manifest: Manifest = toml::from_str(&text).map_err(|e| ProfileError::Manifest {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            families.push((family.to_string(), manifest));
        }
        let mut env = Environment::new();
        env.set_keep_trailing_newline(true);
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Chainable);
        env.add_filter("cnf", cnf);
        env.add_filter("xml", xml);
        env.add_filter("toml", toml_str);
        let dir: Option<PathBuf> = overrides.map(Path::to_path_buf);
        env.set_loader(move |name| Ok(read(dir.as_deref(), name)));
        let profiles = Profiles { families, env };
        for (family, m) in &profiles.families {
            for f in &m.file {
                let name = format!("{family}/{}", f.template);
                profiles
                    .env
                    .get_template(&name)
                    .map_err(|e| ProfileError::Template {
                        name: name.clone(),
                        reason: e.to_string(),
                    })?;
            }
        }
        Ok(profiles)
    }

    /// The families and their manifests.
    pub fn families(&self) -> &[(String, Manifest)] {
        &self.families
    }

    /// The family folder of a model name.
    pub fn family_of(&self, model: &str) -> Option<&str> {
        self.families
            .iter()
            .find(|(_, m)| m.models.iter().any(|x| x == model))
            .map(|(f, _)| f.as_str())
    }

    /// Maps a requested name to what it asks for; case-insensitive, `/` prefix ignored.
    pub fn resolve(&self, requested: &str) -> Option<Target> {
        let name = requested.trim_start_matches('/');
        for (family, m) in &self.families {
            for spec in &m.file {
                if let Some(key) = match_name(&spec.name, name) {
                    return Some(Target {
                        family: family.clone(),
                        spec: spec.clone(),
                        key,
                    });
                }
            }
        }
        None
    }

    /// The name a file of `spec` has for a station (or its phone).
    pub fn file_name(spec: &FileSpec, station: Option<&Station>) -> String {
        let mac = station.and_then(|s| s.mac);
        spec.name
            .replace("{MAC}", &mac.map(|m| m.upper()).unwrap_or_default())
            .replace("{mac}", &mac.map(|m| m.lower()).unwrap_or_default())
            .replace("{number}", station.map_or("", |s| &s.number))
    }

    /// Every file name these stations have: the global files, then one per phone (MAC) or
    /// station, family by family.
    pub fn names(&self, stations: &[Station]) -> Vec<String> {
        let mut out = Vec::new();
        for (family, manifest) in &self.families {
            let members: Vec<&Station> = stations
                .iter()
                .filter(|s| self.family_of(s.model.name()) == Some(family.as_str()))
                .collect();
            for spec in &manifest.file {
                let mut names: Vec<String> = match spec.scope {
                    Scope::Global => vec![Self::file_name(spec, None)],
                    _ => members
                        .iter()
                        .map(|s| Self::file_name(spec, Some(s)))
                        .collect(),
                };
                names.sort();
                names.dedup();
                out.extend(names);
            }
        }
        out
    }

    /// Renders a target. `None` when the file does not exist in this configuration (a
    /// `requires` setting is empty).
    pub fn render(
        &self,
        target: &Target,
        input: &Input<'_>,
    ) -> Result<Option<Vec<u8>>, ProfileError> {
        let firmware = firmware(input.settings);
        if target.spec.requires.as_deref() == Some("firmware") && firmware.is_empty() {
            return Ok(None);
        }
        let ctx = context(input, &firmware);
        let name = format!("{}/{}", target.family, target.spec.template);
        let tmpl = self
            .env
            .get_template(&name)
            .map_err(|e| ProfileError::Template {
                name: name.clone(),
                reason: e.to_string(),
            })?;
        let mut text = tmpl.render(ctx).map_err(|e| ProfileError::Template {
            name: name.clone(),
            reason: e.to_string(),
        })?;
        if target.spec.line_ending.as_deref() == Some("crlf") {
            text = text.replace("\r\n", "\n").replace('\n', "\r\n");
        }
        Ok(Some(text.into_bytes()))
    }
}

/// The Cisco firmware image: the 7960's if set, else the 7940's.
fn firmware(settings: &BTreeMap<String, String>) -> String {
    ["firmware.cisco-7960", "firmware.cisco-7940"]
        .iter()
        .filter_map(|k| settings.get(*k))
        .find(|v| !v.is_empty())
        .cloned()
        .unwrap_or_default()
}

/// A station as templates see it.
fn station_value(s: &Station) -> BTreeMap<&'static str, String> {
    stations::FIELDS.iter().map(|f| (*f, s.get(f))).collect()
}

fn context(input: &Input<'_>, firmware: &str) -> Value {
    let zone = input.settings.get("time.zone").cloned().unwrap_or_default();
    let offset = stations::settings::ZONES
        .iter()
        .find(|(z, _)| *z == zone)
        .map_or(0, |(_, o)| *o);
    let rule = input.settings.get("time.dst").cloned().unwrap_or_default();
    let rules = plan::dial_plan(input.settings, input.number_starts);
    let first = input.stations.first();
    let max_lines = first.map_or(1, |s| s.model.max_lines()) as usize;
    let mut lines: Vec<Option<BTreeMap<&str, String>>> = vec![None; max_lines];
    for s in input.stations {
        if let Some(slot) = lines.get_mut(usize::from(s.line).saturating_sub(1)) {
            *slot = Some(station_value(s));
        }
    }
    let stations: Vec<_> = input.stations.iter().map(station_value).collect();
    let phone = first.map(|s| {
        BTreeMap::from([
            (
                "mac_upper",
                Value::from(s.mac.map(|m| m.upper()).unwrap_or_default()),
            ),
            (
                "mac_lower",
                Value::from(s.mac.map(|m| m.lower()).unwrap_or_default()),
            ),
            ("model", Value::from(s.model.name())),
            ("short", Value::from(s.model.short())),
            ("max_lines", Value::from(max_lines)),
        ])
    });
    minijinja::context! {
        settings => input.settings,
        server => Value::from_serialize(input.server),
        firmware => firmware,
        stations => stations,
        station => stations.first().cloned(),
        lines => lines,
        phone => phone,
        dialplan => rules,
        digit_map => plan::digit_map(&rules),
        dst => plan::dst(&rule, input.year, offset),
        gmt_offset => plan::gmt_offset(offset),
    }
}

/// Matches a requested name against a pattern such as `SIP{MAC}.cnf`.
fn match_name(pattern: &str, name: &str) -> Option<Key> {
    let Some(open) = pattern.find('{') else {
        return name.eq_ignore_ascii_case(pattern).then_some(Key::Global);
    };
    let close = pattern.find('}')?;
    let (prefix, var, suffix) = (
        &pattern[..open],
        &pattern[open + 1..close],
        &pattern[close + 1..],
    );
    if name.len() < prefix.len() + suffix.len() {
        return None;
    }
    let (head, rest) = name.split_at(prefix.len());
    let (middle, tail) = rest.split_at(rest.len() - suffix.len());
    if !head.eq_ignore_ascii_case(prefix) || !tail.eq_ignore_ascii_case(suffix) {
        return None;
    }
    match var {
        "MAC" | "mac" if middle.len() == 12 => middle.parse().ok().map(Key::Mac),
        "number"
            if !middle.is_empty()
                && middle.len() <= 16
                && middle.bytes().all(|b| b.is_ascii_digit()) =>
        {
            Some(Key::Number(middle.to_string()))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_case_insensitively() {
        let p = Profiles::load(None).unwrap();
        let t = p.resolve("sip001122aabbcc.CNF").unwrap();
        assert_eq!(t.family, "cisco-79x0");
        assert_eq!(t.key, Key::Mac("001122aabbcc".parse().unwrap()));
        assert_eq!(p.resolve("/SIPDefault.cnf").unwrap().key, Key::Global);
        assert_eq!(
            p.resolve("001122AABBCC.cfg").unwrap().family,
            "audiocodes-4xxhd"
        );
        assert_eq!(
            p.resolve("softphone-201.toml").unwrap().key,
            Key::Number("201".into())
        );
        for bad in [
            "SIP001122aabbc.cnf",
            "SIPxx1122aabbcc.cnf",
            "../SIPDefault.cnf",
            "nothing.txt",
            "softphone-.toml",
        ] {
            assert!(p.resolve(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn overrides_replace_shipped_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("cisco-79x0")).unwrap();
        std::fs::write(
            dir.path().join("cisco-79x0/RINGLIST.DAT.j2"),
            "Office\tbell.pcm\n",
        )
        .unwrap();
        let p = Profiles::load(Some(dir.path())).unwrap();
        let settings = BTreeMap::new();
        let server = Server {
            host: "h".into(),
            port: 5060,
            http: "http://h".into(),
            tls_port: 5061,
            ca: String::new(),
            ca_sha256: String::new(),
        };
        let input = Input {
            settings: &settings,
            server: &server,
            stations: &[],
            number_starts: &[],
            year: 2026,
        };
        let out = p
            .render(&p.resolve("RINGLIST.DAT").unwrap(), &input)
            .unwrap()
            .unwrap();
        assert_eq!(out, b"Office\tbell.pcm\r\n");
    }
}
