//! Call forward (OfficeServ defaults): 600 clears, 601 + station forwards all calls, 602 +
//! station when busy, 603 + station when not answered, 604 + station both. The PBX routes
//! by what is stored ([`crate::calls`]); a forwarded INVITE carries a Diversion header.

use super::{Action, Feature, Request, station_target};
use crate::calls::{Calls, LegId, Partner};
use std::time::Duration;

#[derive(Clone, Copy)]
enum Kind {
    Clear,
    All,
    Busy,
    NoAnswer,
    BusyNoAnswer,
}

pub(super) struct Forward(Kind);

pub(super) fn all() -> Vec<Box<dyn Feature>> {
    [
        Kind::Clear,
        Kind::All,
        Kind::Busy,
        Kind::NoAnswer,
        Kind::BusyNoAnswer,
    ]
    .into_iter()
    .map(|k| Box::new(Forward(k)) as Box<dyn Feature>)
    .collect()
}

impl Feature for Forward {
    fn code_setting(&self) -> &'static str {
        match self.0 {
            Kind::Clear => "numberplan.forward_clear",
            Kind::All => "numberplan.forward_all",
            Kind::Busy => "numberplan.forward_busy",
            Kind::NoAnswer => "numberplan.forward_noanswer",
            Kind::BusyNoAnswer => "numberplan.forward_busy_noanswer",
        }
    }

    fn act(&self, r: &Request<'_>) -> Result<Action, String> {
        let mut st = r.db.station_state(r.caller).map_err(|e| e.to_string())?;
        let what = match self.0 {
            Kind::Clear => {
                st.cf_all.clear();
                st.cf_busy.clear();
                st.cf_noanswer.clear();
                "forwarding cleared".to_string()
            }
            Kind::All => {
                st.cf_all = station_target(r)?;
                format!("all calls forwarded to {}", st.cf_all)
            }
            Kind::Busy => {
                st.cf_busy = station_target(r)?;
                format!("busy calls forwarded to {}", st.cf_busy)
            }
            Kind::NoAnswer => {
                st.cf_noanswer = station_target(r)?;
                format!("unanswered calls forwarded to {}", st.cf_noanswer)
            }
            Kind::BusyNoAnswer => {
                let t = station_target(r)?;
                st.cf_busy = t.clone();
                st.cf_noanswer = t.clone();
                format!("busy and unanswered calls forwarded to {t}")
            }
        };
        r.db.save_station_state(&st).map_err(|e| e.to_string())?;
        Ok(Action::Done(what))
    }
}

impl Calls {
    /// Call Forward No Answer: a call ringing longer than `forward.noanswer_seconds` at a
    /// station that forwards unanswered calls is cancelled there and rings the named
    /// station, with a Diversion header (`reason=no-answer`).
    pub(crate) async fn forward_unanswered(&mut self, after: Duration) {
        let now = self.clock.now;
        let due: Vec<(LegId, LegId)> = self
            .legs
            .values()
            .filter(|l| {
                l.uas
                    && !l.answered
                    && !l.no_answer_tried
                    && now.saturating_duration_since(l.created) >= after
            })
            .filter_map(|l| match &l.partner {
                Partner::Ringing(f) if f.len() == 1 => Some((l.id, f[0])),
                _ => None,
            })
            .collect();
        for (a, b) in due {
            if let Some(l) = self.legs.get_mut(&a) {
                l.no_answer_tried = true;
            }
            let callee = self.legs[&b].station.clone();
            let target = self
                .db()
                .station_state(&callee)
                .map(|st| st.cf_noanswer)
                .unwrap_or_default();
            self.divert(a, Some(b), &callee, &target, "no-answer").await;
        }
    }

    /// The call of caller leg `a` to `callee` goes on to `target` (a forward: rung with a
    /// Diversion naming `callee` and `reason`), or, when that cannot ring, to `callee`'s
    /// mailbox. `ringing` (the leg that rang `callee`) is hung up once the call moves.
    /// False when the call has nowhere to go.
    pub(crate) async fn divert(
        &mut self,
        a: LegId,
        ringing: Option<LegId>,
        callee: &str,
        target: &str,
        reason: &str,
    ) -> bool {
        let Some(caller) = self.legs.get(&a).map(|l| l.station.clone()) else {
            return false;
        };
        let reach = (!target.is_empty() && target != caller && !self.busy(target))
            .then(|| self.reach(target))
            .flatten();
        let Some((binding, peer)) = reach else {
            let Some(mailbox) = self.mailbox_of(callee) else {
                return false;
            };
            if let Some(b) = ringing {
                self.end(b, 0, "");
            }
            if let Some(leg) = self.legs.remove(&a) {
                self.send_to_voicemail(leg, &mailbox).await;
            }
            return true;
        };
        let caller_id = self.legs[&a].caller_id();
        let Some(new) = self
            .ring(
                a,
                target,
                &binding,
                peer,
                &caller_id,
                Some((callee, reason)),
            )
            .await
        else {
            return false;
        };
        if let Some(b) = ringing {
            self.end(b, 0, "");
        }
        tracing::info!("call {caller} → {callee} ({reason}): forwarded to {target}");
        if let Some(l) = self.legs.get_mut(&a) {
            l.partner = Partner::Ringing(vec![new]);
        }
        true
    }
}
