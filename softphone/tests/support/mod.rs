//! What the softphone's integration tests share: pbx-lite and its CLI, the phone's events.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::mpsc;
use std::time::Duration;

/// The pbx-lite binary of this workspace, built if it is not there yet.
pub(crate) fn pbx_lite() -> PathBuf {
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/pbx-lite");
    if !target.exists() {
        let ok = Command::new(env!("CARGO"))
            .args(["build", "-p", "pbx-lite"])
            .status()
            .unwrap()
            .success();
        assert!(ok, "cargo build -p pbx-lite failed");
    }
    target
}

pub(crate) use e2e::kit::free_port;

pub(crate) use e2e::process::Kill;

pub(crate) fn cli(db: &Path, args: &[&str]) -> String {
    let o = Command::new(pbx_lite())
        .arg("--db")
        .arg(db)
        .args(args)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

pub(crate) fn registered(db: &Path, number: &str) -> bool {
    let v: serde_json::Value = serde_json::from_str(&cli(db, &["status", "--json"])).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .any(|r| r["number"] == number && r["registered"] == true)
}

/// The phone's events, one JSON value per line, as they come.
pub(crate) fn events(child: &mut Child) -> mpsc::Receiver<serde_json::Value> {
    let (tx, rx) = mpsc::channel();
    let out = BufReader::new(child.stdout.take().unwrap());
    std::thread::spawn(move || {
        for line in out.lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str(&line) {
                let _ = tx.send(v);
            }
        }
    });
    rx
}

/// Waits (up to 15 s) for the next event named `name`, passing over others — and saying
/// which ones, when it does not come (a call's quality reports alone never end the wait).
pub(crate) fn expect(rx: &mpsc::Receiver<serde_json::Value>, name: &str) -> serde_json::Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let mut passed = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let Ok(v) = rx.recv_timeout(left) else {
            panic!("no {name} event; meanwhile: {passed:?}");
        };
        if v["event"] == name {
            return v;
        }
        if v["event"] != "quality" {
            passed.push(v["event"].to_string());
        }
    }
}

/// `pbx-lite --db DB` with `args` (a `serve` with SIP on 127.0.0.1:`sip`), its log added to
/// `log`, once it says it listens; `Err` with its log when it exits or stays silent.
pub(crate) fn serve(db: &Path, log: &Path, args: &[&str], sip: u16) -> Result<Kill, String> {
    let from = std::fs::metadata(log).map_or(0, |m| m.len() as usize);
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let mut child = Kill(
        Command::new(pbx_lite())
            .arg("--db")
            .arg(db)
            .args(args)
            .stderr(out)
            .spawn()
            .unwrap(),
    );
    let listening = format!("SIP on 127.0.0.1:{sip} ");
    e2e::kit::wait_for_log_line(&mut child.0, log, from, &listening, Duration::from_secs(10))?;
    Ok(child)
}

/// `pbx-lite serve` on loopback over a fresh database with `stations` (password
/// `Pw-NNN-secret`, user `uNNN`), direct media.
pub(crate) struct Pbx {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) db: PathBuf,
    pub(crate) port: u16,
    /// Its SIP over TLS port (the office CA is in `office.db.tls/ca.pem`).
    pub(crate) tls: u16,
    _child: Kill,
}

impl Pbx {
    pub(crate) fn start(stations: &[&str]) -> Pbx {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("office.db");
        for n in stations {
            add_station(&db, n, &[]);
        }
        cli(&db, &["settings", "set", "media.relay", "never"]);
        let log = dir.path().join("pbx.log");
        // Ports from free_port can be taken by another test before pbx-lite binds them: then
        // it exits, and it starts again on others.
        for _ in 0..5 {
            let (port, tls) = (free_port(), free_port());
            let args = [
                "serve",
                "--sip",
                &format!("127.0.0.1:{port}"),
                "--no-provisioning",
                "--admin",
                "127.0.0.1:0",
                "--tls",
                &format!("127.0.0.1:{tls}"),
            ];
            match serve(&db, &log, &args, port) {
                Ok(child) => {
                    return Pbx {
                        dir,
                        db,
                        port,
                        tls,
                        _child: child,
                    };
                }
                Err(e) => eprintln!("pbx-lite did not start on {port}, again: {e}"),
            }
        }
        panic!("pbx-lite did not start in five tries");
    }

