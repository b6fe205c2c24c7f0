//! Bad input to the headless softphone (issue #7, must show 3). The test plays its server on
//! a loopback UDP socket, so it can answer and send what no well-behaved PBX would: a 503
//! to the REGISTER (with Retry-After), malformed NOTIFYs, an INVITE offering only a codec we
//! lack, a REFER to a garbage URI, a 503 to our INVITE. Each must give a clear event (and the
//! right SIP answer), and the phone must go on working afterwards: a good NOTIFY still lights
//! the lamp, a good call still connects, `status` and `quit` still work.
#![allow(clippy::unwrap_used)]

mod support;

use sip::{Message, Method, Request, Response};
use std::io::Write;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;
use support::{expect, softphone};

/// The test's end of the SIP conversation.
struct Server {
    sock: UdpSocket,
    /// The phone's SIP address.
    phone: SocketAddr,
    seq: u32,
}

impl Server {
    fn addr(&self) -> SocketAddr {
        self.sock.local_addr().unwrap()
    }

    fn recv_raw(&self) -> String {
        let mut buf = [0u8; 8192];
        let (n, _) = self.sock.recv_from(&mut buf).expect("the phone went quiet");
        String::from_utf8_lossy(&buf[..n]).to_string()
    }

    fn recv(&self) -> Message {
        Message::parse_datagram(self.recv_raw().as_bytes()).unwrap()
    }

    /// The next request with this method (answers and other requests are passed over).
    fn request(&self, method: Method) -> Request {
        loop {
            if let Message::Request(r) = self.recv()
                && r.method == method
            {
                return r;
            }
        }
    }

    /// The next final answer to a request with this CSeq method.
    fn response(&self, method: Method) -> Response {
        loop {
            if let Message::Response(r) = self.recv()
                && r.status >= 200
                && r.cseq().is_some_and(|c| c.method == method)
            {
                return r;
            }
        }
    }

    fn send(&self, text: &str) {
        self.sock.send_to(text.as_bytes(), self.phone).unwrap();
    }

    fn reply(&self, r: &Request, status: u16, reason: &str, extra: &[(&str, &str)]) {
        let mut resp = r.make_response(status, reason);
        if resp.headers.get_raw(&sip::types::Name::TO).next().is_some() && r.to_tag().is_none() {
            resp.set_to_tag("srv");
        }
        for (k, v) in extra {
            resp.headers.insert(sip::types::Name::from(*k), *v);
        }
        self.sock.send_to(&resp.to_bytes(), self.phone).unwrap();
    }

    /// A request to the phone: `first` is the request line's method and URI user, `headers`
    /// the rest (Via, CSeq, Max-Forwards and Content-Length are added).
    fn send_request(&mut self, method: &str, call_id: &str, headers: &str, body: &str) {
        self.seq += 1;
        let me = self.addr();
        let text = format!(
            "{method} sip:201@{phone} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-t{seq}\r\n\
             Max-Forwards: 70\r\nCall-ID: {call_id}\r\nCSeq: {seq} {method}\r\n{headers}\
             Content-Length: {len}\r\n\r\n{body}",
            phone = self.phone,
            seq = self.seq,
            len = body.len()
        );
        self.send(&text);
    }
}

/// The phone's process, its events, its stdin, the test's server and the work folder.
type Started = (
    support::Kill,
    std::sync::mpsc::Receiver<serde_json::Value>,
    std::process::ChildStdin,
    Server,
    tempfile::TempDir,
);

fn sdp(rtp: u16, payload: &str, rtpmap: &str) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {rtp} RTP/AVP {payload}\r\n{rtpmap}a=sendrecv\r\n"
    )
}

/// The phone with one line whose server is the test's socket; it has sent its first
/// REGISTER (not answered yet).
fn start() -> Started {
    start_with("")
}

