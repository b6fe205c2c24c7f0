//! Calls through `pbx-lite serve` between two real phones (issue #5, must-show 1), once with
//! direct media and once anchored in the relay: two baresip instances register with digest auth as stations 201 and 202, 201
//! calls 202, each plays its own tone (440 Hz and 600 Hz) and records what it hears; each
//! recording must hold the other's tone; hanging up ends the call on both phones.
#![allow(clippy::unwrap_used)]

use e2e::baresip::Baresip;
use media::analysis::dominant_frequency;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PBX: &str = env!("CARGO_BIN_EXE_pbx-lite");

fn tone(path: &std::path::Path, freq: f32) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for n in 0..8000 * 30 {
        w.write_sample(
            ((2.0 * std::f32::consts::PI * freq * n as f32 / 8000.0).sin() * 12000.0) as i16,
        )
        .unwrap();
    }
    w.finalize().unwrap();
}

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !ok() {
        assert!(t0.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn recorded(b: &Baresip) -> Vec<i16> {
    b.decoded_files()
        .first()
        .and_then(|f| hound::WavReader::open(f).ok())
        .map(|r| r.into_samples().filter_map(Result::ok).collect())
        .unwrap_or_default()
}

#[test]
fn two_baresips_call_through_the_pbx_with_direct_media() {
    call_between_two_baresips("never");
}

#[test]
fn two_baresips_call_through_the_pbx_anchored_in_the_relay() {
    call_between_two_baresips("always");
}

/// `relay`: the `media.relay` setting for the call.
fn call_between_two_baresips(relay: &str) {
    if std::env::var("SIP_SKIP_PEERS").is_ok_and(|v| v == "1") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("office.db");
    let cli = |args: &[&str]| {
        let o = Command::new(PBX)
            .arg("--db")
            .arg(&db)
            .args(args)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        o
    };
    for n in ["201", "202"] {
        cli(&[
            "station",
            "add",
            "--number",
            n,
            "--user-id",
            &format!("u{n}"),
            "--password",
            &format!("Pw-{n}-secret"),
        ]);
    }
    cli(&["settings", "set", "media.relay", relay]);
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let rtp_lo = 30000 + (port % 1000) * 20;
    let rtp_ports = format!("{rtp_lo}-{}", rtp_lo + 19);
    let _pbx = Kill(
        Command::new(PBX)
            .arg("--db")
            .arg(&db)
            .args([
                "serve",
                "--sip",
                &format!("127.0.0.1:{port}"),
                "--no-provisioning",
                "--rtp-ports",
                &rtp_ports,
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for("pbx-lite", Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let phone = |n: &str, freq: f32| {
        let wav = dir.path().join(format!("tone{n}.wav"));
        tone(&wav, freq);
        let n = n.to_string();
        Baresip::start_with(&wav, move |_| {
            format!("<sip:{n}@127.0.0.1:{port}>;auth_user=u{n};auth_pass=Pw-{n}-secret;answermode=auto;audio_codecs=PCMU;regint=600")
        })
        .unwrap()
    };
    let (a, b) = (phone("201", 440.0), phone("202", 600.0));
    wait_for("both registered", Duration::from_secs(10), || {
        let v: serde_json::Value =
            serde_json::from_slice(&cli(&["status", "--json"]).stdout).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .all(|r| r["registered"] == true)
    });
    a.command("/dial 202\n").unwrap();
    wait_for("the call", Duration::from_secs(10), || {
        a.log().contains("Call established") && b.log().contains("Call established")
    });
    std::thread::sleep(Duration::from_secs(3));
    a.command("/hangup\n").unwrap();
    wait_for("both back to idle", Duration::from_secs(10), || {
        a.log().contains("terminated") && b.log().contains("terminated")
    });
    wait_for("recordings", Duration::from_secs(5), || {
        recorded(&a).len() > 16000 && recorded(&b).len() > 16000
    });
    let (heard_a, heard_b) = (recorded(&a), recorded(&b));
    let fa = dominant_frequency(&heard_a[4000..heard_a.len().min(20000)], 8000);
    let fb = dominant_frequency(&heard_b[4000..heard_b.len().min(20000)], 8000);
    eprintln!("{relay}: 201 heard {fa:.1} Hz, 202 heard {fb:.1} Hz");
    // Where each phone's media came from: the other phone, or a relay port of the PBX.
    for phone in [&a, &b] {
        let log = phone.log();
        let from: u16 = log
            .split("receiving from 127.0.0.1:")
            .nth(1)
            .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no media source in\n{log}"));
        let relayed = (rtp_lo..rtp_lo + 20).contains(&from);
        assert_eq!(
            relayed,
            relay == "always",
            "{relay}: media from port {from}"
        );
    }
    assert!((fa - 600.0).abs() <= 5.0, "201 heard {fa} Hz\n{}", a.log());
    assert!((fb - 440.0).abs() <= 5.0, "202 heard {fb} Hz\n{}", b.log());
}
