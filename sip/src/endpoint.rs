//! [`Endpoint`]: a [`TransactionLayer`] driven on tokio over a [`Transport`] — the thin
//! driver between the pure machines and the sockets. It feeds received messages and the
//! clock into the layer, sends what the layer produces, and hands the transaction user every
//! [`TsxEvent`] on a channel.

use crate::message::{Message, Request, Response};
use crate::transaction::{
    Peer, TimerConfig, TransactionLayer, Transmit, TransportKind, TsxError, TsxEvent, TsxKey,
};
use crate::transport::{Incoming, Transport, TransportConfig};
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;
use tokio::sync::{Notify, mpsc};

/// A SIP endpoint: transport + transaction layer + timer task.
pub struct Endpoint {
    layer: Mutex<TransactionLayer>,
    transport: Arc<Transport>,
    wake: Notify,
    events: mpsc::UnboundedSender<TsxEvent>,
    outgoing: mpsc::UnboundedSender<Transmit>,
}

impl Endpoint {
    /// Binds the transports and starts the driver tasks. Events arrive on the receiver.
    pub async fn start(
        transports: TransportConfig,
        timers: TimerConfig,
    ) -> io::Result<(Arc<Endpoint>, mpsc::UnboundedReceiver<TsxEvent>)> {
        let (transport, incoming) = Transport::bind(transports).await?;
        let (events, events_rx) = mpsc::unbounded_channel();
        let (outgoing, outgoing_rx) = mpsc::unbounded_channel();
        let endpoint = Arc::new(Endpoint {
            layer: Mutex::new(TransactionLayer::new(timers)),
            transport,
            wake: Notify::new(),
            events,
            outgoing,
        });
        tokio::spawn(receive_loop(Arc::downgrade(&endpoint), incoming));
        tokio::spawn(send_loop(Arc::downgrade(&endpoint), outgoing_rx));
        tokio::spawn(timer_loop(Arc::downgrade(&endpoint)));
        Ok((endpoint, events_rx))
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
        let out = f(&mut layer, crate::clock::Clock::now().now);
        self.flush(&mut layer);
        drop(layer);
        self.wake.notify_one();
        out
    }

    fn flush(&self, layer: &mut TransactionLayer) {
        while let Some(t) = layer.poll_transmit() {
            let _ = self.outgoing.send(t);
        }
        while let Some(e) = layer.poll_event() {
            let _ = self.events.send(e);
        }
    }
}

async fn receive_loop(endpoint: std::sync::Weak<Endpoint>, mut incoming: mpsc::Receiver<Incoming>) {
    while let Some(Incoming { message, peer }) = incoming.recv().await {
        let Some(ep) = endpoint.upgrade() else { return };
        ep.with_layer(|l, now| l.handle_message(now, message, peer));
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
