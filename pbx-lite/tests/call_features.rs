//! The OfficeServ call features through `pbx-lite serve` between real phones (issue #6):
//! baresip phones play their own tones (201: 440 Hz, 202: 600 Hz, 203: 1000 Hz) and record
//! what they hear; hold music is an 800 Hz tone. Who hears whom after each step is read from
//! the recordings.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;
use support::office::{MUSIC, Office, heard_in_order, timeline, wait_for};

/// A fixed wait: only where a test shows that something does *not* happen.
fn pause(seconds: f32) {
    std::thread::sleep(Duration::from_secs_f32(seconds));
}

/// Waits until `number` has heard `freqs` in order on its current call.
fn heard(o: &Office, number: &str, freqs: &[f32]) {
    o.phone(number).wait_heard(freqs);
}

/// 201 calls 202 and both answer.
fn call_202(o: &Office) {
    o.phone("201").send("/dial 202");
    o.wait_log("201", "Call established", 1);
    o.wait_log("202", "Call established", 1);
}

/// Station `tone_source` for 202; 201 holds and resumes; what 202 heard.
fn hold_and_resume(relay: &str, tone_source: &str) -> Vec<i16> {
    let o = Office::start(relay, &[("201", 440.0, "auto"), ("202", 600.0, "auto")]);
    o.cli(&[
        "station",
        "set",
        "202",
        &format!("tone_source={tone_source}"),
    ]);
    call_202(&o);
    heard(&o, "202", &[440.0]);
    o.phone("201").send("/hold");
    let held = [440.0, MUSIC];
    if tone_source == "system" {
        heard(&o, "202", &held);
    } else {
        pause(3.0); // the phone plays its own tone: no music must come
    }
    o.phone("201").send("/resume");
    if tone_source == "system" {
        heard(&o, "202", &[440.0, MUSIC, 440.0]);
    }
    o.phone("201").send("/hangup");
    o.wait_log("202", "terminated", 1);
    // The call is on record (issue #20): `pbx-lite calls` as the admin reads it.
    let calls = || -> serde_json::Value {
        serde_json::from_slice(&o.cli(&["calls", "--json"]).stdout).unwrap()
    };
    wait_for("the call record", Duration::from_secs(10), || {
        calls().as_array().is_some_and(|a| !a.is_empty())
    });
    let c = &calls()[0];
    assert_eq!(
        (&c["caller"], &c["callee"], &c["disposition"]),
        (&"201".into(), &"202".into(), &"answered".into()),
        "{c}"
    );
    assert!(c["ended"].as_i64() > c["answered"].as_i64(), "{c}");
    let text = String::from_utf8(o.cli(&["calls"]).stdout).unwrap();
    assert!(text.contains("201") && text.contains("answered"), "{text}");
    o.phone("202").recordings().remove(0)
}

#[test]
fn hold_plays_the_system_tone_to_the_held_party() {
    if support::skip() {
        return;
    }
    for relay in ["never", "always"] {
        let heard = hold_and_resume(relay, "system");
        assert!(
            heard_in_order(&heard, &[440.0, MUSIC, 440.0]),
            "{relay}: 202 heard {:?}",
            timeline(&heard)
        );
    }
}

#[test]
fn hold_with_phone_tone_leaves_it_to_the_phone() {
    if support::skip() {
        return;
    }
    let heard = hold_and_resume("never", "phone");
    let t = timeline(&heard);
    assert!(
        heard_in_order(&heard, &[440.0]) && !t.iter().any(|f| (f - MUSIC).abs() < 8.0),
        "202 heard {t:?}"
    );
}

/// The three-phone office, media direct between phones until a feature anchors it.
fn office3(answer_203: &str) -> Office {
    Office::start(
        "never",
        &[
            ("201", 440.0, "auto"),
            ("202", 600.0, "auto"),
            ("203", 1000.0, answer_203),
        ],
    )
}

/// 201 talks to 202, holds, and parks it with 11 (answered 480).
fn park_202(o: &Office) {
    call_202(o);
    heard(o, "202", &[440.0]);
    o.phone("201").send("/hold");
    heard(o, "202", &[440.0, MUSIC]);
    o.phone("201").send("/dial 11");
    o.wait_log("201", "480 Temporarily Unavailable", 1);
    o.wait_log("201", "terminated", 1); // its held call is released
}

#[test]
fn park_then_retrieve_from_another_station() {
    if support::skip() {
        return;
    }
    let o = office3("auto");
    park_202(&o);
    heard(&o, "202", &[440.0, MUSIC]);
    o.phone("203").send("/dial 12201");
    o.wait_log("203", "Call established", 1);
    heard(&o, "202", &[440.0, MUSIC, 1000.0]);
    heard(&o, "203", &[600.0]);
    o.phone("203").send("/hangup");
    o.wait_log("202", "terminated", 1);
    let (b, c) = (
        o.phone("202").recordings().remove(0),
        o.phone("203").recordings().remove(0),
    );
    assert!(
        heard_in_order(&b, &[440.0, MUSIC, 1000.0]),
        "202 (parked) heard {:?}",
        timeline(&b)
    );
    assert!(heard_in_order(&c, &[600.0]), "203 heard {:?}", timeline(&c));
    assert!(o.pbx_log().contains("retrieved by 203"), "{}", o.pbx_log());
}

