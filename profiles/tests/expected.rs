//! Every file of every profile, rendered for a fixed office, equals the checked-in file under
//! `tests/expected/<family>/<name>`. After an intended change to a template, regenerate with
//! `UPDATE_EXPECTED=1 cargo test -p profiles --test expected` and review the diff.
//!
//! Generated Cisco `.cnf` files are also read with the syntax rules of FORMATS.md §1.2 (one
//! `name: value` per line, `#` comment lines, values quoted or bare tokens, `;` comments), and
//! every parameter name must be one the phone knows (`cisco-79x0/known-parameters.txt`); the
//! length limits of §1.3 are checked too.
#![allow(clippy::unwrap_used)]

use profiles::{Input, Key, Profiles, Server};
use stations::Station;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn office() -> (Vec<Station>, BTreeMap<String, String>) {
    let rows = [
        (
            "201",
            "u201",
            "Front Desk",
            "00:11:22:aa:bb:01",
            "cisco-7960",
            "1",
        ),
        (
            "202",
            "u202",
            "Back Office Manager",
            "00:11:22:aa:bb:01",
            "cisco-7960",
            "2",
        ),
        (
            "203",
            "u203",
            "Warehouse",
            "00:11:22:aa:bb:03",
            "cisco-7940",
            "1",
        ),
        (
            "204",
            "u204",
            "Reception",
            "00:90:8f:00:00:04",
            "audiocodes-420hd",
            "1",
        ),
        ("205", "u205", "Sales & Support", "", "xlite", "1"),
        ("206", "u206", "Home Office", "", "softphone", "1"),
    ];
    // TLS and SRTP for the two that can take them from a profile.
    let secure = ["205", "206"];
    let stations = rows
        .iter()
        .map(|(n, u, name, mac, model, line)| {
            let mut s = Station::new(n, u, &format!("Pw-{n}-secret"), 8).unwrap();
            for (f, v) in [
                ("name", *name),
                ("mac", *mac),
                ("model", *model),
                ("line", *line),
            ] {
                s.set(f, v).unwrap();
            }
            if secure.contains(n) {
                s.set("srtp", "mandatory").unwrap();
            }
            s.check(8).unwrap();
            s
        })
        .collect();
    let mut settings: BTreeMap<String, String> = stations::settings::SETTINGS
        .iter()
        .map(|(k, d, _, _)| (k.to_string(), d.to_string()))
        .collect();
    for (k, v) in [
        ("time.zone", "CET"),
        ("time.dst", "eu"),
        ("firmware.cisco-7960", "P0S3-8-12-00"),
        ("provisioning.http_port", "8080"),
    ] {
        settings.insert(k.into(), v.into());
    }
    (stations, settings)
}

/// (family, file name, bytes) of every file the fixed office has.
fn render_all() -> Vec<(String, String, Vec<u8>)> {
    let p = Profiles::load(None).unwrap();
    let (stations, settings) = office();
    let numbers: Vec<String> = stations.iter().map(|s| s.number.clone()).collect();
    let server = Server {
        host: "192.0.2.10".into(),
        port: 5060,
        http: "http://192.0.2.10:8080".into(),
        tls_port: 5061,
        // A real (self-signed, key thrown away) CA, so the softphone's profile parses.
        ca: include_str!("fixtures/office-ca.pem").into(),
        ca_sha256: "9a37553f5a409ac13c55e1be13fc35acdccd907f3e55fee34b92ec0f63107161".into(),
    };
    let mut out = Vec::new();
    for name in p.names(&stations) {
        let target = p.resolve(&name).unwrap();
        let chosen: Vec<Station> = match &target.key {
            Key::Global => vec![],
            Key::Mac(m) => stations
                .iter()
                .filter(|s| {
                    s.mac == Some(*m) && p.family_of(s.model.name()) == Some(target.family.as_str())
                })
                .cloned()
                .collect(),
            Key::Number(n) => stations
                .iter()
                .filter(|s| s.number == *n)
                .cloned()
                .collect(),
        };
        let input = Input {
            settings: &settings,
            server: &server,
            stations: &chosen,
            number_starts: &numbers,
            year: 2026,
        };
        if let Some(bytes) = p.render(&target, &input).unwrap() {
            out.push((target.family.clone(), name, bytes));
        }
    }
    out
}

fn expected_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/expected")
}

