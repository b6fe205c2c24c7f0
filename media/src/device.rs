//! Where a call's audio comes from and goes to: the null device and WAV files always (for
//! headless use and tests), real sound cards through cpal with the `devices` feature. Devices
//! run at their own rate; the caller converts with [`crate::resample`]. A device that fails
//! (unplugged) says so through `is_alive`, and the caller opens the default one again.

use crate::wav::{WavError, WavSink, WavSource};

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error(transparent)]
    Wav(#[from] WavError),
    #[error("audio device: {0}")]
    Device(String),
}

/// Where audio is played.
pub enum Output {
    /// Discards everything.
    Null {
        rate: u32,
    },
    File(WavSink, u32),
    #[cfg(feature = "devices")]
    Device(cpal_io::OutputDevice),
}

/// Where audio is captured.
pub enum Input {
    /// Silence.
    Null {
        rate: u32,
    },
    File(WavSource, u32),
    #[cfg(feature = "devices")]
    Device(cpal_io::InputDevice),
}

impl Output {
    pub fn rate(&self) -> u32 {
        match self {
            Output::Null { rate } | Output::File(_, rate) => *rate,
            #[cfg(feature = "devices")]
            Output::Device(d) => d.rate(),
        }
    }

    pub fn play(&mut self, pcm: &[i16]) -> Result<(), DeviceError> {
        match self {
            Output::Null { .. } => Ok(()),
            Output::File(sink, _) => Ok(sink.write(pcm)?),
            #[cfg(feature = "devices")]
            Output::Device(d) => {
                d.play(pcm);
                Ok(())
            }
        }
    }

    /// False once a device failed (unplugged): open another.
    pub fn is_alive(&self) -> bool {
        match self {
            #[cfg(feature = "devices")]
            Output::Device(d) => d.is_alive(),
            _ => true,
        }
    }
}

impl Input {
    pub fn rate(&self) -> u32 {
        match self {
            Input::Null { rate } | Input::File(_, rate) => *rate,
            #[cfg(feature = "devices")]
            Input::Device(d) => d.rate(),
        }
    }

    /// Fills `out` with captured audio (silence when there is none yet).
    pub fn read(&mut self, out: &mut [i16]) {
        match self {
            Input::Null { .. } => out.fill(0),
            Input::File(src, _) => {
                src.fill(out);
            }
            #[cfg(feature = "devices")]
            Input::Device(d) => d.read(out),
        }
    }

    pub fn is_alive(&self) -> bool {
        match self {
            #[cfg(feature = "devices")]
            Input::Device(d) => d.is_alive(),
            _ => true,
        }
    }
}

/// An [`Input`] read at a codec's rate whatever the device's own (resampled with
/// [`crate::resample::Resampler`]).
pub struct InputAt {
    input: Input,
    rate: u32,
    resampler: Option<crate::resample::Resampler>,
    raw: Vec<i16>,
    converted: Vec<i16>,
    ready: std::collections::VecDeque<i16>,
}

impl InputAt {
    pub fn new(input: Input, rate: u32) -> Result<Self, DeviceError> {
        let resampler = (input.rate() != rate)
            .then(|| crate::resample::Resampler::new(input.rate(), rate))
            .transpose()
            .map_err(DeviceError::Device)?;
        Ok(InputAt {
            input,
            rate,
            resampler,
            raw: Vec::new(),
            converted: Vec::new(),
            ready: Default::default(),
        })
    }

    /// Fills `out` with captured audio at the codec's rate.
    pub fn read(&mut self, out: &mut [i16]) {
        let Some(r) = &mut self.resampler else {
            return self.input.read(out);
        };
        while self.ready.len() < out.len() {
            self.raw.resize(r.input_frames(), 0);
            self.input.read(&mut self.raw);
            if r.process(&self.raw, &mut self.converted).is_err() {
                break;
            }
            self.ready.extend(&self.converted);
        }
        for o in out.iter_mut() {
            *o = self.ready.pop_front().unwrap_or(0);
        }
    }

