//! The Internet checksum (RFC 1071), its incremental update (RFC 1624) and the pseudo-headers
//! that UDP, TCP and ICMPv6 fold into it (RFC 768, RFC 8200 §8.1).
//!
//! The header views use these to fill and verify their own checksums
//! ([`Ipv4Packet::fill_checksum`](super::Ipv4Packet::fill_checksum),
//! [`UdpPacket::fill_checksum`](super::UdpPacket::fill_checksum), ...). The data path fills
//! complete checksums on frames that arrived with only a partial (pseudo-header) sum, so filling
//! always recomputes from scratch and never trusts what is in the checksum field.

use super::IpProtocol;
use std::net::{Ipv4Addr, Ipv6Addr};

/// A running one's-complement sum over a sequence of byte strings.
///
/// Pieces may have any length: a piece that starts at an odd offset of the covered data is
/// byte-swapped before it is added (RFC 1071 §2(B)), so `add_bytes(a).add_bytes(b)` equals
/// `add_bytes(a ++ b)`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Checksum {
    /// Unfolded sum of big-endian 16-bit words, with end-around carry.
    sum: u64,
    /// Whether the bytes added so far have odd length (the next byte is a low-order byte).
    odd: bool,
}

impl Checksum {
    pub const fn new() -> Self {
        Self { sum: 0, odd: false }
    }

    /// Adds `data`, continuing at the byte offset where the previous piece ended.
    #[must_use]
    pub fn add_bytes(self, data: &[u8]) -> Self {
        let part = ones_complement_sum(data);
        // Bytes at an odd offset are the low halves of their 16-bit words: swapping the piece's
        // sum moves every byte to the other half (a multiplication by 2^8 modulo 2^16 - 1).
        let part = if self.odd { part.swap_bytes() } else { part };
        Self {
            sum: add_carry(self.sum, u64::from(part)),
            odd: self.odd ^ (data.len() % 2 == 1),
        }
    }

    /// Adds a 16-bit word as if its two big-endian bytes were added.
    #[must_use]
    pub fn add_u16(self, word: u16) -> Self {
        self.add_bytes(&word.to_be_bytes())
    }

    /// Adds a 32-bit word as if its four big-endian bytes were added.
    #[must_use]
    pub fn add_u32(self, word: u32) -> Self {
        self.add_bytes(&word.to_be_bytes())
    }

    /// The one's-complement sum of everything added, folded to 16 bits. It is 0 only if every
    /// byte added was zero; otherwise in `1..=0xffff`.
    pub fn sum(self) -> u16 {
        fold(self.sum)
    }

    /// The checksum to store in a header: the complement of [`sum`](Self::sum).
    pub fn finish(self) -> u16 {
        !self.sum()
    }

    /// Whether data that includes its own checksum field verifies: its sum is all ones.
    pub fn verifies(self) -> bool {
        self.sum() == 0xffff
    }
}

/// The one's-complement sum (RFC 1071) of `data` read as big-endian 16-bit words, a trailing odd
/// byte padded with a zero low byte, folded to 16 bits (not complemented).
pub fn ones_complement_sum(data: &[u8]) -> u16 {
    // Fast path: add native-endian 32-bit words into a plain u64. There is no carry chain, so
    // the loop vectorises; a u64 holds 2^32 such words, and the outer blocks keep well below
    // that. The sum is byte-order independent up to a final swap (RFC 1071 §2(B)).
    const WORDS_PER_BLOCK: usize = 1 << 30;
    let (words, rest) = data.as_chunks::<4>();
    let mut acc: u64 = 0;
    for block in words.chunks(WORDS_PER_BLOCK) {
        let part: u64 = block
            .iter()
            .map(|w| u64::from(u32::from_ne_bytes(*w)))
            .sum();
        acc = add_carry(acc, part);
    }
    let (pairs, last) = rest.as_chunks::<2>();
    for pair in pairs {
        acc = add_carry(acc, u64::from(u16::from_ne_bytes(*pair)));
    }
    if let Some(&byte) = last.first() {
        // Padded on the right with a zero byte, as the high half of a big-endian word.
        acc = add_carry(acc, u64::from(u16::from_ne_bytes([byte, 0])));
    }
    // Native order to big-endian: a no-op on big-endian targets, one swap on little-endian.
    u16::from_be(fold(acc))
}

