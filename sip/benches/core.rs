//! `cargo bench -p sip`: prints
//! - messages parsed + printed per second (an INVITE with SDP, a REGISTER with digest
//!   credentials, a 200 with Record-Route), each parsed from bytes, validated and printed;
//! - transactions per second: complete non-INVITE transactions (request printed, parsed,
//!   matched, answered, response parsed and matched) between two transaction layers wired
//!   back to back in memory, and the same for INVITE transactions answered 486 (with ACK).
//!
//! Single thread, no sockets: the CPU cost of the core itself.

use sip::transaction::{Peer, TimerConfig, TransactionLayer, TransportKind, TsxEvent};
use sip::{Message, Method, build};
use std::hint::black_box;
use std::time::{Duration, Instant};

const INVITE: &str = "INVITE sip:202@192.168.1.20:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.168.1.21:5060;branch=z9hG4bK74bf9;rport\r\n\
Max-Forwards: 70\r\nFrom: \"Front Desk\" <sip:201@office.test>;tag=9fxced76sl\r\n\
To: <sip:202@office.test>\r\nCall-ID: 3848276298220188511@192.168.1.21\r\nCSeq: 1 INVITE\r\n\
Contact: <sip:201@192.168.1.21:5060>\r\nAllow: INVITE, ACK, CANCEL, BYE, REFER, OPTIONS, INFO\r\n\
User-Agent: Cisco-CP7960G/8.0\r\nContent-Type: application/sdp\r\nContent-Length: 151\r\n\r\n\
v=0\r\no=201 1 1 IN IP4 192.168.1.21\r\ns=-\r\nc=IN IP4 192.168.1.21\r\nt=0 0\r\n\
m=audio 16384 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n";

const REGISTER: &str = "REGISTER sip:office.test SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.168.1.21:5060;branch=z9hG4bKnashds7\r\nMax-Forwards: 70\r\n\
From: <sip:201@office.test>;tag=a73kszlfl\r\nTo: <sip:201@office.test>\r\n\
Call-ID: 1j9FpLxk3uxtm8tn@192.168.1.21\r\nCSeq: 2 REGISTER\r\n\
Contact: <sip:201@192.168.1.21:5060>;expires=600\r\n\
Authorization: Digest username=\"u201\", realm=\"office\", nonce=\"68a1b2.0123456789abcdef.00112233445566778899aabbccddeeff\", uri=\"sip:office.test\", response=\"6629fae49393a05397450978507c4ef1\", algorithm=MD5, qop=auth, nc=00000001, cnonce=\"0a4f113b\"\r\n\
Content-Length: 0\r\n\r\n";

const OK: &str = "SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP 192.168.1.21:5060;branch=z9hG4bK74bf9;rport=5060;received=192.168.1.21\r\n\
Record-Route: <sip:pbx.office.test;lr>\r\n\
From: \"Front Desk\" <sip:201@office.test>;tag=9fxced76sl\r\nTo: <sip:202@office.test>;tag=8321234356\r\n\
Call-ID: 3848276298220188511@192.168.1.21\r\nCSeq: 1 INVITE\r\nContact: <sip:202@192.168.1.20>\r\n\
Content-Length: 0\r\n\r\n";

fn rate(label: &str, mut once: impl FnMut() -> usize) {
    for _ in 0..1000 {
        once(); // warm up
    }
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed() < Duration::from_secs(2) {
        for _ in 0..100 {
            n += once();
        }
    }
    let per_s = n as f64 / start.elapsed().as_secs_f64();
    println!("{label:<48} {per_s:>12.0} /s");
}

fn parse_print(raw: &str) -> usize {
    let msg = Message::parse_datagram(black_box(raw.as_bytes())).expect("bench message parses");
    black_box(msg.to_bytes());
    1
}

/// `batch` transactions of `method` from `a` to `b`, answered `status`.
fn transactions(
    a: &mut TransactionLayer,
    b: &mut TransactionLayer,
    method: Method,
    status: u16,
) -> usize {
    let pa = Peer::new(TransportKind::Udp, "127.0.0.1:5070".parse().expect("addr"));
    let pb = Peer::new(TransportKind::Udp, "127.0.0.1:5080".parse().expect("addr"));
    let now = Instant::now();
    let batch = 50;
    for _ in 0..batch {
        let r = build::request(
            method.clone(),
            "sip:202@127.0.0.1:5080",
            "sip:201@127.0.0.1",
            "sip:202@127.0.0.1",
            TransportKind::Udp,
            pa.addr,
        )
        .expect("request");
        a.send_request(now, r, pb).expect("send");
    }
    let mut done = 0;
    while done < batch {
        while let Some(t) = a.poll_transmit() {
            let m = Message::parse_datagram(&t.bytes).expect("parse");
            b.handle_message(now, m, pa);
        }
        while let Some(e) = b.poll_event() {
            if let TsxEvent::Request { key, request, .. } = e {
                let mut r = request.make_response(status, "Final");
                r.set_to_tag("bench");
                b.send_response(now, &key, &r).expect("respond");
            }
        }
        while let Some(t) = b.poll_transmit() {
            let m = Message::parse_datagram(&t.bytes).expect("parse");
            a.handle_message(now, m, pb);
        }
        while let Some(e) = a.poll_event() {
            if matches!(e, TsxEvent::Response { ref response, .. } if response.status >= 200) {
                done += 1;
            }
        }
    }
    // Let the wait timers (K, D, I) run out so the layers stay small.
    let later = now + Duration::from_secs(60);
    a.handle_timeout(later);
    b.handle_timeout(later);
    while a.poll_transmit().is_some() {}
    while b.poll_transmit().is_some() {}
    batch
}

fn main() {
    println!("sip core benchmark (one thread)");
    rate("parse+print INVITE with SDP", || parse_print(INVITE));
    rate("parse+print REGISTER with Authorization", || {
        parse_print(REGISTER)
    });
    rate("parse+print 200 OK with Record-Route", || parse_print(OK));
    let cfg = TimerConfig::default();
    let (mut a, mut b) = (TransactionLayer::new(cfg), TransactionLayer::new(cfg));
    rate("non-INVITE transactions (OPTIONS -> 200)", || {
        transactions(&mut a, &mut b, Method::Options, 200)
    });
    rate("INVITE transactions (INVITE -> 100, 486, ACK)", || {
        transactions(&mut a, &mut b, Method::Invite, 486)
    });
}
