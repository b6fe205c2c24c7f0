//! The window driven by egui_kittest on the real engine (null audio) against `pbx-lite serve`
//! (issue #8): the GUI is station 201; headless softphones 202 and 203 answer and call it.
//! Every check reads what is on screen by its accessibility label.
#![allow(clippy::unwrap_used)]

mod support;

use eframe::egui::{self, accesskit::Role};
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use softphone::config::Config;
use softphone::gui::{model::Model, phone::Phone, spawn_engine};
use std::io::Write;
use std::time::{Duration, Instant};
use support::{Pbx, expect};

type Peer = (
    support::Kill,
    std::sync::mpsc::Receiver<serde_json::Value>,
    std::process::ChildStdin,
);

/// The window for station `number` of `pbx`, on the real engine, registered.
fn window(pbx: &Pbx, number: &str) -> Harness<'static, Phone> {
    let mut h = open(&pbx.account(number, &format!("Pw-{number}-secret")), number);
    until(&mut h, &format!("Line 1: {number} (registered)"));
    h
}

/// The window on the real engine with configuration `text` (one account, `number`).
fn open(text: &str, number: &str) -> Harness<'static, Phone> {
    harness(phone(text, number))
}

fn phone(text: &str, number: &str) -> Phone {
    let config = Config::parse(text, "gui.toml").unwrap();
    let (commands, events, _engine) =
        spawn_engine(config, "127.0.0.1:0".parse().unwrap(), |_| {}).unwrap();
    Phone::new(Model::new(&[number.into()]), commands, events, "50".into())
}

fn harness(phone: Phone) -> Harness<'static, Phone> {
    Harness::builder()
        .with_size([900.0, 560.0])
        .build_ui_state(|ui, p: &mut Phone| p.show(ui), phone)
}

/// Replaces what the text field labelled `label` holds with `text`, as a user would.
fn fill(h: &mut Harness<'static, Phone>, label: &str, text: &str) {
    h.get_by_role_and_label(Role::TextInput, label).focus();
    h.step();
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    h.step();
    if text.is_empty() {
        h.key_press(egui::Key::Backspace);
    } else {
        h.event(egui::Event::Text(text.into()));
    }
    h.step();
    h.step();
}

fn peer(pbx: &Pbx, number: &str) -> Peer {
    let config = pbx.account(number, &format!("Pw-{number}-secret"));
    let (child, rx, stdin) = support::softphone(pbx.dir.path(), number, &config);
    expect(&rx, "registered");
    (child, rx, stdin)
}

