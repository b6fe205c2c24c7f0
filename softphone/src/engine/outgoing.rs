//! Outgoing calls: dialling (the INVITE with our offer, its media opened first) and the
//! answers to it (ringing, early media, answer, a digest challenge, failure).

use super::*;

impl Engine {
    pub(super) async fn dial(&mut self, number: &str, line: usize) {
        self.dial_with(number, line, Vec::new()).await;
    }

    /// Calls `number` on `line` with `headers` added to the INVITE (Replaces, Referred-By);
    /// the new call's number, when it could be placed.
    pub(super) async fn dial_with(
        &mut self,
        number: &str,
        line: usize,
        headers: Vec<(Name, String)>,
    ) -> Option<u32> {
        let Some(l) = line.checked_sub(1).and_then(|i| self.lines.get(i)) else {
            self.emit(Event::Error {
                message: format!("dial: no line {line}"),
            });
            return None;
        };
        let target = if number.starts_with("sip:") {
            number.to_string()
        } else if !number.is_empty()
            && number
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "*#+.-_".contains(c))
        {
            format!("sip:{number}@{}", l.account.server)
        } else {
            self.emit(Event::Error {
                message: format!("dial: {number:?} is no number or SIP URI"),
            });
            return None;
        };
        let from = format!("sip:{}@{}", l.account.number, l.account.server);
        let peer = l.peer;
        let display = l.account.display_name.clone();
        let Ok(mut invite) = build::request(
            Method::Invite,
            &target,
            &from,
            &target,
            peer.transport,
            self.local,
        ) else {
            self.emit(Event::Error {
                message: format!("dial: {target:?} is no SIP URI"),
            });
            return None;
        };
        for (name, value) in headers {
            invite.headers.insert(name, value);
        }
        build::set_display_name(&mut invite, &display);
        let Some((rtp, rtcp, mut caps)) = self.open_rtp(line - 1).await else {
            self.emit(Event::Error {
                message: "dial: no RTP port".into(),
            });
            return None;
        };
        let (srtp, keys) = self.srtp_for(line - 1, &mut caps);
        invite.headers.insert(Name::CONTENT_TYPE, "application/sdp");
        invite.body = sip::sdp::offer(&caps).into_bytes().into();
        let Ok(key) = self.ep.send_request(invite.clone(), peer) else {
            self.emit(Event::Error {
                message: "dial: could not send".into(),
            });
            return None;
        };
        let id = self.next_call;
        self.next_call += 1;
        let mut c = Call::new(
            id,
            line - 1,
            true,
            number.to_string(),
            invite,
            key,
            peer,
            (rtp, rtcp, caps),
        );
        (c.srtp, c.keys) = (srtp, keys);
        self.calls.push(c);
        self.emit(Event::Calling {
            call: id,
            line,
            to: number.to_string(),
        });
        Some(id)
    }

    /// A new call's RTP socket on `line` (0-based) and what we offer on it.
    /// An RTP socket on an even port with RTCP on the next (RFC 3550 §11), or RTP alone
    /// when no such pair turns up in a few tries.
    pub(super) async fn open_rtp(
        &self,
        line: usize,
    ) -> Option<(
        tokio::net::UdpSocket,
        Option<tokio::net::UdpSocket>,
        sip::sdp::Local,
    )> {
        let ip = self.local.ip();
        let codecs = &self.lines.get(line)?.account.codecs;
        let mut last = None;
        for _ in 0..20 {
            let rtp = tokio::net::UdpSocket::bind((ip, 0)).await.ok()?;
            let port = rtp.local_addr().ok()?.port();
            if port % 2 == 0
                && let Ok(rtcp) = tokio::net::UdpSocket::bind((ip, port + 1)).await
            {
                return Some((rtp, Some(rtcp), call::local_caps(ip, port, codecs)));
            }
            last = Some((rtp, port));
        }
        let (rtp, port) = last?;
        Some((rtp, None, call::local_caps(ip, port, codecs)))
    }

    pub(super) fn on_invite_response(&mut self, i: usize, response: &Response) {
        let status = response.status;
        let audio = self.audio.clone();
        let c = &mut self.calls[i];
        match status {
            100 => {}
            101..=199 => {
                let id = c.id;
                if c.state == CallState::Calling {
                    c.state = CallState::Ringing;
                    self.emit(Event::Ringing { call: id });
                }
                let c = &mut self.calls[i];
                // Early media: its SDP is the answer; the 200 confirms it (or moves it).
                if !response.body.is_empty()
                    && !c.has_media()
                    && let Some(agreed) = c.take_answer(&response.body)
                {
                    c.start_media(&agreed, &audio, reporter(&self.events, id));
                    if c.has_media() {
                        self.emit(Event::EarlyMedia { call: id });
                    }
                }
            }
            200..=299 => {
                if c.dialog.is_none() {
                    c.dialog = Dialog::from_uac(&c.invite, response);
                }
                if let Some(d) = &c.dialog {
                    let via = build::via_value(c.peer.transport, self.local, &build::new_branch());
                    let ack = d.ack(d.local_seq, &via);
                    self.ep.send_stateless(c.peer, &Message::Request(ack));
                }
                if c.state == CallState::Established {
                    return; // a retransmitted 2xx, ACKed again
                }
                c.state = CallState::Established;
                let id = c.id;
                let usable = match c.take_answer(&response.body) {
                    Some(agreed) if c.has_media() => {
                        if let Some(remote) = agreed.remote {
                            c.media(MediaControl::Remote(remote));
                        }
                        true
                    }
                    // A 200 without SDP after early media keeps the early answer.
                    None if c.has_media() => true,
                    Some(agreed) => {
                        c.start_media(&agreed, &audio, reporter(&self.events, c.id));
                        true
                    }
                    None => false,
                };
                if !usable {
                    self.emit(Event::Error {
                        message: format!("call {id}: the answer's SDP is unusable"),
                    });
                }
                let referred = self.calls[i].notify_on;
                self.emit(Event::Established { call: id });
                if let Some(old) = referred {
                    self.notify_refer(old, 200, "OK");
                }
            }
            401 | 407 if !c.authorized => {
                let l = &self.lines[c.line];
                let mut client =
                    sip::auth::DigestClient::new(&l.account.user_id, &l.account.password);
                let mut again = c.invite.clone();
                if !client.authorize(&mut again, response) {
                    let c = self.calls.remove(i);
                    return self.emit(Event::Ended {
                        call: c.id,
                        status,
                        reason: response.reason.clone(),
                    });
                }
                let seq = again.cseq().map_or(1, |s| s.seq) + 1;
                again.headers.remove(&Name::CSEQ);
                again.headers.insert(Name::CSEQ, format!("{seq} INVITE"));
                again.headers.remove(&Name::VIA);
                again.headers.insert(
                    Name::VIA,
                    build::via_value(c.peer.transport, self.local, &build::new_branch()),
                );
                c.authorized = true;
                if let Ok(k) = self.ep.send_request(again.clone(), c.peer) {
                    c.key = k;
                    c.invite = again;
                }
            }
            _ => {
                let c = self.calls.remove(i);
                if let Some(old) = c.notify_on {
                    self.notify_refer(old, status, &response.reason);
                }
                self.emit(Event::Ended {
                    call: c.id,
                    status,
                    reason: response.reason.clone(),
                });
            }
        }
    }
}
