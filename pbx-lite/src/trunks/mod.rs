//! Outside lines. [`Trunks`] keeps each trunk's registration at its provider (a
//! `sip::registration::Registration` told the time, its state written to the database for
//! `status`), and knows the provider's addresses (resolved again every few minutes): a
//! request is a trunk's only when it comes from one of them. [`dialing`] is the office's
//! numbering, pure; the calls themselves are in `calls/trunk.rs`.

pub mod cli;
pub mod dialing;

use sip::endpoint::Endpoint;
use sip::registration::{Outcome, Registration, State};
use sip::transaction::{Peer, TransportKind, TsxKey};
use sip::{Request, Response};
use stations::Db;
use stations::trunk::{Trunk, TrunkState};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// The registration time a trunk asks for (a provider's Min-Expires raises it).
const EXPIRY: u32 = 600;

/// How often a provider's name is looked up again.
const RESOLVE_EVERY: Duration = Duration::from_secs(300);

/// One trunk as the running PBX holds it.
struct Line {
    trunk: Trunk,
    /// The provider's addresses, and when they were looked up.
    addrs: Vec<SocketAddr>,
    resolved: Option<Instant>,
    reg: Option<Registration>,
}

/// The trunks: registrations, the providers' addresses, and which REGISTER is whose.
#[derive(Default)]
pub struct Trunks {
    lines: HashMap<String, Line>,
    pending: HashMap<TsxKey, String>,
}

/// A trunk's transport.
pub fn transport(t: &Trunk) -> TransportKind {
    match t.transport.as_str() {
        "tcp" => TransportKind::Tcp,
        "tls" => TransportKind::Tls,
        _ => TransportKind::Udp,
    }
}

impl Trunks {
    /// Follows the database (trunks added, changed, removed), looks names up again when it
    /// is time, and sends each registration's REGISTER when it is due. `local` gives the
    /// PBX's address towards a provider's.
    pub async fn tick(
        &mut self,
        db: &std::sync::Mutex<Db>,
        ep: &Endpoint,
        local: impl Fn(IpAddr) -> SocketAddr,
        now: Instant,
    ) {
        let configured = {
            let d = db.lock().unwrap_or_else(|e| e.into_inner());
            d.trunks().unwrap_or_default()
        };
        self.lines
            .retain(|name, _| configured.iter().any(|t| &t.name == name));
        for t in configured {
            let line = self.lines.entry(t.name.clone()).or_insert_with(|| Line {
                trunk: t.clone(),
                addrs: Vec::new(),
                resolved: None,
                reg: None,
            });
            if line.trunk != t {
                *line = Line {
                    trunk: t.clone(),
                    addrs: Vec::new(),
                    resolved: None,
                    reg: None,
                };
            }
            if line
                .resolved
                .is_none_or(|at| now.duration_since(at) >= RESOLVE_EVERY)
            {
                line.resolved = Some(now);
                if let Ok(found) = tokio::net::lookup_host((t.host.as_str(), t.port)).await {
                    line.addrs = found.map(sip::transport::canonical).collect();
                }
            }
            if t.register
                && line.reg.is_none()
                && let Some(provider) = line.addrs.first()
            {
                line.reg = Some(Registration::new(
                    &t.user,
                    (&t.host, t.port),
                    (&t.user, &t.password),
                    transport(&t),
                    local(provider.ip()),
                    EXPIRY,
                ));
                let first = line.reg.as_mut().and_then(Registration::register);
                self.send(&t.name, first, ep);
                continue;
            }
            let due = self
                .lines
                .get_mut(&t.name)
                .and_then(|l| l.reg.as_mut())
                .and_then(|r| r.poll_transmit(now));
            self.send(&t.name, due, ep);
        }
    }

    fn send(&mut self, name: &str, request: Option<Request>, ep: &Endpoint) {
        let (Some(r), Some(peer)) = (request, self.peer(name)) else {
            return;
        };
        if let Ok(key) = ep.send_request(r, peer) {
            self.pending.insert(key, name.to_string());
        }
    }

    /// Where requests to trunk `name` go.
    pub fn peer(&self, name: &str) -> Option<Peer> {
        let l = self.lines.get(name)?;
        Some(Peer::new(transport(&l.trunk), *l.addrs.first()?))
    }

    /// The trunk `name` as configured.
    pub fn trunk(&self, name: &str) -> Option<&Trunk> {
        self.lines.get(name).map(|l| &l.trunk)
    }

    /// The trunk a request from `source` comes from: one whose provider has that address —
    /// and, over UDP, that port too (a phone on the provider's host is no provider).
    pub fn of_source(&self, source: Peer) -> Option<&Trunk> {
        let from = sip::transport::canonical(source.addr);
        self.lines
            .values()
            .find(|l| {
                l.addrs.iter().any(|a| match source.transport {
                    TransportKind::Udp => *a == from,
                    _ => a.ip() == from.ip(),
                })
            })
            .map(|l| &l.trunk)
    }

    /// A response to a trunk's REGISTER: the registration goes on, and its state is written
    /// for `status`. False when the response is no trunk's.
    pub fn on_response(
        &mut self,
        key: &TsxKey,
        response: &Response,
        (now, unix): (Instant, i64),
        ep: &Endpoint,
        db: &std::sync::Mutex<Db>,
    ) -> bool {
        let Some(name) = self.pending.remove(key) else {
            return false;
        };
        let Some(reg) = self.lines.get_mut(&name).and_then(|l| l.reg.as_mut()) else {
            return true;
        };
        let outcome = reg.on_response(now, response);
        let registered = matches!(reg.state(), State::Registered { .. });
        let mut state = db
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .trunk_state(&name)
            .unwrap_or_default();
        state.name = name.clone();
        match outcome {
            Some(Outcome::Send(r)) => {
                if response.status == 423 {
                    let asked = r
                        .headers
                        .get_raw(&sip::types::Name::EXPIRES)
                        .next()
                        .map(|v| v.to_string())
                        .unwrap_or_default();
                    state.last_error =
                        format!("423 {}: asked again for {asked} s", response.reason);
                }
                self.send(&name, Some(r), ep);
            }
            Some(Outcome::Registered { expires }) => {
                tracing::info!("trunk {name}: registered for {expires} s");
                state.expires_at = unix + i64::from(expires);
                state.last_error.clear();
            }
            Some(Outcome::Failed {
                status,
                reason,
                retry_in,
            }) => {
                tracing::warn!("trunk {name}: REGISTER answered {status} {reason}");
                let now_failed = if retry_in == 0 {
                    format!("{status} {reason} (stopped: the provider refuses the account)")
                } else {
                    format!("{status} {reason} (trying again in {retry_in} s)")
                };
                // A 423 just before stays in view: what led here.
                state.last_error = if state.last_error.starts_with("423") {
                    format!("{}; then {now_failed}", state.last_error)
                } else {
                    now_failed
                };
                state.expires_at = 0;
            }
            Some(Outcome::Unregistered) | None => {}
        }
        state.registered = registered;
        let _ = db
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .save_trunk_state(&state);
        true
    }

    /// Records how many calls each trunk carries (for `status`).
    pub fn save_calls(&self, counts: &dialing::Counts, db: &std::sync::Mutex<Db>) {
        let d = db.lock().unwrap_or_else(|e| e.into_inner());
        for name in self.lines.keys() {
            let calls = counts.get(name).copied().unwrap_or(0);
            if let Ok(mut s) = d.trunk_state(name)
                && s.calls != calls
            {
                s.calls = calls;
                let _ = d.save_trunk_state(&TrunkState {
                    name: name.clone(),
                    ..s
                });
            }
        }
    }
}
