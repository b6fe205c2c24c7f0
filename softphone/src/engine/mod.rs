//! The engine's driver: one SIP [`Endpoint`] for all lines, each line's [`Registration`]
//! fed with responses and the clock, the calls ([`Call`]) and their dialogs, commands in,
//! [`Event`]s out. No window and no terminal: the headless control and the GUI both sit on
//! top of these two channels.

mod history;
mod mwi;
mod transfer;

use crate::call::{self, Call, CallState, MediaControl};
use crate::config::{Account, Audio, Config, Features};
use crate::registration::{Outcome, Registration, State};
use crate::sequence::{Fact, Progress, Sequence, Step, Wait};
pub use history::HistoryEntry;
use serde::Serialize;
use sip::clock::Clock;
use sip::dialog::{Dialog, DialogId};
use sip::endpoint::Endpoint;
use sip::sdp::Direction;
use sip::transaction::{Peer, TimerConfig, TransportKind, TsxEvent, TsxKey};
use sip::transport::TransportConfig;
use sip::types::Name;
use sip::{Message, Method, Request, Response, build};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
pub use transfer::TransferTarget;

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
    /// Report the contacts: the configuration's and the provisioner's directory.
    Contacts,
    /// Unregister every line and stop.
    Quit,
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
    Error {
        message: String,
    },
    Quit,
}

struct Line {
    account: Account,
    reg: Registration,
    /// Where the line's requests go: one of `servers`.
    peer: Peer,
    /// The registrar, then its backup if the account names one.
    servers: Vec<SocketAddr>,
    /// The address the line names in its Contact.
    local: SocketAddr,
    /// The REGISTER transaction in flight.
    pending: Option<TsxKey>,
    mwi: mwi::Mwi,
}

struct Engine {
    ep: Arc<Endpoint>,
    /// The time of the event being handled: the loop below tells it (see `sip::clock`).
    clock: Clock,
    local: SocketAddr,
    lines: Vec<Line>,
    calls: Vec<Call>,
    next_call: u32,
    audio: Audio,
    features: Features,
    /// The feature sequence under way, and what happened since it last looked.
    sequence: Option<Sequence>,
    facts: std::sync::Mutex<Vec<Fact>>,
    events: mpsc::UnboundedSender<Event>,
    /// The history file, and the calls under way until they end and go into it.
    history: Option<std::path::PathBuf>,
    open_calls: std::sync::Mutex<Vec<(u32, history::Open)>>,
    /// The configuration's contacts, and where the profile came from (its directory).
    contacts: Vec<crate::contacts::Contact>,
    provisioning_url: String,
    /// The first line's user ID and password, for the provisioner's directory.
    directory_auth: Option<(String, String)>,
}

/// Runs the engine until `Quit` (or the command channel closes).
pub async fn run(
    config: Config,
    listen: SocketAddr,
    commands: mpsc::UnboundedReceiver<Command>,
    events: mpsc::UnboundedSender<Event>,
) -> anyhow::Result<()> {
    run_on(config, listen, commands, events, None).await
}

/// [`run`], with SIP (UDP only) on `memory` when given: the scenario tests run the engine so,
/// beside the PBX, on tokio's paused clock.
pub async fn run_on(
    config: Config,
    listen: SocketAddr,
    mut commands: mpsc::UnboundedReceiver<Command>,
    events: mpsc::UnboundedSender<Event>,
    memory: Option<sip::transport::MemNet>,
) -> anyhow::Result<()> {
    let (ep, mut tsx) = Endpoint::start(
        TransportConfig {
            udp: Some(listen),
            tcp: Some(listen),
            memory,
            ..Default::default()
        },
        TimerConfig::default(),
    )
    .await?;
    let local = ep.local_addr(TransportKind::Udp).unwrap_or(listen);
    let mut e = Engine {
        clock: Clock::now(),
        ep,
        local,
        lines: Vec::new(),
        calls: Vec::new(),
        next_call: 1,
        audio: config.audio.clone(),
        features: config.features.clone(),
        sequence: None,
        facts: std::sync::Mutex::new(Vec::new()),
        events,
        history: config.history_file.clone(),
        open_calls: std::sync::Mutex::new(Vec::new()),
        contacts: config.contacts.clone(),
        provisioning_url: config.provisioning_url.clone(),
        directory_auth: config
            .accounts
            .first()
            .map(|a| (a.user_id.clone(), a.password.clone())),
    };
    e.open_lines(&config).await;
    // Every 10 s: has the address towards the server changed (another network)?
    let mut network = tokio::time::interval(Duration::from_secs(10));
    network.tick().await;
    loop {
        let wake = e
            .lines
            .iter()
            .filter_map(|l| l.reg.poll_timeout())
            .chain(e.lines.iter().filter_map(|l| l.mwi.refresh_at))
            .min()
            .unwrap_or(e.clock.now + Duration::from_secs(3600));
        tokio::select! {
            t = tsx.recv() => {
                e.clock = Clock::now();
                match t {
                    Some(TsxEvent::Response { key, response }) => e.on_response(&key, &response).await,
                    Some(TsxEvent::Request { key, request, peer }) => e.on_request(key, request, peer).await,
                    Some(TsxEvent::Cancelled { invite, .. }) => e.on_cancelled(&invite),
                    Some(_) => {}
                    None => return Ok(()),
                }
            }
            c = commands.recv() => {
                e.clock = Clock::now();
                match c {
                    Some(Command::Quit) | None => return e.quit(&mut tsx).await,
                    Some(c) => e.on_command(c).await,
                }
            }
            _ = network.tick() => e.check_network(listen),
            _ = tokio::time::sleep_until(wake.into()) => {
                e.clock = Clock::now();
                let now = e.clock.now;
                for i in 0..e.lines.len() {
                    let r = e.lines[i].reg.poll_transmit(now);
                    e.send_register(i, r);
                    if e.lines[i].mwi.refresh_at.is_some_and(|t| t <= now) {
                        e.refresh_mwi(i);
                    }
                }
            }
        }
        e.advance().await;
    }
}

/// The address to name for `local` when talking to `server`: itself, or when it is the
/// unspecified address, the one the system would send from to reach `server` (found by
/// connecting a UDP socket, which sends nothing).
fn advertised(local: SocketAddr, server: SocketAddr) -> SocketAddr {
    if !local.ip().is_unspecified() {
        return local;
    }
    sip::transport::route_toward(server.ip()).map_or(local, |ip| SocketAddr::new(ip, local.port()))
}