    pub fn is_alive(&self) -> bool {
        self.input.is_alive()
    }

    /// The rate it is read at.
    pub fn rate(&self) -> u32 {
        self.rate
    }
}

/// An [`Output`] played at a codec's rate whatever the device's own (resampled).
pub struct OutputAt {
    output: Output,
    rate: u32,
    resampler: Option<crate::resample::Resampler>,
    pending: Vec<i16>,
    converted: Vec<i16>,
}

impl OutputAt {
    pub fn new(output: Output, rate: u32) -> Result<Self, DeviceError> {
        let resampler = (output.rate() != rate)
            .then(|| crate::resample::Resampler::new(rate, output.rate()))
            .transpose()
            .map_err(DeviceError::Device)?;
        Ok(OutputAt {
            output,
            rate,
            resampler,
            pending: Vec::new(),
            converted: Vec::new(),
        })
    }

    /// Plays `pcm` (at the codec's rate).
    pub fn play(&mut self, pcm: &[i16]) -> Result<(), DeviceError> {
        let Some(r) = &mut self.resampler else {
            return self.output.play(pcm);
        };
        self.pending.extend_from_slice(pcm);
        let n = r.input_frames();
        while self.pending.len() >= n {
            let chunk: Vec<i16> = self.pending.drain(..n).collect();
            r.process(&chunk, &mut self.converted)
                .map_err(DeviceError::Device)?;
            self.output.play(&self.converted)?;
        }
        Ok(())
    }

    pub fn is_alive(&self) -> bool {
        self.output.is_alive()
    }

    /// The rate it is played at.
    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// The device itself (a file sink is finished by the caller).
    pub fn into_inner(self) -> Output {
        self.output
    }
}

/// Sound cards through cpal (ALSA on Linux).
#[cfg(feature = "devices")]
pub mod cpal_io {
    use super::DeviceError;
    use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
    use std::collections::VecDeque;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    fn err(e: impl std::fmt::Display) -> DeviceError {
        DeviceError::Device(e.to_string())
    }

    /// Names of the input and output devices.
    pub fn list() -> Result<(Vec<String>, Vec<String>), DeviceError> {
        let host = cpal::default_host();
        let names = |it: Box<dyn Iterator<Item = cpal::Device>>| {
            it.filter_map(|d| d.name().ok()).collect::<Vec<_>>()
        };
        Ok((
            names(Box::new(host.input_devices().map_err(err)?)),
            names(Box::new(host.output_devices().map_err(err)?)),
        ))
    }

    fn find(output: bool, name: Option<&str>) -> Result<cpal::Device, DeviceError> {
        let host = cpal::default_host();
        match name {
            None if output => host.default_output_device(),
            None => host.default_input_device(),
            Some(n) => {
                let mut devices = if output {
                    host.output_devices().map_err(err)?
                } else {
                    host.input_devices().map_err(err)?
                };
                devices.find(|d| d.name().is_ok_and(|x| x == n))
            }
        }
        .ok_or_else(|| {
            DeviceError::Device(format!(
                "no {} device {}",
                if output { "output" } else { "input" },
                name.unwrap_or("(default)")
            ))
        })
    }

    type Shared = Arc<Mutex<VecDeque<i16>>>;

    fn lock(b: &Shared) -> std::sync::MutexGuard<'_, VecDeque<i16>> {
        b.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A playing device: mono samples at its rate, copied to every channel, through a
    /// [`crate::playout::Playout`] that follows the drift between the card's clock and the
    /// call's (40 ms ± 10 ms queued).
    pub struct OutputDevice {
        _stream: cpal::Stream,
        playout: Arc<Mutex<crate::playout::Playout>>,
        rate: u32,
        failed: Arc<AtomicBool>,
    }

