//! RFC 3515 transfer progress, both ends of it: the transferee's NOTIFY carrying the status
//! of its new call as a `message/sipfrag` body ([`progress_notify`]), and the transferor's
//! reading of it ([`sipfrag_status`]). A provisional status keeps the implicit subscription
//! active; a final one ends it.

use crate::message::Request;
use ezk_sip_types::Name;

/// Fills `notify` (a NOTIFY in the REFER's dialog) to report `status` `reason` of the
/// referred call: `Event: refer`, `Subscription-State` (terminated once the status is
/// final), and the status line as a sipfrag body.
pub fn progress_notify(notify: &mut Request, status: u16, reason: &str) {
    notify.headers.insert(Name::from("Event"), "refer");
    notify.headers.insert(
        Name::from("Subscription-State"),
        if status >= 200 {
            "terminated;reason=noresource"
        } else {
            "active;expires=60"
        },
    );
    notify
        .headers
        .insert(Name::CONTENT_TYPE, "message/sipfrag;version=2.0");
    notify.body = format!("SIP/2.0 {status} {reason}\r\n").into_bytes().into();
}

/// The status code of a sipfrag body's status line (`SIP/2.0 180 Ringing`), if it is one.
pub fn sipfrag_status(body: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(body).ok()?;
    text.lines()
        .next()?
        .strip_prefix("SIP/2.0 ")?
        .split_whitespace()
        .next()?
        .parse::<u16>()
        .ok()
        .filter(|s| (100..700).contains(s))
}

/// Is this NOTIFY about a REFER (`Event: refer`, or its compact form `o`, with or without
/// an `id` parameter)?
pub fn is_refer_event(request: &Request) -> bool {
    crate::headers::event_package(&request.headers).as_deref() == Some("refer")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Message;

    fn notify() -> Request {
        let text = "NOTIFY sip:a@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK1\r\n\
                    Max-Forwards: 70\r\nFrom: <sip:b@127.0.0.1>;tag=b\r\nTo: <sip:a@127.0.0.1>;tag=a\r\n\
                    Call-ID: x\r\nCSeq: 2 NOTIFY\r\nContent-Length: 0\r\n\r\n";
        match Message::parse_datagram(text.as_bytes()) {
            Ok(Message::Request(r)) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn provisional_keeps_the_subscription_and_final_ends_it() {
        for (status, reason, state) in [
            (100, "Trying", "active;expires=60"),
            (180, "Ringing 1 and 1", "active;expires=60"),
            (200, "OK", "terminated;reason=noresource"),
            (503, "Service Unavailable", "terminated;reason=noresource"),
        ] {
            let mut n = notify();
            progress_notify(&mut n, status, reason);
            let printed = Message::Request(n).to_bytes();
            let Ok(Message::Request(back)) = Message::parse_datagram(&printed) else {
                panic!("it parses");
            };
            assert!(is_refer_event(&back));
            let got = back
                .headers
                .get_raw(&Name::from("Subscription-State"))
                .next()
                .map(|v| v.to_string());
            assert_eq!(got.as_deref(), Some(state), "{status}");
            assert_eq!(sipfrag_status(&back.body), Some(status));
        }
    }

    #[test]
    fn a_body_that_is_no_status_line_has_no_status() {
        for body in [
            &b""[..],
            b"hello",
            b"SIP/2.0 abc",
            b"SIP/2.0 99 Low",
            b"\xff\xfe",
        ] {
            assert_eq!(sipfrag_status(body), None, "{body:?}");
        }
    }
}
