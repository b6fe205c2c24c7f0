//! Requests inside a leg's dialog: ACK, BYE, re-INVITE (passed through between two direct
//! phones, answered by the PBX for anchored legs), REFER, and the rest passed to the
//! partner's phone.

use super::{Calls, Forwarded, LegId, Partner};
use crate::sdp::{self, Direction};
use sip::dialog::DialogId;
use sip::transaction::{Peer, TsxKey};
use sip::types::Name;
use sip::{Message, Method, Request, Response, build};

impl Calls {
    /// Which leg an in-dialog request belongs to.
    pub(super) fn find(&self, request: &Request) -> Option<LegId> {
        let id = DialogId::of_request(request)?;
        self.legs
            .of_call(&id.call_id)
            .find(|l| l.matches(&id))
            .map(|l| l.id)
    }

    /// A request with a To tag: ACK, BYE, re-INVITE, REFER, INFO, UPDATE...
    pub async fn on_in_dialog(&mut self, key: TsxKey, request: Request, _peer: Peer) {
        let Some(id) = self.find(&request) else {
            if request.method != Method::Ack {
                let _ = self.ep.send_response(
                    &key,
                    &request.make_response(481, "Call/Transaction Does Not Exist"),
                );
            }
            return;
        };
        if let Some(leg) = self.legs.get_mut(&id)
            && let Some(d) = &mut leg.dialog
            && request.method != Method::Ack
            && d.handle_request(&request).is_err()
        {
            let _ = self
                .ep
                .send_response(&key, &request.make_response(500, "Server Internal Error"));
            return;
        }
        let now = self.clock.now;
        match request.method {
            Method::Ack => {
                if let Some(leg) = self.legs.get_mut(&id) {
                    leg.acked();
                    if !request.body.is_empty() {
                        leg.set_remote(request.body.to_vec(), now);
                    }
                }
                self.settle(id);
            }
            Method::Bye => {
                let _ = self
                    .ep
                    .send_response(&key, &request.make_response(200, "OK"));
                self.gone(id, "hung up").await;
            }
            Method::Invite => self.on_reinvite(id, key, request).await,
            Method::Refer => self.on_refer(id, key, request).await,
            _ => self.pass_on(id, key, request),
        }
    }

    /// Passes an in-dialog request to the partner's phone; with no partner, the PBX answers
    /// OPTIONS and INFO itself and refuses the rest.
    pub(super) fn pass_on(&mut self, id: LegId, key: TsxKey, request: Request) {
        let partner = match self.legs.get(&id).map(|l| &l.partner) {
            Some(Partner::Leg(o)) => Some(*o),
            _ => None,
        };
        let fwd = partner.and_then(|o| {
            let other = self.legs.get_mut(&o)?;
            let (mut fwd, peer) = other.in_dialog(request.method.clone())?;
            for name in [Name::CONTENT_TYPE, Name::from("Session-Expires")] {
                for v in request.headers.get_raw(&name) {
                    fwd.headers.insert(name.clone(), v.clone());
                }
            }
            fwd.headers.insert(Name::CONTACT, other.contact());
            fwd.body = request.body.clone();
            Some((fwd, peer, o))
        });
        match fwd {
            Some((fwd, peer, o)) => match self.ep.send_request(fwd, peer) {
                Ok(ck) => {
                    self.forwarded.insert(
                        ck,
                        Forwarded {
                            asker_key: key,
                            request,
                            asker: id,
                            to: o,
                        },
                    );
                }
                Err(_) => {
                    let _ = self
                        .ep
                        .send_response(&key, &request.make_response(500, "Server Internal Error"));
                }
            },
            None => {
                let (status, reason) = match request.method {
                    Method::Options | Method::Info | Method::Update => (200, "OK"),
                    _ => (501, "Not Implemented"),
                };
                let _ = self
                    .ep
                    .send_response(&key, &request.make_response(status, reason));
            }
        }
    }

