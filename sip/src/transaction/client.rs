//! Client transactions (RFC 3261 §17.1; RFC 6026 §8.4 for the INVITE Accepted state).
//!
//! ```text
//! INVITE:     Calling --1xx--> Proceeding --300-699--> Completed --D--> Terminated
//!                 \--2xx (either state)--> Accepted --M--> Terminated
//!             Calling --B--> Terminated, delivering a synthesized 408 to the TU
//! non-INVITE: Trying --1xx--> Proceeding --final--> Completed --K--> Terminated
//!             Trying/Proceeding --F--> Terminated, delivering a synthesized 408
//! ```

use super::{Backoff, Outbox, Output, TimerConfig, TransportKind, due, earliest};
use crate::headers::CSeq;
use crate::message::{Request, Response};
use crate::method::Method;
use bytes::Bytes;
use ezk_sip_types::{Headers, Name};
use std::time::{Duration, Instant};

#[derive(Debug)]
enum InviteState {
    Calling { a: Option<Backoff>, b: Instant },
    Proceeding,
    Completed { d: Instant, ack: Bytes },
    Accepted { m: Instant },
    Terminated,
}

/// An INVITE client transaction.
#[derive(Debug)]
pub struct ClientInvite {
    state: InviteState,
    request: Request,
    bytes: Bytes,
    reliable: bool,
    cfg: TimerConfig,
    out: Outbox<Response>,
}

impl ClientInvite {
    /// Starts the transaction: the request is queued for sending at once.
    pub fn new(now: Instant, request: Request, transport: TransportKind, cfg: TimerConfig) -> Self {
        let bytes = request.to_bytes();
        let reliable = transport.is_reliable();
        let mut out = Outbox::default();
        out.send(bytes.clone());
        ClientInvite {
            state: InviteState::Calling {
                a: (!reliable).then(|| Backoff::start(now, cfg.t1)),
                b: now + cfg.t64(),
            },
            request,
            bytes,
            reliable,
            cfg,
            out,
        }
    }

    /// A response matched to this transaction arrived.
    pub fn handle_response(&mut self, now: Instant, response: Response) {
        let status = response.status;
        match &self.state {
            InviteState::Calling { .. } | InviteState::Proceeding => {
                if status < 200 {
                    self.state = InviteState::Proceeding;
                } else if status < 300 {
                    self.state = InviteState::Accepted {
                        m: now + self.cfg.t64(),
                    };
                } else {
                    let ack = ack_for_failure(&self.request, &response).to_bytes();
                    self.out.send(ack.clone());
                    let d = if self.reliable {
                        Duration::ZERO
                    } else {
                        Duration::from_secs(32).max(self.cfg.t64())
                    };
                    self.state = InviteState::Completed { d: now + d, ack };
                }
                self.out.output(Output::Deliver(response));
            }
            InviteState::Completed { ack, .. } => {
                if status >= 300 {
                    // A retransmitted final response: ACK again, the TU has seen it.
                    self.out.send(ack.clone());
                }
            }
            InviteState::Accepted { .. } => {
                if (200..300).contains(&status) {
                    // RFC 6026: 2xx retransmissions go to the TU, which ACKs them.
                    self.out.output(Output::Deliver(response));
                }
            }
            InviteState::Terminated => {}
        }
    }

    /// Timers that are due at `now` fire.
    pub fn handle_timeout(&mut self, now: Instant) {
        match &mut self.state {
            InviteState::Calling { a, b } => {
                if due(Some(*b), now) {
                    let timeout = self.request.make_response(408, "Request Timeout");
                    self.out.output(Output::Deliver(timeout));
                    self.terminate();
                } else if let Some(timer) = a
                    && timer.at <= now
                {
                    timer.next(now, None);
                    self.out.send(self.bytes.clone());
                }
            }
            InviteState::Completed { d, .. } if *d <= now => self.terminate(),
            InviteState::Accepted { m } if *m <= now => self.terminate(),
            _ => {}
        }
    }

