//! Registrations per second over TLS against UDP, in one run (`cargo bench -p pbx-lite
//! --bench register`; `scripts/bench-pbx` runs it too).
//!
//! `pbx-lite serve` (this build) with 2,000 stations; 32 phones made of the SIP core, each a
//! SIP endpoint of its own, register station after station as fast as the PBX answers:
//! REGISTER, 401, REGISTER with the digest, 200. Over TLS each phone keeps one connection
//! (as desk phones do: the handshake is once, not per registration); over UDP they send
//! datagrams. The phones share the machine's two cores with the PBX, the same for both.
//! `REGISTER_BENCH_SECONDS` (default 5) is how long each transport is measured.

use sip::auth::DigestClient;
use sip::endpoint::Endpoint;
use sip::transaction::{Peer, TimerConfig, TransportKind, TsxEvent};
use sip::transport::{TlsSettings, TransportConfig};
use sip::types::Name;
use sip::{Method, Request, Response, build};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const PBX: &str = env!("CARGO_BIN_EXE_pbx-lite");
const STATIONS: u32 = 2000;
const BASE: u32 = 3000;
const PHONES: u32 = 32;

fn free_port() -> u16 {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("a port");
    s.local_addr().expect("its address").port()
}

fn cli(db: &std::path::Path, args: &[&str]) {
    let ok = Command::new(PBX)
        .arg("--db")
        .arg(db)
        .args(args)
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "pbx-lite {args:?} failed");
}

/// The next final response.
async fn final_response(events: &mut sip::endpoint::Events) -> Option<Response> {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), events.recv()).await {
            Ok(Some(TsxEvent::Response { response, .. })) if response.status >= 200 => {
                return Some(response);
            }
            Ok(Some(_)) => {}
            _ => return None,
        }
    }
}

fn register(ep: &Endpoint, pbx: SocketAddr, transport: TransportKind, number: u32) -> Request {
    let local = ep
        .local_addr(TransportKind::Udp)
        .expect("the phone's address");
    let scheme = if transport == TransportKind::Tls {
        "sips"
    } else {
        "sip"
    };
    let mut r = build::request(
        Method::Register,
        &format!("{scheme}:{pbx}"),
        &format!("{scheme}:{number}@{pbx}"),
        &format!("{scheme}:{number}@{pbx}"),
        transport,
        local,
    )
    .expect("a REGISTER");
    r.headers.insert(Name::EXPIRES, "600");
    r
}

/// One phone: registers stations `first`, `first + PHONES`, … until `until`, counting each
/// 200 in `done`.
async fn phone(
    ca: Vec<u8>,
    pbx: SocketAddr,
    transport: TransportKind,
    first: u32,
    until: Instant,
    done: Arc<AtomicU64>,
) {
    let (ep, mut events) = Endpoint::start(
        TransportConfig {
            udp: Some("127.0.0.1:0".parse().expect("an address")),
            tls_client: Some(TlsSettings::client(&ca, "127.0.0.1").expect("TLS settings")),
            ..Default::default()
        },
        TimerConfig::default(),
    )
    .await
    .expect("a phone");
    let peer = Peer::new(transport, pbx);
    let mut i = first;
    while Instant::now() < until {
        let number = BASE + i % STATIONS;
        i += PHONES;
        let first = register(&ep, pbx, transport, number);
        if ep.send_request(first.clone(), peer).is_err() {
            continue;
        }
        let Some(challenge) = final_response(&mut events).await else {
            continue;
        };
        let mut again = first;
        let mut digest = DigestClient::new(&format!("u{number}"), &format!("Pw-{number}-bench"));
        if challenge.status != 401 || !digest.authorize(&mut again, &challenge) {
            continue;
        }
        again.headers.remove(&Name::CSEQ);
        again.headers.insert(Name::CSEQ, "2 REGISTER");
        again.headers.remove(&Name::VIA);
        let local = ep.local_addr(TransportKind::Udp).expect("an address");
        again.headers.insert(
            Name::VIA,
            build::via_value(transport, local, &build::new_branch()),
        );
        if ep.send_request(again, peer).is_ok()
            && final_response(&mut events)
                .await
                .is_some_and(|r| r.status == 200)
        {
            done.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Registrations per second over `transport` for `seconds`.
fn measure(
    rt: &tokio::runtime::Runtime,
    ca: &[u8],
    pbx: SocketAddr,
    transport: TransportKind,
    seconds: f64,
) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    let until = t0 + Duration::from_secs_f64(seconds);
    rt.block_on(async {
        let phones: Vec<_> = (0..PHONES)
            .map(|p| tokio::spawn(phone(ca.to_vec(), pbx, transport, p, until, done.clone())))
            .collect();
        for p in phones {
            let _ = p.await;
        }
    });
    done.load(Ordering::Relaxed) as f64 / t0.elapsed().as_secs_f64()
}

fn main() {
    let seconds: f64 = std::env::var("REGISTER_BENCH_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5.0);
    let dir = tempfile::tempdir().expect("a folder");
    let db = dir.path().join("office.db");
    let csv = dir.path().join("stations.csv");
    let mut rows = String::from("number,user_id,password,name,mac,model\n");
    for n in BASE..BASE + STATIONS {
        rows.push_str(&format!("{n},u{n},Pw-{n}-bench,Bench {n},,softphone\n"));
    }
    std::fs::write(&csv, rows).expect("the stations file");
    cli(&db, &["station", "import", csv.to_str().expect("a path")]);
    cli(&db, &["settings", "set", "sip.rate_per_address", "0"]);
    let (udp, tls) = (free_port(), free_port());
    let mut pbx = Command::new(PBX)
        .arg("--db")
        .arg(&db)
        .args(["serve", "--sip", &format!("127.0.0.1:{udp}")])
        .args(["--tls", &format!("127.0.0.1:{tls}")])
        .args(["--no-provisioning", "--admin", "127.0.0.1:0"])
        .stderr(Stdio::null())
        .spawn()
        .expect("pbx-lite serve");
    let t0 = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", tls)).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "pbx-lite did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let ca = std::fs::read(dir.path().join("office.db.tls/ca.pem")).expect("the office CA");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let at = |port| SocketAddr::from(([127, 0, 0, 1], port));
    println!(
        "register: {PHONES} phones, {STATIONS} stations, REGISTER + 401 + REGISTER with digest + 200, {seconds} s each"
    );
    let by_udp = measure(&rt, &ca, at(udp), TransportKind::Udp, seconds);
    let by_tls = measure(&rt, &ca, at(tls), TransportKind::Tls, seconds);
    println!("{:>10} {:>16}", "transport", "registrations/s");
    println!("{:>10} {by_udp:>16.0}", "UDP");
    println!("{:>10} {by_tls:>16.0}", "TLS");
    println!(
        "register: TLS {by_tls:.0}/s against UDP {by_udp:.0}/s (ratio {:.2})",
        by_tls / by_udp.max(1.0)
    );
    let _ = pbx.kill();
    let _ = pbx.wait();
}
