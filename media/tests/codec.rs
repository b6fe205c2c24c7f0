//! Codecs and resampling:
//! - an Opus round trip of real speech (espeak-ng, 16 kHz) stays under a log-spectral
//!   distance threshold; the same measure must rank 6 kbit/s worse than 24 kbit/s and call
//!   unrelated audio far apart, so the threshold is not vacuous (values and reasoning below);
//! - Opus concealment and FEC produce whole frames; G.711 concealment fades out;
//! - 48 kHz → 8 kHz and 8 kHz → 48 kHz resampling keep a tone's frequency within 1 Hz.
#![allow(clippy::unwrap_used)]

mod support;

use media::analysis::{best_lag, dominant_frequency, log_spectral_distance};
use media::codec::{Codec, OpusConfig};
use media::g711::Law;
use media::resample::Resampler;

const TEXT: &str = "The quick brown fox jumps over the lazy dog. Please transfer this call to the \
warehouse on extension two hundred and three, and park the caller on line two.";

fn speech(rate: u32) -> Vec<i16> {
    support::speech(rate, TEXT)
}

fn round_trip(codec: &mut Codec, pcm: &[i16]) -> Vec<i16> {
    let n = codec.frame_samples();
    let (mut packet, mut frame, mut out) = (Vec::new(), Vec::new(), Vec::new());
    for chunk in pcm.chunks_exact(n) {
        codec.encode(chunk, &mut packet).unwrap();
        codec.decode(&packet, &mut frame).unwrap();
        out.extend_from_slice(&frame);
    }
    out
}

fn lsd_after(codec: &mut Codec, pcm: &[i16]) -> f32 {
    let decoded = round_trip(codec, pcm);
    let lag = best_lag(pcm, &decoded, 960);
    log_spectral_distance(pcm, &decoded[lag..], 16000, 100.0, 4000.0)
}

#[test]
fn opus_speech_round_trip_quality() {
    if support::skip_peers() {
        return;
    }
    let pcm = speech(16000);
    assert!(pcm.len() > 16000 * 5);
    let opus = |bitrate| {
        Codec::opus(OpusConfig {
            rate: 16000,
            bitrate,
            ..Default::default()
        })
        .unwrap()
    };
    let good = lsd_after(&mut opus(24000), &pcm);
    let poor = lsd_after(&mut opus(6000), &pcm);
    // Control: speech against the same speech half a second later is "unrelated audio".
    let unrelated = log_spectral_distance(&pcm, &pcm[8000..], 16000, 100.0, 4000.0);
    // Calibration: G.711 μ-law, the toll-quality reference every phone accepts, on the same
    // speech at 8 kHz, measured the same way.
    let pcm8 = speech(8000);
    let g711 = log_spectral_distance(
        &pcm8,
        &round_trip(&mut Codec::g711(Law::Mu), &pcm8),
        8000,
        100.0,
        4000.0,
    );
    eprintln!(
        "log-spectral distance 100-4000 Hz: G.711 {g711:.2} dB, Opus 24 kbit/s {good:.2} dB, 6 kbit/s {poor:.2} dB, unrelated {unrelated:.2} dB"
    );
    // Threshold: Opus at 24 kbit/s must come within 2 dB of toll quality (G.711) in the
    // telephone band. Measured here: G.711 1.9 dB, Opus 24 kbit/s 3.0 dB, 6 kbit/s 5.7 dB,
    // unrelated speech 28.6 dB. The controls keep it honest: 6 kbit/s must measure worse,
    // and unrelated speech at least three times as far.
    assert!(
        good < g711 + 2.0,
        "24 kbit/s {good:.2} dB vs G.711 {g711:.2} dB"
    );
    assert!(
        good < poor,
        "the measure ranks bitrates: {good:.2} vs {poor:.2}"
    );
    assert!(
        unrelated > 3.0 * good,
        "the measure separates unrelated audio: {unrelated:.2}"
    );
}

#[test]
fn opus_concealment_and_fec_fill_whole_frames() {
    let mut c = Codec::opus(OpusConfig {
        rate: 48000,
        ..Default::default()
    })
    .unwrap();
    let tone: Vec<i16> = (0..960 * 10)
        .map(|n| ((n as f32 * 0.05).sin() * 8000.0) as i16)
        .collect();
    let (mut packets, mut p) = (Vec::new(), Vec::new());
    for chunk in tone.chunks_exact(960) {
        c.encode(chunk, &mut p).unwrap();
        packets.push(p.clone());
    }
    let mut frame = Vec::new();
    c.decode(&packets[0], &mut frame).unwrap();
    assert_eq!(frame.len(), 960);
    c.conceal(None, &mut frame).unwrap();
    assert_eq!(frame.len(), 960, "PLC frame");
    c.conceal(Some(&packets[3]), &mut frame).unwrap();
    assert_eq!(frame.len(), 960, "FEC frame from the next packet");
    let mut g = Codec::g711(Law::Mu);
    g.decode(&[0x80u8; 160], &mut frame).unwrap();
    let loud = frame[0].unsigned_abs();
    let mut levels = Vec::new();
    for _ in 0..4 {
        g.conceal(None, &mut frame).unwrap();
        levels.push(frame[0].unsigned_abs());
    }
    assert!(
        levels[0] < loud && levels[1] < levels[0] && levels[3] == 0,
        "{loud} {levels:?}"
    );
}

fn tone(freq: f32, rate: u32, secs: f32) -> Vec<i16> {
    (0..(rate as f32 * secs) as usize)
        .map(|n| {
            ((2.0 * std::f32::consts::PI * freq * n as f32 / rate as f32).sin() * 10000.0) as i16
        })
        .collect()
}

fn resample(pcm: &[i16], from: u32, to: u32) -> Vec<i16> {
    let mut r = Resampler::new(from, to).unwrap();
    let (mut out, mut frame) = (Vec::new(), Vec::new());
    for chunk in pcm.chunks_exact(r.input_frames()) {
        r.process(chunk, &mut frame).unwrap();
        out.extend_from_slice(&frame);
    }
    out
}

#[test]
fn resampling_keeps_a_tone_frequency() {
    let down = resample(&tone(440.0, 48000, 1.0), 48000, 8000);
    assert_eq!(down.len(), 8000);
    let f = dominant_frequency(&down[800..], 8000);
    assert!((f - 440.0).abs() < 1.0, "48k→8k: {f} Hz");
    let up = resample(&tone(1000.0, 8000, 1.0), 8000, 48000);
    assert_eq!(up.len(), 48000);
    let f = dominant_frequency(&up[4800..], 48000);
    assert!((f - 1000.0).abs() < 1.0, "8k→48k: {f} Hz");
    let f = dominant_frequency(&tone(3300.0, 16000, 0.5), 16000);
    assert!((f - 3300.0).abs() < 1.0, "the measurement itself: {f}");
}
