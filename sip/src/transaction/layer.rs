//! The transaction layer of one endpoint: every transaction it has, keyed by [`TsxKey`], and
//! the matching rules around them. Pure: told the time, returns [`Transmit`]s and
//! [`TsxEvent`]s, asks to be woken at [`TransactionLayer::poll_timeout`].
//!
//! Handled here so the TU never sees it: request retransmissions (absorbed, last response
//! re-sent), ACKs to failures (absorbed), `100 Trying` for an INVITE the TU has not answered
//! within [`TRYING_DELAY`] (or that is retransmitted before then), CANCEL matched to its
//! INVITE (answered `200`, or `481` when nothing matches), merged requests (`482`, §8.2.2.2),
//! and CANCEL held back until the INVITE has had a provisional response (§9.1).

use super::client::{ClientInvite, ClientNonInvite, cancel_for};
use super::server::{ServerInvite, ServerNonInvite};
use super::{Output, Peer, TimerConfig, TsxError, TsxKey};
use crate::message::{Message, Request, Response};
use crate::method::Method;
use bytes::Bytes;
use ezk_sip_types::Name;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::time::{Duration, Instant};

/// How long an INVITE waits for the TU's answer before the layer sends `100 Trying` (RFC 3261
/// §17.2.1). A challenge or a refusal sent within it goes out alone: a forged INVITE is then
/// answered with one response, not two.
pub const TRYING_DELAY: Duration = Duration::from_millis(200);

/// Bytes to send to a peer.
#[derive(Debug, Clone)]
pub struct Transmit {
    pub peer: Peer,
    pub bytes: Bytes,
    /// The transaction that sent it (none for stateless sends); report a failed send with
    /// [`TransactionLayer::handle_transport_error`].
    pub key: Option<TsxKey>,
}

/// What the transaction user must see.
#[derive(Debug, Clone)]
pub enum TsxEvent {
    /// A new request. Answer with [`TransactionLayer::send_response`] (never for ACK, which
    /// has no transaction: it is the ACK to a 2xx).
    Request {
        key: TsxKey,
        request: Request,
        peer: Peer,
    },
    /// A CANCEL matched the pending INVITE `invite`; the CANCEL has been answered `200`. The
    /// TU answers the INVITE (`487`).
    Cancelled { invite: TsxKey, cancel: Request },
    /// A response on a client transaction: from the peer, or made here — `408` when Timer
    /// B/F fired, `503` when the transport failed (§8.1.3.1).
    Response { key: TsxKey, response: Response },
    /// Server INVITE: Timer H fired — the ACK to our failure response never came.
    Timeout { key: TsxKey },
    /// A response that matches no transaction (a late 2xx retransmission, for one).
    StrayResponse { response: Response, peer: Peer },
}

#[derive(Debug)]
#[allow(clippy::enum_variant_names)] // the four kinds of RFC 3261 §17 by their names
enum Tsx {
    ClientInvite(ClientInvite),
    ClientNonInvite(ClientNonInvite),
    ServerInvite(ServerInvite),
    ServerNonInvite(ServerNonInvite),
}

/// Calls the same method on whichever machine an entry holds.
macro_rules! each {
    ($tsx:expr, $t:ident => $body:expr) => {
        match $tsx {
            Tsx::ClientInvite($t) => $body,
            Tsx::ClientNonInvite($t) => $body,
            Tsx::ServerInvite($t) => $body,
            Tsx::ServerNonInvite($t) => $body,
        }
    };
}

/// From tag, Call-ID, CSeq number and method: equal for merged requests (§8.2.2.2).
type MergeKey = (String, String, u32, Method);

#[derive(Debug)]
struct Entry {
    tsx: Tsx,
    peer: Peer,
    scheduled: Option<Instant>,
    merge: Option<MergeKey>,
    cancel_pending: bool,
}

/// All transactions of one endpoint.
#[derive(Debug, Default)]
pub struct TransactionLayer {
    cfg: TimerConfig,
    /// Boxed: the table holds hundreds of thousands of transactions under load (a completed
    /// one lingers 64×T1 for retransmissions), and growing it moves and zeroes every slot —
    /// 700 bytes a slot unboxed, a stall of half a second at 500,000.
    entries: HashMap<TsxKey, Box<Entry>>,
    merged: HashMap<MergeKey, TsxKey>,
    timers: BinaryHeap<Reverse<(Instant, TsxKey)>>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<TsxEvent>,
    /// While set, new requests outside dialogs are refused here ([`Self::set_shedding`]).
    shedding: Option<u32>,
    /// Requests refused so far by shedding.
    shed: u64,
}

