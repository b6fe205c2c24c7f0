//! Two media sessions back to back on a virtual clock: G.711 over SRTP and Opus over RTP, with
//! every tenth packet lost. The tone arrives at its frequency, losses are concealed, the
//! statistics see the loss and the MOS estimate drops; a DTMF digit arrives exactly once;
//! RTCP reports carry the loss.
#![allow(clippy::unwrap_used)]

use media::analysis::dominant_frequency;
use media::codec::OpusConfig;
use media::g711::Law;
use media::session::{MediaEvent, MediaSession, Payload, SessionConfig, mos};
use media::srtp::{Crypto, Suite};
use std::time::{Duration, Instant};

fn pair(payload: Payload, pt: u8, secure: bool) -> (MediaSession, MediaSession) {
    let (a, b) = (
        Crypto::generate(1, Suite::AesCm128HmacSha1_80),
        Crypto::generate(1, Suite::AesCm128HmacSha1_80),
    );
    let cfg = |ours: &Crypto, theirs: &Crypto, ssrc| SessionConfig {
        payload,
        payload_type: pt,
        telephone_event: Some(101),
        srtp: secure.then(|| (ours.clone(), theirs.clone())),
        ssrc,
    };
    (
        MediaSession::new(cfg(&a, &b, 1)).unwrap(),
        MediaSession::new(cfg(&b, &a, 2)).unwrap(),
    )
}

/// Sends `secs` of a 440 Hz tone from `tx` to `rx`, losing every `lose_every`th packet.
fn run(
    tx: &mut MediaSession,
    rx: &mut MediaSession,
    secs: u32,
    lose_every: u32,
) -> (Vec<i16>, Vec<MediaEvent>) {
    let t0 = Instant::now();
    let n = tx.frame_samples();
    let rate = n as f32 * 50.0;
    let (mut heard, mut events, mut frame) = (Vec::new(), Vec::new(), Vec::new());
    let mut count = 0;
    for k in 0..secs * 50 {
        let now = t0 + Duration::from_millis(u64::from(k) * 20);
        let pcm: Vec<i16> = (0..n)
            .map(|i| {
                ((2.0 * std::f32::consts::PI * 440.0 * (k as usize * n + i) as f32 / rate).sin()
                    * 10000.0) as i16
            })
            .collect();
        if k == 60 {
            assert!(tx.send_dtmf('8'));
        }
        tx.send_frame(now, &pcm).unwrap();
        while let Some(p) = tx.poll_transmit() {
            count += 1;
            if lose_every == 0 || count % lose_every != 0 {
                rx.handle_packet(now + Duration::from_millis(5), &p);
            }
        }
        rx.poll_frame(now + Duration::from_millis(6), &mut frame)
            .unwrap();
        heard.extend_from_slice(&frame);
        events.extend(std::iter::from_fn(|| rx.poll_event()));
    }
    (heard, events)
}

#[test]
fn g711_over_srtp_with_loss() {
    let (mut a, mut b) = pair(Payload::G711(Law::A), 8, true);
    let (heard, events) = run(&mut a, &mut b, 4, 10);
    let f = dominant_frequency(&heard[8000..], 8000);
    assert!((f - 440.0).abs() < 5.0, "{f} Hz");
    assert_eq!(events, vec![MediaEvent::Dtmf('8')], "one digit, once");
    let s = b.stats();
    assert!((0.08..0.12).contains(&s.loss_fraction), "{s:?}");
    assert!(s.concealed >= 15, "{s:?}");
    assert!(
        s.mos < mos(0.0, 60.0, false) - 0.5,
        "loss lowers the MOS: {s:?}"
    );
    let rr = b.rtcp_report(std::time::Instant::now()).unwrap();
    assert!(rr.len() > 32, "an SRTCP packet");
}