    impl OutputDevice {
        /// Opens `name` (or the default device) at its own rate.
        pub fn open(name: Option<&str>) -> Result<Self, DeviceError> {
            let device = find(true, name)?;
            let supported = device.default_output_config().map_err(err)?;
            let config: cpal::StreamConfig = supported.config();
            let channels = usize::from(config.channels.max(1));
            let rate = config.sample_rate.0;
            let playout = Arc::new(Mutex::new(crate::playout::Playout::new(
                rate as usize / 25,
                rate as usize / 100,
            )));
            let failed = Arc::new(AtomicBool::new(false));
            let f = failed.clone();
            let on_error = move |_| f.store(true, Ordering::Relaxed);
            // Each callback takes mono samples from the playout into a buffer it keeps (no
            // allocation once warm) and copies them to every channel.
            let (p16, pf) = (playout.clone(), playout.clone());
            let (mut mono16, mut monof) = (Vec::<i16>::new(), Vec::<i16>::new());
            let stream = match supported.sample_format() {
                cpal::SampleFormat::I16 => device.build_output_stream(
                    &config,
                    move |data: &mut [i16], _| {
                        mono16.resize(data.len() / channels, 0);
                        p16.lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .pull(&mut mono16);
                        for (frame, s) in data.chunks_mut(channels).zip(&mono16) {
                            frame.fill(*s);
                        }
                    },
                    on_error,
                    None,
                ),
                _ => device.build_output_stream(
                    &config,
                    move |data: &mut [f32], _| {
                        monof.resize(data.len() / channels, 0);
                        pf.lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .pull(&mut monof);
                        for (frame, s) in data.chunks_mut(channels).zip(&monof) {
                            frame.fill(f32::from(*s) / 32768.0);
                        }
                    },
                    on_error,
                    None,
                ),
            }
            .map_err(err)?;
            stream.play().map_err(err)?;
            Ok(OutputDevice {
                _stream: stream,
                playout,
                rate,
                failed,
            })
        }

        pub fn rate(&self) -> u32 {
            self.rate
        }

        /// Queues audio for the card.
        pub fn play(&self, pcm: &[i16]) {
            self.playout
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(pcm);
        }

        /// Samples still queued.
        pub fn queued(&self) -> usize {
            self.playout
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .queued()
        }

        pub fn is_alive(&self) -> bool {
            !self.failed.load(Ordering::Relaxed)
        }
    }

    /// A capturing device: its first channel, at its rate.
    pub struct InputDevice {
        _stream: cpal::Stream,
        buffer: Shared,
        rate: u32,
        failed: Arc<AtomicBool>,
    }

    impl InputDevice {
        pub fn open(name: Option<&str>) -> Result<Self, DeviceError> {
            let device = find(false, name)?;
            let supported = device.default_input_config().map_err(err)?;
            let config: cpal::StreamConfig = supported.config();
            let channels = usize::from(config.channels.max(1));
            let buffer: Shared = Arc::default();
            let failed = Arc::new(AtomicBool::new(false));
            let (b, f) = (buffer.clone(), failed.clone());
            let rate = config.sample_rate.0;
            let on_error = move |_| f.store(true, Ordering::Relaxed);
            let keep = rate as usize;
            let stream = match supported.sample_format() {
                cpal::SampleFormat::I16 => device.build_input_stream(
                    &config,
                    move |data: &[i16], _| {
                        let mut q = lock(&b);
                        q.extend(data.chunks(channels).map(|f| f[0]));
                        while q.len() > keep {
                            q.pop_front();
                        }
                    },
                    on_error,
                    None,
                ),
                _ => device.build_input_stream(
                    &config,
                    move |data: &[f32], _| {
                        let mut q = lock(&b);
                        q.extend(data.chunks(channels).map(|f| (f[0] * 32767.0) as i16));
                        while q.len() > keep {
                            q.pop_front();
                        }
                    },
                    on_error,
                    None,
                ),
            }
            .map_err(err)?;
            stream.play().map_err(err)?;
            Ok(InputDevice {
                _stream: stream,
                buffer,
                rate,
                failed,
            })
        }

        pub fn rate(&self) -> u32 {
            self.rate
        }

