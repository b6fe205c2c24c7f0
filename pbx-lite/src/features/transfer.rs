//! Transfers. The OfficeServ way needs nothing but hold and a second call: a station holds
//! its call, calls a third station, and hangs up — after the answer that is a consultation
//! transfer, while it still rings a blind one. The PBX then releases the transferor's held
//! leg and joins the two remaining phones through its relay (re-INVITEs move their media).
//! An unanswered blind transfer comes back to the transferor after
//! `transfer.recall_seconds`; meanwhile the transferred party hears hold music. A station
//! that takes its held call back before hanging up (toggling) cancels the transfer — unless
//! it did so in the same moment as the hang-up, as softphones that resume by themselves do.
//!
//! Phones that transfer with REFER (RFC 3515) get the same: a blind REFER rings the target
//! for the transferee, and a REFER whose Refer-To carries Replaces (RFC 3891) naming the
//! transferor's other call joins the two far ends. The transferor learns the outcome in a
//! NOTIFY with a sipfrag body.

use crate::calls::{Calls, LegId, Partner};
use sip::headers::ReferTo;
use sip::transaction::TsxKey;
use sip::types::Name;
use sip::{Method, Request};
use std::time::Duration;

/// A held call taken back no longer than this before the hang-up was resumed by the phone
/// itself, not by its user: the hang-up still transfers.
const AUTO_RESUME: Duration = Duration::from_millis(500);

impl Calls {
    /// Leg `id`'s phone is hanging up (BYE, or CANCEL while it rings out). If that station
    /// holds another call, this is an OfficeServ transfer: the held party and the one this
    /// leg reached are joined. True when it was.
    pub(crate) async fn transfer_on_hang_up(&mut self, id: LegId) -> bool {
        let Some(leg) = self.legs.get(&id) else {
            return false;
        };
        let target = match &leg.partner {
            Partner::Leg(t) => *t,
            Partner::Ringing(forks) if forks.len() == 1 => forks[0],
            _ => return false,
        };
        let station = leg.station.clone();
        let Some((held_leg, transferee)) = self
            .held_by(&station, Some(id))
            .or_else(|| self.resumed_on_hang_up(&station, id))
        else {
            return false;
        };
        if transferee == target || !self.legs.contains_key(&target) {
            return false;
        }
        let leg = self.legs.remove(&id);
        if let Some(r) = leg.as_ref().and_then(|l| l.record.as_ref()) {
            r.transferred();
        }
        if let Some(l) = &leg
            && l.uas
            && !l.answered
        {
            self.reply_to_invite(l, 487, "Request Terminated");
        }
        self.join(transferee, target, &station, held_leg).await;
        true
    }

    /// The call `station` took off hold just now, as it hung up leg `id` — and its held
    /// party's leg. Softphones (baresip among them) resume the held call by themselves the
    /// moment the consultation call ends, and their re-INVITE can reach the PBX before the
    /// CANCEL or BYE that ended it: the hang-up still transfers. A call resumed longer ago
    /// than [`AUTO_RESUME`] was resumed by the user, who talks to that party again.
    fn resumed_on_hang_up(&self, station: &str, id: LegId) -> Option<(LegId, LegId)> {
        let now = self.clock.now;
        self.legs
            .values()
            .filter(|l| l.station == station && l.answered && !l.holds && l.id != id)
            .filter(|l| {
                l.resumed_at
                    .is_some_and(|t| now.saturating_duration_since(t) <= AUTO_RESUME)
            })
            .max_by_key(|l| l.resumed_at)
            .and_then(|l| match l.partner {
                Partner::Leg(o) if self.legs.get(&o).is_some_and(|p| p.answered) => Some((l.id, o)),
                _ => None,
            })
    }

    /// Joins `transferee` with `target` for the transferor `by`, releasing its leg `by_leg`.
    async fn join(&mut self, transferee: LegId, target: LegId, by: &str, by_leg: LegId) {
        for l in [transferee, by_leg] {
            if let Some(r) = self.legs.get(&l).and_then(|l| l.record.as_ref()) {
                r.transferred();
            }
        }
        if let Some(l) = self.legs.get_mut(&by_leg) {
            l.partner = Partner::None;
        }
        self.end(by_leg, 0, "");
        if let Some(l) = self.legs.get_mut(&transferee) {
            l.partner = Partner::Leg(target);
        }
        let answered = match self.legs.get_mut(&target) {
            Some(t) => {
                t.partner = Partner::Leg(transferee);
                t.rang_for = transferee;
                t.answered
            }
            None => false,
        };
        let name = |c: &Calls, id: LegId| {
            c.legs
                .get(&id)
                .map(|l| l.station.clone())
                .unwrap_or_default()
        };
        let (a, b) = (name(self, transferee), name(self, target));
        if answered {
            tracing::info!("transfer by {by}: {a} and {b} talk");
            self.anchor(target).await;
        } else {
            let after = Duration::from_secs(self.setting_u64("transfer.recall_seconds", 30));
            let now = self.clock.now;
            if let Some(l) = self.legs.get_mut(&transferee) {
                l.recall = Some((now + after, by.to_string()));
            }
            tracing::info!("blind transfer by {by}: {a} waits for {b} to answer");
        }
        self.anchor(transferee).await;
    }

