//! Softphones on TLS with SRTP mandatory, through `pbx-lite serve` (issue #17, must-show 2):
//! each trusts the office CA its configuration carries, pinned by fingerprint, and the PBX
//! keys each leg itself. A call has two-way audio and stays encrypted through hold and
//! resume; a conference via 46 of three such phones has each hear the other two. A phone
//! with SRTP mandatory refuses an offer without keys (488), and one whose pinned CA does not
//! match is refused at the start.
#![allow(clippy::unwrap_used)]

mod support;

use std::io::Write;
use std::time::Duration;
use support::{Pbx, expect, hear_each_other, newest_samples, wait_until};

/// Stations 201 (440 Hz), 202 (600 Hz) and 203 (1000 Hz) with `srtp=mandatory`, each a
/// headless softphone on TLS, registered.
fn secure_office() -> (Pbx, Vec<support::TonePhone>) {
    let pbx = Pbx::start(&["201", "202", "203"]);
    let phones = [("201", 440.0), ("202", 600.0), ("203", 1000.0)]
        .into_iter()
        .map(|(n, f)| {
            support::cli(&pbx.db, &["station", "set", n, "srtp=mandatory"]);
            support::tone_phone(&pbx, n, f, &pbx.secure_account(n))
        })
        .collect();
    (pbx, phones)
}

/// Is the phone's call encrypted, as its `status` says?
fn encrypted(
    rx: &std::sync::mpsc::Receiver<serde_json::Value>,
    stdin: &mut std::process::ChildStdin,
) -> bool {
    writeln!(stdin, "status").unwrap();
    let status = expect(rx, "status");
    status["calls"]
        .as_array()
        .is_some_and(|calls| !calls.is_empty() && calls.iter().all(|c| c["encrypted"] == true))
}

/// Does the last second of `dir`'s newest recording hold mostly `freq`?
fn hears_now(dir: &std::path::Path, freq: f32) -> bool {
    let heard = newest_samples(dir);
    heard.len() > 8000 && support::shares_at_end(&heard, freq) > 0.5
}

#[test]
fn softphones_on_tls_and_srtp_talk_hold_and_confer() {
    if std::env::var("SIP_SKIP_PEERS").is_ok_and(|v| v == "1") {
        return;
    }
    let (pbx, mut phones) = secure_office();
    let [
        (_a, a_rx, a_in, a_rec),
        (_b, b_rx, b_in, b_rec),
        (_c, c_rx, c_in, c_rec),
    ] = &mut phones[..]
    else {
        unreachable!()
    };
    writeln!(a_in, "dial 202").unwrap();
    expect(b_rx, "incoming");
    writeln!(b_in, "answer").unwrap();
    expect(a_rx, "established");
    for (rx, stdin) in [(&*a_rx, &mut *a_in), (&*b_rx, &mut *b_in)] {
        assert!(encrypted(rx, stdin), "a call without SRTP");
    }
    wait_until("two-way audio", || {
        hears_now(a_rec, 600.0) && hears_now(b_rec, 440.0)
    });
    let log = std::fs::read_to_string(pbx.dir.path().join("pbx.log")).unwrap();
    assert!(log.contains("201 (SRTP) connected to 202 (SRTP)"), "{log}");

    writeln!(a_in, "hold").unwrap();
    expect(a_rx, "held");
    wait_until("202 to hear no 201", || !hears_now(b_rec, 440.0));
    writeln!(a_in, "resume").unwrap();
    expect(a_rx, "resumed");
    wait_until("two-way audio after resuming", || {
        hears_now(a_rec, 600.0) && hears_now(b_rec, 440.0)
    });

    // A conference via 46: 202 is added, then 203.
    writeln!(a_in, "conference add").unwrap();
    support::expect_done(a_rx, "conference");
    writeln!(a_in, "dial 203").unwrap();
    expect(c_rx, "incoming");
    writeln!(c_in, "answer").unwrap();
    expect(c_rx, "established");
    assert!(encrypted(c_rx, c_in), "203's call without SRTP");
    wait_until("203 to hear 201", || hears_now(c_rec, 440.0));
    writeln!(a_in, "conference add").unwrap();
    support::expect_done(a_rx, "conference");
    writeln!(a_in, "conference end").unwrap();
    support::expect_done(a_rx, "conference");
    wait_until("each to hear the other two", || {
        hear_each_other(&[
            (0, newest_samples(a_rec)),
            (1, newest_samples(b_rec)),
            (2, newest_samples(c_rec)),
        ])
    });
    for stdin in [a_in, b_in, c_in] {
        writeln!(stdin, "hangup").unwrap();
    }
}

/// A phone with `srtp = "mandatory"` answers an offer without keys 488, before it rings.
#[test]
fn mandatory_srtp_refuses_an_offer_without_keys() {
    let pbx = Pbx::start(&["201"]);
    let dir = pbx.dir.path().to_path_buf();
    let (_p, rx, _stdin) = support::softphone(&dir, "201", &pbx.secure_account("201"));
    let ready = expect(&rx, "ready");
    let phone: std::net::SocketAddr = ready["sip"].as_str().unwrap().parse().unwrap();
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let me = s.local_addr().unwrap();
    let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
    let invite = format!(
        "INVITE sip:201@{phone} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-plain-1\r\nFrom: <sip:202@{me}>;tag=a\r\nTo: <sip:201@{phone}>\r\nCall-ID: plain-offer\r\nCSeq: 1 INVITE\r\nContact: <sip:202@{me}>\r\nMax-Forwards: 70\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    );
    s.send_to(invite.as_bytes(), phone).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        let n = s.recv(&mut buf).expect("an answer");
        let text = String::from_utf8_lossy(&buf[..n]);
        if text.starts_with("SIP/2.0 1") {
            continue;
        }
        assert!(text.starts_with("SIP/2.0 488"), "{text}");
        assert!(text.contains("SRTP is mandatory"), "{text}");
        break;
    }
    let refused = expect(&rx, "refused");
    assert_eq!(refused["status"], 488, "{refused}");
}

/// A configuration whose office CA does not match its pin is refused, naming the field:
/// the phone never trusts it, let alone falls back to plaintext.
#[test]
fn a_ca_that_does_not_match_its_pin_is_refused() {
    let pbx = Pbx::start(&["201"]);
    let config = pbx
        .secure_account("201")
        .replace("tls_ca_sha256 = \"", "tls_ca_sha256 = \"00");
    let path = pbx.dir.path().join("pinned.toml");
    std::fs::write(&path, config).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_softphone"))
        .args(["--headless", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("tls_ca_sha256") && err.contains("not trusted"),
        "{err}"
    );
}

/// A server certificate the phone does not trust (its configuration lacks the office CA, so
/// only the system's roots count) is a registration failure naming the certificate: no
/// fallback to plaintext.
#[test]
fn an_untrusted_certificate_fails_the_registration_clearly() {
    let pbx = Pbx::start(&["201"]);
    let account = pbx.secure_account("201");
    let without_ca = &account[account.find("[[account]]").unwrap()..];
    let (_p, rx, _stdin) = support::softphone(pbx.dir.path(), "201", without_ca);
    let failed = expect(&rx, "registration_failed");
    let reason = failed["reason"].as_str().unwrap();
    assert!(reason.contains("certificate"), "{failed}");
    assert!(!support::registered(&pbx.db, "201"));
}
