//! Calls through `pbx-lite serve` between two real phones (issue #5, must-show 1), once with
//! direct media and once anchored in the relay: two baresip instances register with digest auth as stations 201 and 202, 201
//! calls 202, each plays its own tone (440 Hz and 600 Hz) and records what it hears; each
//! recording must hold the other's tone; hanging up ends the call on both phones. Also: a
//! restart keeps calls connecting, call forwarding unreachable, and a vanished phone's call
//! is hung up.
#![allow(clippy::unwrap_used)]

use e2e::baresip::Baresip;
use media::analysis::dominant_frequency;
use std::time::Duration;

mod support;
use support::office::{Kill, tone, wait_for};

fn recorded(b: &Baresip) -> Vec<i16> {
    b.decoded_files()
        .first()
        .map(|f| e2e::audio::samples_so_far(f))
        .unwrap_or_default()
}

#[test]
fn two_baresips_call_through_the_pbx_with_direct_media() {
    call_between_two_baresips("never");
}

#[test]
fn two_baresips_call_through_the_pbx_anchored_in_the_relay() {
    call_between_two_baresips("always");
}

/// A running office: pbx-lite with stations 201 and 202, and a baresip phone for each.
struct Office {
    dir: tempfile::TempDir,
    port: u16,
    rtp_lo: u16,
    pbx: Option<Kill>,
    a: Baresip,
    b: Baresip,
}

impl Office {
    fn cli(&self, args: &[&str]) -> std::process::Output {
        support::cli(&self.dir.path().join("office.db"), args)
    }

    fn start_pbx(dir: &std::path::Path, port: u16, rtp_lo: u16) -> Kill {
        let rtp = format!("{rtp_lo}-{}", rtp_lo + 19);
        Kill(support::serve(
            &dir.join("office.db"),
            port,
            &["--rtp-ports", &rtp],
        ))
    }

