//! A running office for the call tests: `pbx-lite serve` with a baresip phone per station,
//! each playing its own tone and recording what it hears, and the analysis that tells who
//! heard whom.
#![allow(dead_code, clippy::unwrap_used)]

#[allow(unused_imports)] // each test binary uses some of them
pub(crate) use e2e::audio::{heard_in_order, samples_so_far, timeline, tone};
use e2e::baresip::Baresip;
use media::analysis::tone_share;
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub(crate) use e2e::process::Kill;

pub(crate) fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !ok() {
        assert!(t0.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A station's phone: its number, the tone it plays, and baresip.
pub(crate) struct Phone {
    pub(crate) number: String,
    pub(crate) freq: f32,
    pub(crate) b: Baresip,
}

impl Phone {
    pub(crate) fn send(&self, command: &str) {
        self.b.command(&format!("{command}\n")).unwrap();
    }

    pub(crate) fn log(&self) -> String {
        self.b.log()
    }

    /// How many times `text` is in the phone's log.
    pub(crate) fn count(&self, text: &str) -> usize {
        self.b.log().matches(text).count()
    }

    /// What the phone heard on each call, in the order of the calls (as far as written:
    /// a recording still open is read too).
    pub(crate) fn recordings(&self) -> Vec<Vec<i16>> {
        let mut files: Vec<PathBuf> = self.b.decoded_files();
        files.sort();
        files.iter().map(|f| samples_so_far(f)).collect()
    }

    /// Waits until the phone's current call has brought it `freqs` in order, a second each
    /// (see [`heard_in_order`]): the event a call test waits on before its next step.
    pub(crate) fn wait_heard(&self, freqs: &[f32]) {
        let t0 = Instant::now();
        loop {
            let now = self.b.latest_decoded().map(|f| samples_so_far(&f));
            if now.as_ref().is_some_and(|h| heard_in_order(h, freqs)) {
                return;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "{} did not hear {freqs:?}: it heard {:?}",
                self.number,
                now.map(|h| timeline(&h))
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The share of each of `freqs` in the last `seconds` of `samples`.
pub(crate) fn shares_at_end(samples: &[i16], seconds: usize, freqs: &[f32]) -> Vec<f32> {
    let n = (seconds * 8000).min(samples.len());
    let tail = &samples[samples.len() - n..];
    freqs.iter().map(|f| tone_share(tail, *f, 8000)).collect()
}

/// pbx-lite with one baresip per station (display name "Station NNN"); hold music is an
/// 800 Hz tone.
pub(crate) struct Office {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) port: u16,
    /// The SIP over TLS port.
    pub(crate) tls: u16,
    pub(crate) rtp_lo: u16,
    pbx: Option<Kill>,
    pub(crate) phones: Vec<Phone>,
}

/// The hold music the offices play (Hz).
pub(crate) const MUSIC: f32 = 800.0;

impl Office {
    pub(crate) fn db(&self) -> PathBuf {
        self.dir.path().join("office.db")
    }

    pub(crate) fn cli(&self, args: &[&str]) -> std::process::Output {
        super::cli(&self.db(), args)
    }

    pub(crate) fn set(&self, key: &str, value: &str) {
        self.cli(&["settings", "set", key, value]);
    }

    fn start_pbx(&mut self) {
        let rtp = format!("{}-{}", self.rtp_lo, self.rtp_lo + 39);
        let tls = format!("127.0.0.1:{}", self.tls);
        self.pbx = Some(Kill(super::serve(
            &self.db(),
            self.port,
            &["--rtp-ports", &rtp, "--tls", &tls],
        )));
    }

    /// Stops the PBX at once (SIGKILL) and starts it again on the same database.
    pub(crate) fn restart_pbx(&mut self) {
        drop(self.pbx.take());
        self.start_pbx();
    }

    /// What the PBX logged (all its runs).
    pub(crate) fn pbx_log(&self) -> String {
        std::fs::read_to_string(super::log_of(&self.db())).unwrap_or_default()
    }

    /// Stations `(number, tone Hz, answer mode)` with a baresip each, `media.relay = relay`.
    pub(crate) fn start(relay: &str, stations: &[(&str, f32, &str)]) -> Office {
        Office::start_secure(relay, stations, &[])
    }

    /// [`Office::start`], the stations in `secure` with `srtp=mandatory` and their baresip
    /// on TLS (trusting only the office's `ca.pem`) with SRTP mandatory.
    pub(crate) fn start_secure(
        relay: &str,
        stations: &[(&str, f32, &str)],
        secure: &[&str],
    ) -> Office {
        let dir = tempfile::tempdir().unwrap();
        let port = super::free_port();
        let mut o = Office {
            rtp_lo: 30000 + (port % 500) * 40,
            dir,
            port,
            tls: super::free_port(),
            pbx: None,
            phones: Vec::new(),
        };
        for (n, _, _) in stations {
            super::add_station(&o.db(), n);
        }
        for n in secure {
            o.cli(&["station", "set", n, "srtp=mandatory"]);
        }
        o.set("media.relay", relay);
        // Timer F (64 × T1) is how long a probe of a vanished phone takes to fail.
        o.set("sip.t1_ms", "100");
        let music = o.dir.path().join("music.wav");
        tone(&music, MUSIC);
        o.set("hold.music", music.to_str().unwrap());
        o.start_pbx();
        for (n, freq, answer) in stations {
            let wav = o.dir.path().join(format!("tone{n}.wav"));
            tone(&wav, *freq);
            let (number, answer) = (n.to_string(), answer.to_string());
            let (at, params, extra) = if secure.contains(n) {
                let ca = o.dir.path().join("office.db.tls/ca.pem");
                (
                    format!("127.0.0.1:{};transport=tls", o.tls),
                    ";mediaenc=srtp-mand",
                    format!("sip_cafile {}\n", ca.display()),
                )
            } else {
                (format!("127.0.0.1:{port}"), "", String::new())
            };
            let b = Baresip::start_full(
                &wav,
                move |_| {
                    let n = &number;
                    format!("\"Station {n}\" <sip:{n}@{at}>;auth_user=u{n};auth_pass=Pw-{n}-secret;answermode={answer};audio_codecs=PCMU;regint=600{params}")
                },
                &extra,
            )
            .unwrap();
            o.phones.push(Phone {
                number: n.to_string(),
                freq: *freq,
                b,
            });
        }
        wait_for("every phone registered", Duration::from_secs(10), || {
            let v: serde_json::Value =
                serde_json::from_slice(&o.cli(&["status", "--json"]).stdout).unwrap();
            v.as_array()
                .unwrap()
                .iter()
                .all(|r| r["registered"] == true)
        });
        o
    }

    /// The phone of station `number`.
    pub(crate) fn phone(&self, number: &str) -> &Phone {
        self.phones.iter().find(|p| p.number == number).unwrap()
    }

    /// Waits until `text` has appeared `n` times in the log of `number`'s phone.
    /// Hangs up `number`'s current call; the command goes again if the phone has not hung
    /// up after a few seconds (a console datagram can be missed while baresip is busy).
    pub(crate) fn hang_up(&self, number: &str) {
        let p = self.phone(number);
        let before = p.count("terminated");
        for _ in 0..3 {
            p.send("/hangup");
            let t0 = Instant::now();
            while t0.elapsed() < Duration::from_secs(3) {
                if p.count("terminated") > before {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        self.wait_log(number, "terminated", before + 1);
    }

    /// On a timeout, every phone's log and the PBX's are shown.
    pub(crate) fn wait_log(&self, number: &str, text: &str, n: usize) {
        let p = self.phone(number);
        let t0 = Instant::now();
        while p.count(text) < n {
            if t0.elapsed() > Duration::from_secs(15) {
                for q in &self.phones {
                    eprintln!("----- {} -----\n{}", q.number, q.log());
                }
                panic!(
                    "timed out waiting for {number}: {text:?} ×{n}\n----- PBX -----\n{}",
                    self.pbx_log()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
