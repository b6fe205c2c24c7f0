//! The PBX's SIP driver: an [`Endpoint`] on UDP and TCP, the [`Registrar`] fed from its
//! events with policy and stations read live from the database, registrations committed in
//! groups before they are answered (so a restart, even `kill -9`, keeps every one a phone was
//! told of), and refusals written to the access log. INVITEs and in-dialog requests go to [`Calls`], the back-to-back user agent.

use crate::calls::{Calls, Clock};
use crate::nat::{self, NatCheck};
use crate::registrar::{Directory, Outcome, Policy, Registrar};
use sip::auth::DigestAlgorithm;
use sip::endpoint::Endpoint;
use sip::transaction::{TimerConfig, TsxEvent};
use sip::transport::TransportConfig;
use sip::types::Name;
use sip::{Method, Request};
use stations::db::{Access, Registration};
use stations::{Db, Station};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Station lookups straight from the database.
pub struct DbDirectory<'a>(pub &'a Db);

impl Directory for DbDirectory<'_> {
    fn by_number(&self, number: &str) -> Option<Station> {
        self.0.get(number).ok()
    }
}

fn setting<T: std::str::FromStr>(db: &Db, key: &str, default: T) -> T {
    db.setting(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The registrar's policy as the settings say now.
pub fn policy(db: &Db) -> Policy {
    Policy {
        retry_limit: setting(db, "security.register_retry_limit", 5),
        block_seconds: setting(db, "security.register_block_seconds", 60),
        silent: db
            .setting("security.failed_response")
            .is_ok_and(|v| v == "silent"),
        whitelist: db.setting("security.whitelist").unwrap_or_default(),
        min_expires: setting(db, "sip.min_expires", 60),
        default_expires: setting(db, "registration.expiry", 600),
        nat_expires: setting(db, "registration.nat_expiry", 60),
    }
}

fn algorithms(db: &Db) -> Vec<DigestAlgorithm> {
    match db.setting("security.digest").unwrap_or_default().as_str() {
        "sha256" => vec![DigestAlgorithm::Sha256],
        "both" => vec![DigestAlgorithm::Sha256, DigestAlgorithm::Md5],
        _ => vec![DigestAlgorithm::Md5],
    }
}

/// The calls under way, as the driver last took them (each second): what the web admin's
/// dashboard shows.
pub type Board = tokio::sync::watch::Sender<Vec<crate::calls::LiveCall>>;

/// Runs the PBX's SIP side on `sip` (UDP and TCP) until the task is dropped.
/// Voicemail messages are kept under `voicemail`; the calls under way go on `board`.
/// With `tls`, SIP over TLS listens there too, with that identity.
pub async fn run(
    db: Arc<Mutex<Db>>,
    sip: SocketAddr,
    tls: Option<(SocketAddr, sip::transport::TlsSettings)>,
    rtp_ports: (u16, u16),
    voicemail: std::path::PathBuf,
    board: Board,
) -> anyhow::Result<()> {
    run_with(db, sip, tls, rtp_ports, voicemail, None, board).await
}

/// [`run`], with SIP (UDP only) and the relay on `memory` when given: the scenario tests
/// run the whole PBX so, on tokio's paused clock.
pub async fn run_on(
    db: Arc<Mutex<Db>>,
    sip: SocketAddr,
    rtp_ports: (u16, u16),
    voicemail: std::path::PathBuf,
    memory: Option<sip::transport::MemNet>,
) -> anyhow::Result<()> {
    let board = Board::new(Vec::new());
    run_with(db, sip, None, rtp_ports, voicemail, memory, board).await
}

async fn run_with(
    db: Arc<Mutex<Db>>,
    sip: SocketAddr,
    tls: Option<(SocketAddr, sip::transport::TlsSettings)>,
    rtp_ports: (u16, u16),
    voicemail: std::path::PathBuf,
    memory: Option<sip::transport::MemNet>,
    board: Board,
) -> anyhow::Result<()> {
    let (registrar, t1, rate) = {
        let d = db.lock().unwrap_or_else(|e| e.into_inner());
        let mut r = Registrar::new("office", rand::random(), algorithms(&d));
        r.restore(d.registrations()?);
        let rate = match setting(&d, "sip.rate_per_address", 50) {
            0 => None,
            n => Some(sip::rate::MessageRate::per_second(n)),
        };
        (
            r,
            Duration::from_millis(setting(&d, "sip.t1_ms", 500)),
            rate,
        )
    };
    let registrar = Arc::new(Mutex::new(registrar));
    let (ep, mut events) = Endpoint::start(
        TransportConfig {
            udp: Some(sip),
            tcp: Some(sip),
            tls,
            rate,
            memory: memory.clone(),
            ..Default::default()
        },
        TimerConfig {
            t1,
            ..TimerConfig::default()
        },
    )
    .await?;
    let bound = ep
        .local_addr(sip::transaction::TransportKind::Udp)
        .unwrap_or(sip);
    // Once every SIP socket is bound: what starts the PBX waits for this line.
    tracing::info!(
        "SIP on {bound} (UDP and TCP){}",
        ep.local_addr(sip::transaction::TransportKind::Tls)
            .map(|a| format!(", SIP over TLS on {a}"))
            .unwrap_or_default()
    );
    let ports = Arc::new(crate::relay::PortRange::new(rtp_ports.0, rtp_ports.1).on(memory));
    crate::features::release_stale_parks(&db, &ep, bound).await;
    let mut calls = Calls::new(
        ep.clone(),
        registrar.clone(),
        db.clone(),
        bound,
        ports,
        voicemail,
        Clock::now(),
    );
    spawn_keepalives(ep.clone(), db.clone(), registrar.clone());
    let mut second = tokio::time::interval(Duration::from_secs(1));
    let Some(mut timers) = calls.take_timers() else {
        anyhow::bail!("call timers taken twice");
    };
    let mut unanswered = Vec::new();
    let mut checked = CheckedOnce::new(&db);
    let mut shed = 0;
    loop {
        // The REGISTERs handled since the last commit are committed and answered once no
        // event is waiting (or a group is full): one transaction for a burst of them, and
        // one for the call records finished meanwhile. The configuration is checked for
        // changes by other processes once per burst, too.
        let ready = match events.try_recv() {
            Ok(e) if unanswered.len() < GROUP => Some(e),
            ready => {
                commit(&db, &registrar, &ep, &mut unanswered);
                calls.recorder.flush();
                checked.end();
                ready.ok()
            }
        };
        let event = match ready {
            Some(e) => e,
            None => tokio::select! {
            e = events.recv() => match e {
                Some(e) => e,
                None => break,
            },
            _ = second.tick() => {
                let clock = Clock::now();
                calls.set_clock(clock);
                let refused = ep.shed_count();
                if refused > shed {
                    tracing::warn!(
                        "overloaded: {} new requests refused 503 (Retry-After) in the last \
                         second, {} events waiting",
                        refused - shed,
                        ep.backlog()
                    );
                    shed = refused;
                }
                // Lapsed registrations are dropped (and forgotten on disk at the next commit).
                registrar.lock().unwrap_or_else(|e| e.into_inner()).expire(clock.wall);
                log_tls_refusals(&db, &ep, clock.unix());
                calls.tick().await;
                calls.send_phone_actions();
                let live = calls.live();
                board.send_if_modified(|shown| {
                    let changed = *shown != live;
                    *shown = live;
                    changed
                });
                continue;
            }
            Some(id) = timers.recv() => {
                calls.set_clock(Clock::now());
                calls.on_timer(id).await;
                continue;
            }
            },
        };
        calls.set_clock(Clock::now());
        checked.begin();
        let (key, request, peer) = match event {
            TsxEvent::Request { key, request, peer } => {
                tracing::debug!(
                    "{} {:?} from {} (to-tag {:?})",
                    request.method,
                    request
                        .headers
                        .get_raw(&Name::CALL_ID)
                        .next()
                        .map(|v| v.to_string()),
                    peer.addr,
                    request.to_tag()
                );
                (key, request, peer)
            }
            TsxEvent::Response { key, response } => {
                calls.on_response(key, response).await;
                continue;
            }
            TsxEvent::Cancelled { invite, .. } => {
                tracing::debug!("CANCEL of {invite:?}");
                calls.on_cancel(invite).await;
                continue;
            }
            _ => continue,
        };
        if request.method != Method::Ack
            && let Some(refusal) = refuse(&request)
        {
            let _ = ep.send_response(&key, &refusal);
            continue;
        }
        if request.method == Method::Subscribe {
            calls.on_subscribe(key, request, peer).await;
            continue;
        }
        if request.to_tag().is_some()
            && !matches!(request.method, Method::Register | Method::Options)
        {
            calls.on_in_dialog(key, request, peer).await;
            continue;
        }
        let response = match request.method {
            Method::Invite => {
                calls.on_invite(key.clone(), request, peer).await;
                continue;
            }
            Method::Register => {
                let d = db.lock().unwrap_or_else(|e| e.into_inner());
                let mut r = registrar.lock().unwrap_or_else(|e| e.into_inner());
                let outcome = d.at_once(|d| {
                    r.handle(
                        Clock::now().wall,
                        &request,
                        peer,
                        &policy(d),
                        &DbDirectory(d),
                    )
                });
                if let Outcome::Reply(resp) = outcome {
                    unanswered.push((key, resp)); // answered after the commit
                }
                continue;
            }
            Method::Ack => None,
            Method::Options => Some(ok_with_allow(&request)),
            _ => Some(tagged(&request, 501, "Not Implemented")),
        };
        if let Some(resp) = response {
            let _ = ep.send_response(&key, &resp);
        }
    }
    Ok(())
}

/// While a burst of events is handled, the database is asked once whether another process
/// (the CLI) changed the configuration, not at each of the dozen lookups an INVITE makes
/// ([`Db::check_once`]): the burst sees the configuration as it was when it began. Under
/// unbroken load it is asked again every [`GROUP`] events.
struct CheckedOnce<'a> {
    db: &'a Mutex<Db>,
    /// Events the last answer still holds for (0: not trusting).
    left: usize,
}

impl<'a> CheckedOnce<'a> {
    fn new(db: &'a Mutex<Db>) -> Self {
        CheckedOnce { db, left: 0 }
    }

    /// An event of the burst: the first asks.
    fn begin(&mut self) {
        if self.left == 0 {
            self.db().check_once();
            self.left = GROUP;
        }
        self.left -= 1;
    }

    /// The burst is over: every lookup asks again until the next.
    fn end(&mut self) {
        self.db().check_always();
        self.left = 0;
    }

    fn db(&self) -> std::sync::MutexGuard<'a, Db> {
        self.db.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for CheckedOnce<'_> {
    fn drop(&mut self) {
        self.end();
    }
}

/// Sends a keep-alive (CRLF CRLF, RFC 5626 §4.4.1) every `nat.keepalive_seconds` to each
/// UDP phone behind NAT (as `nat.check` judges it), so its NAT keeps the way in open.
fn spawn_keepalives(ep: Arc<Endpoint>, db: Arc<Mutex<Db>>, registrar: Arc<Mutex<Registrar>>) {
    tokio::spawn(async move {
        let mut last = Clock::now().now;
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let every = setting(
                &db.lock().unwrap_or_else(|e| e.into_inner()),
                "nat.keepalive_seconds",
                30u64,
            );
            let now = Clock::now();
            if every == 0 || now.now.duration_since(last) < Duration::from_secs(every) {
                continue;
            }
            last = now.now;
            let bindings = registrar
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .all(now.wall);
            let targets: Vec<_> = {
                let d = db.lock().unwrap_or_else(|e| e.into_inner());
                bindings
                    .iter()
                    .filter(|r| {
                        let check = d.get(&r.aor).map_or(NatCheck::Ip, |s| NatCheck::of(&s));
                        nat::behind_nat(r, check)
                    })
                    .filter_map(|r| nat::source_peer(&r.source))
                    .filter(|p| !p.transport.is_reliable())
                    .collect()
            };
            for peer in targets {
                let _ = ep
                    .transport()
                    .send(peer, bytes::Bytes::from_static(b"\r\n\r\n"))
                    .await;
            }
        }
    });
}

