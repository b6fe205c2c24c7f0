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
//!
//! The same ladders are then run through rtpengine (Debian's rtpengine-daemon, the relay of
//! Kamailio and OpenSIPS deployments), in userspace (`--table=-1`) with as many worker
//! threads as this runtime: each call set up over its ng control protocol (an `offer` with
//! phone A's SDP, an `answer` with phone B's), with SRTP as SDES offers from both phones, so
//! that rtpengine too decrypts and encrypts every packet. Its CPU is read from /proc and
//! added to this process's (the generator's), so CPU µs a packet compare. Without rtpengine
//! installed those rows say so.

use e2e::kit::bench_row;
use media::srtp::{Crypto, SrtpSession, Suite};
use pbx_lite::relay::{MediaPort, PortRange, Remote, bridge};
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const PACKET: usize = 172;
const TICK: Duration = Duration::from_millis(20);
/// The relay's worker threads, ours and rtpengine's alike.
const THREADS: usize = 2;

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

/// CPU time a process (`self`, or a pid) has used (user + system), from /proc (100 ticks a
/// second). This process's is the relay's and the generator's together, the generator's
/// being the same in every mode.
fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
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

/// A relay under test.
trait Relay {
    fn name(&self) -> &'static str;
    /// Opens calls until there are `calls`; where the A phone and where the B phone of each
    /// call send (the phones being the sockets `phones`).
    fn grow(
        &mut self,
        calls: usize,
        phones: (SocketAddr, SocketAddr),
    ) -> (Vec<SocketAddr>, Vec<SocketAddr>);
    /// CPU seconds the relay has used outside this process.
    fn outside_cpu(&self) -> f64 {
        0.0
    }
}

/// pbx-lite's relay: bridged [`MediaPort`] pairs on this process's runtime.
struct Ours<'a> {
    rt: &'a tokio::runtime::Runtime,
    ports: PortRange,
    keys: Option<&'a Keys>,
    relays: Vec<(MediaPort, MediaPort)>,
}

impl Relay for Ours<'_> {
    fn name(&self) -> &'static str {
        "pbx-lite"
    }

    fn grow(
        &mut self,
        calls: usize,
        (a_addr, b_addr): (SocketAddr, SocketAddr),
    ) -> (Vec<SocketAddr>, Vec<SocketAddr>) {
        while self.relays.len() < calls {
            let ip = "127.0.0.1".parse().expect("ip");
            let open = || {
                self.rt
                    .block_on(MediaPort::open(&self.ports, ip))
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
            if let Some(k) = self.keys {
                for p in [&pa, &pb] {
                    p.set_srtp(Some((k.relay.clone(), k.phone.clone())))
                        .expect("SRTP keys");
                }
            }
            self.rt.block_on(async { bridge(&mut pa, &mut pb) });
            self.relays.push((pa, pb));
        }
        let ip = std::net::IpAddr::from([127, 0, 0, 1]);
        self.relays
            .iter()
            .map(|r| {
                (
                    SocketAddr::new(ip, r.0.port()),
                    SocketAddr::new(ip, r.1.port()),
                )
            })
            .unzip()
    }
}

/// rtpengine, started for one ladder and stopped with it.
struct Rtpengine {
    child: std::process::Child,
    control: UdpSocket,
    ng: SocketAddr,
    /// The phones' `a=crypto` value, for SRTP.
    crypto: Option<String>,
    to_a_side: Vec<SocketAddr>,
    to_b_side: Vec<SocketAddr>,
}

/// One bencoded dictionary of strings (keys sorted, as bencode wants).
fn bencode(pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut pairs = pairs.to_vec();
    pairs.sort_unstable();
    let mut out = b"d".to_vec();
    for (k, v) in pairs {
        for s in [k, v] {
            out.extend(format!("{}:{s}", s.len()).into_bytes());
        }
    }
    out.push(b'e');
    out
}

/// The bencoded string after `key` in an ng answer.
fn bvalue<'a>(answer: &'a [u8], key: &str) -> Option<&'a [u8]> {
    let tag = format!("{}:{key}", key.len());
    let at = answer
        .windows(tag.len())
        .position(|w| w == tag.as_bytes())?
        + tag.len();
    let colon = at + answer[at..].iter().position(|&c| c == b':')?;
    let len: usize = std::str::from_utf8(&answer[at..colon]).ok()?.parse().ok()?;
    answer.get(colon + 1..colon + 1 + len)
}

