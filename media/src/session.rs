//! A media session for one call leg: codec, SRTP, jitter buffer, RFC 4733 DTMF and RFC 3550
//! statistics together. Pure and told the time, in the shape of the SIP machines: frames
//! and packets in through `send_frame` / `handle_packet`, out through `poll_transmit` /
//! `poll_frame` / `poll_event`. The caller owns the socket and the audio device.

use crate::codec::{Codec, CodecError, OpusConfig};
use crate::dtmf::{Event, EventReceiver, key_press};
use crate::g711::Law;
use crate::jitter::{Frame, JitterBuffer};
use crate::rtp::{ReceiverStats, RtpPacket, parse_rtcp, receiver_report, sender_report};
use crate::srtp::{Crypto, SrtpError, SrtpSession};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The voice codec of a session.
#[derive(Debug, Clone, Copy)]
pub enum Payload {
    G711(Law),
    Opus(OpusConfig),
}

/// What was negotiated for the leg.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub payload: Payload,
    pub payload_type: u8,
    pub telephone_event: Option<u8>,
    /// Our keys and the peer's, for SRTP; None for plain RTP.
    pub srtp: Option<(Crypto, Crypto)>,
    pub ssrc: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Codec(#[from] CodecError),
    #[error(transparent)]
    Srtp(#[from] SrtpError),
}

/// Something the call user should know about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaEvent {
    Dtmf(char),
}

/// The figures users see as call quality.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CallStats {
    pub packets_sent: u32,
    pub packets_received: u64,
    pub lost: i64,
    pub loss_fraction: f32,
    pub jitter_ms: f32,
    /// Jitter-buffer delay.
    pub buffer_ms: f32,
    pub concealed: u64,
    /// Round trip from RTCP, once the peer has reported on our stream.
    pub rtt_ms: Option<f32>,
    /// Mean opinion score estimated with the ITU-T G.107 E-model.
    pub mos: f32,
}

/// One call leg's media.
pub struct MediaSession {
    cfg: SessionConfig,
    codec: Codec,
    srtp: Option<SrtpSession>,
    clock_rate: u32,
    seq: u16,
    ts: u32,
    sent: u32,
    octets: u32,
    jb: JitterBuffer,
    stats: ReceiverStats,
    start: Option<Instant>,
    remote_ssrc: u32,
    dtmf_rx: EventReceiver,
    dtmf_tx: VecDeque<(bool, Event)>,
    dtmf_ts: u32,
    out: VecDeque<Vec<u8>>,
    events: VecDeque<MediaEvent>,
    encoded: Vec<u8>,
    /// The middle 32 bits of the peer's last SR's NTP time, and when it came.
    peer_sr: Option<(u32, Instant)>,
    /// Round trip from the peer's report about our stream (RFC 3550 §6.4.1).
    rtt: Option<Duration>,
}

impl MediaSession {
    pub fn new(cfg: SessionConfig) -> Result<Self, SessionError> {
        let codec = match cfg.payload {
            Payload::G711(law) => Codec::g711(law),
            Payload::Opus(o) => Codec::opus(o)?,
        };
        // RTP clock: 8 kHz for G.711, 48 kHz for Opus whatever its sampling rate (RFC 7587).
        let clock_rate = match cfg.payload {
            Payload::G711(_) => 8000,
            Payload::Opus(_) => 48000,
        };
        let srtp = match &cfg.srtp {
            Some((ours, theirs)) => Some(SrtpSession::new(ours, theirs)?),
            None => None,
        };
        Ok(MediaSession {
            codec,
            srtp,
            clock_rate,
            seq: rand::random(),
            ts: rand::random(),
            sent: 0,
            octets: 0,
            jb: JitterBuffer::new(clock_rate, Duration::from_millis(20)),
            stats: ReceiverStats::default(),
            start: None,
            remote_ssrc: 0,
            dtmf_rx: EventReceiver::default(),
            dtmf_tx: VecDeque::new(),
            dtmf_ts: 0,
            out: VecDeque::new(),
            events: VecDeque::new(),
            encoded: Vec::new(),
            peer_sr: None,
            rtt: None,
            cfg,
        })
    }

    /// Samples per 20 ms frame at the codec's rate (what `send_frame` takes).
    pub fn frame_samples(&self) -> usize {
        self.codec.frame_samples()
    }

    fn emit(&mut self, packet: RtpPacket) -> Result<(), SessionError> {
        let bytes = packet.to_bytes();
        self.sent += 1;
        self.octets += packet.payload.len() as u32;
        let wire = match &mut self.srtp {
            Some(s) => s.protect(&bytes)?,
            None => bytes,
        };
        self.out.push_back(wire);
        Ok(())
    }

