//! The tokio transport driver on loopback (RFC 3261 §18, RFC 3581, RFC 5626 §4.4.1):
//! OPTIONS over UDP, TCP and TLS (rustls, certificate made with rcgen) between two
//! `Endpoint`s; responses return over the connection the request came on, and later requests
//! to the same peer reuse it; a CRLF CRLF ping is answered with CRLF; a malformed message on a
//! stream is answered `400` with the reason; a malformed datagram too, and the server keeps
//! serving afterwards; past its backlog limit the endpoint sheds new requests with 503.
#![allow(clippy::unwrap_used)]

use sip::endpoint::Endpoint;
use sip::transaction::{Peer, TimerConfig, TransportKind, TsxEvent};
use sip::transport::{TlsSettings, TransportConfig};
use sip::{Method, build};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ANY: &str = "127.0.0.1:0";

/// A server that answers every request 200 until the test ends.
async fn server(cfg: TransportConfig) -> Arc<Endpoint> {
    let (ep, mut events) = Endpoint::start(cfg, TimerConfig::default()).await.unwrap();
    let e = ep.clone();
    tokio::spawn(async move {
        while let Some(ev) = events.recv().await {
            if let TsxEvent::Request { key, request, .. } = ev
                && request.method != Method::Ack
            {
                let mut ok = request.make_response(200, "OK");
                ok.set_to_tag("srv");
                let _ = e.send_response(&key, &ok);
            }
        }
    });
    ep
}

async fn final_status(events: &mut sip::endpoint::Events) -> u16 {
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(10), events.recv())
            .await
            .expect("no response within 10 s")
            .unwrap();
        if let TsxEvent::Response { response, .. } = ev
            && response.status >= 200
        {
            return response.status;
        }
    }
}

async fn options(client: &Endpoint, kind: TransportKind, to: SocketAddr) {
    let local = client.local_addr(kind).unwrap();
    let r = build::request(
        Method::Options,
        &format!("sip:srv@{to}"),
        "sip:c@127.0.0.1",
        &format!("sip:srv@{to}"),
        kind,
        local,
    )
    .unwrap();
    client.send_request(r, Peer::new(kind, to)).unwrap();
}

fn any() -> Option<SocketAddr> {
    Some(ANY.parse().unwrap())
}

#[tokio::test]
async fn options_over_udp_and_tcp_with_connection_reuse() {
    let srv = server(TransportConfig {
        udp: any(),
        tcp: any(),
        ..Default::default()
    })
    .await;
    let (client, mut events) = Endpoint::start(
        TransportConfig {
            udp: any(),
            tcp: any(),
            ..Default::default()
        },
        TimerConfig::default(),
    )
    .await
    .unwrap();
    options(
        &client,
        TransportKind::Udp,
        srv.local_addr(TransportKind::Udp).unwrap(),
    )
    .await;
    assert_eq!(final_status(&mut events).await, 200);
    let tcp = srv.local_addr(TransportKind::Tcp).unwrap();
    for _ in 0..3 {
        options(&client, TransportKind::Tcp, tcp).await;
        assert_eq!(final_status(&mut events).await, 200);
    }
    assert_eq!(
        client.transport().connection_count(),
        1,
        "one connection, reused"
    );
    assert_eq!(srv.transport().connection_count(), 1);
}

#[tokio::test]
async fn options_over_tls() {
    let cert = rcgen::generate_simple_self_signed(vec!["pbx.office.test".into()]).unwrap();
    let (cert_pem, key_pem) = (cert.cert.pem(), cert.key_pair.serialize_pem());
    let tls = TlsSettings::server(cert_pem.as_bytes(), key_pem.as_bytes()).unwrap();
    let srv = server(TransportConfig {
        tls: Some((ANY.parse().unwrap(), tls)),
        ..Default::default()
    })
    .await;
    let to = srv.local_addr(TransportKind::Tls).unwrap();
    let client_tls = TlsSettings::client(cert_pem.as_bytes(), "pbx.office.test").unwrap();
    let (client, mut events) = Endpoint::start(
        TransportConfig {
            tls_client: Some(client_tls),
            udp: any(),
            ..Default::default()
        },
        TimerConfig::default(),
    )
    .await
    .unwrap();
    let local = client.local_addr(TransportKind::Udp).unwrap();
    let r = build::request(
        Method::Options,
        &format!("sips:srv@{to}"),
        "sip:c@127.0.0.1",
        &format!("sips:srv@{to}"),
        TransportKind::Tls,
        local,
    )
    .unwrap();
    client
        .send_request(r, Peer::new(TransportKind::Tls, to))
        .unwrap();
    assert_eq!(final_status(&mut events).await, 200);
    // A client that does not trust the certificate cannot connect: the TU gets a 503 at once.
    let other = rcgen::generate_simple_self_signed(vec!["pbx.office.test".into()]).unwrap();
    let untrusting = TlsSettings::client(other.cert.pem().as_bytes(), "pbx.office.test").unwrap();
    let (c2, mut ev2) = Endpoint::start(
        TransportConfig {
            tls_client: Some(untrusting),
            udp: any(),
            ..Default::default()
        },
        TimerConfig::default(),
    )
    .await
    .unwrap();
    let local = c2.local_addr(TransportKind::Udp).unwrap();
    let r = build::request(
        Method::Options,
        &format!("sips:srv@{to}"),
        "sip:c@127.0.0.1",
        &format!("sips:srv@{to}"),
        TransportKind::Tls,
        local,
    )
    .unwrap();
    c2.send_request(r, Peer::new(TransportKind::Tls, to))
        .unwrap();
    assert_eq!(final_status(&mut ev2).await, 503);
}

