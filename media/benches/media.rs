//! `cargo bench -p media`: the cost of one 20 ms frame for each media step, and the number of
//! concurrent calls one core could carry. One call-frame is what a call costs every 20 ms
//! at one end: encode + protect outbound, unprotect + jitter buffer + decode inbound.

use media::codec::{Codec, OpusConfig};
use media::g711::Law;
use media::jitter::JitterBuffer;
use media::mixer::{UNITY, mix_minus};
use media::rtp::RtpPacket;
use media::srtp::{Crypto, SrtpSession, Suite};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Runs `f` for about a second; returns nanoseconds per call.
fn time(mut f: impl FnMut()) -> f64 {
    for _ in 0..200 {
        f();
    }
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < Duration::from_millis(800) {
        for _ in 0..50 {
            f();
        }
        n += 50;
    }
    start.elapsed().as_nanos() as f64 / n as f64
}

fn show(label: &str, ns: f64) -> f64 {
    println!("{label:<44} {:>9.2} µs per 20 ms frame", ns / 1000.0);
    ns
}

fn speechlike(n: usize, rate: f32) -> Vec<i16> {
    (0..n)
        .map(|i| {
            let t = i as f32 / rate;
            ((2.0 * std::f32::consts::PI * 180.0 * t).sin() * 6000.0
                + (2.0 * std::f32::consts::PI * 1100.0 * t).sin() * 2500.0) as i16
        })
        .collect()
}

fn main() {
    println!("media benchmark (one thread)");
    let pcm8 = speechlike(160, 8000.0);
    let pcm48 = speechlike(960, 48000.0);
    let mut g = Codec::g711(Law::Mu);
    let (mut pkt, mut out) = (Vec::new(), Vec::new());
    let g_enc = show(
        "G.711 encode",
        time(|| g.encode(black_box(&pcm8), &mut pkt).unwrap_or_default()),
    );
    g.encode(&pcm8, &mut pkt).unwrap_or_default();
    let g711_pkt = pkt.clone();
    let g_dec = show(
        "G.711 decode",
        time(|| g.decode(black_box(&g711_pkt), &mut out).unwrap_or_default()),
    );
    let mut o = Codec::opus(OpusConfig::default()).expect("opus");
    let o_enc = show(
        "Opus 48 kHz 24 kbit/s encode",
        time(|| o.encode(black_box(&pcm48), &mut pkt).unwrap_or_default()),
    );
    o.encode(&pcm48, &mut pkt).unwrap_or_default();
    let opus_pkt = pkt.clone();
    let o_dec = show(
        "Opus 48 kHz decode",
        time(|| o.decode(black_box(&opus_pkt), &mut out).unwrap_or_default()),
    );

    let (a, b) = (
        Crypto::generate(1, Suite::AesCm128HmacSha1_80),
        Crypto::generate(1, Suite::AesCm128HmacSha1_80),
    );
    let mut tx = SrtpSession::new(&a, &b).expect("srtp");
    let mut rx = SrtpSession::new(&b, &a).expect("srtp");
    let mut seq = 0u16;
    let rtp = |seq: u16, payload: &[u8]| {
        RtpPacket {
            payload_type: 0,
            seq,
            timestamp: u32::from(seq) * 160,
            ssrc: 7,
            payload: payload.to_vec(),
            ..Default::default()
        }
        .to_bytes()
    };
    let protect = show(
        "SRTP protect (172-byte packet)",
        time(|| {
            seq = seq.wrapping_add(1);
            black_box(tx.protect(&rtp(seq, &g711_pkt)).unwrap_or_default());
        }),
    );
    // Unprotect needs fresh packets (replay protection): prepare them outside the timing.
    // Replay protection refuses a packet seen before, so each packet is used exactly once.
    let mut tx2 = SrtpSession::new(&a, &b).expect("srtp");
    let packets: Vec<Vec<u8>> = (0..300_000u32)
        .map(|i| tx2.protect(&rtp(i as u16, &g711_pkt)).unwrap_or_default())
        .collect();
    let start = Instant::now();
    let ok = packets
        .iter()
        .filter(|p| rx.unprotect(black_box(p)).is_ok())
        .count();
    assert_eq!(ok, packets.len(), "every packet authenticated");
    let unprotect = show(
        "SRTP unprotect",
        start.elapsed().as_nanos() as f64 / packets.len() as f64,
    );

    let mut jb = JitterBuffer::new(8000, Duration::from_millis(20));
    let t0 = Instant::now();
    let mut k = 0u32;
    let jitter = show(
        "jitter buffer push + pop",
        time(|| {
            let now = t0 + Duration::from_millis(u64::from(k) * 20);
            jb.push(now, 9, k as u16, k * 160, g711_pkt.clone());
            black_box(jb.pop(now));
            k += 1;
        }),
    );

    for members in [3usize, 10, 32] {
        let frames: Vec<Vec<i16>> = (0..members)
            .map(|m| speechlike(160, 8000.0 + m as f32))
            .collect();
        let refs: Vec<&[i16]> = frames.iter().map(|f| f.as_slice()).collect();
        let gains = vec![UNITY; members];
        let mut mixed = Vec::new();
        show(
            &format!("mixer, {members} members (8 kHz)"),
            time(|| mix_minus(black_box(&refs), &gains, &mut mixed)),
        );
    }

    let g711_call = g_enc + g_dec + protect + unprotect + jitter;
    let opus_call = o_enc + o_dec + protect + unprotect + jitter;
    println!(
        "one G.711 call-frame (encode, decode, SRTP both ways, jitter buffer): {:.2} µs",
        g711_call / 1000.0
    );
    println!("one Opus call-frame: {:.2} µs", opus_call / 1000.0);
    println!(
        "concurrent calls one core could carry: G.711 + SRTP {:.0}, Opus + SRTP {:.0}",
        20e6 / g711_call,
        20e6 / opus_call
    );
}
