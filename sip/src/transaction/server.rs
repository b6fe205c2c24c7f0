//! Server transactions (RFC 3261 §17.2; RFC 6026 §8.7 for the INVITE Accepted state).
//!
//! ```text
//! INVITE:     Proceeding --2xx--> Accepted --L--> Terminated   (2xx retransmission is the TU's)
//!             Proceeding --300-699--> Completed --ACK--> Confirmed --I--> Terminated
//!             Completed --H--> Terminated (Timeout: no ACK came)
//! non-INVITE: Trying --1xx--> Proceeding --final--> Completed --J--> Terminated
//! ```
//! A retransmitted request re-sends the last response; an ACK to a failure is absorbed.
//! Servers never deliver messages themselves: the layer hands the TU the first request.

use super::{Backoff, Outbox, Output, TimerConfig, TransportKind, TsxError, due, earliest};
use crate::message::{Request, Response};
use crate::method::Method;
use bytes::Bytes;
use std::time::{Duration, Instant};

#[derive(Debug)]
enum InviteState {
    Proceeding {
        last: Option<Bytes>,
        /// The `100 Trying` to send if the TU has not answered by then.
        trying: Option<(Instant, Bytes)>,
    },
    Completed {
        response: Bytes,
        g: Option<Backoff>,
        h: Instant,
    },
    Confirmed {
        i: Instant,
    },
    Accepted {
        l: Instant,
    },
    Terminated,
}

/// An INVITE server transaction.
#[derive(Debug)]
pub struct ServerInvite {
    state: InviteState,
    reliable: bool,
    cfg: TimerConfig,
    out: Outbox<Request>,
}

impl ServerInvite {
    pub fn new(transport: TransportKind, cfg: TimerConfig) -> Self {
        ServerInvite {
            state: InviteState::Proceeding {
                last: None,
                trying: None,
            },
            reliable: transport.is_reliable(),
            cfg,
            out: Outbox::default(),
        }
    }

    /// Sends `trying` (a `100 Trying`) at `at` unless the TU has responded by then (RFC 3261
    /// §17.2.1: not needed when the TU answers within 200 ms). A challenge to a forged
    /// INVITE then goes out alone, not preceded by a 100.
    pub fn send_trying_at(&mut self, at: Instant, trying: &Response) {
        if let InviteState::Proceeding {
            last: None,
            trying: t,
        } = &mut self.state
        {
            *t = Some((at, trying.to_bytes()));
        }
    }

    /// A retransmission of the INVITE, or an ACK, matched this transaction.
    pub fn handle_request(&mut self, now: Instant, request: &Request) {
        let is_ack = request.method == Method::Ack;
        match &mut self.state {
            InviteState::Proceeding {
                last: Some(last), ..
            } if !is_ack => {
                self.out.send(last.clone());
            }
            InviteState::Proceeding { last, trying } if !is_ack && trying.is_some() => {
                // The client is waiting: the 100 goes now.
                let bytes = trying.take().map(|(_, b)| b);
                *last = bytes.clone();
                if let Some(b) = bytes {
                    self.out.send(b);
                }
            }
            InviteState::Completed { response, .. } => {
                if is_ack {
                    let i = if self.reliable {
                        Duration::ZERO
                    } else {
                        self.cfg.t4
                    };
                    self.state = InviteState::Confirmed { i: now + i };
                } else {
                    self.out.send(response.clone());
                }
            }
            _ => {}
        }
    }