/// Turns call `call`'s media reports into `quality` and `dtmf_received` events.
fn reporter(events: &mpsc::UnboundedSender<Event>, call: u32) -> call::Reporter {
    let events = events.clone();
    let round = |x: f32| (x * 10.0).round() / 10.0;
    Box::new(move |r| {
        let s = match r {
            call::MediaReport::Quality(s) => s,
            call::MediaReport::Dtmf(digit) => {
                let _ = events.send(Event::DtmfReceived {
                    call,
                    digit: digit.to_string(),
                    by: "rfc4733",
                });
                return;
            }
        };
        let _ = events.send(Event::Quality {
            call,
            jitter_ms: round(s.jitter_ms),
            loss_percent: round(s.loss_fraction * 100.0),
            buffer_ms: round(s.buffer_ms),
            mos: (s.mos * 100.0).round() / 100.0,
            rtt_ms: s.rtt_ms.map(round),
            received: s.packets_received,
            lost: s.lost,
        });
    })
}

/// Whether an INFO carries a digit (`application/dtmf-relay` or `application/dtmf`).
fn is_dtmf_relay(r: &Request) -> bool {
    r.headers
        .get_raw(&Name::CONTENT_TYPE)
        .next()
        .map(|v| v.trim().to_ascii_lowercase())
        .is_some_and(|v| v.starts_with("application/dtmf"))
}

/// The digit of a dtmf-relay body (`Signal=5`), or of a bare `application/dtmf` one (`5`).
fn dtmf_relay_signal(body: &[u8]) -> Option<char> {
    let text = std::str::from_utf8(body).ok()?;
    let value = text
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once('=')?;
            k.trim().eq_ignore_ascii_case("signal").then_some(v)
        })
        .unwrap_or(text);
    let mut chars = value.trim().chars();
    let d = chars.next()?.to_ascii_uppercase();
    (chars.next().is_none() && (d.is_ascii_digit() || "*#ABCD".contains(d))).then_some(d)
}

/// Whether an INVITE asks to be answered at once: RFC 5373 `Answer-Mode: Auto`, a
/// `Call-Info` with `answer-after=0`, or an `Alert-Info` naming auto-answer (the forms
/// Polycom, Cisco and Yealink phones honour for intercom and paging).
fn auto_answer_requested(r: &Request) -> bool {
    let header = |n: &str| -> Vec<String> {
        r.headers
            .get_raw(&Name::from(n))
            .map(|v| v.to_ascii_lowercase().replace(' ', ""))
            .collect()
    };
    header("Answer-Mode").iter().any(|v| v.starts_with("auto"))
        || header("Call-Info")
            .iter()
            .any(|v| v.contains("answer-after=0"))
        || header("Alert-Info")
            .iter()
            .any(|v| v.contains("info=alert-autoanswer") || v.contains("auto-answer"))
}

impl Engine {
    fn emit(&self, e: Event) {
        let fact = match &e {
            Event::Held { call } => Some(Fact::Held(*call)),
            Event::Resumed { call } => Some(Fact::Resumed(*call)),
            Event::Ended { call, status, .. } => Some(Fact::Ended(*call, *status)),
            _ => None,
        };
        if let Some(f) = fact {
            self.facts.lock().unwrap_or_else(|e| e.into_inner()).push(f);
        }
        self.keep_history(&e);
        let _ = self.events.send(e);
    }

    /// After a network change (the address towards a line's server is another one), each
    /// such line registers again from the new address at once.
    fn check_network(&mut self, listen: SocketAddr) {
        if !listen.ip().is_unspecified() {
            return;
        }
        for i in 0..self.lines.len() {
            let transport = self.lines[i].peer.transport;
            let bound = self.ep.local_addr(transport).unwrap_or(listen);
            let now = advertised(bound, self.lines[i].peer.addr);
            if now.ip().is_unspecified() || now == self.lines[i].local {
                continue;
            }
            let a = self.lines[i].account.clone();
            self.lines[i].local = now;
            self.lines[i].reg = Registration::new(
                &a.number,
                (&a.server, a.port),
                (&a.user_id, &a.password),
                transport,
                now,
                a.registration_expiry,
            );
            self.lines[i].mwi = mwi::Mwi::default();
            if i == 0 {
                self.local = SocketAddr::new(now.ip(), self.local.port());
            }
            self.emit(Event::NetworkChanged {
                line: i + 1,
                address: now.to_string(),
            });
            let r = self.lines[i].reg.register();
            self.send_register(i, r);
        }
    }

    /// Starts a feature sequence (one at a time).
    async fn feature(&mut self, f: Feature) {
        if self.sequence.is_some() {
            return self.emit(Event::Error {
                message: "a feature is already under way".into(),
            });
        }
        let codes = self.features.clone();
        let own = self
            .lines
            .first()
            .map(|l| l.account.number.clone())
            .unwrap_or_default();
        let code = |c: &str, arg: &str| Step::Code(format!("{c}{arg}"));
        let (name, steps) = match f {
            Feature::Dnd(on) => ("dnd", vec![code(&codes.dnd, if on { "1" } else { "0" })]),
            Feature::Forward(None) => ("forward", vec![code(&codes.forward_clear, "")]),
            Feature::Forward(Some((kind, to))) => {
                let c = match kind.as_str() {
                    "all" => &codes.forward_all,
                    "busy" => &codes.forward_busy,
                    "noanswer" => &codes.forward_noanswer,
                    _ => &codes.forward_busy_noanswer,
                };
                ("forward", vec![code(c, &to)])
            }
            Feature::Park(slot) => {
                let slot = slot.unwrap_or(own);
                ("park", vec![Step::Hold, code(&codes.park, &slot)])
            }
            Feature::Retrieve(slot) => {
                return self.dial(&format!("{}{slot}", codes.retrieve), 1).await;
            }
            Feature::Pickup(Some(st)) => {
                return self
                    .dial(&format!("{}{st}", codes.pickup_directed), 1)
                    .await;
            }
            Feature::Pickup(None) => return self.dial(&codes.pickup_my_group, 1).await,
            Feature::ConferenceAdd => ("conference", vec![Step::Hold, code(&codes.conference, "")]),
            Feature::ConferenceEnd => (
                "conference",
                vec![code(&codes.conference, ""), Step::Resume],
            ),
        };
        self.sequence = Some(Sequence::new(name, 0, steps));
    }

