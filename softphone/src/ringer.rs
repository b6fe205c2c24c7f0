//! The sounds the phone makes of itself on the sound card: the ring of an incoming call on the
//! ringer device (its cadence chosen by the caller's Alert-Info, a distinctive ring), a short
//! call-waiting tone on the speaker instead when a call is already up, and ring-back on the
//! speaker while the far end rings and plays no early media. Each plays on a thread of its
//! own until it is dropped.

use media::device::Devices;
use media::tones::{Country, Generator, Kind, Tone};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// What to play.
#[derive(Debug, Clone, PartialEq)]
pub enum Sound {
    /// An incoming call: the ring, with the distinctive ring the Alert-Info names
    /// (`Bellcore-dr2`…, or empty for the usual one).
    Ring(String),
    /// An incoming call while another is up.
    CallWaiting,
    /// The far end rings.
    Ringback,
    /// The settings form's test of a speaker: 1 kHz, half a second on and off.
    Test,
}

/// The ring's two frequencies (a warble the ear tells from call-progress tones).
pub const RING_FREQS: &[f32] = &[1200.0, 1400.0];

impl Sound {
    /// The tone and its cadence.
    pub fn tone(&self, country: Country) -> Tone {
        match self {
            Sound::Ring(distinctive) => Tone {
                freqs: RING_FREQS,
                cadence: match distinctive.to_ascii_lowercase().as_str() {
                    "bellcore-dr2" => &[(800, 400), (800, 4000)],
                    "bellcore-dr3" => &[(400, 200), (400, 200), (800, 4000)],
                    "bellcore-dr4" => &[(300, 200), (1000, 200), (300, 4000)],
                    _ => &[(1000, 2000)],
                },
            },
            Sound::CallWaiting => country.tone(Kind::CallWaiting),
            Sound::Ringback => country.tone(Kind::Ringback),
            Sound::Test => Tone {
                freqs: &[1000.0],
                cadence: &[(500, 500)],
            },
        }
    }
}

/// A sound playing; it stops when dropped.
pub struct Playing {
    stop: Arc<AtomicBool>,
}

impl Drop for Playing {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Plays `sound` on the device named `device` of `system` (empty: the default) at `volume`
/// percent until dropped.
pub fn play(
    sound: &Sound,
    (system, device): (&Devices, &str),
    volume: u8,
    country: Country,
) -> Result<Playing, String> {
    let name = (!device.is_empty()).then_some(device);
    let mut out = system.open_output(name).map_err(|e| e.to_string())?;
    let amplitude = 8000.0 * crate::config::Audio::gain(volume);
    let mut tone = Generator::new(sound.tone(country), out.rate(), amplitude);
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    std::thread::Builder::new()
        .name("ringer".into())
        .spawn(move || {
            // Kept a little above the card's playout target (40 ms) by the queue's level, so
            // the playout neither slips nor starves; no clock is read.
            let mut frame = vec![0i16; out.rate() as usize / 50];
            let level = out.rate() as usize / 25 + frame.len() / 2;
            while !stopped.load(Ordering::Relaxed) && out.is_alive() {
                while out.queued() < level {
                    tone.fill(&mut frame);
                    out.play(&frame);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        })
        .map_err(|e| e.to_string())?;
    Ok(Playing { stop })
}

/// The ring an Alert-Info names: its `info=` value, or the tone file's name.
pub fn distinctive_ring(alert_info: &str) -> String {
    if let Some(info) = alert_info
        .split(';')
        .find_map(|p| p.trim().strip_prefix("info="))
    {
        return info.trim_matches('"').to_string();
    }
    let uri = alert_info.trim().trim_start_matches('<');
    let uri = uri.split('>').next().unwrap_or_default();
    uri.rsplit('/').next().unwrap_or_default().to_string()
}
