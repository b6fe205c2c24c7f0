//! An adaptive jitter buffer, pure and told the time.
//!
//! Packets go in with [`JitterBuffer::push`] as they arrive; the playout clock takes one
//! frame every frame interval with [`JitterBuffer::pop`]. It reorders, drops duplicates and
//! packets that arrive after their playout time, conceals missing frames (the caller runs the
//! codec's packet-loss concealment on [`Frame::Conceal`]), plays DTX gaps (a timestamp jump
//! without a sequence gap) as silence, and resets on an SSRC change. The target delay follows
//! the interarrival jitter (RFC 3550 §A.8): twice the frame plus three jitters, 40–300 ms.
//! When more than two frames beyond the target are buffered — after a burst, or from a
//! sender whose clock runs fast — one frame is skipped. A missing frame with later ones
//! buffered is lost and concealed; a buffer that runs dry conceals without moving on (a
//! stretch, so the delay grows back for a slow sender or after a stall) for up to
//! [`MAX_CONCEAL`], then stops and refills (an underflow).

use crate::rtp::SeqExtender;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Longest run of concealment before the buffer stops and refills.
pub const MAX_CONCEAL: Duration = Duration::from_millis(240);

/// What the playout clock gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A received frame.
    Audio {
        seq: u16,
        timestamp: u32,
        payload: Vec<u8>,
    },
    /// The frame is missing: conceal it.
    Conceal { timestamp: u32 },
    /// DTX or not yet started: play silence / comfort noise.
    Silence,
    /// The buffer ran dry beyond concealment and is refilling.
    Underflow,
}

/// Counters, for statistics and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub played: u64,
    pub concealed: u64,
    pub underflows: u64,
    pub late: u64,
    pub duplicates: u64,
    /// Frames skipped to bring the delay back to the target.
    pub skipped: u64,
    pub resets: u64,
}

#[derive(Debug)]
struct Packet {
    timestamp: u32,
    payload: Vec<u8>,
}

/// The jitter buffer of one stream.
#[derive(Debug)]
pub struct JitterBuffer {
    clock_rate: u32,
    frame: Duration,
    frame_ts: u32,
    ssrc: Option<u32>,
    ext: SeqExtender,
    packets: BTreeMap<u64, Packet>,
    /// Next extended sequence number and timestamp to play, once playing.
    next: Option<(u64, u32)>,
    concealing: Duration,
    jitter: f64,
    last_transit: Option<f64>,
    start: Option<Instant>,
    stats: Stats,
}

impl JitterBuffer {
    /// A buffer for a stream with `clock_rate` Hz and `frame` per packet.
    pub fn new(clock_rate: u32, frame: Duration) -> Self {
        JitterBuffer {
            clock_rate,
            frame,
            frame_ts: (u128::from(clock_rate) * frame.as_millis() / 1000) as u32,
            ssrc: None,
            ext: SeqExtender::default(),
            packets: BTreeMap::new(),
            next: None,
            concealing: Duration::ZERO,
            jitter: 0.0,
            last_transit: None,
            start: None,
            stats: Stats::default(),
        }
    }

    /// Packets waiting to be played.
    pub fn len(&self) -> usize {
        self.packets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.packets.is_empty()
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The delay the buffer aims for.
    pub fn target(&self) -> Duration {
        let jitter = Duration::from_secs_f64(self.jitter / f64::from(self.clock_rate));
        (self.frame * 2 + jitter * 3).clamp(Duration::from_millis(40), Duration::from_millis(300))
    }

    /// The audio buffered ahead of playout: the current delay.
    pub fn delay(&self) -> Duration {
        let (Some((next_seq, _)), Some((last, _))) = (self.next, self.packets.last_key_value())
        else {
            return self.frame * self.packets.len() as u32;
        };
        self.frame * (last + 1).saturating_sub(next_seq) as u32
    }

    fn reset(&mut self) {
        self.packets.clear();
        self.next = None;
        self.ext = SeqExtender::default();
        self.last_transit = None;
        self.concealing = Duration::ZERO;
    }

    /// A packet arrived at `now`.
    pub fn push(&mut self, now: Instant, ssrc: u32, seq: u16, timestamp: u32, payload: Vec<u8>) {
        if self.ssrc.is_some_and(|s| s != ssrc) {
            self.stats.resets += 1;
            self.reset();
        }
        self.ssrc = Some(ssrc);
        let start = *self.start.get_or_insert(now);
        let arrival = (now - start).as_secs_f64() * f64::from(self.clock_rate);
        let transit = arrival - f64::from(timestamp);
        if let Some(last) = self.last_transit {
            self.jitter += ((transit - last).abs() - self.jitter) / 16.0;
        }
        self.last_transit = Some(transit);
        let e = self.ext.extend(seq);
        if self.next.is_some_and(|(n, _)| e < n) {
            self.stats.late += 1;
            return;
        }
        if self.packets.contains_key(&e) {
            self.stats.duplicates += 1;
            return;
        }
        self.packets.insert(e, Packet { timestamp, payload });
    }

    /// The next frame, for the playout clock at `now`.
    pub fn pop(&mut self, _now: Instant) -> Frame {
        let Some((seq, ts)) = self.next else {
            // Not playing: start once the target delay is buffered.
            if self.frame * self.packets.len() as u32 >= self.target()
                && let Some((first, p)) = self.packets.first_key_value()
            {
                self.next = Some((*first, p.timestamp));
                return self.pop(_now);
            }
            return Frame::Silence;
        };
        // Too much buffered: skip a frame to come back to the target.
        if self.delay() > self.target() + self.frame * 2 && self.packets.contains_key(&(seq + 1)) {
            self.packets.remove(&seq);
            self.stats.skipped += 1;
            self.next = Some((seq + 1, ts.wrapping_add(self.frame_ts)));
            return self.pop(_now);
        }
        if let Some(p) = self.packets.get(&seq) {
            // A timestamp ahead of the expected one, with no sequence gap: DTX silence first.
            let ahead = p.timestamp.wrapping_sub(ts);
            if ahead >= self.frame_ts && ahead < 0x8000_0000 {
                self.next = Some((seq, ts.wrapping_add(self.frame_ts)));
                return Frame::Silence;
            }
            let p = self.packets.remove(&seq).unwrap_or(Packet {
                timestamp: ts,
                payload: Vec::new(),
            });
            self.next = Some((seq + 1, p.timestamp.wrapping_add(self.frame_ts)));
            self.concealing = Duration::ZERO;
            self.stats.played += 1;
            return Frame::Audio {
                seq: (seq & 0xFFFF) as u16,
                timestamp: p.timestamp,
                payload: p.payload,
            };
        }
        // Missing. With later packets buffered it is lost: conceal it and move on. With
        // nothing buffered the stream has stalled: conceal without moving on (a stretch),
        // so the packet is still played when it comes and the delay grows back.
        if self.concealing < MAX_CONCEAL {
            self.concealing += self.frame;
            if !self.packets.is_empty() {
                self.next = Some((seq + 1, ts.wrapping_add(self.frame_ts)));
            }
            self.stats.concealed += 1;
            return Frame::Conceal { timestamp: ts };
        }
        self.stats.underflows += 1;
        self.next = None;
        self.concealing = Duration::ZERO;
        Frame::Underflow
    }
}
