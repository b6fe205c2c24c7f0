//! SIP over TLS on `pbx-lite serve` (issue #17, the listener): the office gets a CA of its
//! own on the first start, and a phone that trusts only that CA's `ca.pem` registers over
//! TLS with digest; a phone that trusts another CA cannot connect, and plaintext SIP on the
//! TLS port gets no answer.
#![allow(clippy::unwrap_used)]

mod support;

use support::office::{MUSIC, Office, shares_at_end, wait_for};

use sip::auth::DigestClient;
use sip::endpoint::Endpoint;
use sip::transaction::{Peer, TimerConfig, TransportKind, TsxEvent};
use sip::transport::{TlsSettings, TransportConfig};
use sip::types::Name;
use sip::{Method, build};
use std::io::{Read, Write};
use std::time::Duration;

/// The final status of the next answer the endpoint gets.
async fn final_status(events: &mut sip::endpoint::Events) -> sip::Response {
    loop {
        let e = tokio::time::timeout(Duration::from_secs(10), events.recv())
            .await
            .expect("an answer within 10 s")
            .unwrap();
        if let TsxEvent::Response { response, .. } = e
            && response.status >= 200
        {
            return response;
        }
    }
}

type Phone = (std::sync::Arc<Endpoint>, sip::endpoint::Events);

/// A phone on TLS that trusts `roots`, as `name` names the PBX.
async fn phone(roots: &[u8], name: &str) -> Phone {
    phone_with(roots, name, None).await
}

/// [`phone`] showing a client certificate `(PEM chain, PEM key)`; its requests time out
/// after 64 × 50 ms.
async fn phone_with(roots: &[u8], name: &str, identity: Option<(&[u8], &[u8])>) -> Phone {
    Endpoint::start(
        TransportConfig {
            tls_client: Some(TlsSettings::client_with(roots, name, identity).unwrap()),
            udp: Some("127.0.0.1:0".parse().unwrap()),
            ..Default::default()
        },
        TimerConfig {
            t1: Duration::from_millis(50),
            ..TimerConfig::default()
        },
    )
    .await
    .unwrap()
}

/// Registers 201 over TLS at `to`, answering the challenge; the final status.
async fn register_201(phone: &mut Phone, to: std::net::SocketAddr) -> u16 {
    let (ep, events) = phone;
    let peer = Peer::new(TransportKind::Tls, to);
    let first = register(ep, to);
    ep.send_request(first.clone(), peer).unwrap();
    let challenge = final_status(events).await;
    if challenge.status != 401 {
        return challenge.status;
    }
    let mut again = first;
    assert!(DigestClient::new("u201", "Pw-201-secret").authorize(&mut again, &challenge));
    again.headers.remove(&Name::CSEQ);
    again.headers.insert(Name::CSEQ, "2 REGISTER");
    again.headers.remove(&Name::VIA);
    let local = ep.local_addr(TransportKind::Udp).unwrap();
    again.headers.insert(
        Name::VIA,
        build::via_value(TransportKind::Tls, local, &build::new_branch()),
    );
    ep.send_request(again, peer).unwrap();
    final_status(events).await.status
}

fn register(ep: &Endpoint, to: std::net::SocketAddr) -> sip::Request {
    let local = ep.local_addr(TransportKind::Udp).unwrap();
    let mut r = build::request(
        Method::Register,
        &format!("sips:{to}"),
        &format!("sips:201@{to}"),
        &format!("sips:201@{to}"),
        TransportKind::Tls,
        local,
    )
    .unwrap();
    r.headers.insert(Name::EXPIRES, "600");
    r
}