impl TransactionLayer {
    pub fn new(cfg: TimerConfig) -> Self {
        TransactionLayer {
            cfg,
            ..Default::default()
        }
    }

    pub fn config(&self) -> TimerConfig {
        self.cfg
    }

    /// While `retry_after` is set, a new request outside any dialog (no To tag; not ACK or
    /// CANCEL) is answered `503 Service Unavailable` with that `Retry-After` (seconds) here,
    /// and never reaches the TU — the driver sets it while the TU's queue is deep (RFC 3261
    /// §21.5.4), so that work already taken on finishes in time instead of everything
    /// queuing past its timers. Requests within dialogs still go through: they end or keep
    /// up calls that exist. Retransmissions of a refused request get the same 503 from its
    /// transaction, as any answered request's do.
    pub fn set_shedding(&mut self, retry_after: Option<u32>) {
        self.shedding = retry_after;
    }

    /// How many requests shedding has refused since the layer began.
    pub fn shed_count(&self) -> u64 {
        self.shed
    }

    /// Number of live transactions.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Starts a client transaction for `request` (not ACK) towards `peer`.
    pub fn send_request(
        &mut self,
        now: Instant,
        request: Request,
        peer: Peer,
    ) -> Result<TsxKey, TsxError> {
        let key = TsxKey::client(&request).ok_or(TsxError::Unidentifiable)?;
        let tsx = if request.method == Method::Invite {
            Tsx::ClientInvite(ClientInvite::new(now, request, peer.transport, self.cfg))
        } else {
            Tsx::ClientNonInvite(ClientNonInvite::new(now, request, peer.transport, self.cfg))
        };
        self.insert(key.clone(), tsx, peer, None);
        Ok(key)
    }

    /// Sends a message outside any transaction (the ACK to a 2xx, a 2xx retransmission).
    pub fn send_stateless(&mut self, peer: Peer, message: &Message) {
        self.transmits.push_back(Transmit {
            peer,
            bytes: message.to_bytes(),
            key: None,
        });
    }

    /// Cancels the INVITE client transaction `invite` (§9.1). The CANCEL goes out as soon as
    /// a provisional response has arrived. Returns the CANCEL's transaction key.
    pub fn cancel(&mut self, now: Instant, invite: &TsxKey) -> Result<TsxKey, TsxError> {
        let entry = self
            .entries
            .get_mut(invite)
            .ok_or(TsxError::UnknownTransaction)?;
        let Tsx::ClientInvite(tsx) = &entry.tsx else {
            return Err(TsxError::UnknownTransaction);
        };
        let cancel_key = invite.with_method(Method::Cancel);
        if tsx.is_proceeding() {
            let (cancel, peer) = (cancel_for(tsx.request()), entry.peer);
            self.send_request(now, cancel, peer)?;
        } else {
            entry.cancel_pending = true;
        }
        Ok(cancel_key)
    }

    /// The TU answers the request of server transaction `key`.
    pub fn send_response(
        &mut self,
        now: Instant,
        key: &TsxKey,
        response: &Response,
    ) -> Result<(), TsxError> {
        let entry = self
            .entries
            .get_mut(key)
            .ok_or(TsxError::UnknownTransaction)?;
        match &mut entry.tsx {
            Tsx::ServerInvite(t) => t.send_response(now, response)?,
            Tsx::ServerNonInvite(t) => t.send_response(now, response)?,
            _ => return Err(TsxError::UnknownTransaction),
        }
        self.drain(key);
        Ok(())
    }

    /// The TU answers server transaction `key` once, and the transaction is forgotten: no
    /// retransmission of the response, no absorbing of retransmitted requests (a repeat is a
    /// new request and gets a new answer). For challenges to requests nobody has
    /// authenticated yet, as a stateless proxy sends them: a forged source address gets one
    /// response, not a dozen (reflection).
    pub fn send_response_once(
        &mut self,
        key: &TsxKey,
        response: &Response,
    ) -> Result<(), TsxError> {
        let entry = self
            .entries
            .remove(key)
            .ok_or(TsxError::UnknownTransaction)?;
        if let Some(m) = &entry.merge {
            self.merged.remove(m);
        }
        self.send_stateless(entry.peer, &Message::Response(response.clone()));
        Ok(())
    }

    /// A message arrived from `peer`.
    pub fn handle_message(&mut self, now: Instant, message: Message, peer: Peer) {
        match message {
            Message::Request(r) => self.handle_request(now, r, peer),
            Message::Response(r) => self.handle_response(now, r, peer),
        }
    }

