//! The engine's driver: one SIP [`Endpoint`] for all lines, each line's [`Registration`]
//! fed with responses and the clock, the calls ([`Call`]) and their dialogs, commands in,
//! [`Event`]s out. No window and no terminal: the headless control and the GUI both sit on
//! top of these two channels.

mod api;
mod features;
mod history;
mod in_dialog;
mod incoming;
mod lines;
mod mwi;
mod outgoing;
mod transfer;

use crate::call::{self, Call, CallState, MediaControl};
use crate::config::{Account, Audio, Config, Features};
use crate::sequence::{Fact, Progress, Sequence, Step, Wait};
pub use api::{CallStatus, Command, Event, Feature, LineStatus, Role};
pub use history::HistoryEntry;
use sip::clock::Clock;
use sip::dialog::{Dialog, DialogId};
use sip::endpoint::Endpoint;
use sip::registration::{Outcome, Registration, State};
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
    /// The ring, call-waiting or ring-back tone each call plays on the sound card.
    sounds: std::collections::HashMap<u32, (crate::ringer::Sound, crate::ringer::Playing)>,
    /// Calls whose sound could not play (said once, not tried again).
    silent: std::collections::HashSet<u32>,
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
    // SIP over TLS: the server's certificate must chain to the system's roots or the office
    // CA, under the name the (first TLS) account gives the server. No fallback to plaintext.
    let tls_client = match config.accounts.iter().find(|a| a.transport == "tls") {
        Some(a) => match sip::transport::TlsSettings::client(&config.tls_roots(), &a.server) {
            Ok(t) => Some(t),
            Err(e) => {
                let _ = events.send(Event::Error {
                    message: format!("TLS to {}: {e}", a.server),
                });
                None
            }
        },
        None => None,
    };
    let (ep, mut tsx) = Endpoint::start(
        TransportConfig {
            udp: Some(listen),
            tcp: Some(listen),
            tls_client,
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
        sounds: Default::default(),
        silent: Default::default(),
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
        e.update_sounds();
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
            call::MediaReport::Encrypted(suite) => {
                let _ = events.send(Event::Encrypted { call, suite });
                return;
            }
            call::MediaReport::DeviceError(e) => {
                let _ = events.send(Event::Error {
                    message: format!("call {call}: {e}"),
                });
                return;
            }
            call::MediaReport::Unencrypted => {
                let _ = events.send(Event::Error {
                    message: format!(
                        "call {call}: SRTP is mandatory but the other side agreed no key: no audio is sent in the clear"
                    ),
                });
                return;
            }
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
            Command::Devices => self.emit(Event::Devices {
                inputs: self.audio.system.inputs(),
                outputs: self.audio.system.outputs(),
                microphone: self.audio.microphone.clone(),
                speaker: self.audio.speaker.clone(),
                ringer: self.audio.ringer.clone(),
                speaker_volume: self.audio.speaker_volume,
                ringer_volume: self.audio.ringer_volume,
            }),
            Command::Device { role, name } => self.choose_device(role, name),
            Command::Volume { role, percent } => {
                let percent = percent.min(100);
                match role {
                    Role::Speaker => {
                        self.audio.speaker_volume = percent;
                        for c in &self.calls {
                            c.media(MediaControl::Volume(percent));
                        }
                    }
                    Role::Ringer => self.audio.ringer_volume = percent,
                    Role::Microphone => {
                        return self.emit(Event::Error {
                            message: "volume: speaker or ringer".into(),
                        });
                    }
                }
                // What rings now rings at the new volume.
                self.sounds.clear();
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

    fn line_status(&self) -> Vec<LineStatus> {
        self.lines
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let (state, status) = match l.reg.state() {
                    State::Unregistered => ("unregistered", None),
                    State::Registering => ("registering", None),
                    State::Registered { .. } => ("registered", None),
                    State::Failed { status, .. } | State::Stopped { status, .. } => {
                        ("failed", Some(*status))
                    }
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

    /// Uses sound card `name` for `role` from now on: calls under way move to it, a ring
    /// under way starts again on it. A name no card has is refused and changes nothing.
    fn choose_device(&mut self, role: Role, name: String) {
        let system = &self.audio.system;
        let known = match role {
            Role::Microphone => system.inputs(),
            Role::Speaker | Role::Ringer => system.outputs(),
        };
        if !name.is_empty() && !known.contains(&name) {
            return self.emit(Event::Error {
                message: format!(
                    "no such sound card {name:?}; there are: {}",
                    known.join(", ")
                ),
            });
        }
        match role {
            Role::Microphone => self.audio.microphone = name,
            Role::Speaker => self.audio.speaker = name,
            Role::Ringer => self.audio.ringer = name,
        }
        if role != Role::Ringer && self.audio.devices {
            for c in &self.calls {
                c.media(MediaControl::Devices {
                    microphone: self.audio.microphone.clone(),
                    speaker: self.audio.speaker.clone(),
                });
            }
        }
        self.sounds.clear();
        self.silent.clear();
    }

    /// With the sound card: an incoming call rings (the ringer; a call-waiting tone on the
    /// speaker when a call is up), an outgoing one plays ring-back while the far end rings
    /// and no early media plays; each stops when its call moves on.
    fn update_sounds(&mut self) {
        if !self.audio.devices {
            return;
        }
        let up = self.calls.iter().any(|c| c.state == CallState::Established);
        let country =
            media::tones::Country::parse(&self.audio.tones).unwrap_or(media::tones::Country::Us);
        let mut wanted = std::collections::HashMap::new();
        for c in &self.calls {
            use crate::ringer::Sound;
            let a = &self.audio;
            let (sound, device, volume) = match c.state {
                CallState::Incoming if up => (Sound::CallWaiting, &a.speaker, a.speaker_volume),
                CallState::Incoming => (Sound::Ring(c.ring.clone()), &a.ringer, a.ringer_volume),
                CallState::Ringing if c.outgoing && !c.has_media() => {
                    (Sound::Ringback, &a.speaker, a.speaker_volume)
                }
                _ => continue,
            };
            wanted.insert(c.id, (sound, device.clone(), volume));
        }
        self.sounds
            .retain(|id, (sound, _)| wanted.get(id).is_some_and(|(w, ..)| w == sound));
        self.silent
            .retain(|id| self.calls.iter().any(|c| c.id == *id));
        for (id, (sound, device, volume)) in wanted {
            if self.sounds.contains_key(&id) || self.silent.contains(&id) {
                continue;
            }
            match crate::ringer::play(&sound, (&self.audio.system, &device), volume, country) {
                Ok(p) => {
                    self.sounds.insert(id, (sound, p));
                }
                Err(e) => {
                    self.silent.insert(id);
                    self.emit(Event::Error {
                        message: format!("call {id}: no sound on the card: {e}"),
                    });
                }
            }
        }
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
                encrypted: c.encrypted(),
            })
            .collect()
    }

    /// What decides SRTP on line `i` (its `srtp`, and whether its signalling is TLS), and
    /// new keys for a call on it, which `caps` offers when the line's offers carry keys
    /// (`srtp = "mandatory"`: RTP/SAVP).
    fn srtp_for(
        &self,
        i: usize,
        caps: &mut sip::sdp::Local,
    ) -> (media::sdes::Policy, media::sdes::Keys) {
        let policy = self
            .lines
            .get(i)
            .map_or_else(Default::default, |l| media::sdes::Policy {
                mode: media::sdes::Mode::parse(&l.account.srtp),
                keys_may_travel: l.account.transport == "tls",
            });
        let keys = media::sdes::Keys::default();
        if policy.offers() == Some(true) {
            caps.crypto = keys.offer().iter().map(|k| k.to_sdp()).collect();
        }
        (policy, keys)
    }

    /// Hangs up every call and unregisters the registered lines (waiting at most two
    /// seconds for the answers).
    async fn quit(&mut self, tsx: &mut sip::endpoint::Events) -> anyhow::Result<()> {
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
