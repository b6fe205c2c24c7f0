//! The registrar, pure and told the time: digest authentication against the station
//! database (auth name = user ID, address-of-record user = station number), bindings with
//! expiry, and the OfficeServ protections — the IP whitelist per station, the Register Retry
//! Limit and Register Block Timer per source address, and "Comm Exclusive" (refusals answered
//! `403`, or dropped in silence). An unknown user and a wrong password look the same to the
//! peer; the access log records which it was.

use crate::nat;
use sip::auth::{Denied, DigestAlgorithm, DigestVerifier, Verdict};
use sip::headers::NameAddrHeader;
use sip::throttle::{Limits, Throttle};
use sip::transaction::Peer;
use sip::types::Name;
use sip::types::header::typed::Contact;
use sip::{Request, Response};
use stations::Station;
use stations::db::{Access, Registration};
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

/// Longest registration granted, whatever a phone asks for.
pub const MAX_EXPIRES: u32 = 86_400;

/// The settings the registrar works by.
#[derive(Debug, Clone)]
pub struct Policy {
    pub retry_limit: u32,
    pub block_seconds: i64,
    /// Comm Exclusive "No Response": refused REGISTERs get no answer.
    pub silent: bool,
    pub whitelist: String,
    pub min_expires: u32,
    /// The longest registration granted (OfficeServ SIP Expire Time), and the one given
    /// when a phone asks for none.
    pub default_expires: u32,
    /// The registration granted to a phone behind NAT (OfficeServ NAT Reg Expire Time), so
    /// its re-registrations keep its NAT's pinhole open.
    pub nat_expires: u32,
}

/// Station lookups the registrar needs.
pub trait Directory {
    fn by_number(&self, number: &str) -> Option<Station>;
}

/// What to do with a REGISTER.
#[derive(Debug)]
pub enum Outcome {
    Reply(Response),
    /// Comm Exclusive "No Response": say nothing.
    Silent,
}

/// One REGISTER being handled.
struct Attempt<'a> {
    t: i64,
    source: Peer,
    aor: String,
    request: &'a Request,
    policy: &'a Policy,
    tag: String,
}

/// All registrations, failure counters, and what changed since the driver last asked.
#[derive(Debug)]
pub struct Registrar {
    verifier: DigestVerifier,
    bindings: HashMap<String, Vec<Registration>>,
    /// Failed guesses by address and by station.
    throttle: Throttle,
    changed: Vec<String>,
    access: Vec<Access>,
}

