//! Calls of the headless softphone through `pbx-lite serve` with baresip at the other end
//! (issue #7): the softphone (station 201) plays 440 Hz and records what it hears; baresip
//! (202) plays 600 Hz and records too. An outgoing call, an incoming call it answers, one it
//! rejects (486 reaches the caller) and one the caller cancels; each recording must hold the
//! other's tone.
#![allow(clippy::unwrap_used)]

mod support;

use e2e::baresip::Baresip;
use media::analysis::dominant_frequency;
use std::io::Write;
use support::{Pbx, expect, samples, sine, tone, wait_for};

/// pbx-lite with the softphone as 201 (playing 440 Hz, recording into `heard`) and
/// baresip as 202 (600 Hz, answering by itself), both registered.
struct Setup {
    _pbx: Pbx,
    heard: std::path::PathBuf,
    _phone: support::Kill,
    rx: std::sync::mpsc::Receiver<serde_json::Value>,
    stdin: std::process::ChildStdin,
    b: Baresip,
}

impl Setup {
    fn start() -> Setup {
        Setup::start_with(false)
    }

    /// With `opus`, both phones offer Opus alone.
    fn start_with(opus: bool) -> Setup {
        let pbx = Pbx::start(&["201", "202"]);
        let dir = pbx.dir.path().to_path_buf();
        let (ours, theirs) = (dir.join("tone440.wav"), dir.join("tone600.wav"));
        tone(&ours, 440.0);
        // baresip's aufile plays at the file's rate, which must be the codec's.
        sine(&theirs, 600.0, if opus { 48000 } else { 8000 });
        let heard = dir.join("heard");
        std::fs::create_dir_all(&heard).unwrap();
        let config = format!(
            "{}{}\n[audio]\nsource = \"{}\"\nrecord_dir = \"{}\"\n",
            pbx.account("201", "Pw-201-secret"),
            if opus { "codecs = [\"opus\"]\n" } else { "" },
            ours.display(),
            heard.display()
        );
        let (phone, rx, stdin) = support::softphone(&dir, "phone", &config);
        expect(&rx, "registered");
        let b = support::baresip_station(&pbx, "202", &theirs, opus);
        Setup {
            _pbx: pbx,
            heard,
            _phone: phone,
            rx,
            stdin,
            b,
        }
    }

    fn send(&mut self, command: &str) {
        writeln!(self.stdin, "{command}").unwrap();
    }
}

#[test]
fn calls_both_ways_with_two_way_audio() {
    if std::env::var("SIP_SKIP_PEERS").is_ok_and(|v| v == "1") {
        return;
    }
    let mut t = Setup::start();
    let rx = &t.rx;
    // Out: the softphone calls 202, which answers.
    writeln!(t.stdin, "dial 202").unwrap();
    let call = expect(rx, "calling")["call"].as_u64().unwrap();
    assert_eq!(expect(rx, "established")["call"].as_u64(), Some(call));
    // Within 2 s of audio, the call's receive quality: nothing lost on loopback, so the
    // E-model's MOS for G.711 is above 4.
    let q = expect(rx, "quality");
    assert_eq!(q["call"].as_u64(), Some(call));
    assert!(q["received"].as_u64().unwrap() > 20, "{q}");
    assert_eq!(q["loss_percent"].as_f64(), Some(0.0), "{q}");
    assert!(q["mos"].as_f64().unwrap() > 4.0, "{q}");
    // A key pressed on baresip arrives as RFC 4733 events.
    t.b.command("5").unwrap();
    let d = expect(rx, "dtmf_received");
    assert_eq!(
        (d["digit"].as_str(), d["by"].as_str()),
        (Some("5"), Some("rfc4733")),
        "{d}"
    );
    // Once baresip has reported on our stream over RTCP (answering our sender reports), the
    // quality carries the round trip: on loopback, well under 50 ms.
    let rtt = (0..10)
        .find_map(|_| expect(rx, "quality")["rtt_ms"].as_f64())
        .expect("no round trip in 20 s of quality reports");
    assert!((0.0..50.0).contains(&rtt), "round trip {rtt} ms");
    support::wait_until("2.5 s of audio each way", || {
        support::newest_samples(&t.heard).len() > 20000 && support::baresip_now(&t.b).len() > 20000
    });
    writeln!(t.stdin, "hangup").unwrap();
    expect(rx, "ended");
    wait_for("baresip to hang up", || t.b.log().contains("terminated"));
    let got = support::newest_samples(&t.heard);
    assert!(
        got.len() > 16000,
        "the softphone recorded {} samples",
        got.len()
    );
    let f = dominant_frequency(&got[4000..got.len().min(20000)], 8000);
    assert!((f - 600.0).abs() < 5.0, "the softphone heard {f} Hz");
    let theirs_heard = samples(t.b.decoded_files().first().unwrap());
    let f = dominant_frequency(&theirs_heard[4000..theirs_heard.len().min(20000)], 8000);
    assert!((f - 440.0).abs() < 5.0, "baresip heard {f} Hz");

    // In: 202 calls; the softphone rings, shows who calls, and answers.
    t.b.command("/dial 201\n").unwrap();
    let inc = expect(rx, "incoming");
    assert_eq!(inc["from"], "202");
    writeln!(t.stdin, "answer").unwrap();
    expect(rx, "established");
    support::wait_heard("the softphone", &[600.0], || {
        support::newest_samples(&t.heard)
    });
    t.b.command("/hangup\n").unwrap();
    assert_eq!(expect(rx, "ended")["reason"], "the other side hung up");

    // Rejected: 486 reaches the caller.
    t.b.command("/dial 201\n").unwrap();
    expect(rx, "incoming");
    writeln!(t.stdin, "reject").unwrap();
    assert_eq!(expect(rx, "ended")["status"], 486);
    wait_for("baresip to see 486", || t.b.log().contains("486"));

    // Cancelled by the caller while it rings.
    t.b.command("/dial 201\n").unwrap();
    expect(rx, "incoming");
    t.b.command("/hangup\n").unwrap();
    assert_eq!(expect(rx, "ended")["status"], 487);

    // Each call went into the history file beside the configuration, in order.
    writeln!(t.stdin, "history").unwrap();
    let h = expect(rx, "history");
    let entries = h["entries"].as_array().unwrap();
    let kinds: Vec<&str> = entries
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["dialled", "received", "rejected", "missed"], "{h}");
    assert!(entries.iter().all(|e| e["party"] == "202"), "{h}");
    assert!(entries[0]["seconds"].as_u64().unwrap() >= 3, "{h}");
    assert_eq!(entries[3]["seconds"], 0, "{h}");
}

