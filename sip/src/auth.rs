//! Digest authentication (RFC 2617, RFC 7616, RFC 8760 for SIP): the verifier a registrar or
//! proxy runs, and the client's answer to a `401`/`407`.
//!
//! [`DigestVerifier`] is pure and told the time. Its nonces are self-validating —
//! `time.random.HMAC(key, time.random)` — so any nonce it did not issue is refused, and a
//! nonce older than the lifetime yields [`Verdict::Stale`] (the client retries at once with
//! the fresh nonce of a `stale=true` challenge) — but only when the digest itself was right.
//! With `qop=auth` every nonce-count must be higher than the last one seen for that nonce,
//! so a captured request cannot be replayed. Digests are compared in constant time, and an
//! unknown user costs the same work as a wrong password: callers answer both alike.

use crate::message::{Request, Response};
use ezk_sip_types::Name;
use ezk_sip_types::header::HeaderParse;
use ezk_sip_types::header::typed::{
    Algorithm, AlgorithmValue, AuthChallenge, AuthResponse, DigestChallenge, QopOption, Username,
};
use hmac::{Hmac, Mac};
use md5::Md5;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use subtle::ConstantTimeEq;

/// Supported digest algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestAlgorithm {
    Md5,
    Sha256,
}

impl DigestAlgorithm {
    fn hash(self, data: &str) -> String {
        match self {
            DigestAlgorithm::Md5 => hex::encode(Md5::digest(data.as_bytes())),
            DigestAlgorithm::Sha256 => hex::encode(Sha256::digest(data.as_bytes())),
        }
    }

    fn name(self) -> &'static str {
        match self {
            DigestAlgorithm::Md5 => "MD5",
            DigestAlgorithm::Sha256 => "SHA-256",
        }
    }

    fn from_ezk(a: &Algorithm) -> Option<Self> {
        match a {
            Algorithm::AlgorithmValue(AlgorithmValue::MD5) => Some(DigestAlgorithm::Md5),
            Algorithm::AlgorithmValue(AlgorithmValue::SHA256) => Some(DigestAlgorithm::Sha256),
            _ => None,
        }
    }
}

/// Why a request was not authorized. Callers must not tell the peer which one it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    NoCredentials,
    Malformed,
    WrongRealm,
    /// A nonce we did not issue (or tampered with).
    BadNonce,
    UnknownAlgorithm,
    UnknownUser,
    WrongPassword,
    /// A nonce-count not above the last one seen.
    Replay,
}

/// The verifier's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Authorized {
        user: String,
    },
    /// Right digest, expired nonce: challenge again with `stale=true`.
    Stale,
    Denied(Denied),
}

/// Server side of digest authentication for one realm.
#[derive(Debug)]
pub struct DigestVerifier {
    realm: String,
    key: [u8; 32],
    lifetime: Duration,
    algorithms: Vec<DigestAlgorithm>,
    /// Highest nonce-count seen per nonce, with the nonce's issue time for pruning.
    counts: HashMap<String, (u64, u32)>,
    /// Size of `counts` at which stale entries are next pruned (doubles with the live set,
    /// so pruning stays amortized O(1) per request).
    prune_at: usize,
}

type HmacSha256 = Hmac<Sha256>;

