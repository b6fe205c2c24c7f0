//! Media relay throughput and added latency (`cargo bench -p pbx-lite --bench relay`), with
//! plain RTP and then with SRTP on both legs of every call, in the same run.
//!
//! Calls are relayed by real bridged [`MediaPort`]s on a two-thread tokio runtime, as in `pbx-lite
//! serve`. Each call carries G.711 at 20 ms both ways (50 packets/s per direction, 172-byte
//! RTP packets). Two loopback sockets play all the A and all the B phones; each packet
//! carries its send time. The number of calls doubles until a packet is lost; for each step
//! the figures are packets/s through the relay, loss, and the one-way latency through the
//! relay minus that of the same packets sent phone to phone without it (median, p99).
//! The load generator shares the machine's cores with the relay, as SIPp does in the SIP
//! load script.
//!
//! With SRTP every relay port is keyed (AES_CM_128_HMAC_SHA1_80): it decrypts what its phone
//! sends and encrypts what it forwards. The phones' packets are encrypted once per tick and
//! side and sent to every call (each port checks replays on its own), so the generator's
//! work is the same as with plain RTP; what arrives is counted, not decrypted, so the SRTP
//! table gives no latency.

use media::srtp::{Crypto, SrtpSession, Suite};
use pbx_lite::relay::{MediaPort, PortRange, Remote, bridge};
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const PACKET: usize = 172;
const TICK: Duration = Duration::from_millis(20);

fn packet(seq: u16, sent_ns: u64) -> [u8; PACKET] {
    let mut p = [0u8; PACKET];
    p[0] = 0x80;
    p[1] = 0; // PCMU
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p[12..20].copy_from_slice(&sent_ns.to_be_bytes());
    p
}

/// Receives until `stop`, returning each packet's one-way latency in µs.
fn receiver(
    sock: UdpSocket,
    base: Instant,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Vec<u32>> {
    std::thread::spawn(move || {
        sock.set_read_timeout(Some(Duration::from_millis(50))).ok();
        let mut out = Vec::new();
        let mut buf = [0u8; 2048];
        loop {
            match sock.recv(&mut buf) {
                Ok(n) if n >= 20 => {
                    let now = base.elapsed().as_nanos() as u64;
                    let mut ts = [0u8; 8];
                    ts.copy_from_slice(&buf[12..20]);
                    let sent = u64::from_be_bytes(ts);
                    out.push((now.saturating_sub(sent) / 1000) as u32);
                }
                Ok(_) => {}
                Err(_) if stop.load(Ordering::Relaxed) => return out,
                Err(_) => {}
            }
        }
    })
}

struct Step {
    sent: usize,
    latencies: Vec<u32>,
    seconds: f64,
}

/// Sends one packet per destination per 20 ms tick for `seconds`, from `a` to each of
/// `a_to` and from `b` to each of `b_to`, and collects what arrives at `a` and `b`.
fn run(
    a: &UdpSocket,
    b: &UdpSocket,
    a_to: &[SocketAddr],
    b_to: &[SocketAddr],
    seconds: f64,
    (seq, srtp): (&mut u16, &mut Option<[SrtpSession; 2]>),
) -> Step {
    let base = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let ra = receiver(a.try_clone().expect("clone"), base, stop.clone());
    let rb = receiver(b.try_clone().expect("clone"), base, stop.clone());
    let ticks = (seconds / TICK.as_secs_f64()) as u32;
    let mut sent = 0;
    let t0 = Instant::now();
    // Each 20 ms tick is cut into 1 ms slots and every destination gets its packet in one
    // of them, as calls that started at random moments would.
    let dests: Vec<(usize, &UdpSocket, &SocketAddr)> = a_to
        .iter()
        .map(|d| (0, a, d))
        .chain(b_to.iter().map(|d| (1, b, d)))
        .collect();
    let slots = 20;
    for tick in 0..ticks {
        // With SRTP, each side's packet of this tick, encrypted once.
        let sealed = srtp.as_mut().map(|[sa, sb]| {
            let p = packet(
                seq.wrapping_add(tick as u16),
                base.elapsed().as_nanos() as u64,
            );
            [sa.protect(&p).expect("SRTP"), sb.protect(&p).expect("SRTP")]
        });
        for slot in 0..slots {
            let due = t0 + TICK * tick + TICK * slot / slots;
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            for (side, sock, d) in dests.iter().skip(slot as usize).step_by(slots as usize) {
                let plain;
                let p: &[u8] = match &sealed {
                    Some(s) => &s[*side],
                    None => {
                        plain = packet(
                            seq.wrapping_add(tick as u16),
                            base.elapsed().as_nanos() as u64,
                        );
                        &plain
                    }
                };
                if sock.send_to(p, d).is_ok() {
                    sent += 1;
                }
            }
        }
    }
    // The next run goes on from here: a relay port takes no packet it has seen (SRTP).
    *seq = seq.wrapping_add(ticks as u16);
    let seconds = t0.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let mut latencies = ra.join().expect("receiver");
    latencies.extend(rb.join().expect("receiver"));
    Step {
        sent,
        latencies,
        seconds,
    }
}

/// CPU time this process has used (user + system), from /proc (100 ticks a second): the
/// relay's and the generator's together, the generator's being the same in both modes.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_name = stat.rsplit_once(") ").map_or("", |(_, r)| r);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p) as usize]
}

/// The phones' and the relay's keys: the phones of side A and of side B each share one.
struct Keys {
    relay: Crypto,
    phone: Crypto,
}

