//! The softphone through a sound card, in real time, with no sound card (issue #19, must-show
//! 1): a PulseAudio daemon of the test's own with two null sinks, reached through ALSA's pulse
//! plugin as cpal reaches any card. The `mic` sink's monitor is the microphone, fed a 440 Hz
//! tone with `paplay`; the `spk` sink is the speaker, its monitor recorded with `parec`. The
//! headless softphone (`--audio device`) calls baresip (600 Hz) through pbx-lite: baresip's
//! recording holds the tone fed as the microphone, and the recorded speaker holds baresip's.
#![allow(clippy::unwrap_used)]

mod support;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use support::{Kill, Pbx, events, expect, tone, wait_until};

/// A PulseAudio daemon in `dir` (its runtime folder) with sinks `spk` (the default) and
/// `mic` (whose monitor is the default source), once it answers.
fn pulseaudio(dir: &Path) -> Kill {
    let mut c = Command::new("pulseaudio");
    c.args([
        "--daemonize=no",
        "--exit-idle-time=-1",
        "-n",
        "--load=module-native-protocol-unix",
        "--load=module-null-sink sink_name=spk",
        "--load=module-null-sink sink_name=mic",
    ])
    .env("XDG_RUNTIME_DIR", dir)
    .stdout(Stdio::null())
    .stderr(std::fs::File::create(dir.join("pulseaudio.log")).unwrap());
    let daemon = Kill(c.spawn().unwrap());
    let pactl = |args: &[&str]| {
        Command::new("pactl")
            .args(args)
            .env("XDG_RUNTIME_DIR", dir)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    wait_until("PulseAudio to answer", || pactl(&["info"]));
    assert!(pactl(&["set-default-sink", "spk"]) && pactl(&["set-default-source", "mic.monitor"]));
    daemon
}

#[test]
fn a_call_through_the_sound_card_both_ways() {
    if std::env::var("SIP_SKIP_PEERS").is_ok_and(|v| v == "1") {
        return;
    }
    let pbx = Pbx::start(&["201", "202"]);
    let dir = pbx.dir.path().to_path_buf();
    let runtime = dir.join("pulse-runtime");
    std::fs::create_dir_all(&runtime).unwrap();
    std::fs::set_permissions(
        &runtime,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let _pulse = pulseaudio(&runtime);
    let alsa = dir.join("alsa.conf");
    std::fs::write(
        &alsa,
        "pcm.!default { type pulse }\nctl.!default { type pulse }\n",
    )
    .unwrap();
    let with_pulse = |c: &mut Command| {
        c.env("XDG_RUNTIME_DIR", &runtime)
            .env("ALSA_CONFIG_PATH", &alsa);
    };
    // The microphone says 440 Hz; the speaker is recorded.
    let mic_tone = dir.join("mic.wav");
    tone(&mic_tone, 440.0);
    let mut play = Command::new("paplay");
    play.args(["-d", "mic"]).arg(&mic_tone);
    with_pulse(&mut play);
    let _mic = Kill(play.spawn().unwrap());
    let speaker = dir.join("speaker.wav");
    let mut rec = Command::new("parec");
    rec.args([
        "-d",
        "spk.monitor",
        "--file-format=wav",
        "--rate=8000",
        "--channels=1",
    ])
    .arg(&speaker);
    with_pulse(&mut rec);
    let _speaker = Kill(rec.spawn().unwrap());

    let far = dir.join("far.wav");
    tone(&far, 600.0);
    let b = support::baresip_station(&pbx, "202", &far, false);
    let config = dir.join("201.toml");
    std::fs::write(&config, pbx.account("201", "Pw-201-secret")).unwrap();
    let mut phone = Command::new(env!("CARGO_BIN_EXE_softphone"));
    phone
        .args([
            "--headless",
            "--audio",
            "device",
            "--sip",
            "127.0.0.1:0",
            "--config",
        ])
        .arg(&config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    with_pulse(&mut phone);
    let mut phone = Kill(phone.spawn().unwrap());
    let rx = events(&mut phone.0);
    let mut stdin = phone.0.stdin.take().unwrap();
    expect(&rx, "registered");
    writeln!(stdin, "dial 202").unwrap();
    expect(&rx, "established");
    wait_until("baresip to hear the microphone's 440 Hz", || {
        e2e::audio::heard_in_order(&support::baresip_now(&b), &[440.0])
    });
    wait_until("the speaker to play baresip's 600 Hz", || {
        e2e::audio::heard_in_order(&support::samples(&speaker), &[600.0])
    });
    writeln!(stdin, "hangup").unwrap();
    expect(&rx, "ended");
}
