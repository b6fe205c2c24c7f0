//! One line's registration (RFC 3261 §10), as a pure state machine told the time: it says
//! which REGISTER to send, reads the answers — a 401/407 is answered once with digest
//! credentials (MD5 or SHA-256, whichever the registrar prefers), 423 raises the expiry to
//! Min-Expires — and says when to refresh (at 80% of the granted time) or, after a failure,
//! when to try again (after the registrar's Retry-After, RFC 3261 §21.5.4, if it gave one).

use sip::auth::DigestClient;
use sip::transaction::TransportKind;
use sip::types::Name;
use sip::{Method, Request, Response, build};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// After a failure, the next attempt comes this much later.
const RETRY: Duration = Duration::from_secs(30);

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
        /// Seconds until the next attempt.
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
        self.fail(
            now,
            408,
            "Request Timeout (no answer from the registrar)",
            RETRY,
        )
    }

    fn fail(&mut self, now: Instant, status: u16, reason: &str, retry: Duration) -> Outcome {
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
                    return Some(self.fail(
                        now,
                        response.status,
                        "no digest challenge it can answer",
                        RETRY,
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
                    return Some(self.fail(now, 423, "Interval Too Brief", RETRY));
                }
                self.expiry = min;
                self.request(min).map(Outcome::Send)
            }
            status => Some(self.fail(now, status, &response.reason, retry_after(response))),
        }
    }
}

/// When to try again after a failure: the response's Retry-After (`120`, `120;duration=60`
/// or `120 (maintenance)`), kept within 1 s to 1 h, else [`RETRY`].
fn retry_after(response: &Response) -> Duration {
    response
        .headers
        .get_raw(&Name::from("Retry-After"))
        .next()
        .and_then(|v| {
            let digits: String = v.trim().chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<u64>().ok()
        })
        .map_or(RETRY, |s| Duration::from_secs(s.clamp(1, 3600)))
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
    use sip::auth::{DigestAlgorithm, DigestVerifier, Verdict};
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
        // Without Retry-After (or with nonsense), the usual wait.
        let plain = first.make_response(503, "Service Unavailable");
        r.on_response(now, &plain);
        assert_eq!(r.poll_timeout(), Some(now + RETRY));
    }
}
