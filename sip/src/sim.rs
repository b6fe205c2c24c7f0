//! A virtual network for testing transaction layers without sockets or wall-clock time.
//!
//! [`SimNet`] holds any number of [`TransactionLayer`]s, each at its own socket address,
//! moves their [`Transmit`](crate::transaction::Transmit)s to one another after a fixed delay, fires their timers, and
//! collects what they hand their users. Knobs: `set_delay`, and `set_drop` with a predicate
//! over (time, from, to, bytes) — drop one message, every retransmission, a random share.
//! Every message put on the wire is logged with its send time, so tests can assert a
//! retransmission schedule exactly. A run of simulated minutes takes microseconds.

use crate::message::Message;
use crate::transaction::{Peer, TimerConfig, TransactionLayer, TransportKind, TsxEvent};
use bytes::Bytes;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// One message put on the wire.
#[derive(Debug, Clone)]
pub struct Sent {
    pub at: Instant,
    pub from: SocketAddr,
    pub to: SocketAddr,
    pub bytes: Bytes,
    pub dropped: bool,
}

impl Sent {
    /// The start line, for readable assertions.
    pub fn first_line(&self) -> String {
        String::from_utf8_lossy(&self.bytes)
            .lines()
            .next()
            .unwrap_or_default()
            .to_string()
    }
}

type DropFn = Box<dyn FnMut(Instant, SocketAddr, SocketAddr, &[u8]) -> bool>;

struct Node {
    addr: SocketAddr,
    layer: TransactionLayer,
    events: VecDeque<TsxEvent>,
}

/// The virtual network.
pub struct SimNet {
    start: Instant,
    now: Instant,
    transport: TransportKind,
    delay: Duration,
    nodes: Vec<Node>,
    in_flight: Vec<(Instant, SocketAddr, SocketAddr, Bytes)>,
    drop: Option<DropFn>,
    /// Everything sent, in order.
    pub log: Vec<Sent>,
}

impl SimNet {
    pub fn new(transport: TransportKind) -> Self {
        let now = Instant::now();
        SimNet {
            start: now,
            now,
            transport,
            delay: Duration::from_millis(1),
            nodes: Vec::new(),
            in_flight: Vec::new(),
            drop: None,
            log: Vec::new(),
        }
    }

    /// Adds an endpoint at `addr`; returns its index.
    pub fn add(&mut self, addr: SocketAddr, cfg: TimerConfig) -> usize {
        self.nodes.push(Node {
            addr,
            layer: TransactionLayer::new(cfg),
            events: VecDeque::new(),
        });
        self.nodes.len() - 1
    }

    pub fn set_delay(&mut self, delay: Duration) {
        self.delay = delay;
    }

    /// Messages for which `f(time, from, to, bytes)` is true are lost.
    pub fn set_drop(
        &mut self,
        f: impl FnMut(Instant, SocketAddr, SocketAddr, &[u8]) -> bool + 'static,
    ) {
        self.drop = Some(Box::new(f));
    }

    pub fn clear_drop(&mut self) {
        self.drop = None;
    }

    pub fn now(&self) -> Instant {
        self.now
    }

    /// Time since the network was created.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// The peer node `i` is seen as.
    pub fn peer(&self, i: usize) -> Peer {
        Peer::new(self.transport, self.nodes[i].addr)
    }

    pub fn layer(&mut self, i: usize) -> &mut TransactionLayer {
        &mut self.nodes[i].layer
    }

    /// Takes the events node `i` has produced so far.
    pub fn events(&mut self, i: usize) -> Vec<TsxEvent> {
        self.collect();
        self.nodes[i].events.drain(..).collect()
    }

    /// Runs the network for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        loop {
            self.collect();
            let next_packet = self.in_flight.iter().map(|p| p.0).min();
            let next_timer = self
                .nodes
                .iter_mut()
                .filter_map(|n| n.layer.poll_timeout())
                .min();
            let Some(next) = [next_packet, next_timer].into_iter().flatten().min() else {
                break;
            };
            if next > end {
                break;
            }
            self.now = self.now.max(next);
            let now = self.now;
            let (due, later): (Vec<_>, Vec<_>) = self.in_flight.drain(..).partition(|p| p.0 <= now);
            self.in_flight = later;
            for (_, from, to, bytes) in due {
                let Some(node) = self.nodes.iter_mut().find(|n| n.addr == to) else {
                    continue;
                };
                if let Ok(msg) = Message::parse_datagram(&bytes) {
                    node.layer
                        .handle_message(now, msg, Peer::new(self.transport, from));
                }
            }
            for node in &mut self.nodes {
                node.layer.handle_timeout(now);
            }
        }
        self.now = self.now.max(end);
        self.collect();
    }

    /// Moves transmits onto the wire and events into each node's queue.
    fn collect(&mut self) {
        for node in &mut self.nodes {
            while let Some(t) = node.layer.poll_transmit() {
                let dropped = self
                    .drop
                    .as_mut()
                    .is_some_and(|f| f(self.now, node.addr, t.peer.addr, &t.bytes));
                self.log.push(Sent {
                    at: self.now,
                    from: node.addr,
                    to: t.peer.addr,
                    bytes: t.bytes.clone(),
                    dropped,
                });
                if !dropped {
                    self.in_flight
                        .push((self.now + self.delay, node.addr, t.peer.addr, t.bytes));
                }
            }
            while let Some(e) = node.layer.poll_event() {
                node.events.push_back(e);
            }
        }
    }
}
