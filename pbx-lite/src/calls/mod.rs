//! Back-to-back calls between stations. The PBX is one side of every dialog: each phone's
//! dialog with the PBX is a [`Leg`], and legs are paired through their [`Partner`]. A new
//! INVITE makes a leg for the caller and rings the callee on a new leg — `404` for an unknown
//! number, `480` when the callee is not registered, `486` when it is busy or in Do Not
//! Disturb, forwarding as its station says. Because legs are paired rather than fixed, the
//! features can re-pair them: a transfer joins the two far ends, park and retrieve move a
//! phone to hold music and on to another station, pickup answers a ringing caller from
//! another phone, and a conference moves legs into a mixing room.
//!
//! Media either goes directly between two phones (their SDPs pass through the PBX) or is
//! anchored in the PBX's relay: then each leg has its own [`MediaPort`], the PBX writes the
//! SDP each phone sees, answers their re-INVITEs itself, and moves a leg's media by changing
//! its port's route (see [`Calls::settle`]). A direct call is anchored with a re-INVITE when
//! a feature needs it (hold music, park, transfer, conference).

mod in_dialog;
mod legs;
mod media;
mod saved;

use crate::address::{Addressing, Advertised, uri_host};
use crate::features::{self, Action};
use crate::nat::{self, NatCheck};
use crate::registrar::Registrar;
use crate::relay::{MediaPort, PortRange, Room};
use crate::sdp::{self, Direction};
pub(crate) use legs::{Leg, LegId, Partner};
pub(crate) use saved::SavedDialog;
use sip::endpoint::Endpoint;
use sip::transaction::{Peer, TsxKey};
use sip::types::Name;
use sip::{Method, Request, Response, build};
use stations::Db;
use stations::db::Registration;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// An in-dialog request passed on to the partner's phone, waiting for its answer.
struct Forwarded {
    asker_key: TsxKey,
    request: Request,
    asker: LegId,
    to: LegId,
}

/// A parked call (OfficeServ Call Park, "System Hold").
pub(crate) struct Park {
    pub(crate) leg: LegId,
    pub(crate) by: String,
    pub(crate) recall_at: Instant,
}

/// All calls of the PBX.
/// The time the driver tells the call logic with each event; the call logic reads no clock
/// itself (scripts/check-clock), so tests can drive it on virtual time.
pub use sip::clock::Clock;

pub struct Calls {
    pub(crate) ep: Arc<Endpoint>,
    /// The time of the event being handled (see [`Calls::set_clock`]).
    pub(crate) clock: Clock,
    registrar: Arc<Mutex<Registrar>>,
    pub(crate) db: Arc<Mutex<Db>>,
    /// Where SIP listens (maybe a wildcard): see [`Calls::here`] for what phones are told.
    pub(crate) bound: SocketAddr,
    ports: Arc<PortRange>,
    pub(crate) legs: HashMap<LegId, Leg>,
    next_leg: LegId,
    forwarded: HashMap<TsxKey, Forwarded>,
    /// In-dialog OPTIONS probes in flight → the leg they ask about.
    probes: HashMap<TsxKey, LegId>,
    /// Re-INVITEs the PBX itself sent (to anchor or move media) → their leg.
    reinvites: HashMap<TsxKey, LegId>,
    pub(crate) parks: HashMap<String, Park>,
    /// Conference rooms by owner station.
    pub(crate) rooms: HashMap<String, Room>,
    /// Where voicemail messages are kept, the message counts each mailbox's phones were last
    /// told, and message-summary subscriptions.
    pub(crate) voicemail_dir: std::path::PathBuf,
    pub(crate) mwi_sent: HashMap<String, (u32, u32)>,
    pub(crate) subscriptions: Vec<features::Subscription>,
    features: Vec<Box<dyn features::Feature>>,
    /// Legs that asked to be woken (the next ring group batch), and the receiving end the
    /// driver takes with [`Calls::take_timers`].
    timers: tokio::sync::mpsc::UnboundedSender<LegId>,
    timers_rx: Option<tokio::sync::mpsc::UnboundedReceiver<LegId>>,
}

