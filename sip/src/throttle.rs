//! Failed-guess accounting for every place that checks a password (SIP digest, HTTP basic
//! auth), pure and told the time. An address that fails `limit` times is blocked for the
//! block time, and each later block lasts twice the one before (up to a day), so waiting a
//! block out buys a patient guesser little. An account guessed at from many addresses
//! (`ACCOUNT_FACTOR` × the limit) is barred for every address but those the caller trusts
//! for it (where its phone is registered), so nobody can lock the rightful phone out.

use std::collections::HashMap;
use std::net::IpAddr;

/// How many more failures an account takes, from any number of addresses, than one address.
pub const ACCOUNT_FACTOR: u32 = 4;

/// A day: the longest block.
const LONGEST_BLOCK: i64 = 86_400;

/// Entries kept before idle ones are dropped (so a flood of sources cannot grow the tables
/// without end).
const PRUNE_AT: usize = 4096;

/// The limits in force (from the settings, read per request).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Failures from one address before it is blocked.
    pub per_address: u32,
    /// The first block's length, in seconds.
    pub block_seconds: i64,
}

/// Why a request is refused before its password is looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Barred {
    /// Its address used up its guesses.
    Address,
    /// Its account is under attack from many addresses, and this is not one it trusts.
    Account,
}

impl Barred {
    pub fn reason(self) -> &'static str {
        match self {
            Barred::Address => "blocked (retry limit reached)",
            Barred::Account => "station under attack: only its own address may try",
        }
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Failures {
    count: u32,
    blocked_until: i64,
    blocks: u32,
    last: i64,
}

impl Failures {
    /// One more failure at `t`; true when it reached `limit` and started a block.
    fn add(&mut self, t: i64, limit: u32, block_seconds: i64) -> bool {
        self.count += 1;
        self.last = t;
        if self.count < limit {
            return false;
        }
        let factor = 1i64 << self.blocks.min(16);
        self.count = 0;
        self.blocked_until = t + (block_seconds * factor).min(LONGEST_BLOCK);
        self.blocks += 1;
        true
    }

    /// Worth keeping at `t`: blocked, or failed within the last day.
    fn live(&self, t: i64) -> bool {
        self.blocked_until > t || t - self.last < LONGEST_BLOCK
    }
}

/// What one failure did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Outcome {
    /// The address is blocked from now.
    pub address_blocked: bool,
    /// The account is barred to strangers from now.
    pub account_barred: bool,
}

/// Failures by address and by account.
#[derive(Debug, Default)]
pub struct Throttle {
    by_address: HashMap<IpAddr, Failures>,
    by_account: HashMap<String, Failures>,
}

impl Throttle {
    pub fn new() -> Self {
        Self::default()
    }

    /// Is a try for `account` from `ip` at `t` refused unheard? `trusted` says whether `ip`
    /// is one the account's own phone uses.
    pub fn barred(&self, t: i64, ip: IpAddr, account: &str, trusted: bool) -> Option<Barred> {
        let ip = ip.to_canonical();
        if self
            .by_address
            .get(&ip)
            .is_some_and(|f| f.blocked_until > t)
        {
            return Some(Barred::Address);
        }
        let attacked = self
            .by_account
            .get(account)
            .is_some_and(|f| f.blocked_until > t);
        (attacked && !trusted).then_some(Barred::Account)
    }

    /// Counts a failed try for `account` from `ip` at `t`.
    pub fn fail(&mut self, t: i64, ip: IpAddr, account: &str, limits: Limits) -> Outcome {
        if self.by_address.len() + self.by_account.len() > PRUNE_AT {
            self.by_address.retain(|_, f| f.live(t));
            self.by_account.retain(|_, f| f.live(t));
        }
        if self.by_address.len() + self.by_account.len() > PRUNE_AT {
            // Still full: only blocks are kept. (Counting a failure takes a nonce issued to
            // the address, so a spoofed flood cannot make blocked entries.)
            self.by_address.retain(|_, f| f.blocked_until > t);
            self.by_account.retain(|_, f| f.blocked_until > t);
        }
        let address_blocked = self.by_address.entry(ip.to_canonical()).or_default().add(
            t,
            limits.per_address,
            limits.block_seconds,
        );
        let account_barred = self.by_account.entry(account.to_string()).or_default().add(
            t,
            limits.per_address.saturating_mul(ACCOUNT_FACTOR),
            limits.block_seconds,
        );
        Outcome {
            address_blocked,
            account_barred,
        }
    }

    /// A right password from `ip`: its record is cleared.
    pub fn succeeded(&mut self, ip: IpAddr) {
        self.by_address.remove(&ip.to_canonical());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: Limits = Limits {
        per_address: 3,
        block_seconds: 60,
    };

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_address_is_blocked_and_each_block_doubles() {
        let mut t = Throttle::new();
        let a = ip("192.0.2.7");
        let mut now = 1000;
        for block in [60, 120, 240] {
            for n in 1..=3 {
                assert_eq!(t.barred(now, a, "201", false), None);
                assert_eq!(t.fail(now, a, "201", L).address_blocked, n == 3);
            }
            assert_eq!(
                t.barred(now + block - 1, a, "201", true),
                Some(Barred::Address)
            );
            now += block;
        }
        assert_eq!(t.barred(now, a, "201", false), None);
        t.succeeded(a);
        assert_eq!(
            t.fail(now, a, "201", L),
            Outcome::default(),
            "a fresh record"
        );
        // The same address through a dual-stack socket.
        t.fail(now, ip("::ffff:192.0.2.7"), "201", L);
        assert!(t.fail(now, a, "201", L).address_blocked);
    }

    #[test]
    fn an_account_guessed_from_many_addresses_stays_open_to_its_own_phone() {
        let mut t = Throttle::new();
        for i in 0..12 {
            let o = t.fail(0, ip(&format!("198.51.100.{i}")), "201", L);
            assert_eq!(o.account_barred, i == 11);
        }
        assert_eq!(
            t.barred(1, ip("198.51.100.200"), "201", false),
            Some(Barred::Account)
        );
        assert_eq!(t.barred(1, ip("192.168.1.11"), "201", true), None);
        assert_eq!(t.barred(1, ip("198.51.100.200"), "202", false), None);
        assert_eq!(t.barred(61, ip("198.51.100.200"), "201", false), None);
    }

    #[test]
    fn a_flood_of_sources_does_not_grow_the_tables_without_end() {
        let mut t = Throttle::new();
        let blocked = ip("192.0.2.99");
        for _ in 0..3 {
            t.fail(0, blocked, "201", L);
        }
        for i in 0..20_000u32 {
            t.fail(1, IpAddr::from(i.to_be_bytes()), "201", L);
        }
        assert!(t.by_address.len() <= PRUNE_AT + 1, "{}", t.by_address.len());
        assert_eq!(
            t.barred(2, blocked, "201", false),
            Some(Barred::Address),
            "blocks stay"
        );
    }
}