#[test]
fn unretrieved_park_recalls_the_parking_station() {
    if support::skip() {
        return;
    }
    let o = office3("auto");
    o.set("park.recall_seconds", "5");
    park_202(&o);
    o.wait_log("201", "Call established", 2); // it rings again and answers
    heard(&o, "202", &[440.0, MUSIC, 440.0]);
    o.phone("201").send("/hangup");
    o.wait_log("202", "terminated", 1);
    let b = o.phone("202").recordings().remove(0);
    assert!(
        heard_in_order(&b, &[440.0, MUSIC, 440.0]),
        "202 heard {:?}",
        timeline(&b)
    );
}

#[test]
fn a_restart_releases_a_parked_call_with_a_log_line() {
    if support::skip() {
        return;
    }
    let mut o = office3("auto");
    park_202(&o);
    o.restart_pbx();
    o.wait_log("202", "terminated", 1); // the BYE from the restarted PBX
    let log = o.pbx_log();
    assert!(
        log.contains("park slot 201: the call of 202 parked by 201 was released (the PBX restarted); BYE sent"),
        "{log}"
    );
    // The slot is empty again: a retrieve finds nothing.
    o.phone("203").send("/dial 12201");
    o.wait_log("203", "480 Temporarily Unavailable", 1);
}

/// 201 talks to 202, holds it, and calls 203 (answered when `answer` is "auto").
fn consult_203(o: &Office) {
    call_202(o);
    heard(o, "202", &[440.0]);
    o.phone("201").send("/hold");
    heard(o, "202", &[440.0, MUSIC]);
    o.phone("201").send("/dial 203");
    o.wait_log("203", "ing call", 1); // "Incoming call", or "answering call" when automatic
}

/// 202's and 203's recordings after 202 has heard `then` (after 440 Hz and the music) and
/// hung up.
fn end_and_record(o: &Office, then: f32) -> (Vec<i16>, Vec<i16>) {
    heard(o, "202", &[440.0, MUSIC, then]);
    o.phone("202").send("/hangup");
    o.wait_log("202", "terminated", 1);
    (
        o.phone("202").recordings().remove(0),
        o.phone("203").recordings().pop().unwrap_or_default(),
    )
}

#[test]
fn consultation_transfer_joins_the_other_two() {
    if support::skip() {
        return;
    }
    let o = office3("auto");
    consult_203(&o);
    o.wait_log("201", "Call established", 2);
    heard(&o, "203", &[440.0]);
    o.phone("201").send("/hangup"); // the consultation call: the transfer completes
    o.wait_log("201", "terminated", 2); // both of 201's calls end: it is idle
    heard(&o, "203", &[440.0, 600.0]);
    let (b, c) = end_and_record(&o, 1000.0);
    assert!(
        heard_in_order(&b, &[440.0, MUSIC, 1000.0]),
        "202 heard {:?}",
        timeline(&b)
    );
    assert!(
        heard_in_order(&c, &[440.0, 600.0]),
        "203 heard {:?}",
        timeline(&c)
    );
    assert_eq!(o.phone("203").count("terminated"), 1, "203's call went on");
}

#[test]
fn consulted_party_hangs_up_and_the_held_call_resumes() {
    if support::skip() {
        return;
    }
    let o = office3("auto");
    consult_203(&o);
    o.wait_log("201", "Call established", 2);
    heard(&o, "203", &[440.0]);
    o.phone("203").send("/hangup");
    o.wait_log("201", "terminated", 1);
    o.phone("201").send("/resume");
    let (b, _) = end_and_record(&o, 440.0);
    assert!(
        heard_in_order(&b, &[440.0, MUSIC, 440.0]),
        "202 heard {:?}",
        timeline(&b)
    );
}

#[test]
fn blind_transfer_rings_on_and_connects_when_answered() {
    if support::skip() {
        return;
    }
    let o = office3("manual");
    consult_203(&o);
    o.phone("201").send("/hangup"); // while 203 rings: a blind transfer
    o.wait_log("201", "terminated", 1); // its held call is released: it is idle
    o.phone("203").send("/accept");
    o.wait_log("203", "Call established", 1);
    heard(&o, "203", &[600.0]);
    let (b, c) = end_and_record(&o, 1000.0);
    assert!(
        heard_in_order(&b, &[440.0, MUSIC, 1000.0]),
        "202 heard {:?}",
        timeline(&b)
    );
    assert!(heard_in_order(&c, &[600.0]), "203 heard {:?}", timeline(&c));
}

#[test]
fn unanswered_blind_transfer_recalls_the_transferor() {
    if support::skip() {
        return;
    }
    let o = office3("manual");
    o.set("transfer.recall_seconds", "5");
    consult_203(&o);
    o.phone("201").send("/hangup");
    o.wait_log("201", "Call established", 2); // the recall rings 201 and it answers
    assert!(o.phone("203").count("Call established") == 0);
    let (b, _) = end_and_record(&o, 440.0);
    assert!(
        heard_in_order(&b, &[440.0, MUSIC, 440.0]),
        "202 heard {:?}",
        timeline(&b)
    );
}

#[test]
fn refer_transfers_blind() {
    if support::skip() {
        return;
    }
    let o = office3("auto");
    call_202(&o);
    heard(&o, "202", &[440.0]);
    o.phone("201").send("/transfer 203");
    o.wait_log("203", "Call established", 1);
    o.wait_log("201", "terminated", 1);
    heard(&o, "202", &[440.0, 1000.0]);
    heard(&o, "203", &[600.0]);
    o.phone("202").send("/hangup");
    o.wait_log("202", "terminated", 1);
    let (b, c) = (
        o.phone("202").recordings().remove(0),
        o.phone("203").recordings().pop().unwrap_or_default(),
    );
    assert!(
        heard_in_order(&b, &[440.0, 1000.0]),
        "202 heard {:?}",
        timeline(&b)
    );
    assert!(heard_in_order(&c, &[600.0]), "203 heard {:?}", timeline(&c));
}

