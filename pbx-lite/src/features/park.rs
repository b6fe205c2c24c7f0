//! Call Park, OfficeServ "System Hold": a station holds its call and dials the park code
//! (11), optionally with a station number as the slot (its own number otherwise). The held
//! party hears hold music and the parking phone's leg is released. Any station dials the
//! retrieve code (12) + the slot to take the call. A call not retrieved within
//! `park.recall_seconds` rings the parking station again. Parked calls are written to the
//! database, so a PBX restarted while a call was parked releases it with a log line (and a
//! BYE to the parked phone) instead of forgetting it silently.

use super::{Action, Feature, Request};
use crate::calls::{Calls, Leg, LegId, Park as Parked, Partner, SavedDialog};
use sip::Method;
use sip::types::Name;
use std::time::Duration;

pub(super) struct Park;
pub(super) struct Retrieve;

impl Feature for Park {
    fn code_setting(&self) -> &'static str {
        "numberplan.park"
    }

    fn act(&self, r: &Request<'_>) -> Result<Action, String> {
        let slot = match r.args.trim() {
            "" => r.caller.to_string(),
            s => {
                r.db.get(s)
                    .map(|st| st.number)
                    .map_err(|_| format!("{s} is no station to park at"))?
            }
        };
        Ok(Action::Park(slot))
    }
}

impl Feature for Retrieve {
    fn code_setting(&self) -> &'static str {
        "numberplan.retrieve"
    }

    fn act(&self, r: &Request<'_>) -> Result<Action, String> {
        match r.args.trim() {
            "" => Err("retrieve needs the parking station's number after the code".into()),
            s => Ok(Action::Retrieve(s.to_string())),
        }
    }
}

impl Calls {
    /// The leg on which `station` holds a call (other than `except`), and the held
    /// party's leg.
    pub(crate) fn held_by(&self, station: &str, except: Option<LegId>) -> Option<(LegId, LegId)> {
        let mut mine: Vec<&Leg> = self
            .legs
            .values()
            .filter(|l| l.station == station && l.answered && l.holds && Some(l.id) != except)
            .collect();
        mine.sort_by_key(|l| std::cmp::Reverse(l.id)); // the latest held call first
        mine.into_iter().find_map(|l| match l.partner {
            Partner::Leg(o) if self.legs.get(&o).is_some_and(|p| p.answered) => Some((l.id, o)),
            _ => None,
        })
    }

    /// Parks the call `caller` holds in `slot`.
    pub(crate) async fn park(&mut self, caller: &str, slot: &str) -> Result<String, String> {
        if self.parks.contains_key(slot) {
            return Err(format!("park slot {slot} is taken"));
        }
        let (mine, held) = self
            .held_by(caller, None)
            .ok_or_else(|| format!("{caller} holds no call to park (hold it first)"))?;
        if let Some(l) = self.legs.get_mut(&held) {
            l.partner = Partner::Music;
        }
        if let Some(l) = self.legs.get_mut(&mine) {
            l.partner = Partner::None;
        }
        self.end(mine, 0, "");
        self.anchor(held).await;
        let recall = Duration::from_secs(self.setting_u64("park.recall_seconds", 60));
        self.parks.insert(
            slot.to_string(),
            Parked {
                leg: held,
                by: caller.to_string(),
                recall_at: self.clock.now + recall,
            },
        );
        let parked = self
            .legs
            .get(&held)
            .map(|l| l.station.clone())
            .unwrap_or_default();
        let record = stations::db::ParkRecord {
            slot: slot.to_string(),
            parked: parked.clone(),
            by: caller.to_string(),
            since: self.clock.unix(),
            dialog: self
                .legs
                .get(&held)
                .and_then(|l| SavedDialog::of(l.dialog.as_ref()?, l.peer))
                .map(|d| d.to_json())
                .unwrap_or_default(),
        };
        let _ = self.db().save_park(&record);
        Ok(format!("{parked} parked in {slot}"))
    }