    /// The transport could not send: the transaction fails at once with a `503` for the TU
    /// (§17.1.4, §8.1.3.1).
    pub fn handle_transport_error(&mut self, why: &str) {
        if !matches!(self.state, InviteState::Terminated) {
            let reason = format!("Service Unavailable ({why})");
            let failed = self.request.make_response(503, &reason);
            self.out.output(Output::Deliver(failed));
            self.terminate();
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.out.poll_transmit()
    }

    pub fn poll_event(&mut self) -> Option<Output<Response>> {
        self.out.poll_output()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.state {
            InviteState::Calling { a, b } => earliest(&[a.map(|a| a.at), Some(*b)]),
            InviteState::Completed { d, .. } => Some(*d),
            InviteState::Accepted { m } => Some(*m),
            InviteState::Proceeding | InviteState::Terminated => None,
        }
    }

    pub fn is_terminated(&self) -> bool {
        matches!(self.state, InviteState::Terminated)
    }

    /// The request this transaction sends (for CANCEL construction).
    pub fn request(&self) -> &Request {
        &self.request
    }

    /// Has a provisional response arrived (a CANCEL may be sent only then, §9.1)?
    pub fn is_proceeding(&self) -> bool {
        matches!(self.state, InviteState::Proceeding)
    }

    fn terminate(&mut self) {
        self.state = InviteState::Terminated;
        self.out.output(Output::Terminated);
    }
}

/// The ACK for a non-2xx final response (§17.1.1.3): To comes from the response.
pub fn ack_for_failure(invite: &Request, response: &Response) -> Request {
    same_transaction(invite, Method::Ack, &response.headers)
}

/// The CANCEL for an INVITE (§9.1).
pub fn cancel_for(invite: &Request) -> Request {
    same_transaction(invite, Method::Cancel, &invite.headers)
}

/// A request that shares the INVITE's transaction identity: its Request-URI, top Via, Route
/// set, From, Call-ID and CSeq number, with `method`, and the To header found in `to`.
fn same_transaction(invite: &Request, method: Method, to: &Headers) -> Request {
    let mut r = Request::new(method.clone(), invite.uri.clone());
    if let Some(via) = invite.headers.get_raw(&Name::VIA).next() {
        r.headers.insert(Name::VIA, via.clone());
    }
    for v in invite.headers.get_raw(&Name::ROUTE) {
        r.headers.insert(Name::ROUTE, v.clone());
    }
    r.headers.insert(Name::MAX_FORWARDS, "70");
    for (name, from) in [
        (Name::FROM, &invite.headers),
        (Name::TO, to),
        (Name::CALL_ID, &invite.headers),
    ] {
        if let Some(v) = from.get_raw(&name).next() {
            r.headers.insert(name, v.clone());
        }
    }
    let seq = invite.cseq().map_or(1, |c| c.seq);
    r.headers
        .insert(Name::CSEQ, CSeq::new(seq, method).to_string());
    r
}

#[derive(Debug)]
enum NonInviteState {
    Trying { e: Option<Backoff>, f: Instant },
    Proceeding { e: Option<Backoff>, f: Instant },
    Completed { k: Instant },
    Terminated,
}

/// A non-INVITE client transaction.
#[derive(Debug)]
pub struct ClientNonInvite {
    state: NonInviteState,
    request: Request,
    bytes: Bytes,
    reliable: bool,
    cfg: TimerConfig,
    out: Outbox<Response>,
}

impl ClientNonInvite {
    /// Starts the transaction: the request is queued for sending at once.
    pub fn new(now: Instant, request: Request, transport: TransportKind, cfg: TimerConfig) -> Self {
        let bytes = request.to_bytes();
        let reliable = transport.is_reliable();
        let mut out = Outbox::default();
        out.send(bytes.clone());
        ClientNonInvite {
            state: NonInviteState::Trying {
                e: (!reliable).then(|| Backoff::start(now, cfg.t1)),
                f: now + cfg.t64(),
            },
            request,
            bytes,
            reliable,
            cfg,
            out,
        }
    }

    pub fn handle_response(&mut self, now: Instant, response: Response) {
        match &mut self.state {
            NonInviteState::Trying { e, f } | NonInviteState::Proceeding { e, f } => {
                if response.status < 200 {
                    self.state = NonInviteState::Proceeding { e: *e, f: *f };
                } else {
                    let k = if self.reliable {
                        Duration::ZERO
                    } else {
                        self.cfg.t4
                    };
                    self.state = NonInviteState::Completed { k: now + k };
                }
                self.out.output(Output::Deliver(response));
            }
            NonInviteState::Completed { .. } | NonInviteState::Terminated => {}
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        let t2 = self.cfg.t2;
        match &mut self.state {
            NonInviteState::Trying { f, .. } | NonInviteState::Proceeding { f, .. }
                if *f <= now =>
            {
                let timeout = self.request.make_response(408, "Request Timeout");
                self.out.output(Output::Deliver(timeout));
                self.terminate();
            }
            NonInviteState::Trying { e: Some(timer), .. } if timer.at <= now => {
                timer.next(now, Some(t2));
                self.out.send(self.bytes.clone());
            }
            NonInviteState::Proceeding { e: Some(timer), .. } if timer.at <= now => {
                // §17.1.2.2: once a provisional response arrived, retransmit every T2.
                *timer = Backoff::start(now, t2);
                self.out.send(self.bytes.clone());
            }
            NonInviteState::Completed { k } if *k <= now => self.terminate(),
            _ => {}
        }
    }

    pub fn handle_transport_error(&mut self, why: &str) {
        if !matches!(self.state, NonInviteState::Terminated) {
            let reason = format!("Service Unavailable ({why})");
            let failed = self.request.make_response(503, &reason);
            self.out.output(Output::Deliver(failed));
            self.terminate();
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.out.poll_transmit()
    }

    pub fn poll_event(&mut self) -> Option<Output<Response>> {
        self.out.poll_output()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.state {
            NonInviteState::Trying { e, f } | NonInviteState::Proceeding { e, f } => {
                earliest(&[e.map(|e| e.at), Some(*f)])
            }
            NonInviteState::Completed { k } => Some(*k),
            NonInviteState::Terminated => None,
        }
    }

    pub fn is_terminated(&self) -> bool {
        matches!(self.state, NonInviteState::Terminated)
    }

    fn terminate(&mut self) {
        self.state = NonInviteState::Terminated;
        self.out.output(Output::Terminated);
    }
}
