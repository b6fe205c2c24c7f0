//! Calls through trunks. In: an INVITE from a provider's address rings what its number's
//! DID names (a station, a ring group, a mailbox; the `trunk.default_did` operator, or 404),
//! showing the caller as the office would dial them back. Out: a station's access code and
//! number, once the station proved who it is, goes through the dialling plan (E.164), the
//! station's toll restriction, the routes and the trunk's call limit to the provider —
//! `sip:+E164@provider;user=phone`, the station's caller ID, G.711 at 20 ms and RFC 4733,
//! the digest answered with the trunk's account. Every outside leg is anchored in the relay,
//! and every refused outside call goes to the access log.

use super::*;
use crate::trunks::dialing::{self, Plan};
use stations::trunk::Trunk;

impl Calls {
    /// The office's dialling plan, from the settings.
    pub(crate) fn plan(&self) -> Plan {
        let db = self.db();
        Plan::from_settings(|k| db.setting(k).unwrap_or_default())
    }

    /// Calls each trunk carries now (its legs, ringing or talking).
    pub(crate) fn trunk_calls(&self) -> dialing::Counts {
        let mut counts = dialing::Counts::new();
        for l in self.legs.values() {
            if let Some(t) = l.trunk() {
                *counts.entry(t.to_string()).or_default() += 1;
            }
        }
        counts
    }

    /// A refused outside call: the access log, with the station (or source) and number.
    pub(super) fn refuse_outside(&self, peer: &Peer, who: &str, why: String) {
        tracing::info!("outside call refused: {who}: {why}");
        let _ = self.db().log_access(&stations::db::Access {
            at: self.clock.unix(),
            address: peer.addr.ip().to_string(),
            caller: who.to_string(),
            reason: why,
        });
    }

    /// An INVITE from trunk `t`'s provider: rings what the called number's DID names.
    pub(super) async fn incoming_from_trunk(
        &mut self,
        key: TsxKey,
        request: Request,
        peer: Peer,
        t: Trunk,
    ) {
        let tag = build::new_tag();
        let called = if t.did_from == "to" {
            request.header_user(Name::TO).unwrap_or_default()
        } else {
            user_of(&request.uri)
        };
        let plan = self.plan();
        let target = {
            let db = self.db();
            let dids = db.dids().unwrap_or_default();
            dialing::did(&dids, &called, &plan)
                .map(str::to_string)
                .or_else(|| {
                    Some(db.setting("trunk.default_did").unwrap_or_default())
                        .filter(|d| !d.is_empty())
                })
        };
        let Some(target) = target else {
            tracing::info!(
                "trunk {}: a call to {called}, which no DID names: 404",
                t.name
            );
            return self.reply(&key, &request, 404, "Not Found", &tag);
        };
        let caller = request.header_user(Name::FROM).unwrap_or_default();
        let id = self.new_leg_id();
        let at = (peer, self.here(&peer));
        let mut leg = Leg::answering(
            id,
            &format!("{}{}", legs::TRUNK, t.name),
            at,
            key,
            request,
            &tag,
            self.clock.now,
        );
        leg.shown = Some(plan.display(&caller));
        leg.record = Some(self.recorder.start(&plan.display(&caller), &called));
        tracing::info!("trunk {}: {caller} calls {called}, for {target}", t.name);
        if let Some(mailbox) = target.strip_prefix("voicemail:") {
            return self.send_to_voicemail(leg, mailbox).await;
        }
        if self.db().get(&target).is_err() {
            if let Err(leg) = self.ring_group(leg, &target).await {
                self.reply_to_invite(&leg, 404, "Not Found");
            }
            return;
        }
        let from = leg.station.clone();
        match route::route(&from, &target, &invite::Lookup(self)) {
            Route::Refuse { status, reason } => self.reply_to_invite(&leg, status, reason),
            Route::Voicemail { mailbox } => self.send_to_voicemail(leg, &mailbox).await,
            Route::Ring { station, diverted } => {
                self.ring_station(leg, &station, diverted).await;
            }
        }
    }