        pub fn read(&self, out: &mut [i16]) {
            let mut q = lock(&self.buffer);
            for o in out.iter_mut() {
                *o = q.pop_front().unwrap_or(0);
            }
        }

        pub fn is_alive(&self) -> bool {
            !self.failed.load(Ordering::Relaxed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_and_file_devices() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.wav");
        let mut out = Output::File(WavSink::create(&path, 8000).unwrap(), 8000);
        out.play(&[5; 160]).unwrap();
        let Output::File(sink, _) = out else {
            unreachable!()
        };
        sink.finish().unwrap();
        let mut input = Input::File(WavSource::open(&path, 8000, false).unwrap(), 8000);
        let mut buf = [0i16; 200];
        input.read(&mut buf);
        assert!(buf[..160].iter().all(|s| *s == 5) && buf[160..].iter().all(|s| *s == 0));
        let mut null = Input::Null { rate: 48000 };
        null.read(&mut buf);
        assert!(null.is_alive() && buf.iter().all(|s| *s == 0));
        assert!(Output::Null { rate: 16000 }.play(&buf).is_ok());
    }

    /// A 48 kHz device read and played at 8 kHz: a tone keeps its pitch both ways.
    #[test]
    fn devices_at_other_rates_are_resampled() {
        let dir = tempfile::tempdir().unwrap();
        let tone48: Vec<i16> = (0..48_000)
            .map(|n| {
                ((2.0 * std::f32::consts::PI * 440.0 * n as f32 / 48_000.0).sin() * 8000.0) as i16
            })
            .collect();
        let path = dir.path().join("48k.wav");
        let mut sink = WavSink::create(&path, 48_000).unwrap();
        sink.write(&tone48).unwrap();
        sink.finish().unwrap();
        let mut input = InputAt::new(
            Input::File(WavSource::open(&path, 48_000, false).unwrap(), 48_000),
            8000,
        )
        .unwrap();
        let mut at8 = Vec::new();
        let mut frame = [0i16; 160];
        for _ in 0..40 {
            input.read(&mut frame);
            at8.extend_from_slice(&frame);
        }
        let f = crate::analysis::dominant_frequency(&at8[1600..], 8000);
        assert!((f - 440.0).abs() < 5.0, "captured {f} Hz");
        let out_path = dir.path().join("out48.wav");
        let mut output = OutputAt::new(
            Output::File(WavSink::create(&out_path, 48_000).unwrap(), 48_000),
            8000,
        )
        .unwrap();
        for chunk in at8.chunks(160) {
            output.play(chunk).unwrap();
        }
        let Output::File(sink, _) = output.into_inner() else {
            unreachable!()
        };
        sink.finish().unwrap();
        let played: Vec<i16> = hound::WavReader::open(&out_path)
            .unwrap()
            .into_samples()
            .map(Result::unwrap)
            .collect();
        assert!(
            played.len() > 40 * 900,
            "{} samples at 48 kHz",
            played.len()
        );
        let f = crate::analysis::dominant_frequency(&played[9600..], 48_000);
        assert!((f - 440.0).abs() < 5.0, "played {f} Hz");
    }

    /// Runs where ALSA_CONFIG_PATH routes the default PCM to the null plugin
    /// (media/tests/alsa/null.conf; scripts/check sets it), so no sound card is needed.
    #[cfg(feature = "devices")]
    #[test]
    fn default_device_plays_through_alsa() {
        if std::env::var("ALSA_CONFIG_PATH").is_err() {
            eprintln!("ALSA_CONFIG_PATH not set: needs a sound card or media/tests/alsa/null.conf");
            return;
        }
        let _ = cpal_io::list().unwrap();
        let dev = cpal_io::OutputDevice::open(None).unwrap();
        assert!(dev.rate() >= 8000);
        dev.play(&vec![1000i16; dev.rate() as usize / 2]);
        let start = std::time::Instant::now();
        while dev.queued() > 0 && start.elapsed() < std::time::Duration::from_secs(5) {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert_eq!(dev.queued(), 0, "the device consumed what was played");
        assert!(dev.is_alive());
    }
}
