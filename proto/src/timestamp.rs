//! TAI64N timestamps carried, encrypted, in handshake initiations (whitepaper §5.4.2).
//!
//! The responder accepts an initiation only if its timestamp is greater than the last one it
//! accepted from that peer, which defeats replay of captured initiations. Following the kernel,
//! the nanoseconds are rounded down to a power of two no finer than the 20 ms initiation rate
//! limit, so the timestamp does not leak fine-grained timing of the sender.

use crate::constants::INITIATIONS_PER_SECOND;
use std::time::Duration;

pub const TIMESTAMP_LEN: usize = 12;

/// TAI64 label of the Unix epoch: 2^62 + 10 (TAI is ahead of UTC by 10 s at 1970).
const TAI64_EPOCH: u64 = 0x4000_0000_0000_000a;

/// The largest power of two not above the 20 ms initiation interval: 2^24 ns.
const NANOS_GRANULARITY: u32 = {
    let interval = 1_000_000_000 / INITIATIONS_PER_SECOND;
    1 << (31 - interval.leading_zeros())
};

/// A TAI64N label: 8-byte big-endian seconds, 4-byte big-endian nanoseconds. Because both are
/// big-endian, byte-wise comparison is chronological comparison.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Tai64n([u8; TIMESTAMP_LEN]);

impl Tai64n {
    /// The timestamp for wall-clock time `unix` (time since 1970-01-01 UTC).
    pub fn from_unix(unix: Duration) -> Self {
        let mut b = [0u8; TIMESTAMP_LEN];
        b[..8].copy_from_slice(&TAI64_EPOCH.wrapping_add(unix.as_secs()).to_be_bytes());
        let nanos = unix.subsec_nanos() & !(NANOS_GRANULARITY - 1);
        b[8..].copy_from_slice(&nanos.to_be_bytes());
        Self(b)
    }

    pub fn from_bytes(b: [u8; TIMESTAMP_LEN]) -> Self {
        Self(b)
    }

    pub fn as_bytes(&self) -> &[u8; TIMESTAMP_LEN] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn granularity_is_two_to_the_24() {
        assert_eq!(NANOS_GRANULARITY, 1 << 24);
    }

    #[test]
    fn encoding_and_rounding() {
        let t = Tai64n::from_unix(Duration::new(1, 16_777_216 * 3 + 5));
        assert_eq!(
            t.as_bytes(),
            &[0x40, 0, 0, 0, 0, 0, 0, 0x0b, 0x03, 0x00, 0x00, 0x00],
            "seconds 2^62+10+1, nanoseconds rounded down to 3 * 2^24"
        );
    }

    #[test]
    fn ordering_is_chronological() {
        let a = Tai64n::from_unix(Duration::new(100, 999_000_000));
        let b = Tai64n::from_unix(Duration::new(101, 0));
        let c = Tai64n::from_unix(Duration::new(101, 20_000_000));
        assert!(a < b && b < c);
        // Within one granule the rounded timestamps are equal, hence not "greater".
        assert_eq!(
            Tai64n::from_unix(Duration::new(5, 1)),
            Tai64n::from_unix(Duration::new(5, 2))
        );
    }
}
