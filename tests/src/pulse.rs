//! A sound card of PulseAudio null sinks for a test or a bench, with no sound card in the
//! machine: a daemon of its own (its runtime folder in the caller's directory), reached
//! through ALSA's pulse plugin as cpal, baresip's `alsa` module or any ALSA program reaches a
//! card. The speaker is one null sink; the microphone is the monitor of another — or of the
//! same one, an acoustic loop, as a handset held to a loudspeaker.

use crate::process::Kill;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub struct Card {
    _daemon: Kill,
    runtime: PathBuf,
    alsa: PathBuf,
}

impl Card {
    /// Starts PulseAudio in `dir` with null sink `speaker` as the default sink and the
    /// monitor of null sink `microphone` as the default source (the same sink: a loop).
    pub fn start(dir: &Path, speaker: &str, microphone: &str) -> Card {
        let runtime = dir.join("pulse-runtime");
        std::fs::create_dir_all(&runtime).expect("a PulseAudio runtime folder");
        std::fs::set_permissions(
            &runtime,
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .expect("a private runtime folder");
        let mut c = Command::new("pulseaudio");
        c.args([
            "--daemonize=no",
            "--exit-idle-time=-1",
            "-n",
            "--load=module-native-protocol-unix",
        ])
        .arg(format!("--load=module-null-sink sink_name={speaker}"));
        if microphone != speaker {
            c.arg(format!("--load=module-null-sink sink_name={microphone}"));
        }
        c.env("XDG_RUNTIME_DIR", &runtime)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(runtime.join("pulseaudio.log")).expect("a log"));
        let daemon = Kill(c.spawn().expect("pulseaudio (Debian package pulseaudio)"));
        let pactl = |args: &[&str]| {
            Command::new("pactl")
                .args(args)
                .env("XDG_RUNTIME_DIR", &runtime)
                .output()
                .is_ok_and(|o| o.status.success())
        };
        let t0 = Instant::now();
        while !pactl(&["info"]) {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "PulseAudio did not answer"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(
            pactl(&["set-default-sink", speaker])
                && pactl(&["set-default-source", &format!("{microphone}.monitor")]),
            "PulseAudio took no defaults"
        );
        let alsa = dir.join("alsa.conf");
        std::fs::write(
            &alsa,
            "pcm.!default { type pulse }\nctl.!default { type pulse }\n",
        )
        .expect("an ALSA configuration");
        Card {
            _daemon: daemon,
            runtime,
            alsa,
        }
    }

    /// `program`, to run with the card as its default ALSA device.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new(program);
        c.env("XDG_RUNTIME_DIR", &self.runtime)
            .env("ALSA_CONFIG_PATH", &self.alsa);
        c
    }

    /// Records the monitor of null sink `sink` into `wav` (8 kHz mono) until dropped.
    pub fn record(&self, sink: &str, wav: &Path) -> Kill {
        let mut rec = self.command("parec");
        rec.args([
            "-d",
            &format!("{sink}.monitor"),
            "--file-format=wav",
            "--rate=8000",
            "--channels=1",
        ])
        .arg(wav);
        Kill(
            rec.spawn()
                .expect("parec (Debian package pulseaudio-utils)"),
        )
    }
}
