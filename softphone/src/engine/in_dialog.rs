//! Inside a call's dialog: ACK, hold and resume by re-INVITE (ours and the other side's),
//! hanging up, and the other side's in-dialog requests (BYE, INFO digits, NOTIFY, REFER).

use super::*;

impl Engine {
    /// Sends each digit as a SIP INFO in call `i`'s dialog (`application/dtmf-relay`, 160 ms).
    pub(super) fn dtmf_info(&mut self, i: usize, digits: &str) {
        let peer = self.calls[i].peer;
        for d in digits.chars() {
            let via = self.via(peer);
            let Some(dialog) = self.calls[i].dialog.as_mut() else {
                return self.no_call("dtmf");
            };
            let mut r = dialog.request(Method::Info, &via);
            r.headers
                .insert(Name::CONTENT_TYPE, "application/dtmf-relay");
            r.body = format!("Signal={d}\r\nDuration=160\r\n")
                .into_bytes()
                .into();
            let _ = self.ep.send_request(r, peer);
        }
    }

    /// The ACK to our 200: after a late offer it carries the answer, which starts the media.
    pub(super) fn on_ack(&mut self, i: usize, ack: &Request) {
        let audio = self.audio.clone();
        let c = &mut self.calls[i];
        if let Some(acked) = c.acked.take() {
            let _ = acked.send(());
        }
        if !std::mem::take(&mut c.late_offer) {
            return;
        }
        match c.take_answer(&ack.body) {
            Some(agreed) => c.start_media(&agreed, &audio, reporter(&self.events, c.id)),
            None => {
                let id = c.id;
                self.emit(Event::Error {
                    message: format!(
                        "call {id}: the ACK carries no usable SDP answer to our offer; hanging up"
                    ),
                });
                self.hang_up(i);
            }
        }
    }

    /// Holds (sendonly) or resumes (sendrecv) a call with a re-INVITE.
    pub(super) fn reinvite(&mut self, id: Option<u32>, hold: bool) {
        let what = if hold { "hold" } else { "resume" };
        let Some(i) = self.pick(id, |c| {
            c.state == CallState::Established && c.on_hold != hold
        }) else {
            return self.no_call(what);
        };
        let local = self.local;
        let c = &mut self.calls[i];
        if c.state != CallState::Established || c.reinvite.is_some() {
            let id = c.id;
            return self.emit(Event::Error {
                message: format!("{what}: call {id} is not ready for it"),
            });
        }
        let body = sip::sdp::offer(c.next_local(if hold {
            Direction::SendOnly
        } else {
            Direction::SendRecv
        }));
        let Some(d) = c.dialog.as_mut() else {
            return;
        };
        let via = build::via_value(c.peer.transport, local, &build::new_branch());
        let mut r = d.request(Method::Invite, &via);
        r.headers.insert(Name::CONTENT_TYPE, "application/sdp");
        r.headers.insert(Name::CONTACT, format!("<sip:{local}>"));
        r.body = body.into_bytes().into();
        c.reinvite = self.ep.send_request(r, c.peer).ok();
        c.on_hold = hold;
        c.media(MediaControl::Hold(hold));
    }

    pub(super) fn on_reinvite_response(&mut self, i: usize, response: &Response) {
        if response.status < 200 {
            return;
        }
        let local = self.local;
        let c = &mut self.calls[i];
        c.reinvite = None;
        let id = c.id;
        if !(200..300).contains(&response.status) {
            c.on_hold = !c.on_hold; // refused: nothing changed
            let held = c.on_hold;
            c.media(MediaControl::Hold(held));
            return self.emit(Event::Error {
                message: format!("call {id}: re-INVITE answered {}", response.status),
            });
        }
        if let Some(d) = &mut c.dialog {
            d.handle_response(response);
            let via = build::via_value(c.peer.transport, local, &build::new_branch());
            let ack = d.ack(response.cseq().map_or(0, |s| s.seq), &via);
            self.ep.send_stateless(c.peer, &Message::Request(ack));
        }
        if let Some(agreed) = c.take_answer(&response.body)
            && let Some(remote) = agreed.remote
        {
            c.media(MediaControl::Remote(remote));
        }
        let held = c.on_hold;
        self.emit(if held {
            Event::Held { call: id }
        } else {
            Event::Resumed { call: id }
        });
    }

