//! Outside lines through a provider (issue #18), with Kamailio playing the provider
//! (`tests/provider/kamailio.cfg`: a registrar with digest, a location table, the office's
//! numbers +4930999… routed to where the trunk registered) and a baresip registered there
//! as an outside phone (+4930123456, 1000 Hz). Stations are baresips at pbx-lite (201:
//! 440 Hz, caller ID +4930999100; 202: 600 Hz, the operator; 203: 700 Hz, local calls only).
//! The dialling plan is Berlin's: country 49, national prefix 0, area 30. A capture of the
//! provider's port shows what it received.
#![allow(clippy::unwrap_used)]

mod support;

use e2e::baresip::Baresip;
use std::time::Duration;
use support::office::{Office, heard_in_order, samples_so_far, tone, wait_for};

/// `b`'s newest recording as far as written.
fn newest(b: &Baresip) -> Vec<i16> {
    b.latest_decoded()
        .map(|f| samples_so_far(&f))
        .unwrap_or_default()
}

/// Packets the relay sent, in a second and a half, of the flows that carry `freq` (the
/// relay's ports are the office's range; baresip's recording stops after a remote hold).
fn relayed(o: &Office, freq: f32) -> usize {
    let range = o.rtp_lo..o.rtp_lo + 40;
    let capture = e2e::capture::Capture::start(
        "lo",
        &format!("udp portrange {}-{}", range.start, range.end - 1),
    );
    std::thread::sleep(Duration::from_millis(1500));
    let mut flows: std::collections::HashMap<_, Vec<i16>> = Default::default();
    let mut counts: std::collections::HashMap<_, usize> = Default::default();
    for p in capture.stop() {
        if range.contains(&p.from.port()) && p.payload.len() > 12 && !range.contains(&p.to.port()) {
            media::g711::Law::Mu.decode(&p.payload[12..], flows.entry(p.to).or_default());
            *counts.entry(p.to).or_default() += 1;
        }
    }
    flows
        .iter()
        .filter(|(_, pcm)| media::analysis::tone_share(pcm, freq, 8000) > 0.5)
        .map(|(to, _)| counts[to])
        .sum()
}

fn heard(b: &Baresip, freqs: &[f32]) -> bool {
    heard_in_order(&newest(b), freqs)
}

/// The office (`stations` with baresips), Berlin's dialling plan, and the provider: Kamailio
/// with subscribers `office` (the trunk) and `out`; the trunk `provider` registering there
/// with `max_calls`, every number routed to it. The provider's process and port.
fn office_with_provider(
    stations: &[(&str, f32, &str)],
    max_calls: &str,
) -> (Office, support::office::Kill, u16) {
    let o = Office::start("never", stations);
    for (k, v) in [
        ("dial.country_code", "49"),
        ("dial.national_prefix", "0"),
        ("dial.international_prefix", "00"),
        ("dial.area_code", "30"),
    ] {
        o.set(k, v);
    }
    let provider_dir = o.dir.path().join("provider");
    std::fs::create_dir_all(&provider_dir).unwrap();
    let kport = support::free_port();
    let template = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/provider/kamailio.cfg"),
    )
    .unwrap();
    let provider = e2e::kamailio::start(
        &provider_dir,
        kport,
        &template,
        &[("office", "Trunk-pw-1"), ("out", "Out-pw-1")],
    );
    for args in [
        vec![
            "trunk",
            "add",
            "provider",
            "--host",
            &format!("127.0.0.1:{kport}"),
            "--user",
            "office",
            "--password",
            "Trunk-pw-1",
            "--register",
            "--max-calls",
            max_calls,
        ],
        vec!["route", "add", "+", "--trunk", "provider"],
    ] {
        let out = o.cli(&args);
        assert!(out.status.success(), "{args:?}: {out:?}");
    }
    (o, provider, kport)
}

