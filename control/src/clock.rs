//! Where control's time comes from. Control reads no clock of its own: the driver is given a
//! [`Clock`], which says the protocol's now and the region's now. Production uses
//! [`SystemClock`]; tests use [`ManualClock`] (time moves when the test says) or
//! [`ScaledClock`] (the protocol's timers run faster, so that a rekey happens in seconds).

use contract::clock::mono_ns;
use proto::time::{Instant, Now};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub trait Clock: std::fmt::Debug + Send {
    /// The protocol's now (monotonic and wall-clock).
    fn now(&self) -> Now;
    /// The region's clock (CLOCK_MONOTONIC, ns): key births and the workers' activity times
    /// are on it, whatever the protocol's clock does.
    fn region_ns(&self) -> u64;
}

fn unix_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// The machine's clocks.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Now {
        Now::new(Instant::from_nanos(mono_ns()), unix_now())
    }

    fn region_ns(&self) -> u64 {
        mono_ns()
    }
}

/// The protocol's clock runs `scale` times faster than real time from the moment this clock
/// is made; the region's stays real (the workers' key-age checks are real time). For
/// end-to-end tests of rekeying (`wgxdp up --time-scale N`, a test flag).
#[derive(Debug, Clone, Copy)]
pub struct ScaledClock {
    base: u64,
    scale: u64,
}

impl ScaledClock {
    pub fn new(scale: u32) -> Self {
        Self {
            base: mono_ns(),
            scale: u64::from(scale.max(1)),
        }
    }
}

impl Clock for ScaledClock {
    fn now(&self) -> Now {
        let real = mono_ns();
        let scaled = self.base + (real - self.base).saturating_mul(self.scale);
        Now::new(
            Instant::from_nanos(scaled),
            unix_now() + Duration::from_nanos(scaled - real),
        )
    }

    fn region_ns(&self) -> u64 {
        mono_ns()
    }
}

/// A clock that moves only when told to (tests); clones share the time. Both the protocol's
/// and the region's clocks read the same nanoseconds, starting from the real monotonic time
/// so that the region's times stay plausible to a data path running beside it.
#[derive(Debug, Clone)]
pub struct ManualClock {
    ns: Arc<AtomicU64>,
    unix_base: Duration,
}

impl ManualClock {
    pub fn new() -> Self {
        Self {
            ns: Arc::new(AtomicU64::new(mono_ns())),
            unix_base: unix_now(),
        }
    }

    pub fn advance(&self, by: Duration) {
        self.ns.fetch_add(
            u64::try_from(by.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Now {
        let ns = self.ns.load(Ordering::Relaxed);
        Now::new(
            Instant::from_nanos(ns),
            self.unix_base + Duration::from_nanos(ns),
        )
    }

    fn region_ns(&self) -> u64 {
        self.ns.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_moves_only_when_told_and_clones_share_it() {
        let c = ManualClock::new();
        let d = c.clone();
        let (a, b) = (c.now().mono, d.now().mono);
        assert_eq!(a, b);
        c.advance(Duration::from_secs(5));
        assert_eq!(d.region_ns() - a.as_nanos(), 5_000_000_000);
    }

    #[test]
    fn scaled_runs_faster_than_the_region() {
        let c = ScaledClock::new(1000);
        let (p0, r0) = (c.now().mono.as_nanos(), c.region_ns());
        std::thread::sleep(Duration::from_millis(5));
        let (p1, r1) = (c.now().mono.as_nanos(), c.region_ns());
        assert!(p1 - p0 > 100 * (r1 - r0), "{} vs {}", p1 - p0, r1 - r0);
    }
}
