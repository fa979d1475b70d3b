//! Addresses as unsigned integers, most significant bit first: `u32` for IPv4, `u128` for IPv6.
//!
//! The trie consumes an address in 6-bit chunks below a direct-indexed top of 20 bits (IPv4:
//! 20 + 2 * 6 ends at bit 32, IPv6: 20 + 18 * 6 at bit 128). Chunks that would run past the
//! last bit are zero-padded, so every level has the same 64-way fan-out and padding children
//! are simply never reached by a lookup.

use std::fmt::Debug;
use std::hash::Hash;

/// Bits resolved by each trie node below the directory.
pub(crate) const STRIDE: u32 = 6;

/// An address family's key: an unsigned integer holding the address, network byte order read
/// as a big-endian number.
pub trait Key: Copy + Ord + Eq + Hash + Debug + Default + Send + Sync + 'static {
    /// Address width in bits (32 or 128).
    const BITS: u32;
    /// Bits resolved by the direct-indexed top level (the directory).
    const DIR_BITS: u32;
    /// 64-bit words of one unit of the singles array (path-compressed leaves): 16 bytes. An
    /// IPv6 singleton far above its prefix's end takes two.
    const SINGLE_WORDS: usize;

    /// The top [`Key::DIR_BITS`] bits: the directory slot.
    fn top(self) -> usize;
    /// The 6 (`STRIDE`) bits starting at bit `depth` (0 = most significant), zero-padded past the
    /// end of the address. `depth` is below `BITS`.
    fn chunk(self, depth: u32) -> usize;
    /// The `bits` bits starting at bit `depth`, zero-padded past the end of the address:
    /// a path-compressed node's skipped bits followed by its own chunk. `bits` is in
    /// `STRIDE..=30`; a `depth` at or past the end wraps instead of panicking (only a bug can
    /// ask for one).
    fn window(self, depth: u32, bits: u32) -> u32;
    /// `self` with bits `depth..depth + STRIDE` set to `chunk` (padding bits dropped); those
    /// bits of `self` must be zero.
    fn with_chunk(self, depth: u32, chunk: usize) -> Self;
    /// `self` with all bits past the first `len` cleared.
    fn mask(self, len: u8) -> Self;
    /// `self` with all bits past the first `len` set: the last address of the prefix.
    fn last(self, len: u8) -> Self;
    /// Widens to 128 bits (for IPv4, in the low 32 bits).
    fn to_u128(self) -> u128;
    /// Narrows from [`Key::to_u128`]'s form.
    fn from_u128(bits: u128) -> Self;
}

impl Key for u32 {
    const BITS: u32 = 32;
    const DIR_BITS: u32 = 20;
    const SINGLE_WORDS: usize = 2;

    #[inline(always)]
    fn top(self) -> usize {
        (self >> (32 - Self::DIR_BITS)) as usize
    }
    #[inline(always)]
    fn chunk(self, depth: u32) -> usize {
        ((self << depth) >> (32 - STRIDE)) as usize
    }
    #[inline(always)]
    fn window(self, depth: u32, bits: u32) -> u32 {
        // Wrapping: a corrupt node's width must not panic a worker (see `Fib::lookup_group`);
        // the same instructions as the plain shift in a release build.
        self.wrapping_shl(depth)
            .wrapping_shr(32u32.wrapping_sub(bits))
    }
    fn with_chunk(self, depth: u32, chunk: usize) -> Self {
        let c = chunk as u32;
        if depth + STRIDE <= 32 {
            self | (c << (32 - STRIDE - depth))
        } else {
            self | (c >> (depth + STRIDE - 32))
        }
    }
    #[inline(always)]
    fn mask(self, len: u8) -> Self {
        match len {
            0 => 0,
            _ => self & (u32::MAX << (32 - u32::from(len.min(32)))),
        }
    }
    fn last(self, len: u8) -> Self {
        match len {
            0 => u32::MAX,
            _ => self | !(u32::MAX << (32 - u32::from(len.min(32)))),
        }
    }
    fn to_u128(self) -> u128 {
        u128::from(self)
    }
    fn from_u128(bits: u128) -> Self {
        bits as u32
    }
}

impl Key for u128 {
    const BITS: u32 = 128;
    const DIR_BITS: u32 = 20;
    const SINGLE_WORDS: usize = 2;

    #[inline(always)]
    fn top(self) -> usize {
        (self >> (128 - Self::DIR_BITS)) as usize
    }
    #[inline(always)]
    fn chunk(self, depth: u32) -> usize {
        ((self << depth) >> (128 - STRIDE)) as usize
    }
    #[inline(always)]
    fn window(self, depth: u32, bits: u32) -> u32 {
        // The high 64 bits of the shifted address hold the window; a u64 shift is cheaper.
        ((self.wrapping_shl(depth) >> 64) as u64).wrapping_shr(64u32.wrapping_sub(bits)) as u32
    }
    fn with_chunk(self, depth: u32, chunk: usize) -> Self {
        let c = chunk as u128;
        if depth + STRIDE <= 128 {
            self | (c << (128 - STRIDE - depth))
        } else {
            self | (c >> (depth + STRIDE - 128))
        }
    }
    #[inline(always)]
    fn mask(self, len: u8) -> Self {
        match len {
            0 => 0,
            _ => self & (u128::MAX << (128 - u32::from(len.min(128)))),
        }
    }
    fn last(self, len: u8) -> Self {
        match len {
            0 => u128::MAX,
            _ => self | !(u128::MAX << (128 - u32::from(len.min(128)))),
        }
    }
    fn to_u128(self) -> u128 {
        self
    }
    fn from_u128(bits: u128) -> Self {
        bits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_msb_first_and_zero_padded() {
        let a: u32 = 0xC0A8_0501; // 192.168.5.1
        assert_eq!(a.top(), 0xC0A80);
        assert_eq!(a.chunk(16), 0b000001);
        assert_eq!(a.chunk(22), 0b010000);
        assert_eq!(a.chunk(28), 0b000100, "bits 28..32 then two zero pad bits");
        assert_eq!(0u32.with_chunk(28, 0b000100), 1);
        assert_eq!(0u32.with_chunk(16, 0b000001), 0x0000_0400);
        let b: u128 = 1;
        assert_eq!(b.chunk(124), 0b000100);
        assert_eq!(0u128.with_chunk(124, 0b000100), 1);
        assert_eq!(a.window(16, 12), 0b0000_0101_0000);
        assert_eq!(a.window(20, 12), 0x501);
        assert_eq!(
            b.window(120, 12),
            0b0000_0001_0000,
            "bits 120..128 then four pad bits"
        );
        assert_eq!((u128::MAX >> 1).window(0, 30), (1 << 29) - 1);
        assert_eq!(a.mask(24), 0xC0A8_0500);
        assert_eq!(a.mask(0), 0);
        assert_eq!(a.mask(32), a);
        assert_eq!(a.last(24), 0xC0A8_05FF);
        assert_eq!(u128::MAX.mask(64), u128::MAX << 64);
    }
}