/// What the PBX refuses before routing (RFC 3261 §8.2, §16.3): an unknown URI scheme (416),
/// Max-Forwards 0 (483), an extension it does not support (420), an INVITE body it cannot read
/// (415), or an Accept it cannot satisfy (406).
fn refuse(request: &Request) -> Option<sip::Response> {
    if matches!(request.uri, sip::Uri::Other(_)) {
        return Some(tagged(request, 416, "Unsupported URI Scheme"));
    }
    let max_forwards = request
        .headers
        .get_raw(&Name::MAX_FORWARDS)
        .next()
        .and_then(|v| v.trim().parse::<u32>().ok());
    if max_forwards == Some(0) && request.method != Method::Register {
        return Some(tagged(request, 483, "Too Many Hops"));
    }
    let unsupported: Vec<String> = [Name::REQUIRE, Name::PROXY_REQUIRE]
        .iter()
        .flat_map(|n| {
            request.headers.get_raw(n).flat_map(|v| {
                v.split(',')
                    .map(|o| o.trim().to_string())
                    .collect::<Vec<_>>()
            })
        })
        .filter(|o| !o.is_empty())
        .collect();
    if !unsupported.is_empty() {
        let mut r = tagged(request, 420, "Bad Extension");
        r.headers.insert(Name::UNSUPPORTED, unsupported.join(", "));
        return Some(r);
    }
    if request.method == Method::Invite {
        let content_type = request
            .headers
            .get_raw(&Name::CONTENT_TYPE)
            .next()
            .map(|v| v.to_ascii_lowercase());
        if !request.body.is_empty()
            && !content_type
                .as_deref()
                .is_some_and(|c| c.starts_with("application/sdp"))
        {
            let mut r = tagged(request, 415, "Unsupported Media Type");
            r.headers.insert(Name::ACCEPT, "application/sdp");
            return Some(r);
        }
        let accept: Vec<String> = request
            .headers
            .get_raw(&Name::ACCEPT)
            .map(|v| v.to_ascii_lowercase())
            .collect();
        if !accept.is_empty()
            && !accept.iter().any(|a| {
                a.contains("application/sdp") || a.contains("*/*") || a.contains("application/*")
            })
        {
            let mut r = tagged(request, 406, "Not Acceptable");
            r.headers.insert(Name::ACCEPT, "application/sdp");
            return Some(r);
        }
    }
    None
}

