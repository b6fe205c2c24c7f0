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
    let rr = b.rtcp_report().unwrap();
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
    let (_, figures) = media::rtp::parse_report(&b.rtcp_report().unwrap()).unwrap();
    assert_eq!(figures.cumulative_lost, 0);
}