/// Like [`start`], with `extra` lines in the account.
fn start_with(extra: &str) -> Started {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[[account]]\nnumber = \"201\"\nuser_id = \"u201\"\npassword = \"pw\"\n\
         server = \"127.0.0.1\"\nport = {}\nregistration_expiry = 600\n{extra}\n",
        sock.local_addr().unwrap().port()
    );
    let (phone, rx, stdin) = softphone(dir.path(), "phone", &config);
    let ready = expect(&rx, "ready");
    let srv = Server {
        sock,
        phone: ready["sip"].as_str().unwrap().parse().unwrap(),
        seq: 100,
    };
    (phone, rx, stdin, srv, dir)
}

fn message(event: &serde_json::Value) -> String {
    event["message"].as_str().unwrap_or_default().to_string()
}

#[test]
fn bad_input_gets_clear_events_and_the_phone_goes_on() {
    let (mut phone, rx, mut stdin, mut srv, _dir) = start();
    let rtp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let rtp_port = rtp.local_addr().unwrap().port();

    // A 503 to the REGISTER: a clear failure, and a new try after the Retry-After.
    let reg = srv.request(Method::Register);
    srv.reply(&reg, 503, "Service Unavailable", &[("Retry-After", "1")]);
    let failed = expect(&rx, "registration_failed");
    assert_eq!(
        (failed["status"].as_u64(), failed["retry_in"].as_u64()),
        (Some(503), Some(1)),
        "{failed}"
    );
    let reg = srv.request(Method::Register);
    srv.reply(&reg, 200, "OK", &[("Expires", "600")]);
    expect(&rx, "registered");
    let sub = srv.request(Method::Subscribe);
    srv.reply(&sub, 489, "Bad Event", &[]);
    assert!(message(&expect(&rx, "error")).contains("subscription refused (489)"));

    let mwi = "From: <sip:pbx@127.0.0.1>;tag=n1\r\nTo: <sip:201@127.0.0.1>\r\n\
               Event: message-summary\r\nContent-Type: application/simple-message-summary\r\n";
    // A message summary with nonsense counts: 400, and the event says what is wrong.
    srv.send_request(
        "NOTIFY",
        "mwi-1",
        mwi,
        "Messages-Waiting: yes\r\nVoice-Message: lots/none\r\n",
    );
    assert_eq!(srv.response(Method::Notify).status, 400);
    let e = message(&expect(&rx, "error"));
    assert!(
        e.contains("malformed message-summary") && e.contains("lots/none"),
        "{e}"
    );
    // A NOTIFY for an event nobody subscribed to: 489 Bad Event.
    srv.send_request(
        "NOTIFY",
        "mwi-2",
        "From: <sip:pbx@127.0.0.1>;tag=n2\r\nTo: <sip:201@127.0.0.1>\r\nEvent: presence\r\n",
        "",
    );
    assert_eq!(srv.response(Method::Notify).status, 489);
    assert!(message(&expect(&rx, "error")).contains("event presence"));
    // A NOTIFY that is not even SIP (its CSeq has no number): the transport answers 400.
    srv.send(&format!(
        "NOTIFY sip:201@{} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bK-bad\r\n\
         From: <sip:pbx@127.0.0.1>;tag=n3\r\nTo: <sip:201@127.0.0.1>\r\nCall-ID: mwi-3\r\n\
         CSeq: many NOTIFY\r\nContent-Length: 0\r\n\r\n",
        srv.phone,
        srv.addr()
    ));
    // (Its 400 repeats the broken CSeq, so it is read as text.)
    let answer = srv.recv_raw();
    assert!(answer.starts_with("SIP/2.0 400"), "{answer}");
    // A good one is still taken.
    srv.send_request(
        "NOTIFY",
        "mwi-4",
        mwi,
        "Messages-Waiting: yes\r\nVoice-Message: 3/1\r\n",
    );
    assert_eq!(srv.response(Method::Notify).status, 200);
    let lamp = expect(&rx, "mwi");
    assert_eq!(
        (lamp["new"].as_u64(), lamp["old"].as_u64()),
        (Some(3), Some(1))
    );

    // An INVITE offering only G.729: 488 with a Warning, before anything rings.
    let caller = format!(
        "From: \"Far\" <sip:202@127.0.0.1>;tag=c1\r\nTo: <sip:201@127.0.0.1>\r\n\
         Contact: <sip:202@{}>\r\nContent-Type: application/sdp\r\n",
        srv.addr()
    );
    srv.send_request(
        "INVITE",
        "call-1",
        &caller,
        &sdp(rtp_port, "18", "a=rtpmap:18 G729/8000\r\n"),
    );
    let refused = srv.response(Method::Invite);
    assert_eq!(refused.status, 488);
    assert!(
        refused
            .headers
            .get_raw(&sip::types::Name::from("Warning"))
            .next()
            .is_some_and(|w| w.starts_with("305")),
        "{refused:?}"
    );
    let ev = expect(&rx, "refused");
    assert_eq!(ev["status"], 488);
    assert!(ev["reason"].as_str().unwrap().contains("G729"), "{ev}");
    // An INVITE whose SDP does not parse: 400.
    srv.send_request("INVITE", "call-2", &caller, "v=0\r\nthis is not SDP\r\n");
    assert_eq!(srv.response(Method::Invite).status, 400);
    assert_eq!(expect(&rx, "refused")["status"], 400);

    // A good call still comes in and connects.
    srv.send_request(
        "INVITE",
        "call-3",
        &caller,
        &sdp(rtp_port, "0", "a=rtpmap:0 PCMU/8000\r\n"),
    );
    let inc = expect(&rx, "incoming");
    assert_eq!(
        (inc["from"].as_str(), inc["display"].as_str()),
        (Some("202"), Some("Far"))
    );
    writeln!(stdin, "answer").unwrap();
    let ok = srv.response(Method::Invite);
    assert_eq!(ok.status, 200);
    let tag = sip::headers::tag(ok.headers.get_raw(&sip::types::Name::TO).next().unwrap()).unwrap();
    expect(&rx, "established");
    let in_call = format!(
        "From: \"Far\" <sip:202@127.0.0.1>;tag=c1\r\nTo: <sip:201@127.0.0.1>;tag={tag}\r\n\
         Contact: <sip:202@{}>\r\n",
        srv.addr()
    );
    srv.send_request("ACK", "call-3", &in_call, "");
    // A REFER to something that is no SIP URI: 400, and the call stays up.
    srv.send_request(
        "REFER",
        "call-3",
        &format!("{in_call}Refer-To: <not a uri at all>\r\n"),
        "",
    );
    assert_eq!(srv.response(Method::Refer).status, 400);
    assert!(message(&expect(&rx, "error")).contains("REFER"));
    // A transfer NOTIFY whose body is no status line: 400.
    srv.send_request(
        "NOTIFY",
        "call-3",
        &format!("{in_call}Event: refer\r\nContent-Type: message/sipfrag\r\n"),
        "hello\r\n",
    );
    assert_eq!(srv.response(Method::Notify).status, 400);
    assert!(message(&expect(&rx, "error")).contains("no SIP status line"));
    writeln!(stdin, "status").unwrap();
    let st = expect(&rx, "status");
    assert_eq!(st["calls"].as_array().unwrap().len(), 1, "{st}");
    writeln!(stdin, "hangup").unwrap();
    let bye = srv.request(Method::Bye);
    srv.reply(&bye, 200, "OK", &[]);
    expect(&rx, "ended");

    // A 503 to our INVITE ends the call with that status.
    writeln!(stdin, "dial 299").unwrap();
    let inv = srv.request(Method::Invite);
    srv.reply(&inv, 503, "Service Unavailable", &[]);
    let ended = expect(&rx, "ended");
    assert_eq!(ended["status"], 503, "{ended}");
    srv.request(Method::Ack);

    // And the phone still answers commands and leaves cleanly.
    writeln!(stdin, "quit").unwrap();
    let unreg = srv.request(Method::Register);
    srv.reply(&unreg, 200, "OK", &[]);
    expect(&rx, "quit");
    assert!(phone.0.wait().unwrap().success());
}