fn unix(now: SystemTime) -> u64 {
    now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl DigestVerifier {
    /// A verifier for `realm`; `key` signs nonces (random per process, or persisted).
    pub fn new(realm: &str, key: [u8; 32]) -> Self {
        DigestVerifier {
            realm: realm.to_string(),
            key,
            lifetime: Duration::from_secs(300),
            algorithms: vec![DigestAlgorithm::Sha256, DigestAlgorithm::Md5],
            counts: HashMap::new(),
            prune_at: 4096,
        }
    }

    /// How long a nonce stays fresh (default 300 s).
    pub fn with_lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = lifetime;
        self
    }

    /// Which algorithms to offer, most preferred first (default SHA-256, MD5 — RFC 8760
    /// §2.4 has the server list SHA-256 first; MD5 keeps old phones working).
    pub fn with_algorithms(mut self, algorithms: Vec<DigestAlgorithm>) -> Self {
        self.algorithms = algorithms;
        self
    }

    pub fn realm(&self) -> &str {
        &self.realm
    }

    fn mac(&self, body: &str) -> String {
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&self.key).expect("HMAC takes any key");
        mac.update(body.as_bytes());
        hex::encode(&mac.finalize().into_bytes()[..16])
    }

    /// A new nonce issued at `now` to `source`: it is good only for requests from there, so
    /// a nonce fetched elsewhere cannot be spent in requests forged "from" a phone's address.
    pub fn nonce(&self, now: SystemTime, source: IpAddr) -> String {
        let body = format!("{:x}.{:016x}", unix(now), rand::random::<u64>());
        let mac = self.mac(&format!("{body}|{}", source.to_canonical()));
        format!("{body}.{mac}")
    }

    /// Issue time of a nonce we made for `source`, or None if we did not make it for there.
    fn nonce_time(&self, nonce: &str, source: IpAddr) -> Option<u64> {
        let (body, mac) = nonce.rsplit_once('.')?;
        let signed = format!("{body}|{}", source.to_canonical());
        if !bool::from(self.mac(&signed).as_bytes().ct_eq(mac.as_bytes())) {
            return None;
        }
        u64::from_str_radix(body.split('.').next()?, 16).ok()
    }

    /// The `WWW-Authenticate`/`Proxy-Authenticate` values: one per algorithm, one nonce.
    pub fn challenge_values(&self, now: SystemTime, source: IpAddr, stale: bool) -> Vec<String> {
        let nonce = self.nonce(now, source);
        self.algorithms
            .iter()
            .map(|a| {
                format!(
                    "Digest realm=\"{}\", nonce=\"{nonce}\", algorithm={}, qop=\"auth\"{}",
                    self.realm,
                    a.name(),
                    if stale { ", stale=true" } else { "" }
                )
            })
            .collect()
    }

    /// A `401` (or `407` for a proxy) challenging `request`, which came from `source`.
    pub fn challenge(
        &self,
        now: SystemTime,
        request: &Request,
        source: IpAddr,
        stale: bool,
        proxy: bool,
        to_tag: &str,
    ) -> Response {
        let (status, reason, name) = if proxy {
            (
                407,
                "Proxy Authentication Required",
                Name::PROXY_AUTHENTICATE,
            )
        } else {
            (401, "Unauthorized", Name::WWW_AUTHENTICATE)
        };
        let mut r = request.make_response(status, reason);
        r.set_to_tag(to_tag);
        for v in self.challenge_values(now, source, stale) {
            r.headers.insert(name.clone(), v);
        }
        r
    }

    /// Checks the credentials `request` (from `source`) carries for this realm. `password`
    /// looks up the password of an auth user name (None: no such user). A nonce issued to
    /// another address is [`Denied::BadNonce`]: a new challenge, not a failed guess.
    pub fn verify(
        &mut self,
        now: SystemTime,
        request: &Request,
        source: IpAddr,
        proxy: bool,
        password: impl FnOnce(&str) -> Option<String>,
    ) -> Verdict {
        let name = if proxy {
            Name::PROXY_AUTHORIZATION
        } else {
            Name::AUTHORIZATION
        };
        let mut values = request.headers.get_raw(&name).peekable();
        if values.peek().is_none() {
            return Verdict::Denied(Denied::NoCredentials);
        }
        let mut ours = None;
        for v in values {
            let Ok((_, AuthResponse::Digest(d))) = AuthResponse::parse(v.as_ref(), v.as_str())
            else {
                continue;
            };
            if d.realm.as_str() == self.realm {
                ours = Some(d);
                break;
            }
        }
        let Some(d) = ours else {
            return Verdict::Denied(Denied::WrongRealm);
        };
        let Some(algorithm) = DigestAlgorithm::from_ezk(&d.algorithm) else {
            return Verdict::Denied(Denied::UnknownAlgorithm);
        };
        let Some(issued) = self.nonce_time(&d.nonce, source) else {
            return Verdict::Denied(Denied::BadNonce);
        };
        let user = match &d.username {
            Username::Username(u) | Username::UsernameNonASCII(u) => u.to_string(),
        };
        let qop = d.qop_response.as_ref().map(|q| {
            (
                format!("{:08x}", q.nc),
                q.cnonce.to_string(),
                q.nc,
                q.qop.clone(),
            )
        });
        if qop.as_ref().is_some_and(|q| q.3 != QopOption::Auth) {
            return Verdict::Denied(Denied::Malformed);
        }
        // Unknown users get a digest computed against a throw-away secret: same work.
        let (secret, known) = match password(&user) {
            Some(p) => (p, true),
            None => (format!("{:x}", rand::random::<u128>()), false),
        };
        let expected = digest(
            algorithm,
            &DigestInput {
                user: &user,
                realm: &self.realm,
                password: &secret,
                method: request.method.as_str(),
                uri: &d.uri,
                nonce: &d.nonce,
                qop: qop
                    .as_ref()
                    .map(|(nc, cnonce, _, _)| (nc.as_str(), cnonce.as_str())),
            },
        );
        let matches: bool = expected
            .as_bytes()
            .ct_eq(d.response.to_ascii_lowercase().as_bytes())
            .into();
        if !known {
            return Verdict::Denied(Denied::UnknownUser);
        }
        if !matches {
            return Verdict::Denied(Denied::WrongPassword);
        }
        let now_s = unix(now);
        if now_s.saturating_sub(issued) > self.lifetime.as_secs() || issued > now_s + 60 {
            return Verdict::Stale;
        }
        if let Some((_, _, nc, _)) = qop {
            let last = self.counts.get(d.nonce.as_str()).map_or(0, |(_, n)| *n);
            if nc <= last {
                return Verdict::Denied(Denied::Replay);
            }
            self.prune(now_s);
            self.counts.insert(d.nonce.to_string(), (issued, nc));
        }
        Verdict::Authorized { user }
    }

    /// Forgets nonce-counts of nonces that can only be stale now.
    fn prune(&mut self, now_s: u64) {
        if self.counts.len() < self.prune_at {
            return;
        }
        let lifetime = self.lifetime.as_secs();
        self.counts
            .retain(|_, (issued, _)| now_s.saturating_sub(*issued) <= lifetime);
        self.prune_at = (self.counts.len() * 2).max(4096);
    }
}