#[test]
fn outside_lines_through_a_provider() {
    if support::skip() {
        return;
    }
    let (o, _provider, kport) = office_with_provider(
        &[
            ("201", 440.0, "auto"),
            ("202", 600.0, "auto"),
            ("203", 700.0, "auto"),
        ],
        "1",
    );
    o.set("trunk.default_did", "202");
    o.cli(&["station", "set", "201", "caller_id=+4930999100"]);
    o.cli(&["station", "set", "203", "toll=local"]);
    let out = o.cli(&["did", "add", "+4930999100", "--to", "201"]);
    assert!(out.status.success(), "{out:?}");
    let capture = e2e::capture::Capture::start("lo", &format!("udp port {kport}"));
    let wav = o.dir.path().join("outside.wav");
    tone(&wav, 1000.0);
    let outside = Baresip::start_with(&wav, |_| {
        format!("<sip:+4930123456@127.0.0.1:{kport}>;auth_user=out;auth_pass=Out-pw-1;answermode=auto;audio_codecs=PCMU;regint=600")
    })
    .unwrap();
    let show = || String::from_utf8(o.cli(&["trunk", "show", "provider"]).stdout).unwrap();

    // 1. The trunk registers at the provider, with digest.
    wait_for("the trunk registered", Duration::from_secs(15), || {
        show().contains("registered until")
    });
    let status = String::from_utf8(o.cli(&["status"]).stdout).unwrap();
    assert!(
        status.contains("trunk provider") && status.contains("registered until"),
        "{status}"
    );
    wait_for(
        "the outside phone registered",
        Duration::from_secs(10),
        || outside.log().contains("200 OK"),
    );

    // 2. 201 dials 9 and a national number: both hear each other; hold and resume.
    o.phone("201").send("/dial 9030123456");
    wait_for("two-way audio out", Duration::from_secs(20), || {
        heard(&outside, &[440.0])
            && o.phone("201")
                .b
                .latest_decoded()
                .is_some_and(|f| heard_in_order(&samples_so_far(&f), &[1000.0]))
    });
    // A digit from the station reaches the outside phone as RFC 4733 events.
    // (baresip sends a key from its console as an event that never ends: its start shows.)
    o.phone("201").b.command("5").unwrap();
    wait_for(
        "the outside phone to receive DTMF 5",
        Duration::from_secs(10),
        || outside.log().contains("received event: '5'"),
    );
    // Hold reaches the provider as a re-INVITE (a=inactive, checked in the capture below),
    // and the relay sends it nothing; resume as another, and 201's voice flows again.
    o.phone("201").send("/hold");
    wait_for(
        "the provider's re-INVITE for the hold",
        Duration::from_secs(10),
        || outside.log().matches("got re-INVITE").count() >= 1,
    );
    assert_eq!(relayed(&o, 440.0), 0, "201's voice went out while it held");
    o.phone("201").send("/resume");
    wait_for(
        "the re-INVITE for the resume",
        Duration::from_secs(10),
        || outside.log().matches("got re-INVITE").count() >= 2,
    );
    assert!(
        relayed(&o, 440.0) > 40,
        "201's voice did not go out after the resume"
    );
    // The trunk carries its one call: 202's outside call is refused.
    o.phone("202").send("/dial 9030123456");
    o.wait_log("202", "503", 1);
    o.hang_up("201");

    // 5. A station restricted to local calls dialling an international number.
    o.phone("203").send("/dial 90044201234567");
    o.wait_log("203", "403", 1);
    // An INVITE to 9… from an address where no station registered.
    let stranger = std::net::UdpSocket::bind("127.0.0.9:0").unwrap();
    stranger
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let me = stranger.local_addr().unwrap();
    let pbx = format!("127.0.0.1:{}", o.port);
    let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.9\r\ns=-\r\nc=IN IP4 127.0.0.9\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
    let invite = format!(
        "INVITE sip:9004420777000@{pbx} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-fraud-1\r\nFrom: <sip:201@{pbx}>;tag=f\r\nTo: <sip:9004420777000@{pbx}>\r\nCall-ID: fraud-1\r\nCSeq: 1 INVITE\r\nContact: <sip:201@{me}>\r\nMax-Forwards: 70\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    );
    stranger.send_to(invite.as_bytes(), &pbx).unwrap();
    let mut buf = [0u8; 4096];
    let n = stranger.recv(&mut buf).unwrap();
    let answer = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(answer.starts_with("SIP/2.0 407"), "{answer}");
    let log = String::from_utf8(o.cli(&["access-log"]).stdout).unwrap();
    for want in [
        "outside call to +44201234567 refused: international calls are not allowed",
        "trunk provider carries its 1 calls",
        "outside call to 9004420777000 from an address no station registered from",
    ] {
        assert!(log.contains(want), "{want:?} not in the access log:\n{log}");
    }

    // 3. The outside phone calls the office's number: it rings 201, showing the caller as
    // the office dials back; an unknown number rings the operator.
    let before = (outside.latest_decoded(), o.phone("201").b.latest_decoded());
    outside.command("/dial +4930999100\n").unwrap();
    wait_for("two-way audio in", Duration::from_secs(20), || {
        let (a, b) = (outside.latest_decoded(), o.phone("201").b.latest_decoded());
        a != before.0
            && b != before.1
            && heard(&outside, &[440.0])
            && b.is_some_and(|f| heard_in_order(&samples_so_far(&f), &[1000.0]))
    });
    assert!(
        o.phone("201").log().contains("030123456"),
        "{}",
        o.phone("201").log()
    );
    outside.command("/hangup\n").unwrap();
    o.wait_log("201", "terminated", 2);
    outside.command("/dial +4930999177\n").unwrap();
    o.wait_log("202", "Call established", 1);
    outside.command("/hangup\n").unwrap();

    // What the provider received from the PBX.
    let packets = capture.stop();
    let from_pbx: Vec<String> = packets
        .iter()
        .filter(|p| p.from.port() == o.port && p.to.port() == kport)
        .map(|p| String::from_utf8_lossy(&p.payload).to_string())
        .collect();
    let invites: Vec<&String> = from_pbx
        .iter()
        .filter(|m| m.starts_with("INVITE sip:+4930123456@"))
        .collect();
    let first = invites.first().expect("an INVITE to the provider");
    assert!(
        first.starts_with(&format!(
            "INVITE sip:+4930123456@127.0.0.1:{kport};user=phone SIP/2.0"
        )),
        "{first}"
    );
    let from = first
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("from:"))
        .unwrap();
    assert!(
        from.contains("sip:+4930999100@") && from.contains("user=phone"),
        "{from}"
    );
    let m = first.lines().find(|l| l.starts_with("m=audio")).unwrap();
    assert!(m.ends_with(" RTP/AVP 0 8 101"), "{m}");
    assert!(
        first.contains("a=ptime:20") && first.contains("telephone-event/8000"),
        "{first}"
    );
    let calls: std::collections::BTreeSet<&str> = invites
        .iter()
        .filter_map(|m| {
            m.lines()
                .find(|l| l.to_ascii_lowercase().starts_with("call-id:"))
        })
        .collect();
    assert_eq!(calls.len(), 1, "only 201's call reached the provider");
    assert!(
        !from_pbx
            .iter()
            .any(|m| m.contains("+44201234567") || m.contains("4420777000")),
        "a refused call reached the provider"
    );
    let holds: Vec<&String> = from_pbx
        .iter()
        .filter(|m| m.starts_with("INVITE ") && m.contains("a=inactive"))
        .collect();
    assert!(!holds.is_empty(), "no a=inactive toward the provider");
    // The resume: a later re-INVITE in the same dialog, a=sendrecv.
    let after_hold = from_pbx
        .iter()
        .skip_while(|m| !(m.starts_with("INVITE ") && m.contains("a=inactive")))
        .any(|m| m.starts_with("INVITE ") && m.contains("a=sendrecv"));
    assert!(
        after_hold,
        "no a=sendrecv toward the provider after the hold"
    );
}

