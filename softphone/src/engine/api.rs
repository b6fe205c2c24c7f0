//! The engine's two channels: the commands it takes and the events it reports (one JSON
//! object each, as the headless control prints them), with the status rows.

use super::{HistoryEntry, TransferTarget};
use serde::Serialize;

/// What the engine is asked to do. Calls are named by the number `calling`/`incoming`
/// gave them; without one, the newest call fitting the command is meant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Report every line's and call's state.
    Status,
    /// Register line `n` (1-based) again now.
    Register(usize),
    /// Call `number` (a number or a SIP URI) on line `line` (1-based).
    Dial {
        number: String,
        line: usize,
    },
    Answer(Option<u32>),
    /// Refuse a ringing incoming call (486 Busy Here).
    Reject(Option<u32>),
    /// End a call in any state (BYE, CANCEL, or a refusal).
    Hangup(Option<u32>),
    /// Put an established call on hold (re-INVITE, sendonly), or take it off.
    Hold(Option<u32>),
    Resume(Option<u32>),
    /// Send digits in a call (RFC 4733 events).
    Dtmf {
        digits: String,
        call: Option<u32>,
    },
    /// Join two calls in a local 3-way conference (the held one is resumed): `call` and
    /// `other`, or the newest established call and the newest other one.
    Join {
        call: Option<u32>,
        other: Option<u32>,
    },
    /// Send silence instead of the microphone (`on`), or the microphone again.
    Mute {
        call: Option<u32>,
        on: bool,
    },
    /// A PBX feature, as one action (the codes come from `[features]`).
    Feature(Feature),
    /// Transfer a call (REFER): to a number (blind) or to our other call (attended).
    Transfer {
        call: Option<u32>,
        to: TransferTarget,
    },
    /// Report the newest N calls of the history.
    History(usize),
    /// Report the sound cards and which are chosen.
    Devices,
    /// Use sound card `name` (empty: the system's default) for `role` from now on, calls
    /// under way included.
    Device {
        role: Role,
        name: String,
    },
    /// Set the speaker's or the ringer's volume, in percent.
    Volume {
        role: Role,
        percent: u8,
    },
    /// Report the contacts: the configuration's and the provisioner's directory.
    Contacts,
    /// Unregister every line and stop.
    Quit,
}

/// What a sound card is used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Microphone,
    Speaker,
    Ringer,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s.to_ascii_lowercase().as_str() {
            "microphone" | "mic" => Some(Role::Microphone),
            "speaker" => Some(Role::Speaker),
            "ringer" => Some(Role::Ringer),
            _ => None,
        }
    }
}

/// The PBX features the engine drives as sequences of hold, code and resume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Feature {
    Dnd(bool),
    /// Forward `kind` (all, busy, noanswer, both) to a number; `None` clears all.
    Forward(Option<(String, String)>),
    /// Hold the current call and park it (in the slot, or our own number).
    Park(Option<String>),
    /// Take the call parked in a slot.
    Retrieve(String),
    /// Answer a call ringing at a station, or in our pickup group.
    Pickup(Option<String>),
    /// Hold the current call and move it into our PBX conference (46).
    ConferenceAdd,
    /// End the adding (46 again) and resume the held call into the conference.
    ConferenceEnd,
}

/// One line's state, as `status` reports it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LineStatus {
    pub line: usize,
    pub account: String,
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
}

/// One call's state, as `status` reports it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CallStatus {
    pub call: u32,
    pub line: usize,
    pub party: String,
    pub state: &'static str,
    pub outgoing: bool,
    /// The audio is SRTP.
    pub encrypted: bool,
}

