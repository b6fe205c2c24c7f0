//! Measurements on audio for tests and call statistics: the dominant frequency of a signal
//! (FFT with a Hann window and parabolic interpolation), and the log-spectral distance
//! between two signals, a standard measure of how far a codec moved the spectrum.

use rustfft::FftPlanner;
use rustfft::num_complex::Complex;

fn spectrum(x: &[f32], planner: &mut FftPlanner<f32>) -> Vec<f32> {
    let n = x.len();
    let mut buf: Vec<Complex<f32>> = x
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let w = 0.5 - 0.5 * (2.0 * std::f32::consts::PI * i as f32 / n as f32).cos();
            Complex::new(v * w, 0.0)
        })
        .collect();
    planner.plan_fft_forward(n).process(&mut buf);
    buf[..n / 2].iter().map(|c| c.norm()).collect()
}

/// The strongest frequency in `samples` (Hz); 0 for fewer than 4 samples.
pub fn dominant_frequency(samples: &[i16], rate: u32) -> f32 {
    if samples.len() < 4 {
        return 0.0;
    }
    let x: Vec<f32> = samples.iter().map(|s| f32::from(*s)).collect();
    let mag = spectrum(&x, &mut FftPlanner::new());
    let (k, _) = mag
        .iter()
        .enumerate()
        .skip(1)
        .fold((1, 0.0f32), |a, (i, m)| if *m > a.1 { (i, *m) } else { a });
    let (a, b, c) = (
        mag[k - 1].ln(),
        mag[k].ln(),
        mag.get(k + 1).map_or(mag[k].ln(), |m| m.ln()),
    );
    let p = 0.5 * (a - c) / (a - 2.0 * b + c);
    (k as f32 + if p.is_finite() { p } else { 0.0 }) * rate as f32 / samples.len() as f32
}

/// How much of the energy of `samples` is at `freq` (Goertzel): about 1.0 for a pure tone
/// at `freq`, about 1/n for each of n equal tones mixed, near 0 when it is absent or the
/// block is silent.
pub fn tone_share(samples: &[i16], freq: f32, rate: u32) -> f32 {
    let energy: f32 = samples.iter().map(|s| f32::from(*s).powi(2)).sum();
    if samples.is_empty() || energy < samples.len() as f32 {
        return 0.0;
    }
    let w = 2.0 * std::f32::consts::PI * freq / rate as f32;
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f32, 0.0f32);
    for x in samples {
        let s0 = f32::from(*x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    // A pure tone of amplitude A over N samples: power ≈ (A N / 2)², energy ≈ A² N / 2.
    (2.0 * power / (samples.len() as f32 * energy)).min(1.0)
}

/// Mean log-spectral distance (dB) between `reference` and `test` in the band `lo..hi` Hz,
/// over 20 ms frames whose reference energy is within 40 dB of the loudest frame (silence
/// is skipped). Energies are compared in third-octave bands, as hearing resolves them, so
/// the spectral fine structure perceptual codecs do not keep does not count.
pub fn log_spectral_distance(reference: &[i16], test: &[i16], rate: u32, lo: f32, hi: f32) -> f32 {
    let n = rate as usize / 50;
    let mut planner = FftPlanner::new();
    let frames = reference.len().min(test.len()) / n;
    let energy = |f: &[i16]| f.iter().map(|s| f32::from(*s).powi(2)).sum::<f32>();
    let loudest = (0..frames)
        .map(|i| energy(&reference[i * n..(i + 1) * n]))
        .fold(0.0, f32::max);
    let (mut total, mut counted) = (0.0f32, 0);
    for i in 0..frames {
        let r = &reference[i * n..(i + 1) * n];
        if energy(r) < loudest * 1e-4 {
            continue;
        }
        let to_f = |s: &[i16]| s.iter().map(|v| f32::from(*v)).collect::<Vec<f32>>();
        let (a, b) = (
            spectrum(&to_f(r), &mut planner),
            spectrum(&to_f(&test[i * n..(i + 1) * n]), &mut planner),
        );
        let bin = rate as f32 / n as f32;
        let (mut d, mut bands) = (0.0f32, 0);
        let mut f0 = lo;
        while f0 < hi {
            let f1 = (f0 * 2f32.powf(1.0 / 3.0)).min(hi);
            let (k0, k1) = (
                (f0 / bin) as usize,
                ((f1 / bin).ceil() as usize)
                    .min(a.len())
                    .max((f0 / bin) as usize + 1),
            );
            let e = |m: &[f32]| m[k0..k1].iter().map(|v| v * v).sum::<f32>() + 1.0;
            d += (10.0 * (e(&a) / e(&b)).log10()).powi(2);
            bands += 1;
            f0 = f1;
        }
        let d = d / bands.max(1) as f32;
        total += d.sqrt();
        counted += 1;
    }
    if counted == 0 {
        0.0
    } else {
        total / counted as f32
    }
}

/// The lag (in samples, 0..max) at which `test` best matches `reference`: codec delay.
pub fn best_lag(reference: &[i16], test: &[i16], max: usize) -> usize {
    let len = reference.len().min(test.len()).saturating_sub(max);
    (0..max)
        .max_by_key(|lag| {
            reference[..len]
                .iter()
                .zip(&test[*lag..*lag + len])
                .map(|(a, b)| i64::from(*a) * i64::from(*b))
                .sum::<i64>()
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(freqs: &[f32]) -> Vec<i16> {
        (0..4000)
            .map(|n| {
                freqs
                    .iter()
                    .map(|f| (2.0 * std::f32::consts::PI * f * n as f32 / 8000.0).sin() * 8000.0)
                    .sum::<f32>() as i16
            })
            .collect()
    }

    #[test]
    fn too_short_is_no_frequency() {
        assert_eq!(dominant_frequency(&[], 8000), 0.0);
        assert_eq!(dominant_frequency(&[1, 2], 8000), 0.0);
        assert!((dominant_frequency(&tone(&[440.0]), 8000) - 440.0).abs() < 2.0);
    }

    #[test]
    fn tone_shares() {
        let pure = tone(&[440.0]);
        assert!(tone_share(&pure, 440.0, 8000) > 0.9);
        assert!(tone_share(&pure, 600.0, 8000) < 0.05);
        let two = tone(&[440.0, 600.0]);
        for f in [440.0, 600.0] {
            let s = tone_share(&two, f, 8000);
            assert!((0.4..0.6).contains(&s), "{f}: {s}");
        }
        assert!(tone_share(&two, 1000.0, 8000) < 0.05);
        assert_eq!(tone_share(&[0; 800], 440.0, 8000), 0.0);
    }
}
