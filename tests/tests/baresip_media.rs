//! Media against a real peer, baresip (Debian baresip-core), on loopback:
//! - SDES SRTP (AES_CM_128_HMAC_SHA1_80, `mediaenc=srtp-mand`) both ways: we call baresip
//!   with an RTP/SAVP offer built by `sip::sdp`, send a 440 Hz tone protected by
//!   `media::srtp`, and decrypt the 440 Hz tone baresip sends; each side's recording must
//!   show the other's tone within ±5 Hz (baresip's `sndfile` recording of what it decoded,
//!   and our own FFT of what we decrypted);
//! - DTMF: RFC 4733 events we send are reported by baresip, and a key pressed on baresip's
//!   console arrives to us as telephone-events.
//!
//! Skipped only with SIP_SKIP_PEERS=1.
#![allow(clippy::unwrap_used)]

use e2e::baresip::Baresip;
use media::analysis::dominant_frequency;
use media::dtmf::{EventReceiver, key_press};
use media::g711::Law;
use media::rtp::RtpPacket;
use media::srtp::{Crypto, SrtpSession, Suite};
use sip::dialog::Dialog;
use sip::endpoint::Endpoint;
use sip::sdp::{self, Codec, Local};
use sip::transaction::{Peer, TimerConfig, TransportKind, TsxEvent};
use sip::transport::TransportConfig;
use sip::types::Name;
use sip::{Message, Method, Response, build};
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;

fn tone_wav(path: &std::path::Path, freq: f32, secs: u32) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for n in 0..8000 * secs {
        w.write_sample(
            ((2.0 * std::f32::consts::PI * freq * n as f32 / 8000.0).sin() * 12000.0) as i16,
        )
        .unwrap();
    }
    w.finalize().unwrap();
}

