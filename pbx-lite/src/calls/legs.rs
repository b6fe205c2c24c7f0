//! One phone's dialog with the PBX: how it started (the phone called, or the PBX rang it),
//! its SIP dialog, the phone's SDP, its media port when anchored, and what it is paired with.

use crate::address::Advertised;
use crate::relay::{MediaPort, Remote};
use crate::sdp::{self, Direction};
use media::sdes::{Keys, Policy, Verdict};
use media::srtp::Crypto;
use sip::dialog::{Dialog, DialogId};
use sip::endpoint::Endpoint;
use sip::transaction::{Peer, TsxKey};
use sip::types::Name;
use sip::{Message, Method, Request, Response, build};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::oneshot;

pub(crate) type LegId = u64;

/// The `station` of a leg to or from a trunk: `trunk:NAME`.
pub(crate) const TRUNK: &str = "trunk:";

/// What a leg is paired with.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) enum Partner {
    #[default]
    None,
    /// Another leg: talking to it, or ringing it.
    Leg(LegId),
    /// A caller waiting while these legs ring (more than one for a group).
    Ringing(Vec<LegId>),
    /// Hold music: parked.
    Music,
    /// A conference room, by its owner.
    Room(String),
    /// The PBX itself serves the phone (voicemail).
    Service,
}

pub(crate) struct Leg {
    pub(crate) id: LegId,
    /// The phone's station number.
    pub(crate) station: String,
    pub(crate) peer: Peer,
    /// The PBX's addresses as this phone reaches them (Via, Contact, relay SDP).
    pub(crate) here: Advertised,
    /// The phone called the PBX (the PBX is the UAS), or the PBX rang the phone.
    pub(crate) uas: bool,
    /// The INVITE that started the leg (received or sent) and its transaction.
    pub(crate) invite: Request,
    pub(crate) key: TsxKey,
    /// Our To tag when the phone called.
    pub(crate) tag: String,
    pub(crate) dialog: Option<Dialog>,
    pub(crate) answered: bool,
    /// Stops the retransmission of our last 2xx when the ACK comes.
    acked: Option<oneshot::Sender<()>>,
    /// The phone's last SDP, and whether it put the call on hold.
    pub(crate) remote_sdp: Vec<u8>,
    pub(crate) holds: bool,
    /// Since when the phone holds (for Hold Recall).
    pub(crate) held_since: Option<Instant>,
    /// When the phone last took the call off hold.
    pub(crate) resumed_at: Option<Instant>,
    /// The PBX's media port for this phone, when its media is anchored.
    pub(crate) media: Option<MediaPort>,
    /// The law (0 or 8) agreed with the phone, once the PBX answered or was answered.
    law: Option<u8>,
    /// What decides this leg's SRTP, the PBX's keys for it, and the keys in force
    /// `(the PBX's, the phone's)` once agreed.
    pub(crate) srtp: Policy,
    keys: Keys,
    srtp_keys: Option<(Crypto, Crypto)>,
    /// The PBX made the last offer: the phone's next SDP is its answer.
    awaiting_answer: bool,
    sdp_session: u64,
    sdp_version: u64,
    pub(crate) partner: Partner,
    /// For a leg the PBX rang: the leg it rang for.
    pub(crate) rang_for: LegId,
    pub(crate) probed: Instant,
    pub(crate) created: Instant,
    pub(crate) no_answer_tried: bool,
    /// A waiting leg (blind transfer) goes back to this station at this time.
    pub(crate) recall: Option<(Instant, String)>,
    /// Set by the task serving this leg (voicemail) when it is done: the PBX hangs up.
    pub(crate) service: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    /// Ring group members this caller's call has yet to ring.
    pub(crate) pending: Vec<String>,
    /// An outside caller's number as the office's users would dial it back (a call from a
    /// trunk): what the stations it rings are shown.
    pub(crate) shown: Option<String>,
    /// Our INVITE to a trunk was answered with our credentials once (401/407).
    pub(crate) authed: bool,
    /// The call this leg placed (a phone's or an outside line's INVITE), kept when it ends.
    pub(crate) record: Option<super::records::Record>,
}

