//! The PBX feature sequences as one command each, against `pbx-lite serve` (issue #7): two
//! headless softphones (201 plays 440 Hz, 203 plays 1000 Hz) and baresip (202, 600 Hz).
//! `park` holds the call and dials 11 (answered 480); `retrieve 201` from 203 connects it to
//! 202, and each hears the other; `dnd on` makes a call to 201 busy; `forward all 203` rings
//! 203 instead, with the Diversion naming 201.
#![allow(clippy::unwrap_used)]

mod support;

use e2e::baresip::Baresip;
use media::analysis::dominant_frequency;
use std::io::Write;
use std::path::Path;
use std::time::Duration;
use support::{
    Pbx, expect, expect_done as done, hear_each_other, hears_the_other_two, registered, shares,
    tone, wait_for,
};

type Phone = support::TonePhone;

/// pbx-lite; softphones 201 (440 Hz) and 203 (1000 Hz), each recording what it hears; and
/// baresip 202 (600 Hz), answering by itself.
fn office() -> (Pbx, Vec<Phone>, Baresip) {
    let pbx = Pbx::start(&["201", "202", "203"]);
    let dir = pbx.dir.path().to_path_buf();
    let mut phones = Vec::new();
    for (n, f) in [("201", 440.0), ("203", 1000.0)] {
        phones.push(support::tone_phone(
            &pbx,
            n,
            f,
            &pbx.account(n, &format!("Pw-{n}-secret")),
        ));
    }
    let b_wav = dir.join("tone202.wav");
    tone(&b_wav, 600.0);
    let port = pbx.port;
    let b = Baresip::start_with(&b_wav, move |_| {
        format!("<sip:202@127.0.0.1:{port}>;auth_user=u202;auth_pass=Pw-202-secret;answermode=auto;audio_codecs=PCMU;regint=600")
    })
    .unwrap();
    wait_for("202 registered", || registered(&pbx.db, "202"));
    (pbx, phones, b)
}

