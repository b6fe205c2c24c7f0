//! Back-to-back calls between stations: every call is two dialogs, A (caller ↔ PBX) and B
//! (PBX ↔ callee). The PBX routes an INVITE by its Request-URI user (a station number) to the
//! callee's registered contacts — `404` for an unknown number, `480` when the callee is not
//! registered, `486` when it is already in a call — and carries 1xx/2xx/failures, ACK, BYE,
//! CANCEL and re-INVITEs (hold and resume) across with their SDP. Media goes directly between
//! the phones (the SDP passes through unchanged).

use crate::features;
use crate::nat::{self, NatCheck};
use crate::registrar::Registrar;
use crate::relay::{
    PortRange, Relay, Targets, Transcode, offer_both_laws, rewrite_sdp, sdp_address, sdp_payloads,
};
use sip::dialog::{Dialog, DialogId};
use sip::endpoint::Endpoint;
use sip::transaction::{Peer, TsxKey};
use sip::types::Name;
use sip::{Message, Method, Request, Response, build};
use stations::Db;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::oneshot;

/// Which side of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    A,
    B,
}

struct Call {
    caller: String,
    callee: String,
    a_invite: Request,
    a_key: TsxKey,
    a_peer: Peer,
    a_tag: String,
    a_dialog: Option<Dialog>,
    b_invite: Request,
    b_key: TsxKey,
    b_peer: Peer,
    b_dialog: Option<Dialog>,
    /// The relay when media is anchored in the PBX.
    relay: Option<Relay>,
    /// Stops the retransmission of our 2xx to A when A's ACK comes.
    a_acked: Option<oneshot::Sender<()>>,
    answered: bool,
    /// The last re-INVITE put the call on hold (no RTP expected).
    held: bool,
    /// When both phones were last asked if they are still there.
    probed: Instant,
    /// When the call started ringing, and whether Call Forward No Answer was looked at.
    started: Instant,
    no_answer_tried: bool,
}

/// All calls of the PBX.
pub struct Calls {
    ep: Arc<Endpoint>,
    registrar: Arc<Mutex<Registrar>>,
    db: Arc<Mutex<Db>>,
    local: SocketAddr,
    calls: Vec<Call>,
    /// In-dialog requests forwarded to the other side: our client transaction → the asker's
    /// server transaction and request, and which call and side asked. Outlives the call, so
    /// a BYE's answer still arrives.
    forwarded: HashMap<TsxKey, (TsxKey, Request, TsxKey, Side)>,
    /// In-dialog OPTIONS probes in flight → the call they ask about.
    probes: HashMap<TsxKey, TsxKey>,
    ports: Arc<PortRange>,
    features: Vec<Box<dyn features::Feature>>,
}

fn user_of(uri: &sip::Uri) -> String {
    uri.user().unwrap_or_default().to_string()
}

impl Calls {
    pub fn new(
        ep: Arc<Endpoint>,
        registrar: Arc<Mutex<Registrar>>,
        db: Arc<Mutex<Db>>,
        local: SocketAddr,
        ports: Arc<PortRange>,
    ) -> Self {
        Calls {
            ep,
            registrar,
            db,
            local,
            calls: Vec::new(),
            forwarded: HashMap::new(),
            probes: HashMap::new(),
            ports,
            features: features::all(),
        }
    }

    fn reply(&self, key: &TsxKey, request: &Request, status: u16, reason: &str, tag: &str) {
        let mut r = request.make_response(status, reason);
        r.set_to_tag(tag);
        let _ = self.ep.send_response(key, &r);
    }

    fn busy(&self, number: &str) -> bool {
        self.calls
            .iter()
            .any(|c| c.callee == number || c.caller == number)
    }

    /// Anchor this call's media in the relay? `media.relay`: always, never, or auto —
    /// direct only when the caller's media and the callee's phone are on the private networks.
    fn relay_wanted(&self, offer: &[u8], callee: &Peer) -> bool {
        let db = self.db.lock().unwrap_or_else(|e| e.into_inner());
        let mode = db.setting("media.relay").unwrap_or_default();
        let private = db.setting("media.private_networks").unwrap_or_default();
        let inside = |ip: std::net::IpAddr| matches!(ip, std::net::IpAddr::V4(v4) if stations::settings::whitelisted(&private, v4));
        match mode.as_str() {
            "always" => true,
            "never" => false,
            _ => !(sdp_address(offer).is_some_and(|a| inside(a.ip())) && inside(callee.addr.ip())),
        }
    }

