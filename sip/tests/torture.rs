//! Parser verdicts on our own torture messages (`tests/messages/`, see its README), which
//! mirror RFC 4475 §3.1.1 (valid) and §3.1.2 (invalid); and, when `../shared` is beside the
//! checkout, on the RFC's own 32 messages with the verdicts its SOURCE.md lists.
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns

use sip::Message;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn dir(sub: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/messages")
        .join(sub)
}

fn sip_files(d: &Path) -> Vec<PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sip"))
        .collect();
    v.sort();
    v
}

#[test]
fn own_valid_messages_parse_and_round_trip() {
    let files = sip_files(&dir("valid"));
    assert_eq!(files.len(), 13);
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        let msg = Message::parse_datagram(&bytes)
            .unwrap_or_else(|e| panic!("{} refused: {e}", f.display()));
        let printed = msg.to_bytes();
        let again = Message::parse_datagram(&printed)
            .unwrap_or_else(|e| panic!("{} reprint refused: {e}", f.display()));
        assert_eq!(again.to_bytes(), printed, "{}", f.display());
        assert_eq!(again.body(), msg.body());
    }
}

#[test]
fn own_invalid_messages_are_refused_for_the_right_reason() {
    let expect: BTreeMap<String, String> = std::fs::read_to_string(dir("invalid").join("EXPECT"))
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    let files = sip_files(&dir("invalid"));
    assert_eq!(files.len(), 19);
    assert_eq!(expect.len(), 19);
    for f in files {
        let name = f.file_stem().unwrap().to_str().unwrap();
        let err = Message::parse_datagram(&std::fs::read(&f).unwrap())
            .err()
            .unwrap_or_else(|| panic!("{name} was accepted"));
        let want = &expect[name];
        assert!(
            err.to_string().contains(want),
            "{name}: {err} lacks {want:?}"
        );
    }
}

/// Reads the verdict lists of `shared/reference/rfc4475/SOURCE.md` (§3.1.1 and §3.1.2).
fn rfc4475_verdicts(source: &str) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    let mut valid = None;
    for line in source.lines() {
        if line.starts_with("## 3.1.1") {
            valid = Some(true);
        } else if line.starts_with("## 3.1.2") {
            valid = Some(false);
        } else if line.starts_with("## ") {
            valid = None;
        } else if let Some(v) = valid {
            for item in line.split("),") {
                let name = item.trim().split(' ').next().unwrap_or_default();
                if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric()) {
                    out.push((name.to_string(), v));
                }
            }
        }
    }
    out
}

#[test]
fn rfc4475_messages_get_the_listed_verdicts() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/reference/rfc4475");
    let Ok(source) = std::fs::read_to_string(root.join("SOURCE.md")) else {
        eprintln!("shared/reference/rfc4475 not present: skipped");
        return;
    };
    let verdicts = rfc4475_verdicts(&source);
    assert_eq!(verdicts.iter().filter(|(_, v)| *v).count(), 13);
    assert_eq!(verdicts.iter().filter(|(_, v)| !*v).count(), 19);
    for (name, want_valid) in verdicts {
        let bytes = std::fs::read(root.join(format!("{name}.dat"))).unwrap();
        let got = Message::parse_datagram(&bytes);
        assert_eq!(got.is_ok(), want_valid, "{name}: {:?}", got.err());
    }
}