/// An INVITE without SDP (late offer): the phone offers in its 200 and takes the answer from
/// the ACK, and then its RTP comes to the address that answer names.
#[test]
fn late_offer_is_answered_in_the_ack() {
    let (_phone, rx, mut stdin, mut srv, _dir) = start();
    let reg = srv.request(Method::Register);
    srv.reply(&reg, 200, "OK", &[("Expires", "600")]);
    expect(&rx, "registered");
    let rtp = UdpSocket::bind("127.0.0.1:0").unwrap();
    rtp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let caller = format!(
        "From: <sip:202@127.0.0.1>;tag=c1\r\nTo: <sip:201@127.0.0.1>\r\n\
         Contact: <sip:202@{}>\r\n",
        srv.addr()
    );
    srv.send_request("INVITE", "late-1", &caller, "");
    expect(&rx, "incoming");
    writeln!(stdin, "answer").unwrap();
    let ok = srv.response(Method::Invite);
    assert_eq!(ok.status, 200);
    let offer = String::from_utf8_lossy(&ok.body).to_string();
    assert!(
        offer.contains("m=audio") && offer.contains("PCMU"),
        "{offer}"
    );
    let tag = sip::headers::tag(ok.headers.get_raw(&sip::types::Name::TO).next().unwrap()).unwrap();
    let answer = sdp(
        rtp.local_addr().unwrap().port(),
        "0",
        "a=rtpmap:0 PCMU/8000\r\n",
    );
    srv.seq -= 1; // the ACK has the INVITE's CSeq number
    srv.send_request(
        "ACK",
        "late-1",
        &format!(
            "From: <sip:202@127.0.0.1>;tag=c1\r\nTo: <sip:201@127.0.0.1>;tag={tag}\r\n\
             Content-Type: application/sdp\r\n"
        ),
        &answer,
    );
    let mut buf = [0u8; 2048];
    let (n, _) = rtp
        .recv_from(&mut buf)
        .expect("no RTP after the ACK's answer");
    assert_eq!((n, buf[1] & 0x7f), (12 + 160, 0), "a 20 ms PCMU packet");
}