#[tokio::test]
async fn stream_keepalive_and_malformed_message() {
    let srv = server(TransportConfig {
        tcp: any(),
        udp: any(),
        ..Default::default()
    })
    .await;
    let mut s = tokio::net::TcpStream::connect(srv.local_addr(TransportKind::Tcp).unwrap())
        .await
        .unwrap();
    s.write_all(b"\r\n\r\n").await.unwrap();
    let mut pong = [0u8; 2];
    s.read_exact(&mut pong).await.unwrap();
    assert_eq!(&pong, b"\r\n");
    s.write_all(b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bKm\r\nFrom: <sip:c@d>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: m1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 999\r\nContent-Length: 0\r\n\r\n").await.unwrap();
    let mut buf = vec![0u8; 2048];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let reply = String::from_utf8_lossy(&buf[..n]);
    assert!(
        reply.starts_with("SIP/2.0 400 Bad Request (bad Max-Forwards"),
        "{reply}"
    );
    assert!(reply.contains("Call-ID: m1\r\n"));
    // UDP: a malformed datagram gets 400, and the next good one is served.
    let udp = tokio::net::UdpSocket::bind(ANY).await.unwrap();
    let to = srv.local_addr(TransportKind::Udp).unwrap();
    udp.send_to(b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKu\r\nFrom: <sip:c@d>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: u1\r\nCSeq: 1 INVITE\r\n\r\n", to).await.unwrap();
    let n = tokio::time::timeout(Duration::from_secs(5), udp.recv(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("SIP/2.0 400"));
    udp.send_to(b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKv\r\nFrom: <sip:c@d>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: u2\r\nCSeq: 1 OPTIONS\r\n\r\n", to).await.unwrap();
    let n = tokio::time::timeout(Duration::from_secs(5), udp.recv(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("SIP/2.0 200"));
}

/// Issue 15, finding 6 (streams): connections past the per-address cap are closed at once,
/// an idle connection and a message whose body never comes are closed after their
/// timeouts, and the server still answers afterwards.
#[tokio::test]
async fn stream_connections_are_capped_and_timed_out() {
    use sip::transport::StreamLimits;
    let srv = server(TransportConfig {
        tcp: any(),
        limits: StreamLimits {
            max_connections: 100,
            per_address: 3,
            idle: Duration::from_millis(400),
            partial: Duration::from_millis(400),
        },
        ..Default::default()
    })
    .await;
    let addr = srv.local_addr(TransportKind::Tcp).unwrap();
    let closed = |mut s: tokio::net::TcpStream, within: Duration| async move {
        let mut b = [0u8; 64];
        matches!(
            tokio::time::timeout(within, s.read(&mut b)).await,
            Ok(Ok(0) | Err(_))
        )
    };
    let soon = Duration::from_millis(200); // well before the 400 ms timeouts
    let late = Duration::from_secs(5);
    let mut kept = Vec::new();
    for n in 1..=3 {
        kept.push(tokio::net::TcpStream::connect(addr).await.unwrap());
        let t0 = tokio::time::Instant::now();
        while srv.transport().connection_count() < n {
            assert!(
                t0.elapsed() < Duration::from_secs(5),
                "connection {n} taken"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let fourth = tokio::net::TcpStream::connect(addr).await.unwrap();
    assert!(closed(fourth, soon).await, "past the cap: closed at once");
    // Half a message, never finished; and nothing at all.
    let mut half = kept.pop().unwrap();
    half.write_all(b"OPTIONS sip:srv@127.0.0.1 SIP/2.0\r\nContent-Length: 100\r\n")
        .await
        .unwrap();
    assert!(closed(half, late).await, "a message never finished");
    assert!(closed(kept.pop().unwrap(), late).await, "idle");
    // Room again: a new connection is served.
    let mut ok = tokio::net::TcpStream::connect(addr).await.unwrap();
    ok.write_all(b"\r\n\r\n").await.unwrap();
    let mut b = [0u8; 2];
    tokio::time::timeout(Duration::from_secs(5), ok.read_exact(&mut b))
        .await
        .expect("a pong")
        .unwrap();
    assert_eq!(&b, b"\r\n");
}

/// Issue 15, finding 6 (datagrams): an address past its budget is dropped before parsing,
/// and another address keeps its own. 500 OPTIONS at once from 127.0.0.1 get about the
/// burst (20) answered; one OPTIONS from 127.0.0.2 right after is answered.
#[tokio::test]
async fn a_flooding_address_uses_up_only_its_own_budget() {
    use sip::rate::MessageRate;
    let srv = server(TransportConfig {
        udp: Some("0.0.0.0:0".parse().unwrap()),
        rate: Some(MessageRate::per_second(10)),
        ..Default::default()
    })
    .await;
    let port = srv.local_addr(TransportKind::Udp).unwrap().port();
    let to: SocketAddr = ([127, 0, 0, 1], port).into();
    let ask = |from: &'static str, n: usize| async move {
        let sock = tokio::net::UdpSocket::bind(from).await.unwrap();
        let me = sock.local_addr().unwrap();
        for i in 0..n {
            let msg = format!(
                "OPTIONS sip:srv@{to} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-{i}\r\n\
                 Max-Forwards: 70\r\nFrom: <sip:c@{me}>;tag=a\r\nTo: <sip:srv@{to}>\r\n\
                 Call-ID: flood-{i}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
            );
            sock.send_to(msg.as_bytes(), to).await.unwrap();
        }
        let mut answered = 0;
        let mut b = [0u8; 2048];
        while let Ok(Ok(_)) =
            tokio::time::timeout(Duration::from_millis(500), sock.recv_from(&mut b)).await
        {
            answered += 1;
        }
        answered
    };
    let flooder = ask("127.0.0.1:0", 500).await;
    assert!(
        (20..=30).contains(&flooder),
        "the burst, and a little refill: {flooder}"
    );
    assert_eq!(
        ask("127.0.0.2:0", 1).await,
        1,
        "another address is answered"
    );
    assert!(srv.transport().dropped() > 0, "counted");
}

async fn udp_endpoint() -> (Arc<Endpoint>, sip::endpoint::Events) {
    let udp = TransportConfig {
        udp: any(),
        ..Default::default()
    };
    Endpoint::start(udp, TimerConfig::default()).await.unwrap()
}

/// Events the TU has not taken count toward the backlog: past the limit a new request is
/// answered 503 with Retry-After by the endpoint itself; once the TU catches up, requests
/// reach it again.
#[tokio::test]
async fn a_deep_backlog_sheds_new_requests_with_503() {
    let (srv, mut tu) = udp_endpoint().await;
    srv.set_backlog_limit(3);
    let to = srv.local_addr(TransportKind::Udp).unwrap();
    let (client, mut events) = udp_endpoint().await;
    // The TU takes nothing: three requests wait, the fourth is refused.
    for _ in 0..4 {
        options(&client, TransportKind::Udp, to).await;
    }
    assert_eq!(final_status(&mut events).await, 503);
    assert_eq!(srv.backlog(), 3, "the fourth was shed, not queued");
    assert_eq!(srv.shed_count(), 1);
    // Once the TU has caught up (answering what it took), new requests reach it.
    while srv.backlog() > 0 {
        if let Some(TsxEvent::Request { key, request, .. }) = tu.recv().await {
            let _ = srv.send_response(&key, &request.make_response(200, "OK"));
        }
    }
    for _ in 0..3 {
        assert_eq!(final_status(&mut events).await, 200);
    }
    options(&client, TransportKind::Udp, to).await;
    let Some(TsxEvent::Request { key, request, .. }) = tu.recv().await else {
        panic!("no request after the backlog drained")
    };
    let _ = srv.send_response(&key, &request.make_response(200, "OK"));
    assert_eq!(final_status(&mut events).await, 200);
}
