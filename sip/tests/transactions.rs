//! Transaction layer on a virtual clock (RFC 3261 §17, RFC 6026), via `sip::sim::SimNet`.
//!
//! Scenarios: INVITE client Timer A doubling and Timer B giving the TU a 408 (§17.1.1.2);
//! non-INVITE Timers E (capped at T2) and F (§17.1.2.2); no retransmissions over TCP; the
//! server re-sending its final response to a retransmitted request (§17.2.1, §17.2.2); the ACK
//! to a non-2xx absorbed and ending Timer G (§17.2.1); CANCEL finding its INVITE (§9.2) and
//! held until a provisional response (§9.1); merged requests (§8.2.2.2); RFC 2543 matching
//! without a magic cookie (§17.2.3); 2xx retransmissions reaching the TU (RFC 6026); new
//! requests shed with 503 and Retry-After while the TU is overloaded (§21.5.4).
#![allow(clippy::unwrap_used)]

use sip::sim::SimNet;
use sip::transaction::{TimerConfig, TransportKind, TsxEvent};
use sip::{Message, Method, build};
use std::net::SocketAddr;
use std::time::Duration;

const A: &str = "127.0.0.1:5070";
const B: &str = "127.0.0.1:5080";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn net(transport: TransportKind) -> (SimNet, usize, usize) {
    let mut net = SimNet::new(transport);
    let a = net.add(addr(A), TimerConfig::default());
    let b = net.add(addr(B), TimerConfig::default());
    (net, a, b)
}

fn request(method: Method, transport: TransportKind) -> sip::Request {
    build::request(
        method,
        "sip:202@127.0.0.1:5080",
        "sip:201@127.0.0.1",
        "sip:202@127.0.0.1",
        transport,
        addr(A),
    )
    .unwrap()
}

/// A sends `method` to B; returns B's server transaction key and the request, as B's TU
/// sees it 10 ms later.
fn deliver(
    net: &mut SimNet,
    a: usize,
    b: usize,
    method: Method,
) -> (sip::transaction::TsxKey, sip::Request) {
    let now = net.now();
    let peer = net.peer(b);
    net.layer(a)
        .send_request(now, request(method, TransportKind::Udp), peer)
        .unwrap();
    net.run_for(Duration::from_millis(10));
    let TsxEvent::Request { key, request, .. } = net.events(b).remove(0) else {
        panic!("B got no request")
    };
    (key, request)
}

/// Times (ms since start) at which node `from` sent messages whose start line begins with `p`.
fn sends(net: &SimNet, from: &str, p: &str) -> Vec<u128> {
    let start = net.now() - net.elapsed();
    net.log
        .iter()
        .filter(|s| s.from == addr(from) && s.first_line().starts_with(p))
        .map(|s| (s.at - start).as_millis())
        .collect()
}

fn responses(events: &[TsxEvent]) -> Vec<u16> {
    events
        .iter()
        .filter_map(|e| match e {
            TsxEvent::Response { response, .. } => Some(response.status),
            _ => None,
        })
        .collect()
}

#[test]
fn invite_client_timer_a_doubles_and_timer_b_gives_408() {
    let (mut net, a, _b) = net(TransportKind::Udp);
    net.set_drop(|_, _, _, _| true); // the callee is unreachable
    let now = net.now();
    let peer = net.peer(1);
    net.layer(a)
        .send_request(now, request(Method::Invite, TransportKind::Udp), peer)
        .unwrap();
    net.run_for(Duration::from_secs(40));
    // T1 = 500 ms: intervals 0.5, 1, 2, 4, 8, 16 s; Timer B = 64·T1 = 32 s.
    assert_eq!(
        sends(&net, A, "INVITE"),
        vec![0, 500, 1500, 3500, 7500, 15500, 31500]
    );
    let events = net.events(a);
    assert_eq!(responses(&events), vec![408]);
    assert!(net.layer(a).is_empty(), "transaction terminated");
}

#[test]
fn timer_a_stops_after_a_provisional_response() {
    let (mut net, a, b) = net(TransportKind::Udp);
    let now = net.now();
    let peer = net.peer(b);
    net.layer(a)
        .send_request(now, request(Method::Invite, TransportKind::Udp), peer)
        .unwrap();
    net.run_for(Duration::from_secs(60));
    // B's TU said nothing, so B sent 100 Trying after 200 ms, before Timer A fired: A sent
    // the INVITE once and waits in Proceeding (no Timer B).
    assert_eq!(
        sends(&net, B, "SIP/2.0 100"),
        vec![201],
        "200 ms after the INVITE arrived"
    );
    assert_eq!(sends(&net, A, "INVITE"), vec![0]);
    assert_eq!(responses(&net.events(a)), vec![100]);
    assert_eq!(net.layer(a).len(), 1);
}