/// Must-show 4: early media. An outside "phone" (SIPp, registered at the provider as
/// +4930555000) answers 183 with SDP and plays a 1200 Hz tone, then answers 200 three seconds
/// later and sends nothing more: the calling station's recording holds the tone, which came
/// before the answer.
#[test]
fn early_media_from_outside_reaches_the_calling_station() {
    if support::skip() {
        return;
    }
    let (o, _provider, kport) = office_with_provider(&[("201", 440.0, "auto")], "0");
    let dir = o.dir.path();
    let tone_pcm: Vec<i16> = (0..8000 * 2)
        .map(|n| ((2.0 * std::f32::consts::PI * 1200.0 * n as f32 / 8000.0).sin() * 8000.0) as i16)
        .collect();
    let payloads: Vec<Vec<u8>> = tone_pcm
        .chunks(160)
        .map(|c| {
            let mut out = Vec::new();
            media::g711::Law::Mu.encode(c, &mut out);
            out
        })
        .collect();
    e2e::capture::write_rtp(&dir.join("tone.pcap"), &payloads, 0).unwrap();
    let uas_port = support::free_port();
    let scenario =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sipp/uas-early-media.xml");
    let _uas = support::office::Kill(
        std::process::Command::new("sipp")
            .args(["-i", "127.0.0.1", "-p", &uas_port.to_string()])
            .args(["-mp", &support::free_port().to_string()])
            .args(["-nostdin", "-m", "1", "-timeout", "60s", "-sf"])
            .arg(&scenario)
            .current_dir(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let inf = dir.join("outside.inf");
    std::fs::write(
        &inf,
        format!(
            "SEQUENTIAL\n+4930555000;[authentication username=out password=Out-pw-1];{uas_port}\n"
        ),
    )
    .unwrap();
    let register =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/sipp/register-callee.xml");
    let r = std::process::Command::new("sipp")
        .arg(format!("127.0.0.1:{kport}"))
        .args(["-i", "127.0.0.1", "-p", &support::free_port().to_string()])
        .args(["-nostdin", "-timeout", "10s", "-m", "1", "-sf"])
        .arg(&register)
        .arg("-inf")
        .arg(&inf)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stdout));
    wait_for("the trunk registered", Duration::from_secs(15), || {
        String::from_utf8(o.cli(&["trunk", "show", "provider"]).stdout)
            .unwrap()
            .contains("registered until")
    });
    o.phone("201").send("/dial 9030555000");
    o.wait_log("201", "Call established", 1);
    let heard = newest(&o.phone("201").b);
    assert!(
        heard_in_order(&heard, &[1200.0]),
        "201 heard {:?} by the answer",
        support::office::timeline(&heard)
    );
    o.phone("201").send("/hangup");
}