/// Over UDP our 200 to an INVITE is sent again (after 0.5 s, 1 s, …) until the ACK comes, and
/// not after it: a lost 200 or ACK does not leave the caller without an answer.
#[test]
fn our_200_is_sent_again_until_the_ack() {
    let (_phone, rx, mut stdin, mut srv, _dir) = start();
    let reg = srv.request(Method::Register);
    srv.reply(&reg, 200, "OK", &[("Expires", "600")]);
    expect(&rx, "registered");
    let rtp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let caller = format!(
        "From: <sip:202@127.0.0.1>;tag=c2\r\nTo: <sip:201@127.0.0.1>\r\n\
         Contact: <sip:202@{}>\r\nContent-Type: application/sdp\r\n",
        srv.addr()
    );
    let offer = sdp(rtp.local_addr().unwrap().port(), "0", "");
    srv.send_request("INVITE", "rexmit-1", &caller, &offer);
    expect(&rx, "incoming");
    writeln!(stdin, "answer").unwrap();
    let first = srv.response(Method::Invite);
    assert_eq!(first.status, 200);
    // No ACK yet: the same 200 comes again.
    let again = srv.response(Method::Invite);
    assert_eq!(again.status, 200);
    assert_eq!(
        again.to_bytes(),
        first.to_bytes(),
        "the retransmission is the same 200"
    );
    let tag =
        sip::headers::tag(first.headers.get_raw(&sip::types::Name::TO).next().unwrap()).unwrap();
    srv.seq -= 1; // the ACK has the INVITE's CSeq number
    srv.send_request(
        "ACK",
        "rexmit-1",
        &format!("From: <sip:202@127.0.0.1>;tag=c2\r\nTo: <sip:201@127.0.0.1>;tag={tag}\r\n"),
        "",
    );
    // After the ACK, nothing more for 3 s (the next retransmission would have been due
    // within 2 s).
    srv.sock
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let mut buf = [0u8; 8192];
    while let Ok((n, _)) = srv.sock.recv_from(&mut buf) {
        let text = String::from_utf8_lossy(&buf[..n]);
        assert!(
            !text.starts_with("SIP/2.0 200"),
            "a 200 came after the ACK:\n{text}"
        );
    }
}