#[test]
fn non_invite_timer_e_caps_at_t2_and_timer_f_gives_408() {
    let (mut net, a, _b) = net(TransportKind::Udp);
    net.set_drop(|_, _, _, _| true);
    let now = net.now();
    let peer = net.peer(1);
    net.layer(a)
        .send_request(now, request(Method::Options, TransportKind::Udp), peer)
        .unwrap();
    net.run_for(Duration::from_secs(40));
    // E: 0.5, 1, 2, then T2 = 4 s each; F = 32 s.
    assert_eq!(
        sends(&net, A, "OPTIONS"),
        vec![
            0, 500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500
        ]
    );
    assert_eq!(responses(&net.events(a)), vec![408]);
}

#[test]
fn no_retransmissions_over_tcp() {
    let (mut net, a, _b) = net(TransportKind::Tcp);
    net.set_drop(|_, _, _, _| true);
    let now = net.now();
    let peer = net.peer(1);
    net.layer(a)
        .send_request(now, request(Method::Options, TransportKind::Tcp), peer)
        .unwrap();
    net.run_for(Duration::from_secs(40));
    assert_eq!(sends(&net, A, "OPTIONS"), vec![0]);
    assert_eq!(responses(&net.events(a)), vec![408]);
}

#[test]
fn server_resends_final_response_to_a_retransmitted_request() {
    let (mut net, a, b) = net(TransportKind::Udp);
    // Lose B's first two 200s: A retransmits, B answers each retransmission from its cache.
    let mut lost = 0;
    net.set_drop(move |_, from, _, bytes| {
        let hit = from == addr(B) && bytes.starts_with(b"SIP/2.0 200") && lost < 2;
        lost += u32::from(hit);
        hit
    });
    let (key, request) = deliver(&mut net, a, b, Method::Options);
    let now = net.now();
    net.layer(b)
        .send_response(now, &key, &request.make_response(200, "OK"))
        .unwrap();
    net.run_for(Duration::from_secs(5));
    assert_eq!(sends(&net, A, "OPTIONS").len(), 3);
    assert_eq!(sends(&net, B, "SIP/2.0 200").len(), 3);
    assert!(
        net.events(b).is_empty(),
        "retransmissions are not shown to the TU"
    );
    assert_eq!(responses(&net.events(a)), vec![200]);
}

#[test]
fn ack_to_a_failure_is_absorbed_and_stops_timer_g() {
    let (mut net, a, b) = net(TransportKind::Udp);
    // A's ACK is lost twice: B retransmits 486 on Timer G and on A's re-ACKs.
    let mut acks = 0;
    net.set_drop(move |_, _, _, bytes| {
        let hit = bytes.starts_with(b"ACK") && acks < 2;
        acks += u32::from(hit);
        hit
    });
    let (key, request) = deliver(&mut net, a, b, Method::Invite);
    let mut busy = request.make_response(486, "Busy Here");
    busy.set_to_tag("b1");
    let now = net.now();
    net.layer(b).send_response(now, &key, &busy).unwrap();
    net.run_for(Duration::from_secs(40));
    // G fires at 0.5 s and 1.5 s after the 486; the third ACK gets through.
    assert_eq!(sends(&net, B, "SIP/2.0 486").len(), 3);
    assert_eq!(sends(&net, A, "ACK").len(), 3);
    assert!(
        net.events(b).is_empty(),
        "the ACK to a 486 never reaches the TU"
    );
    // The TU answered within 200 ms: no 100 Trying before the 486 (issue 15, finding 9: a
    // forged INVITE's challenge goes out alone).
    assert_eq!(responses(&net.events(a)), vec![486]);
    assert!(net.layer(a).is_empty() && net.layer(b).is_empty());
}

