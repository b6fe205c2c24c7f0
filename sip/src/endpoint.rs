//! [`Endpoint`]: a [`TransactionLayer`] driven on tokio over a [`Transport`] — the thin
//! driver between the pure machines and the sockets. It feeds received messages and the
//! clock into the layer, sends what the layer produces, and hands the transaction user every
//! [`TsxEvent`] on a channel ([`Events`]). While the events the TU takes have waited there
//! [`SHED_AFTER`] or longer, or as many wait as [`Endpoint::set_backlog_limit`] allows,
//! new requests outside dialogs are refused `503` ([`TransactionLayer::set_shedding`]).

use crate::message::{Message, Request, Response};
use crate::transaction::{
    Peer, TimerConfig, TransactionLayer, Transmit, TransportKind, TsxError, TsxEvent, TsxKey,
};
use crate::transport::{Incoming, Transport, TransportConfig};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, mpsc};

/// A SIP endpoint: transport + transaction layer + timer task.
pub struct Endpoint {
    layer: Mutex<TransactionLayer>,
    transport: Arc<Transport>,
    wake: Notify,
    events: mpsc::UnboundedSender<(Instant, TsxEvent)>,
    backlog: Arc<Backlog>,
    /// At this many queued events, new requests are shed.
    backlog_limit: AtomicUsize,
    outgoing: mpsc::UnboundedSender<Transmit>,
}

/// How long a client refused for overload is asked to wait (`Retry-After`, seconds).
const SHED_RETRY_AFTER: u32 = 2;

/// New requests are shed while the events the TU takes have waited this long. A client
/// waits 64×T1 (32 s) for its answer and its retransmissions meanwhile are absorbed, so a
/// stall of a second (a checkpoint of the database, a burst of expiring transactions) is
/// better queued than refused; only load the TU cannot keep up with is shed, and the queue
/// it leaves behind drains in seconds.
pub const SHED_AFTER: Duration = Duration::from_secs(2);

/// The events queued by default before new requests are shed whatever their wait (a TU that
/// takes none at all).
pub const DEFAULT_BACKLOG_LIMIT: usize = 50_000;

/// How deep the TU's queue is and how long its last event waited, shared by the endpoint
/// that fills it and the [`Events`] that empties it.
#[derive(Default)]
struct Backlog {
    /// Events sent and not yet taken.
    queued: AtomicUsize,
    /// How long the event the TU took last had waited, in microseconds.
    waited_us: AtomicU64,
}

/// Whether to shed: `queued` events wait (at most `limit`; 0 for no limit) and the last one
/// taken had waited `waited`.
fn overloaded(queued: usize, waited: Duration, limit: usize) -> bool {
    (queued > 0 && waited >= SHED_AFTER) || (limit > 0 && queued >= limit)
}

/// The transaction user's side of the endpoint's events: [`TsxEvent`]s in order, counted out
/// so that the endpoint knows how deep the queue is and how long its events wait.
pub struct Events {
    rx: mpsc::UnboundedReceiver<(Instant, TsxEvent)>,
    backlog: Arc<Backlog>,
}

impl Events {
    /// The next event; `None` once the endpoint is gone.
    pub async fn recv(&mut self) -> Option<TsxEvent> {
        self.rx.recv().await.map(|e| self.taken(e))
    }

    /// The next event if one is waiting.
    pub fn try_recv(&mut self) -> Result<TsxEvent, mpsc::error::TryRecvError> {
        self.rx.try_recv().map(|e| self.taken(e))
    }

    fn taken(&self, (sent, event): (Instant, TsxEvent)) -> TsxEvent {
        let waited = crate::clock::Clock::now()
            .now
            .saturating_duration_since(sent);
        let b = &self.backlog;
        b.waited_us
            .store(waited.as_micros() as u64, Ordering::Relaxed);
        b.queued.fetch_sub(1, Ordering::Relaxed);
        event
    }
}