async fn final_response(events: &mut sip::endpoint::Events) -> Response {
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(10), events.recv())
            .await
            .expect("no response")
            .unwrap();
        if let TsxEvent::Response { response, .. } = ev
            && response.status >= 200
        {
            return response;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srtp_audio_and_dtmf_both_ways_with_baresip() {
    if std::env::var("SIP_SKIP_PEERS").is_ok_and(|v| v == "1") {
        return;
    }
    let files = tempfile::tempdir().unwrap();
    let source = files.path().join("tone440.wav");
    tone_wav(&source, 440.0, 30);
    let bs = Baresip::start(&source, ";mediaenc=srtp-mand").unwrap();

    let (ep, mut events) = Endpoint::start(
        TransportConfig {
            udp: Some("127.0.0.1:0".parse().unwrap()),
            ..Default::default()
        },
        TimerConfig::default(),
    )
    .await
    .unwrap();
    let local = ep.local_addr(TransportKind::Udp).unwrap();
    let rtp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let ours = Crypto::generate(1, Suite::AesCm128HmacSha1_80);
    let caps = Local {
        addr: "127.0.0.1".parse().unwrap(),
        port: rtp.local_addr().unwrap().port(),
        codecs: vec![Codec::pcmu(), Codec::telephone_event()],
        direction: sdp::Direction::SendRecv,
        crypto: vec![ours.to_sdp()],
        session_id: 4711,
        version: 1,
    };
    let target = format!("sip:bob@{}", bs.sip);
    let mut invite = build::request(
        Method::Invite,
        &target,
        &format!("sip:alice@{local}"),
        &target,
        TransportKind::Udp,
        local,
    )
    .unwrap();
    invite.headers.insert(Name::CONTENT_TYPE, "application/sdp");
    invite.body = sdp::offer(&caps).into();
    let peer = Peer::new(TransportKind::Udp, bs.sip);
    ep.send_request(invite.clone(), peer).unwrap();
    let ok = final_response(&mut events).await;
    assert_eq!(ok.status, 200, "{}\n{}", ok.reason, bs.log());
    let agreed = sdp::take_answer(&sdp::parse(&ok.body).unwrap(), &caps).unwrap();
    assert!(agreed.secure, "RTP/SAVP answered");
    let theirs = Crypto::parse(&agreed.crypto[0].to_string()).unwrap();
    let remote = agreed.remote.unwrap();
    let te = agreed
        .telephone_event
        .expect("baresip accepts telephone-event");
    let mut dialog = Dialog::from_uac(&invite, &ok).unwrap();
    let via = |ep: &Endpoint| {
        build::via_value(
            TransportKind::Udp,
            ep.local_addr(TransportKind::Udp).unwrap(),
            &build::new_branch(),
        )
    };
    ep.send_stateless(
        peer,
        &Message::Request(dialog.ack(dialog.local_seq, &via(&ep))),
    );

    // Three seconds of media: our 440 Hz out; "5#9" as RFC 4733 events after one second; the
    // key 7 pressed on baresip's console after two seconds; everything baresip sends collected.
    let mut srtp = SrtpSession::new(&ours, &theirs).unwrap();
    let (mut heard, mut digits_in) = (Vec::<i16>::new(), String::new());
    let mut events_rx = EventReceiver::default();
    let (mut seq, mut ts, ssrc) = (1000u16, 160_000u32, 0x5EED_u32);
    let mut buf = vec![0u8; 2048];
    let start = Instant::now();
    let mut next_send = start;
    let mut pending_dtmf: Vec<(bool, media::dtmf::Event, u32)> = Vec::new();
    let (mut pcm, mut payload, mut decoded) = (Vec::new(), Vec::new(), Vec::new());
    let mut frame = 0u32;
    let mut pressed = false;
    while start.elapsed() < Duration::from_secs(3) {
        if Instant::now() >= next_send {
            let packet = if let Some((marker, ev, event_ts)) = pending_dtmf.first().copied() {
                pending_dtmf.remove(0);
                RtpPacket {
                    marker,
                    payload_type: te,
                    seq,
                    timestamp: event_ts,
                    ssrc,
                    payload: ev.to_bytes().to_vec(),
                    ..Default::default()
                }
            } else {
                pcm.clear();
                pcm.extend((0..160).map(|i| {
                    ((2.0 * std::f32::consts::PI * 440.0 * (frame * 160 + i) as f32 / 8000.0).sin()
                        * 12000.0) as i16
                }));
                Law::Mu.encode(&pcm, &mut payload);
                RtpPacket {
                    payload_type: 0,
                    seq,
                    timestamp: ts,
                    ssrc,
                    payload: payload.clone(),
                    ..Default::default()
                }
            };
            rtp.send_to(&srtp.protect(&packet.to_bytes()).unwrap(), remote)
                .await
                .unwrap();
            seq = seq.wrapping_add(1);
            ts = ts.wrapping_add(160);
            frame += 1;
            if frame == 50 {
                for (k, d) in "5#9".chars().enumerate() {
                    let event_ts = ts + k as u32 * 2400;
                    pending_dtmf.extend(
                        key_press(d, 100, 20, 8000)
                            .unwrap()
                            .into_iter()
                            .map(|(m, e)| (m, e, event_ts)),
                    );
                }
            }
            next_send += Duration::from_millis(20);
        }
        if !pressed && start.elapsed() > Duration::from_secs(2) {
            bs.command("7").unwrap();
            pressed = true;
        }
        if let Ok(Ok((n, _))) =
            tokio::time::timeout(Duration::from_millis(5), rtp.recv_from(&mut buf)).await
            && let Ok(plain) = srtp.unprotect(&buf[..n])
            && let Ok(p) = RtpPacket::parse(&plain)
        {
            if p.payload_type == 0 {
                Law::Mu.decode(&p.payload, &mut decoded);
                heard.extend_from_slice(&decoded);
            } else if p.payload_type == te {
                digits_in.extend(events_rx.on_packet(p.timestamp, &p.payload));
            }
        }
    }
    let bye = dialog.request(Method::Bye, &via(&ep));
    ep.send_request(bye, peer).unwrap();
    assert_eq!(final_response(&mut events).await.status, 200);

    // We heard baresip's 440 Hz through SRTP.
    assert!(
        heard.len() > 8000 * 2,
        "only {} samples decrypted\n{}",
        heard.len(),
        bs.log()
    );
    let f = dominant_frequency(&heard[4000..], 8000);
    eprintln!("we decrypted {} samples, dominant {f:.1} Hz", heard.len());
    assert!((f - 440.0).abs() <= 5.0, "we heard {f} Hz");
    // baresip heard our 440 Hz: its recording of what it decoded.
    let deadline = Instant::now() + Duration::from_secs(5);
    let samples: Vec<i16> = loop {
        let files = bs.decoded_files();
        if let Some(f) = files.first()
            && let Ok(r) = hound::WavReader::open(f)
        {
            let s: Vec<i16> = r.into_samples().filter_map(Result::ok).collect();
            if s.len() > 8000 {
                break s;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no recording from baresip: {:?}\n{}",
            bs.decoded_files(),
            bs.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let f = dominant_frequency(&samples[4000..samples.len().min(20000)], 8000);
    eprintln!(
        "baresip recorded {} samples, dominant {f:.1} Hz; digits from baresip {digits_in:?}",
        samples.len()
    );
    assert!((f - 440.0).abs() <= 5.0, "baresip heard {f} Hz");
    // DTMF both ways.
    let log = bs.log();
    for d in ["5", "#", "9"] {
        assert!(
            log.contains(&format!("received event: '{d}' (end=1)")),
            "baresip did not report {d}:\n{log}"
        );
    }
    assert!(
        digits_in.contains('7'),
        "telephone-event from baresip: {digits_in:?}\n{log}"
    );
}