    /// pbx-lite with `media.relay = relay`, and both phones registered.
    fn start(relay: &str) -> Office {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("office.db");
        let cli = |args: &[&str]| {
            support::cli(&db, args);
        };
        for n in ["201", "202"] {
            cli(&[
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
        cli(&["settings", "set", "media.relay", relay]);
        // Timer F (64 × T1) is how long a probe of a vanished phone takes to fail.
        cli(&["settings", "set", "sip.t1_ms", "100"]);
        let port = support::free_port();
        let rtp_lo = 30000 + (port % 1000) * 20;
        let pbx = Office::start_pbx(dir.path(), port, rtp_lo);
        let phone = |n: &str, freq: f32| {
            let wav = dir.path().join(format!("tone{n}.wav"));
            tone(&wav, freq);
            let n = n.to_string();
            Baresip::start_with(&wav, move |_| {
                format!("<sip:{n}@127.0.0.1:{port}>;auth_user=u{n};auth_pass=Pw-{n}-secret;answermode=auto;audio_codecs=PCMU;regint=600")
            })
            .unwrap()
        };
        let (a, b) = (phone("201", 440.0), phone("202", 600.0));
        let office = Office {
            dir,
            port,
            rtp_lo,
            pbx: Some(pbx),
            a,
            b,
        };
        wait_for("both registered", Duration::from_secs(10), || {
            let v: serde_json::Value =
                serde_json::from_slice(&office.cli(&["status", "--json"]).stdout).unwrap();
            v.as_array()
                .unwrap()
                .iter()
                .all(|r| r["registered"] == true)
        });
        office
    }

    /// 201 calls 202 for three seconds and hangs up; returns what each heard (Hz) and the
    /// port each received media from.
    fn call(&self) -> ((f32, u16), (f32, u16)) {
        self.call_to("202")
    }

    /// Like [`Office::call`], dialling `number` (which must reach phone b).
    fn call_to(&self, number: &str) -> ((f32, u16), (f32, u16)) {
        self.a.command(&format!("/dial {number}\n")).unwrap();
        wait_for("the call", Duration::from_secs(10), || {
            self.a.log().contains("Call established") && self.b.log().contains("Call established")
        });
        wait_for("2.5 s of audio each way", Duration::from_secs(10), || {
            recorded(&self.a).len() > 20000 && recorded(&self.b).len() > 20000
        });
        self.a.command("/hangup\n").unwrap();
        wait_for("both back to idle", Duration::from_secs(10), || {
            self.a.log().contains("terminated") && self.b.log().contains("terminated")
        });
        let measure = |phone: &Baresip| {
            let heard = recorded(phone);
            let f = dominant_frequency(&heard[4000..heard.len().min(20000)], 8000);
            let log = phone.log();
            let from: u16 = log
                .split("receiving from 127.0.0.1:")
                .nth(1)
                .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
                .and_then(|p| p.parse().ok())
                .unwrap_or_else(|| panic!("no media source in\n{log}"));
            (f, from)
        };
        (measure(&self.a), measure(&self.b))
    }
}

/// `relay`: the `media.relay` setting for the call.
fn call_between_two_baresips(relay: &str) {
    if support::skip() {
        return;
    }
    let o = Office::start(relay);
    let ((fa, from_a), (fb, from_b)) = o.call();
    eprintln!("{relay}: 201 heard {fa:.1} Hz, 202 heard {fb:.1} Hz");
    assert!(
        (fa - 600.0).abs() <= 5.0,
        "201 heard {fa} Hz\n{}",
        o.a.log()
    );
    assert!(
        (fb - 440.0).abs() <= 5.0,
        "202 heard {fb} Hz\n{}",
        o.b.log()
    );
    for from in [from_a, from_b] {
        let relayed = (o.rtp_lo..o.rtp_lo + 20).contains(&from);
        assert_eq!(
            relayed,
            relay == "always",
            "{relay}: media from port {from}"
        );
    }
}

#[test]
fn kill_9_then_restart_calls_connect_without_registering_again() {
    if support::skip() {
        return;
    }
    let mut o = Office::start("always");
    let registrations =
        |o: &Office| o.a.log().matches("200 OK").count() + o.b.log().matches("200 OK").count();
    let before = registrations(&o);
    assert!(before >= 2, "each phone logged its registration (200 OK)");
    drop(o.pbx.take()); // SIGKILL
    o.pbx = Some(Office::start_pbx(o.dir.path(), o.port, o.rtp_lo));
    let ((fa, _), (fb, _)) = o.call();
    assert!(
        (fa - 600.0).abs() <= 5.0 && (fb - 440.0).abs() <= 5.0,
        "{fa} {fb}"
    );
    assert_eq!(registrations(&o), before, "no phone registered again");
}

#[test]
fn call_forwarding_unreachable_rings_the_named_station() {
    if support::skip() {
        return;
    }
    let o = Office::start("never");
    // 204 has no phone; its unreachable calls go to 202.
    o.cli(&[
        "station",
        "add",
        "--number",
        "204",
        "--user-id",
        "u204",
        "--password",
        "Pw-204-secret",
        "--set",
        "cf_unreachable=202",
    ]);
    let ((fa, _), (fb, _)) = o.call_to("204");
    assert!(
        (fa - 600.0).abs() <= 5.0 && (fb - 440.0).abs() <= 5.0,
        "{fa} {fb}"
    );
}

/// A phone that vanishes mid-call (SIGKILL: no BYE) must not leave its call lingering: the
/// other phone gets a BYE. `setting` is what notices: the in-dialog OPTIONS probe (direct
/// media) or the relay's RTP inactivity timeout.
fn vanished_phone_call_is_hung_up(relay: &str, setting: (&str, &str)) {
    if support::skip() {
        return;
    }
    let mut o = Office::start(relay);
    o.cli(&["settings", "set", "calls.probe_seconds", "0"]);
    o.cli(&["settings", "set", setting.0, setting.1]);
    o.a.command("/dial 202\n").unwrap();
    wait_for("the call", Duration::from_secs(10), || {
        o.a.log().contains("Call established") && o.b.log().contains("Call established")
    });
    o.b.kill();
    wait_for("201 hung up by the PBX", Duration::from_secs(15), || {
        o.a.log().contains("terminated")
    });
}

#[test]
fn vanished_phone_found_by_the_dialog_probe() {
    vanished_phone_call_is_hung_up("never", ("calls.probe_seconds", "1"));
}

#[test]
fn vanished_phone_found_by_the_rtp_timeout() {
    vanished_phone_call_is_hung_up("always", ("media.rtp_timeout", "2"));
}