#[test]
fn server_invite_timer_h_reports_a_missing_ack() {
    let (mut net, a, b) = net(TransportKind::Udp);
    net.set_drop(|_, _, _, bytes| bytes.starts_with(b"ACK"));
    let (key, request) = deliver(&mut net, a, b, Method::Invite);
    let now = net.now();
    net.layer(b)
        .send_response(now, &key, &request.make_response(603, "Decline"))
        .unwrap();
    net.run_for(Duration::from_secs(40));
    assert!(matches!(
        net.events(b).as_slice(),
        [TsxEvent::Timeout { .. }]
    ));
    // G: 0.5, 1, 2, 4, 4, ... until H at 32 s.
    let g = sends(&net, B, "SIP/2.0 603");
    let gaps: Vec<u128> = g.windows(2).map(|w| w[1] - w[0]).collect();
    assert_eq!(&gaps[..4], &[500, 1000, 2000, 4000]);
    assert!(gaps[4..].iter().all(|g| *g <= 4000));
}

#[test]
fn cancel_finds_its_invite() {
    let (mut net, a, b) = net(TransportKind::Udp);
    let now = net.now();
    let peer = net.peer(b);
    let invite_key = net
        .layer(a)
        .send_request(now, request(Method::Invite, TransportKind::Udp), peer)
        .unwrap();
    net.run_for(Duration::from_millis(10));
    let TsxEvent::Request { key, request, .. } = net.events(b).remove(0) else {
        panic!()
    };
    let now = net.now();
    net.layer(a).cancel(now, &invite_key).unwrap();
    // The CANCEL waits for B's 100 Trying (§9.1), sent 200 ms after the INVITE.
    net.run_for(Duration::from_millis(300));
    let events = net.events(b);
    let [TsxEvent::Cancelled { invite, .. }] = events.as_slice() else {
        panic!("{events:?}")
    };
    assert_eq!(*invite, key);
    let mut terminated = request.make_response(487, "Request Terminated");
    terminated.set_to_tag("b2");
    let now = net.now();
    net.layer(b).send_response(now, &key, &terminated).unwrap();
    net.run_for(Duration::from_secs(1));
    let statuses = responses(&net.events(a));
    assert!(
        statuses.contains(&200) && statuses.contains(&487),
        "{statuses:?}"
    );
    assert_eq!(sends(&net, A, "ACK").len(), 1);
}

#[test]
fn cancel_without_invite_gets_481() {
    let (mut net, a, b) = net(TransportKind::Udp);
    let invite = request(Method::Invite, TransportKind::Udp);
    let cancel = sip::transaction::client::cancel_for(&invite);
    let now = net.now();
    let peer = net.peer(b);
    net.layer(a).send_request(now, cancel, peer).unwrap();
    net.run_for(Duration::from_secs(1));
    assert_eq!(responses(&net.events(a)), vec![481]);
    assert!(net.events(b).is_empty());
}

#[test]
fn cancel_waits_for_a_provisional_response() {
    let (mut net, a, b) = net(TransportKind::Udp);
    // Hold back B's 100 Trying: the CANCEL must not leave before a provisional response.
    net.set_drop(|_, from, _, bytes| from == addr(B) && bytes.starts_with(b"SIP/2.0 100"));
    let now = net.now();
    let peer = net.peer(b);
    let k = net
        .layer(a)
        .send_request(now, request(Method::Invite, TransportKind::Udp), peer)
        .unwrap();
    net.run_for(Duration::from_millis(5));
    let now = net.now();
    net.layer(a).cancel(now, &k).unwrap();
    net.run_for(Duration::from_millis(100));
    assert!(sends(&net, A, "CANCEL").is_empty());
    let TsxEvent::Request { key, request, .. } = net.events(b).remove(0) else {
        panic!()
    };
    net.clear_drop();
    let now = net.now();
    net.layer(b)
        .send_response(now, &key, &request.make_response(180, "Ringing"))
        .unwrap();
    net.run_for(Duration::from_millis(10));
    assert_eq!(sends(&net, A, "CANCEL").len(), 1);
}

#[test]
fn merged_request_gets_482() {
    let (mut net, a, b) = net(TransportKind::Udp);
    let first = request(Method::Options, TransportKind::Udp);
    // The same request arriving by another path: new branch, same From tag/Call-ID/CSeq.
    let mut second = first.clone();
    second.headers.remove(&sip::types::Name::VIA);
    second.headers.insert(
        sip::types::Name::VIA,
        build::via_value(TransportKind::Udp, addr(A), &build::new_branch()),
    );
    let now = net.now();
    let peer = net.peer(b);
    net.layer(a).send_request(now, first, peer).unwrap();
    net.layer(a).send_request(now, second, peer).unwrap();
    net.run_for(Duration::from_millis(10));
    assert_eq!(net.events(b).len(), 1, "only the first reaches the TU");
    assert_eq!(responses(&net.events(a)), vec![482]);
}