impl Leg {
    fn new(
        id: LegId,
        station: &str,
        (peer, here): (Peer, Advertised),
        invite: Request,
        key: TsxKey,
        now: Instant,
    ) -> Leg {
        Leg {
            id,
            station: station.to_string(),
            peer,
            here,
            uas: true,
            invite,
            key,
            tag: String::new(),
            dialog: None,
            answered: false,
            acked: None,
            remote_sdp: Vec::new(),
            holds: false,
            held_since: None,
            resumed_at: None,
            media: None,
            law: None,
            srtp: Policy::default(),
            keys: Keys::default(),
            srtp_keys: None,
            awaiting_answer: false,
            sdp_session: rand::random::<u32>().into(),
            sdp_version: 0,
            partner: Partner::None,
            rang_for: 0,
            probed: now,
            created: now,
            no_answer_tried: false,
            recall: None,
            service: None,
            pending: Vec::new(),
            shown: None,
            authed: false,
            record: None,
        }
    }

    /// A phone's INVITE to the PBX, which will answer it with To tag `tag`.
    pub(crate) fn answering(
        id: LegId,
        station: &str,
        at: (Peer, Advertised),
        key: TsxKey,
        invite: Request,
        tag: &str,
        now: Instant,
    ) -> Leg {
        let mut l = Leg::new(id, station, at, invite, key, now);
        l.remote_sdp = l.invite.body.to_vec();
        l.tag = tag.to_string();
        l
    }

    /// An INVITE the PBX is about to send to a phone, for leg `rang_for`.
    pub(crate) fn calling(
        id: LegId,
        station: &str,
        at: (Peer, Advertised),
        invite: Request,
        rang_for: LegId,
        now: Instant,
    ) -> Leg {
        let key = TsxKey::client_with(build::new_branch(), Method::Invite);
        let mut l = Leg::new(id, station, at, invite, key, now);
        l.uas = false;
        l.rang_for = rang_for;
        l.partner = Partner::Leg(rang_for);
        l
    }

    pub(crate) fn anchor_with(&mut self, port: MediaPort) {
        self.media = Some(port);
        if !self.remote_sdp.is_empty() {
            self.point_media();
        }
    }

    /// The phone's SDP changed: its media address, and the law it sends; when it answers
    /// an offer of the PBX's, the SRTP keys it accepted.
    pub(crate) fn set_remote(&mut self, body: Vec<u8>, now: Instant) {
        self.set_holds(sdp::is_hold(&body), now);
        if std::mem::take(&mut self.awaiting_answer) && self.media.is_some() {
            self.srtp_keys = self.keys.accepted(&body);
            if self.srtp_keys.is_none() && self.srtp.offers() == Some(true) {
                tracing::warn!("{} answered an RTP/SAVP offer without SRTP", self.station);
            }
        }
        self.remote_sdp = body;
        self.point_media();
    }

    /// Is the leg's media encrypted (SRTP agreed)?
    pub(crate) fn encrypted(&self) -> bool {
        self.srtp_keys.is_some()
    }

    /// Points the relay port (if any) at what the phone's SDP says, with the SRTP keys
    /// agreed.
    fn point_media(&self) {
        let mut r = self.remote_of(&self.remote_sdp);
        if let Some(law) = self.law {
            r.pt = law;
        }
        if let Some(m) = &self.media {
            m.set_remote(r);
            self.key_port(m);
        }
    }

    fn key_port(&self, port: &MediaPort) {
        if let Err(e) = port.set_srtp(self.srtp_keys.clone()) {
            tracing::warn!("SRTP for {}: {e}", self.station);
        }
    }

    /// What the phone's SDP `body` says, and where its SIP comes from (its media may only
    /// come from one of the two: see [`crate::relay::Latch`]).
    fn remote_of(&self, body: &[u8]) -> Remote {
        Remote {
            signalled: Some(self.peer.addr.ip()),
            ..Remote::of(body)
        }
    }

    pub(crate) fn set_holds(&mut self, holds: bool, now: Instant) {
        if holds && !self.holds {
            self.held_since = Some(now);
        } else if !holds {
            self.held_since = None;
        }
        if self.holds && !holds {
            self.resumed_at = Some(now);
        }
        self.holds = holds;
    }