    /// A re-INVITE (hold, resume, new media). Between two phones with direct media it goes
    /// through, unless it holds a phone that gets the PBX's hold tone: then both legs move
    /// into the relay. An anchored leg's re-INVITE the PBX answers itself.
    pub(super) async fn on_reinvite(&mut self, id: LegId, key: TsxKey, request: Request) {
        let Some(leg) = self.legs.get(&id) else {
            return;
        };
        let partner = match &leg.partner {
            Partner::Leg(o) => self
                .legs
                .get(o)
                .map(|p| (p.id, p.media.is_none(), p.station.clone())),
            _ => None,
        };
        let direct_pair = leg.media.is_none() && partner.as_ref().is_some_and(|p| p.1);
        let holds = sdp::is_hold(&request.body);
        let was_holding = leg.holds;
        if direct_pair
            && let Some((o, _, station)) = &partner
            && !(holds && self.system_tone(station))
        {
            let _ = o;
            return self.pass_on(id, key, request);
        }
        if !request.body.is_empty()
            && let ::media::sdes::Verdict::Refuse(why) = leg.srtp.on_offer(&request.body)
        {
            tracing::info!("{}'s re-INVITE: 488, {why}", leg.station);
            let _ = self
                .ep
                .send_response(&key, &request.make_response(488, "Not Acceptable Here"));
            return;
        }
        if leg.media.is_none() {
            let Some(port) = self.open_port().await else {
                let _ = self.ep.send_response(
                    &key,
                    &request.make_response(503, "Service Unavailable (no media ports)"),
                );
                return;
            };
            if let Some(l) = self.legs.get_mut(&id) {
                l.anchor_with(port);
            }
        }
        let ep = self.ep.clone();
        if let Some(l) = self.legs.get_mut(&id) {
            let body = if request.body.is_empty() {
                l.our_sdp(Direction::SendRecv, None) // the phone answers in its ACK
            } else {
                l.set_remote(request.body.to_vec(), self.clock.now);
                l.our_sdp(sdp::direction(&request.body).answer(), Some(&request.body))
            };
            let mut ok = request.make_response(200, "OK");
            ok.body = body.into();
            ok.headers.insert(Name::CONTENT_TYPE, "application/sdp");
            ok.headers.insert(Name::CONTACT, l.contact());
            l.send_2xx(&ep, &key, ok);
        }
        let trunk_partner = partner
            .as_ref()
            .and_then(|(o, _, _)| self.legs.get(o))
            .is_some_and(|p| p.trunk().is_some() && p.answered);
        match partner {
            // A station's hold or resume reaches the provider as a=inactive or a=sendrecv.
            Some((o, _, _)) if trunk_partner && was_holding != holds => {
                let direction = if holds {
                    Direction::Inactive
                } else {
                    Direction::SendRecv
                };
                self.offer_relay_with(o, direction);
            }
            Some((o, _, _)) => self.anchor(o).await,
            None => {}
        }
        self.settle(id);
    }

    /// The answer to a request passed through to the partner: back to the asker, and a 2xx
    /// to a re-INVITE is ACKed here (the asker's own ACK ends at the PBX).
    pub(super) fn on_forwarded_answer(&mut self, f: Forwarded, response: &Response) {
        let mut r = f.request.make_response(response.status, &response.reason);
        r.body = response.body.clone();
        for v in response.headers.get_raw(&Name::CONTENT_TYPE) {
            r.headers.insert(Name::CONTENT_TYPE, v.clone());
        }
        let invite = f.request.method == Method::Invite;
        if invite && (200..300).contains(&response.status) {
            if let Some(asker) = self.legs.get(&f.asker) {
                r.headers.insert(Name::CONTACT, asker.contact());
            }
            if let Some(to) = self.legs.get_mut(&f.to) {
                to.remote_sdp = response.body.to_vec();
                let seq = response.cseq().map_or(0, |c| c.seq);
                if let Some(d) = &to.dialog {
                    let via =
                        build::via_value(to.peer.transport, to.here.sip, &build::new_branch());
                    let ack = d.ack(seq, &via);
                    self.ep.send_stateless(to.peer, &Message::Request(ack));
                }
            }
            if let Some(asker) = self.legs.get_mut(&f.asker) {
                asker.remote_sdp = f.request.body.to_vec();
                asker.set_holds(sdp::is_hold(&f.request.body), self.clock.now);
                asker.send_2xx(&self.ep, &f.asker_key, r);
                return;
            }
        }
        let _ = self.ep.send_response(&f.asker_key, &r);
    }
}
