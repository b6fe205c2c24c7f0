//! In-band DTMF detection (Goertzel): all 16 digits are found in generated tones — clean,
//! quiet, with noise, and with 6 dB of twist — and none in a real speech recording
//! (espeak-ng, resampled to 8 kHz with sox). Skipped only with SIP_SKIP_PEERS=1.
#![allow(clippy::unwrap_used)]

mod support;

use media::dtmf::Detector;
use media::tones::dtmf;
use rand::{Rng, SeedableRng};

const ALL: &str = "0123456789*#ABCD";

fn detect(samples: &[i16]) -> String {
    Detector::new(8000).process(samples).into_iter().collect()
}

/// Each digit for 60 ms with 60 ms of silence between, as a phone dials.
fn dialled(digits: &str, amplitude: f32) -> Vec<i16> {
    let mut out = Vec::new();
    for d in digits.chars() {
        out.extend(dtmf(d, 60, 8000, amplitude).unwrap());
        out.extend(vec![0i16; 480]);
    }
    out
}

#[test]
fn all_sixteen_digits_are_found() {
    assert_eq!(detect(&dialled(ALL, 8000.0)), ALL);
    assert_eq!(detect(&dialled(ALL, 400.0)), ALL, "quiet (-38 dB)");
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let noisy: Vec<i16> = dialled(ALL, 4000.0)
        .iter()
        .map(|s| s.saturating_add(rng.gen_range(-600..600)))
        .collect();
    assert_eq!(detect(&noisy), ALL, "with noise");
    // Twist: the high tone 6 dB below the low one.
    let mut twisted = Vec::new();
    for d in ALL.chars() {
        let (lo, hi) = media::dtmf::frequencies(d).unwrap();
        twisted.extend((0..480).map(|n| {
            let t = n as f32 / 8000.0;
            ((2.0 * std::f32::consts::PI * lo * t).sin() * 6000.0
                + (2.0 * std::f32::consts::PI * hi * t).sin() * 3000.0) as i16
        }));
        twisted.extend(vec![0i16; 480]);
    }
    assert_eq!(detect(&twisted), ALL);
    // A held key is one digit; a single tone is none.
    assert_eq!(detect(&dtmf('5', 1000, 8000, 8000.0).unwrap()), "5");
    let single: Vec<i16> = (0..8000)
        .map(|n| ((n as f32 * 0.6).sin() * 8000.0) as i16)
        .collect();
    assert_eq!(detect(&single), "");
}

#[test]
fn speech_gives_no_digits() {
    if support::skip_peers() {
        return;
    }
    let samples = support::speech(
        8000,
        "Good morning, thank you for calling the front desk. Please hold while I transfer \
your call to the warehouse. Press one for sales, two for support, or stay on the line.",
    );
    assert!(samples.len() > 8000 * 5, "at least 5 s of speech");
    assert_eq!(detect(&samples), "", "no digit in speech");
    // The detector is awake: a digit mixed into the same speech is found.
    let mut mixed = samples.clone();
    for (m, d) in mixed[8000..8800]
        .iter_mut()
        .zip(dtmf('7', 100, 8000, 6000.0).unwrap())
    {
        *m = (*m / 4).saturating_add(d);
    }
    assert!(detect(&mixed).contains('7'));
}