/// The Internet checksum of `data`: the complement of its one's-complement sum.
pub fn internet_checksum(data: &[u8]) -> u16 {
    !ones_complement_sum(data)
}

/// Updates `checksum` after the bytes `old` in the covered data were replaced by `new`, without
/// touching the rest of the data (RFC 1624 eqn. 3: `HC' = ~(~HC + ~m + m')`).
///
/// `old` and `new` must start at the same even offset of the covered data. A UDP checksum of 0
/// means "none" and must not be updated this way; and if the result for UDP is 0, the caller
/// stores 0xffff instead, as with a full computation.
pub fn update(checksum: u16, old: &[u8], new: &[u8]) -> u16 {
    let removed = !ones_complement_sum(old);
    let added = ones_complement_sum(new);
    let sum = add_carry(u64::from(!checksum), u64::from(removed));
    !fold(add_carry(sum, u64::from(added)))
}

/// [`update`] for one 16-bit field, the common case of a port or a TTL/protocol word.
pub fn update_u16(checksum: u16, old: u16, new: u16) -> u16 {
    update(checksum, &old.to_be_bytes(), &new.to_be_bytes())
}

/// An IP address family's pseudo-header, which UDP, TCP and ICMPv6 checksums cover.
pub trait PseudoHeader: Copy {
    /// Whether a UDP checksum field of 0 means "no checksum" (IPv4, RFC 768) rather than a
    /// corrupt packet (IPv6, RFC 8200 §8.1).
    const UDP_CHECKSUM_OPTIONAL: bool;

    /// The pseudo-header's sum for an upper-layer packet of `len` bytes.
    fn pseudo_header(self, dst: Self, protocol: IpProtocol, len: u32) -> Checksum;
}

impl PseudoHeader for Ipv4Addr {
    const UDP_CHECKSUM_OPTIONAL: bool = true;

    /// RFC 768: source, destination, zero, protocol, 16-bit length.
    fn pseudo_header(self, dst: Self, protocol: IpProtocol, len: u32) -> Checksum {
        // The IPv4 pseudo-header carries the length in 16 bits; an upper-layer packet in an IPv4
        // datagram cannot be longer, and adding the u32 differs only for impossible lengths.
        Checksum::new()
            .add_bytes(&self.octets())
            .add_bytes(&dst.octets())
            .add_bytes(&[0, protocol.0])
            .add_u16(u16::try_from(len).unwrap_or(u16::MAX))
    }
}

impl PseudoHeader for Ipv6Addr {
    const UDP_CHECKSUM_OPTIONAL: bool = false;

    /// RFC 8200 §8.1: source, destination, 32-bit upper-layer length, three zero bytes, next
    /// header.
    fn pseudo_header(self, dst: Self, protocol: IpProtocol, len: u32) -> Checksum {
        Checksum::new()
            .add_bytes(&self.octets())
            .add_bytes(&dst.octets())
            .add_u32(len)
            .add_bytes(&[0, 0, 0, protocol.0])
    }
}

/// Adds with end-around carry. Valid for one's-complement sums at any width that is a multiple
/// of 16 bits, since 2^64 ≡ 1 (mod 2^16 - 1).
const fn add_carry(a: u64, b: u64) -> u64 {
    let (sum, carry) = a.overflowing_add(b);
    // Cannot overflow: with a carry out, `sum` is at most 2^64 - 2.
    sum + carry as u64
}

