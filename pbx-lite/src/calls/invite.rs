//! A new INVITE: who may call (digest, or the registered address), where the call goes
//! (a feature code, a ring group, or a station as [`super::route`] decides), and ringing the
//! station on a new leg.

use super::*;

impl Calls {
    /// A new INVITE (no To tag): authenticated, then a feature code or ring group when the
    /// number is no station's, else routed to a station ([`route::route`]).
    pub async fn on_invite(&mut self, key: TsxKey, request: Request, peer: Peer) {
        if let Some(t) = self.trunks.of_source(peer).cloned() {
            return self.incoming_from_trunk(key, request, peer, t).await;
        }
        let tag = build::new_tag();
        let callee = user_of(&request.uri);
        let caller = request.header_user(Name::FROM).unwrap_or_default();
        let access = self.db().setting("numberplan.trunk").unwrap_or_default();
        let outside = (!access.is_empty())
            .then(|| callee.strip_prefix(access.as_str()))
            .flatten()
            .filter(|rest| !rest.is_empty() && self.db().get(&callee).is_err())
            .map(str::to_string);
        if self
            .db()
            .setting("security.invite_auth")
            .unwrap_or_default()
            != "never"
            && let Err(mut refusal) = self.authorize(&request, &caller, peer)
        {
            refusal.set_to_tag(&tag);
            if outside.is_some() && !self.registered_anywhere(peer) {
                self.refuse_outside(
                    &peer,
                    &caller,
                    format!(
                        "outside call to {callee} from an address no station registered from: answered {}",
                        refusal.status
                    ),
                );
            }
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
        leg.record = Some(self.recorder.start(&caller, &callee));
        leg.srtp = self.srtp_policy(&caller, &peer);
        if !request.body.is_empty()
            && let sdes::Verdict::Refuse(why) = leg.srtp.on_offer(&request.body)
        {
            tracing::info!("{caller} calling {callee}: 488, {why}");
            return self.reply_to_invite(&leg, 488, "Not Acceptable Here");
        }
        if let Some(rest) = outside
            && self.db().ring_group(&callee).ok().flatten().is_none()
        {
            return self.outgoing_to_trunk(leg, &caller, &rest).await;
        }
        if self.db().get(&callee).is_err() {
            return self.dial_code(leg, &caller, &callee, peer).await;
        }
        match route::route(&caller, &callee, &Lookup(self)) {
            Route::Refuse { status, reason } => self.reply_to_invite(&leg, status, reason),
            Route::Voicemail { mailbox } => self.send_to_voicemail(leg, &mailbox).await,
            Route::Ring { station, diverted } => {
                self.ring_station(leg, &station, diverted).await;
            }
        }
    }

    /// A number that is no station's: a ring group, or a feature code (answered `480`
    /// whatever its outcome, as the manual says, unless it connects the caller), or 404.
    async fn dial_code(&mut self, leg: Leg, caller: &str, callee: &str, peer: Peer) {
        let mut leg = match self.ring_group(leg, callee).await {
            Ok(()) => return,
            Err(l) => l,
        };
        let Some(action) = self.feature_code(caller, callee, peer) else {
            return self.reply_to_invite(&leg, 404, "Not Found");
        };
        // A feature code is no call: it leaves no record.
        if let Some(r) = leg.record.take() {
            r.discard();
        }
        let refused = |why: String| format!("refused: {why}");
        // Features that connect the caller take its leg, and hand it back when they fail.
        let connects = |r: Result<String, (String, Leg)>| match r {
            Ok(text) => (text, None),
            Err((why, leg)) => (refused(why), Some(leg)),
        };
        let (text, unanswered) = match action {
            Ok(Action::Done(text)) => (text, Some(leg)),
            Ok(Action::Park(slot)) => {
                let r = self.park(caller, &slot).await;
                (r.unwrap_or_else(refused), Some(leg))
            }
            Ok(Action::Conference) => {
                let r = self.conference(caller).await;
                (r.unwrap_or_else(refused), Some(leg))
            }
            Ok(Action::Retrieve(slot)) => connects(self.retrieve(leg, &slot).await),
            Ok(Action::Voicemail) => connects(self.voicemail_menu(leg).await),
            Ok(Action::Pickup(which)) => connects(self.pickup(leg, which).await),
            Err(why) => (refused(why), Some(leg)),
        };
        tracing::info!("{caller} dialled {callee}: {text}");
        if let Some(leg) = unanswered {
            self.reply_to_invite(&leg, 480, "Temporarily Unavailable");
        }
    }

    /// Rings `station` for the caller on `leg` (anchoring the media in the relay when it
    /// must be), `diverted` naming the station first called.
    pub(super) async fn ring_station(
        &mut self,
        mut leg: Leg,
        station: &str,
        diverted: Option<route::Diversion>,
    ) {
        let Some((binding, b_peer)) = self.reach(station) else {
            return self.reply_to_invite(&leg, 480, "Temporarily Unavailable");
        };
        if !leg.remote_sdp.is_empty() && self.relay_wanted(&leg, station, &b_peer) {
            match self.open_port().await {
                Some(p) => leg.anchor_with(p),
                None => {
                    return self.reply_to_invite(&leg, 503, "Service Unavailable (no media ports)");
                }
            }
        }
        let id = leg.id;
        self.legs.insert(id, leg);
        let diverted = diverted.as_ref().map(|(f, r)| (f.as_str(), *r));
        let caller_id = self.legs[&id].caller_id();
        match self
            .ring(id, station, &binding, b_peer, &caller_id, diverted)
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

    /// Has any station registered from `peer`'s address?
    fn registered_anywhere(&self, peer: Peer) -> bool {
        let registrar = self.registrar.lock().unwrap_or_else(|e| e.into_inner());
        registrar.has_source(peer.addr.ip())
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
        build::set_display_name(&mut invite, display);
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
        leg.srtp = self.srtp_policy(callee, &peer);
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
}

/// The office as the routing decision sees it: the database, the registrar and the calls
/// under way.
pub(super) struct Lookup<'a>(pub(super) &'a Calls);

impl route::Office for Lookup<'_> {
    fn state(&self, number: &str) -> stations::db::StationState {
        self.0.db().station_state(number).unwrap_or_default()
    }
    fn reachable(&self, number: &str) -> bool {
        self.0.reach(number).is_some()
    }
    fn can_take_call(&self, number: &str) -> bool {
        self.0.can_take_call(number)
    }
    fn cf_unreachable(&self, number: &str) -> Option<String> {
        self.0.db().get(number).ok().and_then(|s| s.cf_unreachable)
    }
    fn mailbox(&self, number: &str) -> Option<String> {
        self.0.mailbox_of(number)
    }
}