    /// A transfer target (or a recall) that failed: the waiting leg goes back to its
    /// transferor, or is released when there is nobody to go back to.
    pub(crate) async fn target_failed(&mut self, waiting: LegId) {
        let back = self.legs.get_mut(&waiting).and_then(|l| l.recall.take());
        if let Some((_, to)) = back
            && self.recall(waiting, &to, "transfer").await
        {
            return;
        }
        tracing::info!("nobody took the call back: released");
        if let Some(l) = self.legs.get_mut(&waiting) {
            l.partner = Partner::None;
        }
        self.end(waiting, 0, "");
    }

    /// Park recalls, and blind transfers nobody answered in time.
    pub(crate) async fn recalls(&mut self) {
        self.park_recalls().await;
        let now = self.clock.now;
        let due: Vec<LegId> = self
            .legs
            .values()
            .filter(|l| l.recall.as_ref().is_some_and(|(at, _)| *at <= now))
            .map(|l| l.id)
            .collect();
        for id in due {
            if let Some(Partner::Leg(t)) = self.legs.get(&id).map(|l| l.partner.clone()) {
                if let Some(l) = self.legs.get_mut(&t) {
                    l.partner = Partner::None;
                }
                self.end(t, 0, "");
            }
            self.target_failed(id).await;
        }
    }

    /// REFER in leg `id`: a blind transfer of the partner to the Refer-To number, or with
    /// Replaces, an attended one.
    pub(crate) async fn on_refer(&mut self, id: LegId, key: TsxKey, request: Request) {
        let refer_to = request
            .headers
            .get_raw(&Name::from("Refer-To"))
            .next()
            .map(|v| v.to_string())
            .or_else(|| {
                request
                    .headers
                    .get_raw(&Name::from("r"))
                    .next()
                    .map(|v| v.to_string())
            });
        let answer = |c: &Calls, status: u16, reason: &str| {
            let _ =
                c.ep.send_response(&key, &request.make_response(status, reason));
        };
        let Some(to) = refer_to.as_deref().and_then(ReferTo::parse) else {
            return answer(self, 400, "Bad Refer-To");
        };
        let Some((station, transferee)) = self.legs.get(&id).and_then(|l| match l.partner {
            Partner::Leg(o) => Some((l.station.clone(), o)),
            _ => None,
        }) else {
            return answer(self, 603, "Decline (no call to transfer)");
        };
        if let Some(r) = &to.replaces {
            let (call_id, to_tag, from_tag) = (&r.call_id, &r.to_tag, &r.from_tag);
            // Attended: the transferor's other call, as its phone knows it.
            let other = self.legs.values().find(|l| {
                l.id != id
                    && l.dialog.as_ref().is_some_and(|d| {
                        d.id.call_id == *call_id
                            && ((d.id.local_tag == *to_tag && d.id.remote_tag == *from_tag)
                                || (d.id.local_tag == *from_tag && d.id.remote_tag == *to_tag))
                    })
            });
            let Some((other_leg, target)) = other.and_then(|l| match l.partner {
                Partner::Leg(t) => Some((l.id, t)),
                _ => None,
            }) else {
                return answer(self, 481, "Call/Transaction Does Not Exist (Replaces)");
            };
            answer(self, 202, "Accepted");
            self.notify_sipfrag(id, 200, "OK");
            if let Some(l) = self.legs.get_mut(&id) {
                l.partner = Partner::None; // the transferor's BYE ends only its own leg
            }
            self.join(transferee, target, &station, other_leg).await;
            return;
        }
        let user = to.user().to_string();
        if self.db().get(&user).is_err() {
            return answer(self, 404, "Not Found");
        }
        let Some((binding, peer)) = self.reach(&user) else {
            return answer(self, 480, "Temporarily Unavailable");
        };
        answer(self, 202, "Accepted");
        self.notify_sipfrag(id, 100, "Trying");
        self.anchor(transferee).await;
        let caller_id = self
            .legs
            .get(&transferee)
            .map(|l| (String::new(), l.station.clone()))
            .unwrap_or_default();
        let Some(new) = self
            .ring(transferee, &user, &binding, peer, &caller_id, None)
            .await
        else {
            return self.notify_sipfrag(id, 503, "Service Unavailable");
        };
        let after = Duration::from_secs(self.setting_u64("transfer.recall_seconds", 30));
        let now = self.clock.now;
        if let Some(l) = self.legs.get_mut(&transferee) {
            l.partner = Partner::Leg(new);
            l.recall = Some((now + after, station.clone()));
        }
        if let Some(l) = self.legs.get_mut(&id) {
            l.partner = Partner::None;
        }
        self.settle(transferee);
        self.notify_sipfrag(id, 200, "OK");
        tracing::info!("REFER by {station}: blind transfer to {user}");
    }

    /// Tells a REFER's sender how its transfer went (RFC 3515 §2.4.5).
    fn notify_sipfrag(&mut self, id: LegId, status: u16, reason: &str) {
        let Some(leg) = self.legs.get_mut(&id) else {
            return;
        };
        let contact = leg.contact();
        let Some((mut notify, peer)) = leg.in_dialog(Method::Notify) else {
            return;
        };
        sip::refer::progress_notify(&mut notify, status, reason);
        notify.headers.insert(Name::CONTACT, contact);
        let _ = self.ep.send_request(notify, peer);
    }
}
