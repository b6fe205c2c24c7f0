//! One client registration (RFC 3261 §10) — a phone's line, or the PBX's trunk at a provider
//! — as a pure state machine told the time: it says which REGISTER to send, reads the answers
//! — a 401/407 is answered once with digest credentials (MD5 or SHA-256, whichever the
//! registrar prefers), 423 raises the expiry to Min-Expires — and says when to refresh (at 80%
//! of the granted time) or, after a failure, when to try again: after the registrar's
//! Retry-After (RFC 3261 §21.5.4) if it gave one, else after 30 s doubling with each failure in
//! a row up to an hour. A 403 stops it: the credentials are refused, and asking again would
//! only get the office banned by its provider.

use crate::auth::DigestClient;
use crate::transaction::TransportKind;
use crate::types::Name;
use crate::{Method, Request, Response, build};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// After a failure, the next attempt comes this much later; twice as late after each
/// further failure in a row, up to [`MAX_RETRY`].
const RETRY: Duration = Duration::from_secs(30);
const MAX_RETRY: Duration = Duration::from_secs(3600);

/// Where a registration stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    Unregistered,
    /// A REGISTER is out.
    Registering,
    Registered {
        expires: u32,
        refresh_at: Instant,
    },
    Failed {
        status: u16,
        reason: String,
        retry_at: Instant,
    },
    /// Refused for good (403): nothing more is sent until [`Registration::register`].
    Stopped {
        status: u16,
        reason: String,
    },
}

/// What a response meant.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Send this REGISTER (with credentials, or a longer expiry).
    Send(Request),
    Registered {
        expires: u32,
    },
    Unregistered,
    Failed {
        status: u16,
        reason: String,
        /// Seconds until the next attempt; 0 when there is none (stopped after a 403).
        retry_in: u32,
    },
}

#[derive(Debug)]
pub struct Registration {
    aor: String,
    registrar: String,
    transport: TransportKind,
    local: SocketAddr,
    expiry: u32,
    credentials: DigestClient,
    call_id: String,
    from_tag: String,
    cseq: u32,
    /// The REGISTER last sent, answered with credentials at most once per request.
    last: Option<Request>,
    authorized: bool,
    /// The expiry asked for by the request in flight (0: unregistering).
    asked: u32,
    /// Failures in a row (the backoff doubles with each).
    failures: u32,
    state: State,
}

impl Registration {
    /// A registration of `number@server` with `user`/`password`, sent from `local`.
    pub fn new(
        number: &str,
        (server, port): (&str, u16),
        (user, password): (&str, &str),
        transport: TransportKind,
        local: SocketAddr,
        expiry: u32,
    ) -> Registration {
        let transport_param = match transport {
            TransportKind::Tcp => ";transport=tcp",
            TransportKind::Tls => ";transport=tls",
            _ => "",
        };
        Registration {
            aor: format!("sip:{number}@{server}"),
            registrar: format!("sip:{server}:{port}{transport_param}"),
            transport,
            local,
            expiry,
            credentials: DigestClient::new(user, password),
            call_id: build::new_call_id(&local.ip().to_string()),
            from_tag: build::new_tag(),
            cseq: 0,
            last: None,
            authorized: false,
            asked: expiry,
            failures: 0,
            state: State::Unregistered,
        }
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    /// A REGISTER asking for `expires` seconds (0 removes the binding).
    fn request(&mut self, expires: u32) -> Option<Request> {
        self.cseq += 1;
        let mut r = build::request(
            Method::Register,
            &self.registrar,
            &self.aor,
            &self.aor,
            self.transport,
            self.local,
        )
        .ok()?;
        r.headers.remove(&Name::FROM);
        r.headers
            .insert(Name::FROM, format!("<{}>;tag={}", self.aor, self.from_tag));
        r.headers.remove(&Name::CALL_ID);
        r.headers.insert(Name::CALL_ID, self.call_id.clone());
        r.headers.remove(&Name::CSEQ);
        r.headers
            .insert(Name::CSEQ, format!("{} REGISTER", self.cseq));
        r.headers.insert(Name::EXPIRES, expires.to_string());
        self.asked = expires;
        self.authorized = false;
        self.last = Some(r.clone());
        self.state = State::Registering;
        Some(r)
    }

    /// Registers now.
    pub fn register(&mut self) -> Option<Request> {
        self.request(self.expiry)
    }

    /// Removes the binding.
    pub fn unregister(&mut self) -> Option<Request> {
        self.request(0)
    }

    /// When the machine next wants to act (a refresh or a retry).
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.state {
            State::Registered { refresh_at, .. } => Some(*refresh_at),
            State::Failed { retry_at, .. } => Some(*retry_at),
            _ => None,
        }
    }

