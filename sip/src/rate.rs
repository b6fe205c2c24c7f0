//! Per-address message budgets, pure and told the time: a token bucket for each source
//! address, so that one address (or fifty) sending tens of thousands of datagrams a second
//! gets its budget through and no more, and every other address keeps its own. The table is
//! bounded: when it is full, idle addresses are forgotten, and if none is idle, new addresses
//! share one bucket — a flood from more addresses than the table holds then competes only
//! with itself, not with the addresses already known.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Addresses tracked at once.
const TABLE: usize = 8192;

/// What one address may send: `per_second` messages on average, `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageRate {
    pub per_second: u32,
    pub burst: u32,
}

impl MessageRate {
    /// A budget of `per_second` with twice that as its burst (a phone's REGISTER, SUBSCRIBE
    /// and NOTIFY after a reboot come together).
    pub fn per_second(per_second: u32) -> Self {
        MessageRate {
            per_second,
            burst: per_second.saturating_mul(2),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The budgets of every address heard from lately.
#[derive(Debug)]
pub struct RateLimiter {
    rate: MessageRate,
    table: HashMap<IpAddr, Bucket>,
    /// Shared by new addresses while the table is full of busy ones.
    overflow: Option<Bucket>,
    dropped: u64,
}

impl RateLimiter {
    pub fn new(rate: MessageRate) -> Self {
        RateLimiter {
            rate,
            table: HashMap::new(),
            overflow: None,
            dropped: 0,
        }
    }

    /// May a message from `ip`, arriving at `now`, be handled? Spends one token if so.
    pub fn admit(&mut self, now: Instant, ip: IpAddr) -> bool {
        let rate = self.rate;
        if !self.table.contains_key(&ip) && self.table.len() >= TABLE {
            self.forget_idle(now);
        }
        let fresh = Bucket {
            tokens: f64::from(rate.burst),
            at: now,
        };
        let bucket = if self.table.len() < TABLE || self.table.contains_key(&ip) {
            self.table.entry(ip).or_insert(fresh)
        } else {
            self.overflow.get_or_insert(fresh)
        };
        let ok = take(bucket, now, rate);
        if !ok {
            self.dropped += 1;
        }
        ok
    }

    /// The budget in force.
    pub fn rate(&self) -> MessageRate {
        self.rate
    }

    /// Messages refused so far.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Addresses tracked now.
    pub fn tracked(&self) -> usize {
        self.table.len()
    }

    /// Forgets addresses whose bucket has refilled: they would start full anyway.
    fn forget_idle(&mut self, now: Instant) {
        let rate = self.rate;
        let refill =
            Duration::from_secs_f64(f64::from(rate.burst) / f64::from(rate.per_second.max(1)));
        self.table
            .retain(|_, b| now.saturating_duration_since(b.at) < refill);
    }
}

/// Refills `b` for the time since it was last used, then spends a token if there is one.
fn take(b: &mut Bucket, now: Instant, rate: MessageRate) -> bool {
    let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
    b.tokens = (b.tokens + elapsed * f64::from(rate.per_second)).min(f64::from(rate.burst));
    b.at = now;
    if b.tokens >= 1.0 {
        b.tokens -= 1.0;
        true
    } else {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u32) -> IpAddr {
        IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + n))
    }

    #[test]
    fn an_address_gets_its_burst_then_its_rate() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(MessageRate::per_second(50));
        let first = (0..1000).filter(|_| r.admit(t0, ip(1))).count();
        assert_eq!(first, 100, "the burst");
        // Ten seconds of 600 messages a second: 50 a second get through.
        let mut through = 0;
        for ms in 0..10_000u64 {
            let now = t0 + Duration::from_millis(ms + 1);
            through += (0..3).filter(|_| r.admit(now, ip(1))).count();
            if ms % 5 == 0 {
                through += (0..3).filter(|_| r.admit(now, ip(1))).count();
            }
        }
        assert!((499..=501).contains(&through), "{through}");
        assert_eq!(r.dropped(), 900 + 36_000 - through as u64);
    }

    #[test]
    fn a_flooding_address_leaves_the_others_their_budget() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(MessageRate::per_second(50));
        for ms in 0..5_000u64 {
            let now = t0 + Duration::from_millis(ms);
            for a in 1..=50 {
                for _ in 0..12 {
                    r.admit(now, ip(a));
                }
            }
            if ms % 1000 == 0 {
                assert!(r.admit(now, ip(999)), "the phone at {ms} ms");
            }
        }
    }

    #[test]
    fn a_full_table_forgets_the_idle_and_shares_one_bucket_among_the_new() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(MessageRate::per_second(10));
        for a in 0..TABLE as u32 {
            assert!(r.admit(t0, ip(a)));
        }
        // Every known address is busy: newcomers share a bucket of 20.
        let newcomers = (0..100).filter(|n| r.admit(t0, ip(100_000 + n))).count();
        assert_eq!(newcomers, 20);
        assert_eq!(r.tracked(), TABLE);
        // The known keep their own.
        assert!(r.admit(t0, ip(5)));
        // Once the known have gone quiet for a refill (2 s), they are forgotten.
        let later = t0 + Duration::from_secs(3);
        assert!(r.admit(later, ip(200_000)));
        assert_eq!(r.tracked(), 1);
    }
}