#[test]
fn hold_resume_and_dtmf() {
    if std::env::var("SIP_SKIP_PEERS").is_ok_and(|v| v == "1") {
        return;
    }
    let mut t = Setup::start();
    t.send("dial 202");
    expect(&t.rx, "established");
    support::wait_heard("202", &[440.0], || support::baresip_now(&t.b));
    t.send("hold");
    expect(&t.rx, "held");
    support::wait_until("202 to hear the hold music", || {
        music_and_back(&support::baresip_now(&t.b)).0
    });
    t.send("resume");
    expect(&t.rx, "resumed");
    support::wait_until("202 to hear 440 Hz again", || {
        music_and_back(&support::baresip_now(&t.b)).1
    });
    t.send("dtmf 5#");
    wait_for("baresip to hear the digits", || {
        let log = t.b.log();
        log.contains("received event: '5'") && log.contains("received event: '#'")
    });
    t.send("hangup");
    expect(&t.rx, "ended");
    wait_for("baresip to hang up", || t.b.log().contains("terminated"));
    // 202 heard 201's 440 Hz, then the PBX's hold music, then 440 Hz again.
    let got = samples(t.b.decoded_files().first().unwrap());
    assert_eq!(
        music_and_back(&got),
        (true, true),
        "202 heard {:?}",
        e2e::audio::timeline(&got)
    );
}

/// Did `got` (half-second windows) have 440 Hz, then something else (the hold music), and
/// then 440 Hz again: (music came, 440 came back)?
fn music_and_back(got: &[i16]) -> (bool, bool) {
    let windows: Vec<f32> = got
        .chunks_exact(4000)
        .map(|c| dominant_frequency(c, 8000))
        .collect();
    let is440 = |f: &f32| (f - 440.0).abs() < 8.0;
    let Some(first) = windows.iter().position(is440) else {
        return (false, false);
    };
    let music = windows
        .iter()
        .skip(first)
        .position(|f| !is440(f) && *f > 100.0);
    let back = music.and_then(|m| windows.iter().skip(first + m).position(is440));
    (music.is_some(), back.is_some())
}

#[test]
fn opus_call_with_baresip() {
    if std::env::var("SIP_SKIP_PEERS").is_ok_and(|v| v == "1") {
        return;
    }
    let mut t = Setup::start_with(true);
    t.send("dial 202");
    expect(&t.rx, "established");
    support::wait_until("3 s of Opus each way", || {
        support::newest_samples(&t.heard).len() > 3 * 48000
            && support::baresip_now(&t.b).len() > 3 * 48000
    });
    t.send("hangup");
    expect(&t.rx, "ended");
    wait_for("baresip to hang up", || t.b.log().contains("terminated"));
    let file = std::fs::read_dir(&t.heard)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    // The softphone records at the codec's rate: 48 kHz.
    let spec = hound::WavReader::open(&file).unwrap().spec();
    assert_eq!(spec.sample_rate, 48000);
    let got = samples(&file);
    assert!(
        got.len() > 96000,
        "the softphone recorded {} samples",
        got.len()
    );
    let f = dominant_frequency(&got[24000..120000.min(got.len())], 48000);
    assert!(
        (f - 600.0).abs() < 5.0,
        "the softphone heard {f} Hz over Opus"
    );
    let decoded = t.b.decoded_files();
    let theirs = decoded.first().unwrap();
    let rate = hound::WavReader::open(theirs).unwrap().spec().sample_rate;
    let heard = samples(theirs);
    let s = rate as usize;
    let f = dominant_frequency(&heard[s / 2..(2 * s).min(heard.len())], rate);
    assert!((f - 440.0).abs() < 5.0, "baresip heard {f} Hz over Opus");
}
