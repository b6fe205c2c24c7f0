//! Transactions (RFC 3261 §17, with the Accepted state of RFC 6026): pure state machines told
//! the time.
//!
//! - [`client::ClientInvite`], [`client::ClientNonInvite`], [`server::ServerInvite`],
//!   [`server::ServerNonInvite`]: one machine per kind, states as enum variants. Each has the
//!   shape `handle_*(now, input)`, `poll_transmit()`, `poll_event()`, `poll_timeout()`.
//! - [`layer::TransactionLayer`]: owns all transactions of an endpoint, matches incoming
//!   messages to them (RFC 3261 §17.1.3/§17.2.3 with the RFC 2543 fallback), absorbs
//!   retransmissions, finds the INVITE a CANCEL cancels, answers merged requests with 482 and
//!   hands the transaction user (TU) what it must see.
//!
//! Nothing here reads a clock or touches a socket; [`Peer`] names where bytes go and the
//! driver (`crate::transport`) moves them.

pub mod client;
pub mod key;
pub mod layer;
pub mod server;

use bytes::Bytes;
use std::collections::VecDeque;
use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

pub use key::TsxKey;
pub use layer::{TransactionLayer, Transmit, TsxEvent};

/// RFC 3261 timer base values (§17.1.1.1, Table 4). All other timers derive from these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerConfig {
    /// RTT estimate, default 500 ms.
    pub t1: Duration,
    /// Maximum retransmit interval for non-INVITE requests and INVITE responses, default 4 s.
    pub t2: Duration,
    /// Maximum time a message stays in the network, default 5 s.
    pub t4: Duration,
}

impl Default for TimerConfig {
    fn default() -> Self {
        TimerConfig {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

impl TimerConfig {
    /// 64·T1: Timers B, F, H, J, L, M.
    pub fn t64(&self) -> Duration {
        self.t1 * 64
    }
}

/// Transport protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TransportKind {
    Udp,
    Tcp,
    Tls,
}

impl TransportKind {
    /// Reliable transports need no retransmissions (§17.1.1.2) and zero wait timers.
    pub fn is_reliable(self) -> bool {
        !matches!(self, TransportKind::Udp)
    }

    /// The Via transport token.
    pub fn via_name(self) -> &'static str {
        match self {
            TransportKind::Udp => "UDP",
            TransportKind::Tcp => "TCP",
            TransportKind::Tls => "TLS",
        }
    }

    /// Parses a Via transport token (case-insensitive).
    pub fn from_via(s: &str) -> Option<Self> {
        match s.to_ascii_uppercase().as_str() {
            "UDP" => Some(TransportKind::Udp),
            "TCP" => Some(TransportKind::Tcp),
            "TLS" => Some(TransportKind::Tls),
            _ => None,
        }
    }
}

/// The other end of a message: transport and socket address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Peer {
    pub transport: TransportKind,
    pub addr: SocketAddr,
}

impl Peer {
    pub fn new(transport: TransportKind, addr: SocketAddr) -> Self {
        Peer { transport, addr }
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.transport.via_name(), self.addr)
    }
}

/// A timer that doubles up to an optional cap (Timers A, E, G).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Backoff {
    pub(crate) at: Instant,
    pub(crate) interval: Duration,
}

impl Backoff {
    pub(crate) fn start(now: Instant, interval: Duration) -> Self {
        Backoff {
            at: now + interval,
            interval,
        }
    }

    /// Re-arms after firing at `now`, doubling the interval (capped at `cap` if given).
    pub(crate) fn next(&mut self, now: Instant, cap: Option<Duration>) {
        let doubled = self.interval * 2;
        self.interval = cap.map_or(doubled, |c| doubled.min(c));
        self.at = now + self.interval;
    }
}

/// What a machine hands its user besides bytes to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output<R> {
    /// A message for the transaction user (a response for clients, a request for servers).
    Deliver(R),
    /// Timer H (server INVITE) fired: no ACK came. (Clients deliver a `408` instead.)
    Timeout,
    /// The transaction is over and may be forgotten.
    Terminated,
}

/// The queues every machine shares: bytes to (re)send and outputs for the user.
#[derive(Debug)]
pub(crate) struct Outbox<R> {
    transmits: VecDeque<Bytes>,
    outputs: VecDeque<Output<R>>,
}

impl<R> Default for Outbox<R> {
    fn default() -> Self {
        Outbox {
            transmits: VecDeque::new(),
            outputs: VecDeque::new(),
        }
    }
}

impl<R> Outbox<R> {
    pub(crate) fn send(&mut self, bytes: Bytes) {
        self.transmits.push_back(bytes);
    }

    pub(crate) fn output(&mut self, o: Output<R>) {
        self.outputs.push_back(o);
    }

    pub(crate) fn poll_transmit(&mut self) -> Option<Bytes> {
        self.transmits.pop_front()
    }

    pub(crate) fn poll_output(&mut self) -> Option<Output<R>> {
        self.outputs.pop_front()
    }
}

/// Earliest of optional deadlines.
pub(crate) fn earliest(times: &[Option<Instant>]) -> Option<Instant> {
    times.iter().flatten().min().copied()
}

/// Fires at or before `now`?
pub(crate) fn due(t: Option<Instant>, now: Instant) -> bool {
    t.is_some_and(|t| t <= now)
}

/// Why the transaction layer refused what its user asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TsxError {
    #[error("no such transaction")]
    UnknownTransaction,
    #[error("a final response was already sent")]
    FinalAlreadySent,
    #[error("status {0} is not a response code")]
    BadStatus(u16),
    #[error("the request has no Via branch or CSeq")]
    Unidentifiable,
}
