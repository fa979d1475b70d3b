//! TCP headers (RFC 9293 §3.1), as far as a router touches them: the checksum, the flags and
//! the maximum segment size option of a SYN, which a tunnel clamps to what fits its MTU.

use super::checksum::update_u16;
use super::read_u16;

pub mod field {
    use core::ops::Range;

    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const SEQ: Range<usize> = 4..8;
    pub const ACK: Range<usize> = 8..12;
    /// Data offset in the high four bits, in 32-bit words.
    pub const DATA_OFFSET: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WINDOW: Range<usize> = 14..16;
    pub const CHECKSUM: Range<usize> = 16..18;
    pub const URGENT: Range<usize> = 18..20;
    pub const OPTIONS: usize = URGENT.end;
}

/// Length of a TCP header without options.
pub const HEADER_LEN: usize = field::OPTIONS;
/// The SYN flag.
pub const SYN: u8 = 0x02;

/// Option kinds (RFC 9293 §3.2).
const END: u8 = 0;
const NOP: u8 = 1;
const MSS: u8 = 2;
const MSS_LEN: usize = 4;

/// In a SYN segment (`segment`: the TCP header onwards, with a complete checksum), lowers the
/// maximum segment size option to `max` if it is above it, updating the checksum
/// incrementally (RFC 1624). Returns the MSS the segment asked for when it was lowered.
/// Anything else (not a SYN, no MSS option, one already at most `max`, options that do not
/// parse) is left as it is: a router may rewrite what it understands and must pass the rest.
pub fn clamp_mss(segment: &mut [u8], max: u16) -> Option<u16> {
    if segment.len() < HEADER_LEN || segment[field::FLAGS] & SYN == 0 {
        return None;
    }
    let header = usize::from(segment[field::DATA_OFFSET] >> 4) * 4;
    let options = segment.get(HEADER_LEN..header)?;
    let at = HEADER_LEN + mss_offset(options)?;
    let old = read_u16(segment, at..at + 2);
    if old <= max {
        return None;
    }
    segment[at..at + 2].copy_from_slice(&max.to_be_bytes());
    let checksum = read_u16(segment, field::CHECKSUM);
    // A value at an odd offset straddles two of the checksum's 16-bit words: its bytes count
    // swapped (RFC 1071 §2(B)).
    let (o, n) = if !at.is_multiple_of(2) {
        (old.swap_bytes(), max.swap_bytes())
    } else {
        (old, max)
    };
    segment[field::CHECKSUM].copy_from_slice(&update_u16(checksum, o, n).to_be_bytes());
    Some(old)
}

/// Where the MSS option's value lies in `options`, if it is there and well formed.
fn mss_offset(options: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i < options.len() {
        match options[i] {
            END => return None,
            NOP => i += 1,
            kind => {
                let len = usize::from(*options.get(i + 1)?);
                if len < 2 || i + len > options.len() {
                    return None;
                }
                if kind == MSS {
                    return (len == MSS_LEN).then_some(i + 2);
                }
                i += len;
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{IpProtocol, PseudoHeader as _};
    use std::net::Ipv4Addr;

    const SRC: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
    const DST: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 9);

    /// A SYN from SRC to DST with `options` (padded to a word), checksum complete.
    fn syn(flags: u8, options: &[u8]) -> Vec<u8> {
        let mut opts = options.to_vec();
        while !opts.len().is_multiple_of(4) {
            opts.push(END);
        }
        let mut s = vec![0u8; HEADER_LEN];
        s[field::SRC_PORT].copy_from_slice(&40000u16.to_be_bytes());
        s[field::DST_PORT].copy_from_slice(&443u16.to_be_bytes());
        s[field::DATA_OFFSET] = (((HEADER_LEN + opts.len()) / 4) as u8) << 4;
        s[field::FLAGS] = flags;
        s.extend_from_slice(&opts);
        let c = checksum(&s);
        s[field::CHECKSUM].copy_from_slice(&c.to_be_bytes());
        s
    }

    /// The checksum computed from scratch (field zeroed).
    fn checksum(s: &[u8]) -> u16 {
        let mut z = s.to_vec();
        z[field::CHECKSUM].fill(0);
        SRC.pseudo_header(DST, IpProtocol::TCP, z.len() as u32)
            .add_bytes(&z)
            .finish()
    }

    fn mss(v: u16) -> [u8; 4] {
        let b = v.to_be_bytes();
        [MSS, 4, b[0], b[1]]
    }

    #[test]
    fn a_syns_mss_is_lowered_and_its_checksum_stays_right() {
        // MSS first (even offset), after one NOP (odd offset), after a window scale option;
        // a SYN-ACK too.
        let nop_mss = [&[NOP][..], &mss(1460)].concat();
        let after_ws = [&[3, 3, 7][..], &mss(8960)].concat();
        for (flags, opts, old) in [
            (SYN, mss(1460).to_vec(), 1460),
            (SYN, nop_mss, 1460),
            (SYN | 0x10, after_ws, 8960),
        ] {
            let mut s = syn(flags, &opts);
            assert_eq!(clamp_mss(&mut s, 1380), Some(old));
            assert_eq!(
                mss_offset(&s[HEADER_LEN..])
                    .map(|o| read_u16(&s, HEADER_LEN + o..HEADER_LEN + o + 2)),
                Some(1380)
            );
            assert_eq!(read_u16(&s, field::CHECKSUM), checksum(&s), "{opts:?}");
        }
    }

    #[test]
    fn what_needs_no_clamp_or_does_not_parse_is_left_alone() {
        let cases: Vec<(u8, Vec<u8>)> = vec![
            (SYN, mss(1200).to_vec()),               // already small enough
            (0x10, mss(1460).to_vec()),              // an ACK, not a SYN
            (SYN, vec![NOP, NOP, 4, 2]),             // no MSS (SACK permitted only)
            (SYN, vec![END, 0, 0, 0, 2, 4, 5, 180]), // MSS after the end of the list
            (SYN, vec![3, 0, 2, 4, 5, 180]),         // a zero length would loop forever
            (SYN, vec![3, 40, 2, 4, 5, 180]),        // a length past the header
            (SYN, vec![MSS, 3, 5, 180]),             // an MSS option of the wrong length
        ];
        for (flags, opts) in cases {
            let s = syn(flags, &opts);
            let mut t = s.clone();
            assert_eq!(clamp_mss(&mut t, 1380), None, "{opts:?}");
            assert_eq!(t, s);
        }
        // A data offset past the segment, and segments too short for a header.
        let mut s = syn(SYN, &mss(1460));
        s[field::DATA_OFFSET] = 15 << 4;
        assert_eq!(clamp_mss(&mut s, 1380), None);
        for n in 0..HEADER_LEN {
            assert_eq!(clamp_mss(&mut vec![0xff; n], 1380), None);
        }
    }
}