    /// Sends one 20 ms frame; while a DTMF digit is being sent, its events go instead
    /// (RFC 4733 §2.5.1.2).
    pub fn send_frame(&mut self, _now: Instant, pcm: &[i16]) -> Result<(), SessionError> {
        let step = self.clock_rate / 50;
        if let (Some((marker, ev)), Some(pt)) = (self.dtmf_tx.pop_front(), self.cfg.telephone_event)
        {
            let p = RtpPacket {
                marker,
                payload_type: pt,
                seq: self.seq,
                timestamp: self.dtmf_ts,
                ssrc: self.cfg.ssrc,
                payload: ev.to_bytes().to_vec(),
                ..Default::default()
            };
            self.seq = self.seq.wrapping_add(1);
            self.ts = self.ts.wrapping_add(step);
            return self.emit(p);
        }
        let mut encoded = std::mem::take(&mut self.encoded);
        self.codec.encode(pcm, &mut encoded)?;
        let p = RtpPacket {
            payload_type: self.cfg.payload_type,
            seq: self.seq,
            timestamp: self.ts,
            ssrc: self.cfg.ssrc,
            payload: encoded.clone(),
            ..Default::default()
        };
        self.encoded = encoded;
        self.seq = self.seq.wrapping_add(1);
        self.ts = self.ts.wrapping_add(step);
        self.emit(p)
    }

    /// Queues a DTMF digit as telephone-events (100 ms). False if the peer takes no events.
    pub fn send_dtmf(&mut self, digit: char) -> bool {
        if self.cfg.telephone_event.is_none() {
            return false;
        }
        let Some(packets) = key_press(digit, 100, 20, 8000) else {
            return false;
        };
        self.dtmf_ts = self.ts;
        self.dtmf_tx.extend(packets);
        true
    }

    /// A packet from the peer.
    pub fn handle_packet(&mut self, now: Instant, bytes: &[u8]) {
        let plain = match &mut self.srtp {
            Some(s) => match s.unprotect(bytes) {
                Ok(p) => p,
                Err(_) => return, // forged, damaged or replayed
            },
            None => bytes.to_vec(),
        };
        let Ok(p) = RtpPacket::parse(&plain) else {
            return;
        };
        let start = *self.start.get_or_insert(now);
        let arrival = ((now - start).as_secs_f64() * f64::from(self.clock_rate)) as u32;
        if self.remote_ssrc != 0 && p.ssrc != self.remote_ssrc {
            // Another source (RFC 3550 keeps statistics per SSRC): count it afresh.
            self.stats = Default::default();
        }
        self.stats.on_packet(p.seq, p.timestamp, arrival);
        self.remote_ssrc = p.ssrc;
        if Some(p.payload_type) == self.cfg.telephone_event {
            if let Some(d) = self.dtmf_rx.on_packet(p.timestamp, &p.payload) {
                self.events.push_back(MediaEvent::Dtmf(d));
            }
        } else if p.payload_type == self.cfg.payload_type {
            self.jb.push(now, p.ssrc, p.seq, p.timestamp, p.payload);
        }
    }

    /// The next 20 ms of audio to play.
    pub fn poll_frame(&mut self, now: Instant, out: &mut Vec<i16>) -> Result<(), SessionError> {
        match self.jb.pop(now) {
            Frame::Audio { payload, .. } => self.codec.decode(&payload, out)?,
            Frame::Conceal { .. } => self.codec.conceal(None, out)?,
            Frame::Silence | Frame::Underflow => {
                out.clear();
                out.resize(self.codec.frame_samples(), 0);
            }
        }
        Ok(())
    }

    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.out.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<MediaEvent> {
        self.events.pop_front()
    }

    /// An RTCP sender report for the peer at `ntp` (NTP time, RFC 3550 §4), with a report
    /// block about what we receive (LSR and DLSR from its last SR, so it can measure the
    /// round trip too); protected when SRTP is on.
    pub fn rtcp_sender_report(&mut self, now: Instant, ntp: u64) -> Result<Vec<u8>, SessionError> {
        let f = self.stats.report();
        let (lsr, dlsr) = self.lsr_dlsr(now);
        let mut sr = sender_report(
            self.cfg.ssrc,
            ntp,
            self.ts,
            self.sent,
            self.octets,
            self.remote_ssrc,
            &f,
        );
        // The block's last two words are LSR and DLSR.
        let n = sr.len();
        sr[n - 8..n - 4].copy_from_slice(&lsr.to_be_bytes());
        sr[n - 4..].copy_from_slice(&dlsr.to_be_bytes());
        Ok(match &mut self.srtp {
            Some(s) => s.protect_rtcp(&sr)?,
            None => sr,
        })
    }

