//! Sound cards that come and go under a running phone (issue #19, must-show 5): the engine
//! and the window on simulated cards at the device boundary (`media::device::Simulated`,
//! what cpal would give), in a real call through pbx-lite to baresip. A headset pulled out
//! mid-call moves the call to the default cards with a message, and the call goes on; one
//! plugged in again can be chosen at once. The settings form lists the cards, says which
//! configured one is missing, and saves the choice.
#![allow(clippy::unwrap_used)]

mod support;

use media::device::{Devices, Simulated};
use softphone::config::Config;
use softphone::engine::{Command, Event, Role};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};
use support::{Pbx, tone, wait_until};

/// Does the last quarter second `speaker` played (48 kHz) sound at `freq`?
fn playing(sim: &Simulated, speaker: &str, freq: f32) -> bool {
    let s = sim.played(speaker);
    let tail = &s[s.len().saturating_sub(12_000)..];
    tail.len() == 12_000
        && tail.iter().map(|x| x.unsigned_abs()).max().unwrap_or(0) > 1000
        && (media::analysis::dominant_frequency(tail, 48_000) - freq).abs() < freq / 100.0
}

/// The next event `want` takes, within 15 s.
fn next<T>(events: &Receiver<Event>, what: &str, want: impl Fn(&Event) -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut passed = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match events.recv_timeout(left) {
            Ok(e) => match want(&e) {
                Some(t) => return t,
                None => passed.push(format!("{e:?}")),
            },
            Err(_) => panic!("no {what} within 15 s; passed over: {passed:#?}"),
        }
    }
}

/// Cards as a laptop with a USB headset has them: the built-in ones first (the defaults).
fn laptop() -> Simulated {
    let start = Instant::now();
    let sim = Simulated::with_clock(move || start.elapsed());
    sim.add_input("Built-in Microphone", 1500.0);
    sim.add_input("USB Headset", 1000.0);
    sim.add_output("Built-in Speakers");
    sim.add_output("USB Headset");
    sim
}

#[test]
fn a_headset_pulled_out_mid_call_moves_the_call_to_the_default_cards() {
    if e2e::kit::skip_peers() {
        return;
    }
    let pbx = Pbx::start(&["201", "202"]);
    let far = pbx.dir.path().join("far.wav");
    tone(&far, 600.0);
    let b = support::baresip_station(&pbx, "202", &far, false);
    let sim = laptop();
    let mut config = Config::parse(
        &format!(
            "{}\n[audio]\nmicrophone = \"USB Headset\"\nspeaker = \"USB Headset\"\n",
            pbx.account("201", "Pw-201-secret")
        ),
        "201.toml",
    )
    .unwrap();
    config.audio.devices = true;
    config.audio.system = Devices::new(sim.clone());
    let (commands, events, _engine) =
        softphone::gui::spawn_engine(config, "127.0.0.1:0".parse().unwrap(), |_| {}).unwrap();
    next(&events, "registration", |e| {
        matches!(e, Event::Registered { .. }).then_some(())
    });
    commands
        .send(Command::Dial {
            number: "202".into(),
            line: 1,
        })
        .unwrap();
    let call = next(&events, "the answer", |e| match e {
        Event::Established { call } => Some(*call),
        _ => None,
    });
    wait_until("the headset to play baresip's 600 Hz", || {
        playing(&sim, "USB Headset", 600.0)
    });
    wait_until("baresip to hear the headset's 1000 Hz", || {
        e2e::audio::heard_in_order(&support::baresip_now(&b), &[1000.0])
    });

    // Pulled out: both its streams fail under the running call.
    sim.unplug("USB Headset");
    let mut said = Vec::new();
    while said.len() < 2 {
        said.push(next(&events, "a word about the headset", |e| match e {
            Event::Error { message } if message.contains("went away") => Some(message.clone()),
            Event::Ended { .. } => panic!("the call ended when the headset went away"),
            _ => None,
        }));
    }
    said.sort();
    assert_eq!(
        said,
        [
            "call 1: the microphone went away; now the default microphone",
            "call 1: the speaker went away; now the default speaker"
        ]
        .map(|s| s.replace("call 1", &format!("call {call}"))),
    );
    wait_until("the built-in speakers to play baresip's 600 Hz", || {
        playing(&sim, "Built-in Speakers", 600.0)
    });
    wait_until(
        "baresip to hear the built-in 1500 Hz after the 1000 Hz",
        || e2e::audio::heard_in_order(&support::baresip_now(&b), &[1000.0, 1500.0]),
    );
    commands.send(Command::Status).unwrap();
    let calls = next(&events, "the status", |e| match e {
        Event::Status { calls, .. } => Some(calls.clone()),
        _ => None,
    });
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].state, "established", "the call went on");

    // Plugged in again: listed, and chosen at once for the call under way.
    sim.add_input("USB Headset", 1000.0);
    sim.add_output("USB Headset");
    commands.send(Command::Devices).unwrap();
    let outputs = next(&events, "the cards", |e| match e {
        Event::Devices { outputs, .. } => Some(outputs.clone()),
        _ => None,
    });
    assert_eq!(outputs, ["Built-in Speakers", "USB Headset"]);
    let heard_before = sim.played("USB Headset").len();
    for role in [Role::Microphone, Role::Speaker] {
        commands
            .send(Command::Device {
                role,
                name: "USB Headset".into(),
            })
            .unwrap();
    }
    wait_until("the headset to play baresip again", || {
        sim.played("USB Headset").len() > heard_before + 24_000
            && playing(&sim, "USB Headset", 600.0)
    });
    wait_until("baresip to hear the headset again", || {
        e2e::audio::heard_in_order(&support::baresip_now(&b), &[1000.0, 1500.0, 1000.0])
    });
    // A card that is not there is refused, and nothing changes.
    commands
        .send(Command::Device {
            role: Role::Speaker,
            name: "Bluetooth".into(),
        })
        .unwrap();
    let refused = next(&events, "the refusal", |e| match e {
        Event::Error { message } => Some(message.clone()),
        _ => None,
    });
    assert!(
        refused.contains("no such sound card \"Bluetooth\""),
        "{refused}"
    );
    commands.send(Command::Hangup(None)).unwrap();
    next(&events, "the end", |e| {
        matches!(e, Event::Ended { .. }).then_some(())
    });
}