/// `pbx-lite serve` with station 201, SIP over TLS on a loopback port: its folder (the
/// database is `office.db`), that address, and the process.
fn office_on_tls() -> (tempfile::TempDir, std::net::SocketAddr, e2e::process::Kill) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("office.db");
    support::add_station(&db, "201");
    let (sip, tls) = (support::free_port(), support::free_port());
    let tls_addr: std::net::SocketAddr = format!("127.0.0.1:{tls}").parse().unwrap();
    let pbx = e2e::process::Kill(support::serve(&db, sip, &["--tls", &tls_addr.to_string()]));
    (dir, tls_addr, pbx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_trusting_the_office_ca_registers_over_tls() {
    let (dir, tls_addr, _pbx) = office_on_tls();
    let ca = std::fs::read(dir.path().join("office.db.tls/ca.pem")).unwrap();
    let to = Peer::new(TransportKind::Tls, tls_addr);

    // Trusting ca.pem alone, by the PBX's address: 401, then 200 with the digest.
    let mut ours = phone(&ca, "127.0.0.1").await;
    assert_eq!(register_201(&mut ours, tls_addr).await, 200);
    let status = String::from_utf8(
        support::cli(&dir.path().join("office.db"), &["status", "--json"]).stdout,
    )
    .unwrap();
    assert!(status.contains("\"registered\":true"), "{status}");

    // A phone that trusts another CA cannot connect: its request fails at once (503).
    let other = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
    let (stranger, mut stranger_events) = phone(other.cert.pem().as_bytes(), "127.0.0.1").await;
    stranger
        .send_request(register(&stranger, tls_addr), to)
        .unwrap();
    assert_eq!(final_status(&mut stranger_events).await.status, 503);

    // Plaintext SIP on the TLS port gets no SIP answer.
    let mut plain = std::net::TcpStream::connect(tls_addr).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    plain
        .write_all(b"OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bKx\r\nFrom: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:127.0.0.1>\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    let _ = plain.read_to_end(&mut got);
    assert!(
        !String::from_utf8_lossy(&got).contains("SIP/2.0"),
        "plaintext on the TLS port was answered: {}",
        String::from_utf8_lossy(&got)
    );
}

/// A flood of TLS handshakes that never finish — 600 connections from 60 addresses that
/// send nothing — does not stall the PBX: a phone registers over TLS in the middle of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handshake_flood_does_not_stall_the_pbx() {
    let (dir, tls_addr, _pbx) = office_on_tls();
    let mut idle = Vec::new();
    for host in 2..62u8 {
        for _ in 0..10 {
            let s = tokio::net::TcpSocket::new_v4().unwrap();
            s.bind(std::net::SocketAddr::from(([127, 0, 0, host], 0)))
                .unwrap();
            idle.push(s.connect(tls_addr).await.unwrap());
        }
    }
    let ca = std::fs::read(dir.path().join("office.db.tls/ca.pem")).unwrap();
    let mut phone = phone(&ca, "127.0.0.1").await;
    let t0 = std::time::Instant::now();
    assert_eq!(register_201(&mut phone, tls_addr).await, 200);
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    drop(idle);
}

/// Must-show 4: with `tls.mutual`, a phone without a client certificate cannot connect, nor
/// (with `tls.verify_client=known`, the default) one whose certificate comes from another
/// CA; a certificate the office CA issued (`pbx-lite tls client-cert`) registers. Both
/// refusals are in the access log. With `verify_client=any` the other CA's is taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_takes_only_the_client_certificates_it_should() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("office.db");
    support::add_station(&db, "201");
    support::cli(&db, &["settings", "set", "tls.mutual", "yes"]);
    let (sip, tls) = (support::free_port(), support::free_port());
    let tls_addr: std::net::SocketAddr = format!("127.0.0.1:{tls}").parse().unwrap();
    let serve = || e2e::process::Kill(support::serve(&db, sip, &["--tls", &tls_addr.to_string()]));
    let pbx = serve();
    let ca = std::fs::read(dir.path().join("office.db.tls/ca.pem")).unwrap();
    let issued = support::cli(
        &db,
        &[
            "tls",
            "client-cert",
            "201",
            "--out",
            dir.path().to_str().unwrap(),
        ],
    );
    assert!(issued.status.success(), "{issued:?}");
    let (cert, key) = (
        std::fs::read(dir.path().join("201.pem")).unwrap(),
        std::fs::read(dir.path().join("201.key")).unwrap(),
    );
    let foreign = rcgen::generate_simple_self_signed(vec!["phone.elsewhere".into()]).unwrap();
    let (foreign_cert, foreign_key) = (
        foreign.cert.pem().into_bytes(),
        foreign.key_pair.serialize_pem().into_bytes(),
    );

    let mut bare = phone(&ca, "127.0.0.1").await;
    let status = register_201(&mut bare, tls_addr).await;
    assert!(status == 408 || status == 503, "no certificate: {status}");
    let mut stranger = phone_with(&ca, "127.0.0.1", Some((&foreign_cert, &foreign_key))).await;
    let status = register_201(&mut stranger, tls_addr).await;
    assert!(
        status == 408 || status == 503,
        "another CA's certificate: {status}"
    );
    let mut known = phone_with(&ca, "127.0.0.1", Some((&cert, &key))).await;
    assert_eq!(register_201(&mut known, tls_addr).await, 200);
    let log = || String::from_utf8(support::cli(&db, &["access-log"]).stdout).unwrap();
    support::office::wait_for(
        "both refusals in the access log",
        Duration::from_secs(5),
        || log().matches("TLS handshake failed").count() >= 2,
    );
    let log = log();
    assert!(
        log.contains("NoCertificatesPresented") || log.contains("no certificate"),
        "{log}"
    );
    assert!(log.contains("UnknownIssuer"), "{log}");

    // "Validate Any TLS Certificate": the other CA's certificate is taken.
    drop(pbx);
    support::cli(&db, &["settings", "set", "tls.verify_client", "any"]);
    let _pbx = serve();
    let mut stranger = phone_with(&ca, "127.0.0.1", Some((&foreign_cert, &foreign_key))).await;
    assert_eq!(register_201(&mut stranger, tls_addr).await, 200);
}