/// Folds a 64-bit end-around-carry sum to 16 bits. Yields 0 only for 0.
const fn fold(sum: u64) -> u16 {
    let sum = (sum & 0xffff_ffff) + (sum >> 32); // < 2^33
    let sum = (sum & 0xffff_ffff) + (sum >> 32); // < 2^32
    let sum = (sum & 0xffff) + (sum >> 16); // < 2^17
    let sum = (sum & 0xffff) + (sum >> 16); // <= 0xffff
    sum as u16
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Ipv4Packet;
    use proptest::prelude::*;

    /// The textbook algorithm: 16-bit words, one at a time, folding every carry at once.
    fn naive_sum(data: &[u8]) -> u16 {
        let mut sum: u32 = 0;
        for pair in data.chunks(2) {
            let hi = pair[0];
            let lo = pair.get(1).copied().unwrap_or(0);
            sum += u32::from(u16::from_be_bytes([hi, lo]));
            if sum > 0xffff {
                sum = (sum & 0xffff) + 1;
            }
        }
        sum as u16
    }

    /// 0 and 0xffff are the same number in one's complement.
    fn equivalent(a: u16, b: u16) -> bool {
        a == b || (a == 0 && b == 0xffff) || (a == 0xffff && b == 0)
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: the sum of 0001 f203 f4f5 f6f7 is ddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(ones_complement_sum(&data), 0xddf2);
        assert_eq!(internet_checksum(&data), !0xddf2);
        assert_eq!(naive_sum(&data), 0xddf2);
    }

    #[test]
    fn ipv4_header_known_answer() {
        // The IPv4 header checksum example in Wikipedia's "Internet checksum" article.
        let mut header = hex::decode("450000730000400040110000c0a80001c0a800c7").unwrap();
        assert_eq!(internet_checksum(&header), 0xb861);
        Ipv4Packet::new_unchecked(&mut header[..]).set_checksum(0xb861);
        assert!(Checksum::new().add_bytes(&header).verifies());
    }

    #[test]
    fn edge_values() {
        assert_eq!(ones_complement_sum(&[]), 0);
        assert_eq!(ones_complement_sum(&[0; 7]), 0);
        assert_eq!(ones_complement_sum(&[0xff]), 0xff00);
        assert_eq!(ones_complement_sum(&[0xff, 0xff]), 0xffff);
        // Nonzero data never sums to 0, even when it is 0 modulo 0xffff.
        assert_eq!(ones_complement_sum(&[0xff, 0xfe, 0x00, 0x01]), 0xffff);
        assert_eq!(ones_complement_sum(&[0xff; 4096]), 0xffff);
        assert_eq!(fold(u64::MAX), 0xffff);
        assert_eq!(add_carry(u64::MAX, u64::MAX), u64::MAX);
    }

    #[test]
    fn update_known_answer() {
        // Changing the TTL/protocol word of the Wikipedia header from 4011 to 3f11 (a
        // decremented TTL) gives the checksum a full recomputation gives.
        let mut header = hex::decode("450000730000400040110000c0a80001c0a800c7").unwrap();
        let updated = update_u16(0xb861, 0x4011, 0x3f11);
        Ipv4Packet::new_unchecked(&mut header[..]).set_ttl(0x3f);
        assert_eq!(updated, internet_checksum(&header));
        assert_eq!(updated, 0xb961);
    }

    proptest! {
        #[test]
        fn fast_sum_matches_naive(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
            prop_assert_eq!(ones_complement_sum(&data), naive_sum(&data));
        }

        #[test]
        fn odd_lengths_match_naive(
            data in proptest::collection::vec(any::<u8>(), 0..300)
                .prop_filter("odd", |d| d.len() % 2 == 1),
        ) {
            prop_assert_eq!(ones_complement_sum(&data), naive_sum(&data));
        }

        #[test]
        fn pieces_match_whole(
            data in proptest::collection::vec(any::<u8>(), 0..600),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..6),
        ) {
            let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(data.len() + 1)).collect();
            cuts.sort_unstable();
            let mut acc = Checksum::new();
            let mut start = 0;
            for cut in cuts.into_iter().chain([data.len()]) {
                acc = acc.add_bytes(&data[start..cut]);
                start = cut;
            }
            prop_assert_eq!(acc.sum(), naive_sum(&data));
            prop_assert_eq!(acc.finish(), internet_checksum(&data));
        }

        #[test]
        fn incremental_update_matches_recompute(
            mut data in proptest::collection::vec(any::<u8>(), 2..200),
            at in any::<prop::sample::Index>(),
            new in proptest::collection::vec(any::<u8>(), 0..16),
        ) {
            let start = at.index(data.len()) & !1;
            let end = (start + new.len()).min(data.len());
            let new = &new[..end - start];
            let before = internet_checksum(&data);
            let old = data[start..end].to_vec();
            data[start..end].copy_from_slice(new);
            let updated = update(before, &old, new);
            prop_assert!(equivalent(updated, internet_checksum(&data)));
        }
    }
}