#[test]
fn every_profile_output_equals_the_checked_in_file() {
    let update = std::env::var("UPDATE_EXPECTED").is_ok_and(|v| v == "1");
    let files = render_all();
    assert!(files.len() >= 12, "{} files", files.len());
    let mut mismatched = Vec::new();
    for (family, name, bytes) in &files {
        let path = expected_dir().join(family).join(name);
        if update {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, bytes).unwrap();
        } else if std::fs::read(&path).ok().as_deref() != Some(bytes.as_slice()) {
            mismatched.push(path.display().to_string());
        }
    }
    assert!(
        mismatched.is_empty(),
        "differ from expected (UPDATE_EXPECTED=1 to accept): {mismatched:#?}"
    );
}

/// Checks one Cisco .cnf file; returns the parameter names it sets.
fn cisco_cnf(name: &str, text: &str) -> Vec<String> {
    let mut names = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let at = format!("{name}:{}", i + 1);
        assert!(!line.contains('\r'), "{at}: stray CR");
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, rest) = line
            .split_once(':')
            .unwrap_or_else(|| panic!("{at}: no ':' in {line:?}"));
        let key = key.trim();
        assert!(
            !key.is_empty()
                && key
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
            "{at}: bad name {key:?}"
        );
        let value = rest.split(';').next().unwrap().trim();
        if let Some(inner) = value.strip_prefix('"') {
            let inner = inner
                .strip_suffix('"')
                .unwrap_or_else(|| panic!("{at}: unbalanced quotes in {value:?}"));
            assert!(!inner.contains('"'), "{at}: quote inside a value");
            let limit = match key {
                "phone_label" => 11,
                "phone_prompt" => 15,
                "phone_password" => 31,
                k if k.ends_with("_shortname") => 12,
                _ => 127,
            };
            assert!(
                inner.chars().count() <= limit,
                "{at}: {key} longer than {limit}"
            );
        } else {
            assert!(
                !value.is_empty() && !value.contains(char::is_whitespace),
                "{at}: bare value {value:?} must be one token"
            );
        }
        names.push(key.to_string());
    }
    names
}

#[test]
fn cisco_files_follow_the_syntax_and_use_known_parameter_names() {
    let known: BTreeSet<String> = include_str!("../cisco-79x0/known-parameters.txt")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(str::to_string)
        .collect();
    let mut checked = 0;
    for (family, name, bytes) in render_all() {
        if family != "cisco-79x0" || !name.ends_with(".cnf") {
            continue;
        }
        let text = String::from_utf8(bytes).unwrap();
        let names = cisco_cnf(&name, &text);
        assert!(!names.is_empty());
        for n in &names {
            assert!(
                known.contains(n),
                "{name}: {n} is not a parameter a 79x0 knows"
            );
        }
        let unique: BTreeSet<&String> = names.iter().collect();
        assert_eq!(
            unique.len(),
            names.len(),
            "{name}: a parameter is set twice"
        );
        if name == "SIPDefault.cnf" {
            assert!(
                !text.contains("password") && !text.contains("Pw-"),
                "no credentials in the shared file"
            );
        }
        checked += 1;
    }
    assert_eq!(checked, 3, "SIPDefault.cnf and two SIP<MAC>.cnf");
    // The checker itself refuses what FORMATS.md calls broken.
    assert!(std::panic::catch_unwind(|| cisco_cnf("bad", "proxy1_port=5060\n")).is_err());
    assert!(std::panic::catch_unwind(|| cisco_cnf("bad", "phone_label: \"unbalanced\n")).is_err());
}

#[test]
fn xml_outputs_are_well_formed() {
    let mut checked = 0;
    for (_, name, bytes) in render_all() {
        if !(name.ends_with(".xml") || name.ends_with(".cps")) {
            continue;
        }
        let mut reader = quick_xml::Reader::from_reader(bytes.as_slice());
        reader.config_mut().check_end_names = true;
        let mut buf = Vec::new();
        let mut depth = 0i32;
        loop {
            match reader.read_event_into(&mut buf) {
                Ok(quick_xml::events::Event::Eof) => break,
                Ok(quick_xml::events::Event::Start(_)) => depth += 1,
                Ok(quick_xml::events::Event::End(_)) => depth -= 1,
                Ok(_) => {}
                Err(e) => panic!("{name}: {e}"),
            }
            buf.clear();
        }
        assert_eq!(depth, 0, "{name}: unbalanced");
        checked += 1;
    }
    assert_eq!(
        checked, 4,
        "dialplan.xml, syncinfo.xml, XMLDefault.cnf.xml, settings-205.cps"
    );
}
