//! Jitter-buffer scenarios from `tests/traces/` (format in its README): each trace is played
//! through the buffer with a playout clock ticking every 20 ms. Every scenario asserts a
//! bounded delay and no underflow (no run of frames the buffer could neither play nor
//! conceal); loss and the stall assert concealment exactly where packets were missing.
#![allow(clippy::unwrap_used)]

use media::jitter::{Frame, JitterBuffer};
use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

struct Run {
    frames: Vec<Frame>,
    max_delay: Duration,
    /// Delay at each pop, for checks over time.
    delays: Vec<Duration>,
    buffer: JitterBuffer,
    /// (seq, ssrc) of every packet in the trace.
    sent: Vec<(u16, u32)>,
}

fn play(name: &str) -> Run {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/traces")
            .join(name),
    )
    .unwrap();
    let packets: Vec<(f64, u16, u32, u32)> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (
                f[0].parse().unwrap(),
                f[1].parse().unwrap(),
                f[2].parse().unwrap(),
                f.get(3).map_or(1, |s| s.parse().unwrap()),
            )
        })
        .collect();
    let t0 = Instant::now();
    let at = |ms: f64| t0 + Duration::from_secs_f64(ms / 1000.0);
    let mut jb = JitterBuffer::new(8000, Duration::from_millis(20));
    let end = packets.last().unwrap().0 + 1000.0;
    let (mut frames, mut delays) = (Vec::new(), Vec::new());
    let mut next = 0;
    let mut tick = 10.0;
    // Until the stream has ended and everything buffered has been played.
    while tick < end && !(next == packets.len() && jb.is_empty()) {
        while next < packets.len() && packets[next].0 <= tick {
            let (ms, seq, ts, ssrc) = packets[next];
            jb.push(at(ms), ssrc, seq, ts, seq.to_be_bytes().to_vec());
            next += 1;
        }
        frames.push(jb.pop(at(tick)));
        delays.push(jb.delay());
        tick += 20.0;
    }
    eprintln!(
        "{name}: {:?}, max delay {:?}",
        jb.stats(),
        delays.iter().max()
    );
    Run {
        max_delay: delays.iter().max().copied().unwrap_or_default(),
        delays,
        frames,
        buffer: jb,
        sent: packets.iter().map(|p| (p.1, p.3)).collect(),
    }
}

fn played(r: &Run) -> Vec<u16> {
    r.frames
        .iter()
        .filter_map(|f| {
            if let Frame::Audio { seq, .. } = f {
                Some(*seq)
            } else {
                None
            }
        })
        .collect()
}

fn concealed_ts(r: &Run) -> BTreeSet<u32> {
    r.frames
        .iter()
        .filter_map(|f| {
            if let Frame::Conceal { timestamp } = f {
                Some(*timestamp)
            } else {
                None
            }
        })
        .collect()
}

fn common(r: &Run, max_delay_ms: u64) {
    assert_eq!(
        r.buffer.stats().underflows,
        0,
        "no underflow: {:?}",
        r.buffer.stats()
    );
    assert!(
        r.max_delay <= Duration::from_millis(max_delay_ms),
        "delay {:?} > {max_delay_ms} ms",
        r.max_delay
    );
    let p = played(r);
    assert!(
        p.windows(2)
            .all(|w| w[1] == w[0].wrapping_add(1) || w[1] != w[0]),
        "played in order"
    );
}

#[test]
fn five_percent_loss_is_concealed_exactly_where_lost() {
    let r = play("loss5.trace");
    common(&r, 120);
    let got: BTreeSet<u16> = r.sent.iter().map(|s| s.0).collect();
    let first = r.sent[0].0;
    let lost: BTreeSet<u32> = (0..3000u32)
        .filter(|i| !got.contains(&(first.wrapping_add(*i as u16))))
        .map(|i| 4_000_000_000u32.wrapping_add(160 * i))
        .collect();
    assert!((120..180).contains(&lost.len()), "{} lost", lost.len());
    assert_eq!(
        concealed_ts(&r),
        lost,
        "concealment exactly at the lost frames"
    );
    assert_eq!(played(&r).len(), 3000 - lost.len());
}

#[test]
fn twenty_percent_reorder_plays_everything_in_order() {
    let r = play("reorder20.trace");
    common(&r, 120);
    let p = played(&r);
    assert_eq!(p.len(), 3000, "{:?}", r.buffer.stats());
    assert!(p.windows(2).all(|w| w[1] == w[0].wrapping_add(1)));
    assert_eq!(r.buffer.stats().concealed, 0);
}

#[test]
fn a_200_ms_stall_is_concealed_then_the_delay_recovers() {
    let r = play("spike200.trace");
    common(&r, 300);
    let s = r.buffer.stats();
    assert!((1..=12).contains(&s.concealed), "concealed {}", s.concealed);
    assert_eq!(
        s.played + s.late + s.skipped,
        3000,
        "every packet played, late or skipped: {s:?}"
    );
    // Ten seconds after the stall the delay is back under 120 ms.
    assert!(
        r.delays[(30_000 / 20)..]
            .iter()
            .all(|d| *d <= Duration::from_millis(120))
    );
}

#[test]
fn clock_drift_of_100_ppm_either_way_keeps_the_delay_bounded() {
    let fast = play("drift+100.trace");
    common(&fast, 120);
    assert!(
        fast.buffer.stats().skipped >= 1,
        "a fast sender's surplus is skipped: {:?}",
        fast.buffer.stats()
    );
    let slow = play("drift-100.trace");
    common(&slow, 120);
    assert!(
        slow.buffer.stats().concealed <= 5,
        "a slow sender costs a few concealed frames: {:?}",
        slow.buffer.stats()
    );
    for r in [&fast, &slow] {
        let last = r.delays[r.delays.len() - 100];
        assert!(last <= Duration::from_millis(100), "final delay {last:?}");
    }
}

#[test]
fn an_ssrc_change_restarts_the_stream() {
    let r = play("ssrc-change.trace");
    common(&r, 120);
    assert_eq!(r.buffer.stats().resets, 1);
    let p = played(&r);
    assert!(
        p.contains(&123) && p.contains(&(123 + 1499)),
        "the new stream is played"
    );
    // Audio resumes within 100 ms of the new source's first packet (1 s frames = 50).
    let first_new = r
        .frames
        .iter()
        .position(|f| matches!(f, Frame::Audio { seq: 123, .. }))
        .unwrap();
    assert!(
        first_new * 20 <= 30_040 + 120,
        "resumed at {} ms",
        first_new * 20
    );
}