    /// A new INVITE (no To tag).
    pub async fn on_invite(&mut self, key: TsxKey, request: Request, peer: Peer) {
        let tag = build::new_tag();
        let mut callee = user_of(&request.uri);
        let caller = request.header_user(Name::FROM).unwrap_or_default();
        let known = self
            .db
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&callee)
            .is_ok();
        if self
            .db
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .setting("security.invite_auth")
            .unwrap_or_default()
            != "never"
        {
            let verdict = {
                let db = self.db.lock().unwrap_or_else(|e| e.into_inner());
                let dir = crate::server::DbDirectory(&db);
                self.registrar
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .authorize_invite(SystemTime::now(), &request, &dir)
            };
            if let Err(mut refusal) = verdict {
                refusal.set_to_tag(&tag);
                let _ = self.ep.send_response(&key, &refusal);
                return;
            }
        }
        if !known {
            if let Some(outcome) = self.feature_code(&caller, &callee, peer) {
                eprintln!("pbx-lite: {caller} dialled {callee}: {outcome}");
                return self.reply(&key, &request, 480, "Temporarily Unavailable", &tag);
            }
            return self.reply(&key, &request, 404, "Not Found", &tag);
        }
        // Do Not Disturb, then Call Forward All (followed while it leads somewhere new).
        let mut diverted_from: Option<(String, &str)> = None;
        {
            let db = self.db.lock().unwrap_or_else(|e| e.into_inner());
            let mut seen = vec![callee.clone()];
            loop {
                let st = db.station_state(&callee).unwrap_or_default();
                if st.dnd {
                    drop(db);
                    return self.reply(&key, &request, 486, "Busy Here", &tag);
                }
                if st.cf_all.is_empty() || seen.contains(&st.cf_all) || st.cf_all == caller {
                    break; // a loop rings the last station of the chain
                }
                seen.push(st.cf_all.clone());
                let from = std::mem::replace(&mut callee, st.cf_all);
                diverted_from.get_or_insert((from, "unconditional"));
            }
        }
        let lookup = |n: &str| {
            self.registrar
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .lookup(n, SystemTime::now())
        };
        let mut bindings = lookup(&callee);
        // Call forwarding Unreachable (OfficeServ): a station that is not registered sends its
        // calls to the station it names, and the INVITE says who forwarded (RFC 5806).
        if bindings.is_empty() {
            let target = self
                .db
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&callee)
                .ok()
                .and_then(|s| s.cf_unreachable);
            if let Some(t) = target
                && t != callee
            {
                bindings = lookup(&t);
                if !bindings.is_empty() {
                    let from = std::mem::replace(&mut callee, t);
                    diverted_from.get_or_insert((from, "unavailable"));
                }
            }
        }
        let Some(mut b) = bindings.first().cloned() else {
            return self.reply(&key, &request, 480, "Temporarily Unavailable", &tag);
        };
        if self.busy(&callee) {
            // Call Forward Busy: the station it names rings instead, if it is free.
            let target = self
                .db
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .station_state(&callee)
                .map(|st| st.cf_busy)
                .unwrap_or_default();
            let target_bindings = if target.is_empty() || target == caller || self.busy(&target) {
                Vec::new()
            } else {
                lookup(&target)
            };
            match target_bindings.first() {
                Some(tb) => {
                    b = tb.clone();
                    let from = std::mem::replace(&mut callee, target);
                    diverted_from.get_or_insert((from, "user-busy"));
                }
                None => return self.reply(&key, &request, 486, "Busy Here", &tag),
            }
        }
        let check = self
            .db
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&callee)
            .map_or(NatCheck::Ip, |s| NatCheck::of(&s));
        let Some(b_peer) = nat::route(&b, check) else {
            return self.reply(&key, &request, 480, "Temporarily Unavailable", &tag);
        };
        let diverted = diverted_from.as_ref().map(|(f, r)| (f.as_str(), *r));
        let Some(mut invite) =
            self.b_leg_invite(&request, &caller, &callee, &b.contact, b_peer, diverted)
        else {
            return self.reply(&key, &request, 500, "Server Internal Error", &tag);
        };
        let relay = if !request.body.is_empty() && self.relay_wanted(&request.body, &b_peer) {
            match Relay::start(&self.ports, self.local.ip()).await {
                Ok(r) => Some(r),
                Err(_) => {
                    return self.reply(
                        &key,
                        &request,
                        503,
                        "Service Unavailable (no media ports)",
                        &tag,
                    );
                }
            }
        } else {
            None
        };
        invite.body = match &relay {
            Some(r) => rewrite_sdp(&offer_both_laws(&request.body), r.ip, r.port_b).into(),
            None => request.body.clone(),
        };
        let Ok(b_key) = self.ep.send_request(invite.clone(), b_peer) else {
            return self.reply(&key, &request, 500, "Server Internal Error", &tag);
        };
        self.calls.push(Call {
            caller,
            callee,
            a_invite: request,
            a_key: key,
            a_peer: peer,
            a_tag: tag,
            a_dialog: None,
            b_invite: invite,
            b_key,
            b_peer,
            b_dialog: None,
            relay,
            a_acked: None,
            answered: false,
            held: false,
            probed: Instant::now(),
            started: Instant::now(),
            no_answer_tried: false,
        });
    }

    /// The INVITE of a B leg: to the callee's `contact`, caller ID carried over, and a
    /// Diversion header when the call was forwarded (`(forwarder, reason)`). No body yet.
    fn b_leg_invite(
        &self,
        a: &Request,
        caller: &str,
        callee: &str,
        contact: &str,
        peer: Peer,
        diverted: Option<(&str, &str)>,
    ) -> Option<Request> {
        let local = self.local;
        let mut invite = build::request(
            Method::Invite,
            contact,
            &format!("sip:{caller}@{}", local.ip()),
            &format!("sip:{callee}@{}", local.ip()),
            peer.transport,
            local,
        )
        .ok()?;
        // Caller ID: the caller's display name and number.
        if let Some(from) = a.headers.get_raw(&Name::FROM).next() {
            let display = from.split('<').next().unwrap_or_default().trim();
            if display.starts_with('"') {
                let v = invite
                    .headers
                    .remove(&Name::FROM)
                    .and_then(|v| v.into_iter().next())
                    .map(|v| v.to_string())
                    .unwrap_or_default();
                invite.headers.insert(Name::FROM, format!("{display} {v}"));
            }
        }
        if let Some(ct) = a.headers.get_raw(&Name::CONTENT_TYPE).next() {
            invite.headers.insert(Name::CONTENT_TYPE, ct.clone());
        }
        if let Some((from, reason)) = diverted {
            invite.headers.insert(
                sip::headers::diversion_name(),
                format!("<sip:{from}@{}>;reason={reason};counter=1", local.ip()),
            );
        }
        Some(invite)
    }

    /// Call Forward No Answer: a call ringing longer than `forward.noanswer_seconds` at a
    /// station that forwards unanswered calls is cancelled there and rings the named
    /// station, with a Diversion header (`reason=no-answer`).
    fn forward_unanswered(&mut self, after: Duration) {
        let due: Vec<usize> = (0..self.calls.len())
            .filter(|&i| {
                let c = &self.calls[i];
                !c.answered && !c.no_answer_tried && c.started.elapsed() >= after
            })
            .collect();
        for i in due {
            self.calls[i].no_answer_tried = true;
            let (caller, callee) = (self.calls[i].caller.clone(), self.calls[i].callee.clone());
            let target = self
                .db
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .station_state(&callee)
                .map(|st| st.cf_noanswer)
                .unwrap_or_default();
            if target.is_empty() || target == caller || self.busy_elsewhere(&target, i) {
                continue;
            }
            let bindings = self
                .registrar
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .lookup(&target, SystemTime::now());
            let Some(b) = bindings.first() else { continue };
            let check = self
                .db
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&target)
                .map_or(NatCheck::Ip, |s| NatCheck::of(&s));
            let Some(peer) = nat::route(b, check) else {
                continue;
            };
            let a = self.calls[i].a_invite.clone();
            let Some(mut invite) = self.b_leg_invite(
                &a,
                &caller,
                &target,
                &b.contact,
                peer,
                Some((&callee, "no-answer")),
            ) else {
                continue;
            };
            invite.body = match &self.calls[i].relay {
                Some(r) => rewrite_sdp(&offer_both_laws(&a.body), r.ip, r.port_b).into(),
                None => a.body.clone(),
            };
            let Ok(key) = self.ep.send_request(invite.clone(), peer) else {
                continue;
            };
            let c = &mut self.calls[i];
            let _ = self.ep.cancel(&c.b_key);
            eprintln!("pbx-lite: call {caller} → {callee} not answered: forwarded to {target}");
            c.b_key = key;
            c.b_invite = invite;
            c.b_peer = peer;
            c.callee = target;
        }
    }

    /// Is `number` in a call other than call `i`?
    fn busy_elsewhere(&self, number: &str, i: usize) -> bool {
        self.calls
            .iter()
            .enumerate()
            .any(|(j, c)| j != i && (c.callee == number || c.caller == number))
    }

    /// Runs the feature code `dialled` for `caller`, if it is one; the outcome for the log.
    /// A caller not proven by INVITE authentication must at least call from the address its
    /// station registered from: anybody else gets no station features.
    fn feature_code(&self, caller: &str, dialled: &str, peer: Peer) -> Option<String> {
        let db = self.db.lock().unwrap_or_else(|e| e.into_inner());
        let (feature, args) = features::find(&self.features, &db, dialled)?;
        let authenticated = db.setting("security.invite_auth").unwrap_or_default() != "never";
        let registered_here = self
            .registrar
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .lookup(caller, SystemTime::now())
            .iter()
            .any(|r| nat::source_peer(&r.source).is_some_and(|s| s.addr.ip() == peer.addr.ip()));
        if !authenticated && !registered_here {
            return Some(format!(
                "refused: {} is not where {caller} registered",
                peer.addr
            ));
        }
        let r = features::Request {
            db: &db,
            caller,
            args,
        };
        Some(match feature.act(&r) {
            Ok(done) => done,
            Err(why) => format!("refused: {why}"),
        })
    }

    /// A response to one of our client transactions.
    pub fn on_response(&mut self, key: TsxKey, response: Response) {
        if let Some(i) = self.calls.iter().position(|c| c.b_key == key) {
            return self.on_b_invite_response(i, response);
        }
        if response.status < 200 {
            return;
        }
        if let Some(call) = self.probes.remove(&key) {
            // 408 (no answer), 481 (the phone forgot the call), 503 (transport failure).
            if matches!(response.status, 408 | 481 | 503)
                && let Some(i) = self.calls.iter().position(|c| c.a_key == call)
            {
                self.hang_up(i, &format!("probe answered {}", response.status));
            }
            return;
        }
        // The final answer to a forwarded request goes back to the side that asked.
        let Some((their_key, request, call_key, side)) = self.forwarded.remove(&key) else {
            return;
        };
        let mut r = request.make_response(response.status, &response.reason);
        r.body = response.body.clone();
        if let Some(c) = self.calls.iter().find(|c| c.a_key == call_key)
            && let Some(relay) = &c.relay
            && !response.body.is_empty()
        {
            // The answer to a forwarded re-INVITE: the asker sees the relay, and the relay
            // learns both phones' new addresses.
            let asker_port = if side == Side::A {
                relay.port_a
            } else {
                relay.port_b
            };
            let (asker_sdp, answer_sdp) = (sdp_address(&request.body), sdp_address(&response.body));
            r.body = rewrite_sdp(&response.body, relay.ip, asker_port).into();
            let (a, b) = if side == Side::A {
                (asker_sdp, answer_sdp)
            } else {
                (answer_sdp, asker_sdp)
            };
            relay.set_targets(Targets {
                a,
                b,
                transcode: Transcode::None,
            });
        }
        for v in response.headers.get_raw(&Name::CONTENT_TYPE) {
            r.headers.insert(Name::CONTENT_TYPE, v.clone());
        }
        if request.method == Method::Invite {
            r.headers
                .insert(Name::CONTACT, format!("<sip:pbx@{}>", self.local));
        }
        let _ = self.ep.send_response(&their_key, &r);
    }

    fn on_b_invite_response(&mut self, i: usize, response: Response) {
        let status = response.status;
        let c = &mut self.calls[i];
        let mut to_a = c.a_invite.make_response(status, &response.reason);
        to_a.set_to_tag(&c.a_tag);
        to_a.body = response.body.clone();
        if let Some(r) = &c.relay
            && !response.body.is_empty()
        {
            let (body, transcode) = answer_for_a(&c.a_invite.body, &response.body);
            to_a.body = rewrite_sdp(&body, r.ip, r.port_a).into();
            r.set_targets(Targets {
                a: sdp_address(&c.a_invite.body),
                b: sdp_address(&response.body),
                transcode,
            });
        }
        if let Some(ct) = response.headers.get_raw(&Name::CONTENT_TYPE).next() {
            to_a.headers.insert(Name::CONTENT_TYPE, ct.clone());
        }
        if status == 100 {
            return;
        }
        if (200..300).contains(&status) {
            if c.answered {
                // A retransmitted 2xx from B: ACK it again.
                if let Some(d) = &c.b_dialog {
                    let ack = d.ack(
                        d.local_seq,
                        &build::via_value(c.b_peer.transport, self.local, &build::new_branch()),
                    );
                    self.ep.send_stateless(c.b_peer, &Message::Request(ack));
                }
                return;
            }
            c.answered = true;
            if let Some(d) = Dialog::from_uac(&c.b_invite, &response) {
                let ack = d.ack(
                    d.local_seq,
                    &build::via_value(c.b_peer.transport, self.local, &build::new_branch()),
                );
                self.ep.send_stateless(c.b_peer, &Message::Request(ack));
                c.b_dialog = Some(d);
            }
            to_a.headers
                .insert(Name::CONTACT, format!("<sip:pbx@{}>", self.local));
            c.a_dialog = Dialog::from_uas(&c.a_invite, &c.a_tag);
            let (tx, rx) = oneshot::channel();
            c.a_acked = Some(tx);
            let _ = self.ep.send_response(&c.a_key.clone(), &to_a);
            retransmit_2xx(self.ep.clone(), c.a_peer, to_a, rx);
            return;
        }
        if status >= 300 {
            let key = c.a_key.clone();
            let _ = self.ep.send_response(&key, &to_a);
            self.calls.remove(i);
            return;
        }
        to_a.headers
            .insert(Name::CONTACT, format!("<sip:pbx@{}>", self.local));
        let key = c.a_key.clone();
        let _ = self.ep.send_response(&key, &to_a);
    }

    /// Which call and side an in-dialog request belongs to.
    fn find(&self, request: &Request) -> Option<(usize, Side)> {
        let id = DialogId::of_request(request)?;
        self.calls.iter().enumerate().find_map(|(i, c)| {
            if c.a_dialog.as_ref().is_some_and(|d| d.id == id)
                || (id.local_tag == c.a_tag
                    && Some(id.call_id.as_str())
                        == c.a_invite
                            .headers
                            .get_raw(&Name::CALL_ID)
                            .next()
                            .map(|v| v.as_str()))
            {
                Some((i, Side::A))
            } else if c.b_dialog.as_ref().is_some_and(|d| d.id == id) {
                Some((i, Side::B))
            } else {
                None
            }
        })
    }

    /// A request with a To tag: ACK, BYE, re-INVITE, INFO, UPDATE...
    pub fn on_in_dialog(&mut self, key: TsxKey, request: Request, peer: Peer) {
        let Some((i, side)) = self.find(&request) else {
            if request.method != Method::Ack {
                let _ = self.ep.send_response(
                    &key,
                    &request.make_response(481, "Call/Transaction Does Not Exist"),
                );
            }
            return;
        };
        let _ = peer;
        if request.method == Method::Ack {
            if side == Side::A
                && let Some(tx) = self.calls[i].a_acked.take()
            {
                let _ = tx.send(());
            }
            return;
        }
        let (other_dialog, other_peer) = {
            let c = &mut self.calls[i];
            match side {
                Side::A => (c.b_dialog.as_mut(), c.b_peer),
                Side::B => (c.a_dialog.as_mut(), c.a_peer),
            }
        };
        let Some(d) = other_dialog else {
            let _ = self
                .ep
                .send_response(&key, &request.make_response(491, "Request Pending"));
            return;
        };
        let mut fwd = d.request(
            request.method.clone(),
            &build::via_value(other_peer.transport, self.local, &build::new_branch()),
        );
        let call_key = self.calls[i].a_key.clone();
        fwd.headers
            .insert(Name::CONTACT, format!("<sip:pbx@{}>", self.local));
        for name in [Name::CONTENT_TYPE, Name::from("Session-Expires")] {
            for v in request.headers.get_raw(&name) {
                fwd.headers.insert(name.clone(), v.clone());
            }
        }
        fwd.body = request.body.clone();
        if request.method == Method::Invite && !request.body.is_empty() {
            self.calls[i].held = is_hold(&request.body);
        }
        if let Some(r) = &self.calls[i].relay
            && !request.body.is_empty()
        {
            // A re-INVITE (hold, resume): the other phone sees the relay's port for its leg.
            let port = if side == Side::A { r.port_b } else { r.port_a };
            fwd.body = rewrite_sdp(&request.body, r.ip, port).into();
        }
        let bye = request.method == Method::Bye;
        match self.ep.send_request(fwd, other_peer) {
            Ok(ck) => {
                self.forwarded.insert(ck, (key, request, call_key, side));
            }
            Err(_) => {
                let _ = self
                    .ep
                    .send_response(&key, &request.make_response(500, "Server Internal Error"));
            }
        }
        if bye {
            // The call is over for the PBX; the forwarded BYE's answer still reaches the asker.
            self.calls.remove(i);
        }
    }

    /// CANCEL of A's INVITE: cancel B, answer A 487.
    pub fn on_cancel(&mut self, invite: TsxKey) {
        let Some(i) = self
            .calls
            .iter()
            .position(|c| c.a_key == invite && !c.answered)
        else {
            return;
        };
        let c = self.calls.remove(i);
        let _ = self.ep.cancel(&c.b_key);
        self.reply(&c.a_key, &c.a_invite, 487, "Request Terminated", &c.a_tag);
    }

    /// Calls in progress, for status.
    pub fn count(&self) -> usize {
        self.calls.len()
    }

    /// Called about once a second: asks answered calls' phones if they are still there
    /// (`calls.probe_seconds`) and hangs up relayed calls whose RTP stopped while not on hold
    /// (`media.rtp_timeout`), so a vanished phone's call does not linger.
    pub fn tick(&mut self) {
        let (probe, rtp_timeout, no_answer) = {
            let db = self.db.lock().unwrap_or_else(|e| e.into_inner());
            let get =
                |k: &str, d: u64| db.setting(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d);
            (
                get("calls.probe_seconds", 30),
                get("media.rtp_timeout", 60),
                get("forward.noanswer_seconds", 15),
            )
        };
        self.forward_unanswered(Duration::from_secs(no_answer));
        if rtp_timeout > 0
            && let Some(i) = self.calls.iter().position(|c| {
                c.answered
                    && !c.held
                    && c.relay
                        .as_ref()
                        .is_some_and(|r| r.idle() > Duration::from_secs(rtp_timeout))
            })
        {
            self.hang_up(i, &format!("no RTP for {rtp_timeout} s"));
        }
        if probe == 0 {
            return;
        }
        let due: Vec<usize> = (0..self.calls.len())
            .filter(|&i| {
                let c = &self.calls[i];
                c.answered && c.probed.elapsed() >= Duration::from_secs(probe)
            })
            .collect();
        for i in due {
            self.calls[i].probed = Instant::now();
            let call = self.calls[i].a_key.clone();
            for (options, peer) in self.requests_to_both(i, Method::Options) {
                if let Ok(k) = self.ep.send_request(options, peer) {
                    self.probes.insert(k, call.clone());
                }
            }
        }
    }

    /// An in-dialog request from the PBX to each phone of call `i` (as far as its dialog
    /// exists), with where to send it.
    fn requests_to_both(&mut self, i: usize, method: Method) -> Vec<(Request, Peer)> {
        let local = self.local;
        let c = &mut self.calls[i];
        let (a_peer, b_peer) = (c.a_peer, c.b_peer);
        [(c.a_dialog.as_mut(), a_peer), (c.b_dialog.as_mut(), b_peer)]
            .into_iter()
            .filter_map(|(d, peer)| {
                let via = build::via_value(peer.transport, local, &build::new_branch());
                d.map(|d| (d.request(method.clone(), &via), peer))
            })
            .collect()
    }

    /// Ends call `i` from the PBX's side: BYE to both phones.
    fn hang_up(&mut self, i: usize, why: &str) {
        for (bye, peer) in self.requests_to_both(i, Method::Bye) {
            let _ = self.ep.send_request(bye, peer);
        }
        let c = self.calls.remove(i);
        eprintln!("pbx-lite: call {} → {} hung up: {why}", c.caller, c.callee);
    }
}