/// 201 calls 202, which rings; 203 dials `code`.
fn pick_up(code: &str) {
    let o = Office::start(
        "never",
        &[
            ("201", 440.0, "auto"),
            ("202", 600.0, "manual"),
            ("203", 1000.0, "auto"),
        ],
    );
    o.phone("201").send("/dial 202");
    o.wait_log("202", "Incoming call", 1);
    o.phone("203").send(&format!("/dial {code}"));
    o.wait_log("203", "Call established", 1);
    o.wait_log("201", "Call established", 1);
    heard(&o, "201", &[1000.0]);
    heard(&o, "203", &[440.0]);
    o.phone("203").send("/hangup");
    o.wait_log("201", "terminated", 1);
    let (a, c) = (
        o.phone("201").recordings().remove(0),
        o.phone("203").recordings().remove(0),
    );
    assert!(
        heard_in_order(&a, &[1000.0]),
        "201 heard {:?}",
        timeline(&a)
    );
    assert!(heard_in_order(&c, &[440.0]), "203 heard {:?}", timeline(&c));
    assert_eq!(
        o.phone("202").count("Call established"),
        0,
        "the ringing phone was cancelled"
    );
}

#[test]
fn directed_pickup_answers_the_ringing_station() {
    if support::skip() {
        return;
    }
    pick_up("57202");
}

#[test]
fn my_group_pickup_answers_a_call_ringing_in_the_group() {
    if support::skip() {
        return;
    }
    pick_up("55");
}

/// 201 dials the conference code; waits for its 480.
fn code_46(o: &Office, n: usize) {
    o.phone("201").send("/dial 46");
    o.wait_log("201", "480 Temporarily Unavailable", n);
}

/// The share of each of `freqs` in the last `seconds` of what `number` hears now.
fn shares_now(o: &Office, number: &str, seconds: usize, freqs: &[f32]) -> Vec<f32> {
    let rec = o.phone(number).recordings().pop().unwrap_or_default();
    support::office::shares_at_end(&rec, seconds, freqs)
}

/// Does each member hear the others (over a fifth each) and not itself (under 5 %)?
fn hears_the_others(shares: &[f32], me: usize) -> bool {
    shares
        .iter()
        .enumerate()
        .all(|(j, s)| if j == me { *s < 0.05 } else { *s > 0.2 })
}

#[test]
fn conference_via_46_each_hears_the_other_two() {
    if support::skip() {
        return;
    }
    let o = office3("auto");
    // Figure 1: 201 calls 202, holds, dials 46 — 202 waits in the conference.
    call_202(&o);
    heard(&o, "202", &[440.0]);
    o.phone("201").send("/hold");
    heard(&o, "202", &[440.0, MUSIC]);
    code_46(&o, 1);
    // Figure 2: 201 calls 203, holds, 46 adds it; a second 46 ends the adding.
    o.phone("201").send("/hold");
    pause(1.0); // baresip takes its next command once the hold is done
    o.phone("201").send("/dial 203");
    o.wait_log("203", "Call established", 1);
    o.wait_log("201", "terminated", 1); // its first leg is released
    heard(&o, "203", &[440.0]);
    o.phone("201").send("/hold");
    heard(&o, "203", &[440.0, MUSIC]);
    code_46(&o, 2);
    code_46(&o, 3);
    o.phone("201").send("/resume"); // the owner's final resume
    // 202 and 203 each come to hear the other two and not themselves; that both hear 201
    // shows the owner's final resume joined it. (baresip 1.0 stops recording on a phone
    // once it holds, so the owner's own ears are not recorded.)
    let freqs = [440.0, 600.0, 1000.0];
    support::office::wait_for(
        "each member to hear the other two",
        Duration::from_secs(20),
        || {
            [(1, "202"), (2, "203")]
                .iter()
                .all(|(i, n)| hears_the_others(&shares_now(&o, n, 2, &freqs), *i))
        },
    );
    o.phone("202").send("/hangup"); // one member leaves: the other two go on
    o.wait_log("202", "terminated", 1);
    support::office::wait_for("203 to hear 201 alone", Duration::from_secs(20), || {
        shares_now(&o, "203", 1, &freqs)[0] > 0.6
    });
    o.phone("203").send("/hangup"); // the last two: 201 is released too
    o.wait_log("201", "terminated", 2);
}

#[test]
fn hold_recall_rings_the_holding_station_again() {
    if support::skip() {
        return;
    }
    let o = Office::start("never", &[("201", 440.0, "auto"), ("202", 600.0, "auto")]);
    o.set("hold.recall_seconds", "5");
    call_202(&o);
    heard(&o, "202", &[440.0]);
    o.phone("201").send("/hold");
    o.wait_log("201", "terminated", 1); // the held call comes back as a new one...
    o.wait_log("201", "Call established", 2); // ...which 201 answers
    heard(&o, "202", &[440.0, MUSIC, 440.0]);
    o.phone("201").send("/hangup");
    o.wait_log("202", "terminated", 1);
    let b = o.phone("202").recordings().remove(0);
    assert!(
        heard_in_order(&b, &[440.0, MUSIC, 440.0]),
        "202 heard {:?}",
        timeline(&b)
    );
}

