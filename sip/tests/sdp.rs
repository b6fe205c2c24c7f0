//! SDP offer/answer (RFC 3264) with offers shaped like real phones': codec intersection and
//! payload-type mapping (§6.1), telephone-event at an unusual payload type, a video stream
//! rejected with port 0 (§6), hold by `a=sendonly`/`a=inactive` and by RFC 2543
//! `c=0.0.0.0` (§8.4), resume, and SDES `a=crypto` carried through (RFC 4568).
#![allow(clippy::unwrap_used)]

use sip::sdp::{self, Codec, Local};
use std::net::IpAddr;

fn local(direction: sdp::Direction) -> Local {
    Local {
        addr: "127.0.0.1".parse::<IpAddr>().unwrap(),
        port: 40000,
        codecs: vec![
            Codec::opus(),
            Codec::pcma(),
            Codec::pcmu(),
            Codec::telephone_event(),
        ],
        direction,
        crypto: vec![],
        session_id: 42,
        version: 1,
    }
}

fn phone_offer(extra: &str, conn: &str) -> String {
    format!(
        "v=0\r\no=Cisco-SIPUA 1 1 IN IP4 192.0.2.10\r\ns=SIP Call\r\nc=IN IP4 {conn}\r\nt=0 0\r\n\
m=audio 16384 RTP/AVP 0 8 18 100\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:18 G729/8000\r\na=rtpmap:100 telephone-event/8000\r\na=fmtp:100 0-15\r\n{extra}\
m=video 16390 RTP/AVP 34\r\n"
    )
}

#[test]
fn answer_keeps_offer_order_and_payload_types() {
    let offer = sdp::parse(phone_offer("", "192.0.2.10").as_bytes()).unwrap();
    let (body, agreed) = sdp::answer(&offer, &local(sdp::Direction::SendRecv)).unwrap();
    let pts: Vec<u8> = agreed.codecs.iter().map(|(pt, _)| *pt).collect();
    assert_eq!(pts, vec![0, 8], "G.729 dropped, order of the offer kept");
    assert_eq!(agreed.telephone_event, Some(100));
    assert_eq!(agreed.remote, Some("192.0.2.10:16384".parse().unwrap()));
    assert_eq!(agreed.direction, sdp::Direction::SendRecv);
    assert!(!agreed.remote_hold);
    assert!(body.contains("m=audio 40000 RTP/AVP 0 8 100\r\n"), "{body}");
    assert!(body.contains("a=rtpmap:100 telephone-event/8000\r\na=fmtp:100 0-15\r\n"));
    assert!(
        body.contains("m=video 0 RTP/AVP 34\r\n"),
        "video rejected: {body}"
    );
    // The answer is itself valid SDP, and the offerer reads the same choice from it.
    let parsed = sdp::parse(body.as_bytes()).unwrap();
    let mut offerer = local(sdp::Direction::SendRecv);
    offerer.codecs = vec![Codec::pcmu(), Codec::pcma(), Codec::telephone_event()];
    let seen = sdp::take_answer(&parsed, &offerer).unwrap();
    assert_eq!(seen.codecs[0].0, 0);
    assert_eq!(seen.telephone_event, Some(100));
    assert_eq!(seen.remote, Some("127.0.0.1:40000".parse().unwrap()));
}

#[test]
fn hold_and_resume_directions() {
    for (attr, conn, ours, hold) in [
        (
            "a=sendonly\r\n",
            "192.0.2.10",
            sdp::Direction::RecvOnly,
            true,
        ),
        (
            "a=inactive\r\n",
            "192.0.2.10",
            sdp::Direction::Inactive,
            true,
        ),
        (
            "a=recvonly\r\n",
            "192.0.2.10",
            sdp::Direction::SendOnly,
            false,
        ),
        ("", "0.0.0.0", sdp::Direction::RecvOnly, true),
        (
            "a=sendrecv\r\n",
            "192.0.2.10",
            sdp::Direction::SendRecv,
            false,
        ),
    ] {
        let offer = sdp::parse(phone_offer(attr, conn).as_bytes()).unwrap();
        let (body, agreed) = sdp::answer(&offer, &local(sdp::Direction::SendRecv)).unwrap();
        assert_eq!(agreed.direction, ours, "{attr}{conn}");
        assert_eq!(agreed.remote_hold, hold, "{attr}{conn}");
        assert!(body.contains(&format!("a={}\r\n", ours.as_str())));
        if conn == "0.0.0.0" {
            assert_eq!(agreed.remote, None, "nothing is sent to 0.0.0.0");
        }
    }
    // We hold: our offer says sendonly, the phone answers recvonly, we may only send.
    let ours = local(sdp::Direction::SendOnly);
    let offer = sdp::offer(&ours);
    assert!(offer.contains("a=sendonly\r\n"));
    let answer = "v=0\r\no=p 1 2 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n\
m=audio 16384 RTP/AVP 8\r\na=recvonly\r\n";
    let agreed = sdp::take_answer(&sdp::parse(answer.as_bytes()).unwrap(), &ours).unwrap();
    assert_eq!(agreed.direction, sdp::Direction::SendOnly);
}

#[test]
fn crypto_is_carried_through() {
    let key = "1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz";
    let offer = format!(
        "v=0\r\no=b 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
m=audio 5004 RTP/SAVP 0\r\na=crypto:{key}\r\n"
    );
    let mut ours = local(sdp::Direction::SendRecv);
    ours.crypto =
        vec!["1 AES_CM_128_HMAC_SHA1_80 inline:QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0NTY3".into()];
    let (body, agreed) = sdp::answer(&sdp::parse(offer.as_bytes()).unwrap(), &ours).unwrap();
    assert!(agreed.secure);
    assert_eq!(agreed.crypto.len(), 1);
    assert_eq!(format!("{}", agreed.crypto[0]), key);
    assert!(body.contains("m=audio 40000 RTP/SAVP 0\r\n"));
    assert!(body.contains(&format!("a=crypto:{}\r\n", ours.crypto[0])));
}

#[test]
fn no_common_codec_is_an_error() {
    let offer = "v=0\r\no=x 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
m=audio 5004 RTP/AVP 18 101\r\na=rtpmap:18 G729/8000\r\na=rtpmap:101 telephone-event/8000\r\n";
    let r = sdp::answer(
        &sdp::parse(offer.as_bytes()).unwrap(),
        &local(sdp::Direction::SendRecv),
    );
    assert!(matches!(r, Err(sdp::SdpError::NoCommonCodec)));
    assert!(sdp::parse(b"v=0\r\nthis is not sdp").is_err());
}

#[test]
fn offer_uses_static_and_dynamic_payload_types() {
    let o = sdp::offer(&local(sdp::Direction::SendRecv));
    assert!(o.contains("m=audio 40000 RTP/AVP 96 8 0 101\r\n"), "{o}");
    assert!(o.contains("a=rtpmap:96 opus/48000/2\r\n"));
    sdp::parse(o.as_bytes()).unwrap();
}

/// Found by `fuzz/fuzz_targets/sdp.rs`: an offer with odd media lines (a port with a count,
/// a protocol glued to a format, formats of NUL bytes) that parses must get an answer that
/// parses too.
#[test]
fn an_answer_to_an_odd_offer_still_parses() {
    let offer = sdp::parse(include_bytes!("data/sdp-odd-media-lines.bin")).unwrap();
    if let Ok((body, _)) = sdp::answer(&offer, &local(sdp::Direction::SendRecv)) {
        assert!(sdp::parse(body.as_bytes()).is_ok(), "{body:?}");
    }
}
