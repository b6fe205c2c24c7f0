//! SIP over TLS on `pbx-lite serve` (issue #17, the listener): the office gets a CA of its
//! own on the first start, and a phone that trusts only that CA's `ca.pem` registers over
//! TLS with digest; a phone that trusts another CA cannot connect, and plaintext SIP on the
//! TLS port gets no answer.
#![allow(clippy::unwrap_used)]

mod support;

use sip::auth::DigestClient;
use sip::endpoint::Endpoint;
use sip::transaction::{Peer, TimerConfig, TransportKind, TsxEvent};
use sip::transport::{TlsSettings, TransportConfig};
use sip::types::Name;
use sip::{Method, build};
use std::io::{Read, Write};
use std::time::Duration;

/// The final status of the next answer the endpoint gets.
async fn final_status(
    events: &mut tokio::sync::mpsc::UnboundedReceiver<TsxEvent>,
) -> sip::Response {
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

/// A phone on TLS that trusts `roots`, as `name` names the PBX.
async fn phone(
    roots: &[u8],
    name: &str,
) -> (
    std::sync::Arc<Endpoint>,
    tokio::sync::mpsc::UnboundedReceiver<TsxEvent>,
) {
    Endpoint::start(
        TransportConfig {
            tls_client: Some(TlsSettings::client(roots, name).unwrap()),
            udp: Some("127.0.0.1:0".parse().unwrap()),
            ..Default::default()
        },
        TimerConfig::default(),
    )
    .await
    .unwrap()
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_trusting_the_office_ca_registers_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("office.db");
    support::cli(
        &db,
        &[
            "station",
            "add",
            "--number",
            "201",
            "--user-id",
            "u201",
            "--password",
            "Pw-201-secret",
        ],
    );
    let (sip, tls) = (support::free_port(), support::free_port());
    let tls_addr: std::net::SocketAddr = format!("127.0.0.1:{tls}").parse().unwrap();
    let _pbx = e2e::process::Kill(support::serve(&db, sip, &["--tls", &tls_addr.to_string()]));
    let ca = std::fs::read(dir.path().join("office.db.tls/ca.pem")).unwrap();
    let to = Peer::new(TransportKind::Tls, tls_addr);

    // Trusting ca.pem alone, by the PBX's address: 401, then 200 with the digest.
    let (ep, mut events) = phone(&ca, "127.0.0.1").await;
    let first = register(&ep, tls_addr);
    ep.send_request(first.clone(), to).unwrap();
    let challenge = final_status(&mut events).await;
    assert_eq!(challenge.status, 401);
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
    ep.send_request(again, to).unwrap();
    assert_eq!(final_status(&mut events).await.status, 200);
    let status = String::from_utf8(support::cli(&db, &["status", "--json"]).stdout).unwrap();
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

/// A real phone over TLS: baresip trusting only the office's `ca.pem` registers on the TLS
/// port and calls a baresip on UDP through the relay; each hears the other.
#[test]
fn baresip_over_tls_calls_a_phone_on_udp() {
    if support::skip() {
        return;
    }
    use e2e::audio::{heard_in_order, samples_so_far, timeline, tone};
    use e2e::baresip::Baresip;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("office.db");
    for n in ["201", "202"] {
        support::cli(
            &db,
            &[
                "station",
                "add",
                "--number",
                n,
                "--user-id",
                &format!("u{n}"),
                "--password",
                &format!("Pw-{n}-secret"),
            ],
        );
    }
    support::cli(&db, &["settings", "set", "media.relay", "always"]);
    let (sip, tls) = (support::free_port(), support::free_port());
    let _pbx = e2e::process::Kill(support::serve(
        &db,
        sip,
        &["--tls", &format!("127.0.0.1:{tls}")],
    ));
    let ca = dir.path().join("office.db.tls/ca.pem");
    let (wav_a, wav_b) = (dir.path().join("440.wav"), dir.path().join("600.wav"));
    tone(&wav_a, 440.0);
    tone(&wav_b, 600.0);
    let a = Baresip::start_full(
        &wav_a,
        |_| format!("<sip:201@127.0.0.1:{tls};transport=tls>;auth_user=u201;auth_pass=Pw-201-secret;answermode=auto;audio_codecs=PCMU;regint=600"),
        &format!("sip_cafile {}\n", ca.display()),
    )
    .unwrap();
    let b = Baresip::start_with(&wav_b, |_| {
        format!("<sip:202@127.0.0.1:{sip}>;auth_user=u202;auth_pass=Pw-202-secret;answermode=auto;audio_codecs=PCMU;regint=600")
    })
    .unwrap();
    let registered = || {
        let v: serde_json::Value =
            serde_json::from_slice(&support::cli(&db, &["status", "--json"]).stdout).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .all(|r| r["registered"] == true)
    };
    support::office::wait_for("both registered", Duration::from_secs(15), registered);
    a.command("/dial 202\n").unwrap();
    let heard = |p: &Baresip| {
        p.latest_decoded()
            .map(|f| samples_so_far(&f))
            .unwrap_or_default()
    };
    support::office::wait_for("two-way audio", Duration::from_secs(20), || {
        heard_in_order(&heard(&a), &[600.0]) && heard_in_order(&heard(&b), &[440.0])
    });
    a.command("/hangup\n").unwrap();
    let (ha, hb) = (heard(&a), heard(&b));
    assert!(
        heard_in_order(&ha, &[600.0]),
        "201 (TLS) heard {:?}",
        timeline(&ha)
    );
    assert!(
        heard_in_order(&hb, &[440.0]),
        "202 (UDP) heard {:?}",
        timeline(&hb)
    );
}
