//! What `pbx-lite status` (registration, NAT, DND, forwarding, voicemail) and `access-log` show, as JSON rows, read from the database the
//! running PBX writes to — shared by the CLI and the HTTP admin endpoint.

use crate::nat::{self, NatCheck};
use serde_json::{Value, json};
use stations::Db;

fn now() -> i64 {
    sip::clock::Clock::now().unix()
}

/// The SIP Phone Status table: one row per station, registered or not.
pub fn stations(db: &Db) -> anyhow::Result<Vec<Value>> {
    let t = now();
    let regs = db.registrations()?;
    let counts = db.message_counts()?;
    let mut rows = Vec::new();
    for s in db.list()? {
        let live: Vec<_> = regs
            .iter()
            .filter(|r| r.aor == s.number && r.expires_at > t)
            .collect();
        let first = live.first();
        let address = first
            .map(|r| {
                r.source
                    .split_once(':')
                    .map_or(r.source.clone(), |(_, a)| a.to_string())
            })
            .unwrap_or_default();
        let st = db.station_state(&s.number)?;
        let mailbox = s.voicemail.clone().unwrap_or_else(|| s.number.clone());
        let (new, old) = counts
            .iter()
            .find(|(m, _, _)| *m == mailbox)
            .map_or((0, 0), |(_, n, o)| (*n, *o));
        rows.push(json!({
            "dnd": st.dnd,
            "forward_all": st.cf_all,
            "forward_busy": st.cf_busy,
            "forward_noanswer": st.cf_noanswer,
            "number": s.number,
            "registered": !live.is_empty(),
            "user_agent": first.map(|r| r.user_agent.clone()).unwrap_or_default(),
            "address": address,
            "transport": first.map(|r| r.transport.clone()).unwrap_or_default(),
            "nat": first.is_some_and(|r| nat::behind_nat(r, NatCheck::of(&s))),
            "expires_in": first.map(|r| r.expires_at - t).unwrap_or(0),
            "contacts": live.len(),
            "voicemail": s.voicemail.clone().unwrap_or_default(),
            "messages_new": new,
            "messages_old": old,
        }));
    }
    Ok(rows)
}

/// The last `tail` refused accesses: time (of the latest, and of the first of a repeated
/// refusal), address, caller, reason, how many times.
pub fn access(db: &Db, tail: i64) -> anyhow::Result<Vec<Value>> {
    Ok(db
        .access_log(tail)?
        .iter()
        .map(|r| {
            let a = &r.last;
            json!({"at": a.at, "first_at": r.first_at, "count": r.count,
                   "address": a.address, "caller": a.caller, "reason": a.reason})
        })
        .collect())
}