#[test]
fn opus_over_rtp_without_loss() {
    let cfg = OpusConfig {
        rate: 48000,
        ..Default::default()
    };
    let (mut a, mut b) = pair(Payload::Opus(cfg), 111, false);
    let (heard, events) = run(&mut a, &mut b, 3, 0);
    let f = dominant_frequency(&heard[48000..], 48000);
    assert!((f - 440.0).abs() < 5.0, "{f} Hz");
    assert_eq!(events, vec![MediaEvent::Dtmf('8')]);
    let s = b.stats();
    assert_eq!(s.lost, 0);
    assert!(s.mos > 4.2, "{s:?}");
    let (_, figures) =
        media::rtp::parse_report(&b.rtcp_report(std::time::Instant::now()).unwrap()).unwrap();
    assert_eq!(figures.cumulative_lost, 0);
}

/// NTP time (RFC 3550 §4) `t - t0` after an arbitrary start.
fn ntp_since(t0: Instant, t: Instant) -> u64 {
    let base: u64 = 0xE8A1_2345 << 32;
    base + ((t - t0).as_secs_f64() * 4_294_967_296.0) as u64
}

/// RTCP sender reports both ways, over SRTP: each side's report about the other's stream
/// carries LSR and DLSR, from which the round trip comes out as the time the reports spent
/// on the (virtual) wire, 2 × 15 ms.
#[test]
fn round_trip_from_sender_reports() {
    let (mut a, mut b) = pair(Payload::G711(Law::Mu), 0, true);
    run(&mut a, &mut b, 1, 0);
    run(&mut b, &mut a, 1, 0);
    let t0 = Instant::now();
    let ntp = |t: Instant| ntp_since(t0, t);
    let wire = Duration::from_millis(15);
    // a reports at t0; b gets it 15 ms later, answers 500 ms after that; a gets that 15 ms on.
    let sr_a = a.rtcp_sender_report(t0, ntp(t0)).unwrap();
    let t1 = t0 + wire;
    b.handle_rtcp(t1, ntp(t1), &sr_a);
    let t2 = t1 + Duration::from_millis(500);
    let sr_b = b.rtcp_sender_report(t2, ntp(t2)).unwrap();
    let t3 = t2 + wire;
    a.handle_rtcp(t3, ntp(t3), &sr_b);
    let rtt = a.stats().rtt_ms.expect("no round trip from b's report");
    assert!((rtt - 30.0).abs() < 1.0, "round trip {rtt} ms");
    assert_eq!(
        b.stats().rtt_ms,
        None,
        "b has no report about its stream yet"
    );
    // A damaged packet changes nothing.
    a.handle_rtcp(t3, ntp(t3), &sr_b[..10]);
    assert!(a.stats().rtt_ms.is_some());
}

/// On loopback the peer's DLSR (counted in its own milliseconds) can exceed the real time
/// between the reports, so the round trip computes a little below zero: that is a round trip
/// of zero, not a report to throw away (baresip did this to the softphone's call test).
#[test]
fn a_round_trip_just_below_zero_counts_as_zero() {
    let (mut a, mut b) = pair(Payload::G711(Law::Mu), 0, false);
    run(&mut a, &mut b, 1, 0);
    run(&mut b, &mut a, 1, 0);
    let t0 = Instant::now();
    let ntp = |t: Instant| ntp_since(t0, t);
    let sr_a = a.rtcp_sender_report(t0, ntp(t0)).unwrap();
    b.handle_rtcp(t0, ntp(t0), &sr_a);
    // b holds a's report 10 ms but a gets the answer 9 ms after sending: 1 ms below zero.
    let sr_b = b
        .rtcp_sender_report(t0 + Duration::from_millis(10), ntp(t0))
        .unwrap();
    let t1 = t0 + Duration::from_millis(9);
    a.handle_rtcp(t1, ntp(t1), &sr_b);
    assert_eq!(a.stats().rtt_ms, Some(0.0));
}

/// Short or garbage SRTP and SRTCP packets are dropped, never a panic in the SRTP library.
#[test]
fn short_and_garbage_packets_are_dropped() {
    let (mut a, _) = pair(Payload::G711(Law::Mu), 0, true);
    let now = Instant::now();
    for n in 0..64 {
        let junk: Vec<u8> = (0..n)
            .map(|i| if i == 0 { 0x80 } else { (i * 37) as u8 })
            .collect();
        a.handle_packet(now, &junk);
        a.handle_rtcp(now, 1 << 48, &junk);
    }
    assert_eq!(a.stats().packets_received, 0);
}