fn unix(now: SystemTime) -> i64 {
    now.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl Registrar {
    pub fn new(realm: &str, key: [u8; 32], algorithms: Vec<DigestAlgorithm>) -> Self {
        Registrar {
            verifier: DigestVerifier::new(realm, key).with_algorithms(algorithms),
            bindings: HashMap::new(),
            throttle: Throttle::new(),
            changed: Vec::new(),
            access: Vec::new(),
        }
    }

    /// Takes back bindings persisted before a restart.
    pub fn restore(&mut self, regs: Vec<Registration>) {
        for r in regs {
            self.bindings.entry(r.aor.clone()).or_default().push(r);
        }
    }

    /// The live bindings of a station.
    pub fn lookup(&self, aor: &str, now: SystemTime) -> Vec<Registration> {
        let t = unix(now);
        self.bindings
            .get(aor)
            .map(|v| v.iter().filter(|r| r.expires_at > t).cloned().collect())
            .unwrap_or_default()
    }

    /// Every station with a live binding.
    pub fn all(&self, now: SystemTime) -> Vec<Registration> {
        let t = unix(now);
        let mut v: Vec<Registration> = self
            .bindings
            .values()
            .flatten()
            .filter(|r| r.expires_at > t)
            .cloned()
            .collect();
        v.sort_by(|a, b| (a.aor.len(), &a.aor).cmp(&(b.aor.len(), &b.aor)));
        v
    }

    /// Has any station a binding registered from `ip` (lapsed or not)?
    pub fn has_source(&self, ip: std::net::IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.bindings.values().flatten().any(|r| {
            crate::nat::source_peer(&r.source).is_some_and(|p| p.addr.ip().to_canonical() == ip)
        })
    }

    /// Drops lapsed bindings.
    pub fn expire(&mut self, now: SystemTime) {
        let t = unix(now);
        for (aor, list) in self.bindings.iter_mut() {
            let before = list.len();
            list.retain(|r| r.expires_at > t);
            if list.len() != before {
                self.changed.push(aor.clone());
            }
        }
    }

    /// Stations whose bindings changed, with their bindings now (to persist).
    pub fn take_changes(&mut self) -> Vec<(String, Vec<Registration>)> {
        let mut aors = std::mem::take(&mut self.changed);
        aors.sort();
        aors.dedup();
        aors.into_iter()
            .map(|a| {
                let list = self.bindings.get(&a).cloned().unwrap_or_default();
                (a, list)
            })
            .collect()
    }

    /// Refusals to write to the access log.
    pub fn take_access(&mut self) -> Vec<Access> {
        std::mem::take(&mut self.access)
    }

    fn refuse(&mut self, at: &Attempt<'_>, reason: &str) -> Outcome {
        self.access.push(Access {
            at: at.t,
            address: at.source.addr.ip().to_string(),
            caller: at.aor.to_string(),
            reason: reason.to_string(),
        });
        if at.policy.silent {
            Outcome::Silent
        } else {
            let mut r = at.request.make_response(403, "Forbidden");
            r.set_to_tag(&at.tag);
            Outcome::Reply(r)
        }
    }

    /// Why a request for station `aor` from `ip` is refused before its credentials are even
    /// looked at: the address used up its guesses, or the station is being guessed at from
    /// many addresses and this is not the one it is registered from (the rightful phone
    /// keeps its way in).
    fn barred(&self, t: i64, ip: IpAddr, aor: &str) -> Option<&'static str> {
        let its_own = self.bindings.get(aor).into_iter().flatten().any(|r| {
            r.expires_at > t && nat::source_peer(&r.source).is_some_and(|p| p.addr.ip() == ip)
        });
        self.throttle
            .barred(t, ip, aor, its_own)
            .map(sip::throttle::Barred::reason)
    }

    /// Counts a failed guess from `ip` at station `aor` (every authentication path: REGISTER,
    /// INVITE, SUBSCRIBE), logs it, and says whether that used up a limit.
    fn failed(&mut self, t: i64, ip: IpAddr, aor: &str, reason: &str, policy: &Policy) -> bool {
        let limits = Limits {
            per_address: policy.retry_limit,
            block_seconds: policy.block_seconds,
        };
        let sip::throttle::Outcome {
            address_blocked,
            account_barred: account_blocked,
        } = self.throttle.fail(t, ip, aor, limits);
        let reason = match (address_blocked, account_blocked) {
            (true, _) => format!("{reason}; retry limit reached, blocked"),
            (false, true) => {
                format!("{reason}; station under attack, only its own address may try")
            }
            _ => reason.to_string(),
        };
        self.access.push(Access {
            at: t,
            address: ip.to_string(),
            caller: aor.to_string(),
            reason,
        });
        address_blocked
    }

    /// Authenticates an INVITE (or SUBSCRIBE) from `source` as coming from the station its
    /// From names: `Ok` with the station number, or the response to send — a `407`
    /// challenge, or `403` for wrong credentials (the same for an unknown station). Failures
    /// count as a REGISTER's do.
    pub fn authorize_invite(
        &mut self,
        now: SystemTime,
        request: &Request,
        source: Peer,
        policy: &Policy,
        dir: &impl Directory,
    ) -> Result<String, Response> {
        let t = unix(now);
        let ip = source.addr.ip().to_canonical();
        let caller = request.header_user(Name::FROM).unwrap_or_default();
        let tag = format!("{:x}", rand::random::<u64>());
        let forbidden = |tag: &str| {
            let mut r = request.make_response(403, "Forbidden");
            r.set_to_tag(tag);
            r
        };
        if let Some(why) = self.barred(t, ip, &caller) {
            self.access.push(Access {
                at: t,
                address: ip.to_string(),
                caller: caller.clone(),
                reason: format!("{} {why}", request.method),
            });
            return Err(forbidden(&tag));
        }
        let station = dir.by_number(&caller);
        match self.verifier.verify(now, request, ip, true, |user| {
            station
                .as_ref()
                .filter(|s| s.user_id == user)
                .map(|s| s.password.clone())
        }) {
            Verdict::Authorized { .. } if station.is_some() => Ok(caller),
            Verdict::Stale => Err(self.verifier.challenge(now, request, ip, true, true, &tag)),
            Verdict::Denied(Denied::NoCredentials | Denied::BadNonce | Denied::WrongRealm) => {
                Err(self.verifier.challenge(now, request, ip, false, true, &tag))
            }
            _ => {
                let reason = format!("{} with wrong credentials", request.method);
                self.failed(t, ip, &caller, &reason, policy);
                Err(forbidden(&tag))
            }
        }
    }

    /// Handles a REGISTER from `source`.
    pub fn handle(
        &mut self,
        now: SystemTime,
        request: &Request,
        source: Peer,
        policy: &Policy,
        dir: &impl Directory,
    ) -> Outcome {
        let t = unix(now);
        let ip = source.addr.ip().to_canonical();
        let tag = format!("{:x}", rand::random::<u64>());
        let aor = request.header_user(Name::TO).unwrap_or_default();
        let at = Attempt {
            t,
            source,
            aor: aor.clone(),
            request,
            policy,
            tag: tag.clone(),
        };
        if let Some(why) = self.barred(t, ip, &aor) {
            return self.refuse(&at, why);
        }
        let station = dir.by_number(&aor);
        if let (Some(s), IpAddr::V4(v4)) = (&station, ip)
            && s.use_whitelist
            && !stations::settings::whitelisted(&policy.whitelist, v4)
        {
            return self.refuse(&at, "address not in the IP whitelist");
        }
        let verdict = self.verifier.verify(now, request, ip, false, |user| {
            station
                .as_ref()
                .filter(|s| s.user_id == user)
                .map(|s| s.password.clone())
        });
        match verdict {
            Verdict::Authorized { .. } => {
                self.throttle.succeeded(ip);
                let Some(station) = station else {
                    return Outcome::Reply(request.make_response(404, "Not Found"));
                };
                self.bind(t, request, source, policy, &station, &tag)
            }
            Verdict::Stale => {
                Outcome::Reply(self.verifier.challenge(now, request, ip, true, false, &tag))
            }
            Verdict::Denied(Denied::NoCredentials | Denied::BadNonce | Denied::WrongRealm) => {
                Outcome::Reply(
                    self.verifier
                        .challenge(now, request, ip, false, false, &tag),
                )
            }
            Verdict::Denied(why) => {
                let reason = match why {
                    Denied::UnknownUser => "unknown user",
                    Denied::WrongPassword => "wrong password",
                    Denied::Replay => "replayed credentials",
                    _ => "bad credentials",
                };
                if self.failed(t, ip, &aor, reason, policy) {
                    // The access log has the row already; the answer follows Comm Exclusive.
                    return if policy.silent {
                        Outcome::Silent
                    } else {
                        let mut r = request.make_response(403, "Forbidden");
                        r.set_to_tag(&tag);
                        Outcome::Reply(r)
                    };
                }
                Outcome::Reply(
                    self.verifier
                        .challenge(now, request, ip, false, false, &tag),
                )
            }
        }
    }

    fn bind(
        &mut self,
        t: i64,
        request: &Request,
        source: Peer,
        policy: &Policy,
        station: &Station,
        tag: &str,
    ) -> Outcome {
        let aor = station.number.as_str();
        let check = crate::nat::NatCheck::of(station);
        let header_expires: Option<u32> = request
            .headers
            .get_raw(&Name::EXPIRES)
            .next()
            .and_then(|v| v.trim().parse().ok());
        let raw: Vec<String> = request
            .headers
            .get_raw(&Name::CONTACT)
            .map(|v| v.to_string())
            .collect();
        let list = self.bindings.entry(aor.to_string()).or_default();
        if raw.iter().any(|c| c.trim() == "*") {
            if header_expires != Some(0) {
                return Outcome::Reply(
                    request.make_response(400, "Bad Request (* needs Expires: 0)"),
                );
            }
            list.clear();
            self.changed.push(aor.to_string());
        } else {
            let contacts: Vec<Contact> = raw
                .iter()
                .flat_map(|v| {
                    sip::validate::split_list(v)
                        .into_iter()
                        .map(str::to_string)
                        .collect::<Vec<_>>()
                })
                .filter_map(|c| {
                    NameAddrHeader::parse(Name::CONTACT, c.trim())
                        .ok()
                        .map(|h| h.value)
                })
                .collect();
            let call_id = request
                .headers
                .get_raw(&Name::CALL_ID)
                .next()
                .map(|c| c.to_string())
                .unwrap_or_default();
            let cseq = request.cseq().map_or(0, |c| c.seq);
            let ua = request
                .headers
                .get_raw(&Name::USER_AGENT)
                .next()
                .map(|c| c.to_string())
                .unwrap_or_default();
            let source_text = format!(
                "{}:{}",
                source.transport.via_name().to_ascii_lowercase(),
                source.addr
            );
            for c in contacts {
                let requested = c
                    .params
                    .get_val("expires")
                    .and_then(|v| v.parse().ok())
                    .or(header_expires)
                    .unwrap_or(policy.default_expires);
                if requested != 0 && requested < policy.min_expires {
                    let mut r = request.make_response(423, "Interval Too Brief");
                    r.set_to_tag(tag);
                    r.headers
                        .insert(Name::MIN_EXPIRES, policy.min_expires.to_string());
                    return Outcome::Reply(r);
                }
                let uri = {
                    use sip::types::print::AppendCtx;
                    c.uri.uri.default_print_ctx().to_string()
                };
                let instance = c
                    .params
                    .get_val("+sip.instance")
                    .map(|v| v.trim_matches('"').to_string());
                if requested == 0 {
                    list.retain(|r| r.contact != uri);
                    continue;
                }
                let mut reg = Registration {
                    aor: aor.to_string(),
                    contact: uri,
                    expires_at: 0,
                    source: source_text.clone(),
                    transport: source.transport.via_name().to_string(),
                    user_agent: ua.clone(),
                    call_id: call_id.clone(),
                    cseq,
                    instance: instance.clone().unwrap_or_default(),
                };
                let cap = if crate::nat::behind_nat(&reg, check) {
                    policy.nat_expires
                } else {
                    policy.default_expires
                };
                let granted = requested.min(cap).min(MAX_EXPIRES);
                reg.expires_at = t + i64::from(granted);
                // A phone that rebooted registers again from the same address with a new
                // Contact or Call-ID: its old binding goes, so only the phone as it is now
                // rings. So does any binding of the same instance (RFC 5626).
                let same_phone = |r: &Registration| {
                    r.contact == reg.contact
                        || nat::source_peer(&r.source)
                            .is_some_and(|p| p.addr.ip() == source.addr.ip())
                        || (!reg.instance.is_empty() && r.instance == reg.instance)
                };
                list.retain(|r| !same_phone(r));
                list.push(reg);
            }
            self.changed.push(aor.to_string());
        }
        let mut ok = request.make_response(200, "OK");
        ok.set_to_tag(tag);
        for r in self
            .bindings
            .get(aor)
            .into_iter()
            .flatten()
            .filter(|r| r.expires_at > t)
        {
            ok.headers.insert(
                Name::CONTACT,
                format!("<{}>;expires={}", r.contact, r.expires_at - t),
            );
        }
        Outcome::Reply(ok)
    }
}

#[cfg(test)]
mod tests;
