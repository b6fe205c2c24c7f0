//! The engine's driver: one SIP [`Endpoint`] for all lines, each line's [`Registration`]
//! fed with responses and the clock, commands in, [`Event`]s out. No window and no terminal:
//! the headless control and the GUI both sit on top of these two channels.

use crate::config::{Account, Config};
use crate::registration::{Outcome, Registration, State};
use serde::Serialize;
use sip::endpoint::Endpoint;
use sip::transaction::{Peer, TimerConfig, TransportKind, TsxEvent, TsxKey};
use sip::transport::TransportConfig;
use sip::{Request, Response};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// What the engine is asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Report every line's state.
    Status,
    /// Register line `n` (1-based) again now.
    Register(usize),
    /// Unregister every line and stop.
    Quit,
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

/// What happened, one JSON object per event with an `"event"` field.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
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
    },
    Unregistered {
        line: usize,
        account: String,
    },
    Status {
        lines: Vec<LineStatus>,
    },
    Error {
        message: String,
    },
    Quit,
}

struct Line {
    account: Account,
    reg: Registration,
    peer: Peer,
    /// The REGISTER transaction in flight.
    pending: Option<TsxKey>,
}

/// Runs the engine until `Quit` (or the command channel closes).
pub async fn run(
    config: Config,
    listen: SocketAddr,
    mut commands: mpsc::UnboundedReceiver<Command>,
    events: mpsc::UnboundedSender<Event>,
) -> anyhow::Result<()> {
    let (ep, mut tsx) = Endpoint::start(
        TransportConfig {
            udp: Some(listen),
            tcp: Some(listen),
            ..Default::default()
        },
        TimerConfig::default(),
    )
    .await?;
    let local = ep.local_addr(TransportKind::Udp).unwrap_or(listen);
    let mut lines = Vec::new();
    for (i, a) in config.accounts.iter().enumerate() {
        let transport = if a.transport == "tcp" {
            TransportKind::Tcp
        } else {
            TransportKind::Udp
        };
        let local = ep.local_addr(transport).unwrap_or(local);
        let Some(addr) = tokio::net::lookup_host((a.server.as_str(), a.port))
            .await
            .ok()
            .and_then(|mut it| it.next())
        else {
            let _ = events.send(Event::RegistrationFailed {
                line: i + 1,
                account: a.number.clone(),
                status: 0,
                reason: format!("{}: no address for this server", a.server),
            });
            continue;
        };
        lines.push(Line {
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
        });
    }
    let _ = events.send(Event::Ready {
        lines: lines.len(),
        sip: local.to_string(),
    });
    for line in &mut lines {
        let r = line.reg.register();
        send(&ep, line, r);
    }
    loop {
        let wake = lines
            .iter()
            .filter_map(|l| l.reg.poll_timeout())
            .min()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            e = tsx.recv() => match e {
                Some(TsxEvent::Response { key, response }) => on_response(&ep, &mut lines, &key, &response, &events),
                Some(TsxEvent::Request { key, request, .. }) => {
                    let _ = ep.send_response(&key, &request.make_response(501, "Not Implemented"));
                }
                Some(_) => {}
                None => return Ok(()),
            },
            c = commands.recv() => match c {
                Some(Command::Status) => {
                    let _ = events.send(Event::Status { lines: status(&lines) });
                }
                Some(Command::Register(n)) => match lines.get_mut(n.wrapping_sub(1)) {
                    Some(line) => {
                        let r = line.reg.register();
                        send(&ep, line, r);
                    }
                    None => {
                        let _ = events.send(Event::Error { message: format!("no line {n}") });
                    }
                },
                Some(Command::Quit) | None => return quit(&ep, &mut lines, &mut tsx, &events).await,
            },
            _ = tokio::time::sleep_until(wake.into()) => {
                let now = Instant::now();
                for line in &mut lines {
                    let r = line.reg.poll_transmit(now);
                    send(&ep, line, r);
                }
            }
        }
    }
}

fn send(ep: &Arc<Endpoint>, line: &mut Line, request: Option<Request>) {
    if let Some(r) = request {
        line.pending = ep.send_request(r, line.peer).ok();
    }
}

fn on_response(
    ep: &Arc<Endpoint>,
    lines: &mut [Line],
    key: &TsxKey,
    response: &Response,
    events: &mpsc::UnboundedSender<Event>,
) {
    let Some((i, line)) = lines
        .iter_mut()
        .enumerate()
        .find(|(_, l)| l.pending.as_ref() == Some(key))
    else {
        return;
    };
    let (n, account) = (i + 1, line.account.number.clone());
    let event = match line.reg.on_response(Instant::now(), response) {
        None => return,
        Some(Outcome::Send(r)) => return send(ep, line, Some(r)),
        Some(Outcome::Registered { expires }) => Event::Registered {
            line: n,
            account,
            expires,
        },
        Some(Outcome::Unregistered) => Event::Unregistered { line: n, account },
        Some(Outcome::Failed { status, reason }) => Event::RegistrationFailed {
            line: n,
            account,
            status,
            reason,
        },
    };
    line.pending = None;
    let _ = events.send(event);
}

fn status(lines: &[Line]) -> Vec<LineStatus> {
    lines
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

/// Unregisters the registered lines (waiting at most two seconds for the answers).
async fn quit(
    ep: &Arc<Endpoint>,
    lines: &mut [Line],
    tsx: &mut mpsc::UnboundedReceiver<TsxEvent>,
    events: &mpsc::UnboundedSender<Event>,
) -> anyhow::Result<()> {
    for line in lines.iter_mut() {
        if matches!(line.reg.state(), State::Registered { .. }) {
            let r = line.reg.unregister();
            send(ep, line, r);
        }
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while lines.iter().any(|l| l.pending.is_some()) {
        match tokio::time::timeout_at(deadline, tsx.recv()).await {
            Ok(Some(TsxEvent::Response { key, response })) => {
                on_response(ep, lines, &key, &response, events);
            }
            Ok(Some(_)) => {}
            _ => break,
        }
    }
    let _ = events.send(Event::Quit);
    Ok(())
}
