//! Phone actions the CLI (`pbx-lite phone resync N`) and the web admin queue in the
//! database, sent by the running PBX each second. `resync` bumps `cisco.sync` (a Cisco
//! 79x0 reboots only when the sync value in its configuration changed) and sends each of the
//! station's registered contacts a NOTIFY with `Event: check-sync`, as the Cisco SIP guide
//! describes; other phones that accept the event reread their configuration.

use crate::address::Addressing;
use crate::calls::Calls;
use crate::nat::{self, NatCheck};
use sip::types::Name;

impl Calls {
    /// Sends the phone actions queued since the last call.
    pub(crate) fn send_phone_actions(&mut self) {
        let actions = self.db().take_phone_actions().unwrap_or_default();
        for a in actions {
            match a.action.as_str() {
                "resync" => self.resync(&a.station),
                other => tracing::warn!("phone action {other:?} for {}: unknown", a.station),
            }
        }
    }

    fn resync(&mut self, number: &str) {
        {
            let db = self.db();
            let next = db
                .setting("cisco.sync")
                .ok()
                .and_then(|v| v.parse::<u64>().ok())
                .map_or(1, |n| n + 1);
            if let Err(e) = db.set_setting("cisco.sync", &next.to_string()) {
                tracing::warn!("resync {number}: cisco.sync: {e}");
            }
        }
        let check = self
            .db()
            .get(number)
            .map_or(NatCheck::Ip, |s| NatCheck::of(&s));
        let addressing = Addressing::from_db(&self.db());
        let contacts = self.lookup(number);
        if contacts.is_empty() {
            tracing::warn!("resync {number}: not registered");
        }
        for binding in contacts {
            let Some(peer) = nat::route(&binding, check) else {
                continue;
            };
            let local = addressing.toward(self.bound, peer.addr.ip()).sip;
            let Some(mut n) = Self::unsolicited_notify(number, &binding, peer, local) else {
                continue;
            };
            n.headers.insert(Name::from("Event"), "check-sync");
            tracing::info!("resync {number}: check-sync to {}", peer.addr);
            let _ = self.ep.send_request(n, peer);
        }
    }
}