    /// Moves the feature sequence on with what happened.
    async fn advance(&mut self) {
        let Some(mut seq) = self.sequence.take() else {
            self.facts.lock().unwrap_or_else(|e| e.into_inner()).clear();
            return;
        };
        loop {
            let facts: Vec<Fact> =
                std::mem::take(&mut *self.facts.lock().unwrap_or_else(|e| e.into_inner()));
            for f in &facts {
                if let Progress::StepDone { step, ok, status } = seq.on_fact(f) {
                    self.emit(Event::Feature {
                        name: seq.name.clone(),
                        step,
                        ok,
                        status,
                    });
                }
            }
            let Some(step) = seq.next_step() else {
                if facts.is_empty() {
                    break;
                }
                continue;
            };
            match step {
                Step::Hold => {
                    match self.pick(None, |c| c.state == CallState::Established && !c.on_hold) {
                        Some(i) => {
                            let id = self.calls[i].id;
                            self.reinvite(Some(id), true);
                            seq.wait(Wait::Held(id));
                        }
                        None => seq.fail(),
                    }
                }
                Step::Resume => {
                    match self.pick(None, |c| c.state == CallState::Established && c.on_hold) {
                        Some(i) => {
                            let id = self.calls[i].id;
                            self.reinvite(Some(id), false);
                            seq.wait(Wait::Resumed(id));
                        }
                        None => seq.fail(),
                    }
                }
                Step::Code(digits) => {
                    let before = self.next_call;
                    self.dial(&digits, seq.line + 1).await;
                    if self.next_call > before {
                        self.forget_call(before);
                        seq.wait(Wait::Code(before));
                    } else {
                        seq.fail();
                    }
                }
            }
        }
        if seq.done() {
            self.emit(Event::FeatureDone {
                name: seq.name.clone(),
                ok: !seq.failed,
            });
            self.facts.lock().unwrap_or_else(|e| e.into_inner()).clear();
        } else {
            self.sequence = Some(seq);
        }
    }

    async fn open_lines(&mut self, config: &Config) {
        for (i, a) in config.accounts.iter().enumerate() {
            let transport = if a.transport == "tcp" {
                TransportKind::Tcp
            } else {
                TransportKind::Udp
            };
            let local = self.ep.local_addr(transport).unwrap_or(self.local);
            let Some(addr) = tokio::net::lookup_host((a.server.as_str(), a.port))
                .await
                .ok()
                .and_then(|mut it| it.next())
            else {
                self.emit(Event::RegistrationFailed {
                    line: i + 1,
                    account: a.number.clone(),
                    status: 0,
                    reason: format!("{}: no address for this server", a.server),
                    retry_in: 0,
                });
                continue;
            };
            // Listening on every interface, the phone still names one address in its Contact,
            // Via and SDP: the one the system sends from towards the server (0.0.0.0 there
            // would mean "put me on hold" to the other side's SDP).
            let local = advertised(local, addr);
            if i == 0 {
                self.local = SocketAddr::new(local.ip(), self.local.port());
            }
            let mut servers = vec![addr];
            if !a.backup_server.is_empty() {
                match tokio::net::lookup_host((a.backup_server.as_str(), a.backup_port))
                    .await
                    .ok()
                    .and_then(|mut it| it.next())
                {
                    Some(b) => servers.push(b),
                    None => self.emit(Event::Error {
                        message: format!(
                            "line {}: {}: no address for the backup server",
                            i + 1,
                            a.backup_server
                        ),
                    }),
                }
            }
            self.lines.push(Line {
                servers,
                local,
                reg: Registration::new(
                    &a.number,
                    (&a.server, a.port),
                    (&a.user_id, &a.password),
                    transport,
                    local,
                    a.registration_expiry,
                ),
                account: a.clone(),
                peer: Peer::new(transport, addr),
                pending: None,
                mwi: mwi::Mwi::default(),
            });
        }
        self.emit(Event::Ready {
            lines: self.lines.len(),
            sip: self.local.to_string(),
        });
        for i in 0..self.lines.len() {
            let r = self.lines[i].reg.register();
            self.send_register(i, r);
        }
    }

    fn send_register(&mut self, i: usize, request: Option<Request>) {
        if let Some(r) = request {
            let peer = self.lines[i].peer;
            self.lines[i].pending = self.ep.send_request(r, peer).ok();
        }
    }

    fn via(&self, peer: Peer) -> String {
        build::via_value(peer.transport, self.local, &build::new_branch())
    }

