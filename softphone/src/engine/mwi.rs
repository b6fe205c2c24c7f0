//! Message waiting (RFC 3842): each line subscribes to its message-summary once registered
//! (answering one digest challenge) and renews the subscription in its dialog at 80% of the
//! time granted (subscribing afresh after a 481 or a `terminated` NOTIFY), and every NOTIFY — in that subscription, or unsolicited
//! as a Cisco-style PBX sends them — becomes an `mwi` event with the line's counts.

use super::{Engine, Event};
use sip::dialog::Dialog;
use sip::transaction::TsxKey;
use sip::types::Name;
use sip::{Method, Request, Response, build};
use std::time::{Duration, Instant};

/// A line's message-summary subscription.
#[derive(Default)]
pub(super) struct Mwi {
    /// The SUBSCRIBE in flight, and whether its one challenge was answered.
    pending: Option<(TsxKey, Request, bool)>,
    dialog: Option<Dialog>,
    /// When to renew the subscription.
    pub(super) refresh_at: Option<Instant>,
}

/// The (new, old) voice message counts of a message-summary body (RFC 3842 §5.2).
/// `Messages-Waiting: yes|no` is required; without a `Voice-Message` line, yes counts as one
/// new message. The error says what is wrong with the body.
pub(super) fn summary(body: &[u8]) -> Result<(u32, u32), String> {
    let text = std::str::from_utf8(body).map_err(|_| "the body is not UTF-8 text".to_string())?;
    let mut waiting = None;
    let mut voice = None;
    for l in text.lines() {
        let Some((k, v)) = l.split_once(':') else {
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        if k.eq_ignore_ascii_case("Messages-Waiting") {
            waiting = Some(match v.to_ascii_lowercase().as_str() {
                "yes" => true,
                "no" => false,
                _ => return Err(format!("Messages-Waiting: {v}: neither yes nor no")),
            });
        } else if k.eq_ignore_ascii_case("Voice-Message") {
            let counts = v.split_whitespace().next().unwrap_or_default();
            let parsed = counts
                .split_once('/')
                .and_then(|(n, o)| Some((n.parse().ok()?, o.parse().ok()?)));
            voice = Some(parsed.ok_or_else(|| format!("Voice-Message: {v}: not NEW/OLD counts"))?);
        }
    }
    let waiting = waiting.ok_or("no Messages-Waiting line")?;
    Ok(voice.unwrap_or((u32::from(waiting), 0)))
}

impl Engine {
    /// Subscribes line `i` to its message summary (once, after its first registration).
    pub(super) fn subscribe_mwi(&mut self, i: usize) {
        let line = &self.lines[i];
        if line.mwi.dialog.is_some() || line.mwi.pending.is_some() {
            return;
        }
        let aor = format!("sip:{}@{}", line.account.number, line.account.server);
        let Ok(r) = build::request(
            Method::Subscribe,
            &aor,
            &aor,
            &aor,
            line.peer.transport,
            self.local,
        ) else {
            return;
        };
        let peer = line.peer;
        self.send_subscribe(i, r, peer);
    }

    fn send_subscribe(&mut self, i: usize, mut r: Request, peer: sip::transaction::Peer) {
        r.headers.insert(Name::from("Event"), "message-summary");
        r.headers
            .insert(Name::ACCEPT, "application/simple-message-summary");
        r.headers.insert(Name::EXPIRES, "3600");
        if let Ok(k) = self.ep.send_request(r.clone(), peer) {
            self.lines[i].mwi.pending = Some((k, r, false));
        }
    }

    /// Renews line `i`'s subscription in its dialog (or subscribes afresh without one).
    pub(super) fn refresh_mwi(&mut self, i: usize) {
        self.lines[i].mwi.refresh_at = None;
        if self.lines[i].mwi.pending.is_some() {
            return;
        }
        let peer = self.lines[i].peer;
        let via = build::via_value(peer.transport, self.local, &build::new_branch());
        match self.lines[i].mwi.dialog.as_mut() {
            Some(d) => {
                let mut r = d.request(Method::Subscribe, &via);
                let contact = format!("<sip:{}@{}>", self.lines[i].account.number, self.local);
                r.headers.insert(Name::CONTACT, contact);
                self.send_subscribe(i, r, peer);
            }
            None => self.subscribe_mwi(i),
        }
    }

    /// The line whose SUBSCRIBE this answers, if any.
    pub(super) fn mwi_line(&self, key: &TsxKey) -> Option<usize> {
        self.lines
            .iter()
            .position(|l| l.mwi.pending.as_ref().is_some_and(|(k, _, _)| k == key))
    }

    pub(super) fn on_subscribe_response(&mut self, i: usize, response: &Response) {
        if response.status < 200 {
            return;
        }
        let Some((_, request, answered)) = self.lines[i].mwi.pending.take() else {
            return;
        };
        match response.status {
            200..=299 => {
                let granted = response
                    .headers
                    .get_raw(&Name::EXPIRES)
                    .next()
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .unwrap_or(3600);
                let mwi = &mut self.lines[i].mwi;
                if mwi.dialog.is_none() {
                    mwi.dialog = Dialog::from_uac(&request, response);
                }
                mwi.refresh_at =
                    (granted > 0).then(|| self.clock.now + Duration::from_millis(granted * 800));
            }
            // The server no longer knows the subscription: start a new one.
            481 => {
                self.lines[i].mwi.dialog = None;
                self.subscribe_mwi(i);
            }
            401 | 407 if !answered => {
                let a = &self.lines[i].account;
                let mut client = sip::auth::DigestClient::new(&a.user_id, &a.password);
                let mut again = request.clone();
                if !client.authorize(&mut again, response) {
                    return;
                }
                let seq = again.cseq().map_or(1, |c| c.seq) + 1;
                again.headers.remove(&Name::CSEQ);
                again.headers.insert(Name::CSEQ, format!("{seq} SUBSCRIBE"));
                again.headers.remove(&Name::VIA);
                let peer = self.lines[i].peer;
                again.headers.insert(
                    Name::VIA,
                    build::via_value(peer.transport, self.local, &build::new_branch()),
                );
                if let Ok(k) = self.ep.send_request(again.clone(), peer) {
                    self.lines[i].mwi.pending = Some((k, again, true));
                }
            }
            status => self.emit(Event::Error {
                message: format!(
                    "line {}: message-waiting subscription refused ({status})",
                    i + 1
                ),
            }),
        }
    }

    /// A NOTIFY outside the calls: in a line's subscription, or unsolicited to a line.
    /// Answers it and reports the counts; false when it is none of the lines'.
    pub(super) fn on_mwi_notify(&mut self, key: &TsxKey, request: &Request) -> bool {
        if sip::headers::event_package(&request.headers).as_deref() != Some("message-summary") {
            return false;
        }
        let in_dialog = sip::dialog::DialogId::of_request(request).and_then(|id| {
            self.lines
                .iter()
                .position(|l| l.mwi.dialog.as_ref().is_some_and(|d| d.id == id))
        });
        let to = request.uri.user().unwrap_or_default().to_string();
        let Some(i) = in_dialog.or_else(|| {
            (request.to_tag().is_none())
                .then(|| self.lines.iter().position(|l| l.account.number == to))
                .flatten()
        }) else {
            return false;
        };
        let terminated = sip::headers::subscription_terminated(&request.headers);
        if terminated && in_dialog.is_some() {
            // Subscribe again in a while (not at once: the server may be going down).
            self.lines[i].mwi.dialog = None;
            self.lines[i].mwi.refresh_at = Some(self.clock.now + Duration::from_secs(30));
        }
        match summary(&request.body) {
            Ok((new, old)) => {
                let _ = self
                    .ep
                    .send_response(key, &request.make_response(200, "OK"));
                self.emit(Event::Mwi {
                    line: i + 1,
                    new,
                    old,
                });
            }
            Err(e) => {
                let _ = self
                    .ep
                    .send_response(key, &request.make_response(400, "Bad message-summary body"));
                self.emit(Event::Error {
                    message: format!(
                        "line {}: a malformed message-summary NOTIFY, answered 400: {e}",
                        i + 1
                    ),
                });
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_bodies() {
        let b = b"Messages-Waiting: yes\r\nMessage-Account: sip:201@pbx\r\nVoice-Message: 2/1 (0/0)\r\n";
        assert_eq!(summary(b), Ok((2, 1)));
        assert_eq!(summary(b"Messages-Waiting: no\r\n"), Ok((0, 0)));
        assert_eq!(summary(b"Messages-Waiting: yes\r\n"), Ok((1, 0)));
        assert_eq!(
            summary(b"messages-waiting: no\r\nvoice-message:  0/0\r\n"),
            Ok((0, 0))
        );
        assert!(
            summary(b"Messages-Waiting: yes\r\nVoice-Message: x/0\r\n")
                .unwrap_err()
                .contains("x/0")
        );
        assert!(
            summary(b"Voice-Message: 1/0\r\n")
                .unwrap_err()
                .contains("Messages-Waiting")
        );
        assert!(summary(b"Messages-Waiting: perhaps\r\n").is_err());
        assert!(summary(b"\xff\xfe").is_err());
    }
}
