//! The time a driver tells its pure logic with each event: the monotonic instant for timers
//! and ages, and the wall clock for what is stored or shown. [`Clock::now`] is the one
//! place it is read; the logic only ever gets a `Clock` (see `scripts/check-clock`), so tests
//! can drive it on virtual time.

use std::time::{Instant, SystemTime};

#[derive(Debug, Clone, Copy)]
pub struct Clock {
    pub now: Instant,
    pub wall: SystemTime,
}

impl Clock {
    /// The time now: for drivers (socket loops and timers) only.
    pub fn now() -> Clock {
        Clock {
            now: Instant::now(),
            wall: SystemTime::now(),
        }
    }

    /// The wall clock as Unix seconds.
    pub fn unix(&self) -> i64 {
        self.wall
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64)
    }
}
