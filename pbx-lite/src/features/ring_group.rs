//! Ring groups: a number that rings several stations (`pbx-lite group set 300 201,202,…`).
//! The members ring in batches of `ringgroup.batch` (4), each batch `ringgroup.stagger_ms`
//! (50 ms) after the last, so a big group does not flood the network at once; members that
//! are busy, in Do Not Disturb or not registered are skipped. The first to answer takes the
//! call and the others get CANCEL.

use crate::calls::{Calls, Leg, LegId, Partner};
use std::time::Duration;

impl Calls {
    /// Rings ring group `number` for the caller's `leg`; gives the leg back when `number` is
    /// no group.
    pub(crate) async fn ring_group(&mut self, mut leg: Leg, number: &str) -> Result<(), Leg> {
        let Ok(Some(members)) = self.db().ring_group(number) else {
            return Err(leg);
        };
        let candidates: Vec<String> = members
            .into_iter()
            .filter(|m| *m != leg.station && !self.busy(m))
            .filter(|m| !self.db().station_state(m).is_ok_and(|st| st.dnd))
            .filter(|m| self.reach(m).is_some())
            .collect();
        let Some((first, at)) = candidates
            .first()
            .and_then(|m| Some((m.clone(), self.reach(m)?.1)))
        else {
            self.reply_to_invite(&leg, 480, "Temporarily Unavailable");
            return Ok(());
        };
        if !leg.remote_sdp.is_empty() && self.relay_wanted(&leg, &first, &at) {
            match self.open_port().await {
                Some(p) => leg.anchor_with(p),
                None => {
                    self.reply_to_invite(&leg, 503, "Service Unavailable (no media ports)");
                    return Ok(());
                }
            }
        }
        tracing::info!(
            "{} calls group {number}: rings {}",
            leg.station,
            candidates.join(", ")
        );
        leg.partner = Partner::Ringing(Vec::new());
        leg.pending = candidates;
        let id = leg.id;
        self.legs.insert(id, leg);
        self.next_batch(id).await;
        Ok(())
    }

    /// Rings the next batch of the group leg `id` calls; schedules the one after.
    pub(crate) async fn next_batch(&mut self, id: LegId) {
        let batch = self.setting_u64("ringgroup.batch", 4).max(1) as usize;
        let stagger = Duration::from_millis(self.setting_u64("ringgroup.stagger_ms", 50));
        let Some(leg) = self.legs.get_mut(&id) else {
            return;
        };
        if leg.answered {
            return;
        }
        let n = batch.min(leg.pending.len());
        let now: Vec<String> = leg.pending.drain(..n).collect();
        let more = !leg.pending.is_empty();
        let caller_id = leg.caller_id();
        for m in now {
            let Some((binding, peer)) = self.reach(&m) else {
                continue;
            };
            if let Some(f) = self.ring(id, &m, &binding, peer, &caller_id, None).await
                && let Some(Partner::Ringing(forks)) =
                    self.legs.get_mut(&id).map(|l| &mut l.partner)
            {
                forks.push(f);
            }
        }
        if more {
            self.wake_after(id, stagger);
        } else if matches!(self.legs.get(&id).map(|l| &l.partner), Some(Partner::Ringing(f)) if f.is_empty())
        {
            self.end(id, 480, "Temporarily Unavailable");
        }
    }
}