/// Doubles the calls from 50 until a packet is lost (or 3,200 calls); the best step with
/// no loss, `(calls, packets/s, CPU µs a packet)`. With `keys`, every port is SRTP.
fn ladder(
    rt: &tokio::runtime::Runtime,
    (a, b): (&UdpSocket, &UdpSocket),
    (base50, base99): (u32, u32),
    seconds: f64,
    keys: Option<&Keys>,
) -> Option<(usize, f64, f64)> {
    let (a_addr, b_addr) = (a.local_addr().expect("addr"), b.local_addr().expect("addr"));
    let sessions = || {
        keys.map(|k| {
            let s = || SrtpSession::new(&k.phone, &k.relay).expect("SRTP");
            [s(), s()]
        })
    };
    println!(
        "{:>6} {:>10} {:>9} {:>14} {:>11} {:>13}   ({})",
        "calls",
        "packets/s",
        "lost",
        "added median",
        "added p99",
        "CPU µs/packet",
        if keys.is_some() {
            "SRTP on both legs"
        } else {
            "plain RTP"
        }
    );
    let ports = PortRange::new(40000, 60000);
    let mut relays: Vec<(MediaPort, MediaPort)> = Vec::new();
    let mut best = None;
    let mut calls = 50;
    let (mut seq, mut srtp) = (0u16, sessions());
    while calls <= 3200 {
        while relays.len() < calls {
            let ip = "127.0.0.1".parse().expect("ip");
            let open = || {
                rt.block_on(MediaPort::open(&ports, ip))
                    .expect("relay ports")
            };
            let (mut pa, mut pb) = (open(), open());
            let remote = |addr| Remote {
                addr: Some(addr),
                pt: 0,
                event_pt: None,
                signalled: None,
            };
            pa.set_remote(remote(a_addr));
            pb.set_remote(remote(b_addr));
            if let Some(k) = keys {
                for p in [&pa, &pb] {
                    p.set_srtp(Some((k.relay.clone(), k.phone.clone())))
                        .expect("SRTP keys");
                }
            }
            rt.block_on(async { bridge(&mut pa, &mut pb) });
            relays.push((pa, pb));
        }
        let ip = std::net::IpAddr::from([127, 0, 0, 1]);
        let to_a_side: Vec<SocketAddr> = relays
            .iter()
            .map(|r| SocketAddr::new(ip, r.0.port()))
            .collect();
        let to_b_side: Vec<SocketAddr> = relays
            .iter()
            .map(|r| SocketAddr::new(ip, r.1.port()))
            .collect();
        // Latching: the first packets teach each relay where the phones are.
        let _ = run(a, b, &to_a_side, &to_b_side, 0.1, (&mut seq, &mut srtp));
        let cpu0 = cpu_seconds();
        let step = run(a, b, &to_a_side, &to_b_side, seconds, (&mut seq, &mut srtp));
        let cpu = (cpu_seconds() - cpu0) * 1e6 / step.sent.max(1) as f64;
        let mut lat = step.latencies.clone();
        lat.sort_unstable();
        let lost = step.sent.saturating_sub(lat.len());
        let pps = lat.len() as f64 / step.seconds;
        if keys.is_some() {
            println!(
                "{calls:>6} {pps:>10.0} {lost:>9} {:>14} {:>11} {cpu:>13.2}",
                "-", "-"
            );
        } else {
            println!(
                "{calls:>6} {pps:>10.0} {lost:>9} {:>11} µs {:>8} µs {cpu:>13.2}",
                percentile(&lat, 0.5).saturating_sub(base50),
                percentile(&lat, 0.99).saturating_sub(base99),
            );
        }
        if lost > 0 {
            break;
        }
        best = Some((calls, pps, cpu));
        calls *= 2;
    }
    best
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let a = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let b = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let (a_addr, b_addr) = (a.local_addr().expect("addr"), b.local_addr().expect("addr"));
    let seconds = std::env::var("RELAY_BENCH_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3.0);

    // Phone to phone without the relay: the baseline latency of the same path.
    let direct = run(&a, &b, &[b_addr], &[a_addr], 1.0, (&mut 0, &mut None));
    let mut base = direct.latencies.clone();
    base.sort_unstable();
    let baseline = (percentile(&base, 0.5), percentile(&base, 0.99));
    println!(
        "relay: 50 packets/s per direction per call, {PACKET}-byte packets, {seconds} s per step; direct path median {} µs, p99 {} µs",
        baseline.0, baseline.1
    );
    let plain = ladder(&rt, (&a, &b), baseline, seconds, None);
    let keys = Keys {
        relay: Crypto::generate(1, Suite::AesCm128HmacSha1_80),
        phone: Crypto::generate(1, Suite::AesCm128HmacSha1_80),
    };
    let srtp = ladder(&rt, (&a, &b), baseline, seconds, Some(&keys));
    let say = |what: &str, best: Option<(usize, f64, f64)>| match best {
        Some((calls, pps, cpu)) => format!(
            "{what} {pps:.0} packets/s ({calls} calls) with no loss, {cpu:.2} CPU µs a packet"
        ),
        None => format!("{what}: loss already at the first step"),
    };
    println!("relay: {}", say("plain RTP", plain));
    println!("relay: {}", say("SRTP on both legs", srtp));
    if let (Some((_, p, pc)), Some((_, s, sc))) = (plain, srtp) {
        println!(
            "relay: SRTP against plain RTP: packets/s ratio {:.2}, CPU a packet ratio {:.2}",
            s / p,
            sc / pc
        );
    }
}