struct DigestInput<'a> {
    user: &'a str,
    realm: &'a str,
    password: &'a str,
    method: &'a str,
    uri: &'a str,
    nonce: &'a str,
    /// nc (8 hex digits) and cnonce, for qop=auth.
    qop: Option<(&'a str, &'a str)>,
}

fn digest(a: DigestAlgorithm, i: &DigestInput<'_>) -> String {
    let ha1 = a.hash(&format!("{}:{}:{}", i.user, i.realm, i.password));
    let ha2 = a.hash(&format!("{}:{}", i.method, i.uri));
    match i.qop {
        Some((nc, cnonce)) => a.hash(&format!("{ha1}:{}:{nc}:{cnonce}:auth:{ha2}", i.nonce)),
        None => a.hash(&format!("{ha1}:{}:{ha2}", i.nonce)),
    }
}

/// Client side: the credentials a UA keeps for answering challenges.
#[derive(Debug, Clone)]
pub struct DigestClient {
    pub user: String,
    pub password: String,
    nc: u32,
}

impl DigestClient {
    pub fn new(user: &str, password: &str) -> Self {
        DigestClient {
            user: user.to_string(),
            password: password.to_string(),
            nc: 0,
        }
    }

    /// Adds `Authorization` (for a 401) or `Proxy-Authorization` (for a 407) answering the
    /// strongest supported challenge in `challenge` to `request`. The caller then bumps the
    /// CSeq and sends it with a new branch. False when no challenge could be answered.
    pub fn authorize(&mut self, request: &mut Request, challenge: &Response) -> bool {
        let (from, to) = if challenge.status == 407 {
            (Name::PROXY_AUTHENTICATE, Name::PROXY_AUTHORIZATION)
        } else {
            (Name::WWW_AUTHENTICATE, Name::AUTHORIZATION)
        };
        let mut best: Option<(DigestAlgorithm, DigestChallenge)> = None;
        for v in challenge.headers.get_raw(&from) {
            if let Ok((_, AuthChallenge::Digest(c))) = AuthChallenge::parse(v.as_ref(), v.as_str())
                && let Some(a) = DigestAlgorithm::from_ezk(&c.algorithm)
                && best
                    .as_ref()
                    .is_none_or(|(b, _)| *b == DigestAlgorithm::Md5)
            {
                best = Some((a, c));
            }
        }
        let Some((algorithm, c)) = best else {
            return false;
        };
        let uri = request.uri.to_string();
        let use_qop = c.qop.contains(&QopOption::Auth);
        self.nc += 1;
        let nc = format!("{:08x}", self.nc);
        let cnonce = format!("{:016x}", rand::random::<u64>());
        let response = digest(
            algorithm,
            &DigestInput {
                user: &self.user,
                realm: &c.realm,
                password: &self.password,
                method: request.method.as_str(),
                uri: &uri,
                nonce: &c.nonce,
                qop: use_qop.then_some((nc.as_str(), cnonce.as_str())),
            },
        );
        let mut value = format!(
            "Digest username=\"{}\", realm=\"{}\", nonce=\"{}\", uri=\"{uri}\", response=\"{response}\", algorithm={}",
            self.user,
            c.realm,
            c.nonce,
            algorithm.name()
        );
        if use_qop {
            value.push_str(&format!(", qop=auth, nc={nc}, cnonce=\"{cnonce}\""));
        }
        if let Some(opaque) = &c.opaque {
            value.push_str(&format!(", opaque=\"{opaque}\""));
        }
        request.headers.remove(&to);
        request.headers.insert(to, value);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build;
    use crate::method::Method;
    use crate::transaction::TransportKind;

    fn register() -> Request {
        build::request(
            Method::Register,
            "sip:127.0.0.1",
            "sip:201@127.0.0.1",
            "sip:201@127.0.0.1",
            TransportKind::Udp,
            "127.0.0.1:5070".parse().unwrap(),
        )
        .unwrap()
    }

    const ME: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    fn pw(user: &str) -> Option<String> {
        (user == "u201").then(|| "s3cret-pass".to_string())
    }

    fn verifier() -> DigestVerifier {
        DigestVerifier::new("office", [7; 32])
    }

    #[test]
    fn rfc2617_known_answer() {
        // RFC 2617 §3.5 example (HTTP, MD5, qop=auth).
        let r = digest(
            DigestAlgorithm::Md5,
            &DigestInput {
                user: "Mufasa",
                realm: "testrealm@host.com",
                password: "Circle Of Life",
                method: "GET",
                uri: "/dir/index.html",
                nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093",
                qop: Some(("00000001", "0a4f113b")),
            },
        );
        assert_eq!(r, "6629fae49393a05397450978507c4ef1");
    }

    #[test]
    fn rfc7616_sha256_known_answer() {
        // RFC 7616 §3.9.1 example (SHA-256).
        let r = digest(
            DigestAlgorithm::Sha256,
            &DigestInput {
                user: "Mufasa",
                realm: "http-auth@example.org",
                password: "Circle of Life",
                method: "GET",
                uri: "/dir/index.html",
                nonce: "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
                qop: Some(("00000001", "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ")),
            },
        );
        assert_eq!(
            r,
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
    }

    #[test]
    fn challenge_answer_verify_for_both_algorithms() {
        let now = SystemTime::now();
        for algorithms in [vec![DigestAlgorithm::Sha256], vec![DigestAlgorithm::Md5]] {
            let mut v = verifier().with_algorithms(algorithms);
            let mut req = register();
            assert_eq!(
                v.verify(now, &req, ME, false, pw),
                Verdict::Denied(Denied::NoCredentials)
            );
            let challenge = v.challenge(now, &req, ME, false, false, "t");
            let mut client = DigestClient::new("u201", "s3cret-pass");
            assert!(client.authorize(&mut req, &challenge));
            assert_eq!(
                v.verify(now, &req, ME, false, pw),
                Verdict::Authorized {
                    user: "u201".into()
                }
            );
            // The same request again is a replay (nonce-count not increased).
            assert_eq!(
                v.verify(now, &req, ME, false, pw),
                Verdict::Denied(Denied::Replay)
            );
            // The next request with a higher nc passes.
            assert!(client.authorize(&mut req, &challenge));
            assert!(matches!(
                v.verify(now, &req, ME, false, pw),
                Verdict::Authorized { .. }
            ));
        }
    }

    #[test]
    fn wrong_password_unknown_user_forged_nonce() {
        let now = SystemTime::now();
        let mut v = verifier();
        let req = register();
        let challenge = v.challenge(now, &req, ME, false, false, "t");
        let mut bad = req.clone();
        DigestClient::new("u201", "guess").authorize(&mut bad, &challenge);
        assert_eq!(
            v.verify(now, &bad, ME, false, pw),
            Verdict::Denied(Denied::WrongPassword)
        );
        let mut ghost = req.clone();
        DigestClient::new("ghost", "s3cret-pass").authorize(&mut ghost, &challenge);
        assert_eq!(
            v.verify(now, &ghost, ME, false, pw),
            Verdict::Denied(Denied::UnknownUser)
        );
        // A nonce signed with another key is refused.
        let other =
            DigestVerifier::new("office", [8; 32]).challenge(now, &req, ME, false, false, "t");
        let mut forged = req.clone();
        DigestClient::new("u201", "s3cret-pass").authorize(&mut forged, &other);
        assert_eq!(
            v.verify(now, &forged, ME, false, pw),
            Verdict::Denied(Denied::BadNonce)
        );
    }

    #[test]
    fn expired_nonce_is_stale_only_with_the_right_password() {
        let t0 = SystemTime::now();
        let mut v = verifier().with_lifetime(Duration::from_secs(30));
        let req = register();
        let challenge = v.challenge(t0, &req, ME, false, false, "t");
        let later = t0 + Duration::from_secs(31);
        let mut good = req.clone();
        DigestClient::new("u201", "s3cret-pass").authorize(&mut good, &challenge);
        assert_eq!(v.verify(later, &good, ME, false, pw), Verdict::Stale);
        let mut bad = req.clone();
        DigestClient::new("u201", "nope").authorize(&mut bad, &challenge);
        assert_eq!(
            v.verify(later, &bad, ME, false, pw),
            Verdict::Denied(Denied::WrongPassword)
        );
        let fresh = v.challenge(later, &req, ME, true, false, "t");
        assert!(
            fresh
                .headers
                .get_raw(&Name::WWW_AUTHENTICATE)
                .all(|h| h.contains("stale=true"))
        );
    }

    #[test]
    fn a_nonce_is_good_only_from_where_it_was_issued() {
        let now = SystemTime::now();
        let mut v = verifier();
        let req = register();
        let elsewhere: IpAddr = "192.168.77.66".parse().unwrap();
        let challenge = v.challenge(now, &req, elsewhere, false, false, "t");
        let mut forged = req.clone();
        DigestClient::new("u201", "guess").authorize(&mut forged, &challenge);
        // Spent "from" the phone's address: not a failed guess, just no nonce of ours.
        assert_eq!(
            v.verify(now, &forged, ME, false, pw),
            Verdict::Denied(Denied::BadNonce)
        );
        let mapped: IpAddr = "::ffff:192.168.77.66".parse().unwrap();
        assert_eq!(
            v.verify(now, &forged, mapped, false, pw),
            Verdict::Denied(Denied::WrongPassword),
            "the same address seen through a dual-stack socket"
        );
    }

    #[test]
    fn proxy_challenge_uses_407_headers() {
        let now = SystemTime::now();
        let mut v = verifier();
        let mut req = register();
        let c = v.challenge(now, &req, ME, false, true, "t");
        assert_eq!(c.status, 407);
        DigestClient::new("u201", "s3cret-pass").authorize(&mut req, &c);
        assert!(req.headers.contains(&Name::PROXY_AUTHORIZATION));
        assert!(matches!(
            v.verify(now, &req, ME, true, pw),
            Verdict::Authorized { .. }
        ));
    }
}