impl Endpoint {
    /// Binds the transports and starts the driver tasks. Events arrive on the receiver.
    pub async fn start(
        transports: TransportConfig,
        timers: TimerConfig,
    ) -> io::Result<(Arc<Endpoint>, Events)> {
        let (transport, incoming) = Transport::bind(transports).await?;
        let (events, rx) = mpsc::unbounded_channel();
        let backlog = Arc::new(Backlog::default());
        let (outgoing, outgoing_rx) = mpsc::unbounded_channel();
        let endpoint = Arc::new(Endpoint {
            layer: Mutex::new(TransactionLayer::new(timers)),
            transport,
            wake: Notify::new(),
            events,
            backlog: backlog.clone(),
            backlog_limit: AtomicUsize::new(DEFAULT_BACKLOG_LIMIT),
            outgoing,
        });
        tokio::spawn(receive_loop(Arc::downgrade(&endpoint), incoming));
        tokio::spawn(send_loop(Arc::downgrade(&endpoint), outgoing_rx));
        tokio::spawn(timer_loop(Arc::downgrade(&endpoint)));
        Ok((endpoint, Events { rx, backlog }))
    }

    /// Sheds new requests while `limit` events wait for the TU, however long they have waited:
    /// at most that many queue (0: no limit; [`DEFAULT_BACKLOG_LIMIT`] at the start).
    pub fn set_backlog_limit(&self, limit: usize) {
        self.backlog_limit.store(limit, Ordering::Relaxed);
    }

    /// How many new requests the endpoint has refused for overload since it started.
    pub fn shed_count(&self) -> u64 {
        self.lock().shed_count()
    }

    /// Events the TU has not taken yet.
    pub fn backlog(&self) -> usize {
        self.backlog.queued.load(Ordering::Relaxed)
    }

    fn overloaded(&self) -> bool {
        let waited = self.backlog.waited_us.load(Ordering::Relaxed);
        overloaded(
            self.backlog(),
            Duration::from_micros(waited),
            self.backlog_limit.load(Ordering::Relaxed),
        )
    }

    pub fn transport(&self) -> &Arc<Transport> {
        &self.transport
    }

    pub fn local_addr(&self, kind: TransportKind) -> Option<SocketAddr> {
        self.transport.local_addr(kind)
    }

    /// Starts a client transaction.
    pub fn send_request(&self, request: Request, peer: Peer) -> Result<TsxKey, TsxError> {
        self.with_layer(|l, now| l.send_request(now, request, peer))
    }

    /// Answers a server transaction.
    pub fn send_response(&self, key: &TsxKey, response: &Response) -> Result<(), TsxError> {
        self.with_layer(|l, now| l.send_response(now, key, response))
    }

    /// Answers a server transaction once and forgets it (see
    /// [`crate::transaction::TransactionLayer::send_response_once`]).
    pub fn send_response_once(&self, key: &TsxKey, response: &Response) -> Result<(), TsxError> {
        self.with_layer(|l, _| l.send_response_once(key, response))
    }

    /// Sends outside any transaction (ACK to 2xx, 2xx retransmissions).
    pub fn send_stateless(&self, peer: Peer, message: &Message) {
        self.with_layer(|l, _| l.send_stateless(peer, message));
    }

    /// Answers an INVITE server transaction with a 2xx and re-sends it over unreliable
    /// transports, T1 doubling to T2, until the returned sender fires (the ACK came) or 64×T1
    /// pass (§13.3.1.4: the 2xx is the transaction user's to retransmit). The timers are the
    /// endpoint's own (`sip.t1_ms` in pbx-lite), as its transactions' are.
    pub fn send_2xx(
        self: &Arc<Self>,
        key: &TsxKey,
        peer: Peer,
        ok: Response,
    ) -> tokio::sync::oneshot::Sender<()> {
        let (acked_tx, mut acked) = tokio::sync::oneshot::channel::<()>();
        let _ = self.send_response(key, &ok);
        if peer.transport.is_reliable() {
            return acked_tx;
        }
        let me = Arc::downgrade(self);
        let timers = self.lock().config();
        tokio::spawn(async move {
            let mut interval = timers.t1;
            let deadline = tokio::time::Instant::now() + timers.t64();
            let msg = Message::Response(ok);
            loop {
                tokio::select! {
                    _ = &mut acked => return,
                    _ = tokio::time::sleep(interval) => {}
                }
                let Some(ep) = me.upgrade() else { return };
                if tokio::time::Instant::now() >= deadline {
                    return;
                }
                ep.send_stateless(peer, &msg);
                interval = (interval * 2).min(timers.t2);
            }
        });
        acked_tx
    }

