//! The softphone against a third-party server (issue #7, must-show 2): Kamailio (Debian,
//! a registrar and authenticating proxy over SQLite, the configuration
//! `pbx-lite/bench/kamailio.cfg`) with baresip as the far end. The softphone registers with
//! digest auth and calls baresip through it with audio both ways; hold and resume work
//! through it, a blind transfer sends baresip on to another softphone, and an attended one
//! (REFER with Replaces, all three parties softphones: baresip 1.0 cannot send an INVITE
//! with Replaces) leaves the two others talking and the transferor idle.
#![allow(clippy::unwrap_used)]

mod support;

use e2e::baresip::Baresip;
use media::analysis::dominant_frequency;
use std::io::Write;
use std::path::Path;

use std::time::Duration;
use support::{Kill, expect, free_port, tone};

/// Kamailio on 127.0.0.1:`port` with subscribers uNNN / Pw-NNN-secret.
fn kamailio(dir: &Path, port: u16, numbers: &[&str]) -> Kill {
    let template = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../pbx-lite/bench/kamailio.cfg"),
    )
    .unwrap();
    let users: Vec<(String, String)> = numbers
        .iter()
        .map(|n| (format!("u{n}"), format!("Pw-{n}-secret")))
        .collect();
    let users: Vec<(&str, &str)> = users
        .iter()
        .map(|(u, p)| (u.as_str(), p.as_str()))
        .collect();
    e2e::kamailio::start(dir, port, &template, &users)
}

fn recording(dir: &Path) -> Vec<i16> {
    let t0 = std::time::Instant::now();
    loop {
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
        let s: Vec<i16> = files
            .last()
            .and_then(|f| hound::WavReader::open(f).ok())
            .map(|r| r.into_samples().filter_map(Result::ok).collect())
            .unwrap_or_default();
        if s.len() > 12000 || t0.elapsed() > Duration::from_secs(5) {
            return s;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn freq(s: &[i16]) -> f32 {
    dominant_frequency(&s[s.len().min(4000)..s.len().min(16000)], 8000)
}

#[test]
fn through_kamailio_calls_hold_and_transfers() {
    if std::env::var("SIP_SKIP_PEERS").is_ok_and(|v| v == "1") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = free_port();
    let _k = kamailio(d, port, &["201", "202", "203", "204"]);
    let mut phones = Vec::new();
    for (n, f) in [("201", 440.0), ("203", 1000.0), ("204", 800.0)] {
        let wav = d.join(format!("tone{n}.wav"));
        tone(&wav, f);
        let rec = d.join(format!("heard{n}"));
        std::fs::create_dir_all(&rec).unwrap();
        let config = format!(
            "[[account]]\nnumber = \"{n}\"\nuser_id = \"u{n}\"\npassword = \"Pw-{n}-secret\"\nserver = \"127.0.0.1\"\nport = {port}\n\n[audio]\nsource = \"{}\"\nrecord_dir = \"{}\"\n",
            wav.display(),
            rec.display()
        );
        let (p, rx, stdin) = support::softphone(d, n, &config);
        let r = expect(&rx, "registered");
        assert_eq!(r["line"], 1, "{r}");
        phones.push((p, rx, stdin, rec));
    }
    let b_wav = d.join("tone202.wav");
    tone(&b_wav, 600.0);
    let b = Baresip::start_with(&b_wav, move |_| {
        format!("<sip:202@127.0.0.1:{port}>;auth_user=u202;auth_pass=Pw-202-secret;answermode=auto;audio_codecs=PCMU;regint=600")
    })
    .unwrap();
    let t0 = std::time::Instant::now();
    while !b.log().contains("200 OK") {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "baresip did not register:\n{}",
            b.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let [
        (_a, a_rx, a_in, a_rec),
        (_c, c_rx, c_in, c_rec),
        (_t, t_rx, t_in, t_rec),
    ] = &mut phones[..]
    else {
        unreachable!()
    };

    // A call with audio both ways, held and resumed.
    writeln!(a_in, "dial 202").unwrap();
    expect(a_rx, "established");
    support::wait_until("2 s of 202 at 201", || {
        support::newest_samples(a_rec).len() > 16000
    });
    writeln!(a_in, "hold").unwrap();
    expect(a_rx, "held");
    writeln!(a_in, "resume").unwrap();
    expect(a_rx, "resumed");
    writeln!(a_in, "hangup").unwrap();
    expect(a_rx, "ended");
    let f = freq(&recording(a_rec));
    assert!((f - 600.0).abs() < 5.0, "201 heard {f} Hz");

    // Blind transfer: 202 goes to 203.
    writeln!(a_in, "dial 202").unwrap();
    expect(a_rx, "established");
    writeln!(a_in, "transfer 203").unwrap();
    expect(c_rx, "incoming");
    writeln!(c_in, "answer").unwrap();
    expect(c_rx, "established");
    expect(a_rx, "transferred");
    support::wait_until("2 s of 202 at 203", || {
        support::newest_samples(c_rec).len() > 16000
    });
    writeln!(c_in, "hangup").unwrap();
    expect(c_rx, "ended");
    let f = freq(&recording(c_rec));
    assert!(
        (f - 600.0).abs() < 5.0,
        "203 heard {f} Hz after the blind transfer"
    );

    // Attended, every party a softphone: 201 talks to 203, holds it, calls 204, and joins
    // them. 203 gets the REFER and calls 204 with Replaces; 204's call with 201 is replaced.
    writeln!(a_in, "dial 203").unwrap();
    expect(c_rx, "incoming");
    writeln!(c_in, "answer").unwrap();
    let first = expect(a_rx, "established")["call"].as_u64().unwrap();
    writeln!(a_in, "hold").unwrap();
    expect(a_rx, "held");
    writeln!(a_in, "dial 204").unwrap();
    expect(t_rx, "incoming");
    writeln!(t_in, "answer").unwrap();
    let second = expect(a_rx, "established")["call"].as_u64().unwrap();
    writeln!(a_in, "transfer call {second} {first}").unwrap();
    expect(c_rx, "transfer_requested");
    let replaced = expect(t_rx, "replaced");
    assert!(replaced["by"].as_u64().is_some(), "{replaced}");
    expect(c_rx, "established");
    expect(a_rx, "transferred");
    // 201 becomes idle; 203 and 204 talk.
    support::wait_until("201 to be idle", || {
        writeln!(a_in, "status").unwrap();
        expect(a_rx, "status")["calls"]
            .as_array()
            .is_some_and(Vec::is_empty)
    });
    support::wait_until("2 s of 203 at 204", || {
        support::newest_samples(t_rec).len() > 16000
    });
    writeln!(c_in, "hangup").unwrap();
    expect(t_rx, "ended");
    let f = freq(&recording(c_rec));
    assert!(
        (f - 800.0).abs() < 5.0,
        "203 heard {f} Hz after the attended transfer"
    );
    let f = freq(&recording(t_rec));
    assert!(
        (f - 1000.0).abs() < 5.0,
        "204 heard {f} Hz after the attended transfer"
    );
}