fn user_of(uri: &sip::Uri) -> String {
    uri.user().unwrap_or_default().to_string()
}

impl Calls {
    pub fn new(
        ep: Arc<Endpoint>,
        registrar: Arc<Mutex<Registrar>>,
        db: Arc<Mutex<Db>>,
        bound: SocketAddr,
        ports: Arc<PortRange>,
        voicemail_dir: std::path::PathBuf,
        clock: Clock,
    ) -> Self {
        let subscriptions =
            features::restore_subscriptions(&db.lock().unwrap_or_else(|e| e.into_inner()), clock);
        let (timers, timers_rx) = tokio::sync::mpsc::unbounded_channel();
        Calls {
            ep,
            clock,
            registrar,
            db,
            bound,
            ports,
            legs: HashMap::new(),
            next_leg: 1,
            forwarded: HashMap::new(),
            probes: HashMap::new(),
            reinvites: HashMap::new(),
            parks: HashMap::new(),
            rooms: HashMap::new(),
            voicemail_dir,
            mwi_sent: HashMap::new(),
            subscriptions,
            features: features::all(),
            timers,
            timers_rx: Some(timers_rx),
        }
    }

    /// Tells the call logic the time of the event it is about to handle.
    pub fn set_clock(&mut self, clock: Clock) {
        self.clock = clock;
    }

    /// The wake-ups [`Calls::wake_after`] schedules; the driver passes each to
    /// [`Calls::on_timer`].
    pub fn take_timers(&mut self) -> Option<tokio::sync::mpsc::UnboundedReceiver<LegId>> {
        self.timers_rx.take()
    }

