//! Transfers with REFER (RFC 3515): blind (`transfer NUMBER`), attended (`transfer CALL
//! OTHER`: a REFER whose Refer-To carries Replaces (RFC 3891) naming our other call), and
//! the transferor's side of the NOTIFYs that report how it went (sipfrag): a 2xx ends our
//! call, as RFC 5589 says the transferor does. Being transferred: a REFER from the other
//! side is accepted (202), the target is called (with the Replaces it names, if any), and
//! NOTIFYs tell the transferor how that call went.

use super::{Engine, Event};
use crate::call::CallState;
use sip::headers::{ReferTo, percent_encode};
use sip::transaction::TsxKey;
use sip::types::Name;
use sip::{Method, Request, build};

impl Engine {
    /// Line `line`'s server as a URI host part: with its port unless 5060, so that a
    /// transferee without our proxy settings still reaches it.
    fn server_of(&self, line: usize) -> String {
        let a = &self.lines[line].account;
        if a.port == 5060 {
            a.server.clone()
        } else {
            format!("{}:{}", a.server, a.port)
        }
    }

    /// `transfer TARGET [CALL]` (blind) or `transfer CALL OTHER` (attended: `CALL`'s party
    /// goes to `OTHER`'s).
    pub(super) fn transfer(&mut self, call: Option<u32>, target: TransferTarget) {
        let Some(i) = self.pick(call, |c| c.state == CallState::Established) else {
            return self.no_call("transfer");
        };
        let refer_to = match &target {
            TransferTarget::Number(n) => {
                if n.starts_with("sip:") {
                    format!("<{n}>")
                } else {
                    format!("<sip:{n}@{}>", self.server_of(self.calls[i].line))
                }
            }
            TransferTarget::Call(other) => {
                let Some(o) = self
                    .calls
                    .iter()
                    .find(|c| c.id == *other && c.id != self.calls[i].id)
                else {
                    return self.no_call("transfer");
                };
                let Some(d) = &o.dialog else {
                    return self.no_call("transfer");
                };
                let target = if o.party.starts_with("sip:") {
                    o.party.clone()
                } else {
                    format!("sip:{}@{}", o.party, self.server_of(o.line))
                };
                let replaces = sip::headers::Replaces {
                    call_id: d.id.call_id.clone(),
                    to_tag: d.id.remote_tag.clone(),
                    from_tag: d.id.local_tag.clone(),
                };
                format!(
                    "<{target}?Replaces={}>",
                    percent_encode(&replaces.to_string())
                )
            }
        };
        let local = self.local;
        let number = self.lines[self.calls[i].line].account.number.clone();
        let server = self.lines[self.calls[i].line].account.server.clone();
        let c = &mut self.calls[i];
        c.consulted = match target {
            TransferTarget::Call(other) => Some(other),
            TransferTarget::Number(_) => None,
        };
        let Some(d) = c.dialog.as_mut() else {
            return;
        };
        let via = build::via_value(c.peer.transport, local, &build::new_branch());
        let mut r = d.request(Method::Refer, &via);
        r.headers.insert(Name::from("Refer-To"), refer_to);
        r.headers.insert(
            Name::from("Referred-By"),
            format!("<sip:{number}@{server}>"),
        );
        r.headers
            .insert(Name::CONTACT, format!("<sip:{number}@{local}>"));
        c.refer = self.ep.send_request(r, c.peer).ok();
    }

    /// The answer to our REFER: anything but 2xx ends the attempt.
    pub(super) fn on_refer_response(&mut self, i: usize, status: u16, reason: &str) {
        if status < 200 {
            return;
        }
        let c = &mut self.calls[i];
        c.refer = None;
        if status >= 300 {
            let id = c.id;
            self.emit(Event::TransferFailed {
                call: id,
                status,
                reason: reason.to_string(),
            });
        }
    }

