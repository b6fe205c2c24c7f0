//! The time a driver tells its pure logic with each event: the monotonic instant for timers
//! and ages, and the wall clock for what is stored or shown. [`Clock::now`] is the one
//! place it is read; the logic only ever gets a `Clock` (see `scripts/check-clock`), so tests
//! can drive it on virtual time.
//!
//! The instant is tokio's, so a runtime whose clock is paused (`start_paused`, the scenario
//! tests) moves every driver's time together with its timers; the wall clock follows it by
//! the same amount. Outside such a runtime both are simply the system's.

use std::time::{Instant, SystemTime};

#[derive(Debug, Clone, Copy)]
pub struct Clock {
    pub now: Instant,
    pub wall: SystemTime,
}

impl Clock {
    /// The time now: for drivers (socket loops and timers) only.
    pub fn now() -> Clock {
        let now = tokio::time::Instant::now().into_std();
        let real = Instant::now();
        let wall = SystemTime::now();
        // Zero unless tokio's clock is paused: then virtual time moved by `now - real` more
        // (or less) than the system's.
        let wall = match now.checked_duration_since(real) {
            Some(ahead) => wall + ahead,
            None => wall - real.duration_since(now),
        };
        Clock { now, wall }
    }

    /// The wall clock as Unix seconds.
    pub fn unix(&self) -> i64 {
        self.wall
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn a_paused_runtime_moves_both_clocks_by_virtual_time() {
        let a = Clock::now();
        tokio::time::sleep(Duration::from_secs(3600)).await;
        let b = Clock::now();
        let moved = b.now - a.now;
        assert!(moved >= Duration::from_secs(3600), "{moved:?}");
        let wall = b.wall.duration_since(a.wall).unwrap();
        assert!(
            wall.abs_diff(Duration::from_secs(3600)) < Duration::from_millis(5),
            "{wall:?}"
        );
    }

    #[test]
    fn outside_a_runtime_it_is_the_system_clock() {
        let c = Clock::now();
        let off = SystemTime::now().duration_since(c.wall).unwrap_or_default();
        assert!(off < Duration::from_secs(1), "{off:?}");
    }
}
