//! Transfers with REFER (RFC 3515): blind (`transfer NUMBER`), attended (`transfer CALL
//! OTHER`: a REFER whose Refer-To carries Replaces (RFC 3891) naming our other call), and
//! the transferor's side of the NOTIFYs that report how it went (sipfrag): a 2xx ends our
//! call, as RFC 5589 says the transferor does.

use super::{Engine, Event};
use crate::call::CallState;
use sip::transaction::TsxKey;
use sip::types::Name;
use sip::{Method, Request, build};

fn percent_encode(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            'A'..='Z' | 'a'..='z' | '0'..='9' | '-' | '.' | '_' | '~' => c.to_string(),
            c => {
                let mut b = [0u8; 4];
                c.encode_utf8(&mut b)
                    .bytes()
                    .map(|x| format!("%{x:02X}"))
                    .collect()
            }
        })
        .collect()
}

impl Engine {
    /// `transfer TARGET [CALL]` (blind) or `transfer CALL OTHER` (attended: `CALL`'s party
    /// goes to `OTHER`'s).
    pub(super) fn transfer(&mut self, call: Option<u32>, target: TransferTarget) {
        let Some(i) = self.pick(call, |c| c.state == CallState::Established) else {
            return self.no_call("transfer");
        };
        let refer_to = match &target {
            TransferTarget::Number(n) => {
                let server = &self.lines[self.calls[i].line].account.server;
                if n.starts_with("sip:") {
                    format!("<{n}>")
                } else {
                    format!("<sip:{n}@{server}>")
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
                let server = &self.lines[o.line].account.server;
                let target = if o.party.starts_with("sip:") {
                    o.party.clone()
                } else {
                    format!("sip:{}@{server}", o.party)
                };
                let replaces = format!(
                    "{};to-tag={};from-tag={}",
                    d.id.call_id, d.id.remote_tag, d.id.local_tag
                );
                format!("<{target}?Replaces={}>", percent_encode(&replaces))
            }
        };
        let local = self.local;
        let number = self.lines[self.calls[i].line].account.number.clone();
        let server = self.lines[self.calls[i].line].account.server.clone();
        let c = &mut self.calls[i];
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
        let _ = self
            .ep
            .send_response(&key, &request.make_response(200, "OK"));
        let body = String::from_utf8_lossy(&request.body).to_string();
        let Some(status) = body
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("SIP/2.0 "))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|s| s.parse::<u16>().ok())
        else {
            let id = self.calls[i].id;
            return self.emit(Event::Error {
                message: format!("call {id}: a NOTIFY without a sipfrag status line"),
            });
        };
        if status < 200 {
            return;
        }
        let id = self.calls[i].id;
        if status < 300 {
            self.emit(Event::Transferred { call: id });
            self.hang_up(i);
        } else {
            self.emit(Event::TransferFailed {
                call: id,
                status,
                reason: body.lines().next().unwrap_or_default().to_string(),
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