/// While the layer sheds, a new request gets 503 with Retry-After from the layer and never
/// reaches the TU (a retransmission gets the same answer, once); a request within a dialog
/// (To tag) still reaches it, and once shedding ends new requests do too.
#[test]
fn shedding_refuses_new_requests_with_503_and_lets_dialogs_through() {
    let (mut net, a, b) = net(TransportKind::Udp);
    // Lose the first 503: A retransmits, B's transaction answers the retransmission.
    let mut lost = false;
    net.set_drop(move |_, from, _, bytes| {
        let hit = from == addr(B) && bytes.starts_with(b"SIP/2.0 503") && !lost;
        lost |= hit;
        hit
    });
    net.layer(b).set_shedding(Some(2));
    let (now, peer) = (net.now(), net.peer(b));
    net.layer(a)
        .send_request(now, request(Method::Register, TransportKind::Udp), peer)
        .unwrap();
    net.run_for(Duration::from_secs(2));
    assert!(net.events(b).is_empty(), "a shed request reached the TU");
    assert_eq!(sends(&net, A, "REGISTER").len(), 2);
    assert_eq!(responses(&net.events(a)), vec![503]);
    let refusal = net.log.iter().rev().find(|s| s.from == addr(B)).unwrap();
    let text = String::from_utf8_lossy(&refusal.bytes).to_string();
    assert!(text.starts_with("SIP/2.0 503"), "{text}");
    assert!(text.contains("\r\nRetry-After: 2\r\n"), "{text}");

    // A BYE within a dialog goes through while shedding.
    let mut bye = request(Method::Bye, TransportKind::Udp);
    let mut to = bye
        .headers
        .get_raw(&sip::types::Name::TO)
        .next()
        .unwrap()
        .to_string();
    to.push_str(";tag=callee");
    bye.headers.remove(&sip::types::Name::TO);
    bye.headers.insert(sip::types::Name::TO, to);
    let (now, peer) = (net.now(), net.peer(b));
    net.layer(a).send_request(now, bye, peer).unwrap();
    net.run_for(Duration::from_millis(10));
    assert!(
        matches!(&net.events(b)[..], [TsxEvent::Request { request, .. }] if request.method == Method::Bye),
        "the BYE did not reach the TU"
    );

    // Shedding over: a new request reaches the TU again.
    net.layer(b).set_shedding(None);
    let (key, _) = deliver(&mut net, a, b, Method::Options);
    assert_eq!(key.method(), &Method::Options);
}

#[test]
fn rfc2543_request_without_cookie_matches_its_retransmission() {
    let (mut net, _a, b) = net(TransportKind::Udp);
    let raw = "OPTIONS sip:202@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070\r\n\
From: <sip:201@127.0.0.1>;tag=old\r\nTo: <sip:202@127.0.0.1>\r\nCall-ID: old-style\r\n\
CSeq: 9 OPTIONS\r\nContent-Length: 0\r\n\r\n";
    let peer = net.peer(0);
    for _ in 0..3 {
        let now = net.now();
        let msg = Message::parse_datagram(raw.as_bytes()).unwrap();
        net.layer(b).handle_message(now, msg, peer);
    }
    let events = net.events(b);
    assert_eq!(events.len(), 1, "retransmissions absorbed: {events:?}");
}

#[test]
fn invite_2xx_retransmissions_reach_the_tu() {
    let (mut net, a, b) = net(TransportKind::Udp);
    let (key, request) = deliver(&mut net, a, b, Method::Invite);
    let mut ok = request.make_response(200, "OK");
    ok.set_to_tag("b3");
    let now = net.now();
    net.layer(b).send_response(now, &key, &ok).unwrap();
    // The TU (not the transaction) retransmits the 2xx (§13.3.1.4).
    let peer_a = net.peer(a);
    net.run_for(Duration::from_millis(500));
    net.layer(b).send_stateless(peer_a, &Message::Response(ok));
    net.run_for(Duration::from_millis(10));
    assert_eq!(responses(&net.events(a)), vec![200, 200]);
}