/// Frames until a label containing `text` is on screen (15 s at most).
fn until(h: &mut Harness<'static, Phone>, text: &str) {
    let t0 = Instant::now();
    loop {
        h.step();
        if h.query_by_label_contains(text).is_some() {
            return;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "{text:?} never came on screen; the status line says {:?}",
            h.state().model.notice
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Frames until no label containing `text` is on screen.
fn gone(h: &mut Harness<'static, Phone>, text: &str) {
    let t0 = Instant::now();
    loop {
        h.step();
        if h.query_by_label_contains(text).is_none() {
            return;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "{text:?} stayed on screen"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn click(h: &mut Harness<'static, Phone>, label: &str) {
    h.get_by_label(label).click();
    h.step();
    h.step();
}

/// Types `digits` on the dial pad.
fn keys(h: &mut Harness<'static, Phone>, digits: &str) {
    for d in digits.chars() {
        click(h, &d.to_string());
    }
    assert_eq!(h.state().number, digits, "the number field");
}

/// Dials `number` on the dial pad and clicks Call; `peer` (that number) answers.
fn call_and_answer(h: &mut Harness<'static, Phone>, peer: &mut Peer, number: &str) {
    keys(h, number);
    click(h, "Call");
    expect(&peer.1, "incoming");
    send(peer, "answer");
    until(h, &format!("{number}, talking"));
}

/// Forgets what a peer reported so far.
fn drain(p: &Peer) {
    while p.1.try_recv().is_ok() {}
}

fn send(p: &mut Peer, line: &str) {
    writeln!(p.2, "{line}").unwrap();
}

use e2e::kit::skip_peers as skip;

#[test]
fn dial_answer_hold_and_transfers_on_screen() {
    if skip() {
        return;
    }
    let pbx = Pbx::start(&["201", "202", "203"]);
    let (mut b, mut c) = (peer(&pbx, "202"), peer(&pbx, "203"));
    let mut h = window(&pbx, "201");
    assert!(h.query_by_label("No calls").is_some());

    // Dial by clicking keys; 202 answers.
    call_and_answer(&mut h, &mut b, "202");
    // The call's quality comes on screen once audio has arrived for 2 s.
    until(&mut h, "Quality of call 1: MOS 4.");
    click(&mut h, "Hold");
    until(&mut h, "202, on hold");
    click(&mut h, "Resume");
    until(&mut h, "202, talking");

    // Blind transfer to 203: the call leaves the window, 203 talks to 202.
    keys(&mut h, "203");
    click(&mut h, "Transfer");
    expect(&c.1, "incoming");
    send(&mut c, "answer");
    expect(&c.1, "established");
    until(&mut h, "No calls");
    send(&mut c, "hangup");
    expect(&b.1, "ended");

    // 202 calls: the window rings, Answer takes it.
    send(&mut b, "dial 201");
    until(&mut h, "202, incoming");
    click(&mut h, "Answer");
    until(&mut h, "202, talking");

    // Attended: hold 202, call 203, then send the held call to 203.
    click(&mut h, "Hold");
    until(&mut h, "202, on hold");
    call_and_answer(&mut h, &mut c, "203");
    click(&mut h, "Transfer held call here");
    until(&mut h, "No calls");
    // 202 and 203 are still in a call, with each other: 202 hanging up ends 203's.
    std::thread::sleep(Duration::from_millis(500));
    drain(&c);
    send(&mut b, "hangup");
    expect(&c.1, "ended");
}

#[test]
fn conference_park_dnd_and_the_message_lamp_on_screen() {
    if skip() {
        return;
    }
    let pbx = Pbx::start(&["201", "202", "203"]);
    support::cli(&pbx.db, &["station", "set", "201", "voicemail=201"]);
    support::cli(
        &pbx.db,
        &["settings", "set", "forward.noanswer_seconds", "2"],
    );
    let (mut b, mut c) = (peer(&pbx, "202"), peer(&pbx, "203"));
    let mut h = window(&pbx, "201");
    assert!(h.query_by_label("Message lamp off").is_some());

    // Conference via 46: 202, then 203, then join.
    call_and_answer(&mut h, &mut b, "202");
    click(&mut h, "Conference");
    until(&mut h, "conference done");
    call_and_answer(&mut h, &mut c, "203");
    click(&mut h, "Conference");
    until(&mut h, "203, on hold");
    until(&mut h, "Status: conference done");
    click(&mut h, "Join conference");
    until(&mut h, "conference via the PBX with 202, 203");
    click(&mut h, "Hang up");
    until(&mut h, "No calls");
    send(&mut b, "hangup");
    send(&mut c, "hangup");

    // Park with the Park key, then take it back with Retrieve.
    call_and_answer(&mut h, &mut b, "202");
    click(&mut h, "Park");
    until(&mut h, "park done");
    until(&mut h, "No calls");
    keys(&mut h, "201");
    click(&mut h, "Retrieve");
    until(&mut h, ", talking");
    click(&mut h, "Hang up");
    until(&mut h, "No calls");
    expect(&b.1, "ended");

    // DND: callers get busy while it is on.
    click(&mut h, "DND is off");
    until(&mut h, "DND is on");
    drain(&c);
    send(&mut c, "dial 201");
    assert_eq!(expect(&c.1, "ended")["status"], 486);
    click(&mut h, "DND is on");
    until(&mut h, "DND is off");

    // 203 leaves a message (no answer, voicemail takes it): the lamp lights.
    send(&mut c, "dial 201");
    until(&mut h, "203, incoming");
    gone(&mut h, "203, incoming");
    support::wait_message(&pbx.db, "201");
    send(&mut c, "hangup");
    until(&mut h, "Message lamp on: 1 new");
}

#[test]
fn a_server_that_never_answers_leaves_the_window_responsive() {
    // A "server" that takes every REGISTER and answers none.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let text = format!(
        "[[account]]\nnumber = \"201\"\npassword = \"x\"\nserver = \"127.0.0.1\"\nport = {}\n",
        silent.local_addr().unwrap().port()
    );
    let mut h = open(&text, "201");
    h.step();
    assert!(h.query_by_label("Line 1: 201 (registering)").is_some());
    // Frames keep coming, each drawn at once, until the transaction times out (Timer F,
    // 64 × T1 = 32 s) and the line key says so; the keys work meanwhile.
    let (t0, mut frames, mut slowest) = (Instant::now(), 0u32, Duration::ZERO);
    while h.query_by_label_contains("Line 1: 201 (failed").is_none() {
        assert!(
            t0.elapsed() < Duration::from_secs(45),
            "the registration never timed out"
        );
        let t = Instant::now();
        h.step();
        slowest = slowest.max(t.elapsed());
        frames += 1;
        if frames == 10 {
            keys(&mut h, "12");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(frames > 500, "only {frames} frames in {:?}", t0.elapsed());
    assert!(
        slowest < Duration::from_millis(500),
        "a frame took {slowest:?}: the window waited on the network"
    );
    assert!(t0.elapsed() > Duration::from_secs(20), "timed out too soon");
    assert!(
        silent.recv(&mut [0; 2048]).is_ok(),
        "no REGISTER reached the server"
    );
}

#[test]
fn bad_settings_are_shown_beside_the_field_and_nothing_is_saved() {
    // No server answers here: this is about the form.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("phone.toml");
    let text = format!(
        "# line 1, reception\n[[account]]\nnumber = \"201\"\npassword = \"S3cret-pw-201\"\nserver = \"127.0.0.1\"\nport = {}\n",
        silent.local_addr().unwrap().port()
    );
    std::fs::write(&path, &text).unwrap();
    let mut h = harness(phone(&text, "201").with_config_file(path.clone()));
    h.step();
    click(&mut h, "Settings");
    until(&mut h, "Settings for line 1");
    let unchanged = |h: &mut Harness<'static, Phone>, why: &str| {
        click(h, "Save settings");
        until(h, "not saved");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text, "{why}");
    };

    fill(&mut h, "Server", "");
    until(&mut h, "Server: no server");
    unchanged(&mut h, "saved with no server");
    fill(&mut h, "Server", "127.0.0.1");
    gone(&mut h, "Server: ");

    fill(&mut h, "Port", "99999");
    until(&mut h, "Port: bad port \"99999\"");
    unchanged(&mut h, "saved with a bad port");
    fill(&mut h, "Port", "5070");
    gone(&mut h, "Port: ");

    fill(&mut h, "Provisioning URL", "htp:/provisioner lan");
    until(&mut h, "Provisioning URL: malformed URI");
    unchanged(&mut h, "saved with a malformed URI");
    fill(
        &mut h,
        "Provisioning URL",
        "http://127.0.0.1:8080/softphone-201.toml",
    );
    gone(&mut h, "Provisioning URL: ");

    click(&mut h, "Save settings");
    until(&mut h, "settings saved");
    let saved = Config::load(&path).unwrap();
    assert_eq!(saved.accounts[0].port, 5070);
    // The password is kept, sealed under a key file only root may read.
    assert_eq!(saved.accounts[0].password, "S3cret-pw-201");
    assert!(!std::fs::read_to_string(&path).unwrap().contains("S3cret"));
    let key = dir.path().join("phone.toml.key");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // A wrong key file is refused with the field named, not taken as an empty password.
    std::fs::remove_file(&key).unwrap();
    stations::secret::Sealer::create(&key).unwrap();
    let err = Config::load(&path).unwrap_err().to_string();
    assert!(err.contains("password_sealed"), "{err}");
    assert_eq!(
        saved.provisioning_url,
        "http://127.0.0.1:8080/softphone-201.toml"
    );
}

#[test]
fn mute_and_a_local_three_way_on_screen() {
    if skip() {
        return;
    }
    let pbx = Pbx::start(&["201", "202", "203"]);
    let (mut b, mut c) = (peer(&pbx, "202"), peer(&pbx, "203"));
    let mut h = window(&pbx, "201");
    call_and_answer(&mut h, &mut b, "202");
    click(&mut h, "Mute");
    until(&mut h, ", muted");
    click(&mut h, "Unmute");
    gone(&mut h, ", muted");

    // Hold 202, call 203, and join the two in the phone.
    click(&mut h, "Hold");
    until(&mut h, "202, on hold");
    call_and_answer(&mut h, &mut c, "203");
    click(&mut h, "Join held call (3-way)");
    until(&mut h, "joined in the phone");
    until(&mut h, "202, talking");
    assert_eq!(
        h.query_all_by_label_contains("in 3-way").count(),
        2,
        "both calls show they are joined"
    );
    send(&mut b, "hangup");
    send(&mut c, "hangup");
    until(&mut h, "No calls");
}

/// The settings form's sound cards (issue #19, must-show 5), on simulated cards: each list
/// holds the system's cards, a configured one that is not there is said beside its field,
/// the microphone's level moves, the speaker's test tone plays, and the choice is saved.
#[test]
fn the_settings_form_lists_the_sound_cards_and_saves_the_choice() {
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("phone.toml");
    let text = format!(
        "[[account]]\nnumber = \"201\"\npassword = \"S3cret-pw-201\"\nserver = \"127.0.0.1\"\nport = {}\n\n[audio]\nmicrophone = \"Old Headset\"\nspeaker_volume = 80\ntones = \"uk\"\n",
        silent.local_addr().unwrap().port()
    );
    std::fs::write(&path, &text).unwrap();
    let start = Instant::now();
    let sim = media::device::Simulated::with_clock(move || start.elapsed());
    sim.add_input("Built-in Microphone", 1000.0);
    sim.add_input("USB Headset", 700.0);
    sim.add_output("Built-in Speakers");
    sim.add_output("USB Headset");
    let phone = phone(&text, "201")
        .with_config_file(path.clone())
        .with_sound(media::device::Devices::new(sim.clone()));
    let mut h = harness(phone);
    h.step();
    click(&mut h, "Settings");
    until(&mut h, "Settings for line 1");
    until(&mut h, "Microphone: \"Old Headset\" is not connected");
    // Until it is chosen, the meter listens to the default microphone (1 kHz at −12 dBFS).
    until(&mut h, "-12 dB");

    h.get_by_role_and_label(Role::ComboBox, "Microphone")
        .click();
    h.step();
    h.step();
    assert!(h.query_by_label("Built-in Microphone").is_some());
    click(&mut h, "USB Headset");
    gone(&mut h, "Microphone: ");
    h.get_by_role_and_label(Role::ComboBox, "Ringer").click();
    h.step();
    h.step();
    click(&mut h, "USB Headset");

    // The speaker's test tone on the default speakers, until stopped.
    click(&mut h, "Test speaker");
    let t0 = Instant::now();
    while sim.played("Built-in Speakers").len() < 48_000 {
        h.step();
        assert!(t0.elapsed() < Duration::from_secs(10), "no test tone");
        std::thread::sleep(Duration::from_millis(20));
    }
    let tone = sim.played("Built-in Speakers");
    let f = media::analysis::dominant_frequency(&tone[..24_000], 48_000);
    assert!((f - 1000.0).abs() < 10.0, "the test tone is at {f} Hz");
    click(&mut h, "Stop speaker");

    click(&mut h, "Save settings");
    until(&mut h, "settings saved");
    let saved = Config::load(&path).unwrap();
    assert_eq!(saved.audio.microphone, "USB Headset");
    assert_eq!(saved.audio.speaker, "");
    assert_eq!(saved.audio.ringer, "USB Headset");
    assert_eq!(saved.audio.speaker_volume, 80);
    assert_eq!(saved.audio.tones, "uk", "other [audio] keys are kept");
    assert_eq!(saved.accounts[0].password, "S3cret-pw-201");
}