    /// The other side's re-INVITE: answered with our SDP (keeping our own hold), the media
    /// follows its new address, and a hold or resume by the other side is reported.
    pub(super) fn on_peer_reinvite(&mut self, i: usize, key: TsxKey, request: Request) {
        let local = self.local;
        let number = self.lines[self.calls[i].line].account.number.clone();
        let c = &mut self.calls[i];
        let direction = if c.on_hold {
            Direction::SendOnly
        } else {
            Direction::SendRecv
        };
        if !request.body.is_empty()
            && let Err(why) = c.srtp_offer(&request.body)
        {
            let _ = self
                .ep
                .send_response(&key, &request.make_response(488, "Not Acceptable Here"));
            let id = c.id;
            return self.emit(Event::Error {
                message: format!("call {id}: a re-INVITE we cannot take, answered 488: {why}"),
            });
        }
        let ours = c.next_local(direction).clone();
        if request.body.is_empty() {
            // A re-INVITE without SDP (a session refresh, say): we offer what we have; the
            // answer in the ACK changes nothing here.
            let mut ok = request.make_response(200, "OK");
            ok.headers
                .insert(Name::CONTACT, format!("<sip:{number}@{local}>"));
            ok.headers.insert(Name::CONTENT_TYPE, "application/sdp");
            ok.body = sip::sdp::offer(&ours).into_bytes().into();
            c.acked = Some(self.ep.send_2xx(&key, c.peer, ok));
            return;
        }
        let (body, agreed) = match call::answer_offer(&request.body, &ours) {
            Ok(answered) => answered,
            Err(e) => {
                let _ = self
                    .ep
                    .send_response(&key, &request.make_response(488, "Not Acceptable Here"));
                let id = c.id;
                return self.emit(Event::Error {
                    message: format!("call {id}: a re-INVITE we cannot take, answered 488: {e}"),
                });
            }
        };
        let mut ok = request.make_response(200, "OK");
        ok.headers
            .insert(Name::CONTACT, format!("<sip:{number}@{local}>"));
        ok.headers.insert(Name::CONTENT_TYPE, "application/sdp");
        ok.body = body.into_bytes().into();
        c.acked = Some(self.ep.send_2xx(&key, c.peer, ok));
        if let Some(remote) = agreed.remote {
            c.media(MediaControl::Remote(remote));
        }
        if agreed.remote_hold != c.held_by_peer {
            c.held_by_peer = agreed.remote_hold;
            let (id, held) = (c.id, c.held_by_peer);
            self.emit(Event::RemoteHold { call: id, held });
        }
    }

    pub(super) fn hang_up(&mut self, i: usize) {
        let c = self.calls.remove(i);
        match (c.state, &c.dialog) {
            (CallState::Incoming, _) => self.refuse(&c, 603, "Decline"),
            (CallState::Calling | CallState::Ringing, _) => {
                let _ = self.ep.cancel(&c.key);
            }
            (CallState::Established, Some(d)) => {
                let mut d = d.clone();
                let bye = d.request(Method::Bye, &self.via(c.peer));
                let _ = self.ep.send_request(bye, c.peer);
            }
            _ => {}
        }
        self.emit(Event::Ended {
            call: c.id,
            status: 0,
            reason: "hung up".into(),
        });
    }

    pub(super) async fn on_in_dialog(&mut self, key: TsxKey, request: Request) {
        let id = DialogId::of_request(&request);
        let found = self.calls.iter().position(|c| {
            c.dialog
                .as_ref()
                .is_some_and(|d| Some(&d.id) == id.as_ref())
        });
        let Some(i) = found else {
            if request.method != Method::Ack {
                let _ = self.ep.send_response(
                    &key,
                    &request.make_response(481, "Call/Transaction Does Not Exist"),
                );
            }
            return;
        };
        match request.method {
            Method::Ack => self.on_ack(i, &request),
            Method::Invite => self.on_peer_reinvite(i, key, request),
            Method::Notify => self.on_notify(i, key, request),
            Method::Refer => self.on_refer(i, key, request).await,
            Method::Bye => {
                let _ = self
                    .ep
                    .send_response(&key, &request.make_response(200, "OK"));
                let c = self.calls.remove(i);
                self.emit(Event::Ended {
                    call: c.id,
                    status: 0,
                    reason: "the other side hung up".into(),
                });
            }
            Method::Info if is_dtmf_relay(&request) => {
                let digit = dtmf_relay_signal(&request.body);
                let status = if digit.is_some() { 200 } else { 400 };
                let _ = self.ep.send_response(
                    &key,
                    &request
                        .make_response(status, if digit.is_some() { "OK" } else { "Bad Signal" }),
                );
                let call = self.calls[i].id;
                match digit {
                    Some(d) => self.emit(Event::DtmfReceived {
                        call,
                        digit: d.to_string(),
                        by: "info",
                    }),
                    None => self.emit(Event::Error {
                        message: format!(
                            "call {call}: an INFO with no usable Signal, answered 400"
                        ),
                    }),
                }
            }
            Method::Options | Method::Info | Method::Update => {
                let _ = self
                    .ep
                    .send_response(&key, &request.make_response(200, "OK"));
            }
            _ => {
                let _ = self
                    .ep
                    .send_response(&key, &request.make_response(501, "Not Implemented"));
            }
        }
    }
}