    /// The transport could not reach the peer of client transaction `key`; `why` goes into
    /// the reason phrase of the `503` the TU receives.
    pub fn handle_transport_error(&mut self, key: &TsxKey, why: &str) {
        if let Some(entry) = self.entries.get_mut(key) {
            match &mut entry.tsx {
                Tsx::ClientInvite(t) => t.handle_transport_error(why),
                Tsx::ClientNonInvite(t) => t.handle_transport_error(why),
                _ => {}
            }
            self.drain(key);
        }
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(Reverse((at, _))) = self.timers.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((at, key))) = self.timers.pop() else {
                break;
            };
            let Some(entry) = self.entries.get_mut(&key) else {
                continue;
            };
            if entry.scheduled != Some(at) {
                continue; // stale: re-armed since
            }
            entry.scheduled = None;
            each!(&mut entry.tsx, t => t.handle_timeout(now));
            self.drain(&key);
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<TsxEvent> {
        self.events.pop_front()
    }

    /// When [`Self::handle_timeout`] should next be called.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        while let Some(Reverse((at, key))) = self.timers.peek() {
            let live = self
                .entries
                .get(key)
                .is_some_and(|e| e.scheduled == Some(*at));
            if live {
                return Some(*at);
            }
            self.timers.pop();
        }
        None
    }

    fn handle_request(&mut self, now: Instant, request: Request, peer: Peer) {
        let Some(key) = TsxKey::server(&request) else {
            return; // no Via: nowhere to answer (validated messages always have one)
        };
        if let Some(entry) = self.entries.get_mut(&key) {
            let absorbed = match &mut entry.tsx {
                Tsx::ServerInvite(t) => {
                    let ack_to_2xx = request.method == Method::Ack && !t.absorbs_ack();
                    if !ack_to_2xx {
                        t.handle_request(now, &request);
                    }
                    !ack_to_2xx
                }
                Tsx::ServerNonInvite(t) => {
                    t.handle_request(now, &request);
                    true
                }
                _ => true,
            };
            if absorbed {
                self.drain(&key);
                return;
            }
        }
        match request.method {
            Method::Ack => self
                .events
                .push_back(TsxEvent::Request { key, request, peer }),
            Method::Cancel => self.handle_cancel(now, key, request, peer),
            _ => self.new_server(now, key, request, peer),
        }
    }

    fn handle_cancel(&mut self, now: Instant, key: TsxKey, request: Request, peer: Peer) {
        let invite = key.with_method(Method::Invite);
        let pending = matches!(
            self.entries.get(&invite).map(|e| &e.tsx),
            Some(Tsx::ServerInvite(t)) if t.is_proceeding()
        );
        let tsx = Tsx::ServerNonInvite(ServerNonInvite::new(peer.transport, self.cfg));
        self.insert(key.clone(), tsx, peer, None);
        let (status, reason) = if pending {
            (200, "OK")
        } else {
            (481, "Call/Transaction Does Not Exist")
        };
        let mut response = request.make_response(status, reason);
        response.set_to_tag(&local_tag(&request));
        let _ = self.send_response(now, &key, &response);
        if pending {
            self.events.push_back(TsxEvent::Cancelled {
                invite,
                cancel: request,
            });
        }
    }

    fn new_server(&mut self, now: Instant, key: TsxKey, request: Request, peer: Peer) {
        let merge = merge_key(&request);
        let merged = merge
            .as_ref()
            .and_then(|m| self.merged.get(m))
            .is_some_and(|other| *other != key);
        let invite = request.method == Method::Invite;
        let tsx = if invite {
            Tsx::ServerInvite(ServerInvite::new(peer.transport, self.cfg))
        } else {
            Tsx::ServerNonInvite(ServerNonInvite::new(peer.transport, self.cfg))
        };
        if merged {
            self.insert(key.clone(), tsx, peer, None);
            let mut r = request.make_response(482, "Loop Detected");
            r.set_to_tag(&local_tag(&request));
            let _ = self.send_response(now, &key, &r);
            return;
        }
        if let Some(secs) = self.shedding
            && request.to_tag().is_none()
        {
            self.shed += 1;
            self.insert(key.clone(), tsx, peer, None);
            let mut r = request.make_response(503, "Service Unavailable");
            r.set_to_tag(&local_tag(&request));
            r.headers
                .insert(Name::from("Retry-After"), secs.to_string());
            let _ = self.send_response(now, &key, &r);
            return;
        }
        let mut tsx = tsx;
        if let Tsx::ServerInvite(t) = &mut tsx {
            t.send_trying_at(now + TRYING_DELAY, &request.make_response(100, "Trying"));
        }
        self.insert(key.clone(), tsx, peer, merge);
        self.events
            .push_back(TsxEvent::Request { key, request, peer });
    }

    fn handle_response(&mut self, now: Instant, response: Response, peer: Peer) {
        let key = TsxKey::for_response(&response);
        let Some(entry) = key.as_ref().and_then(|k| self.entries.get_mut(k)) else {
            self.events
                .push_back(TsxEvent::StrayResponse { response, peer });
            return;
        };
        let provisional = response.status < 200;
        match &mut entry.tsx {
            Tsx::ClientInvite(t) => t.handle_response(now, response),
            Tsx::ClientNonInvite(t) => t.handle_response(now, response),
            _ => return,
        }
        let Some(key) = key else { return };
        if provisional && entry.cancel_pending {
            entry.cancel_pending = false;
            if let Tsx::ClientInvite(t) = &entry.tsx {
                let (cancel, peer) = (cancel_for(t.request()), entry.peer);
                let _ = self.send_request(now, cancel, peer);
            }
        }
        self.drain(&key);
    }

    fn insert(&mut self, key: TsxKey, tsx: Tsx, peer: Peer, merge: Option<MergeKey>) {
        if let Some(m) = &merge {
            self.merged.insert(m.clone(), key.clone());
        }
        self.entries.insert(
            key.clone(),
            Box::new(Entry {
                tsx,
                peer,
                scheduled: None,
                merge,
                cancel_pending: false,
            }),
        );
        self.drain(&key);
    }

    /// Moves what transaction `key` produced into the layer's queues and re-arms its timer.
    fn drain(&mut self, key: &TsxKey) {
        let Some(entry) = self.entries.get_mut(key) else {
            return;
        };
        while let Some(bytes) = each!(&mut entry.tsx, t => t.poll_transmit()) {
            self.transmits.push_back(Transmit {
                peer: entry.peer,
                bytes,
                key: Some(key.clone()),
            });
        }
        let mut terminated = false;
        loop {
            let output = match &mut entry.tsx {
                Tsx::ClientInvite(t) => t.poll_event().map(|o| o.map_deliver(Some)),
                Tsx::ClientNonInvite(t) => t.poll_event().map(|o| o.map_deliver(Some)),
                Tsx::ServerInvite(t) => t.poll_event().map(|o| o.map_deliver(|_| None)),
                Tsx::ServerNonInvite(t) => t.poll_event().map(|o| o.map_deliver(|_| None)),
            };
            match output {
                None => break,
                Some(Output::Deliver(Some(response))) => {
                    self.events.push_back(TsxEvent::Response {
                        key: key.clone(),
                        response,
                    })
                }
                Some(Output::Deliver(None)) => {}
                Some(Output::Timeout) => self
                    .events
                    .push_back(TsxEvent::Timeout { key: key.clone() }),
                Some(Output::Terminated) => terminated = true,
            }
        }
        if terminated {
            if let Some(entry) = self.entries.remove(key)
                && let Some(m) = entry.merge
            {
                self.merged.remove(&m);
            }
            return;
        }
        let next = each!(&entry.tsx, t => t.poll_timeout());
        if next != entry.scheduled {
            entry.scheduled = next;
            if let Some(at) = next {
                self.timers.push(Reverse((at, key.clone())));
            }
        }
    }
}

impl<R> Output<R> {
    fn map_deliver<S>(self, f: impl FnOnce(R) -> S) -> Output<S> {
        match self {
            Output::Deliver(r) => Output::Deliver(f(r)),
            Output::Timeout => Output::Timeout,
            Output::Terminated => Output::Terminated,
        }
    }
}

fn merge_key(request: &Request) -> Option<MergeKey> {
    if request.to_tag().is_some() {
        return None; // in-dialog requests are never merged
    }
    Some((
        request.from_tag()?.to_string(),
        request.headers.get_raw(&Name::CALL_ID).next()?.to_string(),
        request.cseq()?.seq,
        request.method.clone(),
    ))
}

/// A To tag derived from the request, stable across retransmissions of it.
fn local_tag(request: &Request) -> String {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut h = DefaultHasher::new();
    request
        .headers
        .get_raw(&Name::VIA)
        .next()
        .map(|v| v.as_str())
        .hash(&mut h);
    format!("{:x}", h.finish())
}