    /// A NOTIFY in a call's dialog (the progress of our REFER): answered 200; a final
    /// sipfrag status ends our part — a 2xx hangs our call up.
    pub(super) fn on_notify(&mut self, i: usize, key: TsxKey, request: Request) {
        let id = self.calls[i].id;
        if !sip::refer::is_refer_event(&request) {
            let event = sip::headers::event_package(&request.headers);
            let _ = self
                .ep
                .send_response(&key, &request.make_response(489, "Bad Event"));
            return self.emit(Event::Error {
                message: format!(
                    "call {id}: a NOTIFY for {} in the call, answered 489",
                    event.map_or("no event".to_string(), |e| format!("event {e}"))
                ),
            });
        }
        let Some(status) = sip::refer::sipfrag_status(&request.body) else {
            let _ = self
                .ep
                .send_response(&key, &request.make_response(400, "Bad sipfrag body"));
            return self.emit(Event::Error {
                message: format!(
                    "call {id}: a transfer NOTIFY whose body is no SIP status line, answered 400"
                ),
            });
        };
        let _ = self
            .ep
            .send_response(&key, &request.make_response(200, "OK"));
        if status < 200 {
            return;
        }
        if status < 300 {
            let consulted = self.calls[i].consulted;
            self.emit(Event::Transferred { call: id });
            self.hang_up(i);
            // A transferee that does not send Replaces leaves our consultation call up:
            // we end it ourselves (RFC 5589 §7 lets the transferor do so).
            if let Some(other) = consulted
                && let Some(j) = self
                    .calls
                    .iter()
                    .position(|c| c.id == other && c.state == CallState::Established)
            {
                self.hang_up(j);
            }
        } else {
            self.emit(Event::TransferFailed {
                call: id,
                status,
                reason: String::from_utf8_lossy(&request.body)
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_string(),
            });
        }
    }
}

/// Where a transfer sends the other party.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferTarget {
    Number(String),
    /// Our other call's party (attended).
    Call(u32),
}

impl Engine {
    /// The established call an INVITE's Replaces header names (RFC 3891 §3: its Call-ID,
    /// our tag as `to-tag`, the other side's as `from-tag`).
    pub(super) fn replaced_call(&self, invite: &Request) -> Option<u32> {
        let value = invite.headers.get_raw(&Name::from("Replaces")).next()?;
        let r = sip::headers::Replaces::parse(value.as_str())?;
        self.calls
            .iter()
            .find(|c| {
                c.state == CallState::Established
                    && c.dialog.as_ref().is_some_and(|d| {
                        d.id.call_id == r.call_id
                            && d.id.local_tag == r.to_tag
                            && d.id.remote_tag == r.from_tag
                    })
            })
            .map(|c| c.id)
    }
}

impl Engine {
    /// A REFER from the other side of call `i`: we call the target for it.
    pub(super) async fn on_refer(&mut self, i: usize, key: TsxKey, request: Request) {
        let refer_to = request
            .headers
            .get_raw(&Name::from("Refer-To"))
            .next()
            .or_else(|| request.headers.get_raw(&Name::from("r")).next())
            .map(|v| v.to_string());
        let Some(to) = refer_to.as_deref().and_then(ReferTo::parse) else {
            let _ = self
                .ep
                .send_response(&key, &request.make_response(400, "Bad Refer-To"));
            let id = self.calls[i].id;
            return self.emit(Event::Error {
                message: format!("call {id}: a REFER to {refer_to:?}, which is no SIP URI"),
            });
        };
        let _ = self
            .ep
            .send_response(&key, &request.make_response(202, "Accepted"));
        let (id, line) = (self.calls[i].id, self.calls[i].line);
        self.emit(Event::TransferRequested {
            call: id,
            to: to.uri.clone(),
        });
        self.notify_refer(id, 100, "Trying");
        let mut headers = Vec::new();
        if let Some(r) = &to.replaces {
            headers.push((Name::from("Replaces"), r.to_string()));
        }
        if let Some(by) = request.headers.get_raw(&Name::from("Referred-By")).next() {
            headers.push((Name::from("Referred-By"), by.to_string()));
        }
        match self.dial_with(&to.uri, line + 1, headers).await {
            Some(new) => {
                if let Some(c) = self.calls.iter_mut().find(|c| c.id == new) {
                    c.notify_on = Some(id);
                }
            }
            None => self.notify_refer(id, 503, "Service Unavailable"),
        }
    }

    /// Tells the transferor of call `id` how the call it asked for went (RFC 3515 §2.4.5).
    pub(super) fn notify_refer(&mut self, id: u32, status: u16, reason: &str) {
        let local = self.local;
        let Some(c) = self.calls.iter_mut().find(|c| c.id == id) else {
            return;
        };
        let Some(d) = c.dialog.as_mut() else {
            return;
        };
        let via = build::via_value(c.peer.transport, local, &build::new_branch());
        let mut n = d.request(Method::Notify, &via);
        sip::refer::progress_notify(&mut n, status, reason);
        n.headers.insert(Name::CONTACT, format!("<sip:{local}>"));
        let _ = self.ep.send_request(n, c.peer);
    }
}
