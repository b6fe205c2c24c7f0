//! Helpers shared by the media tests: real speech from espeak-ng, hex decoding, and the
//! switch that skips tests needing peer tools (`SIP_SKIP_PEERS=1`).
#![allow(dead_code, clippy::unwrap_used)]

use std::process::Command;

pub(crate) fn skip_peers() -> bool {
    std::env::var("SIP_SKIP_PEERS").is_ok_and(|v| v == "1")
}

/// `text` spoken by espeak-ng (140 words a minute), as mono 16-bit at `rate` Hz (sox).
pub(crate) fn speech(rate: u32, text: &str) -> Vec<i16> {
    let dir = tempfile::tempdir().unwrap();
    let (raw, wav) = (dir.path().join("raw.wav"), dir.path().join("speech.wav"));
    assert!(
        Command::new("espeak-ng")
            .args(["-s", "140", "-w"])
            .arg(&raw)
            .arg(text)
            .status()
            .unwrap()
            .success()
    );
    assert!(
        Command::new("sox")
            .arg(&raw)
            .args(["-r", &rate.to_string(), "-c", "1", "-b", "16"])
            .arg(&wav)
            .status()
            .unwrap()
            .success()
    );
    hound::WavReader::open(&wav)
        .unwrap()
        .into_samples()
        .map(Result::unwrap)
        .collect()
}

pub(crate) fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}