fn tagged(request: &Request, status: u16, reason: &str) -> sip::Response {
    let mut r = request.make_response(status, reason);
    r.set_to_tag(&format!("{:x}", rand::random::<u64>()));
    r
}

fn ok_with_allow(request: &Request) -> sip::Response {
    let mut r = tagged(request, 200, "OK");
    r.headers.insert(
        Name::ALLOW,
        "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, INFO, UPDATE, REFER, NOTIFY, SUBSCRIBE",
    );
    r
}

/// TLS handshakes the transport refused (no or a foreign client certificate, plaintext on
/// the TLS port, a handshake never finished) go to the access log.
fn log_tls_refusals(db: &Arc<Mutex<Db>>, ep: &Endpoint, now: i64) {
    let refused = ep.transport().take_tls_refusals();
    if refused.is_empty() {
        return;
    }
    let d = db.lock().unwrap_or_else(|e| e.into_inner());
    for (from, why) in refused {
        let _ = d.log_access(&stations::db::Access {
            at: now,
            address: from.ip().to_string(),
            caller: String::new(),
            reason: why,
        });
    }
}

/// REGISTERs handled but not yet answered: at most this many wait for one group commit.
const GROUP: usize = 256;

/// Group commit: the registrations changed since the last commit are written in one
/// transaction, and only then are the REGISTERs that changed them answered, so no phone is
/// told it is registered before a `kill -9` would have kept its binding.
fn commit(
    db: &Arc<Mutex<Db>>,
    registrar: &Arc<Mutex<Registrar>>,
    ep: &Endpoint,
    unanswered: &mut Vec<(sip::transaction::TsxKey, sip::Response)>,
) {
    let taken = {
        let mut r = registrar.lock().unwrap_or_else(|e| e.into_inner());
        (r.take_changes(), r.take_access())
    };
    save(db, taken);
    for (key, response) in unanswered.drain(..) {
        let _ = ep.send_response(&key, &response);
    }
}

/// Writes registrations and refusals taken from the registrar to the database.
fn save(db: &Arc<Mutex<Db>>, (changes, access): (Vec<(String, Vec<Registration>)>, Vec<Access>)) {
    if changes.is_empty() && access.is_empty() {
        return;
    }
    let d = db.lock().unwrap_or_else(|e| e.into_inner());
    if let Err(e) = d.save_registrations(&changes) {
        tracing::error!("registrations not saved: {e}");
    }
    for a in access {
        let _ = d.log_access(&a);
    }
}
