//! Conference mixing cost (`cargo bench -p pbx-lite --bench conference`).
//!
//! 1. The work of one 20 ms frame of a 32-member room as the relay does it: decode each
//!    member's G.711 frame, mix-minus, encode a frame for each member. Printed per frame and
//!    as a share of one core's 20 ms.
//! 2. The same for a 3-member room, and the number of such rooms one core's worth of that
//!    work fits in.
//! 3. Live: rooms of three real [`MediaPort`]s in real [`Room`]s on a single-thread tokio
//!    runtime (one core), phones played by one loopback socket sending G.711 every 20 ms
//!    to every port from another thread. The number of rooms doubles until fewer than 99%
//!    of the mixed frames the rooms should send come back; the last step that kept up is
//!    the figure.

use media::g711::Law;
use media::mixer::Mixer;
use media::rtp::RtpPacket;
use pbx_lite::relay::{FRAME, MediaPort, PortRange, Remote, Room};
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// µs of work per 20 ms frame for a room of `members`.
fn frame_cost(members: usize) -> f64 {
    let input: Vec<Vec<u8>> = (0..members)
        .map(|m| {
            let pcm: Vec<i16> = (0..FRAME)
                .map(|i| ((i * 37 + m * 101) % 2000) as i16 - 1000)
                .collect();
            let mut out = Vec::new();
            Law::Mu.encode(&pcm, &mut out);
            out
        })
        .collect();
    let mut mixer = Mixer::default();
    for m in 0..members {
        mixer.add(m as u32);
    }
    let mut decoded = vec![Vec::with_capacity(FRAME); members];
    let mut encoded = Vec::with_capacity(FRAME);
    let rounds = 20_000 / members.max(1) + 200;
    let t0 = Instant::now();
    let mut sink = 0u64;
    for _ in 0..rounds {
        for (d, i) in decoded.iter_mut().zip(&input) {
            Law::Mu.decode(i, d);
        }
        for (_, heard) in mixer.mix(|id| decoded[id as usize].as_slice()) {
            Law::Mu.encode(heard, &mut encoded);
            sink = sink.wrapping_add(u64::from(encoded[0]));
        }
    }
    std::hint::black_box(sink);
    t0.elapsed().as_secs_f64() * 1e6 / rounds as f64
}

fn voice(seq: u16) -> Vec<u8> {
    let mut payload = Vec::new();
    Law::Mu.encode(&[800; FRAME], &mut payload);
    RtpPacket {
        payload_type: 0,
        seq,
        timestamp: u32::from(seq) * FRAME as u32,
        ssrc: 7,
        payload,
        ..Default::default()
    }
    .to_bytes()
}

/// Runs `rooms` live 3-member rooms for `seconds`: (mixed frames received, expected).
fn live(rooms: usize, seconds: f64, ports: &PortRange) -> (u64, u64) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let phone = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let phone_addr = phone.local_addr().expect("addr");
    let ip = "127.0.0.1".parse().expect("ip");
    let (_rooms, targets): (Vec<(Room, Vec<MediaPort>)>, Vec<SocketAddr>) = rt.block_on(async {
        let mut all = Vec::new();
        let mut targets = Vec::new();
        for _ in 0..rooms {
            let mut room = Room::start();
            let mut members = Vec::new();
            for _ in 0..3 {
                let mut p = MediaPort::open(ports, ip).await.expect("ports");
                p.set_remote(Remote {
                    addr: Some(phone_addr),
                    pt: 0,
                    event_pt: None,
                    signalled: None,
                });
                room.join(&mut p);
                targets.push(SocketAddr::new(ip, p.port()));
                members.push(p);
            }
            all.push((room, members));
        }
        (all, targets)
    });
    let received = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let counter = {
        let (sock, received, stop) = (
            phone.try_clone().expect("clone"),
            received.clone(),
            stop.clone(),
        );
        std::thread::spawn(move || {
            sock.set_read_timeout(Some(Duration::from_millis(50))).ok();
            let mut buf = [0u8; 2048];
            while !stop.load(Ordering::Relaxed) {
                if sock.recv(&mut buf).is_ok() {
                    received.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    let sender = {
        let (sock, stop) = (phone.try_clone().expect("clone"), stop.clone());
        std::thread::spawn(move || {
            let t0 = Instant::now();
            let mut seq = 0u16;
            while !stop.load(Ordering::Relaxed) {
                let p = voice(seq);
                for t in &targets {
                    let _ = sock.send_to(&p, t);
                }
                seq = seq.wrapping_add(1);
                let due = t0 + Duration::from_millis(20) * u32::from(seq);
                if let Some(w) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(w);
                }
            }
        })
    };
    // Warm up a little, then count for `seconds`.
    rt.block_on(async { tokio::time::sleep(Duration::from_millis(300)).await });
    let before = received.load(Ordering::Relaxed);
    rt.block_on(async { tokio::time::sleep(Duration::from_secs_f64(seconds)).await });
    let got = received.load(Ordering::Relaxed) - before;
    stop.store(true, Ordering::Relaxed);
    let _ = sender.join();
    let _ = counter.join();
    let expected = (rooms as f64 * 3.0 * 50.0 * seconds) as u64;
    (got, expected)
}

fn main() {
    let big = frame_cost(32);
    println!(
        "conference: 32-member room, one 20 ms frame (decode 32, mix-minus, encode 32): {big:.1} µs = {:.2}% of a core",
        big / 200.0
    );
    e2e::kit::bench_row(
        "conference: mixing a 32-member room",
        big / 200.0,
        "",
        0.0,
        "% of a core",
        "value<=2",
    );
    let small = frame_cost(3);
    println!(
        "conference: 3-member room, one frame: {small:.2} µs; mixing work alone fits {:.0} such rooms in one core",
        20_000.0 / small
    );
    let seconds = std::env::var("CONFERENCE_BENCH_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3.0);
    let ports = PortRange::new(20000, 60000);
    println!("live 3-member rooms on one core (socket I/O included), {seconds} s per step:");
    println!("{:>6} {:>14} {:>9}", "rooms", "frames/s out", "delivered");
    let mut best = None;
    let mut rooms = 25;
    while rooms <= 3200 {
        let (got, expected) = live(rooms, seconds, &ports);
        let share = got as f64 / expected.max(1) as f64;
        println!(
            "{rooms:>6} {:>14.0} {:>8.1}%",
            got as f64 / seconds,
            share * 100.0
        );
        if share < 0.99 {
            break;
        }
        best = Some(rooms);
        rooms *= 2;
    }
    match best {
        Some(r) => println!("conference: one core carries {r} concurrent 3-member rooms (live)"),
        None => println!("conference: fewer than 25 live rooms kept up"),
    }
}