    /// The PBX's next SDP for this anchored phone: an answer to `offer`, or an offer.
    pub(crate) fn our_sdp(&mut self, direction: Direction, offer: Option<&[u8]>) -> Vec<u8> {
        let Some(port) = self.media.as_ref().map(MediaPort::port) else {
            return Vec::new();
        };
        self.sdp_version += 1;
        let law = offer.map(|o| {
            let offered = sdp::payloads(o);
            match self.law {
                Some(l) if offered.contains(&l) => l,
                _ => sdp::g711(o),
            }
        });
        let sdes = match offer {
            // An offer the policy refuses was answered 488 before this.
            Some(o) => match self.srtp.on_offer(o) {
                Verdict::Srtp { theirs, savp } => {
                    let ours = self.keys.answer(&theirs);
                    self.srtp_keys = Some((ours.clone(), theirs));
                    (savp, vec![ours])
                }
                Verdict::Plain | Verdict::Refuse(_) => {
                    self.srtp_keys = None;
                    (false, Vec::new())
                }
            },
            None => {
                self.awaiting_answer = true;
                match self.srtp.offers() {
                    Some(savp) => (savp, self.keys.offer()),
                    None => (false, Vec::new()),
                }
            }
        };
        if let Some(l) = law {
            self.law = Some(l);
            let mut r = self.remote_of(offer.unwrap_or_default());
            r.pt = l;
            if let Some(m) = &self.media {
                m.set_remote(r);
            }
        }
        if let Some(m) = &self.media {
            self.key_port(m);
        }
        let event = offer.map_or(Some(101), sdp::event_payload);
        sdp::ours(
            self.here.media,
            port,
            (self.sdp_session, self.sdp_version),
            direction,
            law,
            event,
            (sdes.0, &sdes.1),
        )
    }

    /// The trunk this leg goes to or comes from, if it is an outside leg.
    pub(crate) fn trunk(&self) -> Option<&str> {
        self.station.strip_prefix(TRUNK)
    }

    /// Is this request in this leg's dialog?
    pub(crate) fn matches(&self, id: &DialogId) -> bool {
        match &self.dialog {
            Some(d) => d.id == *id,
            None => self.uas && id.local_tag == self.tag && self.call_id() == id.call_id,
        }
    }

    /// The Call-ID of the leg's INVITE.
    pub(crate) fn call_id(&self) -> &str {
        self.invite
            .headers
            .get_raw(&Name::CALL_ID)
            .next()
            .map_or("", |c| c.as_str())
    }

    /// Who the phone is, as a From value for the legs the PBX rings for it: (display name,
    /// or empty; number).
    pub(crate) fn caller_id(&self) -> (String, String) {
        if let Some(number) = &self.shown {
            return (String::new(), number.clone());
        }
        let display = if self.uas {
            self.invite
                .headers
                .get_raw(&Name::FROM)
                .next()
                .map(|f| f.split('<').next().unwrap_or_default().trim().to_string())
                .and_then(|d| Some(unquote(d.strip_prefix('"')?.strip_suffix('"')?)))
                .unwrap_or_default()
        } else {
            String::new()
        };
        (display, self.station.clone())
    }

    /// A new request in this leg's dialog, with where to send it (None before the dialog).
    pub(crate) fn in_dialog(&mut self, method: Method) -> Option<(Request, Peer)> {
        let peer = self.peer;
        let via = build::via_value(peer.transport, self.here.sip, &build::new_branch());
        let d = self.dialog.as_mut()?;
        Some((d.request(method, &via), peer))
    }

    /// The PBX's Contact for this phone.
    pub(crate) fn contact(&self) -> String {
        format!(
            "<sip:pbx@{}{}>",
            self.here.sip,
            build::transport_param(self.peer.transport)
        )
    }

    /// Sends a 2xx to an INVITE of this phone and re-sends it until the ACK.
    pub(crate) fn send_2xx(&mut self, ep: &Arc<Endpoint>, key: &TsxKey, ok: Response) {
        self.acked = Some(ep.send_2xx(key, self.peer, ok));
    }

    /// The phone's ACK came.
    pub(crate) fn acked(&mut self) {
        if let Some(tx) = self.acked.take() {
            let _ = tx.send(());
        }
    }

    /// Answers the phone's INVITE with `body`: the dialog starts.
    pub(crate) fn answer(&mut self, ep: &Arc<Endpoint>, body: Vec<u8>) {
        let mut ok = self.invite.make_response(200, "OK");
        ok.set_to_tag(&self.tag);
        ok.headers.insert(Name::CONTACT, self.contact());
        if !body.is_empty() {
            ok.headers.insert(Name::CONTENT_TYPE, "application/sdp");
        }
        ok.body = body.into();
        self.answered = true;
        if let Some(r) = &self.record {
            r.answered("");
        }
        self.dialog = Dialog::from_uas(&self.invite, &self.tag);
        let key = self.key.clone();
        self.send_2xx(ep, &key, ok);
    }

