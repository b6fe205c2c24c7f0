//! Who is logged in to the web admin: admin passwords hashed with Argon2id (memory-hard), the
//! sessions behind the `pbx_admin` cookie (each with its CSRF token), and the throttle that
//! blocks an address after `security.register_retry_limit` wrong passwords in a row for
//! `security.register_block_seconds`, doubling on each block — the SIP registrar's rules,
//! from the same [`sip::throttle`].

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use std::collections::HashMap;
use std::net::IpAddr;
use subtle::ConstantTimeEq;

/// The session cookie's name.
pub const COOKIE: &str = "pbx_admin";
/// A session lasts this long after its last request (seconds).
pub const IDLE: i64 = 30 * 60;
/// And at most this long after the login.
pub const LIFETIME: i64 = 12 * 3600;
/// Shortest admin password.
pub const MIN_PASSWORD: usize = 10;

/// An admin password as stored: an Argon2id PHC string with its own salt.
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    anyhow::ensure!(
        password.chars().count() >= MIN_PASSWORD,
        "the password must be at least {MIN_PASSWORD} characters"
    );
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>())
        .map_err(|e| anyhow::anyhow!("salt: {e}"))?;
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("hashing the password: {e}"))?
        .to_string())
}

/// Does `password` match `stored`? With no stored hash (no such admin) a hash is still
/// checked, so the answer takes as long whether the name exists or not.
pub fn verify_password(stored: Option<&str>, password: &str) -> bool {
    // An Argon2id hash of a random password nobody knows, made once.
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let dummy = DUMMY.get_or_init(|| {
        hash_password(&hex::encode(rand::random::<[u8; 16]>())).unwrap_or_default()
    });
    let exists = stored.is_some();
    let Ok(parsed) = PasswordHash::new(stored.unwrap_or(dummy)) else {
        return false;
    };
    let ok = Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok();
    ok && exists
}

/// A logged-in admin.
#[derive(Debug, Clone)]
pub struct Session {
    pub admin: String,
    /// The token every form that changes something must carry back.
    pub csrf: String,
    started: i64,
    seen: i64,
}

impl Session {
    /// Is `given` this session's CSRF token?
    pub fn csrf_ok(&self, given: &str) -> bool {
        given.len() == self.csrf.len() && bool::from(given.as_bytes().ct_eq(self.csrf.as_bytes()))
    }
}

/// The open sessions, by the cookie's random value.
#[derive(Default)]
pub struct Sessions {
    open: HashMap<String, Session>,
}

fn random_token() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

impl Sessions {
    /// Opens a session for `admin` at `now`: the cookie value.
    pub fn open(&mut self, admin: &str, now: i64) -> String {
        self.open
            .retain(|_, s| now - s.seen < IDLE && now - s.started < LIFETIME);
        let id = random_token();
        self.open.insert(
            id.clone(),
            Session {
                admin: admin.to_string(),
                csrf: random_token(),
                started: now,
                seen: now,
            },
        );
        id
    }

    /// The live session of cookie value `id`, its idle time restarted.
    pub fn get(&mut self, id: &str, now: i64) -> Option<Session> {
        let s = self.open.get_mut(id)?;
        if now - s.seen >= IDLE || now - s.started >= LIFETIME {
            self.open.remove(id);
            return None;
        }
        s.seen = now;
        Some(s.clone())
    }

    pub fn close(&mut self, id: &str) {
        self.open.remove(id);
    }

    /// Ends every session of `admin` (removed, or its password changed elsewhere).
    pub fn close_all_of(&mut self, admin: &str) {
        self.open.retain(|_, s| s.admin != admin);
    }
}

/// The session cookie's value in a request's `Cookie` headers.
pub fn cookie_of(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
}

/// The login throttle: the registrar's rules, counted per address (and per admin name).
#[derive(Default)]
pub struct LoginThrottle {
    throttle: sip::throttle::Throttle,
}

impl LoginThrottle {
    /// Seconds `ip` must wait before trying again, if it is blocked.
    pub fn blocked(&self, now: i64, ip: IpAddr, admin: &str) -> bool {
        self.throttle.barred(now, ip, admin, false).is_some()
    }

    /// A wrong password from `ip`: true when that used up its tries.
    pub fn failed(&mut self, now: i64, ip: IpAddr, admin: &str, limit: u32, block: i64) -> bool {
        self.throttle
            .fail(
                now,
                ip,
                admin,
                sip::throttle::Limits {
                    per_address: limit.max(1),
                    block_seconds: block,
                },
            )
            .address_blocked
    }

    pub fn succeeded(&mut self, ip: IpAddr) {
        self.throttle.succeeded(ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_and_verify() {
        assert!(hash_password("short").is_err());
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password(Some(&h), "correct horse battery"));
        assert!(!verify_password(Some(&h), "correct horse batterY"));
        assert!(!verify_password(None, "correct horse battery"));
        assert!(!verify_password(Some("not a hash"), "x"));
    }

    #[test]
    fn sessions_lapse_when_idle_or_old() {
        let mut s = Sessions::default();
        let id = s.open("alice", 1000);
        let got = s.get(&id, 1000 + IDLE - 1).unwrap();
        assert_eq!(got.admin, "alice");
        assert!(got.csrf_ok(&got.csrf.clone()));
        assert!(!got.csrf_ok(""));
        assert!(s.get(&id, 1000 + 2 * IDLE).is_none());
        let id = s.open("alice", 0);
        let mut t = 0;
        while t + IDLE / 2 < LIFETIME {
            t += IDLE / 2;
            assert!(s.get(&id, t).is_some());
        }
        assert!(s.get(&id, LIFETIME).is_none());
        assert!(s.get("nonsense", 0).is_none());
    }

    #[test]
    fn the_limit_th_wrong_password_blocks_the_address() {
        let mut t = LoginThrottle::default();
        let ip: IpAddr = "192.0.2.9".parse().unwrap();
        for n in 1..=5 {
            assert!(!t.blocked(100, ip, "alice"));
            assert_eq!(t.failed(100, ip, "alice", 5, 60), n == 5);
        }
        assert!(t.blocked(159, ip, "alice"));
        assert!(!t.blocked(160, ip, "alice"));
        let other: IpAddr = "192.0.2.10".parse().unwrap();
        assert!(!t.blocked(100, other, "bob"));
    }

    #[test]
    fn the_cookie_among_others() {
        let mut h = axum::http::HeaderMap::new();
        h.insert("cookie", "a=1; pbx_admin=abc; b=2".parse().unwrap());
        assert_eq!(cookie_of(&h).as_deref(), Some("abc"));
        h.insert("cookie", "pbx_adminx=1".parse().unwrap());
        assert_eq!(cookie_of(&h), None);
    }
}