    /// The TU responds.
    pub fn send_response(&mut self, now: Instant, response: &Response) -> Result<(), TsxError> {
        if !(100..=699).contains(&response.status) {
            return Err(TsxError::BadStatus(response.status));
        }
        if !matches!(self.state, InviteState::Proceeding { .. }) {
            return Err(TsxError::FinalAlreadySent);
        }
        let bytes = response.to_bytes();
        self.out.send(bytes.clone());
        self.state = match response.status {
            100..=199 => InviteState::Proceeding {
                last: Some(bytes),
                trying: None,
            },
            200..=299 => InviteState::Accepted {
                l: now + self.cfg.t64(),
            },
            _ => InviteState::Completed {
                response: bytes,
                g: (!self.reliable).then(|| Backoff::start(now, self.cfg.t1)),
                h: now + self.cfg.t64(),
            },
        };
        Ok(())
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        let t2 = self.cfg.t2;
        match &mut self.state {
            InviteState::Proceeding { last, trying }
                if trying.as_ref().is_some_and(|(at, _)| *at <= now) =>
            {
                let bytes = trying.take().map(|(_, b)| b);
                *last = bytes.clone();
                if let Some(b) = bytes {
                    self.out.send(b);
                }
            }
            InviteState::Completed { h, .. } if *h <= now => {
                self.out.output(Output::Timeout);
                self.terminate();
            }
            InviteState::Completed {
                g: Some(g),
                response,
                ..
            } if g.at <= now => {
                g.next(now, Some(t2));
                self.out.send(response.clone());
            }
            InviteState::Confirmed { i } if *i <= now => self.terminate(),
            InviteState::Accepted { l } if *l <= now => self.terminate(),
            _ => {}
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.out.poll_transmit()
    }

    pub fn poll_event(&mut self) -> Option<Output<Request>> {
        self.out.poll_output()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.state {
            InviteState::Completed { g, h, .. } => earliest(&[g.map(|g| g.at), Some(*h)]),
            InviteState::Confirmed { i } => Some(*i),
            InviteState::Accepted { l } => Some(*l),
            InviteState::Proceeding { trying, .. } => trying.as_ref().map(|(at, _)| *at),
            InviteState::Terminated => None,
        }
    }

    pub fn is_terminated(&self) -> bool {
        matches!(self.state, InviteState::Terminated)
    }

    /// Is an ACK now one to a failure response (absorbed here) rather than to a 2xx (the TU's)?
    pub fn absorbs_ack(&self) -> bool {
        matches!(
            self.state,
            InviteState::Completed { .. } | InviteState::Confirmed { .. }
        )
    }

    /// Still waiting for the TU's final response (a CANCEL can still act)?
    pub fn is_proceeding(&self) -> bool {
        matches!(self.state, InviteState::Proceeding { .. })
    }

    fn terminate(&mut self) {
        self.state = InviteState::Terminated;
        self.out.output(Output::Terminated);
    }
}

#[derive(Debug)]
enum NonInviteState {
    Trying,
    Proceeding { last: Bytes },
    Completed { response: Bytes, j: Instant },
    Terminated,
}

/// A non-INVITE server transaction.
#[derive(Debug)]
pub struct ServerNonInvite {
    state: NonInviteState,
    reliable: bool,
    cfg: TimerConfig,
    out: Outbox<Request>,
}

impl ServerNonInvite {
    pub fn new(transport: TransportKind, cfg: TimerConfig) -> Self {
        ServerNonInvite {
            state: NonInviteState::Trying,
            reliable: transport.is_reliable(),
            cfg,
            out: Outbox::default(),
        }
    }

    /// A retransmission of the request: re-send the last response, if any.
    pub fn handle_request(&mut self, _now: Instant, _request: &Request) {
        match &self.state {
            NonInviteState::Proceeding { last } => self.out.send(last.clone()),
            NonInviteState::Completed { response, .. } => self.out.send(response.clone()),
            NonInviteState::Trying | NonInviteState::Terminated => {}
        }
    }

    pub fn send_response(&mut self, now: Instant, response: &Response) -> Result<(), TsxError> {
        if !(100..=699).contains(&response.status) {
            return Err(TsxError::BadStatus(response.status));
        }
        if matches!(
            self.state,
            NonInviteState::Completed { .. } | NonInviteState::Terminated
        ) {
            return Err(TsxError::FinalAlreadySent);
        }
        let bytes = response.to_bytes();
        self.out.send(bytes.clone());
        self.state = if response.status < 200 {
            NonInviteState::Proceeding { last: bytes }
        } else {
            let j = if self.reliable {
                Duration::ZERO
            } else {
                self.cfg.t64()
            };
            NonInviteState::Completed {
                response: bytes,
                j: now + j,
            }
        };
        Ok(())
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if let NonInviteState::Completed { j, .. } = &self.state
            && due(Some(*j), now)
        {
            self.state = NonInviteState::Terminated;
            self.out.output(Output::Terminated);
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.out.poll_transmit()
    }

    pub fn poll_event(&mut self) -> Option<Output<Request>> {
        self.out.poll_output()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.state {
            NonInviteState::Completed { j, .. } => Some(*j),
            _ => None,
        }
    }

    pub fn is_terminated(&self) -> bool {
        matches!(self.state, NonInviteState::Terminated)
    }
}