    /// The phone answered the PBX's INVITE: the dialog starts, and the 2xx is ACKed.
    pub(crate) fn on_answer(&mut self, ep: &Arc<Endpoint>, response: &Response, now: Instant) {
        self.answered = true;
        self.dialog = Dialog::from_uac(&self.invite, response);
        if self.media.is_some() && !response.body.is_empty() {
            self.law = Some(sdp::g711(&response.body));
        }
        self.set_remote(response.body.to_vec(), now);
        self.ack_again(ep);
    }

    /// ACKs the phone's 2xx (again, when it was retransmitted).
    pub(crate) fn ack_again(&self, ep: &Arc<Endpoint>) {
        if let Some(d) = &self.dialog {
            let via = build::via_value(self.peer.transport, self.here.sip, &build::new_branch());
            ep.send_stateless(self.peer, &Message::Request(d.ack(d.local_seq, &via)));
        }
    }
}

/// The hold music when no `hold.music` file is set: a slow arpeggio, about 3 s, at a
/// comfortable level.
pub(crate) fn built_in_music() -> Vec<i16> {
    const NOTES: [f32; 8] = [523.3, 659.3, 784.0, 1046.5, 784.0, 659.3, 587.3, 698.5];
    let per_note = 8000 * 3 / 8;
    let mut out = Vec::with_capacity(per_note * NOTES.len());
    for f in NOTES {
        for n in 0..per_note {
            let t = n as f32 / 8000.0;
            let envelope = (1.0 - n as f32 / per_note as f32).max(0.0).powf(0.5);
            let s = (2.0 * std::f32::consts::PI * f * t).sin() * 6000.0 * envelope;
            out.push(s as i16);
        }
    }
    out
}

/// A quoted string's content (RFC 3261 §25.1: a backslash stands for the character after it).
fn unquote(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        out.push(if c == '\\' {
            chars.next().unwrap_or(c)
        } else {
            c
        });
    }
    out
}

/// The legs of the calls under way, found by id, by the Call-ID of their INVITE (an
/// in-dialog request or a response names it) and counted by station (is it busy?), so no
/// lookup walks every leg. A leg's station and Call-ID stay as they were when it came in.
#[derive(Default)]
pub(crate) struct Legs {
    by_id: HashMap<LegId, Leg>,
    by_call_id: HashMap<String, Vec<LegId>>,
    per_station: HashMap<String, usize>,
}

impl Legs {
    pub(crate) fn insert(&mut self, id: LegId, leg: Leg) {
        if let Some(old) = self.by_id.remove(&id) {
            self.unindex(&old);
        }
        self.by_call_id
            .entry(leg.call_id().to_string())
            .or_default()
            .push(id);
        *self.per_station.entry(leg.station.clone()).or_default() += 1;
        self.by_id.insert(id, leg);
    }

    pub(crate) fn remove(&mut self, id: &LegId) -> Option<Leg> {
        let leg = self.by_id.remove(id)?;
        self.unindex(&leg);
        Some(leg)
    }

    fn unindex(&mut self, leg: &Leg) {
        if let Some(ids) = self.by_call_id.get_mut(leg.call_id()) {
            ids.retain(|i| *i != leg.id);
            if ids.is_empty() {
                self.by_call_id.remove(leg.call_id());
            }
        }
        if let Some(n) = self.per_station.get_mut(&leg.station) {
            *n -= 1;
            if *n == 0 {
                self.per_station.remove(&leg.station);
            }
        }
    }

    pub(crate) fn get(&self, id: &LegId) -> Option<&Leg> {
        self.by_id.get(id)
    }

    pub(crate) fn get_mut(&mut self, id: &LegId) -> Option<&mut Leg> {
        self.by_id.get_mut(id)
    }

    pub(crate) fn contains_key(&self, id: &LegId) -> bool {
        self.by_id.contains_key(id)
    }

    pub(crate) fn values(&self) -> impl Iterator<Item = &Leg> {
        self.by_id.values()
    }

    /// The legs whose INVITE had this Call-ID.
    pub(crate) fn of_call<'a>(&'a self, call_id: &str) -> impl Iterator<Item = &'a Leg> + use<'a> {
        self.by_call_id
            .get(call_id)
            .into_iter()
            .flatten()
            .filter_map(|id| self.by_id.get(id))
    }

    /// Is `station` in a call, or being rung?
    pub(crate) fn busy(&self, station: &str) -> bool {
        self.per_station.contains_key(station)
    }
}

impl std::ops::Index<&LegId> for Legs {
    type Output = Leg;
    fn index(&self, id: &LegId) -> &Leg {
        &self.by_id[id]
    }
}