/// The message-summary subscription is renewed in its dialog at 80% of the time the server
/// granted; a 481 to the renewal makes the phone subscribe afresh.
#[test]
fn the_message_subscription_is_renewed_before_it_expires() {
    let (_phone, rx, _stdin, srv, _dir) = start();
    let reg = srv.request(Method::Register);
    srv.reply(&reg, 200, "OK", &[("Expires", "600")]);
    expect(&rx, "registered");
    let first = srv.request(Method::Subscribe);
    let t0 = std::time::Instant::now();
    let contact = format!("<sip:mwi@{}>", srv.addr());
    srv.reply(
        &first,
        200,
        "OK",
        &[("Expires", "2"), ("Contact", &contact)],
    );
    let renewal = srv.request(Method::Subscribe);
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_millis(1200) && waited < Duration::from_millis(2000),
        "renewed after {waited:?} of 2 s"
    );
    assert_eq!(call_id(&renewal), call_id(&first), "in the same dialog");
    assert_eq!(renewal.to_tag().as_deref(), Some("srv"));
    assert!(renewal.cseq().unwrap().seq > first.cseq().unwrap().seq);
    srv.reply(&renewal, 481, "Call/Transaction Does Not Exist", &[]);
    let fresh = srv.request(Method::Subscribe);
    assert!(fresh.to_tag().is_none(), "a new subscription");
    assert_ne!(call_id(&fresh), call_id(&first));
}

fn call_id(r: &Request) -> String {
    r.headers
        .get_raw(&sip::types::Name::CALL_ID)
        .next()
        .map(|v| v.to_string())
        .unwrap_or_default()
}

/// Sends `r` to the phone with `sdp` as its body.
fn reply_with_sdp(srv: &Server, r: &Request, status: u16, reason: &str, sdp: &str) {
    let mut resp = r.make_response(status, reason);
    resp.set_to_tag("srv");
    resp.headers.insert(
        sip::types::Name::CONTACT,
        format!("<sip:300@{}>", srv.addr()),
    );
    resp.headers
        .insert(sip::types::Name::CONTENT_TYPE, "application/sdp");
    resp.body = sdp.to_string().into_bytes().into();
    srv.sock.send_to(&resp.to_bytes(), srv.phone).unwrap();
}

/// Intercom: an INVITE asking to be answered at once (Call-Info answer-after=0) is answered
/// without a key press when the line's own server sends it; the same request from anyone
/// else only rings, with its Alert-Info shown as the distinctive ring.
#[test]
fn intercom_is_answered_by_itself_only_from_the_server() {
    let (_phone, rx, mut stdin, mut srv, _dir) = start();
    let reg = srv.request(Method::Register);
    srv.reply(&reg, 200, "OK", &[("Expires", "600")]);
    expect(&rx, "registered");
    let rtp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let offer = sdp(rtp.local_addr().unwrap().port(), "0", "");
    let headers = format!(
        "From: <sip:202@127.0.0.1>;tag=i1\r\nTo: <sip:201@127.0.0.1>\r\n\
         Contact: <sip:202@{}>\r\nCall-Info: <sip:127.0.0.1>;answer-after=0\r\n\
         Content-Type: application/sdp\r\n",
        srv.addr()
    );
    srv.send_request("INVITE", "intercom-1", &headers, &offer);
    let inc = expect(&rx, "incoming");
    assert_eq!(inc["auto_answer"], true, "{inc}");
    expect(&rx, "established");
    assert_eq!(srv.response(Method::Invite).status, 200);
    writeln!(stdin, "hangup").unwrap();
    expect(&rx, "ended");

    // The same from a stranger: it rings and waits.
    let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
    stranger
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let me = stranger.local_addr().unwrap();
    let invite = format!(
        "INVITE sip:201@{phone} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-x1\r\n\
         Max-Forwards: 70\r\nCall-ID: intercom-2\r\nCSeq: 1 INVITE\r\n\
         From: <sip:666@{me}>;tag=x\r\nTo: <sip:201@127.0.0.1>\r\nContact: <sip:666@{me}>\r\n\
         Answer-Mode: Auto\r\nAlert-Info: <http://127.0.0.1/ring2.wav>\r\n\
         Content-Type: application/sdp\r\nContent-Length: {len}\r\n\r\n{offer}",
        phone = srv.phone,
        len = offer.len()
    );
    stranger.send_to(invite.as_bytes(), srv.phone).unwrap();
    let inc = expect(&rx, "incoming");
    assert_eq!(inc["auto_answer"], false, "{inc}");
    assert_eq!(inc["alert_info"], "<http://127.0.0.1/ring2.wav>");
    let mut buf = [0u8; 4096];
    while let Ok((n, _)) = stranger.recv_from(&mut buf) {
        let text = String::from_utf8_lossy(&buf[..n]);
        assert!(!text.starts_with("SIP/2.0 200"), "a stranger got an answer");
    }
    writeln!(stdin, "reject").unwrap();
    assert_eq!(expect(&rx, "ended")["status"], 486);
}