    /// An `[[account]]` for station `number` on this PBX's TLS port with SRTP mandatory, and
    /// the office CA the profile would carry, pinned by its fingerprint.
    pub(crate) fn secure_account(&self, number: &str) -> String {
        let ca = std::fs::read_to_string(self.dir.path().join("office.db.tls/ca.pem")).unwrap();
        let pin = sip::transport::fingerprints(ca.as_bytes())
            .unwrap()
            .remove(0);
        format!(
            "tls_ca = '''\n{ca}'''\ntls_ca_sha256 = \"{pin}\"\n[[account]]\nnumber = \"{number}\"\nuser_id = \"u{number}\"\npassword = \"Pw-{number}-secret\"\nserver = \"127.0.0.1\"\nport = {}\ntransport = \"tls\"\nsrtp = \"mandatory\"\n",
            self.tls
        )
    }

    /// An `[[account]]` for station `number` on this PBX.
    pub(crate) fn account(&self, number: &str, password: &str) -> String {
        format!(
            "[[account]]\nnumber = \"{number}\"\nuser_id = \"u{number}\"\npassword = \"{password}\"\nserver = \"127.0.0.1\"\nport = {}\n",
            self.port
        )
    }
}

/// A headless softphone with configuration `config` (written to `dir/name.toml`): the
/// process, its events, its stdin.
pub(crate) fn softphone(
    dir: &Path,
    name: &str,
    config: &str,
) -> (
    Kill,
    mpsc::Receiver<serde_json::Value>,
    std::process::ChildStdin,
) {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, config).unwrap();
    let mut child = Kill(
        Command::new(env!("CARGO_BIN_EXE_softphone"))
            .args(["--headless", "--sip", "127.0.0.1:0", "--config"])
            .arg(&path)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let rx = events(&mut child.0);
    let stdin = child.0.stdin.take().unwrap();
    (child, rx, stdin)
}

/// A 30 s, 8 kHz mono WAV of a sine at `freq` Hz: what a phone says in the tests.
#[allow(unused_imports)] // each test binary uses some of these
pub(crate) use e2e::audio::tone;

/// A 30 s mono WAV of a sine at `freq` Hz sampled at `rate`.
pub(crate) fn sine(path: &Path, freq: f32, rate: u32) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for n in 0..rate * 30 {
        let x = (2.0 * std::f32::consts::PI * freq * n as f32 / rate as f32).sin();
        w.write_sample((x * 12000.0) as i16).unwrap();
    }
    w.finalize().unwrap();
}

/// baresip registered as station `number` of `pbx`, answering by itself, playing `source`
/// (at the codec's rate: its aufile plays at the file's rate), in PCMU or Opus alone.
pub(crate) fn baresip_station(
    pbx: &Pbx,
    number: &str,
    source: &Path,
    opus: bool,
) -> e2e::baresip::Baresip {
    let port = pbx.port;
    let codec = if opus { "opus/48000/2" } else { "PCMU" };
    let account = move |_| {
        format!(
            "<sip:{number}@127.0.0.1:{port}>;auth_user=u{number};auth_pass=Pw-{number}-secret;answermode=auto;audio_codecs={codec};ptime=20;regint=600"
        )
    };
    let b = if opus {
        e2e::baresip::Baresip::start_opus(source, account)
    } else {
        e2e::baresip::Baresip::start_with(source, account)
    }
    .unwrap();
    wait_for("baresip to register", || registered(&pbx.db, number));
    b
}

/// The samples of a WAV file as far as written (a recording still open is read too).
pub(crate) fn samples(path: &Path) -> Vec<i16> {
    e2e::audio::samples_so_far(path)
}

/// Waits until `heard()` holds `freqs` in order, a second each (8 kHz): the event a call
/// test waits on before its next step.
pub(crate) fn wait_heard(who: &str, freqs: &[f32], heard: impl Fn() -> Vec<i16>) {
    wait_until(&format!("{who} to hear {freqs:?}"), || {
        e2e::audio::heard_in_order(&heard(), freqs)
    });
}

/// Polls `ok` every 100 ms for up to 20 s (audio takes its time).
pub(crate) fn wait_until(what: &str, ok: impl FnMut() -> bool) {
    wait_within(what, Duration::from_secs(20), ok);
}

/// Waits until the mailbox's folder beside `db` holds a message of a second or more.
pub(crate) fn wait_message(db: &Path, mailbox: &str) {
    let dir = db.with_extension("db.voicemail").join(mailbox);
    wait_until("a message of a second", || {
        std::fs::read_dir(&dir).is_ok_and(|entries| {
            entries
                .filter_map(Result::ok)
                .any(|e| samples(&e.path()).len() > 8000)
        })
    });
}