impl Rtpengine {
    fn start(threads: usize, keys: Option<&Keys>) -> Option<Rtpengine> {
        let free = || {
            UdpSocket::bind("127.0.0.1:0")
                .and_then(|s| s.local_addr())
                .expect("a free port")
        };
        let ng = free();
        let child = std::process::Command::new("rtpengine")
            .args([
                "--config-file=none",
                "--foreground",
                "--log-stderr",
                "--table=-1",
            ])
            .args([
                "--interface=127.0.0.1",
                "--port-min=30000",
                "--port-max=39999",
            ])
            .arg(format!("--listen-ng={ng}"))
            .arg(format!("--num-threads={threads}"))
            .arg("--log-level=3")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .ok()?;
        let control = UdpSocket::bind("127.0.0.1:0").expect("bind");
        control
            .set_read_timeout(Some(Duration::from_millis(200)))
            .ok();
        let mut r = Rtpengine {
            child,
            control,
            ng,
            crypto: keys.map(|k| k.phone.to_sdp()),
            to_a_side: Vec::new(),
            to_b_side: Vec::new(),
        };
        // Ready when it answers a ping.
        for _ in 0..50 {
            if r.command(&[("command", "ping")]).is_some() {
                return Some(r);
            }
        }
        None
    }

    /// Sends an ng command; its answer.
    fn command(&mut self, pairs: &[(&str, &str)]) -> Option<Vec<u8>> {
        let cookie = format!("{} ", rand::random::<u32>());
        let mut msg = cookie.clone().into_bytes();
        msg.extend(bencode(pairs));
        self.control.send_to(&msg, self.ng).ok()?;
        let mut buf = vec![0u8; 65536];
        loop {
            let n = self.control.recv(&mut buf).ok()?;
            if buf[..n].starts_with(cookie.as_bytes()) {
                return Some(buf[cookie.len()..n].to_vec());
            }
        }
    }

    /// An offer or answer carrying a phone's SDP; the port rtpengine gives the other phone.
    fn negotiate(&mut self, pairs: &[(&str, &str)], phone: SocketAddr) -> SocketAddr {
        let profile = if self.crypto.is_some() { "SAVP" } else { "AVP" };
        let mut sdp = format!(
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=audio {} RTP/{profile} 0\r\na=rtpmap:0 PCMU/8000\r\n",
            phone.port()
        );
        if let Some(c) = &self.crypto {
            sdp += &format!("a=crypto:{c}\r\n");
        }
        let answer = self
            .command(&[pairs, &[("sdp", &sdp)]].concat())
            .expect("rtpengine answers");
        assert_eq!(
            bvalue(&answer, "result"),
            Some(&b"ok"[..]),
            "rtpengine: {}",
            String::from_utf8_lossy(&answer)
        );
        let sdp = String::from_utf8_lossy(bvalue(&answer, "sdp").expect("an SDP")).into_owned();
        let port = sdp
            .lines()
            .find_map(|l| l.strip_prefix("m=audio "))
            .and_then(|l| l.split(' ').next())
            .and_then(|p| p.parse().ok())
            .expect("a media port");
        SocketAddr::from(([127, 0, 0, 1], port))
    }
}

impl Relay for Rtpengine {
    fn name(&self) -> &'static str {
        "rtpengine"
    }

    fn grow(
        &mut self,
        calls: usize,
        (a_addr, b_addr): (SocketAddr, SocketAddr),
    ) -> (Vec<SocketAddr>, Vec<SocketAddr>) {
        while self.to_a_side.len() < calls {
            let i = self.to_a_side.len().to_string();
            let (call, a, b) = (format!("call-{i}"), format!("a-{i}"), format!("b-{i}"));
            let common = [("call-id", call.as_str()), ("from-tag", a.as_str())];
            // The offer's SDP (phone A) gives B's port; the answer's (phone B) gives A's.
            let to_b = self.negotiate(&[&common[..], &[("command", "offer")]].concat(), a_addr);
            let to_a = self.negotiate(
                &[
                    &common[..],
                    &[("command", "answer"), ("to-tag", b.as_str())],
                ]
                .concat(),
                b_addr,
            );
            self.to_a_side.push(to_a);
            self.to_b_side.push(to_b);
        }
        (self.to_a_side.clone(), self.to_b_side.clone())
    }

    fn outside_cpu(&self) -> f64 {
        cpu_seconds(&self.child.id().to_string())
    }
}