#[test]
fn caller_name_and_number_reach_the_called_phone() {
    if support::skip() {
        return;
    }
    let o = Office::start("never", &[("201", 440.0, "auto"), ("202", 600.0, "manual")]);
    o.phone("201").send("/dial 202");
    o.wait_log("202", "Incoming call from: Station 201 sip:201@", 1);
    o.phone("201").send("/hangup");
}

/// Waits until the voicemail message being recorded in `dir` holds a second of `freq`.
fn wait_recorded(dir: &std::path::Path, freq: f32) {
    support::office::wait_for(
        "the message to be recorded",
        Duration::from_secs(20),
        || {
            std::fs::read_dir(dir).is_ok_and(|entries| {
                entries
                    .filter_map(Result::ok)
                    .any(|e| heard_in_order(&support::office::samples_so_far(&e.path()), &[freq]))
            })
        },
    );
}

fn messages(o: &Office, number: &str) -> (u64, u64) {
    let v: serde_json::Value =
        serde_json::from_slice(&o.cli(&["status", "--json"]).stdout).unwrap();
    let r = v
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["number"] == number)
        .unwrap()
        .clone();
    (
        r["messages_new"].as_u64().unwrap(),
        r["messages_old"].as_u64().unwrap(),
    )
}

/// SIPp subscribing to message-summary as `number` (with digest auth), then answering
/// NOTIFYs whose Voice-Message must be each of `counts` in turn; the i-th leaves a file
/// `lamp-i` in the office's folder (see [`e2e::sipp::mwi_scenario`]).
fn mwi_subscriber(o: &Office, number: &str, counts: &[&str]) -> std::process::Child {
    let dir = o.dir.path();
    std::fs::write(dir.join("mwi.xml"), e2e::sipp::mwi_scenario(counts)).unwrap();
    std::fs::write(
        dir.join("mwi.inf"),
        format!(
            "SEQUENTIAL\n{number};[authentication username=u{number} password=Pw-{number}-secret]\n"
        ),
    )
    .unwrap();
    std::process::Command::new("sipp")
        .arg(format!("127.0.0.1:{}", o.port))
        .args(["-i", "127.0.0.1", "-p", &support::free_port().to_string()])
        .args(["-nostdin", "-timeout", "90s", "-m", "1", "-trace_err"])
        .args(["-sf", "mwi.xml", "-inf", "mwi.inf"])
        .current_dir(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn voicemail_takes_a_message_lights_mwi_keeps_it_over_a_restart_and_plays_it() {
    if support::skip() {
        return;
    }
    let mut o = Office::start("never", &[("201", 440.0, "auto"), ("202", 600.0, "manual")]);
    o.cli(&["station", "set", "202", "voicemail=202"]);
    // 202's message lamp: a SIPp subscription to message-summary (RFC 3842) that must see
    // 0/0, then 1/0 after the message, 1/0 again from the restarted PBX, 0/1 once it is
    // played, and 0/0 after the deletion. (baresip 1.0's own MWI module can loop on a
    // SUBSCRIBE challenge.)
    let mut lamp = mwi_subscriber(&o, "202", &["0/0", "1/0", "1/0", "0/1", "0/0"]);
    o.set("forward.noanswer_seconds", "2");
    // 202 does not answer: voicemail does, and records 201's tone.
    o.phone("201").send("/dial 202");
    o.wait_log("201", "Call established", 1);
    let dir = o.dir.path().join("office.db.voicemail/202");
    wait_recorded(&dir, 440.0);
    o.phone("201").send("/hangup");
    support::office::wait_for("the message", Duration::from_secs(10), || {
        messages(&o, "202") == (1, 0)
    });
    let file = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "wav"))
        .unwrap();
    // Issue 15, finding 11: messages were 0644 in 0755 folders.
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&file), 0o600);
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(dir.parent().unwrap()), 0o700);
    let kept: Vec<i16> = hound::WavReader::open(&file)
        .unwrap()
        .into_samples()
        .map(Result::unwrap)
        .collect();
    assert!(
        heard_in_order(&kept, &[440.0]),
        "kept {:?}",
        timeline(&kept)
    );
    // A restart keeps the message and tells the phone again.
    support::office::wait_for("the lamp to light", Duration::from_secs(10), || {
        o.dir.path().join("lamp-1").exists()
    });
    o.restart_pbx();
    assert_eq!(messages(&o, "202"), (1, 0));
    // 202 dials the voicemail code: a beep, then the message; 7 deletes it.
    o.phone("202").send("/dial 50");
    o.wait_log("202", "Call established", 1);
    heard(&o, "202", &[440.0]);
    o.phone("202").send("7");
    o.wait_log("202", "terminated", 1); // the end tone, then the PBX hangs up
    assert_eq!(messages(&o, "202"), (0, 0));
    assert!(!file.exists(), "the deleted message's file is gone");
    sipp_ok(&o, "the MWI subscription", &mut lamp);
    let heard = o.phone("202").recordings().pop().unwrap();
    assert!(
        heard_in_order(&heard, &[440.0]),
        "202 heard {:?}",
        timeline(&heard)
    );
}