    async fn on_command(&mut self, c: Command) {
        match c {
            Command::Contacts => {
                let (mut entries, url) = (self.contacts.clone(), self.provisioning_url.clone());
                let auth = self.directory_auth.clone();
                let events = self.events.clone();
                // The directory is fetched off the engine's loop: a slow provisioner holds
                // up only this answer.
                tokio::task::spawn_blocking(move || {
                    if !url.is_empty() {
                        let auth = auth.as_ref().map(|(u, p)| (u.as_str(), p.as_str()));
                        match crate::contacts::fetch_directory(&url, auth) {
                            Ok(d) => entries.extend(d),
                            Err(e) => {
                                let _ = events.send(Event::Error {
                                    message: format!("the directory: {e}"),
                                });
                            }
                        }
                    }
                    let _ = events.send(Event::Contacts { entries });
                });
            }
            Command::History(n) => {
                let entries = self
                    .history
                    .as_deref()
                    .map(|p| history::read(p, n))
                    .unwrap_or_default();
                self.emit(Event::History { entries });
            }
            Command::Status => self.emit(Event::Status {
                lines: self.line_status(),
                calls: self.call_status(),
            }),
            Command::Register(n) => {
                if n == 0 || n > self.lines.len() {
                    return self.emit(Event::Error {
                        message: format!("no line {n}"),
                    });
                }
                let r = self.lines[n - 1].reg.register();
                self.send_register(n - 1, r);
            }
            Command::Dial { number, line } => self.dial(&number, line).await,
            Command::Answer(id) => self.answer(id).await,
            Command::Reject(id) => match self.pick(id, |c| c.state == CallState::Incoming) {
                Some(i) => {
                    let c = self.calls.remove(i);
                    self.refuse(&c, 486, "Busy Here");
                    self.emit(Event::Ended {
                        call: c.id,
                        status: 486,
                        reason: "rejected".into(),
                    });
                }
                None => self.no_call("reject"),
            },
            Command::Hangup(id) => match self.pick(id, |_| true) {
                Some(i) => self.hang_up(i),
                None => self.no_call("hangup"),
            },
            Command::Feature(f) => self.feature(f).await,
            Command::Transfer { call, to } => self.transfer(call, to),
            Command::Hold(id) => self.reinvite(id, true),
            Command::Resume(id) => self.reinvite(id, false),
            Command::Join { call, other } => self.join(call, other),
            Command::Mute { call, on } => {
                match self.pick(call, |c| c.state == CallState::Established) {
                    Some(i) if self.calls[i].media(MediaControl::Mute(on)) => {
                        let call = self.calls[i].id;
                        self.emit(Event::Muted { call, on });
                    }
                    Some(_) => self.emit(Event::Error {
                        message: "mute: the call has no media".into(),
                    }),
                    None => self.no_call("mute"),
                }
            }
            Command::Dtmf { digits, call } => {
                match self.pick(call, |c| c.state == CallState::Established) {
                    Some(i) if self.lines[self.calls[i].line].account.dtmf == "info" => {
                        self.dtmf_info(i, &digits);
                    }
                    Some(i) => {
                        for d in digits.chars() {
                            if !self.calls[i].media(MediaControl::Dtmf(d)) {
                                return self.emit(Event::Error {
                                    message: "dtmf: the call has no media".into(),
                                });
                            }
                        }
                    }
                    None => self.no_call("dtmf"),
                }
            }
            Command::Quit => {}
        }
    }

    /// Sends each digit as a SIP INFO in call `i`'s dialog (`application/dtmf-relay`, 160 ms).
    fn dtmf_info(&mut self, i: usize, digits: &str) {
        let peer = self.calls[i].peer;
        for d in digits.chars() {
            let via = self.via(peer);
            let Some(dialog) = self.calls[i].dialog.as_mut() else {
                return self.no_call("dtmf");
            };
            let mut r = dialog.request(Method::Info, &via);
            r.headers
                .insert(Name::CONTENT_TYPE, "application/dtmf-relay");
            r.body = format!("Signal={d}\r\nDuration=160\r\n")
                .into_bytes()
                .into();
            let _ = self.ep.send_request(r, peer);
        }
    }

    /// A local 3-way conference: both calls resumed and mixed in the phone.
    fn join(&mut self, call: Option<u32>, other: Option<u32>) {
        let established = |c: &Call| c.state == CallState::Established;
        let Some(a) = self.pick(call, |c| established(c) && !c.on_hold) else {
            return self.no_call("join");
        };
        let a_id = self.calls[a].id;
        let b = match other {
            Some(id) => self.calls.iter().position(|c| c.id == id && established(c)),
            None => self
                .calls
                .iter()
                .rposition(|c| c.id != a_id && established(c)),
        };
        let Some(b) = b.filter(|b| *b != a) else {
            return self.emit(Event::Error {
                message: "join: a second established call is needed".into(),
            });
        };
        if self.calls[a].rate != self.calls[b].rate {
            return self.emit(Event::Error {
                message: "join: the calls run at different rates (G.711 and Opus); not mixed"
                    .into(),
            });
        }
        let b_id = self.calls[b].id;
        if self.calls[b].on_hold {
            self.reinvite(Some(b_id), false);
        }
        let mix = call::local_mix();
        self.calls[a].media(MediaControl::Mix(Some((mix.clone(), 0))));
        self.calls[b].media(MediaControl::Mix(Some((mix, 1))));
        self.emit(Event::Joined {
            calls: [a_id, b_id],
        });
    }

    fn no_call(&self, what: &str) {
        self.emit(Event::Error {
            message: format!("{what}: no such call"),
        });
    }

    /// The call `id` names, or the newest for which `fits` holds.
    fn pick(&self, id: Option<u32>, fits: impl Fn(&Call) -> bool) -> Option<usize> {
        match id {
            Some(id) => self.calls.iter().position(|c| c.id == id),
            None => self.calls.iter().rposition(fits),
        }
    }

    async fn dial(&mut self, number: &str, line: usize) {
        self.dial_with(number, line, Vec::new()).await;
    }