impl Drop for Rtpengine {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Raises the calls by half from 50 until a packet is lost (or 5,000 calls); the best step
/// with no loss, `(calls, packets/s, CPU µs a packet, added p99 µs)`. With `keys`, every
/// port is SRTP.
fn ladder(
    relay: &mut dyn Relay,
    (a, b): (&UdpSocket, &UdpSocket),
    (base50, base99): (u32, u32),
    seconds: f64,
    keys: Option<&Keys>,
) -> Option<(usize, f64, f64, u32)> {
    let phones = (a.local_addr().expect("addr"), b.local_addr().expect("addr"));
    let sessions = || {
        keys.map(|k| {
            let s = || SrtpSession::new(&k.phone, &k.relay).expect("SRTP");
            [s(), s()]
        })
    };
    println!(
        "{:>6} {:>10} {:>9} {:>14} {:>11} {:>13}   ({}, {})",
        "calls",
        "packets/s",
        "lost",
        "added median",
        "added p99",
        "CPU µs/packet",
        relay.name(),
        if keys.is_some() {
            "SRTP on both legs"
        } else {
            "plain RTP"
        }
    );
    let mut best = None;
    let mut calls = 50;
    let (mut seq, mut srtp) = (0u16, sessions());
    while calls <= 5000 {
        let (to_a_side, to_b_side) = relay.grow(calls, phones);
        // Latching: the first packets teach each relay where the phones are.
        let _ = run(a, b, &to_a_side, &to_b_side, 0.1, (&mut seq, &mut srtp));
        let cpu0 = cpu_seconds("self") + relay.outside_cpu();
        let step = run(a, b, &to_a_side, &to_b_side, seconds, (&mut seq, &mut srtp));
        let cpu =
            (cpu_seconds("self") + relay.outside_cpu() - cpu0) * 1e6 / step.sent.max(1) as f64;
        let mut lat = step.latencies.clone();
        lat.sort_unstable();
        let lost = step.sent.saturating_sub(lat.len());
        let pps = lat.len() as f64 / step.seconds;
        let p99 = percentile(&lat, 0.99).saturating_sub(base99);
        if keys.is_some() {
            println!(
                "{calls:>6} {pps:>10.0} {lost:>9} {:>14} {:>11} {cpu:>13.2}",
                "-", "-"
            );
        } else {
            println!(
                "{calls:>6} {pps:>10.0} {lost:>9} {:>11} µs {p99:>8} µs {cpu:>13.2}",
                percentile(&lat, 0.5).saturating_sub(base50),
            );
        }
        if lost > 0 {
            break;
        }
        best = Some((calls, pps, cpu, p99));
        calls = calls * 3 / 2;
    }
    best
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(THREADS)
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
    let keys = Keys {
        relay: Crypto::generate(1, Suite::AesCm128HmacSha1_80),
        phone: Crypto::generate(1, Suite::AesCm128HmacSha1_80),
    };
    // For profiling one side: RELAY_BENCH_ONLY=srtp (no plain ladders), =ours (no rtpengine),
    // or both, comma-separated.
    let only = std::env::var("RELAY_BENCH_ONLY").unwrap_or_default();
    let mut rows = Vec::new();
    for srtp in [false, true] {
        if only.contains("srtp") && !srtp {
            continue;
        }
        let keys = srtp.then_some(&keys);
        let mut ours = Ours {
            rt: &rt,
            ports: PortRange::new(40000, 60000),
            keys,
            relays: Vec::new(),
        };
        let mine = ladder(&mut ours, (&a, &b), baseline, seconds, keys);
        drop(ours);
        let peer = if only.contains("ours") {
            None
        } else {
            match Rtpengine::start(THREADS, keys) {
                Some(mut r) => ladder(&mut r, (&a, &b), baseline, seconds, keys),
                None => {
                    println!(
                        "rtpengine: not installed or not starting (apt-get install rtpengine-daemon)"
                    );
                    None
                }
            }
        };
        rows.push((
            if srtp {
                "SRTP on both legs"
            } else {
                "plain RTP"
            },
            mine,
            peer,
        ));
    }
    let say = |best: Option<(usize, f64, f64, u32)>| match best {
        Some((calls, pps, cpu, _)) => {
            format!("{pps:.0} packets/s ({calls} calls), {cpu:.2} CPU µs a packet")
        }
        None => "loss at the first step".into(),
    };
    for (what, mine, peer) in &rows {
        println!(
            "relay, {what}: pbx-lite {}; rtpengine {}",
            say(*mine),
            say(*peer)
        );
        if let (Some(m), Some(p)) = (mine, peer) {
            println!(
                "relay, {what}: pbx-lite against rtpengine: packets/s ratio {:.2}, CPU a packet ratio {:.2}",
                m.1 / p.1,
                m.2 / p.2
            );
            bench_row(
                // The load offered (100 packets/s a call) at the last step without loss: the
                // achieved rates of equal steps differ by a packet or two.
                &format!("relay packets/s at zero loss, {what}"),
                (m.0 * 100) as f64,
                "rtpengine",
                (p.0 * 100) as f64,
                "packets/s",
                "ratio>=1.0",
            );
            bench_row(
                &format!("relay CPU per packet, {what}"),
                m.2,
                "rtpengine",
                p.2,
                "µs",
                "-",
            );
            if *what == "plain RTP" {
                bench_row(
                    "relay added p99 latency, plain RTP",
                    f64::from(m.3) / 1000.0,
                    "rtpengine",
                    f64::from(p.3) / 1000.0,
                    "ms",
                    "value<=0.5",
                );
            }
        }
    }
}