    /// The REGISTER that is due at `now`, if any.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Request> {
        match self.poll_timeout() {
            Some(t) if t <= now => self.register(),
            _ => None,
        }
    }

    /// The transaction gave up (timeout, transport error).
    pub fn on_timeout(&mut self, now: Instant) -> Outcome {
        let retry = self.backoff();
        self.fail(
            now,
            408,
            "Request Timeout (no answer from the registrar)",
            retry,
        )
    }

    /// How long after this failure the next attempt comes (30 s, doubling, up to an hour).
    fn backoff(&self) -> Duration {
        RETRY
            .saturating_mul(1u32 << self.failures.min(7))
            .min(MAX_RETRY)
    }

    fn fail(&mut self, now: Instant, status: u16, reason: &str, retry: Duration) -> Outcome {
        self.failures += 1;
        if status == 403 {
            self.state = State::Stopped {
                status,
                reason: reason.to_string(),
            };
            return Outcome::Failed {
                status,
                reason: reason.to_string(),
                retry_in: 0,
            };
        }
        self.state = State::Failed {
            status,
            reason: reason.to_string(),
            retry_at: now + retry,
        };
        Outcome::Failed {
            status,
            reason: reason.to_string(),
            retry_in: retry.as_secs() as u32,
        }
    }

    /// A final response to the REGISTER in flight.
    pub fn on_response(&mut self, now: Instant, response: &Response) -> Option<Outcome> {
        match response.status {
            100..=199 => None,
            200..=299 => {
                if self.asked == 0 {
                    self.state = State::Unregistered;
                    return Some(Outcome::Unregistered);
                }
                let expires = granted(response, self.asked);
                self.failures = 0;
                let refresh =
                    Duration::from_secs(u64::from(expires) * 4 / 5).max(Duration::from_secs(5));
                self.state = State::Registered {
                    expires,
                    refresh_at: now + refresh,
                };
                Some(Outcome::Registered { expires })
            }
            401 | 407 if !self.authorized => {
                let mut r = self.last.clone()?;
                if !self.credentials.authorize(&mut r, response) {
                    let retry = self.backoff();
                    return Some(self.fail(
                        now,
                        response.status,
                        "no digest challenge it can answer",
                        retry,
                    ));
                }
                self.cseq += 1;
                r.headers.remove(&Name::CSEQ);
                r.headers
                    .insert(Name::CSEQ, format!("{} REGISTER", self.cseq));
                r.headers.remove(&Name::VIA);
                r.headers.insert(
                    Name::VIA,
                    build::via_value(self.transport, self.local, &build::new_branch()),
                );
                self.authorized = true;
                self.last = Some(r.clone());
                Some(Outcome::Send(r))
            }
            423 => {
                let min: u32 = response
                    .headers
                    .get_raw(&Name::MIN_EXPIRES)
                    .next()
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(self.expiry * 2);
                if min <= self.asked {
                    let retry = self.backoff();
                    return Some(self.fail(now, 423, "Interval Too Brief", retry));
                }
                self.expiry = min;
                self.request(min).map(Outcome::Send)
            }
            status => {
                let retry = retry_after(response).unwrap_or_else(|| self.backoff());
                Some(self.fail(now, status, &response.reason, retry))
            }
        }
    }
}

/// When to try again after a failure, if the response says: its Retry-After (`120`,
/// `120;duration=60` or `120 (maintenance)`), kept within 1 s to 1 h.
fn retry_after(response: &Response) -> Option<Duration> {
    response
        .headers
        .get_raw(&Name::from("Retry-After"))
        .next()
        .and_then(|v| {
            let digits: String = v.trim().chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<u64>().ok()
        })
        .map(|s| Duration::from_secs(s.clamp(1, 3600)))
}