/// A Cisco-7960-like phone for `number` that never subscribes: SIPp registers it, then it
/// must receive an unsolicited NOTIFY whose body matches `summary`, and answer it.
fn unsolicited_mwi_phone(o: &Office, number: &str, summary: &str) -> support::office::Kill {
    let port = support::free_port();
    let sf = o.dir.path().join("mwi.xml");
    std::fs::write(
        &sf,
        format!(
            "<?xml version=\"1.0\" encoding=\"ISO-8859-1\" ?>\n<scenario name=\"mwi\">\n<recv request=\"NOTIFY\"><action><ereg regexp=\"{summary}\" search_in=\"body\" check_it=\"true\" assign_to=\"m\"/></action></recv>\n<send><![CDATA[\nSIP/2.0 200 OK\n[last_Via:]\n[last_From:]\n[last_To:];tag=[pid]m\n[last_Call-ID:]\n[last_CSeq:]\nX-Summary-Seen: [$m]\nContent-Length: 0\n\n]]></send>\n</scenario>\n"
        ),
    )
    .unwrap();
    let phone = support::office::Kill(
        std::process::Command::new("sipp")
            .args([
                "-i",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-nostdin",
                "-m",
                "1",
            ])
            .args(["-timeout", "20s", "-sf", sf.to_str().unwrap()])
            .current_dir(o.dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let inf = o.dir.path().join("reg.inf");
    std::fs::write(
        &inf,
        format!(
            "SEQUENTIAL\n{number};[authentication username=u{number} password=Pw-{number}-secret];{port}\n"
        ),
    )
    .unwrap();
    let register =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/sipp/register-callee.xml");
    let r = std::process::Command::new("sipp")
        .arg(format!("127.0.0.1:{}", o.port))
        .args(["-i", "127.0.0.1", "-p", &support::free_port().to_string()])
        .args(["-nostdin", "-timeout", "10s", "-m", "1"])
        .args([
            "-sf",
            register.to_str().unwrap(),
            "-inf",
            inf.to_str().unwrap(),
        ])
        .current_dir(o.dir.path())
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stdout));
    phone
}

#[test]
fn unsolicited_mwi_reaches_a_phone_that_never_subscribed() {
    if support::skip() {
        return;
    }
    let o = Office::start("never", &[("201", 440.0, "auto")]);
    for n in ["203", "204"] {
        o.cli(&[
            "station",
            "add",
            "--number",
            n,
            "--user-id",
            &format!("u{n}"),
            "--password",
            &format!("Pw-{n}-secret"),
        ]);
    }
    // Calls to 204 (no phone) go to mailbox 203, whose phone never subscribes.
    o.cli(&["station", "set", "204", "voicemail=203"]);
    let mut phone = unsolicited_mwi_phone(&o, "203", "Messages-Waiting: yes.*Voice-Message: 1/0");
    o.phone("201").send("/dial 204");
    o.wait_log("201", "Call established", 1);
    wait_recorded(&o.dir.path().join("office.db.voicemail/203"), 440.0);
    o.phone("201").send("/hangup");
    support::office::wait_for("the NOTIFY", Duration::from_secs(10), || {
        phone.0.try_wait().unwrap().is_some()
    });
    assert!(
        phone.0.wait().unwrap().success(),
        "the phone's NOTIFY did not say 1 new message"
    );
}

#[test]
fn call_waiting_rings_a_busy_station_only_when_it_is_on() {
    if support::skip() {
        return;
    }
    let o = office3("auto");
    call_202(&o);
    // Off (the default, as in OfficeServ): the second caller is told busy.
    o.phone("203").send("/dial 202");
    o.wait_log("203", "486 Busy Here", 1);
    // On: 202 rings while it talks to 201.
    o.cli(&["station", "set", "202", "call_waiting=yes"]);
    o.phone("203").send("/dial 202");
    o.wait_log("203", "Call established", 1);
    assert_eq!(o.phone("202").count("Call established"), 2);
}

/// SDP for a SIPp phone whose audio is at `port` (a SIPp keyword), with `direction`.
fn sipp_sdp(port: &str, version: u32, direction: &str) -> String {
    format!(
        "v=0\no=- 1 {version} IN IP4 [local_ip]\ns=-\nc=IN IP4 [local_ip]\nt=0 0\nm=audio {port} RTP/AVP 0\na=rtpmap:0 PCMU/8000\na={direction}\n"
    )
}

/// A SIPp scenario for 201 calling `[field1]` with INVITE authentication, its audio at
/// `port`, expecting `expect` (200: answered, then `then`; else refused and ACKed).
fn sipp_call(from_tag: &str, port: &str, expect: u16, then: &str) -> String {
    let sdp = sipp_sdp(port, 1, "sendrecv");
    let invite = |cseq: u32, auth: &str| {
        format!(
            "<send retrans=\"500\"><![CDATA[\nINVITE sip:[field1]@[remote_ip]:[remote_port] SIP/2.0\nVia: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]\nFrom: <sip:[field0]@[remote_ip]>;tag={from_tag}\nTo: <sip:[field1]@[remote_ip]>\nCall-ID: [call_id]\nCSeq: {cseq} INVITE\nContact: <sip:[field0]@[local_ip]:[local_port]>\n{auth}Max-Forwards: 70\nContent-Type: application/sdp\nContent-Length: [len]\n\n{sdp}\n]]></send>\n"
        )
    };
    let ack = |cseq: u32, uri: &str, branch: &str, extra: &str| {
        format!(
            "<send><![CDATA[\nACK {uri} SIP/2.0\nVia: SIP/2.0/[transport] [local_ip]:[local_port];branch={branch}\nFrom: <sip:[field0]@[remote_ip]>;tag={from_tag}\nTo: <sip:[field1]@[remote_ip]>[peer_tag_param]\nCall-ID: [call_id]\nCSeq: {cseq} ACK\n{extra}Max-Forwards: 70\nContent-Length: 0\n\n]]></send>\n"
        )
    };
    let first = "sip:[field1]@[remote_ip]:[remote_port]";
    let mut x = String::from(
        "<?xml version=\"1.0\" encoding=\"ISO-8859-1\" ?>\n<scenario name=\"line\">\n",
    );
    x += &invite(1, "");
    x += "<recv response=\"100\" optional=\"true\"/>\n<recv response=\"407\" auth=\"true\"/>\n";
    x += &ack(1, first, "[branch-3]", "");
    x += &invite(2, "[field2]\n");
    x += "<recv response=\"100\" optional=\"true\"/>\n<recv response=\"180\" optional=\"true\"/>\n";
    if expect == 200 {
        x += "<recv response=\"200\" rrs=\"true\"><action><ereg regexp=\"tag=([^;>]+)\" search_in=\"hdr\" header=\"To:\" assign_to=\"all,totag\"/></action></recv>\n";
        x += &ack(2, "[next_url]", "[branch]", "X-Tag-Seen: [$all] [$totag]\n");
        x += then;
    } else {
        x += &format!("<recv response=\"{expect}\"/>\n");
        x += &ack(2, first, "[branch-4]", "");
    }
    x + "</scenario>\n"
}