/// The dominant frequency of the newest recording in `dir`, from 0.5 s to 2 s (waiting for
/// the phone to finish writing it).
fn newest_heard(dir: &Path) -> f32 {
    let t0 = std::time::Instant::now();
    loop {
        let heard = support::newest_samples(dir);
        if heard.len() > 12000 || t0.elapsed() > Duration::from_secs(5) {
            return dominant_frequency(&heard[heard.len().min(4000)..heard.len().min(16000)], 8000);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// baresip's newest decode recording, once it holds more than `min` samples (baresip
/// writes it out when the call is over).
fn baresip_heard(b: &Baresip, min: usize) -> Vec<i16> {
    let mut heard = Vec::new();
    wait_for("baresip's recording", || {
        heard = b
            .decoded_files()
            .iter()
            .max()
            .map(|f| support::samples(f))
            .unwrap_or_default();
        heard.len() > min
    });
    heard
}

#[test]
fn park_retrieve_dnd_and_forward_by_command() {
    if std::env::var("SIP_SKIP_PEERS").is_ok_and(|v| v == "1") {
        return;
    }
    let (_pbx, mut phones, b) = office();
    let [(_a, a_rx, a_in, _), (_c, c_rx, c_in, c_rec)] = &mut phones[..] else {
        unreachable!()
    };

    // Park: 201 talks to 202, then `park` holds and dials 11.
    writeln!(a_in, "dial 202").unwrap();
    expect(a_rx, "established");
    support::wait_heard("202", &[440.0], || support::baresip_now(&b));
    writeln!(a_in, "park").unwrap();
    let hold = expect(a_rx, "feature");
    assert_eq!(
        (hold["step"].as_str(), hold["ok"].as_bool()),
        (Some("hold"), Some(true))
    );
    let code = expect(a_rx, "feature");
    assert_eq!(code["status"], 480);
    done(a_rx, "park");
    // Retrieve from 203: it talks to 202.
    writeln!(c_in, "retrieve 201").unwrap();
    expect(c_rx, "established");
    support::wait_until("2 s of 202 at 203", || {
        support::newest_samples(c_rec).len() > 16000
    });
    writeln!(c_in, "hangup").unwrap();
    expect(c_rx, "ended");
    wait_for("baresip to hang up", || b.log().contains("terminated"));
    let file = std::fs::read_dir(c_rec)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let heard: Vec<i16> = hound::WavReader::open(&file)
        .unwrap()
        .into_samples()
        .filter_map(Result::ok)
        .collect();
    let f = dominant_frequency(&heard[4000..heard.len().min(16000)], 8000);
    assert!((f - 600.0).abs() < 5.0, "203 heard {f} Hz after retrieving");

    // DND: a call to 201 is busy; off again, it rings.
    writeln!(a_in, "dnd on").unwrap();
    done(a_rx, "dnd");
    b.command("/dial 201\n").unwrap();
    wait_for("486 at baresip", || b.log().contains("486"));
    writeln!(a_in, "dnd off").unwrap();
    done(a_rx, "dnd");

    // Forward all to 203: 203 rings, and sees who forwarded.
    writeln!(a_in, "forward all 203").unwrap();
    done(a_rx, "forward");
    b.command("/dial 201\n").unwrap();
    let inc = expect(c_rx, "incoming");
    assert_eq!(inc["from"], "202");
    assert!(
        inc["diversion"].as_str().unwrap().contains("sip:201@"),
        "{inc}"
    );
    writeln!(c_in, "reject").unwrap();
    writeln!(a_in, "forward clear").unwrap();
    done(a_rx, "forward");
}

#[test]
fn blind_and_attended_transfer_by_refer() {
    if std::env::var("SIP_SKIP_PEERS").is_ok_and(|v| v == "1") {
        return;
    }
    let (_pbx, mut phones, b) = office();
    let [(_a, a_rx, a_in, _), (_c, c_rx, c_in, c_rec)] = &mut phones[..] else {
        unreachable!()
    };
    // Blind: 201 talks to 202 and sends it to 203; 203 answers and hears 202.
    writeln!(a_in, "dial 202").unwrap();
    expect(a_rx, "established");
    writeln!(a_in, "transfer 203").unwrap();
    expect(c_rx, "incoming");
    writeln!(c_in, "answer").unwrap();
    expect(c_rx, "established");
    expect(a_rx, "transferred");
    expect(a_rx, "ended");
    support::wait_heard("203", &[600.0], || support::newest_samples(c_rec));
    writeln!(c_in, "hangup").unwrap();
    expect(c_rx, "ended");
    let f = newest_heard(c_rec);
    assert!(
        (f - 600.0).abs() < 5.0,
        "203 heard {f} Hz after the blind transfer"
    );

    // Attended: 201 calls 202, holds it, calls 203, then joins them (REFER with Replaces).
    let (first, second) = two_calls_one_held(a_rx, a_in, c_rx, c_in);
    support::wait_heard("203", &[440.0], || support::newest_samples(c_rec));
    writeln!(a_in, "transfer call {second} {first}").unwrap();
    expect(a_rx, "transferred");
    // Until baresip's recording of the new call ends with 1.5 s of 203.
    support::wait_until("202 to hear 203", || {
        ends_with_203(&support::baresip_now(&b))
    });
    b.command("/hangup\n").unwrap();
    expect(c_rx, "ended");
    let f = newest_heard(c_rec);
    assert!(
        (f - 600.0).abs() < 5.0 || (f - 440.0).abs() < 5.0,
        "203 heard {f} Hz"
    );
    let heard = baresip_heard(&b, 12000);
    assert!(
        ends_with_203(&heard),
        "202 heard {:?} at the end of the attended transfer",
        e2e::audio::timeline(&heard)
    );
}

/// Do the 1.25 s before the last quarter second of `heard` hold 203's 1000 Hz?
fn ends_with_203(heard: &[i16]) -> bool {
    if heard.len() < 14000 {
        return false;
    }
    let tail = &heard[heard.len() - 12000..heard.len() - 2000];
    (dominant_frequency(tail, 8000) - 1000.0).abs() < 5.0
}

#[test]
fn message_waiting_follows_voicemail() {
    if std::env::var("SIP_SKIP_PEERS").is_ok_and(|v| v == "1") {
        return;
    }
    let (pbx, mut phones, b) = office();
    support::cli(&pbx.db, &["station", "set", "201", "voicemail=201"]);
    support::cli(
        &pbx.db,
        &["settings", "set", "forward.noanswer_seconds", "2"],
    );
    let [(_a, a_rx, _a_in, _), _] = &mut phones[..] else {
        unreachable!()
    };
    // The subscription's first NOTIFY: nothing waiting.
    let first = expect(a_rx, "mwi");
    assert_eq!(
        (first["new"].as_u64(), first["old"].as_u64()),
        (Some(0), Some(0))
    );
    // 202 calls 201, which does not answer: voicemail takes a message.
    b.command("/dial 201\n").unwrap();
    expect(a_rx, "incoming");
    assert_eq!(expect(a_rx, "ended")["status"], 487);
    support::wait_message(&pbx.db, "201");
    b.command("/hangup\n").unwrap();
    let lit = expect(a_rx, "mwi");
    assert_eq!(
        (lit["line"].as_u64(), lit["new"].as_u64()),
        (Some(1), Some(1))
    );
}

/// The newest recording in `dir` once written, as samples.
fn newest_recording(dir: &Path) -> Vec<i16> {
    let mut heard = Vec::new();
    wait_for("a recording", || {
        heard = support::newest_samples(dir);
        heard.len() > 24000
    });
    heard
}

#[test]
fn conference_of_three_via_46() {
    if std::env::var("SIP_SKIP_PEERS").is_ok_and(|v| v == "1") {
        return;
    }
    let (_pbx, mut phones, b) = office();
    let [(_a, a_rx, a_in, a_rec), (_c, c_rx, c_in, c_rec)] = &mut phones[..] else {
        unreachable!()
    };
    // 201 calls 202 and adds it: hold, 46 (480).
    writeln!(a_in, "dial 202").unwrap();
    expect(a_rx, "established");
    support::wait_heard("202", &[440.0], || support::baresip_now(&b));
    writeln!(a_in, "conference add").unwrap();
    done(a_rx, "conference");
    // Then calls 203, which answers, and adds it too.
    writeln!(a_in, "dial 203").unwrap();
    expect(c_rx, "incoming");
    writeln!(c_in, "answer").unwrap();
    expect(c_rx, "established");
    expect(a_rx, "established");
    support::wait_heard("203", &[440.0], || support::newest_samples(c_rec));
    writeln!(a_in, "conference add").unwrap();
    done(a_rx, "conference");
    // The second 46 in a row ends the adding; the owner's resume joins the conference.
    writeln!(a_in, "conference end").unwrap();
    done(a_rx, "conference");
    support::wait_until("each to hear the other two", || {
        hear_each_other(&[
            (0, support::newest_samples(a_rec)),
            (2, support::newest_samples(c_rec)),
            (1, support::baresip_now(&b)),
        ])
    });
    // Everyone hangs up at once, so each recording ends with the three of them.
    writeln!(a_in, "hangup").unwrap();
    writeln!(c_in, "hangup").unwrap();
    b.command("/hangup\n").unwrap();
    expect(c_rx, "ended");
    hears_the_other_two("201", 0, &shares(&newest_recording(a_rec)));
    hears_the_other_two("203", 2, &shares(&newest_recording(c_rec)));
    let heard = baresip_heard(&b, 24000);
    hears_the_other_two("202", 1, &shares(&heard));
}

#[test]
fn forward_busy_and_no_answer_by_code() {
    if std::env::var("SIP_SKIP_PEERS").is_ok_and(|v| v == "1") {
        return;
    }
    let (pbx, mut phones, b) = office();
    support::cli(&pbx.db, &["station", "set", "203", "call_waiting=yes"]);
    support::cli(
        &pbx.db,
        &["settings", "set", "forward.noanswer_seconds", "2"],
    );
    let [(_a, a_rx, a_in, _), (_c, c_rx, c_in, _)] = &mut phones[..] else {
        unreachable!()
    };
    // No answer: 202 calls 201, which rings for 2 s, then 203 rings, told 201 did not answer.
    writeln!(a_in, "forward noanswer 203").unwrap();
    done(a_rx, "forward");
    b.command("/dial 201\n").unwrap();
    expect(a_rx, "incoming");
    let inc = expect(c_rx, "incoming");
    assert!(
        inc["diversion"].as_str().unwrap().contains("no-answer"),
        "{inc}"
    );
    assert_eq!(expect(a_rx, "ended")["status"], 487);
    writeln!(c_in, "reject").unwrap();
    expect(c_rx, "ended");
    wait_for("baresip's call to end", || b.log().contains("486"));

    // Busy: 201 talks to 203; 202's call to 201 goes to 203 as a waiting call.
    writeln!(a_in, "forward busy 203").unwrap();
    done(a_rx, "forward");
    writeln!(a_in, "dial 203").unwrap();
    expect(c_rx, "incoming");
    writeln!(c_in, "answer").unwrap();
    expect(a_rx, "established");
    b.command("/dial 201\n").unwrap();
    let inc = expect(c_rx, "incoming");
    assert_eq!(inc["from"], "202");
    assert!(
        inc["diversion"].as_str().unwrap().contains("user-busy"),
        "{inc}"
    );
}

/// 201 (`a`) calls 202 (baresip, answering by itself), holds it, and calls 203 (`c`), which
/// answers: the two calls' numbers, the held one first.
fn two_calls_one_held(
    a_rx: &std::sync::mpsc::Receiver<serde_json::Value>,
    a_in: &mut std::process::ChildStdin,
    c_rx: &std::sync::mpsc::Receiver<serde_json::Value>,
    c_in: &mut std::process::ChildStdin,
) -> (u64, u64) {
    writeln!(a_in, "dial 202").unwrap();
    let first = expect(a_rx, "established")["call"].as_u64().unwrap();
    writeln!(a_in, "hold").unwrap();
    expect(a_rx, "held");
    writeln!(a_in, "dial 203").unwrap();
    expect(c_rx, "incoming");
    writeln!(c_in, "answer").unwrap();
    expect(c_rx, "established");
    let second = expect(a_rx, "established")["call"].as_u64().unwrap();
    (first, second)
}

#[test]
fn local_three_way_is_mixed_in_the_phone() {
    if std::env::var("SIP_SKIP_PEERS").is_ok_and(|v| v == "1") {
        return;
    }
    let (_pbx, mut phones, b) = office();
    let [(_a, a_rx, a_in, _), (_c, c_rx, c_in, c_rec)] = &mut phones[..] else {
        unreachable!()
    };
    // 201 talks to 203, holds it, calls 202, then joins the two in the phone. The held one
    // is the softphone: baresip starts a new recording whenever a re-INVITE restarts its
    // audio, and a late one (the resume, under a loaded `scripts/check`) left its newest
    // file too short to judge; never held, its one recording covers the whole call.
    writeln!(a_in, "dial 203").unwrap();
    expect(c_rx, "incoming");
    writeln!(c_in, "answer").unwrap();
    expect(c_rx, "established");
    expect(a_rx, "established");
    writeln!(a_in, "hold").unwrap();
    expect(a_rx, "held");
    writeln!(a_in, "dial 202").unwrap();
    expect(a_rx, "established");
    writeln!(a_in, "join").unwrap();
    expect(a_rx, "joined");
    expect(a_rx, "resumed");
    support::wait_until("each to hear the other two", || {
        hear_each_other(&[
            (2, support::newest_samples(c_rec)),
            (1, support::baresip_now(&b)),
        ])
    });
    // The other two hang up at once, so each recording ends with the three of them.
    writeln!(c_in, "hangup").unwrap();
    b.command("/hangup\n").unwrap();
    expect(c_rx, "ended");
    hears_the_other_two("203", 2, &shares(&newest_recording(c_rec)));
    let heard = baresip_heard(&b, 24000);
    hears_the_other_two("202", 1, &shares(&heard));
}
