//! WAV files (hound) as audio sources and sinks: music on hold and greetings in, voicemail and
//! test recordings out. Sources are read once, mixed down to mono and converted to the rate
//! asked for; they can loop (music on hold).

use crate::resample::Resampler;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum WavError {
    #[error("{path}: {reason}")]
    File { path: String, reason: String },
}

fn err(path: &Path, e: impl std::fmt::Display) -> WavError {
    WavError::File {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

/// A WAV file played frame by frame.
#[derive(Debug, Clone)]
pub struct WavSource {
    samples: Vec<i16>,
    pos: usize,
    looping: bool,
}

impl WavSource {
    /// Loads `path` as mono 16-bit at `rate` Hz.
    pub fn open(path: &Path, rate: u32, looping: bool) -> Result<Self, WavError> {
        let mut r = hound::WavReader::open(path).map_err(|e| err(path, e))?;
        let spec = r.spec();
        let raw: Vec<i32> = match spec.sample_format {
            hound::SampleFormat::Int => r
                .samples::<i32>()
                .collect::<Result<_, _>>()
                .map_err(|e| err(path, e))?,
            hound::SampleFormat::Float => r
                .samples::<f32>()
                .map(|s| s.map(|v| (v * 32767.0) as i32))
                .collect::<Result<_, _>>()
                .map_err(|e| err(path, e))?,
        };
        let shift = spec.bits_per_sample.saturating_sub(16);
        let ch = usize::from(spec.channels.max(1));
        let mono: Vec<i16> = raw
            .chunks(ch)
            .map(|c| {
                let sum: i64 = c.iter().map(|v| i64::from(*v >> shift)).sum();
                (sum / ch as i64).clamp(-32768, 32767) as i16
            })
            .collect();
        let samples = if spec.sample_rate == rate {
            mono
        } else {
            convert(&mono, spec.sample_rate, rate).map_err(|e| err(path, e))?
        };
        Ok(WavSource {
            samples,
            pos: 0,
            looping,
        })
    }

    pub fn from_samples(samples: Vec<i16>, looping: bool) -> Self {
        WavSource {
            samples,
            pos: 0,
            looping,
        }
    }

    /// Fills `out`; past the end: silence, or from the start again when looping. Returns
    /// false once a non-looping source has ended.
    pub fn fill(&mut self, out: &mut [i16]) -> bool {
        for o in out.iter_mut() {
            if self.pos >= self.samples.len() {
                if self.looping && !self.samples.is_empty() {
                    self.pos = 0;
                } else {
                    *o = 0;
                    continue;
                }
            }
            *o = self.samples[self.pos];
            self.pos += 1;
        }
        self.looping || self.pos < self.samples.len()
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }
}

fn convert(pcm: &[i16], from: u32, to: u32) -> Result<Vec<i16>, String> {
    let mut r = Resampler::new(from, to)?;
    let n = r.input_frames();
    let (mut out, mut frame) = (Vec::new(), Vec::new());
    for chunk in pcm.chunks(n) {
        let mut padded = chunk.to_vec();
        padded.resize(n, 0);
        r.process(&padded, &mut frame)?;
        out.extend_from_slice(&frame);
    }
    Ok(out)
}

/// A mono 16-bit WAV file being written.
pub struct WavSink {
    writer: hound::WavWriter<std::io::BufWriter<std::fs::File>>,
    path: std::path::PathBuf,
}

impl WavSink {
    pub fn create(path: &Path, rate: u32) -> Result<Self, WavError> {
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let writer = hound::WavWriter::create(path, spec).map_err(|e| err(path, e))?;
        Ok(WavSink {
            writer,
            path: path.to_path_buf(),
        })
    }

    pub fn write(&mut self, pcm: &[i16]) -> Result<(), WavError> {
        for s in pcm {
            self.writer
                .write_sample(*s)
                .map_err(|e| err(&self.path, e))?;
        }
        Ok(())
    }

    /// Completes the header; a sink dropped without this still leaves a readable file.
    pub fn finish(self) -> Result<(), WavError> {
        let path = self.path.clone();
        self.writer.finalize().map_err(|e| err(&path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stereo_48k_file_plays_as_mono_8k_and_loops() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("moh.wav");
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 48000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&path, spec).unwrap();
        for n in 0..48000 {
            let v =
                ((2.0 * std::f32::consts::PI * 500.0 * n as f32 / 48000.0).sin() * 10000.0) as i16;
            w.write_sample(v).unwrap();
            w.write_sample(v).unwrap();
        }
        w.finalize().unwrap();
        let mut s = WavSource::open(&path, 8000, true).unwrap();
        assert_eq!(s.len(), 8000);
        let mut out = vec![0i16; 12000];
        assert!(s.fill(&mut out), "looping never ends");
        let f = crate::analysis::dominant_frequency(&out[1000..9000], 8000);
        assert!((f - 500.0).abs() < 2.0, "{f}");
        let mut once = WavSource::from_samples(vec![1; 100], false);
        assert!(!once.fill(&mut [0i16; 160]));
        let out_path = dir.path().join("rec.wav");
        let mut sink = WavSink::create(&out_path, 8000).unwrap();
        sink.write(&out).unwrap();
        sink.finish().unwrap();
        assert_eq!(
            WavSource::open(&out_path, 8000, false).unwrap().len(),
            12000
        );
    }
}
