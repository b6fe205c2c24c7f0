//! What the dashboard shows of the calls under way: one [`LiveCall`] per call a phone or an
//! outside line placed, taken from the legs each second by the driver.

use super::{Calls, Leg, Partner};

/// A call under way, as the web admin's dashboard shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LiveCall {
    pub caller: String,
    pub dialled: String,
    /// Who talks to the caller now (a station, `trunk:NAME`), or what rings.
    pub callee: String,
    /// ringing, talking, held, parked, conference, voicemail.
    pub state: String,
    /// Unix time the call started, and was answered.
    pub started: i64,
    pub answered: Option<i64>,
    /// The media goes through the PBX's relay (not phone to phone).
    pub relayed: bool,
    /// SRTP on every leg of the call.
    pub encrypted: bool,
}

impl Calls {
    /// The calls under way, oldest first.
    pub fn live(&self) -> Vec<LiveCall> {
        let mut calls: Vec<LiveCall> = self
            .legs
            .values()
            .filter_map(|leg| {
                let (started, answered, caller, dialled) = leg.record.as_ref()?.summary();
                let other = |id: &super::LegId| self.legs.get(id);
                let (callee, state, others): (String, &str, Vec<&Leg>) = match &leg.partner {
                    Partner::Leg(id) => {
                        let o = other(id);
                        let name = o.map(|o| o.station.clone()).unwrap_or_default();
                        let state = if !leg.answered || !o.is_some_and(|o| o.answered) {
                            "ringing"
                        } else if leg.holds || o.is_some_and(|o| o.holds) {
                            "held"
                        } else {
                            "talking"
                        };
                        (name, state, o.into_iter().collect())
                    }
                    Partner::Ringing(ids) => {
                        let ringing: Vec<&Leg> = ids.iter().filter_map(other).collect();
                        let names: Vec<&str> = ringing.iter().map(|l| l.station.as_str()).collect();
                        (names.join(", "), "ringing", ringing)
                    }
                    Partner::Music => (String::new(), "parked", Vec::new()),
                    Partner::Room(owner) => (owner.clone(), "conference", Vec::new()),
                    Partner::Service => (dialled.clone(), "voicemail", Vec::new()),
                    Partner::None => return None,
                };
                Some(LiveCall {
                    caller,
                    dialled,
                    callee,
                    state: state.into(),
                    started,
                    answered,
                    relayed: leg.media.is_some(),
                    encrypted: leg.encrypted() && others.iter().all(|o| o.encrypted()),
                })
            })
            .collect();
        calls.sort_by(|a, b| (a.started, &a.caller).cmp(&(b.started, &b.caller)));
        calls
    }
}