    /// Calls `number` on `line` with `headers` added to the INVITE (Replaces, Referred-By);
    /// the new call's number, when it could be placed.
    async fn dial_with(
        &mut self,
        number: &str,
        line: usize,
        headers: Vec<(Name, String)>,
    ) -> Option<u32> {
        let Some(l) = line.checked_sub(1).and_then(|i| self.lines.get(i)) else {
            self.emit(Event::Error {
                message: format!("dial: no line {line}"),
            });
            return None;
        };
        let target = if number.starts_with("sip:") {
            number.to_string()
        } else if !number.is_empty()
            && number
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "*#+.-_".contains(c))
        {
            format!("sip:{number}@{}", l.account.server)
        } else {
            self.emit(Event::Error {
                message: format!("dial: {number:?} is no number or SIP URI"),
            });
            return None;
        };
        let from = format!("sip:{}@{}", l.account.number, l.account.server);
        let peer = l.peer;
        let display = l.account.display_name.clone();
        let Ok(mut invite) = build::request(
            Method::Invite,
            &target,
            &from,
            &target,
            peer.transport,
            self.local,
        ) else {
            self.emit(Event::Error {
                message: format!("dial: {target:?} is no SIP URI"),
            });
            return None;
        };
        for (name, value) in headers {
            invite.headers.insert(name, value);
        }
        if !display.is_empty() {
            let v = invite
                .headers
                .remove(&Name::FROM)
                .and_then(|v| v.into_iter().next())
                .map(|v| v.to_string())
                .unwrap_or_default();
            invite
                .headers
                .insert(Name::FROM, format!("\"{}\" {v}", display.replace('"', "")));
        }
        let Some((rtp, rtcp, caps)) = self.open_rtp(line - 1).await else {
            self.emit(Event::Error {
                message: "dial: no RTP port".into(),
            });
            return None;
        };
        invite.headers.insert(Name::CONTENT_TYPE, "application/sdp");
        invite.body = sip::sdp::offer(&caps).into_bytes().into();
        let Ok(key) = self.ep.send_request(invite.clone(), peer) else {
            self.emit(Event::Error {
                message: "dial: could not send".into(),
            });
            return None;
        };
        let id = self.next_call;
        self.next_call += 1;
        self.calls.push(Call::new(
            id,
            line - 1,
            true,
            number.to_string(),
            invite,
            key,
            peer,
            (rtp, rtcp, caps),
        ));
        self.emit(Event::Calling {
            call: id,
            line,
            to: number.to_string(),
        });
        Some(id)
    }

    /// A new call's RTP socket on `line` (0-based) and what we offer on it.
    /// An RTP socket on an even port with RTCP on the next (RFC 3550 §11), or RTP alone
    /// when no such pair turns up in a few tries.
    async fn open_rtp(
        &self,
        line: usize,
    ) -> Option<(
        tokio::net::UdpSocket,
        Option<tokio::net::UdpSocket>,
        sip::sdp::Local,
    )> {
        let ip = self.local.ip();
        let codecs = &self.lines.get(line)?.account.codecs;
        let mut last = None;
        for _ in 0..20 {
            let rtp = tokio::net::UdpSocket::bind((ip, 0)).await.ok()?;
            let port = rtp.local_addr().ok()?.port();
            if port % 2 == 0
                && let Ok(rtcp) = tokio::net::UdpSocket::bind((ip, port + 1)).await
            {
                return Some((rtp, Some(rtcp), call::local_caps(ip, port, codecs)));
            }
            last = Some((rtp, port));
        }
        let (rtp, port) = last?;
        Some((rtp, None, call::local_caps(ip, port, codecs)))
    }

    async fn answer(&mut self, id: Option<u32>) {
        let Some(i) = self.pick(id, |c| c.state == CallState::Incoming) else {
            return self.no_call("answer");
        };
        let (source, record) = (self.audio.source.clone(), self.audio.record_dir.clone());
        let local = self.local;
        let c = &mut self.calls[i];
        if c.state != CallState::Incoming {
            return self.no_call("answer");
        }
        // An INVITE without SDP (late offer): we offer in the 200, the answer comes in the ACK.
        let (body, agreed) = if c.invite.body.is_empty() {
            (sip::sdp::offer(&c.local), None)
        } else {
            match call::answer_offer(&c.invite.body, &c.local) {
                Ok((body, agreed)) => (body, Some(agreed)),
                Err(e) => {
                    let c = self.calls.remove(i);
                    self.refuse(&c, 488, "Not Acceptable Here");
                    return self.emit(Event::Ended {
                        call: c.id,
                        status: 488,
                        reason: e.to_string(),
                    });
                }
            }
        };
        let mut ok = c.invite.make_response(200, "OK");
        ok.set_to_tag(&c.tag);
        ok.headers.insert(
            Name::CONTACT,
            format!("<sip:{}@{local}>", self.lines[c.line].account.number),
        );
        ok.headers.insert(Name::CONTENT_TYPE, "application/sdp");
        ok.body = body.into_bytes().into();
        c.acked = Some(self.ep.send_2xx(&c.key, c.peer, ok));
        c.dialog = Dialog::from_uas(&c.invite, &c.tag);
        c.state = CallState::Established;
        match agreed {
            Some(agreed) => c.start_media(
                &agreed,
                source.as_deref(),
                record.as_deref(),
                reporter(&self.events, c.id),
            ),
            None => c.late_offer = true,
        }
        let id = c.id;
        self.emit(Event::Established { call: id });
    }

    /// The ACK to our 200: after a late offer it carries the answer, which starts the media.
    fn on_ack(&mut self, i: usize, ack: &Request) {
        let (source, record) = (self.audio.source.clone(), self.audio.record_dir.clone());
        let c = &mut self.calls[i];
        if let Some(acked) = c.acked.take() {
            let _ = acked.send(());
        }
        if !std::mem::take(&mut c.late_offer) {
            return;
        }
        match call::take_answer(&ack.body, &c.local) {
            Some(agreed) => c.start_media(
                &agreed,
                source.as_deref(),
                record.as_deref(),
                reporter(&self.events, c.id),
            ),
            None => {
                let id = c.id;
                self.emit(Event::Error {
                    message: format!(
                        "call {id}: the ACK carries no usable SDP answer to our offer; hanging up"
                    ),
                });
                self.hang_up(i);
            }
        }
    }

    /// Holds (sendonly) or resumes (sendrecv) a call with a re-INVITE.
    fn reinvite(&mut self, id: Option<u32>, hold: bool) {
        let what = if hold { "hold" } else { "resume" };
        let Some(i) = self.pick(id, |c| {
            c.state == CallState::Established && c.on_hold != hold
        }) else {
            return self.no_call(what);
        };
        let local = self.local;
        let c = &mut self.calls[i];
        if c.state != CallState::Established || c.reinvite.is_some() {
            let id = c.id;
            return self.emit(Event::Error {
                message: format!("{what}: call {id} is not ready for it"),
            });
        }
        let body = sip::sdp::offer(c.next_local(if hold {
            Direction::SendOnly
        } else {
            Direction::SendRecv
        }));
        let Some(d) = c.dialog.as_mut() else {
            return;
        };
        let via = build::via_value(c.peer.transport, local, &build::new_branch());
        let mut r = d.request(Method::Invite, &via);
        r.headers.insert(Name::CONTENT_TYPE, "application/sdp");
        r.headers.insert(Name::CONTACT, format!("<sip:{local}>"));
        r.body = body.into_bytes().into();
        c.reinvite = self.ep.send_request(r, c.peer).ok();
        c.on_hold = hold;
        c.media(MediaControl::Hold(hold));
    }

    fn on_reinvite_response(&mut self, i: usize, response: &Response) {
        if response.status < 200 {
            return;
        }
        let local = self.local;
        let c = &mut self.calls[i];
        c.reinvite = None;
        let id = c.id;
        if !(200..300).contains(&response.status) {
            c.on_hold = !c.on_hold; // refused: nothing changed
            let held = c.on_hold;
            c.media(MediaControl::Hold(held));
            return self.emit(Event::Error {
                message: format!("call {id}: re-INVITE answered {}", response.status),
            });
        }
        if let Some(d) = &mut c.dialog {
            d.handle_response(response);
            let via = build::via_value(c.peer.transport, local, &build::new_branch());
            let ack = d.ack(response.cseq().map_or(0, |s| s.seq), &via);
            self.ep.send_stateless(c.peer, &Message::Request(ack));
        }
        if let Some(agreed) = call::take_answer(&response.body, &c.local)
            && let Some(remote) = agreed.remote
        {
            c.media(MediaControl::Remote(remote));
        }
        let held = c.on_hold;
        self.emit(if held {
            Event::Held { call: id }
        } else {
            Event::Resumed { call: id }
        });
    }

    /// The other side's re-INVITE: answered with our SDP (keeping our own hold), the media
    /// follows its new address, and a hold or resume by the other side is reported.
    fn on_peer_reinvite(&mut self, i: usize, key: TsxKey, request: Request) {
        let local = self.local;
        let number = self.lines[self.calls[i].line].account.number.clone();
        let c = &mut self.calls[i];
        let direction = if c.on_hold {
            Direction::SendOnly
        } else {
            Direction::SendRecv
        };
        let ours = c.next_local(direction).clone();
        if request.body.is_empty() {
            // A re-INVITE without SDP (a session refresh, say): we offer what we have; the
            // answer in the ACK changes nothing here.
            let mut ok = request.make_response(200, "OK");
            ok.headers
                .insert(Name::CONTACT, format!("<sip:{number}@{local}>"));
            ok.headers.insert(Name::CONTENT_TYPE, "application/sdp");
            ok.body = sip::sdp::offer(&ours).into_bytes().into();
            c.acked = Some(self.ep.send_2xx(&key, c.peer, ok));
            return;
        }
        let (body, agreed) = match call::answer_offer(&request.body, &ours) {
            Ok(answered) => answered,
            Err(e) => {
                let _ = self
                    .ep
                    .send_response(&key, &request.make_response(488, "Not Acceptable Here"));
                let id = c.id;
                return self.emit(Event::Error {
                    message: format!("call {id}: a re-INVITE we cannot take, answered 488: {e}"),
                });
            }
        };
        let mut ok = request.make_response(200, "OK");
        ok.headers
            .insert(Name::CONTACT, format!("<sip:{number}@{local}>"));
        ok.headers.insert(Name::CONTENT_TYPE, "application/sdp");
        ok.body = body.into_bytes().into();
        c.acked = Some(self.ep.send_2xx(&key, c.peer, ok));
        if let Some(remote) = agreed.remote {
            c.media(MediaControl::Remote(remote));
        }
        if agreed.remote_hold != c.held_by_peer {
            c.held_by_peer = agreed.remote_hold;
            let (id, held) = (c.id, c.held_by_peer);
            self.emit(Event::RemoteHold { call: id, held });
        }
    }

    fn refuse(&self, c: &Call, status: u16, reason: &str) {
        let mut r = c.invite.make_response(status, reason);
        r.set_to_tag(&c.tag);
        let _ = self.ep.send_response(&c.key, &r);
    }

    fn hang_up(&mut self, i: usize) {
        let c = self.calls.remove(i);
        match (c.state, &c.dialog) {
            (CallState::Incoming, _) => self.refuse(&c, 603, "Decline"),
            (CallState::Calling | CallState::Ringing, _) => {
                let _ = self.ep.cancel(&c.key);
            }
            (CallState::Established, Some(d)) => {
                let mut d = d.clone();
                let bye = d.request(Method::Bye, &self.via(c.peer));
                let _ = self.ep.send_request(bye, c.peer);
            }
            _ => {}
        }
        self.emit(Event::Ended {
            call: c.id,
            status: 0,
            reason: "hung up".into(),
        });
    }

    async fn on_response(&mut self, key: &TsxKey, response: &Response) {
        if let Some(i) = self
            .lines
            .iter()
            .position(|l| l.pending.as_ref() == Some(key))
        {
            return self.on_register_response(i, response);
        }
        if let Some(i) = self.calls.iter().position(|c| c.outgoing && c.key == *key) {
            return self.on_invite_response(i, response);
        }
        if let Some(i) = self
            .calls
            .iter()
            .position(|c| c.reinvite.as_ref() == Some(key))
        {
            return self.on_reinvite_response(i, response);
        }
        if let Some(i) = self
            .calls
            .iter()
            .position(|c| c.refer.as_ref() == Some(key))
        {
            return self.on_refer_response(i, response.status, &response.reason);
        }
        if let Some(i) = self.mwi_line(key) {
            self.on_subscribe_response(i, response);
        }
    }

    fn on_register_response(&mut self, i: usize, response: &Response) {
        let (n, account) = (i + 1, self.lines[i].account.number.clone());
        let event = match self.lines[i].reg.on_response(self.clock.now, response) {
            None => return,
            Some(Outcome::Send(r)) => return self.send_register(i, Some(r)),
            Some(Outcome::Registered { expires }) => Event::Registered {
                line: n,
                account,
                expires,
            },
            Some(Outcome::Unregistered) => Event::Unregistered { line: n, account },
            Some(Outcome::Failed {
                status,
                reason,
                retry_in,
            }) => Event::RegistrationFailed {
                line: n,
                account,
                status,
                reason,
                retry_in,
            },
        };
        self.lines[i].pending = None;
        let registered = matches!(event, Event::Registered { .. });
        // The server is gone (timeout) or says it cannot serve: try the other one now.
        let fail_over = matches!(
            event,
            Event::RegistrationFailed {
                status: 408 | 503,
                ..
            }
        ) && self.lines[i].servers.len() > 1;
        self.emit(event);
        if registered {
            self.subscribe_mwi(i);
        }
        if fail_over {
            let line = &mut self.lines[i];
            let next = line
                .servers
                .iter()
                .position(|s| *s != line.peer.addr)
                .unwrap_or(0);
            line.peer.addr = line.servers[next];
            // A subscription lived on the other server.
            line.mwi = mwi::Mwi::default();
            let server = line.peer.addr.to_string();
            self.emit(Event::Failover { line: n, server });
            let r = self.lines[i].reg.register();
            self.send_register(i, r);
        }
    }

    fn on_invite_response(&mut self, i: usize, response: &Response) {
        let status = response.status;
        let (source, record) = (self.audio.source.clone(), self.audio.record_dir.clone());
        let c = &mut self.calls[i];
        match status {
            100 => {}
            101..=199 => {
                let id = c.id;
                if c.state == CallState::Calling {
                    c.state = CallState::Ringing;
                    self.emit(Event::Ringing { call: id });
                }
                let c = &mut self.calls[i];
                // Early media: its SDP is the answer; the 200 confirms it (or moves it).
                if !response.body.is_empty()
                    && !c.has_media()
                    && let Some(agreed) = call::take_answer(&response.body, &c.local)
                {
                    c.start_media(
                        &agreed,
                        source.as_deref(),
                        record.as_deref(),
                        reporter(&self.events, id),
                    );
                    if c.has_media() {
                        self.emit(Event::EarlyMedia { call: id });
                    }
                }
            }
            200..=299 => {
                if c.dialog.is_none() {
                    c.dialog = Dialog::from_uac(&c.invite, response);
                }
                if let Some(d) = &c.dialog {
                    let via = build::via_value(c.peer.transport, self.local, &build::new_branch());
                    let ack = d.ack(d.local_seq, &via);
                    self.ep.send_stateless(c.peer, &Message::Request(ack));
                }
                if c.state == CallState::Established {
                    return; // a retransmitted 2xx, ACKed again
                }
                c.state = CallState::Established;
                let id = c.id;
                let usable = match call::take_answer(&response.body, &c.local) {
                    Some(agreed) if c.has_media() => {
                        if let Some(remote) = agreed.remote {
                            c.media(MediaControl::Remote(remote));
                        }
                        true
                    }
                    // A 200 without SDP after early media keeps the early answer.
                    None if c.has_media() => true,
                    Some(agreed) => {
                        c.start_media(
                            &agreed,
                            source.as_deref(),
                            record.as_deref(),
                            reporter(&self.events, c.id),
                        );
                        true
                    }
                    None => false,
                };
                if !usable {
                    self.emit(Event::Error {
                        message: format!("call {id}: the answer's SDP is unusable"),
                    });
                }
                let referred = self.calls[i].notify_on;
                self.emit(Event::Established { call: id });
                if let Some(old) = referred {
                    self.notify_refer(old, 200, "OK");
                }
            }
            401 | 407 if !c.authorized => {
                let l = &self.lines[c.line];
                let mut client =
                    sip::auth::DigestClient::new(&l.account.user_id, &l.account.password);
                let mut again = c.invite.clone();
                if !client.authorize(&mut again, response) {
                    let c = self.calls.remove(i);
                    return self.emit(Event::Ended {
                        call: c.id,
                        status,
                        reason: response.reason.clone(),
                    });
                }
                let seq = again.cseq().map_or(1, |s| s.seq) + 1;
                again.headers.remove(&Name::CSEQ);
                again.headers.insert(Name::CSEQ, format!("{seq} INVITE"));
                again.headers.remove(&Name::VIA);
                again.headers.insert(
                    Name::VIA,
                    build::via_value(c.peer.transport, self.local, &build::new_branch()),
                );
                c.authorized = true;
                if let Ok(k) = self.ep.send_request(again.clone(), c.peer) {
                    c.key = k;
                    c.invite = again;
                }
            }
            _ => {
                let c = self.calls.remove(i);
                if let Some(old) = c.notify_on {
                    self.notify_refer(old, status, &response.reason);
                }
                self.emit(Event::Ended {
                    call: c.id,
                    status,
                    reason: response.reason.clone(),
                });
            }
        }
    }

    async fn on_request(&mut self, key: TsxKey, request: Request, peer: Peer) {
        if request.method == Method::Notify && self.on_mwi_notify(&key, &request) {
            return;
        }
        if request.to_tag().is_some() {
            return self.on_in_dialog(key, request).await;
        }
        match request.method {
            Method::Invite => self.on_invite(key, request, peer).await,
            Method::Options => {
                let _ = self
                    .ep
                    .send_response(&key, &request.make_response(200, "OK"));
            }
            Method::Ack => {}
            Method::Notify => {
                // Not a line's message summary: nothing here subscribed to it (RFC 6665 §4.1.3).
                let _ = self
                    .ep
                    .send_response(&key, &request.make_response(489, "Bad Event"));
                let event = request
                    .headers
                    .get_raw(&Name::from("Event"))
                    .next()
                    .map_or("no Event header".to_string(), |e| format!("event {e}"));
                self.emit(Event::Error {
                    message: format!(
                        "a NOTIFY from {} ({event}) that nothing subscribed to, answered 489",
                        peer.addr
                    ),
                });
            }
            _ => {
                let _ = self
                    .ep
                    .send_response(&key, &request.make_response(501, "Not Implemented"));
            }
        }
    }

    async fn on_invite(&mut self, key: TsxKey, request: Request, peer: Peer) {
        let to = request.uri.user().unwrap_or_default().to_string();
        let line = self
            .lines
            .iter()
            .position(|l| l.account.number == to)
            .unwrap_or(0);
        let tag = build::new_tag();
        let Some((rtp, rtcp, caps)) = self.open_rtp(line).await else {
            let mut r = request.make_response(503, "Service Unavailable");
            r.set_to_tag(&tag);
            let _ = self.ep.send_response(&key, &r);
            return;
        };
        let from = request.header_user(Name::FROM).unwrap_or_default();
        let display = request
            .headers
            .get_raw(&Name::FROM)
            .next()
            .map(|f| {
                f.split('<')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .trim_matches('"')
                    .to_string()
            })
            .unwrap_or_default();
        let diversion = request
            .headers
            .get_raw(&sip::headers::diversion_name())
            .next()
            .map(|v| v.to_string())
            .unwrap_or_default();
        let alert_info = request
            .headers
            .get_raw(&Name::from("Alert-Info"))
            .next()
            .map(|v| v.to_string())
            .unwrap_or_default();
        // Intercom and paging ask for an answer without a key press; only the line's own
        // server may ask (anyone else could open the microphone), and only if the line lets it.
        let auto_answer = match self.lines.get(line).map(|l| l.account.auto_answer.as_str()) {
            Some("always") => true,
            Some("requested") => {
                auto_answer_requested(&request) && peer.addr == self.lines[line].peer.addr
            }
            _ => false,
        };
        // An offer we cannot take is refused before anything rings: 400 for SDP that does
        // not parse, 488 (with Warning 305) when no codec is in common (RFC 3261 §13.3.1.1).
        if !request.body.is_empty()
            && let Err(e) = call::answer_offer(&request.body, &caps)
        {
            let (status, reason) = match e {
                sip::sdp::SdpError::NoCommonCodec => (488, "Not Acceptable Here"),
                sip::sdp::SdpError::Malformed(_) => (400, "Bad SDP"),
            };
            let mut r = request.make_response(status, reason);
            r.set_to_tag(&tag);
            if status == 488 {
                r.headers.insert(
                    Name::from("Warning"),
                    format!("305 {} \"Incompatible media format\"", self.local.ip()),
                );
            }
            let _ = self.ep.send_response(&key, &r);
            return self.emit(Event::Refused {
                line: line + 1,
                from,
                status,
                reason: format!("{e} (offered: {})", call::offered_codecs(&request.body)),
            });
        }
        // INVITE with Replaces (RFC 3891): it takes the place of one of our calls at once.
        let replaces = self.replaced_call(&request);
        if replaces.is_none() {
            let mut ringing = request.make_response(180, "Ringing");
            ringing.set_to_tag(&tag);
            let _ = self.ep.send_response(&key, &ringing);
        }
        let id = self.next_call;
        self.next_call += 1;
        let mut c = Call::new(
            id,
            line,
            false,
            from.clone(),
            request,
            key,
            peer,
            (rtp, rtcp, caps),
        );
        c.tag = tag;
        self.calls.push(c);
        self.emit(Event::Incoming {
            call: id,
            line: line + 1,
            from,
            display,
            diversion,
            alert_info,
            auto_answer,
        });
        if auto_answer && replaces.is_none() {
            self.answer(Some(id)).await;
        }
        if let Some(old) = replaces {
            self.answer(Some(id)).await;
            if let Some(i) = self.calls.iter().position(|c| c.id == old) {
                self.emit(Event::Replaced { call: old, by: id });
                self.hang_up(i);
            }
        }
    }

    fn on_cancelled(&mut self, invite: &TsxKey) {
        if let Some(i) = self
            .calls
            .iter()
            .position(|c| !c.outgoing && c.key == *invite && c.state == CallState::Incoming)
        {
            let c = self.calls.remove(i);
            self.refuse(&c, 487, "Request Terminated");
            self.emit(Event::Ended {
                call: c.id,
                status: 487,
                reason: "cancelled by the caller".into(),
            });
        }
    }

    async fn on_in_dialog(&mut self, key: TsxKey, request: Request) {
        let id = DialogId::of_request(&request);
        let found = self.calls.iter().position(|c| {
            c.dialog
                .as_ref()
                .is_some_and(|d| Some(&d.id) == id.as_ref())
        });
        let Some(i) = found else {
            if request.method != Method::Ack {
                let _ = self.ep.send_response(
                    &key,
                    &request.make_response(481, "Call/Transaction Does Not Exist"),
                );
            }
            return;
        };
        match request.method {
            Method::Ack => self.on_ack(i, &request),
            Method::Invite => self.on_peer_reinvite(i, key, request),
            Method::Notify => self.on_notify(i, key, request),
            Method::Refer => self.on_refer(i, key, request).await,
            Method::Bye => {
                let _ = self
                    .ep
                    .send_response(&key, &request.make_response(200, "OK"));
                let c = self.calls.remove(i);
                self.emit(Event::Ended {
                    call: c.id,
                    status: 0,
                    reason: "the other side hung up".into(),
                });
            }
            Method::Info if is_dtmf_relay(&request) => {
                let digit = dtmf_relay_signal(&request.body);
                let status = if digit.is_some() { 200 } else { 400 };
                let _ = self.ep.send_response(
                    &key,
                    &request
                        .make_response(status, if digit.is_some() { "OK" } else { "Bad Signal" }),
                );
                let call = self.calls[i].id;
                match digit {
                    Some(d) => self.emit(Event::DtmfReceived {
                        call,
                        digit: d.to_string(),
                        by: "info",
                    }),
                    None => self.emit(Event::Error {
                        message: format!(
                            "call {call}: an INFO with no usable Signal, answered 400"
                        ),
                    }),
                }
            }
            Method::Options | Method::Info | Method::Update => {
                let _ = self
                    .ep
                    .send_response(&key, &request.make_response(200, "OK"));
            }
            _ => {
                let _ = self
                    .ep
                    .send_response(&key, &request.make_response(501, "Not Implemented"));
            }
        }
    }

    fn line_status(&self) -> Vec<LineStatus> {
        self.lines
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let (state, status) = match l.reg.state() {
                    State::Unregistered => ("unregistered", None),
                    State::Registering => ("registering", None),
                    State::Registered { .. } => ("registered", None),
                    State::Failed { status, .. } => ("failed", Some(*status)),
                };
                LineStatus {
                    line: i + 1,
                    account: l.account.number.clone(),
                    state,
                    status,
                }
            })
            .collect()
    }

    fn call_status(&self) -> Vec<CallStatus> {
        self.calls
            .iter()
            .map(|c| CallStatus {
                call: c.id,
                line: c.line + 1,
                party: c.party.clone(),
                state: match c.state {
                    CallState::Calling => "calling",
                    CallState::Ringing => "ringing",
                    CallState::Incoming => "incoming",
                    CallState::Established => "established",
                },
                outgoing: c.outgoing,
            })
            .collect()
    }

    /// Hangs up every call and unregisters the registered lines (waiting at most two
    /// seconds for the answers).
    async fn quit(&mut self, tsx: &mut mpsc::UnboundedReceiver<TsxEvent>) -> anyhow::Result<()> {
        while !self.calls.is_empty() {
            self.hang_up(self.calls.len() - 1);
        }
        for i in 0..self.lines.len() {
            if matches!(self.lines[i].reg.state(), State::Registered { .. }) {
                let r = self.lines[i].reg.unregister();
                self.send_register(i, r);
            }
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        while self.lines.iter().any(|l| l.pending.is_some()) {
            match tokio::time::timeout_at(deadline, tsx.recv()).await {
                Ok(Some(TsxEvent::Response { key, response })) => {
                    self.on_response(&key, &response).await;
                }
                Ok(Some(_)) => {}
                _ => break,
            }
        }
        self.emit(Event::Quit);
        Ok(())
    }
}
