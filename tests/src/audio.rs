//! Tones for phones to play and the analysis that tells who heard whom: what a recording
//! held, half a second at a time, read even while the phone is still writing it.

use media::analysis::dominant_frequency;
use std::path::Path;

/// Writes 30 s of a pure tone at `freq` (8 kHz mono, 16-bit) to `path`.
pub fn tone(path: &Path, freq: f32) {
    tone_for(path, freq, 30);
}

/// Writes `seconds` of a pure tone at `freq` (8 kHz mono, 16-bit) to `path`.
pub fn tone_for(path: &Path, freq: f32, seconds: u32) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).expect("a tone file");
    for n in 0..8000 * seconds {
        let s = (2.0 * std::f32::consts::PI * freq * n as f32 / 8000.0).sin() * 12000.0;
        w.write_sample(s as i16).expect("a tone sample");
    }
    w.finalize().expect("a finished tone file");
}

/// The 16-bit mono samples of a WAV file as far as they are written now: a recorder that
/// has not closed its file yet has not filled in the lengths of its header.
pub fn samples_so_far(path: &Path) -> Vec<i16> {
    let Ok(bytes) = std::fs::read(path) else {
        return Vec::new();
    };
    let Some(at) = bytes.windows(4).position(|w| w == b"data") else {
        return Vec::new();
    };
    bytes
        .get(at + 8..)
        .unwrap_or_default()
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}

/// The dominant frequency of each half second of `samples` (0 for silence).
pub fn timeline(samples: &[i16]) -> Vec<f32> {
    samples
        .chunks_exact(4000)
        .map(|c| {
            let rms =
                (c.iter().map(|s| f64::from(*s).powi(2)).sum::<f64>() / c.len() as f64).sqrt();
            if rms < 300.0 {
                0.0
            } else {
                dominant_frequency(c, 8000)
            }
        })
        .collect()
}

/// Does `samples` hold each of `freqs` (±8 Hz), for at least a second each, in this order?
pub fn heard_in_order(samples: &[i16], freqs: &[f32]) -> bool {
    let t = timeline(samples);
    let mut at = 0;
    for f in freqs {
        let mut run = 0;
        loop {
            let Some(x) = t.get(at) else {
                return false;
            };
            at += 1;
            if (x - f).abs() <= 8.0 {
                run += 1;
                if run >= 2 {
                    break;
                }
            } else {
                run = 0;
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tone_is_heard_as_itself_even_before_the_file_is_closed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.wav");
        tone(&path, 440.0);
        let s = samples_so_far(&path);
        assert_eq!(s.len(), 8000 * 30);
        assert!(heard_in_order(&s, &[440.0]));
        assert!(!heard_in_order(&s, &[440.0, 600.0]));
    }
}