/// A 183 with SDP starts the audio before the answer (announcements, ringback from the far
/// end); the 200 then confirms the call without starting it twice.
#[test]
fn early_media_plays_before_the_answer() {
    let (_phone, rx, mut stdin, srv, _dir) = start();
    let reg = srv.request(Method::Register);
    srv.reply(&reg, 200, "OK", &[("Expires", "600")]);
    expect(&rx, "registered");
    let rtp = UdpSocket::bind("127.0.0.1:0").unwrap();
    rtp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    writeln!(stdin, "dial 300").unwrap();
    let invite = srv.request(Method::Invite);
    let answer = sdp(
        rtp.local_addr().unwrap().port(),
        "0",
        "a=rtpmap:0 PCMU/8000\r\n",
    );
    reply_with_sdp(&srv, &invite, 183, "Session Progress", &answer);
    expect(&rx, "early_media");
    let mut buf = [0u8; 2048];
    let (n, _) = rtp.recv_from(&mut buf).expect("no RTP during early media");
    assert_eq!(buf[1] & 0x7f, 0, "PCMU, {n} bytes");
    reply_with_sdp(&srv, &invite, 200, "OK", &answer);
    expect(&rx, "established");
    let ack = srv.request(Method::Ack);
    assert_eq!(ack.cseq().unwrap().seq, invite.cseq().unwrap().seq);
    // Still one stream, on the same port.
    let (n, _) = rtp.recv_from(&mut buf).expect("no RTP after the answer");
    assert_eq!(n, 12 + 160);
}

/// The phone with `extra` added to its account, registered to the test's socket.
fn start_registered(extra: &str) -> Started {
    let started = start_with(extra);
    let reg = started.3.request(Method::Register);
    started.3.reply(&reg, 200, "OK", &[("Expires", "600")]);
    expect(&started.1, "registered");
    started
}

/// With `dtmf = "info"` each digit goes as a SIP INFO (application/dtmf-relay) in the call;
/// a digit the other side sends by INFO is reported, and an INFO with no usable digit is
/// answered 400 and reported, the call going on.
#[test]
fn dtmf_by_sip_info_both_ways() {
    let (_phone, rx, mut stdin, mut srv, _dir) = start_registered("dtmf = \"info\"");
    let rtp = UdpSocket::bind("127.0.0.1:0").unwrap();
    writeln!(stdin, "dial 300").unwrap();
    let invite = srv.request(Method::Invite);
    let answer = sdp(rtp.local_addr().unwrap().port(), "0", "");
    reply_with_sdp(&srv, &invite, 200, "OK", &answer);
    expect(&rx, "established");
    srv.request(Method::Ack);

    writeln!(stdin, "dtmf 5#").unwrap();
    for want in ["Signal=5", "Signal=#"] {
        let info = srv.request(Method::Info);
        let body = String::from_utf8_lossy(&info.body).to_string();
        assert!(body.starts_with(want), "{body}");
        assert_eq!(call_id(&info), call_id(&invite), "in the call's dialog");
        srv.reply(&info, 200, "OK", &[]);
    }

    let our_tag = sip::headers::tag(
        invite
            .headers
            .get_raw(&sip::types::Name::FROM)
            .next()
            .unwrap(),
    )
    .unwrap();
    let dialog = format!(
        "From: <sip:300@127.0.0.1>;tag=srv\r\nTo: <sip:201@127.0.0.1>;tag={our_tag}\r\n\
         Content-Type: application/dtmf-relay\r\n"
    );
    let cid = call_id(&invite);
    srv.send_request("INFO", &cid, &dialog, "Signal=7\r\nDuration=100\r\n");
    assert_eq!(srv.response(Method::Info).status, 200);
    let got = expect(&rx, "dtmf_received");
    assert_eq!(
        (got["digit"].as_str(), got["by"].as_str()),
        (Some("7"), Some("info"))
    );
    srv.send_request("INFO", &cid, &dialog, "Signal=xyz\r\n");
    assert_eq!(srv.response(Method::Info).status, 400);
    assert!(message(&expect(&rx, "error")).contains("INFO"));
    writeln!(stdin, "status").unwrap();
    let status = expect(&rx, "status");
    assert_eq!(status["calls"][0]["state"], "established", "{status}");
}