/// Does this SDP put the call on hold (sendonly, recvonly, inactive, or c=0.0.0.0)?
fn is_hold(sdp: &[u8]) -> bool {
    let text = String::from_utf8_lossy(sdp);
    text.lines()
        .map(str::trim)
        .any(|l| matches!(l, "a=sendonly" | "a=recvonly" | "a=inactive") || l.ends_with(" 0.0.0.0"))
}

/// Re-sends our 2xx to A (T1 doubling to T2) until A's ACK comes or 32 s pass (§13.3.1.4).
fn retransmit_2xx(ep: Arc<Endpoint>, peer: Peer, ok: Response, mut acked: oneshot::Receiver<()>) {
    tokio::spawn(async move {
        if peer.transport.is_reliable() {
            return;
        }
        let mut interval = Duration::from_millis(500);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(32);
        let msg = Message::Response(ok);
        loop {
            tokio::select! {
                _ = &mut acked => return,
                _ = tokio::time::sleep(interval) => {}
            }
            if tokio::time::Instant::now() >= deadline {
                return;
            }
            ep.send_stateless(peer, &msg);
            interval = (interval * 2).min(Duration::from_secs(4));
        }
    });
}

/// The answer A sees for B's answer `b`: when B chose the G.711 law A did not offer, the
/// answer names A's law and the relay transcodes.
fn answer_for_a(a_offer: &[u8], b: &[u8]) -> (Vec<u8>, Transcode) {
    let a_pts = sdp_payloads(a_offer);
    let chosen = sdp_payloads(b).first().copied();
    let swap = |from: u8, to: u8, name: &str| {
        let text = String::from_utf8_lossy(b);
        let out: String = text
            .lines()
            .map(|l| {
                let l = l.trim_end_matches('\r');
                if let Some(rest) = l.strip_prefix("m=audio ") {
                    let mut parts: Vec<String> =
                        rest.split_whitespace().map(str::to_string).collect();
                    for p in parts.iter_mut().skip(2) {
                        if *p == from.to_string() {
                            *p = to.to_string();
                        }
                    }
                    format!("m=audio {}\r\n", parts.join(" "))
                } else if l.starts_with(&format!("a=rtpmap:{from} ")) {
                    format!("a=rtpmap:{to} {name}/8000\r\n")
                } else {
                    format!("{l}\r\n")
                }
            })
            .collect();
        out.into_bytes()
    };
    match chosen {
        Some(8) if a_pts.contains(&0) && !a_pts.contains(&8) => {
            (swap(8, 0, "PCMU"), Transcode::UlawToAlaw)
        }
        Some(0) if a_pts.contains(&8) && !a_pts.contains(&0) => {
            (swap(0, 8, "PCMA"), Transcode::AlawToUlaw)
        }
        _ => (b.to_vec(), Transcode::None),
    }
}
