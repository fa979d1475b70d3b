//! Per-source token buckets for handshake messages under load (the kernel's
//! `ratelimiter.c`): 20 packets per second with a burst of 5, keyed by the IPv4 address or the
//! IPv6 /64 (the unit one IPv6 host controls). Consulted only for messages that already
//! carried a valid mac2, so the table holds only sources that proved they receive cookies.

use crate::time::Instant;
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

pub const PACKETS_PER_SECOND: u64 = 20;
pub const PACKETS_BURST: u64 = 5;
const PACKET_COST: u64 = 1_000_000_000 / PACKETS_PER_SECOND;
const TOKEN_MAX: u64 = PACKET_COST * PACKETS_BURST;
/// Entries idle this long are forgotten at the next collection, which runs at most this often.
const ENTRY_IDLE: Duration = Duration::from_secs(1);
/// Default bound on tracked sources; past it new sources are refused, as in the kernel.
pub const DEFAULT_MAX_ENTRIES: usize = 65_536;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Source {
    V4([u8; 4]),
    V6Prefix([u8; 8]),
}

impl From<IpAddr> for Source {
    fn from(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(a) => Source::V4(a.octets()),
            IpAddr::V6(a) => {
                let mut p = [0u8; 8];
                p.copy_from_slice(&a.octets()[..8]);
                Source::V6Prefix(p)
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    last: Instant,
    tokens: u64,
}

#[derive(Debug)]
pub struct RateLimiter {
    buckets: HashMap<Source, Bucket>,
    max_entries: usize,
    last_gc: Option<Instant>,
}

impl Default for RateLimiter {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_ENTRIES)
    }
}

impl RateLimiter {
    pub fn new(max_entries: usize) -> Self {
        Self {
            buckets: HashMap::new(),
            max_entries,
            last_gc: None,
        }
    }

    /// Whether one more packet from `ip` is allowed at `now`; charges it if so.
    pub fn allow(&mut self, ip: IpAddr, now: Instant) -> bool {
        self.collect(now);
        let source = Source::from(ip);
        if let Some(b) = self.buckets.get_mut(&source) {
            let elapsed =
                u64::try_from(now.saturating_since(b.last).as_nanos()).unwrap_or(u64::MAX);
            b.last = now;
            b.tokens = b.tokens.saturating_add(elapsed).min(TOKEN_MAX);
            if b.tokens >= PACKET_COST {
                b.tokens -= PACKET_COST;
                return true;
            }
            return false;
        }
        if self.buckets.len() >= self.max_entries {
            return false;
        }
        self.buckets.insert(
            source,
            Bucket {
                last: now,
                tokens: TOKEN_MAX - PACKET_COST,
            },
        );
        true
    }

    fn collect(&mut self, now: Instant) {
        if self
            .last_gc
            .is_some_and(|t| !now.has_expired(t, ENTRY_IDLE))
        {
            return;
        }
        self.last_gc = Some(now);
        self.buckets
            .retain(|_, b| !now.has_expired(b.last, ENTRY_IDLE));
    }

    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at_ms(ms: u64) -> Instant {
        Instant::from_nanos(ms * 1_000_000)
    }

    #[test]
    fn burst_then_steady_rate() {
        let mut r = RateLimiter::default();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let allowed = (0..10).filter(|_| r.allow(ip, at_ms(0))).count();
        assert_eq!(allowed as u64, PACKETS_BURST);
        // One token accrues every 50 ms.
        assert!(!r.allow(ip, at_ms(49)));
        assert!(r.allow(ip, at_ms(50)));
        assert!(!r.allow(ip, at_ms(60)));
        // A long pause refills at most the burst.
        let after_pause = (0..10).filter(|_| r.allow(ip, at_ms(900))).count();
        assert_eq!(after_pause as u64, PACKETS_BURST);
        // Other sources are independent.
        assert!(r.allow("192.0.2.2".parse().unwrap(), at_ms(100)));
    }

    #[test]
    fn ipv6_sources_share_their_64() {
        let mut r = RateLimiter::default();
        let n = (0..10u16)
            .filter(|i| r.allow(format!("2001:db8:0:1::{i}").parse().unwrap(), at_ms(0)))
            .count();
        assert_eq!(n as u64, PACKETS_BURST);
        assert!(r.allow("2001:db8:0:2::1".parse().unwrap(), at_ms(0)));
    }

    #[test]
    fn idle_entries_are_collected_and_the_table_is_bounded() {
        let mut r = RateLimiter::new(2);
        assert!(r.allow("10.0.0.1".parse().unwrap(), at_ms(0)));
        assert!(r.allow("10.0.0.2".parse().unwrap(), at_ms(0)));
        assert!(
            !r.allow("10.0.0.3".parse().unwrap(), at_ms(10)),
            "table full"
        );
        assert!(
            r.allow("10.0.0.3".parse().unwrap(), at_ms(1_000)),
            "old entries collected"
        );
        assert_eq!(r.len(), 1);
    }
}