/// A line with a backup server: when its registrar answers 503 it registers with the backup
/// at once, and its calls go there.
#[test]
fn a_failed_registrar_hands_the_line_to_its_backup() {
    let backup = UdpSocket::bind("127.0.0.1:0").unwrap();
    backup
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let port = backup.local_addr().unwrap().port();
    let (_phone, rx, mut stdin, srv, _dir) = start_with(&format!(
        "backup_server = \"127.0.0.1\"\nbackup_port = {port}"
    ));
    let reg = srv.request(Method::Register);
    srv.reply(&reg, 503, "Service Unavailable", &[]);
    let failed = expect(&rx, "registration_failed");
    assert_eq!(failed["status"], 503);
    let f = expect(&rx, "failover");
    assert_eq!(f["server"], format!("127.0.0.1:{port}"));
    let b = Server {
        sock: backup,
        phone: srv.phone,
        seq: 200,
    };
    let reg = b.request(Method::Register);
    b.reply(&reg, 200, "OK", &[("Expires", "600")]);
    expect(&rx, "registered");
    writeln!(stdin, "dial 300").unwrap();
    let invite = b.request(Method::Invite);
    assert_eq!(invite.uri.user(), Some("300"));
}

/// Listening on every interface (the default `--sip 0.0.0.0:0`), the phone names the address
/// it reaches its server from in Contact, Via and SDP — never 0.0.0.0, which the other
/// side's SDP would read as "on hold".
#[test]
fn listening_everywhere_names_a_real_address() {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("phone.toml");
    std::fs::write(
        &path,
        format!(
            "[[account]]\nnumber = \"201\"\npassword = \"pw\"\nserver = \"127.0.0.1\"\nport = {}\n",
            sock.local_addr().unwrap().port()
        ),
    )
    .unwrap();
    let mut child = support::Kill(
        std::process::Command::new(env!("CARGO_BIN_EXE_softphone"))
            .args(["--headless", "--config"])
            .arg(&path)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let rx = support::events(&mut child.0);
    let mut stdin = child.0.stdin.take().unwrap();
    let ready = expect(&rx, "ready");
    let sip: SocketAddr = ready["sip"].as_str().unwrap().parse().unwrap();
    assert_eq!(sip.ip().to_string(), "127.0.0.1", "{ready}");
    let srv = Server {
        sock,
        phone: sip,
        seq: 100,
    };
    let reg = srv.request(Method::Register);
    let header = |r: &Request, n: sip::types::Name| {
        r.headers
            .get_raw(&n)
            .next()
            .map(|v| v.to_string())
            .unwrap_or_default()
    };
    let contact = header(&reg, sip::types::Name::CONTACT);
    assert!(contact.contains("@127.0.0.1:"), "Contact: {contact}");
    assert!(header(&reg, sip::types::Name::VIA).contains("127.0.0.1"));
    srv.reply(&reg, 200, "OK", &[("Expires", "600")]);
    expect(&rx, "registered");
    writeln!(stdin, "dial 300").unwrap();
    let invite = srv.request(Method::Invite);
    let offer = String::from_utf8_lossy(&invite.body).to_string();
    assert!(
        offer.contains("c=IN IP4 127.0.0.1") && !offer.contains("0.0.0.0"),
        "{offer}"
    );
}
