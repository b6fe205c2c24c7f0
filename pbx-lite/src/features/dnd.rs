//! Do Not Disturb: code + 1 turns it on, code + 0 off (OfficeServ default 40: 401, 400).
//! Calls to a station in DND get `486 Busy Here`.

use super::{Action, Feature, Request};

pub(super) struct Dnd;

impl Feature for Dnd {
    fn code_setting(&self) -> &'static str {
        "numberplan.dnd"
    }

    fn act(&self, r: &Request<'_>) -> Result<Action, String> {
        let on = match r.args {
            "1" => true,
            "0" => false,
            other => return Err(format!("DND needs 1 or 0 after the code, not {other:?}")),
        };
        let mut st = r.db.station_state(r.caller).map_err(|e| e.to_string())?;
        st.dnd = on;
        r.db.save_station_state(&st).map_err(|e| e.to_string())?;
        Ok(Action::Done(format!(
            "DND {}",
            if on { "on" } else { "off" }
        )))
    }
}
