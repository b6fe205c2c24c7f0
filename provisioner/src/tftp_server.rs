//! The TFTP socket driver: one listening socket for requests, and for each read a new
//! socket (the transfer ID) that runs a [`Transfer`] on tokio's clock. Write requests,
//! malformed packets, unsafe and over-long names get an error packet; nothing stops the
//! server.

use crate::office::{Asker, Fetch, Office};
use crate::slots::Slots;
use crate::tftp::{ErrorCode, Outcome, Packet, Transfer};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use tokio::net::UdpSocket;

/// Transfers at once, in all; from one address, the `provisioning.tftp_per_address` setting
/// (8: a phone fetches its files one after another). A flood of read requests past these is
/// dropped without an answer (each transfer holds a socket and a task, and an answer to a
/// forged address would be reflection).
pub const MAX_TRANSFERS: usize = 512;

fn per_address(office: &Office) -> usize {
    office
        .db()
        .setting("provisioning.tftp_per_address")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8)
}

/// Serves TFTP on `socket` until the task is dropped.
pub async fn serve(socket: UdpSocket, office: Arc<Office>) {
    let socket = Arc::new(socket);
    let in_flight = Arc::new(Slots::default());
    let mut buf = vec![0u8; 65_536];
    loop {
        let Ok((n, peer)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        let packet = Packet::parse(&buf[..n]);
        let place = match &packet {
            Ok(Packet::Rrq { .. }) => {
                match in_flight.take(peer.ip(), MAX_TRANSFERS, per_address(&office)) {
                    Some(p) => Some(p),
                    None => continue, // too many at once: dropped
                }
            }
            _ => None,
        };
        let office = office.clone();
        let listener = socket.clone();
        tokio::spawn(async move {
            let reply = match packet {
                Ok(Packet::Rrq {
                    name,
                    mode,
                    options,
                }) => {
                    read_request(office, peer, name, mode, options).await;
                    drop(place);
                    None
                }
                Ok(Packet::Wrq { .. }) => Some(Packet::error(
                    ErrorCode::AccessViolation,
                    "read-only server: writes are refused",
                )),
                Ok(_) => Some(Packet::error(
                    ErrorCode::IllegalOperation,
                    "expected a read request",
                )),
                Err(e) => Some(Packet::error(
                    ErrorCode::IllegalOperation,
                    &format!("malformed request: {e}"),
                )),
            };
            if let Some(r) = reply {
                let _ = listener.send_to(&r.to_bytes(), peer).await;
            }
        });
    }
}

/// Why a name is refused before any lookup: outside the virtual root, or not a plain name.
fn unsafe_name(name: &str) -> Option<&'static str> {
    let n = name.trim_start_matches('/');
    if n.split(['/', '\\']).any(|part| part == "..") {
        return Some("access outside the root is refused");
    }
    if n.contains(['\\', '\0']) || n.chars().any(char::is_control) {
        return Some("bad file name");
    }
    None
}

async fn read_request(
    office: Arc<Office>,
    peer: SocketAddr,
    name: String,
    mode: String,
    options: Vec<(String, String)>,
) {
    let bind: SocketAddr = if peer.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    }
    .parse()
    .unwrap_or(peer);
    let Ok(sock) = UdpSocket::bind(bind).await else {
        return;
    };
    if sock.connect(peer).await.is_err() {
        return;
    }
    let local_host = sock
        .local_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_default();
    let refuse = |code, msg: &str| Packet::error(code, msg).to_bytes();
    if mode != "octet" && mode != "netascii" {
        let _ = sock
            .send(&refuse(
                ErrorCode::IllegalOperation,
                "mode must be octet or netascii",
            ))
            .await;
        return;
    }
    if let Some(why) = unsafe_name(&name) {
        let _ = sock.send(&refuse(ErrorCode::AccessViolation, why)).await;
        log(&office, peer, &name, 0, why);
        return;
    }
    let asker = Asker {
        protocol: "tftp",
        address: peer.ip().to_string(),
        local_host,
        credentials: None,
    };
    let (year, now) = crate::clock();
    let fetch = {
        let office = office.clone();
        let name = name.clone();
        tokio::task::spawn_blocking(move || office.fetch(&name, &asker, year, now)).await
    };
    let data = match fetch {
        Ok(Fetch::Found(d)) => d,
        Ok(Fetch::Forbidden) => {
            let _ = sock
                .send(&refuse(
                    ErrorCode::AccessViolation,
                    "this file is served over HTTP with credentials only",
                ))
                .await;
            return;
        }
        _ => {
            let _ = sock
                .send(&refuse(ErrorCode::FileNotFound, "File not found"))
                .await;
            return;
        }
    };
    let mut t = Transfer::new(Instant::now(), data, &options);
    let mut buf = vec![0u8; 65_536];
    loop {
        while let Some(p) = t.poll_transmit() {
            if sock.send(&p).await.is_err() {
                return;
            }
        }
        if let Some(o) = t.outcome() {
            if let Outcome::Failed(why) = o {
                log(&office, peer, &name, 0, why);
            }
            return;
        }
        let Some(deadline) = t.poll_timeout() else {
            return;
        };
        tokio::select! {
            r = sock.recv(&mut buf) => match r {
                Ok(n) => t.handle_packet(Instant::now(), &buf[..n]),
                Err(_) => return,
            },
            _ = tokio::time::sleep_until(deadline.into()) => t.handle_timeout(Instant::now()),
        }
    }
}

/// Transfer failures after the file was found go to the log too.
fn log(office: &Office, peer: SocketAddr, name: &str, bytes: i64, result: &str) {
    let (_, now) = crate::clock();
    let _ = office.db().log(&stations::db::LogEntry {
        at: now,
        address: peer.ip().to_string(),
        protocol: "tftp".into(),
        file: name.to_string(),
        bytes,
        result: result.to_string(),
    });
}