/// Must-show 1 and 3: a real phone on TLS with SRTP mandatory (baresip trusting only the
/// office's `ca.pem`, `mediaenc=srtp-mand`) calls a baresip on plain UDP/RTP; the relay
/// decrypts one leg and encrypts the other, and each phone hears the other. A capture of the
/// whole call: the TLS connection carries nothing readable as SIP, and of the four RTP
/// directions through the relay exactly two (the plain phone's) sound like the tones, while
/// no payload of the other two equals any of theirs.
#[test]
fn an_srtp_phone_on_tls_calls_a_plain_phone_on_udp() {
    if support::skip() {
        return;
    }
    let capture = e2e::capture::Capture::start("lo", "tcp or udp");
    let o = Office::start_secure(
        "never",
        &[("201", 440.0, "auto"), ("202", 600.0, "auto")],
        &["201"],
    );
    o.phone("201").send("/dial 202");
    o.phone("201").wait_heard(&[600.0]);
    o.phone("202").wait_heard(&[440.0]);
    assert!(
        o.pbx_log().contains("201 (SRTP) connected to 202 (RTP)"),
        "{}",
        o.pbx_log()
    );
    let packets = capture.stop();
    o.hang_up("201");

    let tls: Vec<_> = packets
        .iter()
        .filter(|p| p.tcp && (p.to.port() == o.tls || p.from.port() == o.tls))
        .collect();
    let bytes: usize = tls.iter().map(|p| p.payload.len()).sum();
    assert!(
        bytes > 2000,
        "the capture saw {bytes} bytes on the TLS port"
    );
    for p in &tls {
        let text = String::from_utf8_lossy(&p.payload);
        assert!(
            !text.contains("SIP/2.0") && !text.contains("sip:"),
            "readable SIP on the TLS port: {text}"
        );
    }
    let relay = o.rtp_lo..o.rtp_lo + 40;
    let mut directions: std::collections::HashMap<_, Vec<Vec<u8>>> = Default::default();
    for p in packets.iter().filter(|p| !p.tcp) {
        let rtp = p.payload.len() >= 172
            && p.payload[0] >> 6 == 2
            && !(200..=204).contains(&p.payload[1]);
        if rtp && (relay.contains(&p.from.port()) || relay.contains(&p.to.port())) {
            directions
                .entry((p.from, p.to))
                .or_default()
                .push(p.payload[12..172].to_vec());
        }
    }
    // A tone in any half second: the first packets of a direction (before the far phone's
    // audio reaches the relay, on a loaded machine) need not carry it.
    let sounds_like_a_tone = |payloads: &[Vec<u8>]| {
        let mut pcm = Vec::new();
        for pl in payloads {
            let mut frame = Vec::new();
            media::g711::Law::Mu.decode(pl, &mut frame);
            pcm.extend(frame);
        }
        pcm.windows(4000).step_by(800).any(|w| {
            [440.0, 600.0]
                .iter()
                .any(|f| media::analysis::tone_share(w, *f, 8000) > 0.5)
        })
    };
    let (plain, secret): (Vec<_>, Vec<_>) = directions
        .iter()
        .filter(|(_, p)| p.len() >= 50)
        .partition(|(_, p)| sounds_like_a_tone(p));
    assert_eq!(
        (plain.len(), secret.len()),
        (2, 2),
        "plain {:?}, encrypted {:?}",
        plain.iter().map(|(d, p)| (d, p.len())).collect::<Vec<_>>(),
        secret.iter().map(|(d, p)| (d, p.len())).collect::<Vec<_>>()
    );
    let clear: std::collections::HashSet<&Vec<u8>> =
        plain.iter().flat_map(|(_, p)| p.iter()).collect();
    for (d, payloads) in &secret {
        assert!(
            payloads.iter().all(|p| !clear.contains(p)),
            "{d:?} carries a payload the plain leg carries too"
        );
    }
}

