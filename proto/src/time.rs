//! Time as the protocol core sees it: only what the caller passes in.
//!
//! `proto` never reads a clock. Every entry point takes a [`Now`]: a monotonic [`Instant`]
//! (CLOCK_BOOTTIME-like, for timers and key ages) and the wall-clock time since the Unix epoch
//! (only for the TAI64N timestamp of initiations). A fake clock in tests is just a `Now` that
//! the test advances.

use std::ops::{Add, Sub};
use std::time::Duration;

/// A monotonic point in time, in nanoseconds since an epoch chosen by the caller.
///
/// A plain `u64` rather than `std::time::Instant` so that it can be built in tests, stored in
/// shared memory for the data path, and compared across processes that use the same clock.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(u64);

impl Instant {
    pub const fn from_nanos(ns: u64) -> Self {
        Self(ns)
    }

    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// Time elapsed from `earlier` to `self`, zero if `earlier` is later.
    pub fn saturating_since(self, earlier: Instant) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }

    /// True when at least `age` has passed since `birth` (the kernel's
    /// `wg_birthdate_has_expired`, which treats the deadline itself as expired).
    pub fn has_expired(self, birth: Instant, age: Duration) -> bool {
        self.saturating_since(birth) >= age
    }
}

fn duration_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, d: Duration) -> Instant {
        Instant(self.0.saturating_add(duration_nanos(d)))
    }
}

impl Sub<Duration> for Instant {
    type Output = Instant;
    fn sub(self, d: Duration) -> Instant {
        Instant(self.0.saturating_sub(duration_nanos(d)))
    }
}

/// The current time, as supplied by the caller on every call into the protocol core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Now {
    /// Monotonic time, for timers and ages.
    pub mono: Instant,
    /// Wall-clock time since 1970-01-01 UTC, for TAI64N timestamps only.
    pub unix: Duration,
}

impl Now {
    pub fn new(mono: Instant, unix: Duration) -> Self {
        Self { mono, unix }
    }

    /// Both clocks moved forward by `d`: what a fake clock does.
    pub fn advance(&mut self, d: Duration) {
        self.mono = self.mono + d;
        self.unix += d;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_is_inclusive_like_the_kernel() {
        let t0 = Instant::from_nanos(1_000);
        assert!(!t0.has_expired(t0, Duration::from_nanos(1)));
        assert!((t0 + Duration::from_nanos(1)).has_expired(t0, Duration::from_nanos(1)));
        // A birth in the future (clock supplied out of order) never counts as expired.
        assert!(!t0.has_expired(t0 + Duration::from_secs(1), Duration::from_nanos(1)));
    }

    #[test]
    fn arithmetic_saturates() {
        let t = Instant::from_nanos(u64::MAX - 1);
        assert_eq!((t + Duration::from_secs(1)).as_nanos(), u64::MAX);
        assert_eq!(
            (Instant::from_nanos(5) - Duration::from_secs(1)).as_nanos(),
            0
        );
    }
}
