//! Where a call's audio comes from and goes to: the null device and WAV files always (for
//! headless use and tests), real sound cards through cpal with the `devices` feature. Devices
//! run at their own rate; the caller converts with [`crate::resample`]. A device that fails
//! (unplugged) says so through `is_alive`, and the caller opens the default one again.
//! Sound cards are reached through a [`SoundSystem`] — cpal's, or [`Simulated`] cards whose
//! plug a test can pull.

use crate::wav::{WavError, WavSink, WavSource};

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error(transparent)]
    Wav(#[from] WavError),
    #[error("audio device: {0}")]
    Device(String),
}

/// A sound card's playing side, as [`SoundSystem::open_output`] opens it: mono samples at its
/// own rate, queued for the card.
pub trait Playback: Send {
    fn rate(&self) -> u32;
    /// Queues audio for the card.
    fn play(&mut self, pcm: &[i16]);
    /// Samples still queued.
    fn queued(&self) -> usize;
    /// False once the device failed (unplugged): open another.
    fn is_alive(&self) -> bool;
}

/// A sound card's capturing side: mono samples at its own rate.
pub trait Capture: Send {
    fn rate(&self) -> u32;
    /// Fills `out` with what was captured (silence where there is nothing yet).
    fn read(&mut self, out: &mut [i16]);
    /// Samples captured and not read yet.
    fn available(&self) -> usize;
    fn is_alive(&self) -> bool;
}

/// The sound cards a phone can use, by name: the machine's through cpal
/// ([`Devices::default`]), or [`Simulated`] ones in tests. `None` names the system's default.
pub trait SoundSystem: Send + Sync {
    /// The microphones' names.
    fn inputs(&self) -> Vec<String>;
    /// The speakers' names.
    fn outputs(&self) -> Vec<String>;
    fn open_input(&self, name: Option<&str>) -> Result<Box<dyn Capture>, DeviceError>;
    fn open_output(&self, name: Option<&str>) -> Result<Box<dyn Playback>, DeviceError>;
}

/// A handle on a [`SoundSystem`], kept in configurations: two handles are equal when they
/// are the same system.
#[derive(Clone)]
pub struct Devices(pub std::sync::Arc<dyn SoundSystem>);

impl Devices {
    pub fn new(system: impl SoundSystem + 'static) -> Self {
        Devices(std::sync::Arc::new(system))
    }
}

impl std::ops::Deref for Devices {
    type Target = dyn SoundSystem;
    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}

/// The machine's sound cards (cpal), or none without the `devices` feature.
impl Default for Devices {
    fn default() -> Self {
        static MACHINE: std::sync::LazyLock<Devices> = std::sync::LazyLock::new(|| {
            #[cfg(feature = "devices")]
            return Devices::new(cpal_io::Cpal);
            #[cfg(not(feature = "devices"))]
            Devices::new(Simulated::default())
        });
        MACHINE.clone()
    }
}

impl PartialEq for Devices {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::addr_eq(
            std::sync::Arc::as_ptr(&self.0),
            std::sync::Arc::as_ptr(&other.0),
        )
    }
}

impl Eq for Devices {}

impl std::fmt::Debug for Devices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Devices")
            .field("inputs", &self.inputs())
            .field("outputs", &self.outputs())
            .finish()
    }
}

/// Where audio is played.
pub enum Output {
    /// Discards everything.
    Null {
        rate: u32,
    },
    File(WavSink, u32),
    Device(Box<dyn Playback>),
}

/// Where audio is captured.
pub enum Input {
    /// Silence.
    Null {
        rate: u32,
    },
    File(WavSource, u32),
    Device(Box<dyn Capture>),
}

impl Output {
    pub fn rate(&self) -> u32 {
        match self {
            Output::Null { rate } | Output::File(_, rate) => *rate,
            Output::Device(d) => d.rate(),
        }
    }

    pub fn play(&mut self, pcm: &[i16]) -> Result<(), DeviceError> {
        match self {
            Output::Null { .. } => Ok(()),
            Output::File(sink, _) => Ok(sink.write(pcm)?),
            Output::Device(d) => {
                d.play(pcm);
                Ok(())
            }
        }
    }

    /// False once a device failed (unplugged): open another.
    pub fn is_alive(&self) -> bool {
        match self {
            Output::Device(d) => d.is_alive(),
            _ => true,
        }
    }
}

