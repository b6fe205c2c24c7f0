//! The rows `Db` reads and writes besides stations: the PBX's state, the logs, phones seen.

/// A refusal repeated within this many seconds of the last like it (same address, caller
/// and reason) is counted on that row instead of filling a new one, so a flood of guesses
/// cannot push older evidence out of the bounded log.
pub const ACCESS_AGGREGATE_SECONDS: i64 = 600;

/// Most phones kept in the unknown-phones list; past it the longest unseen go.
pub const UNKNOWN_PHONES: i64 = 1000;

/// What a station's user set from the phone with feature codes (DND, call forwarding):
/// kept apart from the station's configuration, and kept across restarts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StationState {
    pub number: String,
    pub dnd: bool,
    /// Call forward all / busy / no answer: a station number, or empty.
    pub cf_all: String,
    pub cf_busy: String,
    pub cf_noanswer: String,
}

/// A voicemail message: who left it in which mailbox, when, and the WAV file that holds it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Message {
    pub id: i64,
    pub mailbox: String,
    pub caller: String,
    /// Unix time it was left.
    pub at: i64,
    pub path: String,
    pub heard: bool,
}

/// A message-summary subscription (RFC 3842), kept so that a restarted PBX goes on
/// notifying in it: `id` names the dialog, `until` is the Unix time it lapses, `dialog` is
/// the PBX's side of it, as the PBX wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SubscriptionRecord {
    pub id: String,
    pub mailbox: String,
    pub until: i64,
    pub dialog: String,
}

/// A call in progress in a park slot, kept so that a PBX restarted while it was parked can
/// release it: `dialog` is the PBX's dialog with the parked phone, as the PBX wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ParkRecord {
    pub slot: String,
    /// The parked party's station (or caller) number, and the station that parked it.
    pub parked: String,
    pub by: String,
    /// Unix time it was parked.
    pub since: i64,
    pub dialog: String,
}

/// One registered contact of a station (its address-of-record is the station number).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub aor: String,
    pub contact: String,
    /// Unix time the binding lapses.
    pub expires_at: i64,
    /// Where the REGISTER came from (`udp:1.2.3.4:5060`): requests for the station go there.
    pub source: String,
    pub transport: String,
    pub user_agent: String,
    pub call_id: String,
    pub cseq: u32,
    /// The phone's `+sip.instance` (RFC 5626), empty when it sent none.
    pub instance: String,
}

/// Where a registration's REGISTER came from: its stored `source` without the transport
/// (`udp:1.2.3.4:5060` → `1.2.3.4:5060`, `tcp:[fd00::5]:5060` → `[fd00::5]:5060`).
pub fn source_addr(source: &str) -> Option<std::net::SocketAddr> {
    source.split_once(':')?.1.parse().ok()
}

/// A row of the access log: the latest of `count` like refusals, the first at `first_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessRow {
    pub last: Access,
    pub count: i64,
    pub first_at: i64,
}

/// One failed or refused access (OfficeServ "Access Information").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    pub at: i64,
    pub address: String,
    /// The caller ID (user) the request claimed.
    pub caller: String,
    pub reason: String,
}

/// Rows kept in the provisioning log.
pub const LOG_ROWS: i64 = 10_000;

/// A phone that asked for a file naming a MAC no station has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownPhone {
    pub mac: String,
    pub first_seen: i64,
    pub last_seen: i64,
    pub address: String,
    pub file: String,
    pub count: i64,
}

/// One provisioning request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    pub at: i64,
    pub address: String,
    pub protocol: String,
    pub file: String,
    pub bytes: i64,
    pub result: String,
}

/// One call as the PBX kept it: who placed it (a station, or an outside caller), the number
/// dialled, who answered, when it started, was answered and ended (Unix times), and how it
/// ended: `answered`, `transferred`, `busy`, `missed` (the caller gave up, or nobody
/// answered) or `refused` (with the SIP status the caller got).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct CallRecord {
    pub started: i64,
    pub answered: Option<i64>,
    pub ended: i64,
    pub caller: String,
    pub dialled: String,
    pub callee: String,
    pub disposition: String,
    pub status: u16,
}

impl CallRecord {
    /// Seconds talking (from the answer to the end), 0 when not answered.
    pub fn duration(&self) -> i64 {
        self.answered.map_or(0, |a| (self.ended - a).max(0))
    }
}