    /// Station `caller` dialled the access code and then `dialled`: out through a trunk if
    /// the plan, its toll restriction, a route and the trunk's limit let it.
    pub(super) async fn outgoing_to_trunk(&mut self, mut leg: Leg, caller: &str, dialled: &str) {
        let peer = leg.peer;
        let plan = self.plan();
        let Some(out) = plan.outside(dialled) else {
            return self.reply_to_invite(&leg, 484, "Address Incomplete");
        };
        let toll = self
            .db()
            .get(caller)
            .map_or_else(|_| "internal".to_string(), |s| s.toll);
        if !dialing::allowed(&toll, out.class) {
            self.refuse_outside(
                &peer,
                caller,
                format!(
                    "outside call to {} refused: {} calls are not allowed (toll restriction {toll})",
                    out.number,
                    out.class.name()
                ),
            );
            return self.reply_to_invite(&leg, 403, "Forbidden (toll restriction)");
        }
        let routes = self.db().routes().unwrap_or_default();
        let trunk = dialing::route(&routes, &out.number, &plan)
            .and_then(|name| Some((self.trunks.trunk(name)?.clone(), self.trunks.peer(name)?)));
        let Some((t, to)) = trunk else {
            self.refuse_outside(
                &peer,
                caller,
                format!("outside call to {}: no route to a trunk", out.number),
            );
            return self.reply_to_invite(&leg, 503, "Service Unavailable (no outside line)");
        };
        let busy = self.trunk_calls().get(&t.name).copied().unwrap_or(0);
        if t.max_calls > 0 && busy >= t.max_calls {
            self.refuse_outside(
                &peer,
                caller,
                format!(
                    "outside call to {} refused: trunk {} carries its {} calls",
                    out.number, t.name, t.max_calls
                ),
            );
            return self.reply_to_invite(&leg, 503, "Service Unavailable (all outside lines busy)");
        }
        let (Some(a), Some(b)) = (self.open_port().await, self.open_port().await) else {
            return self.reply_to_invite(&leg, 503, "Service Unavailable (no media ports)");
        };
        leg.anchor_with(a);
        let station_id = self
            .db()
            .get(caller)
            .map(|s| s.caller_id)
            .unwrap_or_default();
        let shown = [&station_id, &t.caller_id, &t.from_user, &t.user]
            .into_iter()
            .find(|c| !c.is_empty())
            .cloned()
            .unwrap_or_default();
        let here = self.here(&to);
        let name = if t.host.contains(':') {
            format!("[{}]", t.host)
        } else {
            t.host.clone()
        };
        let host = if t.port == 5060 {
            name
        } else {
            format!("{name}:{}", t.port)
        };
        let Ok(mut invite) = build::request(
            Method::Invite,
            &format!("sip:{}@{host};user=phone", out.number),
            &format!("sip:{shown}@{host};user=phone"),
            &format!("sip:{}@{host};user=phone", out.number),
            to.transport,
            here.sip,
        ) else {
            return self.reply_to_invite(&leg, 500, "Server Internal Error");
        };
        invite.headers.insert(Name::CONTENT_TYPE, "application/sdp");
        let from = leg.id;
        let id = self.new_leg_id();
        let mut out_leg = Leg::calling(
            id,
            &format!("{}{}", legs::TRUNK, t.name),
            (to, here),
            invite,
            from,
            self.clock.now,
        );
        out_leg.anchor_with(b);
        out_leg.invite.body = out_leg.our_sdp(Direction::SendRecv, None).into();
        let Ok(k) = self.ep.send_request(out_leg.invite.clone(), to) else {
            return self.reply_to_invite(&leg, 503, "Service Unavailable");
        };
        out_leg.key = k;
        tracing::info!("{caller} calls {} through trunk {}", out.number, t.name);
        leg.partner = Partner::Ringing(vec![id]);
        self.legs.insert(from, leg);
        self.legs.insert(id, out_leg);
    }

    /// The provider challenged our INVITE (401/407): it goes again, once, with the trunk's
    /// account. True when it went.
    pub(super) fn authenticate_to_trunk(&mut self, id: LegId, challenge: &Response) -> bool {
        let Some(leg) = self.legs.get(&id) else {
            return false;
        };
        let Some(t) = leg.trunk().and_then(|n| self.trunks.trunk(n)).cloned() else {
            return false;
        };
        if leg.authed {
            return false;
        }
        let mut again = leg.invite.clone();
        let mut digest = sip::auth::DigestClient::new(&t.user, &t.password);
        if !digest.authorize(&mut again, challenge) {
            return false;
        }
        let seq = again.cseq().map_or(1, |c| c.seq + 1);
        again.headers.remove(&Name::CSEQ);
        again.headers.insert(Name::CSEQ, format!("{seq} INVITE"));
        again.headers.remove(&Name::VIA);
        again.headers.insert(
            Name::VIA,
            build::via_value(leg.peer.transport, leg.here.sip, &build::new_branch()),
        );
        let Ok(key) = self.ep.send_request(again.clone(), leg.peer) else {
            return false;
        };
        if let Some(leg) = self.legs.get_mut(&id) {
            leg.invite = again;
            leg.key = key;
            leg.authed = true;
        }
        true
    }
}