/// baresip's newest decode recording, as far as written.
pub(crate) fn baresip_now(b: &e2e::baresip::Baresip) -> Vec<i16> {
    b.latest_decoded().map(|f| samples(&f)).unwrap_or_default()
}

/// The samples of the newest recording in `dir` (by modification time).
pub(crate) fn newest_samples(dir: &Path) -> Vec<i16> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
    files.last().map(|f| samples(f)).unwrap_or_default()
}

/// Adds station `n` (user `uN`, password `Pw-N-secret`) to the database, with `extra`
/// `station add` arguments.
pub(crate) fn add_station(db: &Path, n: &str, extra: &[&str]) {
    let (user, password) = (format!("u{n}"), format!("Pw-{n}-secret"));
    let mut args = vec!["station", "add", "--number", n, "--user-id", &user];
    args.extend(["--password", &password]);
    args.extend(extra);
    cli(db, &args);
}

/// Polls `ok` every 100 ms for up to 10 s.
pub(crate) fn wait_for(what: &str, ok: impl FnMut() -> bool) {
    wait_within(what, Duration::from_secs(10), ok);
}

fn wait_within(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let t0 = std::time::Instant::now();
    while !ok() {
        assert!(t0.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The share of 440, 600 and 1000 Hz (201, 202, 203) in the 2 s before the last half second.
pub(crate) fn shares(heard: &[i16]) -> Vec<f32> {
    let end = heard.len() - 4000;
    let window = &heard[end - 16000..end];
    [440.0, 600.0, 1000.0]
        .iter()
        .map(|f| media::analysis::tone_share(window, *f, 8000))
        .collect()
}

/// Does each recording `(me, heard)` hold the other two and not itself (with [`shares`])?
pub(crate) fn hear_each_other(members: &[(usize, Vec<i16>)]) -> bool {
    members.iter().all(|(me, heard)| {
        heard.len() > 24000
            && shares(heard)
                .iter()
                .enumerate()
                .all(|(i, s)| if i == *me { *s < 0.1 } else { *s > 0.25 })
    })
}

/// Each member hears the other two and not itself: `me` is 0 (201), 1 (202) or 2 (203).
pub(crate) fn hears_the_other_two(who: &str, me: usize, s: &[f32]) {
    for (i, share) in s.iter().enumerate() {
        if i == me {
            assert!(*share < 0.1, "{who} hears itself: {s:?}");
        } else {
            assert!(*share > 0.25, "{who} does not hear member {i}: {s:?}");
        }
    }
}

/// The share of `freq` in the last second of `samples` (8 kHz).
pub(crate) fn shares_at_end(samples: &[i16], freq: f32) -> f32 {
    let tail = &samples[samples.len().saturating_sub(8000)..];
    media::analysis::tone_share(tail, freq, 8000)
}

/// Waits for `feature_done` and says whether the feature went as expected.
pub(crate) fn expect_done(rx: &mpsc::Receiver<serde_json::Value>, name: &str) {
    let d = expect(rx, "feature_done");
    assert_eq!(
        (d["name"].as_str(), d["ok"].as_bool()),
        (Some(name), Some(true)),
        "{d}"
    );
}

/// A headless softphone on the PBX: its process, events, stdin, and where it records.
pub(crate) type TonePhone = (
    Kill,
    mpsc::Receiver<serde_json::Value>,
    std::process::ChildStdin,
    PathBuf,
);

/// A headless softphone for station `n` with the `[[account]]` `account`, playing a `freq`
/// Hz tone and recording what it hears (one WAV a call), once registered.
pub(crate) fn tone_phone(pbx: &Pbx, n: &str, freq: f32, account: &str) -> TonePhone {
    let dir = pbx.dir.path();
    let wav = dir.join(format!("tone{n}.wav"));
    tone(&wav, freq);
    let rec = dir.join(format!("heard{n}"));
    std::fs::create_dir_all(&rec).unwrap();
    let config = format!(
        "{account}\n[audio]\nsource = \"{}\"\nrecord_dir = \"{}\"\n",
        wav.display(),
        rec.display()
    );
    let (p, rx, stdin) = softphone(dir, n, &config);
    expect(&rx, "registered");
    (p, rx, stdin, rec)
}
