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

mod answers;
mod in_dialog;
mod invite;
mod legs;
mod live;
mod media;
mod records;
mod route;
mod saved;
mod trunk;

use crate::address::{Addressing, Advertised, uri_host};
use crate::features::{self, Action};
use crate::nat::{self, NatCheck};
use crate::registrar::Registrar;
use crate::relay::{MediaPort, PortRange, Room};
use crate::sdp::{self, Direction};
use ::media::sdes;
pub(crate) use legs::{Leg, LegId, Legs, Partner};
pub use live::LiveCall;
use route::Route;
pub(crate) use saved::SavedDialog;
use sip::endpoint::Endpoint;
use sip::transaction::{Peer, TransportKind, TsxKey};
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
    pub(crate) legs: Legs,
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
    /// Outside lines: registrations at providers, providers' addresses.
    pub(crate) trunks: crate::trunks::Trunks,
    /// Keeps a record of every call placed.
    pub(crate) recorder: records::Recorder,
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
            bound,
            ports,
            legs: Legs::default(),
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
            trunks: Default::default(),
            recorder: records::Recorder::new(db.clone(), clock.wall),
            db,
        }
    }

    /// Tells the call logic the time of the event it is about to handle.
    pub fn set_clock(&mut self, clock: Clock) {
        self.clock = clock;
        self.recorder.set_time(clock.wall);
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
        // The port of the transport the phone uses: its in-dialog requests come back there.
        let bound = self.ep.local_addr(peer.transport).unwrap_or(self.bound);
        Addressing::from_db(&self.db()).toward(bound, peer.addr.ip())
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
        self.legs.busy(number)
    }

    /// Can the station ring now: free, or busy with call waiting on?
    fn can_take_call(&self, number: &str) -> bool {
        !self.busy(number) || self.db().get(number).is_ok_and(|s| s.call_waiting)
    }

    pub(crate) fn lookup(&self, number: &str) -> Vec<Registration> {
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

    /// Anchor the media of the call from `leg` to `callee` (reached at `at`) in the relay?
    /// Always when SRTP may be involved (the PBX keys each leg itself). Otherwise
    /// `media.relay`: always, never, or auto — direct only when the caller's media, the
    /// caller's own address and the callee's phone are all on the private networks (a phone
    /// behind a NAT names a private address in its SDP, but its packets come from the NAT's
    /// public one).
    pub(crate) fn relay_wanted(&self, leg: &Leg, callee: &str, at: &Peer) -> bool {
        if leg.trunk().is_some() {
            return true; // every outside call is anchored
        }
        let offer = &leg.remote_sdp;
        if !matches!(leg.srtp.on_offer(offer), sdes::Verdict::Plain)
            || self.srtp_policy(callee, at).may_encrypt()
        {
            return true;
        }
        let mode = self.db().setting("media.relay").unwrap_or_default();
        let addressing = Addressing::from_db(&self.db());
        let inside = |ip| addressing.in_private_networks(ip);
        match mode.as_str() {
            "always" => true,
            "never" => false,
            _ => {
                !(sdp::address(offer).is_some_and(|a| inside(a.ip()))
                    && inside(leg.peer.addr.ip())
                    && inside(at.addr.ip()))
            }
        }
    }

    /// What decides SRTP with `station`'s phone at `peer`: the station's `srtp`, and whether
    /// keys may go to it (its signalling is TLS, or `srtp.plain_signalling` is yes).
    pub(crate) fn srtp_policy(&self, station: &str, peer: &Peer) -> sdes::Policy {
        let db = self.db();
        sdes::Policy {
            mode: db
                .get(station)
                .map_or(sdes::Mode::Optional, |s| sdes::Mode::parse(&s.srtp)),
            keys_may_travel: peer.transport == TransportKind::Tls
                || db.setting("srtp.plain_signalling").unwrap_or_default() == "yes",
        }
    }

    pub(crate) async fn open_port(&self) -> Option<MediaPort> {
        MediaPort::open(&self.ports, self.bound.ip()).await.ok()
    }

    fn new_leg_id(&mut self) -> LegId {
        self.next_leg += 1;
        self.next_leg
    }

    /// Answers a phone's INVITE that will not be connected.
    pub(crate) fn reply_to_invite(&self, leg: &Leg, status: u16, reason: &str) {
        if let Some(r) = &leg.record {
            r.ended_with(status);
        }
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
            self.reply_to_invite(&leg, status, reason);
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

    /// Called about once a second: Call Forward No Answer, transfer and park recalls, and
    /// whether the phones are still there — in-dialog OPTIONS every `calls.probe_seconds`,
    /// and anchored calls whose RTP stopped while not on hold (`media.rtp_timeout`) are hung
    /// up, so a vanished phone's call does not linger.
    pub async fn tick(&mut self) {
        let mut trunks = std::mem::take(&mut self.trunks);
        let toward = |ip| {
            self.here(&Peer::new(TransportKind::Udp, SocketAddr::new(ip, 5060)))
                .sip
        };
        trunks
            .tick(&self.db, &self.ep, toward, self.clock.now)
            .await;
        trunks.save_calls(&self.trunk_calls(), &self.db);
        self.trunks = trunks;
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