    /// CANCELs a pending INVITE client transaction.
    pub fn cancel(&self, invite: &TsxKey) -> Result<TsxKey, TsxError> {
        self.with_layer(|l, now| l.cancel(now, invite))
    }

    /// Live transactions.
    pub fn transaction_count(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> MutexGuard<'_, TransactionLayer> {
        // A panic while holding the lock would be a bug in the pure layer; keep serving.
        self.layer.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the layer, then moves out what it produced and re-arms the timer task.
    fn with_layer<T>(&self, f: impl FnOnce(&mut TransactionLayer, Instant) -> T) -> T {
        let mut layer = self.lock();
        let now = crate::clock::Clock::now().now;
        let out = f(&mut layer, now);
        self.flush(&mut layer, now);
        drop(layer);
        self.wake.notify_one();
        out
    }

    fn flush(&self, layer: &mut TransactionLayer, now: Instant) {
        while let Some(t) = layer.poll_transmit() {
            let _ = self.outgoing.send(t);
        }
        while let Some(e) = layer.poll_event() {
            // Counted before it can be taken, so the count never goes below zero.
            let queued = &self.backlog.queued;
            queued.fetch_add(1, Ordering::Relaxed);
            if self.events.send((now, e)).is_err() {
                queued.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }
}

async fn receive_loop(endpoint: std::sync::Weak<Endpoint>, mut incoming: mpsc::Receiver<Incoming>) {
    while let Some(Incoming { message, peer }) = incoming.recv().await {
        let Some(ep) = endpoint.upgrade() else { return };
        let shed = ep.overloaded().then_some(SHED_RETRY_AFTER);
        ep.with_layer(|l, now| {
            l.set_shedding(shed);
            l.handle_message(now, message, peer)
        });
    }
}

async fn send_loop(
    endpoint: std::sync::Weak<Endpoint>,
    mut outgoing: mpsc::UnboundedReceiver<Transmit>,
) {
    while let Some(t) = outgoing.recv().await {
        let Some(ep) = endpoint.upgrade() else { return };
        if let Err(e) = ep.transport.send(t.peer, t.bytes).await
            && let Some(key) = t.key
        {
            let why = e.to_string();
            ep.with_layer(|l, _| l.handle_transport_error(&key, &why));
        }
    }
}

async fn timer_loop(endpoint: std::sync::Weak<Endpoint>) {
    loop {
        let Some(ep) = endpoint.upgrade() else { return };
        let next = ep.lock().poll_timeout();
        let sleep = async {
            match next {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = sleep => ep.with_layer(|l, now| l.handle_timeout(now)),
            _ = ep.wake.notified() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shedding_starts_when_events_wait_seconds_or_the_queue_is_full() {
        let ms = Duration::from_millis;
        // A queue drained within a second or so, however deep a burst made it: no shedding.
        assert!(!overloaded(5000, ms(1200), 50_000));
        // Events waiting two seconds: the TU cannot keep up.
        assert!(overloaded(10, ms(2000), 50_000));
        // An empty queue after a slow event: nothing to protect.
        assert!(!overloaded(0, ms(900), 50_000));
        // A TU taking nothing: the limit, whatever the last wait.
        assert!(overloaded(50_000, ms(0), 50_000));
        assert!(!overloaded(60_000, ms(0), 0), "0 is no limit");
    }
}