impl Input {
    pub fn rate(&self) -> u32 {
        match self {
            Input::Null { rate } | Input::File(_, rate) => *rate,
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
            Input::Device(d) => d.read(out),
        }
    }

    pub fn is_alive(&self) -> bool {
        match self {
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

    /// The machine's sound cards.
    pub struct Cpal;

    impl super::SoundSystem for Cpal {
        fn inputs(&self) -> Vec<String> {
            list().map(|(i, _)| i).unwrap_or_default()
        }

        fn outputs(&self) -> Vec<String> {
            list().map(|(_, o)| o).unwrap_or_default()
        }

        fn open_input(&self, name: Option<&str>) -> Result<Box<dyn super::Capture>, DeviceError> {
            Ok(Box::new(InputDevice::open(name)?))
        }

        fn open_output(&self, name: Option<&str>) -> Result<Box<dyn super::Playback>, DeviceError> {
            Ok(Box::new(OutputDevice::open(name)?))
        }
    }

    impl super::Playback for OutputDevice {
        fn rate(&self) -> u32 {
            self.rate
        }
        fn play(&mut self, pcm: &[i16]) {
            OutputDevice::play(self, pcm)
        }
        fn queued(&self) -> usize {
            OutputDevice::queued(self)
        }
        fn is_alive(&self) -> bool {
            OutputDevice::is_alive(self)
        }
    }

    impl super::Capture for InputDevice {
        fn rate(&self) -> u32 {
            self.rate
        }
        fn read(&mut self, out: &mut [i16]) {
            InputDevice::read(self, out)
        }
        fn available(&self) -> usize {
            lock(&self.buffer).len()
        }
        fn is_alive(&self) -> bool {
            InputDevice::is_alive(self)
        }
    }

    type Shared = Arc<Mutex<VecDeque<i16>>>;

    /// A stream built by `build` with a short buffer where the card takes it — 40 ms in four
    /// 10 ms periods — else its own default (cpal asks ALSA for 25 ms periods in a 100 ms
    /// buffer, all of it delay). cpal's fixed size is the whole buffer, in four periods: a
    /// card may want the buffer a whole number of periods (PulseAudio's plugin does).
    fn short_periods(
        supported: &cpal::SupportedStreamConfig,
        mut build: impl FnMut(&cpal::StreamConfig) -> Result<cpal::Stream, cpal::BuildStreamError>,
    ) -> Result<cpal::Stream, DeviceError> {
        let mut config = supported.config();
        let rate = config.sample_rate.0;
        for frames in [4 * (rate / 100)] {
            if let cpal::SupportedBufferSize::Range { min, max } = supported.buffer_size()
                && (*min..=*max).contains(&frames)
            {
                config.buffer_size = cpal::BufferSize::Fixed(frames);
                if let Ok(s) = build(&config) {
                    return Ok(s);
                }
            }
        }
        config.buffer_size = cpal::BufferSize::Default;
        build(&config).map_err(err)
    }

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
        /// Opens `name` (or the default device) at its own rate, with short periods where
        /// the card takes them.
        pub fn open(name: Option<&str>) -> Result<Self, DeviceError> {
            let device = find(true, name)?;
            let supported = device.default_output_config().map_err(err)?;
            let rate = supported.sample_rate().0;
            let channels = usize::from(supported.channels().max(1));
            let playout = Arc::new(Mutex::new(crate::playout::Playout::new(
                rate as usize / 25,
                rate as usize / 100,
            )));
            let failed = Arc::new(AtomicBool::new(false));
            let stream = short_periods(&supported, |config| {
                let f = failed.clone();
                let on_error = move |_| f.store(true, Ordering::Relaxed);
                // Each callback takes mono samples from the playout into a buffer it keeps
                // (no allocation once warm) and copies them to every channel.
                let p = playout.clone();
                let mut mono = Vec::<i16>::new();
                match supported.sample_format() {
                    cpal::SampleFormat::I16 => device.build_output_stream(
                        config,
                        move |data: &mut [i16], _| {
                            mono.resize(data.len() / channels, 0);
                            p.lock().unwrap_or_else(|e| e.into_inner()).pull(&mut mono);
                            for (frame, s) in data.chunks_mut(channels).zip(&mono) {
                                frame.fill(*s);
                            }
                        },
                        on_error,
                        None,
                    ),
                    _ => device.build_output_stream(
                        config,
                        move |data: &mut [f32], _| {
                            mono.resize(data.len() / channels, 0);
                            p.lock().unwrap_or_else(|e| e.into_inner()).pull(&mut mono);
                            for (frame, s) in data.chunks_mut(channels).zip(&mono) {
                                frame.fill(f32::from(*s) / 32768.0);
                            }
                        },
                        on_error,
                        None,
                    ),
                }
            })?;
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
        /// Opens `name` (or the default device) at its own rate, with short periods where
        /// the card takes them.
        pub fn open(name: Option<&str>) -> Result<Self, DeviceError> {
            let device = find(false, name)?;
            let supported = device.default_input_config().map_err(err)?;
            let rate = supported.sample_rate().0;
            let channels = usize::from(supported.channels().max(1));
            let buffer: Shared = Arc::default();
            let failed = Arc::new(AtomicBool::new(false));
            let keep = rate as usize;
            let stream = short_periods(&supported, |config| {
                let (b, f) = (buffer.clone(), failed.clone());
                let on_error = move |_| f.store(true, Ordering::Relaxed);
                match supported.sample_format() {
                    cpal::SampleFormat::I16 => device.build_input_stream(
                        config,
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
                        config,
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
            })?;
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

        /// Takes `out.len()` samples. A backlog beyond 40 ms (the card started before the
        /// call read it) is dropped to 15 ms first: kept, it would be delay for the whole call.
        pub fn read(&self, out: &mut [i16]) {
            let mut q = lock(&self.buffer);
            let (most, keep) = (self.rate as usize / 25, self.rate as usize * 15 / 1000);
            if q.len() > out.len() + most {
                let excess = q.len() - out.len() - keep;
                q.drain(..excess);
            }
            for o in out.iter_mut() {
                *o = q.pop_front().unwrap_or(0);
            }
        }

        pub fn is_alive(&self) -> bool {
            !self.failed.load(Ordering::Relaxed)
        }
    }
}

/// Simulated sound cards, for tests of what sits on the device boundary: each microphone
/// "hears" a tone of its own, each speaker keeps what it was given (at 48 kHz, as most cards
/// run), and a device can be unplugged under a running stream — its streams then fail as
/// cpal's do — and plugged in again. The first of each list is the system's default. Its
/// speakers play at the pace of the clock it is given ([`Simulated::with_clock`]); without
/// one, what is queued is never played out.
#[derive(Clone, Default)]
pub struct Simulated {
    inner: std::sync::Arc<std::sync::Mutex<SimulatedCards>>,
    clock: Option<std::sync::Arc<dyn Fn() -> std::time::Duration + Send + Sync>>,
}

#[derive(Default)]
struct SimulatedCards {
    /// (name, tone in Hz, plugged in)
    inputs: Vec<(String, f32, bool)>,
    /// (name, what it played, plugged in)
    outputs: Vec<(String, Recording, bool)>,
}

/// What a simulated speaker played.
type Recording = std::sync::Arc<std::sync::Mutex<Vec<i16>>>;

/// The rate simulated devices run at.
pub const SIMULATED_RATE: u32 = 48_000;

impl Simulated {
    /// Cards whose speakers play out at the pace of `clock` (the time since some start).
    pub fn with_clock(clock: impl Fn() -> std::time::Duration + Send + Sync + 'static) -> Self {
        Simulated {
            clock: Some(std::sync::Arc::new(clock)),
            ..Default::default()
        }
    }

    /// Samples a speaker opened at `since` has played out by now.
    fn played_out(&self, since: std::time::Duration) -> u64 {
        self.clock.as_ref().map_or(0, |now| {
            (now().saturating_sub(since).as_secs_f64() * f64::from(SIMULATED_RATE)) as u64
        })
    }

    fn cards(&self) -> std::sync::MutexGuard<'_, SimulatedCards> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds (or plugs in again) a microphone that hears `freq` Hz.
    pub fn add_input(&self, name: &str, freq: f32) {
        let mut c = self.cards();
        c.inputs.retain(|(n, ..)| n != name);
        c.inputs.push((name.to_string(), freq, true));
    }

    /// Adds (or plugs in again) a speaker.
    pub fn add_output(&self, name: &str) {
        let mut c = self.cards();
        match c.outputs.iter_mut().find(|(n, ..)| n == name) {
            Some(o) => o.2 = true,
            None => c.outputs.push((name.to_string(), Default::default(), true)),
        }
    }

    /// Pulls out every device called `name`: its streams fail, and it is no longer listed.
    pub fn unplug(&self, name: &str) {
        let mut c = self.cards();
        for i in c.inputs.iter_mut().filter(|(n, ..)| n == name) {
            i.2 = false;
        }
        for o in c.outputs.iter_mut().filter(|(n, ..)| n == name) {
            o.2 = false;
        }
    }

    /// What speaker `name` has played so far (at [`SIMULATED_RATE`]).
    pub fn played(&self, name: &str) -> Vec<i16> {
        let c = self.cards();
        c.outputs
            .iter()
            .find(|(n, ..)| n == name)
            .map(|(_, p, _)| p.lock().unwrap_or_else(|e| e.into_inner()).clone())
            .unwrap_or_default()
    }

    fn plugged(&self, output: bool, name: &str) -> bool {
        let c = self.cards();
        if output {
            c.outputs.iter().any(|(n, _, p)| n == name && *p)
        } else {
            c.inputs.iter().any(|(n, _, p)| n == name && *p)
        }
    }
}

impl SoundSystem for Simulated {
    fn inputs(&self) -> Vec<String> {
        let c = self.cards();
        c.inputs
            .iter()
            .filter(|i| i.2)
            .map(|i| i.0.clone())
            .collect()
    }

    fn outputs(&self) -> Vec<String> {
        let c = self.cards();
        c.outputs
            .iter()
            .filter(|o| o.2)
            .map(|o| o.0.clone())
            .collect()
    }

    fn open_input(&self, name: Option<&str>) -> Result<Box<dyn Capture>, DeviceError> {
        let c = self.cards();
        let found = c
            .inputs
            .iter()
            .filter(|i| i.2)
            .find(|i| name.is_none_or(|n| n == i.0));
        let Some((name, freq, _)) = found else {
            return Err(DeviceError::Device(format!(
                "no input device {}",
                name.unwrap_or("(default)")
            )));
        };
        Ok(Box::new(SimulatedInput {
            cards: self.clone(),
            name: name.clone(),
            freq: *freq,
            phase: 0.0,
        }))
    }

    fn open_output(&self, name: Option<&str>) -> Result<Box<dyn Playback>, DeviceError> {
        let c = self.cards();
        let found = c
            .outputs
            .iter()
            .filter(|o| o.2)
            .find(|o| name.is_none_or(|n| n == o.0));
        let Some((name, played, _)) = found else {
            return Err(DeviceError::Device(format!(
                "no output device {}",
                name.unwrap_or("(default)")
            )));
        };
        Ok(Box::new(SimulatedOutput {
            cards: self.clone(),
            name: name.clone(),
            played: played.clone(),
            opened: self
                .clock
                .as_ref()
                .map_or(std::time::Duration::ZERO, |now| now()),
            pushed: 0,
        }))
    }
}

struct SimulatedInput {
    cards: Simulated,
    name: String,
    freq: f32,
    phase: f32,
}

impl Capture for SimulatedInput {
    fn rate(&self) -> u32 {
        SIMULATED_RATE
    }
    fn read(&mut self, out: &mut [i16]) {
        if self.is_alive() {
            let step = std::f32::consts::TAU * self.freq / SIMULATED_RATE as f32;
            for o in out.iter_mut() {
                *o = (self.phase.sin() * 8000.0) as i16;
                self.phase = (self.phase + step) % std::f32::consts::TAU;
            }
        } else {
            out.fill(0);
        }
    }
    /// A frame's worth at each look (the simulated card keeps no time).
    fn available(&self) -> usize {
        SIMULATED_RATE as usize / 50
    }
    fn is_alive(&self) -> bool {
        self.cards.plugged(false, &self.name)
    }
}

struct SimulatedOutput {
    cards: Simulated,
    name: String,
    played: Recording,
    /// When it was opened (by the cards' clock), and how much it was given since.
    opened: std::time::Duration,
    pushed: u64,
}

impl Playback for SimulatedOutput {
    fn rate(&self) -> u32 {
        SIMULATED_RATE
    }
    fn play(&mut self, pcm: &[i16]) {
        if self.is_alive() {
            self.pushed += pcm.len() as u64;
            self.played
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend_from_slice(pcm);
        }
    }
    fn queued(&self) -> usize {
        self.pushed
            .saturating_sub(self.cards.played_out(self.opened))
            .try_into()
            .unwrap_or(usize::MAX)
    }
    fn is_alive(&self) -> bool {
        self.cards.plugged(true, &self.name)
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