    /// Connects `leg` (a phone that dialled the retrieve code) to the call parked in `slot`.
    pub(crate) async fn retrieve(&mut self, leg: Leg, slot: &str) -> Result<String, (String, Leg)> {
        let Some(p) = self.parks.remove(slot) else {
            return Err((format!("nothing is parked in {slot}"), leg));
        };
        let _ = self.db().delete_park(slot);
        let who = leg.station.clone();
        match self.connect(leg, p.leg).await {
            Ok(()) => Ok(format!(
                "call parked in {slot} by {} retrieved by {who}",
                p.by
            )),
            Err(leg) => {
                self.parks.insert(slot.to_string(), p);
                Err(("no media port for the retrieving phone".into(), leg))
            }
        }
    }

    /// A parked phone hung up: its slot empties.
    pub(crate) fn forget_park(&mut self, leg: LegId) {
        let slots: Vec<String> = self
            .parks
            .iter()
            .filter(|(_, p)| p.leg == leg)
            .map(|(s, _)| s.clone())
            .collect();
        for s in slots {
            self.parks.remove(&s);
            let _ = self.db().delete_park(&s);
        }
    }

    /// Parks whose recall timer ran out ring their parking station; while it rings the
    /// parked party keeps hearing music.
    pub(crate) async fn park_recalls(&mut self) {
        let now = self.clock.now;
        let due: Vec<String> = self
            .parks
            .iter()
            .filter(|(_, p)| p.recall_at <= now)
            .map(|(s, _)| s.clone())
            .collect();
        for slot in due {
            let Some(p) = self.parks.remove(&slot) else {
                continue;
            };
            if self.recall(p.leg, &p.by, "park").await {
                let _ = self.db().delete_park(&slot);
            } else {
                let again = Duration::from_secs(self.setting_u64("park.recall_seconds", 60));
                self.parks.insert(
                    slot,
                    Parked {
                        recall_at: now + again,
                        ..p
                    },
                );
            }
        }
    }

    /// Rings `to` for the waiting leg `waiting` (a park or an unanswered transfer coming
    /// back). False when `to` cannot be reached.
    pub(crate) async fn recall(&mut self, waiting: LegId, to: &str, what: &str) -> bool {
        let Some(station) = self.legs.get(&waiting).map(|l| l.station.clone()) else {
            return true; // nobody left to recall
        };
        let Some((binding, peer)) = self.reach(to) else {
            tracing::info!("{what} recall of {station} to {to}: {to} is not registered");
            return false;
        };
        let caller_id = (String::new(), station.clone());
        let Some(new) = self
            .ring(waiting, to, &binding, peer, &caller_id, None)
            .await
        else {
            return false;
        };
        if let Some(l) = self.legs.get_mut(&waiting) {
            l.partner = Partner::Leg(new);
        }
        self.settle(waiting);
        tracing::info!("{what} recall: {station} rings {to} again");
        true
    }
}

/// At start: calls left parked by a PBX that stopped are released — a BYE to each parked
/// phone, if it is still there, and a log line for each — and the slots are emptied.
pub async fn release_stale(
    db: &std::sync::Mutex<stations::Db>,
    ep: &sip::endpoint::Endpoint,
    bound: std::net::SocketAddr,
) {
    let addressing =
        crate::address::Addressing::from_db(&db.lock().unwrap_or_else(|e| e.into_inner()));
    let stale = db
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .parks()
        .unwrap_or_default();
    for p in stale {
        let saved = SavedDialog::from_json(&p.dialog);
        let sent = saved.and_then(|s| s.dialog()).map(|(mut d, peer)| {
            let local = addressing.toward(bound, peer.addr.ip()).sip;
            let via = sip::build::via_value(peer.transport, local, &sip::build::new_branch());
            let mut bye = d.request(Method::Bye, &via);
            bye.headers
                .insert(Name::from("Reason"), "SIP;cause=503;text=\"PBX restarted\"");
            ep.send_stateless(peer, &sip::Message::Request(bye));
        });
        tracing::info!(
            "park slot {}: the call of {} parked by {} was released (the PBX restarted){}",
            p.slot,
            p.parked,
            p.by,
            if sent.is_some() { "; BYE sent" } else { "" }
        );
        let _ = db
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .delete_park(&p.slot);
    }
}
