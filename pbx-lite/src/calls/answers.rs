//! Answers to the PBX's own requests: a ringing leg's provisional and final responses (early
//! media, answer, failure and what forwarding or the ring group does next), the answers
//! to re-INVITEs and probes it sent, and a caller's CANCEL.

use super::*;

impl Calls {
    /// A response to one of our client transactions.
    pub async fn on_response(&mut self, key: TsxKey, response: Response) {
        let now = (self.clock.now, self.clock.unix());
        if self
            .trunks
            .on_response(&key, &response, now, &self.ep, &self.db)
        {
            return;
        }
        let call_id = response
            .headers
            .get_raw(&Name::CALL_ID)
            .next()
            .map_or("", |c| c.as_str());
        let ringing = self
            .legs
            .of_call(call_id)
            .find(|l| !l.uas && l.key == key)
            .map(|l| l.id);
        if let Some(id) = ringing {
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
        if matches!(status, 401 | 407) && self.authenticate_to_trunk(id, &response) {
            return;
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
        // 180/183: the caller hears it ringing, with early media (RFC 3960) when the answer
        // carries SDP: passed through when media is direct, else relayed one way, from the
        // ringing phone's port (pointed at its early SDP) to the caller's.
        let early = !response.body.is_empty();
        if early
            && let Some(callee) = self.legs.get_mut(&id)
            && callee.media.is_some()
        {
            callee.set_remote(response.body.to_vec(), self.clock.now);
        }
        let Some(caller) = self.legs.get_mut(&from) else {
            return;
        };
        if caller.answered || !caller.uas {
            return;
        }
        let mut r = caller.invite.make_response(status, &response.reason);
        r.set_to_tag(&caller.tag);
        if early && caller.media.is_none() {
            r.body = response.body.clone();
            r.headers.insert(Name::CONTENT_TYPE, "application/sdp");
        } else if early {
            let offer = caller.remote_sdp.clone();
            r.body = caller
                .our_sdp(sdp::direction(&offer).answer(), Some(&offer))
                .into();
            r.headers.insert(Name::CONTENT_TYPE, "application/sdp");
            let ports = (
                self.legs.get(&id).and_then(|l| l.media.as_ref()),
                self.legs.get(&from).and_then(|l| l.media.as_ref()),
            );
            if let (Some(callee), Some(caller)) = ports {
                callee.forward_to(caller);
            }
        }
        let Some(caller) = self.legs.get(&from) else {
            return;
        };
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
            let callee = self.legs.get(&id).map(|l| l.station.clone());
            if let Some(c) = self.legs.get_mut(&from) {
                if let (Some(r), Some(callee)) = (&c.record, &callee) {
                    r.answered(callee);
                }
                let body = if c.media.is_some() {
                    let offer = c.remote_sdp.clone();
                    c.our_sdp(sdp::direction(&offer).answer(), Some(&offer))
                } else {
                    answer_sdp.unwrap_or_default()
                };
                c.answer(&ep, body);
            }
        }
        if let (Some(a), Some(b)) = (self.legs.get(&from), self.legs.get(&id)) {
            let srtp = |l: &Leg| if l.encrypted() { "SRTP" } else { "RTP" };
            tracing::info!(
                "{} ({}) connected to {} ({})",
                a.station,
                srtp(a),
                b.station,
                srtp(b)
            );
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
}
