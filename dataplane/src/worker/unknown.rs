//! Which sources of data for unknown receiver indices a worker reports to control
//! ([`contract::WorkerEvent::UnknownIndex`]). Such a message is unauthenticated: anyone can
//! send one, from any source. Control acts only on one from a known peer's endpoint (a peer
//! whose session another gateway of the cluster held), but every report costs a ring slot
//! and a lookup there, so reports are bounded: a source at most once per
//! [`PER_SOURCE_NS`] (as far as a small table remembers it), and [`PER_SECOND`] in all.

use std::hash::BuildHasher;
use std::net::SocketAddr;

/// How often one source is reported at most.
pub const PER_SOURCE_NS: u64 = 1_000_000_000;
/// Reports per second at most, all sources together.
pub const PER_SECOND: u32 = 64;
/// Sources remembered (direct-mapped by a keyed hash: a sender cannot aim at a slot).
const SLOTS: usize = 256;

#[derive(Debug)]
pub struct Reporter {
    /// (hash of the source, when it was last reported); 0 ns means never.
    slots: Box<[(u64, u64)]>,
    hasher: std::collections::hash_map::RandomState,
    window_start: u64,
    in_window: u32,
}

impl Default for Reporter {
    fn default() -> Self {
        Self {
            slots: vec![(0, 0); SLOTS].into_boxed_slice(),
            hasher: Default::default(),
            window_start: 0,
            in_window: 0,
        }
    }
}

impl Reporter {
    /// Whether data from `from` for an unknown index, at `now` (ns), is to be reported.
    pub fn should_report(&mut self, from: SocketAddr, now: u64) -> bool {
        let hash = self.hasher.hash_one(from);
        // The slot from the low bits, the tag (never 0) from the whole hash.
        let (slot, h) = ((hash as usize) % SLOTS, hash | 1);
        let slot = &mut self.slots[slot];
        if slot.0 == h && slot.1 != 0 && now.saturating_sub(slot.1) < PER_SOURCE_NS {
            return false;
        }
        if now.saturating_sub(self.window_start) >= 1_000_000_000 {
            self.window_start = now;
            self.in_window = 0;
        }
        if self.in_window >= PER_SECOND {
            return false;
        }
        self.in_window += 1;
        *slot = (h, now.max(1));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_once_a_second_and_a_budget_for_all() {
        let mut r = Reporter::default();
        let a: SocketAddr = "198.18.0.2:51820".parse().unwrap();
        let t0 = 5_000_000_000;
        assert!(r.should_report(a, t0));
        assert!(!r.should_report(a, t0 + 1));
        assert!(!r.should_report(a, t0 + PER_SOURCE_NS - 1));
        assert!(r.should_report(a, t0 + PER_SOURCE_NS));
        // Many sources within one second: the budget holds, whatever the table remembers.
        let mut r = Reporter::default();
        let reported = (0..10_000u16)
            .filter(|p| r.should_report(SocketAddr::new(a.ip(), *p), t0 + u64::from(*p)))
            .count();
        assert_eq!(reported, PER_SECOND as usize);
        // The next second has a new budget.
        assert!(r.should_report(SocketAddr::new(a.ip(), 60_000), t0 + 1_000_000_000));
    }

    /// Every slot of the table is used: sources spread over all of them, not over half.
    #[test]
    fn sources_spread_over_every_slot() {
        let mut r = Reporter::default();
        let ip: std::net::IpAddr = "198.18.0.2".parse().unwrap();
        // One source a second: the budget never holds any back.
        for port in 0..4096u16 {
            let at = 1_000_000_000 * (u64::from(port) + 1);
            assert!(r.should_report(SocketAddr::new(ip, port), at));
        }
        let used = r.slots.iter().filter(|s| s.1 != 0).count();
        assert!(used > SLOTS * 9 / 10, "{used} of {SLOTS} slots used");
    }
}