    fn lsr_dlsr(&self, now: Instant) -> (u32, u32) {
        match self.peer_sr {
            Some((lsr, at)) => {
                let units = now.saturating_duration_since(at).as_secs_f64() * 65536.0;
                (lsr, units as u32)
            }
            None => (0, 0),
        }
    }

    /// An RTCP packet from the peer, arrived at `now` (`ntp` in NTP time): remembers its SR
    /// for our next report and, from its report about our stream, the round trip.
    pub fn handle_rtcp(&mut self, now: Instant, ntp: u64, bytes: &[u8]) {
        let plain = match &mut self.srtp {
            Some(s) => match s.unprotect_rtcp(bytes) {
                Ok(p) => p,
                Err(_) => return,
            },
            None => bytes.to_vec(),
        };
        let Some(r) = parse_rtcp(&plain) else {
            return;
        };
        if let Some(sr) = r.sr_ntp {
            self.peer_sr = Some(((sr >> 16) as u32, now));
        }
        if let Some((source, _, lsr, dlsr)) = r.block
            && source == self.cfg.ssrc
            && lsr != 0
        {
            let arrived = (ntp >> 16) as u32;
            // Signed: on a fast link the peer's DLSR, counted on its own coarser clock, can
            // exceed the real delay, so the round trip comes out a little below zero; that is
            // a round trip of nothing. Anything over a minute either way is a clock or a
            // report gone wrong.
            let units = arrived.wrapping_sub(lsr).wrapping_sub(dlsr) as i32;
            if (-60 * 65536..60 * 65536).contains(&units) {
                let secs = f64::from(units.max(0)) / 65536.0;
                self.rtt = Some(Duration::from_secs_f64(secs));
            }
        }
    }

    /// An RTCP receiver report for the peer at `now` (protected when SRTP is on).
    pub fn rtcp_report(&mut self, now: Instant) -> Result<Vec<u8>, SessionError> {
        let f = self.stats.report();
        let (lsr, dlsr) = self.lsr_dlsr(now);
        let rr = receiver_report(self.cfg.ssrc, self.remote_ssrc, &f, lsr, dlsr);
        Ok(match &mut self.srtp {
            Some(s) => s.protect_rtcp(&rr)?,
            None => rr,
        })
    }

    pub fn stats(&self) -> CallStats {
        let expected = self.stats.expected().max(1) as f32;
        let loss = (self.stats.lost().max(0) as f32 / expected).clamp(0.0, 1.0);
        let jitter_ms = self.stats.jitter() as f32 * 1000.0 / self.clock_rate as f32;
        let buffer_ms = self.jb.delay().as_secs_f32() * 1000.0;
        CallStats {
            packets_sent: self.sent,
            packets_received: self.stats.expected() - self.stats.lost().max(0) as u64,
            lost: self.stats.lost(),
            loss_fraction: loss,
            jitter_ms,
            buffer_ms,
            concealed: self.jb.stats().concealed,
            rtt_ms: self.rtt.map(|r| r.as_secs_f32() * 1000.0),
            mos: mos(
                loss,
                // One way: a frame, the jitter buffer, and half the round trip when known.
                20.0 + buffer_ms + jitter_ms + self.rtt.map_or(0.0, |r| r.as_secs_f32() * 500.0),
                matches!(self.cfg.payload, Payload::Opus(_)),
            ),
        }
    }
}

/// ITU-T G.107 E-model, simplified: R from the codec's impairment with packet loss (G.113
/// values: G.711 with PLC Ie 0, Bpl 25.1; Opus Ie 0, Bpl 20) and one-way delay; MOS from R.
pub fn mos(loss: f32, delay_ms: f32, opus: bool) -> f32 {
    let (ie, bpl) = if opus { (0.0, 20.0) } else { (0.0, 25.1) };
    let ppl = loss * 100.0;
    let ie_eff = ie + (95.0 - ie) * ppl / (ppl + bpl);
    let d = delay_ms;
    let id = 0.024 * d + if d > 177.3 { 0.11 * (d - 177.3) } else { 0.0 };
    let r = (93.2 - id - ie_eff).clamp(0.0, 100.0);
    if r <= 0.0 {
        1.0
    } else {
        1.0 + 0.035 * r + r * (r - 60.0) * (100.0 - r) * 7e-6
    }
}
