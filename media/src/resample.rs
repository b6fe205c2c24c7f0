//! Sample-rate conversion between devices and codecs (48 kHz ⇄ 8/16 kHz), frame by frame,
//! with rubato's FFT resampler (no hand-written filters).

use rubato::{FftFixedInOut, Resampler as _};

/// Converts 20 ms frames from one rate to another.
pub struct Resampler {
    inner: FftFixedInOut<f32>,
    input: Vec<Vec<f32>>,
    output: Vec<Vec<f32>>,
}

impl Resampler {
    pub fn new(from: u32, to: u32) -> Result<Self, String> {
        let inner = FftFixedInOut::<f32>::new(from as usize, to as usize, from as usize / 50, 1)
            .map_err(|e| e.to_string())?;
        let output = inner.output_buffer_allocate(true);
        Ok(Resampler {
            inner,
            input: vec![Vec::new()],
            output,
        })
    }

    /// Input samples per call (one 20 ms frame).
    pub fn input_frames(&self) -> usize {
        self.inner.input_frames_next()
    }

    /// Converts one frame; `pcm` must hold [`Self::input_frames`] samples.
    pub fn process(&mut self, pcm: &[i16], out: &mut Vec<i16>) -> Result<(), String> {
        self.input[0].clear();
        self.input[0].extend(pcm.iter().map(|s| f32::from(*s) / 32768.0));
        let (_, n) = self
            .inner
            .process_into_buffer(&self.input, &mut self.output, None)
            .map_err(|e| e.to_string())?;
        out.clear();
        out.extend(
            self.output[0][..n]
                .iter()
                .map(|v| (v * 32768.0).clamp(-32768.0, 32767.0) as i16),
        );
        Ok(())
    }
}
