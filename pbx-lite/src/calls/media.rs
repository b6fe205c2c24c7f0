//! Where a leg's media goes: what each leg hears (its partner, hold music, a room, a PBX
//! service), applied to the relay ports, and moving a direct-media leg into the relay with
//! a re-INVITE.

use super::{Calls, LegId, Partner, legs};
use crate::sdp::Direction;
use sip::types::Name;
use sip::{Message, Method, Response, build};

/// What a leg hears.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Hearing {
    Nothing,
    Peer(LegId),
    Music,
    Room(String),
    /// A task of the PBX's talks to it (voicemail): its media is that task's.
    Service,
}

impl Calls {
    /// Moves leg `id`'s media into the relay with a re-INVITE, if it is not there yet.
    pub(crate) async fn anchor(&mut self, id: LegId) {
        if self.legs.get(&id).is_none_or(|l| l.media.is_some()) {
            return self.settle(id);
        }
        let Some(port) = self.open_port().await else {
            return;
        };
        let Some(leg) = self.legs.get_mut(&id) else {
            return;
        };
        leg.anchor_with(port);
        self.offer_relay(id);
        self.settle(id);
    }

    /// Sends anchored leg `id` a re-INVITE offering its relay port, sendrecv; the answer
    /// goes to [`Calls::on_reinvite_answer`].
    pub(crate) fn offer_relay(&mut self, id: LegId) {
        self.offer_relay_with(id, Direction::SendRecv);
    }

    /// Sends anchored leg `id` a re-INVITE offering its relay port with `direction` (to a
    /// trunk: inactive while the station holds, sendrecv when it resumes).
    pub(crate) fn offer_relay_with(&mut self, id: LegId, direction: Direction) {
        let Some(leg) = self.legs.get_mut(&id) else {
            return;
        };
        let body = leg.our_sdp(direction, None);
        let contact = leg.contact();
        if let Some((mut reinvite, peer)) = leg.in_dialog(Method::Invite) {
            reinvite.body = body.into();
            reinvite
                .headers
                .insert(Name::CONTENT_TYPE, "application/sdp");
            reinvite.headers.insert(Name::CONTACT, contact);
            if let Ok(k) = self.ep.send_request(reinvite, peer) {
                self.reinvites.insert(k, id);
            }
        }
    }

    /// The answer to the PBX's own re-INVITE: the phone's new media address, and the ACK.
    pub(super) fn on_reinvite_answer(&mut self, id: LegId, response: &Response) {
        let Some(leg) = self.legs.get_mut(&id) else {
            return;
        };
        if !(200..300).contains(&response.status) {
            tracing::info!("re-INVITE to {} answered {}", leg.station, response.status);
            return;
        }
        if let Some(d) = &mut leg.dialog {
            d.handle_response(response);
            let via = build::via_value(leg.peer.transport, leg.here.sip, &build::new_branch());
            let ack = d.ack(response.cseq().map_or(0, |c| c.seq), &via);
            self.ep.send_stateless(leg.peer, &Message::Request(ack));
        }
        if !response.body.is_empty() {
            leg.set_remote(response.body.to_vec(), self.clock.now);
        }
        self.settle(id);
    }

    /// What leg `id` should hear now.
    pub(super) fn hearing(&self, id: LegId) -> Hearing {
        let Some(leg) = self.legs.get(&id) else {
            return Hearing::Nothing;
        };
        match &leg.partner {
            Partner::Leg(o) => {
                let Some(other) = self.legs.get(o) else {
                    return Hearing::Nothing;
                };
                if !leg.answered || (other.holds && leg.trunk().is_some()) {
                    // A provider whose party is held was told a=inactive: nothing goes.
                    Hearing::Nothing
                } else if !other.answered
                    || (other.holds && leg.trunk().is_none() && self.system_tone(&leg.station))
                {
                    // Waiting for a transfer target or a recall to answer, or held (a
                    // provider is told a=inactive instead, and sent nothing).
                    Hearing::Music
                } else {
                    Hearing::Peer(*o)
                }
            }
            Partner::Music => Hearing::Music,
            Partner::Service => Hearing::Service,
            // The owner's held leg joins with its final resume.
            Partner::Room(owner) if !leg.holds => Hearing::Room(owner.clone()),
            Partner::Room(_) => Hearing::Nothing,
            Partner::None | Partner::Ringing(_) => Hearing::Nothing,
        }
    }

    /// Does the PBX play hold tone to this station (OfficeServ Tone Source "Use System
    /// Tone", the default), rather than leave it to the holding phone?
    pub(super) fn system_tone(&self, station: &str) -> bool {
        self.db()
            .get(station)
            .map_or(true, |s| s.tone_source != "phone")
    }

    /// Hold music: the `hold.music` WAV, or a built-in tune.
    pub(super) fn music(&self) -> impl FnMut(&mut [i16]) -> bool + Send + 'static {
        let path = self.db().setting("hold.music").unwrap_or_default();
        let mut source = (!path.is_empty())
            .then(|| media::wav::WavSource::open(std::path::Path::new(&path), 8000, true).ok())
            .flatten()
            .unwrap_or_else(|| media::wav::WavSource::from_samples(legs::built_in_music(), true));
        move |frame: &mut [i16]| source.fill(frame)
    }

    /// Points leg `id`'s media (and its partner's) where they belong now: bridged to the
    /// partner, hold music, a conference room, or nothing. Only anchored legs can move;
    /// direct media stays between the phones.
    pub(crate) fn settle(&mut self, id: LegId) {
        self.apply(id);
        if let Some(Partner::Leg(o)) = self.legs.get(&id).map(|l| l.partner.clone()) {
            self.apply(o);
        }
    }

    pub(super) fn apply(&mut self, id: LegId) {
        let hearing = self.hearing(id);
        let music = matches!(hearing, Hearing::Music).then(|| self.music());
        match hearing {
            Hearing::Service => {}
            Hearing::Peer(o) => {
                if let Some(mp) = self.legs.get_mut(&id).and_then(|l| l.media.as_mut()) {
                    mp.stop_playing();
                }
                let port = |l: LegId| self.legs.get(&l).and_then(|l| l.media.as_ref());
                if let (Some(mp), Some(op)) = (port(id), port(o)) {
                    op.forward_to(mp);
                }
            }
            Hearing::Room(owner) => {
                if let (Some(leg), Some(room)) =
                    (self.legs.get_mut(&id), self.rooms.get_mut(&owner))
                    && let Some(port) = &mut leg.media
                {
                    room.join(port);
                }
            }
            Hearing::Music | Hearing::Nothing => {
                let partner = self.legs.get(&id).map(|l| l.partner.clone());
                if let Some(Partner::Room(owner)) = &partner
                    && let (Some(room), Some(port)) = (
                        self.rooms.get_mut(owner),
                        self.legs.get(&id).and_then(|l| l.media.as_ref()),
                    )
                {
                    room.leave(port);
                }
                if let Some(Partner::Leg(o)) = partner
                    && let Some(op) = self.legs.get(&o).and_then(|l| l.media.as_ref())
                {
                    op.set_route(crate::relay::Route::Drop);
                }
                if let Some(port) = self.legs.get_mut(&id).and_then(|l| l.media.as_mut()) {
                    if !matches!(partner, Some(Partner::Leg(_))) {
                        port.set_route(crate::relay::Route::Drop);
                    }
                    match music {
                        Some(m) if !port.playing() => port.play(m),
                        Some(_) => {}
                        None => port.stop_playing(),
                    }
                }
            }
        }
    }
}