/// What happened, one JSON object per event with an `"event"` field.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    Ready {
        lines: usize,
        sip: String,
    },
    Registered {
        line: usize,
        account: String,
        expires: u32,
    },
    RegistrationFailed {
        line: usize,
        account: String,
        status: u16,
        reason: String,
        /// Seconds until the line tries again (0: it will not).
        retry_in: u32,
    },
    Unregistered {
        line: usize,
        account: String,
    },
    /// The line's address changed (another network): it registers again from `address`.
    NetworkChanged {
        line: usize,
        address: String,
    },
    /// The line's server failed (timeout or 503): it registers with the other one now.
    Failover {
        line: usize,
        server: String,
    },
    Calling {
        call: u32,
        line: usize,
        to: String,
    },
    Ringing {
        call: u32,
    },
    Incoming {
        call: u32,
        line: usize,
        from: String,
        display: String,
        diversion: String,
        /// The INVITE's Alert-Info (a distinctive ring: a tone URI or `info=` name).
        alert_info: String,
        /// The phone answers it by itself (the line's `auto_answer`).
        auto_answer: bool,
    },
    /// A digit the other side sent, `by` RFC 4733 events (`rfc4733`) or SIP INFO (`info`).
    DtmfReceived {
        call: u32,
        digit: String,
        by: &'static str,
    },
    /// A 183 (or 180) with SDP: the callee's early audio (announcements, ringback) plays
    /// before the answer.
    EarlyMedia {
        call: u32,
    },
    /// An incoming call refused before it rang: its INVITE could not be taken.
    Refused {
        line: usize,
        from: String,
        status: u16,
        reason: String,
    },
    Established {
        call: u32,
    },
    /// The call's audio runs on SRTP with this suite.
    Encrypted {
        call: u32,
        suite: &'static str,
    },
    Held {
        call: u32,
    },
    Resumed {
        call: u32,
    },
    Muted {
        call: u32,
        on: bool,
    },
    /// Two calls are mixed in the phone: each party hears the other two.
    Joined {
        calls: [u32; 2],
    },
    /// A call's receive quality, every 2 s while audio arrives: RFC 3550 interarrival
    /// jitter, the share of packets lost, the jitter buffer's delay, and a MOS estimate
    /// (ITU-T G.107 E-model).
    Quality {
        call: u32,
        jitter_ms: f32,
        loss_percent: f32,
        buffer_ms: f32,
        mos: f32,
        /// Round trip from RTCP (null until the other side has reported on our stream).
        rtt_ms: Option<f32>,
        received: u64,
        lost: i64,
    },
    /// A line's voicemail counts (RFC 3842 message summary).
    Mwi {
        line: usize,
        new: u32,
        old: u32,
    },
    /// The other side asks us (REFER) to call `to` in its place.
    TransferRequested {
        call: u32,
        to: String,
    },
    /// An INVITE with Replaces took this call's place (attended transfer).
    Replaced {
        call: u32,
        by: u32,
    },
    /// The transfer target took the call (our call is over).
    Transferred {
        call: u32,
    },
    TransferFailed {
        call: u32,
        status: u16,
        reason: String,
    },
    /// A step of a feature sequence finished.
    Feature {
        name: String,
        step: String,
        ok: bool,
        status: u16,
    },
    /// A feature sequence is over.
    FeatureDone {
        name: String,
        ok: bool,
    },
    /// The other side put the call on hold (`held`: true) or took it off.
    RemoteHold {
        call: u32,
        held: bool,
    },
    Ended {
        call: u32,
        status: u16,
        reason: String,
    },
    Status {
        lines: Vec<LineStatus>,
        calls: Vec<CallStatus>,
    },
    /// The newest calls of the history, oldest first.
    History {
        entries: Vec<HistoryEntry>,
    },
    Contacts {
        entries: Vec<crate::contacts::Contact>,
    },
    /// The sound cards there are, and the ones chosen (empty: the system's default).
    Devices {
        inputs: Vec<String>,
        outputs: Vec<String>,
        microphone: String,
        speaker: String,
        ringer: String,
        speaker_volume: u8,
        ringer_volume: u8,
    },
    Error {
        message: String,
    },
    Quit,
}