/// A re-INVITE from a SIPp phone (CSeq `cseq`, audio at `port`, `direction`), its 200
/// (the port the PBX answers with goes to `port_file`, when given) and the ACK.
fn sipp_reinvite(
    from_tag: &str,
    cseq: u32,
    port: &str,
    direction: &str,
    port_file: &str,
) -> String {
    let sdp = sipp_sdp(port, cseq, direction);
    let (save, note) = if port_file.is_empty() {
        (String::new(), String::new())
    } else {
        (
            "<action><ereg regexp=\"m=audio ([0-9]+)\" search_in=\"body\" check_it=\"true\" assign_to=\"mline,mport2\"/></action>".to_string(),
            format!(
                "<nop><action><exec command=\"echo [$mport2] > {port_file}.tmp; mv {port_file}.tmp {port_file}; echo [$mline] > /dev/null\"/></action></nop>\n"
            ),
        )
    };
    format!(
        "<send retrans=\"500\"><![CDATA[\nINVITE [next_url] SIP/2.0\nVia: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]\nFrom: <sip:[field0]@[remote_ip]>;tag={from_tag}\nTo: <sip:[field1]@[remote_ip]>[peer_tag_param]\nCall-ID: [call_id]\nCSeq: {cseq} INVITE\nContact: <sip:[field0]@[local_ip]:[local_port]>\nMax-Forwards: 70\nContent-Type: application/sdp\nContent-Length: [len]\n\n{sdp}\n]]></send>\n<recv response=\"100\" optional=\"true\"/>\n<recv response=\"200\">{save}</recv>\n<send><![CDATA[\nACK [next_url] SIP/2.0\nVia: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]\nFrom: <sip:[field0]@[remote_ip]>;tag={from_tag}\nTo: <sip:[field1]@[remote_ip]>[peer_tag_param]\nCall-ID: [call_id]\nCSeq: {cseq} ACK\nMax-Forwards: 70\nContent-Length: 0\n\n]]></send>\n{note}"
    )
}

/// Waits for the PBX's BYE and answers it.
const SIPP_AWAIT_BYE: &str = "<recv request=\"BYE\" timeout=\"40000\"/>\n<send><![CDATA[\nSIP/2.0 200 OK\n[last_Via:]\n[last_From:]\n[last_To:]\n[last_Call-ID:]\n[last_CSeq:]\nContent-Length: 0\n\n]]></send>\n";

