//! Incoming calls: a new INVITE (refused, rung or answered by itself), answering it, a
//! CANCEL while it rings.

use super::*;

impl Engine {
    pub(super) async fn answer(&mut self, id: Option<u32>) {
        let Some(i) = self.pick(id, |c| c.state == CallState::Incoming) else {
            return self.no_call("answer");
        };
        let audio = self.audio.clone();
        let local = self.local;
        let c = &mut self.calls[i];
        if c.state != CallState::Incoming {
            return self.no_call("answer");
        }
        // An INVITE without SDP (late offer): we offer in the 200, the answer comes in the ACK.
        let (body, agreed) = if c.invite.body.is_empty() {
            (sip::sdp::offer(&c.local), None)
        } else {
            let offer = c.invite.body.clone();
            match c
                .srtp_offer(&offer)
                .map_err(str::to_string)
                .and_then(|()| call::answer_offer(&offer, &c.local).map_err(|e| e.to_string()))
            {
                Ok((body, agreed)) => (body, Some(agreed)),
                Err(e) => {
                    let c = self.calls.remove(i);
                    self.refuse(&c, 488, "Not Acceptable Here");
                    return self.emit(Event::Ended {
                        call: c.id,
                        status: 488,
                        reason: e,
                    });
                }
            }
        };
        let mut ok = c.invite.make_response(200, "OK");
        ok.set_to_tag(&c.tag);
        ok.headers.insert(
            Name::CONTACT,
            format!("<sip:{}@{local}>", self.lines[c.line].account.number),
        );
        ok.headers.insert(Name::CONTENT_TYPE, "application/sdp");
        ok.body = body.into_bytes().into();
        c.acked = Some(self.ep.send_2xx(&c.key, c.peer, ok));
        c.dialog = Dialog::from_uas(&c.invite, &c.tag);
        c.state = CallState::Established;
        match agreed {
            Some(agreed) => c.start_media(&agreed, &audio, reporter(&self.events, c.id)),
            None => c.late_offer = true,
        }
        let id = c.id;
        self.emit(Event::Established { call: id });
    }

    pub(super) fn refuse(&self, c: &Call, status: u16, reason: &str) {
        let mut r = c.invite.make_response(status, reason);
        r.set_to_tag(&c.tag);
        let _ = self.ep.send_response(&c.key, &r);
    }

    pub(super) async fn on_invite(&mut self, key: TsxKey, request: Request, peer: Peer) {
        let to = request.uri.user().unwrap_or_default().to_string();
        let line = self
            .lines
            .iter()
            .position(|l| l.account.number == to)
            .unwrap_or(0);
        let tag = build::new_tag();
        let Some((rtp, rtcp, mut caps)) = self.open_rtp(line).await else {
            let mut r = request.make_response(503, "Service Unavailable");
            r.set_to_tag(&tag);
            let _ = self.ep.send_response(&key, &r);
            return;
        };
        let from = request.header_user(Name::FROM).unwrap_or_default();
        let display = request
            .headers
            .get_raw(&Name::FROM)
            .next()
            .map(|f| {
                f.split('<')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .trim_matches('"')
                    .to_string()
            })
            .unwrap_or_default();
        let diversion = request
            .headers
            .get_raw(&sip::headers::diversion_name())
            .next()
            .map(|v| v.to_string())
            .unwrap_or_default();
        let alert_info = request
            .headers
            .get_raw(&Name::from("Alert-Info"))
            .next()
            .map(|v| v.to_string())
            .unwrap_or_default();
        // Intercom and paging ask for an answer without a key press; only the line's own
        // server may ask (anyone else could open the microphone), and only if the line lets it.
        let auto_answer = match self.lines.get(line).map(|l| l.account.auto_answer.as_str()) {
            Some("always") => true,
            Some("requested") => {
                auto_answer_requested(&request) && peer.addr == self.lines[line].peer.addr
            }
            _ => false,
        };
        let (srtp, keys) = self.srtp_for(line, &mut caps);
        // SRTP the line cannot do, or no SRTP where the line must have it: 488 (Warning 399
        // says which), before anything rings.
        if !request.body.is_empty()
            && let media::sdes::Verdict::Refuse(why) = srtp.on_offer(&request.body)
        {
            let mut r = request.make_response(488, "Not Acceptable Here");
            r.set_to_tag(&tag);
            r.headers.insert(
                Name::from("Warning"),
                format!("399 {} \"{why}\"", self.local.ip()),
            );
            let _ = self.ep.send_response(&key, &r);
            return self.emit(Event::Refused {
                line: line + 1,
                from,
                status: 488,
                reason: why.to_string(),
            });
        }
        // An offer we cannot take is refused before anything rings: 400 for SDP that does
        // not parse, 488 (with Warning 305) when no codec is in common (RFC 3261 §13.3.1.1).
        if !request.body.is_empty()
            && let Err(e) = call::answer_offer(&request.body, &caps)
        {
            let (status, reason) = match e {
                sip::sdp::SdpError::NoCommonCodec => (488, "Not Acceptable Here"),
                sip::sdp::SdpError::Malformed(_) => (400, "Bad SDP"),
            };
            let mut r = request.make_response(status, reason);
            r.set_to_tag(&tag);
            if status == 488 {
                r.headers.insert(
                    Name::from("Warning"),
                    format!("305 {} \"Incompatible media format\"", self.local.ip()),
                );
            }
            let _ = self.ep.send_response(&key, &r);
            return self.emit(Event::Refused {
                line: line + 1,
                from,
                status,
                reason: format!("{e} (offered: {})", call::offered_codecs(&request.body)),
            });
        }
        // INVITE with Replaces (RFC 3891): it takes the place of one of our calls at once.
        let replaces = self.replaced_call(&request);
        if replaces.is_none() {
            let mut ringing = request.make_response(180, "Ringing");
            ringing.set_to_tag(&tag);
            let _ = self.ep.send_response(&key, &ringing);
        }
        let id = self.next_call;
        self.next_call += 1;
        let mut c = Call::new(
            id,
            line,
            false,
            from.clone(),
            request,
            key,
            peer,
            (rtp, rtcp, caps),
        );
        c.tag = tag;
        c.ring = crate::ringer::distinctive_ring(&alert_info);
        (c.srtp, c.keys) = (srtp, keys);
        self.calls.push(c);
        self.emit(Event::Incoming {
            call: id,
            line: line + 1,
            from,
            display,
            diversion,
            alert_info,
            auto_answer,
        });
        if auto_answer && replaces.is_none() {
            self.answer(Some(id)).await;
        }
        if let Some(old) = replaces {
            self.answer(Some(id)).await;
            if let Some(i) = self.calls.iter().position(|c| c.id == old) {
                self.emit(Event::Replaced { call: old, by: id });
                self.hang_up(i);
            }
        }
    }

    pub(super) fn on_cancelled(&mut self, invite: &TsxKey) {
        if let Some(i) = self
            .calls
            .iter()
            .position(|c| !c.outgoing && c.key == *invite && c.state == CallState::Incoming)
        {
            let c = self.calls.remove(i);
            self.refuse(&c, 487, "Request Terminated");
            self.emit(Event::Ended {
                call: c.id,
                status: 487,
                reason: "cancelled by the caller".into(),
            });
        }
    }
}
