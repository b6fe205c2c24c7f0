//! What the window shows, kept apart from the window: each line's registration and message
//! count, the calls and their phases, DND and forwarding, the history. It is built from the
//! engine's events and the commands given; it knows no SIP and no widget, so it is tested
//! with plain events.

use crate::engine::{Command, Event, Feature};
use std::time::Instant;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineState {
    Registering,
    Registered,
    Failed(String),
    Unregistered,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineView {
    pub number: String,
    pub state: LineState,
    pub new_messages: u32,
    pub old_messages: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Our INVITE is out, nothing heard yet.
    Dialing,
    /// The other side rings.
    Ringing,
    /// A call for us rings.
    Incoming,
    Talking,
    /// We hold it.
    Held,
    /// The other side holds it.
    HeldByOther,
    /// Talking in the PBX conference.
    Conference,
}

impl Phase {
    pub fn label(self) -> &'static str {
        match self {
            Phase::Dialing => "dialing",
            Phase::Ringing => "ringing",
            Phase::Incoming => "incoming",
            Phase::Talking => "talking",
            Phase::Held => "on hold",
            Phase::HeldByOther => "held by the other side",
            Phase::Conference => "in conference",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct CallView {
    pub id: u32,
    pub line: usize,
    pub party: String,
    pub display: String,
    pub diversion: String,
    pub phase: Phase,
    pub outgoing: bool,
    pub muted: bool,
    /// Since when it has been talking.
    pub since: Option<Instant>,
    /// The distinctive ring the caller asked for (Alert-Info), if any.
    pub ring: String,
    /// Mixed with another call in the phone (a local 3-way conference).
    pub joined: bool,
    /// The callee's early audio is playing (183 with SDP).
    pub early_media: bool,
    /// The audio is SRTP, with this suite.
    pub encrypted: Option<&'static str>,
    /// Receive quality, oldest first (the last [`QUALITY_KEPT`] reports).
    pub quality: Vec<Quality>,
}

/// One quality report of a call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quality {
    pub jitter_ms: f32,
    pub loss_percent: f32,
    pub buffer_ms: f32,
    pub mos: f32,
    pub rtt_ms: Option<f32>,
}

/// How many quality reports a call keeps for its plot (2 minutes at one per 2 s).
pub const QUALITY_KEPT: usize = 60;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryKind {
    Dialled,
    Received,
    Missed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    pub kind: HistoryKind,
    pub party: String,
}

#[derive(Debug, Default)]
pub struct Model {
    pub lines: Vec<LineView>,
    pub calls: Vec<CallView>,
    pub dnd: bool,
    /// Forwarding set by code: (all|busy|noanswer|both, destination).
    pub forward: Option<(String, String)>,
    pub history: Vec<HistoryEntry>,
    /// The configuration's contacts and the provisioner's directory.
    pub contacts: Vec<crate::contacts::Contact>,
    /// The last thing worth telling the user (an error, a feature's outcome).
    pub notice: String,
    /// The call the soft keys act on.
    pub selected: Option<u32>,
    /// Members are being added to a PBX conference (between the first 46 and the last).
    pub conference_adding: bool,
    /// Who was added to the PBX conference, in order.
    pub conference_members: Vec<String>,
    /// The feature under way, applied when the engine says it is done.
    pending: Option<Feature>,
    /// Calls that only carry a feature code (answered 480): not shown.
    code_calls: Vec<u32>,
}

impl Model {
    /// One line per account number, registering.
    pub fn new(numbers: &[String]) -> Model {
        Model {
            lines: numbers
                .iter()
                .map(|n| LineView {
                    number: n.clone(),
                    state: LineState::Registering,
                    new_messages: 0,
                    old_messages: 0,
                })
                .collect(),
            ..Model::default()
        }
    }

    /// The call the soft keys act on: the selected one, else the newest.
    pub fn current(&self) -> Option<&CallView> {
        self.selected
            .and_then(|id| self.calls.iter().find(|c| c.id == id))
            .or(self.calls.last())
    }

    pub fn call(&self, id: u32) -> Option<&CallView> {
        self.calls.iter().find(|c| c.id == id)
    }

    fn call_mut(&mut self, id: u32) -> Option<&mut CallView> {
        self.calls.iter_mut().find(|c| c.id == id)
    }

    /// A feature sequence is under way (the engine takes one at a time).
    pub fn feature_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// Remembers what a command will change once the engine confirms it.
    pub fn on_command(&mut self, c: &Command) {
        match c {
            Command::Feature(f @ (Feature::Retrieve(_) | Feature::Pickup(_))) => {
                self.notice = format!("{}…", feature_name(f));
            }
            Command::Feature(f) => {
                self.notice = format!("{}…", feature_name(f));
                self.pending = Some(f.clone());
            }
            _ => {}
        }
    }

    pub fn on_event(&mut self, e: &Event) {
        match e {
            Event::Registered { line, .. } => self.set_line(*line, LineState::Registered),
            Event::RegistrationFailed {
                line,
                status,
                reason,
                ..
            } => {
                let why = if *status == 0 {
                    reason.clone()
                } else {
                    format!("{status} {reason}")
                };
                self.set_line(*line, LineState::Failed(why));
            }
            Event::Unregistered { line, .. } => self.set_line(*line, LineState::Unregistered),
            Event::NetworkChanged { line, address } => {
                self.notice = format!("line {line}: a new network, registering from {address}");
            }
            Event::Failover { line, server } => {
                self.notice = format!("line {line}: its server failed, now trying {server}");
            }
            Event::Calling { call, line, to } => {
                if self.pending.is_some() {
                    self.code_calls.push(*call);
                    return;
                }
                self.history.push(HistoryEntry {
                    kind: HistoryKind::Dialled,
                    party: to.clone(),
                });
                self.add_call(*call, *line, to, "", "", Phase::Dialing, true);
            }
            Event::Ringing { call } => self.set_phase(*call, Phase::Ringing),
            Event::Incoming {
                call,
                line,
                from,
                display,
                diversion,
                alert_info,
                ..
            } => {
                self.add_call(
                    *call,
                    *line,
                    from,
                    display,
                    diversion,
                    Phase::Incoming,
                    false,
                );
                if let Some(c) = self.calls.last_mut() {
                    c.ring = distinctive_ring(alert_info);
                }
            }
            Event::EarlyMedia { call } => {
                if let Some(c) = self.call_mut(*call) {
                    c.early_media = true;
                }
            }
            Event::Encrypted { call, suite } => {
                if let Some(c) = self.call_mut(*call) {
                    c.encrypted = Some(suite);
                }
            }
            Event::Established { call } => {
                if let Some(c) = self.call_mut(*call) {
                    if c.phase == Phase::Incoming {
                        let party = c.party.clone();
                        self.history.push(HistoryEntry {
                            kind: HistoryKind::Received,
                            party,
                        });
                    }
                    self.set_phase(*call, Phase::Talking);
                    if let Some(c) = self.call_mut(*call) {
                        c.since = Some(Instant::now());
                    }
                }
            }
            Event::Held { call } => self.set_phase(*call, Phase::Held),
            Event::Quality {
                call,
                jitter_ms,
                loss_percent,
                buffer_ms,
                mos,
                rtt_ms,
                ..
            } => {
                if let Some(c) = self.call_mut(*call) {
                    if c.quality.len() == QUALITY_KEPT {
                        c.quality.remove(0);
                    }
                    c.quality.push(Quality {
                        jitter_ms: *jitter_ms,
                        loss_percent: *loss_percent,
                        buffer_ms: *buffer_ms,
                        mos: *mos,
                        rtt_ms: *rtt_ms,
                    });
                }
            }
            Event::Joined { calls } => {
                for c in &mut self.calls {
                    if calls.contains(&c.id) {
                        c.joined = true;
                    }
                }
                self.notice = format!("calls {} and {} joined in the phone", calls[0], calls[1]);
            }
            Event::Muted { call, on } => {
                if let Some(c) = self.call_mut(*call) {
                    c.muted = *on;
                }
            }
            Event::Resumed { call } => self.set_phase(*call, Phase::Talking),
            Event::RemoteHold { call, held } => self.set_phase(
                *call,
                if *held {
                    Phase::HeldByOther
                } else {
                    Phase::Talking
                },
            ),
            Event::Ended { call, reason, .. } => {
                if self.code_calls.contains(call) {
                    self.code_calls.retain(|c| c != call);
                    return;
                }
                if let Some(i) = self.calls.iter().position(|c| c.id == *call) {
                    let c = self.calls.remove(i);
                    self.notice = format!("call with {}: {reason}", c.party);
                    if c.phase == Phase::Incoming {
                        self.history.push(HistoryEntry {
                            kind: HistoryKind::Missed,
                            party: c.party,
                        });
                    }
                }
                if self.selected == Some(*call) {
                    self.selected = None;
                }
                if !self.conference_adding
                    && !self.calls.iter().any(|c| c.phase == Phase::Conference)
                {
                    self.conference_members.clear();
                }
            }
            Event::Mwi { line, new, old } => {
                if let Some(l) = self.lines.get_mut(line.saturating_sub(1)) {
                    l.new_messages = *new;
                    l.old_messages = *old;
                }
            }
            Event::Replaced { call, by } => {
                if let Some(c) = self.call_mut(*call) {
                    c.id = *by;
                }
            }
            Event::Transferred { call } => {
                self.notice = format!("call {call} transferred");
            }
            Event::TransferFailed { status, reason, .. } => {
                self.notice = format!("transfer failed: {status} {reason}");
            }
            Event::TransferRequested { to, .. } => {
                self.notice = format!("transferred to {to}");
            }
            Event::Refused {
                from,
                status,
                reason,
                ..
            } => {
                self.notice = format!("call from {from} refused: {status} {reason}");
            }
            Event::FeatureDone { name, ok } => self.feature_done(name, *ok),
            Event::Contacts { entries } => self.contacts = entries.clone(),
            Event::History { entries } => {
                self.history = entries
                    .iter()
                    .map(|h| HistoryEntry {
                        kind: match h.kind.as_str() {
                            "dialled" => HistoryKind::Dialled,
                            "received" => HistoryKind::Received,
                            _ => HistoryKind::Missed,
                        },
                        party: h.party.clone(),
                    })
                    .collect();
            }
            Event::DtmfReceived { call, digit, .. } => {
                self.notice = format!("call {call}: the other side sent {digit}");
            }
            Event::Error { message } => self.notice = message.clone(),
            Event::Ready { .. }
            | Event::Feature { .. }
            | Event::Status { .. }
            | Event::Devices { .. }
            | Event::Quit => {}
        }
    }

    fn feature_done(&mut self, name: &str, ok: bool) {
        let pending = self.pending.take();
        if !ok {
            self.notice = format!("{name} failed");
            return;
        }
        self.notice = format!("{name} done");
        match pending {
            Some(Feature::Dnd(on)) => self.dnd = on,
            Some(Feature::Forward(f)) => self.forward = f,
            Some(Feature::ConferenceAdd) => {
                self.conference_adding = true;
                let held = self.calls.iter().rev().find(|c| c.phase == Phase::Held);
                if let Some(party) = held.map(|c| c.party.clone())
                    && !self.conference_members.contains(&party)
                {
                    self.conference_members.push(party);
                }
            }
            Some(Feature::ConferenceEnd) => {
                self.conference_adding = false;
                for c in &mut self.calls {
                    if c.phase == Phase::Talking {
                        c.phase = Phase::Conference;
                    }
                }
            }
            _ => {}
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn add_call(
        &mut self,
        id: u32,
        line: usize,
        party: &str,
        display: &str,
        diversion: &str,
        phase: Phase,
        outgoing: bool,
    ) {
        self.calls.push(CallView {
            id,
            line,
            party: party.to_string(),
            display: display.to_string(),
            diversion: diversion.to_string(),
            phase,
            outgoing,
            muted: false,
            since: None,
            ring: String::new(),
            early_media: false,
            encrypted: None,
            joined: false,
            quality: Vec::new(),
        });
        self.selected = Some(id);
    }

    fn set_line(&mut self, line: usize, state: LineState) {
        if let Some(l) = self.lines.get_mut(line.saturating_sub(1)) {
            l.state = state;
        }
    }

    fn set_phase(&mut self, id: u32, phase: Phase) {
        let adding = self.conference_adding;
        if let Some(c) = self.call_mut(id) {
            // A conference member taken off hold is still in the conference.
            c.phase = if phase == Phase::Talking && c.phase == Phase::Conference && !adding {
                Phase::Conference
            } else {
                phase
            };
        }
    }
}

pub use crate::ringer::distinctive_ring;

/// What a feature is called in notices.
pub fn feature_name(f: &Feature) -> &'static str {
    match f {
        Feature::Dnd(true) => "DND on",
        Feature::Dnd(false) => "DND off",
        Feature::Forward(Some(_)) => "forward",
        Feature::Forward(None) => "forward clear",
        Feature::Park(_) => "park",
        Feature::Retrieve(_) => "retrieve",
        Feature::Pickup(_) => "pickup",
        Feature::ConferenceAdd => "conference",
        Feature::ConferenceEnd => "conference join",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> Model {
        Model::new(&["201".into()])
    }

    #[test]
    fn a_call_goes_through_its_phases_and_into_the_history() {
        let mut m = model();
        m.on_event(&Event::Registered {
            line: 1,
            account: "201".into(),
            expires: 600,
        });
        assert_eq!(m.lines[0].state, LineState::Registered);
        m.on_event(&Event::Incoming {
            call: 1,
            line: 1,
            from: "202".into(),
            display: "Sales".into(),
            diversion: "203".into(),
            alert_info: "<http://pbx/ring-external.wav>".into(),
            auto_answer: false,
        });
        assert_eq!(
            m.current().map(|c| c.ring.as_str()),
            Some("ring-external.wav")
        );
        assert_eq!(m.current().map(|c| c.phase), Some(Phase::Incoming));
        m.on_event(&Event::Established { call: 1 });
        m.on_event(&Event::RemoteHold {
            call: 1,
            held: true,
        });
        assert_eq!(m.call(1).map(|c| c.phase), Some(Phase::HeldByOther));
        m.on_event(&Event::Ended {
            call: 1,
            status: 0,
            reason: "the other side hung up".into(),
        });
        assert!(m.calls.is_empty());
        assert_eq!(m.history[0].kind, HistoryKind::Received);
        // Unanswered: missed.
        m.on_event(&Event::Incoming {
            call: 2,
            line: 1,
            from: "203".into(),
            display: String::new(),
            diversion: String::new(),
            alert_info: String::new(),
            auto_answer: false,
        });
        m.on_event(&Event::Ended {
            call: 2,
            status: 487,
            reason: "cancelled".into(),
        });
        assert_eq!(m.history[1].kind, HistoryKind::Missed);
    }

    #[test]
    fn the_kept_history_fills_the_list() {
        let mut m = model();
        let entry = |kind: &str, party: &str| crate::engine::HistoryEntry {
            at: 0,
            line: 1,
            kind: kind.into(),
            party: party.into(),
            display: String::new(),
            seconds: 0,
        };
        m.on_event(&Event::History {
            entries: vec![entry("dialled", "202"), entry("rejected", "203")],
        });
        assert_eq!(
            m.history,
            vec![
                HistoryEntry {
                    kind: HistoryKind::Dialled,
                    party: "202".into()
                },
                HistoryEntry {
                    kind: HistoryKind::Missed,
                    party: "203".into()
                }
            ]
        );
    }

    #[test]
    fn features_apply_when_done_and_their_code_calls_stay_hidden() {
        let mut m = model();
        m.on_command(&Command::Feature(Feature::Dnd(true)));
        m.on_event(&Event::Calling {
            call: 1,
            line: 1,
            to: "401".into(),
        });
        assert!(m.calls.is_empty(), "the code call is not shown");
        assert!(!m.dnd, "not before the PBX took the code");
        m.on_event(&Event::Ended {
            call: 1,
            status: 480,
            reason: "Temporarily Unavailable".into(),
        });
        m.on_event(&Event::FeatureDone {
            name: "dnd".into(),
            ok: true,
        });
        assert!(m.dnd);
        // A failed one changes nothing.
        m.on_command(&Command::Feature(Feature::Forward(Some((
            "all".into(),
            "203".into(),
        )))));
        m.on_event(&Event::FeatureDone {
            name: "forward".into(),
            ok: false,
        });
        assert_eq!(m.forward, None);
        assert_eq!(m.notice, "forward failed");
    }
}
