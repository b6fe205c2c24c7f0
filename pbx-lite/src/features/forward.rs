//! Call forward (OfficeServ defaults): 600 clears, 601 + station forwards all calls, 602 +
//! station when busy, 603 + station when not answered, 604 + station both. The PBX routes
//! by what is stored ([`crate::calls`]); a forwarded INVITE carries a Diversion header.

use super::{Action, Feature, Request, station_target};

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