/// The expiry the registrar granted: our Contact's `expires`, else the Expires header, else
/// what was asked.
fn granted(response: &Response, asked: u32) -> u32 {
    let from_contact = response.headers.get_raw(&Name::CONTACT).find_map(|c| {
        c.split(';')
            .find_map(|p| p.trim().strip_prefix("expires="))
            .and_then(|v| v.trim().parse().ok())
    });
    from_contact
        .or_else(|| {
            response
                .headers
                .get_raw(&Name::EXPIRES)
                .next()
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(asked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{DigestAlgorithm, DigestVerifier, Verdict};
    use std::time::SystemTime;

    fn reg() -> Registration {
        Registration::new(
            "201",
            ("127.0.0.1", 5070),
            ("u201", "Pw-201-secret"),
            TransportKind::Udp,
            "127.0.0.1:5080".parse().unwrap(),
            600,
        )
    }

    #[test]
    fn challenge_then_registered_then_refresh_at_four_fifths() {
        let now = Instant::now();
        let mut r = reg();
        let mut first = r.register().unwrap();
        assert_eq!(r.state(), &State::Registering);
        for alg in [DigestAlgorithm::Sha256, DigestAlgorithm::Md5] {
            let mut v = DigestVerifier::new("office", [7; 32]).with_algorithms(vec![alg]);
            let challenge = v.challenge(
                SystemTime::now(),
                &first,
                [127, 0, 0, 1].into(),
                false,
                false,
                "t",
            );
            let Some(Outcome::Send(second)) = r.on_response(now, &challenge) else {
                panic!("no answer to the challenge");
            };
            assert!(matches!(
                v.verify(
                    SystemTime::now(),
                    &second,
                    [127, 0, 0, 1].into(),
                    false,
                    |u| (u == "u201").then(|| "Pw-201-secret".to_string())
                ),
                Verdict::Authorized { .. }
            ));
            assert_eq!(second.cseq().unwrap().seq, first.cseq().unwrap().seq + 1);
            // A second challenge to the answered request is a refusal (wrong password).
            assert!(matches!(
                r.on_response(now, &challenge),
                Some(Outcome::Failed { status: 401, .. })
            ));
            first = r.register().unwrap();
        }
        let mut ok = first.make_response(200, "OK");
        ok.headers
            .insert(Name::CONTACT, "<sip:201@127.0.0.1:5080>;expires=300");
        assert!(matches!(
            r.on_response(now, &ok),
            Some(Outcome::Registered { expires: 300 })
        ));
        assert_eq!(r.poll_timeout(), Some(now + Duration::from_secs(240)));
        assert!(r.poll_transmit(now + Duration::from_secs(239)).is_none());
        assert!(r.poll_transmit(now + Duration::from_secs(240)).is_some());
    }

    #[test]
    fn interval_too_brief_and_failures_retry() {
        let now = Instant::now();
        let mut r = reg();
        let first = r.register().unwrap();
        let mut brief = first.make_response(423, "Interval Too Brief");
        brief.headers.insert(Name::MIN_EXPIRES, "1200");
        let Some(Outcome::Send(again)) = r.on_response(now, &brief) else {
            panic!("no retry with Min-Expires");
        };
        assert_eq!(
            again
                .headers
                .get_raw(&Name::EXPIRES)
                .next()
                .map(|v| v.as_str()),
            Some("1200")
        );
        assert!(matches!(
            r.on_timeout(now),
            Outcome::Failed { status: 408, .. }
        ));
        assert_eq!(r.poll_timeout(), Some(now + RETRY));
        let bye = r.unregister().unwrap();
        assert!(matches!(
            r.on_response(now, &bye.make_response(200, "OK")),
            Some(Outcome::Unregistered)
        ));
    }

    /// A provider is not hammered: failures in a row wait 30 s, 60 s, 120 s…, up to an hour,
    /// and a 403 stops the registration until it is asked to register again.
    #[test]
    fn failures_back_off_and_a_403_stops() {
        let now = Instant::now();
        let mut r = reg();
        let mut waits = Vec::new();
        for _ in 0..9 {
            let sent = r.register().unwrap();
            r.on_response(now, &sent.make_response(500, "Server Error"));
            waits.push(r.poll_timeout().unwrap() - now);
        }
        let secs: Vec<u64> = waits.iter().map(Duration::as_secs).collect();
        assert_eq!(secs, [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]);
        let sent = r.register().unwrap();
        let outcome = r.on_response(now, &sent.make_response(403, "Forbidden"));
        assert!(matches!(
            outcome,
            Some(Outcome::Failed {
                status: 403,
                retry_in: 0,
                ..
            })
        ));
        assert_eq!(r.poll_timeout(), None, "no retry after a 403");
        assert!(r.poll_transmit(now + Duration::from_secs(86_400)).is_none());
        assert!(matches!(r.state(), State::Stopped { status: 403, .. }));
    }

    #[test]
    fn a_503_retries_after_its_retry_after() {
        let now = Instant::now();
        let mut r = reg();
        let first = r.register().unwrap();
        let mut busy = first.make_response(503, "Service Unavailable");
        busy.headers
            .insert(Name::from("Retry-After"), "5 (maintenance)");
        assert!(matches!(
            r.on_response(now, &busy),
            Some(Outcome::Failed {
                status: 503,
                retry_in: 5,
                ..
            })
        ));
        assert_eq!(r.poll_timeout(), Some(now + Duration::from_secs(5)));
        assert!(r.poll_transmit(now + Duration::from_secs(5)).is_some());
        // Without Retry-After (or with nonsense), the backoff: the second failure in a row.
        let plain = first.make_response(503, "Service Unavailable");
        r.on_response(now, &plain);
        assert_eq!(r.poll_timeout(), Some(now + RETRY * 2));
    }
}