/// Runs SIPp as station 201 calling `callee` with scenario `scenario` (named `name` in the
/// office's directory), in the background.
fn sipp_201(
    o: &Office,
    name: &str,
    callee: &str,
    scenario: String,
    extra: &[&str],
) -> std::process::Child {
    let dir = o.dir.path();
    std::fs::write(dir.join(format!("{name}.xml")), scenario).unwrap();
    std::fs::write(
        dir.join(format!("{name}.inf")),
        format!("SEQUENTIAL\n201;{callee};[authentication username=u201 password=Pw-201-secret]\n"),
    )
    .unwrap();
    std::process::Command::new("sipp")
        .arg(format!("127.0.0.1:{}", o.port))
        .args(["-i", "127.0.0.1", "-p", &support::free_port().to_string()])
        .args(["-nostdin", "-timeout", "60s", "-m", "1", "-trace_err"])
        .args([
            "-sf",
            &format!("{name}.xml"),
            "-inf",
            &format!("{name}.inf"),
        ])
        .args(extra)
        .current_dir(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// Waits for a SIPp run to end and asserts it succeeded.
fn sipp_ok(o: &Office, name: &str, child: &mut std::process::Child) {
    support::office::wait_for(name, Duration::from_secs(45), || {
        child.try_wait().unwrap().is_some()
    });
    if !child.wait().unwrap().success() {
        let errors: String = std::fs::read_dir(o.dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains("errors"))
            .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
            .collect();
        panic!("{name} failed\n{errors}\n{}", o.pbx_log());
    }
}

#[test]
fn refer_with_replaces_joins_the_two_far_ends() {
    if support::skip() {
        return;
    }
    let o = Office::start("never", &[("202", 600.0, "auto"), ("203", 1000.0, "auto")]);
    support::add_station(&o.db(), "201");
    let dir = o.dir.path();
    // Line 1: 201 calls 202, notes the PBX's tag, and waits for the PBX to release it.
    let keep = format!(
        "<nop><action><exec command=\"echo [$totag] > totag.txt\"/></action></nop>\n{SIPP_AWAIT_BYE}"
    );
    let mut line1 = sipp_201(
        &o,
        "line1",
        "202",
        sipp_call("line1tag", "[media_port]", 200, &keep),
        &["-cid_str", "line1-call@201"],
    );
    o.wait_log("202", "Call established", 1);
    let totag = dir.join("totag.txt");
    support::office::wait_for("line 1's tag", Duration::from_secs(10), || {
        std::fs::read_to_string(&totag).is_ok_and(|t| !t.trim().is_empty())
    });
    let tag = std::fs::read_to_string(&totag).unwrap().trim().to_string();
    // Line 2: 201 calls 203, then REFERs it to 202 replacing line 1.
    let refer = "<pause milliseconds=\"1000\"/>\n<send retrans=\"500\"><![CDATA[\nREFER [next_url] SIP/2.0\nVia: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]\nFrom: <sip:[field0]@[remote_ip]>;tag=line2tag\nTo: <sip:[field1]@[remote_ip]>[peer_tag_param]\nCall-ID: [call_id]\nCSeq: 3 REFER\nContact: <sip:[field0]@[local_ip]:[local_port]>\nRefer-To: <sip:202@[remote_ip]?Replaces=line1-call%40201%3Bto-tag%3D[line1totag]%3Bfrom-tag%3Dline1tag>\nReferred-By: <sip:201@[remote_ip]>\nMax-Forwards: 70\nContent-Length: 0\n\n]]></send>\n<recv response=\"202\"/>\n<recv request=\"NOTIFY\"><action><ereg regexp=\"SIP/2.0 200\" search_in=\"body\" check_it=\"true\" assign_to=\"n\"/></action></recv>\n<send><![CDATA[\nSIP/2.0 200 OK\n[last_Via:]\n[last_From:]\n[last_To:]\n[last_Call-ID:]\n[last_CSeq:]\nX-Seen: [$n]\nContent-Length: 0\n\n]]></send>\n<send retrans=\"500\"><![CDATA[\nBYE [next_url] SIP/2.0\nVia: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]\nFrom: <sip:[field0]@[remote_ip]>;tag=line2tag\nTo: <sip:[field1]@[remote_ip]>[peer_tag_param]\nCall-ID: [call_id]\nCSeq: 4 BYE\nMax-Forwards: 70\nContent-Length: 0\n\n]]></send>\n<recv response=\"200\"/>\n";
    let mut line2 = sipp_201(
        &o,
        "line2",
        "203",
        sipp_call("line2tag", "[media_port]", 200, refer),
        &["-key", "line1totag", &tag],
    );
    // Both lines end well only if the REFER with Replaces was honoured.
    sipp_ok(&o, "line 2", &mut line2);
    sipp_ok(&o, "line 1", &mut line1);
    heard(&o, "202", &[1000.0]);
    heard(&o, "203", &[600.0]);
    o.hang_up("202");
    o.wait_log("203", "terminated", 1);
    let (b, c) = (
        o.phone("202").recordings().remove(0),
        o.phone("203").recordings().remove(0),
    );
    assert!(
        heard_in_order(&b, &[1000.0]),
        "202 heard {:?}",
        timeline(&b)
    );
    assert!(heard_in_order(&c, &[600.0]), "203 heard {:?}", timeline(&c));
}

/// Answers a re-INVITE from the PBX as a phone still holding (sendonly), then its ACK.
const SIPP_ANSWER_REINVITE_HELD: &str = "<recv request=\"INVITE\"/>\n<send><![CDATA[\nSIP/2.0 200 OK\n[last_Via:]\n[last_From:]\n[last_To:]\n[last_Call-ID:]\n[last_CSeq:]\nContact: <sip:201@[local_ip]:[local_port]>\nContent-Type: application/sdp\nContent-Length: [len]\n\nv=0\no=- 1 9 IN IP4 [local_ip]\ns=-\nc=IN IP4 [local_ip]\nt=0 0\nm=audio [mport] RTP/AVP 0\na=rtpmap:0 PCMU/8000\na=sendonly\n]]></send>\n<recv request=\"ACK\"/>\n";

/// The owner's ears and mouth when SIPp does its signalling: what arrives at `sock` (with
/// when), and, once `dest_file` names the PBX's port, a 440 Hz tone sent there.
fn owner_audio(
    sock: std::net::UdpSocket,
    dest_file: std::path::PathBuf,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<Vec<(std::time::Instant, Vec<i16>)>> {
    use media::g711::Law;
    use media::rtp::RtpPacket;
    std::thread::spawn(move || {
        sock.set_read_timeout(Some(Duration::from_millis(5)))
            .unwrap();
        let mut heard = Vec::new();
        let mut buf = [0u8; 2048];
        let (mut seq, mut next) = (0u16, std::time::Instant::now());
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            if let Ok(n) = sock.recv(&mut buf)
                && let Ok(p) = RtpPacket::parse(&buf[..n])
                && p.payload_type == 0
            {
                let mut pcm = Vec::new();
                Law::Mu.decode(&p.payload, &mut pcm);
                heard.push((std::time::Instant::now(), pcm));
            }
            let dest: Option<u16> = std::fs::read_to_string(&dest_file)
                .ok()
                .and_then(|s| s.trim().parse().ok());
            if dest.is_none() {
                next = std::time::Instant::now(); // the tone starts when the owner joins
            }
            if let Some(port) = dest
                && std::time::Instant::now() >= next
            {
                let pcm: Vec<i16> = (0..160)
                    .map(|i| {
                        let n = f32::from(seq) * 160.0 + i as f32;
                        ((2.0 * std::f32::consts::PI * 440.0 * n / 8000.0).sin() * 12000.0) as i16
                    })
                    .collect();
                let mut payload = Vec::new();
                Law::Mu.encode(&pcm, &mut payload);
                let packet = RtpPacket {
                    payload_type: 0,
                    seq,
                    timestamp: u32::from(seq) * 160,
                    ssrc: 201,
                    payload,
                    ..Default::default()
                };
                let _ = sock.send_to(&packet.to_bytes(), ("127.0.0.1", port));
                seq = seq.wrapping_add(1);
                next += Duration::from_millis(20);
            }
        }
        heard
    })
}

#[test]
fn conference_owner_hears_the_two_members_and_not_itself() {
    if support::skip() {
        return;
    }
    // 201, the owner, is SIPp for the signalling and this test for the audio; 202 and 203
    // are baresip.
    let o = Office::start("never", &[("202", 600.0, "auto"), ("203", 1000.0, "auto")]);
    o.cli(&[
        "station",
        "add",
        "--number",
        "201",
        "--user-id",
        "u201",
        "--password",
        "Pw-201-secret",
    ]);
    let dir = o.dir.path().to_path_buf();
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let mport = sock.local_addr().unwrap().port().to_string();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ears = owner_audio(sock, dir.join("owner-port"), stop.clone());
    let key = ["-key", "mport", mport.as_str()];
    let flag =
        |name: &str| format!("<nop><action><exec command=\"touch {name}\"/></action></nop>\n");
    let wait_flag = |name: &str| {
        let t0 = std::time::Instant::now();
        while !dir.join(name).exists() {
            if t0.elapsed() > Duration::from_secs(15) {
                let errors: String = std::fs::read_dir(&dir)
                    .unwrap()
                    .filter_map(|e| e.ok())
                    .filter(|e| e.file_name().to_string_lossy().contains("errors"))
                    .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
                    .collect();
                panic!("no {name}\n{errors}\n{}", o.pbx_log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let code_46 = |n: u32| {
        let mut c = sipp_201(
            &o,
            &format!("code{n}"),
            "46",
            sipp_call(&format!("code{n}tag"), "[media_port]", 480, ""),
            &[],
        );
        sipp_ok(&o, "46", &mut c);
    };
    // Figure 1: 201 calls 202, holds, dials 46.
    let a_then = format!(
        "<pause milliseconds=\"1000\"/>\n{}{}{SIPP_AWAIT_BYE}",
        sipp_reinvite("lineatag", 3, "[mport]", "sendonly", ""),
        flag("a-held")
    );
    let mut a = sipp_201(
        &o,
        "linea",
        "202",
        sipp_call("lineatag", "[mport]", 200, &a_then),
        &key,
    );
    wait_flag("a-held");
    code_46(1);
    // Figure 2: 201 calls 203, holds, 46 adds it, a second 46 ends the adding (the PBX
    // re-INVITEs everyone), and 201's own resume joins the room.
    let c_then = format!(
        "<pause milliseconds=\"1000\"/>\n{}{}{SIPP_ANSWER_REINVITE_HELD}<pause milliseconds=\"500\"/>\n{}{SIPP_AWAIT_BYE}",
        sipp_reinvite("linectag", 3, "[mport]", "sendonly", ""),
        flag("c-held"),
        sipp_reinvite("linectag", 4, "[mport]", "sendrecv", "owner-port"),
    );
    let mut c = sipp_201(
        &o,
        "linec",
        "203",
        sipp_call("linectag", "[mport]", 200, &c_then),
        &key,
    );
    wait_flag("c-held");
    sipp_ok(&o, "line 1 (released when line 2 answered)", &mut a);
    code_46(2);
    code_46(3);
    wait_flag("owner-port");
    let joined = std::time::Instant::now();
    pause(4.0);
    o.phone("202").send("/hangup");
    pause(2.5);
    o.phone("203").send("/hangup");
    sipp_ok(&o, "line 2 (released when the last two left)", &mut c);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let heard: Vec<i16> = ears
        .join()
        .unwrap()
        .into_iter()
        .filter(|(t, _)| {
            *t >= joined + Duration::from_secs(1) && *t < joined + Duration::from_millis(3500)
        })
        .flat_map(|(_, pcm)| pcm)
        .collect();
    let freqs = [440.0, 600.0, 1000.0];
    let shares: Vec<f32> = freqs
        .iter()
        .map(|f| media::analysis::tone_share(&heard, *f, 8000))
        .collect();
    eprintln!("201 (owner) hears {shares:?} of {freqs:?}");
    assert!(
        shares[0] < 0.05 && shares[1] > 0.2 && shares[2] > 0.2,
        "the owner hears {shares:?} of {freqs:?}"
    );
    // And the members hear the owner.
    for n in ["202", "203"] {
        let rec = o.phone(n).recordings().pop().unwrap_or_default();
        let tail = &rec[..rec.len().saturating_sub(8000 * 2)];
        let s = support::office::shares_at_end(tail, 2, &freqs);
        eprintln!("{n} hears {s:?} of {freqs:?}");
        assert!(s[0] > 0.2, "{n} does not hear the owner: {s:?}");
    }
}