    /// Wakes leg `id` after `delay`.
    pub(crate) fn wake_after(&self, id: LegId, delay: Duration) {
        let tx = self.timers.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = tx.send(id);
        });
    }

    /// A wake-up for leg `id`: the next batch of its ring group.
    pub async fn on_timer(&mut self, id: LegId) {
        self.next_batch(id).await;
    }

    /// The PBX's SIP and relay addresses as the phone at `peer` reaches them.
    pub(crate) fn here(&self, peer: &Peer) -> Advertised {
        Addressing::from_db(&self.db()).toward(self.bound, peer.addr.ip())
    }

    pub(crate) fn db(&self) -> std::sync::MutexGuard<'_, Db> {
        self.db.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn setting_u64(&self, key: &str, default: u64) -> u64 {
        self.db()
            .setting(key)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    }

    fn reply(&self, key: &TsxKey, request: &Request, status: u16, reason: &str, tag: &str) {
        let mut r = request.make_response(status, reason);
        r.set_to_tag(tag);
        let _ = self.ep.send_response(key, &r);
    }

    /// Is the station on any leg (talking, ringing, held, parked, in a conference)?
    pub(crate) fn busy(&self, number: &str) -> bool {
        self.legs.values().any(|l| l.station == number)
    }

    /// Can the station ring now: free, or busy with call waiting on?
    fn can_take_call(&self, number: &str) -> bool {
        !self.busy(number) || self.db().get(number).is_ok_and(|s| s.call_waiting)
    }

    fn lookup(&self, number: &str) -> Vec<Registration> {
        self.registrar
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .lookup(number, self.clock.wall)
    }

    /// Where requests for `number` go: its first registered contact, routed as its NAT
    /// Check says.
    pub(crate) fn reach(&self, number: &str) -> Option<(Registration, Peer)> {
        let b = self.lookup(number).into_iter().next()?;
        let check = self
            .db()
            .get(number)
            .map_or(NatCheck::Ip, |s| NatCheck::of(&s));
        let peer = nat::route(&b, check)?;
        Some((b, peer))
    }

    /// Anchor this call's media in the relay? `media.relay`: always, never, or auto —
    /// direct only when the caller's media, the caller's own address and the callee's phone
    /// are all on the private networks (a phone behind a NAT names a private address in its
    /// SDP, but its packets come from the NAT's public one).
    pub(crate) fn relay_wanted(&self, offer: &[u8], caller: &Peer, callee: &Peer) -> bool {
        let mode = self.db().setting("media.relay").unwrap_or_default();
        let addressing = Addressing::from_db(&self.db());
        let inside = |ip| addressing.in_private_networks(ip);
        match mode.as_str() {
            "always" => true,
            "never" => false,
            _ => {
                !(sdp::address(offer).is_some_and(|a| inside(a.ip()))
                    && inside(caller.addr.ip())
                    && inside(callee.addr.ip()))
            }
        }
    }

    pub(crate) async fn open_port(&self) -> Option<MediaPort> {
        MediaPort::open(&self.ports, self.bound.ip()).await.ok()
    }

    fn new_leg_id(&mut self) -> LegId {
        self.next_leg += 1;
        self.next_leg
    }

    /// A new INVITE (no To tag).
    pub async fn on_invite(&mut self, key: TsxKey, request: Request, peer: Peer) {
        let tag = build::new_tag();
        let mut callee = user_of(&request.uri);
        let caller = request.header_user(Name::FROM).unwrap_or_default();
        let known = self.db().get(&callee).is_ok();
        if self
            .db()
            .setting("security.invite_auth")
            .unwrap_or_default()
            != "never"
            && let Err(mut refusal) = self.authorize(&request, &caller, peer)
        {
            refusal.set_to_tag(&tag);
            // A challenge goes once, statelessly: a forged source gets one answer, not the
            // INVITE transaction's dozen retransmissions. (A refusal keeps its transaction,
            // so a retransmitted INVITE is not counted as another guess.)
            let _ = if refusal.status == 407 {
                self.ep.send_response_once(&key, &refusal)
            } else {
                self.ep.send_response(&key, &refusal)
            };
            return;
        }
        let id = self.new_leg_id();
        let at = (peer, self.here(&peer));
        let mut leg = Leg::answering(
            id,
            &caller,
            at,
            key.clone(),
            request.clone(),
            &tag,
            self.clock.now,
        );
        if !known {
            leg = match self.ring_group(leg, &callee).await {
                Ok(()) => return,
                Err(l) => l,
            };
            let Some(action) = self.feature_code(&caller, &callee, peer) else {
                return self.reply(&key, &request, 404, "Not Found", &tag);
            };
            let outcome = match action {
                Ok(Action::Done(text)) => Ok(text),
                Ok(Action::Park(slot)) => self.park(&caller, &slot).await,
                Ok(Action::Conference) => self.conference(&caller).await,
                Ok(Action::Retrieve(slot)) => match self.retrieve(leg, &slot).await {
                    Ok(text) => {
                        tracing::info!("{caller} dialled {callee}: {text}");
                        return;
                    }
                    Err((why, l)) => {
                        leg = l;
                        Err(why)
                    }
                },
                Ok(Action::Voicemail) => match self.voicemail_menu(leg).await {
                    Ok(text) => {
                        tracing::info!("{caller} dialled {callee}: {text}");
                        return;
                    }
                    Err((why, l)) => {
                        leg = l;
                        Err(why)
                    }
                },
                Ok(Action::Pickup(which)) => match self.pickup(leg, which).await {
                    Ok(text) => {
                        tracing::info!("{caller} dialled {callee}: {text}");
                        return;
                    }
                    Err((why, l)) => {
                        leg = l;
                        Err(why)
                    }
                },
                Err(why) => Err(why),
            };
            let text = outcome.unwrap_or_else(|why| format!("refused: {why}"));
            tracing::info!("{caller} dialled {callee}: {text}");
            return self.reply(&leg.key, &leg.invite, 480, "Temporarily Unavailable", &tag);
        }
        // Do Not Disturb, then Call Forward All (followed while it leads somewhere new).
        let mut diverted_from: Option<(String, &str)> = None;
        {
            let db = self.db();
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
        let mut reach = self.reach(&callee);
        // Call forwarding Unreachable (OfficeServ): a station that is not registered sends its
        // calls to the station it names, and the INVITE says who forwarded (RFC 5806).
        if self.lookup(&callee).is_empty() {
            let target = self.db().get(&callee).ok().and_then(|s| s.cf_unreachable);
            if let Some(t) = target
                && t != callee
                && let Some(r) = self.reach(&t)
            {
                reach = Some(r);
                let from = std::mem::replace(&mut callee, t);
                diverted_from.get_or_insert((from, "unavailable"));
            }
        }
        if reach.is_none() {
            if let Some(mailbox) = self.mailbox_of(&callee) {
                return self.send_to_voicemail(leg, &mailbox).await;
            }
            return self.reply(&key, &request, 480, "Temporarily Unavailable", &tag);
        }
        if !self.can_take_call(&callee) {
            // Call Forward Busy: the station it names rings instead, if it can take the call.
            let target = self
                .db()
                .station_state(&callee)
                .map(|st| st.cf_busy)
                .unwrap_or_default();
            let target_reach =
                if target.is_empty() || target == caller || !self.can_take_call(&target) {
                    None
                } else {
                    self.reach(&target)
                };
            match target_reach {
                Some(r) => {
                    reach = Some(r);
                    let from = std::mem::replace(&mut callee, target);
                    diverted_from.get_or_insert((from, "user-busy"));
                }
                None => {
                    if let Some(mailbox) = self.mailbox_of(&callee) {
                        return self.send_to_voicemail(leg, &mailbox).await;
                    }
                    return self.reply(&key, &request, 486, "Busy Here", &tag);
                }
            }
        }
        let Some((binding, b_peer)) = reach else {
            return self.reply(&key, &request, 480, "Temporarily Unavailable", &tag);
        };
        if !request.body.is_empty() && self.relay_wanted(&request.body, &peer, &b_peer) {
            match self.open_port().await {
                Some(p) => leg.anchor_with(p),
                None => {
                    return self.reply(
                        &key,
                        &request,
                        503,
                        "Service Unavailable (no media ports)",
                        &tag,
                    );
                }
            }
        }
        self.legs.insert(id, leg);
        let diverted = diverted_from.as_ref().map(|(f, r)| (f.as_str(), *r));
        let caller_id = self.legs[&id].caller_id();
        match self
            .ring(id, &callee, &binding, b_peer, &caller_id, diverted)
            .await
        {
            Some(b) => self
                .legs
                .get_mut(&id)
                .map(|l| l.partner = Partner::Ringing(vec![b])),
            None => {
                self.end(id, 500, "Server Internal Error");
                None
            }
        };
    }

    /// Is this request from `station`? With INVITE authentication (the default) it must
    /// answer the digest challenge as the station; without it, it must come from the
    /// address the station registered from.
    pub(crate) fn authorize(
        &self,
        request: &Request,
        station: &str,
        peer: Peer,
    ) -> Result<(), Response> {
        if self
            .db()
            .setting("security.invite_auth")
            .unwrap_or_default()
            == "never"
        {
            return if self.registered_from(station, peer) {
                Ok(())
            } else {
                Err(request.make_response(403, "Forbidden"))
            };
        }
        let db = self.db();
        let dir = crate::server::DbDirectory(&db);
        let policy = crate::server::policy(&db);
        let mut registrar = self.registrar.lock().unwrap_or_else(|e| e.into_inner());
        let verdict = registrar
            .authorize_invite(self.clock.wall, request, peer, &policy, &dir)
            .map(|_| ());
        // Failed guesses go to the access log now, as a REGISTER's do.
        for a in registrar.take_access() {
            let _ = db.log_access(&a);
        }
        verdict
    }

    /// Did this request come from exactly where `station` registered from — address, port
    /// and transport? (Without INVITE authentication that is all there is to go by; the
    /// address alone let any other program on the phone's machine, or a packet spoofed from
    /// its address to the usual port of another, act as the station.)
    fn registered_from(&self, station: &str, peer: Peer) -> bool {
        self.lookup(station)
            .iter()
            .any(|r| nat::source_peer(&r.source).is_some_and(|s| s == peer))
    }

    /// Rings `callee` at `binding` on a new leg, for the leg `from`, showing `caller_id` (a
    /// From value: display name and number) and a Diversion header when the call was
    /// forwarded (`(forwarder, reason)`). When `from` is anchored, so is the new leg and the
    /// PBX makes the offer; otherwise `from`'s own offer goes through.
    pub(crate) async fn ring(
        &mut self,
        from: LegId,
        callee: &str,
        binding: &Registration,
        peer: Peer,
        caller_id: &(String, String),
        diverted: Option<(&str, &str)>,
    ) -> Option<LegId> {
        let here = self.here(&peer);
        let host = uri_host(here.sip.ip());
        let (display, caller) = caller_id;
        let mut invite = build::request(
            Method::Invite,
            &binding.contact,
            &format!("sip:{caller}@{host}"),
            &format!("sip:{callee}@{host}"),
            peer.transport,
            here.sip,
        )
        .ok()?;
        if !display.is_empty() {
            let v = invite
                .headers
                .remove(&Name::FROM)
                .and_then(|v| v.into_iter().next())
                .map(|v| v.to_string())
                .unwrap_or_default();
            invite.headers.insert(Name::FROM, format!("{display} {v}"));
        }
        if let Some((by, reason)) = diverted {
            invite.headers.insert(
                sip::headers::diversion_name(),
                format!("<sip:{by}@{host}>;reason={reason};counter=1"),
            );
        }
        let anchored = self.legs.get(&from)?.media.is_some();
        let port = if anchored {
            Some(self.open_port().await?)
        } else {
            None
        };
        let id = self.new_leg_id();
        let mut leg = Leg::calling(id, callee, (peer, here), invite, from, self.clock.now);
        match port {
            Some(p) => {
                leg.anchor_with(p);
                leg.invite.body = leg.our_sdp(Direction::SendRecv, None).into();
            }
            None => leg.invite.body = self.legs[&from].remote_sdp.clone().into(),
        }
        if !leg.invite.body.is_empty() {
            leg.invite
                .headers
                .insert(Name::CONTENT_TYPE, "application/sdp");
        }
        leg.key = self.ep.send_request(leg.invite.clone(), peer).ok()?;
        self.legs.insert(id, leg);
        Some(id)
    }

    /// Runs the feature code `dialled` for `caller`, if it is one. A caller not proven by
    /// INVITE authentication must at least call from the address its station registered
    /// from: anybody else gets no station features.
    fn feature_code(
        &self,
        caller: &str,
        dialled: &str,
        peer: Peer,
    ) -> Option<Result<Action, String>> {
        let db = self.db();
        let (feature, args) = features::find(&self.features, &db, dialled)?;
        let authenticated = db.setting("security.invite_auth").unwrap_or_default() != "never";
        if !authenticated && !self.registered_from(caller, peer) {
            return Some(Err(format!(
                "{} is not where {caller} registered",
                peer.addr
            )));
        }
        Some(feature.act(&features::Request {
            db: &db,
            caller,
            args,
        }))
    }

    /// Answers a phone's INVITE that will not be connected.
    pub(crate) fn reply_to_invite(&self, leg: &Leg, status: u16, reason: &str) {
        self.reply(&leg.key, &leg.invite, status, reason, &leg.tag);
    }

    /// Answers `leg` (a phone that dialled a code that connects: retrieve, pickup) from the
    /// relay and pairs it with `other`, whose media moves into the relay too.
    pub(crate) async fn connect(&mut self, mut leg: Leg, other: LegId) -> Result<(), Leg> {
        let Some(port) = self.open_port().await else {
            return Err(leg);
        };
        leg.anchor_with(port);
        let offer = leg.remote_sdp.clone();
        let body = leg.our_sdp(
            sdp::direction(&offer).answer(),
            (!offer.is_empty()).then_some(offer.as_slice()),
        );
        leg.answer(&self.ep, body);
        leg.partner = Partner::Leg(other);
        let id = leg.id;
        self.legs.insert(id, leg);
        if let Some(o) = self.legs.get_mut(&other) {
            o.partner = Partner::Leg(id);
            o.recall = None;
        }
        self.anchor(other).await;
        self.settle(id);
        Ok(())
    }

    /// Ends leg `id` from the PBX's side, whatever its state — BYE once answered, CANCEL while
    /// ringing out, `status` to an INVITE not yet answered — and forgets it.
    pub(crate) fn end(&mut self, id: LegId, status: u16, reason: &str) {
        let Some(mut leg) = self.legs.remove(&id) else {
            return;
        };
        self.leave_room(&mut leg);
        if leg.answered {
            if let Some((bye, peer)) = leg.in_dialog(Method::Bye) {
                let _ = self.ep.send_request(bye, peer);
            }
        } else if leg.uas {
            self.reply(&leg.key, &leg.invite, status, reason, &leg.tag);
        } else {
            let _ = self.ep.cancel(&leg.key);
        }
    }

    fn leave_room(&mut self, leg: &mut Leg) {
        if let Partner::Room(owner) = &leg.partner
            && let (Some(room), Some(port)) = (self.rooms.get_mut(owner), &leg.media)
        {
            room.leave(port);
        }
    }

    /// Leg `id` ended from the phone's side (BYE, CANCEL, failure, vanished): what it was
    /// paired with follows — a transfer completes when the phone leaves a consultation call
    /// while it holds another, otherwise the partner is hung up too.
    pub(crate) async fn gone(&mut self, id: LegId, why: &str) {
        if self.transfer_on_hang_up(id).await {
            return;
        }
        let Some(mut leg) = self.legs.remove(&id) else {
            return;
        };
        self.leave_room(&mut leg);
        match &leg.partner {
            Partner::Leg(o) => {
                let o = *o;
                if let Some(other) = self.legs.get(&o) {
                    tracing::info!("call {} ↔ {} ended: {why}", leg.station, other.station);
                }
                self.end_or_unhook(o, id);
            }
            Partner::Ringing(forks) => {
                for f in forks.clone() {
                    self.end(f, 487, "Request Terminated");
                }
            }
            Partner::Room(owner) => {
                let owner = owner.clone();
                self.room_member_left(&owner);
            }
            Partner::Music => {
                self.parks.retain(|_, p| p.leg != id);
                self.forget_park(id);
            }
            Partner::None | Partner::Service => {}
        }
    }

    /// The partner of a leg that ended: a ringing caller gets the failure, a fork is dropped
    /// from its caller's list, anyone else is hung up.
    fn end_or_unhook(&mut self, o: LegId, gone: LegId) {
        let Some(other) = self.legs.get_mut(&o) else {
            return;
        };
        if let Partner::Ringing(forks) = &mut other.partner {
            forks.retain(|f| *f != gone);
            if !forks.is_empty() {
                return;
            }
        }
        self.end(o, 487, "Request Terminated");
    }

    /// A response to one of our client transactions.
    pub async fn on_response(&mut self, key: TsxKey, response: Response) {
        if let Some(id) = self
            .legs
            .values()
            .find(|l| !l.uas && l.key == key)
            .map(|l| l.id)
        {
            return self.on_ringing_response(id, response).await;
        }
        if response.status < 200 {
            return;
        }
        if let Some(id) = self.reinvites.remove(&key) {
            return self.on_reinvite_answer(id, &response);
        }
        if let Some(id) = self.probes.remove(&key) {
            // 408 (no answer), 481 (the phone forgot the call), 503 (transport failure).
            if matches!(response.status, 408 | 481 | 503) {
                self.gone(id, &format!("probe answered {}", response.status))
                    .await;
            }
            return;
        }
        if let Some(f) = self.forwarded.remove(&key) {
            self.on_forwarded_answer(f, &response);
        }
    }

    /// A response to the INVITE of a leg the PBX rang.
    async fn on_ringing_response(&mut self, id: LegId, response: Response) {
        let status = response.status;
        if status == 100 {
            return;
        }
        let Some(leg) = self.legs.get_mut(&id) else {
            return;
        };
        let from = leg.rang_for;
        if (200..300).contains(&status) {
            if leg.answered {
                leg.ack_again(&self.ep); // a retransmitted 2xx
                return;
            }
            leg.on_answer(&self.ep, &response, self.clock.now);
            return self.answered(id, from).await;
        }
        if status >= 300 {
            let busy_station = self.legs.remove(&id).map(|l| l.station);
            let Some(caller) = self.legs.get_mut(&from) else {
                return;
            };
            if let Partner::Ringing(forks) = &mut caller.partner {
                forks.retain(|f| *f != id);
                if !forks.is_empty() || !caller.pending.is_empty() {
                    return; // other members still ring, or will
                }
            }
            if caller.answered {
                // A transfer target or a recall that failed: the waiting phone goes back.
                return self.target_failed(from).await;
            }
            // The phone itself said busy (in a call the PBX does not know of, or its own
            // DND): Call Forward Busy, or voicemail, as when the PBX knows it is busy.
            if let (486 | 600, Some(callee)) = (status, busy_station) {
                let target = self
                    .db()
                    .station_state(&callee)
                    .map(|st| st.cf_busy)
                    .unwrap_or_default();
                if self.divert(from, None, &callee, &target, "user-busy").await {
                    return;
                }
            }
            return self.end(from, status, &response.reason);
        }
        // 180/183: the caller hears it ringing (with early media when media is direct).
        let Some(caller) = self.legs.get(&from) else {
            return;
        };
        if caller.answered || !caller.uas {
            return;
        }
        let mut r = caller.invite.make_response(status, &response.reason);
        r.set_to_tag(&caller.tag);
        if caller.media.is_none() && !response.body.is_empty() {
            r.body = response.body.clone();
            r.headers.insert(Name::CONTENT_TYPE, "application/sdp");
        }
        r.headers.insert(Name::CONTACT, caller.contact());
        let _ = self.ep.send_response(&caller.key, &r);
    }

    /// Leg `id` (rung for `from`) answered.
    async fn answered(&mut self, id: LegId, from: LegId) {
        let Some(caller) = self.legs.get(&from) else {
            // Nobody is waiting any more.
            return self.end(id, 0, "");
        };
        let forks = match &caller.partner {
            Partner::Ringing(f) => f.clone(),
            Partner::Leg(o) if *o == id => Vec::new(),
            _ => return self.end(id, 0, ""),
        };
        let caller_answered = caller.answered;
        for f in forks.into_iter().filter(|f| *f != id) {
            self.end(f, 0, ""); // the other phones of a group stop ringing
        }
        if let Some(c) = self.legs.get_mut(&from) {
            c.partner = Partner::Leg(id);
            c.pending.clear();
        }
        if caller_answered {
            // A blind transfer's target or a recall: both sides are anchored.
            if let Some(c) = self.legs.get_mut(&from) {
                c.recall = None;
            }
            self.anchor(id).await;
        } else {
            let ep = self.ep.clone();
            let answer_sdp = self.legs.get(&id).map(|l| l.remote_sdp.clone());
            if let Some(c) = self.legs.get_mut(&from) {
                let body = if c.media.is_some() {
                    let offer = c.remote_sdp.clone();
                    c.our_sdp(sdp::direction(&offer).answer(), Some(&offer))
                } else {
                    answer_sdp.unwrap_or_default()
                };
                c.answer(&ep, body);
            }
        }
        let stale = self.legs.get(&from).map(|c| c.station.clone());
        if let Some(owner) = stale {
            self.close_stale_owner_legs(&owner, from);
        }
        self.settle(from);
    }

    /// CANCEL of a caller's INVITE: the phones it rings stop, and it gets 487 — unless the
    /// caller holds another call, which makes this a blind transfer.
    pub async fn on_cancel(&mut self, invite: TsxKey) {
        let Some(id) = self
            .legs
            .values()
            .find(|l| l.uas && l.key == invite && !l.answered)
            .map(|l| l.id)
        else {
            return;
        };
        if self.transfer_on_hang_up(id).await {
            return;
        }
        if let Some(Partner::Ringing(forks)) = self.legs.get(&id).map(|l| l.partner.clone()) {
            for f in forks {
                self.end(f, 0, "");
            }
        }
        self.end(id, 487, "Request Terminated");
    }

    /// Called about once a second: Call Forward No Answer, transfer and park recalls, and
    /// whether the phones are still there — in-dialog OPTIONS every `calls.probe_seconds`,
    /// and anchored calls whose RTP stopped while not on hold (`media.rtp_timeout`) are hung
    /// up, so a vanished phone's call does not linger.
    pub async fn tick(&mut self) {
        let probe = self.setting_u64("calls.probe_seconds", 30);
        let rtp_timeout = self.setting_u64("media.rtp_timeout", 60);
        let no_answer = self.setting_u64("forward.noanswer_seconds", 15);
        self.forward_unanswered(Duration::from_secs(no_answer))
            .await;
        self.recalls().await;
        self.hold_recalls().await;
        self.end_finished_services();
        self.mwi_tick();
        if rtp_timeout > 0 {
            let limit = Duration::from_secs(rtp_timeout);
            let silent = self.legs.values().find(|l| {
                let Partner::Leg(o) = l.partner else {
                    return false;
                };
                l.answered
                    && !l.holds
                    && self.legs.get(&o).is_some_and(|p| p.answered && !p.holds)
                    && l.media.as_ref().is_some_and(|m| m.idle() > limit)
            });
            if let Some(id) = silent.map(|l| l.id) {
                self.end(id, 0, "");
                self.gone_quietly(id, &format!("no RTP for {rtp_timeout} s"))
                    .await;
            }
        }
        if probe == 0 {
            return;
        }
        let now = self.clock.now;
        let due: Vec<LegId> = self
            .legs
            .values()
            .filter(|l| {
                l.answered && now.saturating_duration_since(l.probed) >= Duration::from_secs(probe)
            })
            .map(|l| l.id)
            .collect();
        for id in due {
            let Some(leg) = self.legs.get_mut(&id) else {
                continue;
            };
            leg.probed = now;
            if let Some((options, peer)) = leg.in_dialog(Method::Options)
                && let Ok(k) = self.ep.send_request(options, peer)
            {
                self.probes.insert(k, id);
            }
        }
    }

    /// The partner side of a leg the PBX itself just ended (already removed).
    async fn gone_quietly(&mut self, id: LegId, why: &str) {
        let partner = self
            .legs
            .values()
            .find(|l| l.partner == Partner::Leg(id))
            .map(|l| l.id);
        if let Some(o) = partner {
            tracing::info!("call hung up: {why}");
            self.end(o, 0, "");
        }
    }
}
