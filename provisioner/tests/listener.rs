//! The HTTP listener's limits (issue 15, finding 6: "HTTP has no timeouts; 300 slow uploads
//! held 303 MB"), on loopback with short limits: connections past the per-address cap are
//! closed at once, headers that never finish and a body that trickles are cut off, a body
//! past the limit gets 413, and a normal request is still served after all of it.
#![allow(clippy::unwrap_used)]

use axum::Router;
use axum::body::Bytes;
use axum::routing::{get, post};
use provisioner::listener::{HttpLimits, serve};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn start() -> SocketAddr {
    let app = Router::new().route("/", get(|| async { "hello" })).route(
        "/upload",
        post(|b: Bytes| async move { b.len().to_string() }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let limits = HttpLimits {
        connections: 100,
        per_address: 3,
        header_read: Duration::from_millis(300),
        lifetime: Duration::from_secs(2),
        body: 1024,
    };
    tokio::spawn(serve(listener, app, limits));
    addr
}

/// Is `s` closed by the server within `within`?
async fn closed(s: &mut TcpStream, within: Duration) -> bool {
    let mut b = [0u8; 256];
    loop {
        match tokio::time::timeout(within, s.read(&mut b)).await {
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => continue, // a response (408, say) before the close
            Err(_) => return false,
        }
    }
}

async fn get_root(addr: SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut out))
        .await
        .unwrap()
        .unwrap();
    out
}

#[tokio::test]
async fn connections_are_capped_and_slow_clients_cut_off() {
    let addr = start().await;
    let mut slow = Vec::new();
    for _ in 0..3 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.unwrap();
        slow.push(s);
    }
    let mut fourth = TcpStream::connect(addr).await.unwrap();
    assert!(
        closed(&mut fourth, Duration::from_millis(200)).await,
        "past the cap: closed at once"
    );
    for s in &mut slow {
        assert!(
            closed(s, Duration::from_secs(3)).await,
            "headers that never finish"
        );
    }
    // A body trickled a byte at a time is cut at the connection's lifetime.
    let mut trickle = TcpStream::connect(addr).await.unwrap();
    trickle
        .write_all(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
        .await
        .unwrap();
    let t0 = tokio::time::Instant::now();
    let mut cut = false;
    while t0.elapsed() < Duration::from_secs(6) {
        if trickle.write_all(b"x").await.is_err() {
            cut = true;
            break;
        }
        let mut b = [0u8; 64];
        if let Ok(Ok(0)) =
            tokio::time::timeout(Duration::from_millis(100), trickle.read(&mut b)).await
        {
            cut = true;
            break;
        }
    }
    assert!(cut, "a trickled body is cut off");
    assert!(t0.elapsed() < Duration::from_secs(4), "at the lifetime");
    assert!(get_root(addr).await.ends_with("hello"), "still serving");
}

#[tokio::test]
async fn a_body_past_the_limit_gets_413() {
    let addr = start().await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let head =
        "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 4096\r\nConnection: close\r\n\r\n";
    s.write_all(head.as_bytes()).await.unwrap();
    let _ = s.write_all(&[b'x'; 4096]).await;
    let mut out = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut out)).await;
    assert!(out.starts_with("HTTP/1.1 413"), "{out}");
    assert!(get_root(addr).await.ends_with("hello"));
}