/// Must-show 1: two SRTP phones on TLS; hold and resume, then a blind transfer to a third
/// (201 hangs up while 203 rings), keep two-way audio — the PBX keys each leg itself and
/// keeps the keys across the re-INVITEs.
#[test]
fn srtp_phones_keep_audio_through_hold_and_a_blind_transfer() {
    if support::skip() {
        return;
    }
    let o = Office::start_secure(
        "never",
        &[
            ("201", 440.0, "auto"),
            ("202", 600.0, "auto"),
            ("203", 1000.0, "manual"),
        ],
        &["201", "202", "203"],
    );
    o.phone("201").send("/dial 202");
    o.phone("202").wait_heard(&[440.0]);
    o.phone("201").wait_heard(&[600.0]);
    assert!(o.pbx_log().contains("201 (SRTP) connected to 202 (SRTP)"));
    o.phone("201").send("/hold");
    o.phone("202").wait_heard(&[440.0, MUSIC]);
    o.phone("201").send("/resume");
    o.phone("202").wait_heard(&[440.0, MUSIC, 440.0]);
    // 201 hears 202 again (the same tone as before the hold: its last second tells).
    wait_for(
        "201 to hear 202 after resuming",
        Duration::from_secs(10),
        || {
            let heard = o.phone("201").recordings().pop().unwrap_or_default();
            shares_at_end(&heard, 1, &[600.0])[0] > 0.5
        },
    );
    o.phone("201").send("/hold");
    // The hold is in place (202 hears the music) before the consultation call.
    o.phone("202").wait_heard(&[440.0, MUSIC, 440.0, MUSIC]);
    o.phone("201").send("/dial 203");
    o.wait_log("203", "Incoming call", 1);
    o.phone("201").send("/hangup"); // while 203 rings: a blind transfer
    o.wait_log("201", "terminated", 1);
    o.phone("203").send("/accept");
    o.wait_log("203", "Call established", 1);
    o.phone("203").wait_heard(&[600.0]);
    o.phone("202")
        .wait_heard(&[440.0, MUSIC, 440.0, MUSIC, 1000.0]);
    let log = o.pbx_log();
    assert!(log.contains("202 (SRTP) connected to 203 (SRTP)"), "{log}");
    o.hang_up("202");
}
