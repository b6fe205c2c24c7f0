//! Dialogs kept in the database across restarts.

use sip::dialog::{Dialog, DialogId};
use sip::transaction::{Peer, TransportKind};

/// The parts of a dialog a restarted PBX needs to go on sending requests in it (a BYE to a
/// parked phone, NOTIFYs in a subscription), as JSON in the database.
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct SavedDialog {
    call_id: String,
    local_tag: String,
    remote_tag: String,
    local_uri: String,
    remote_uri: String,
    remote_target: String,
    route_set: Vec<String>,
    local_seq: u32,
    transport: String,
    addr: std::net::SocketAddr,
}

impl SavedDialog {
    pub(crate) fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    pub(crate) fn from_json(s: &str) -> Option<SavedDialog> {
        serde_json::from_str(s).ok()
    }

    pub(crate) fn of(d: &Dialog, peer: Peer) -> Option<SavedDialog> {
        Some(SavedDialog {
            call_id: d.id.call_id.clone(),
            local_tag: d.id.local_tag.clone(),
            remote_tag: d.id.remote_tag.clone(),
            local_uri: d.local_uri.clone(),
            remote_uri: d.remote_uri.clone(),
            remote_target: d.remote_target.to_string(),
            route_set: d.route_set.clone(),
            local_seq: d.local_seq + 10, // room for requests sent after saving
            transport: peer.transport.via_name().to_string(),
            addr: peer.addr,
        })
    }

    pub(crate) fn dialog(&self) -> Option<(Dialog, Peer)> {
        let d = Dialog {
            id: DialogId {
                call_id: self.call_id.clone(),
                local_tag: self.local_tag.clone(),
                remote_tag: self.remote_tag.clone(),
            },
            local_uri: self.local_uri.clone(),
            remote_uri: self.remote_uri.clone(),
            remote_target: sip::Uri::parse_request_uri(&self.remote_target).ok()?,
            route_set: self.route_set.clone(),
            local_seq: self.local_seq,
            remote_seq: None,
            confirmed: true,
        };
        let transport = TransportKind::from_via(&self.transport)?;
        Some((d, Peer::new(transport, self.addr)))
    }
}
