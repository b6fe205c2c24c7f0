//! Hold. A phone holds with a re-INVITE (sendonly, inactive, or c=0.0.0.0). With the held
//! station's Tone Source at "Use System Tone" (the default) the PBX plays hold music to the
//! held party itself — moving both legs into its relay if their media went directly — and
//! with "Use Phone Tone" it leaves the tone to the holding phone (see
//! [`crate::calls::Calls::settle`]). Hold Recall: a call held longer than
//! `hold.recall_seconds` rings the holding station again, with the held party on it.

use crate::calls::{Calls, LegId, Partner};
use std::time::Duration;

impl Calls {
    /// Calls held past `hold.recall_seconds` (0: never) come back to their holder.
    pub(crate) async fn hold_recalls(&mut self) {
        let after = Duration::from_secs(self.setting_u64("hold.recall_seconds", 60));
        if after.is_zero() {
            return;
        }
        let now = self.clock.now;
        let due: Vec<(LegId, LegId, String)> = self
            .legs
            .values()
            .filter(|l| {
                l.answered
                    && l.held_since
                        .is_some_and(|t| now.saturating_duration_since(t) >= after)
            })
            .filter_map(|l| match l.partner {
                Partner::Leg(o) if self.legs.get(&o).is_some_and(|p| p.answered && !p.holds) => {
                    Some((l.id, o, l.station.clone()))
                }
                _ => None,
            })
            .collect();
        for (holder, held, station) in due {
            if let Some(l) = self.legs.get_mut(&held) {
                l.partner = Partner::Music;
            }
            if let Some(l) = self.legs.get_mut(&holder) {
                l.partner = Partner::None;
            }
            self.end(holder, 0, "");
            self.anchor(held).await;
            if !self.recall(held, &station, "hold").await {
                // Not reachable now: the held party stays on hold music until it hangs up.
                tracing::info!("hold recall to {station} failed; the call stays on hold");
            }
        }
    }
}
