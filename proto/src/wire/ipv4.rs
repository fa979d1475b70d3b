//! IPv4 headers (RFC 791), with options, DSCP/ECN (RFC 2474, RFC 3168) and the header checksum.

use super::checksum::{self, Checksum};
use super::{read, read_u16, write_u16, IpProtocol, WireError};
use std::net::Ipv4Addr;

mod field {
    use core::ops::Range;

    /// Version (high nibble) and IHL, the header length in 32-bit words (low nibble).
    pub const VER_IHL: usize = 0;
    /// DSCP (high six bits) and ECN (low two bits).
    pub const DSCP_ECN: usize = 1;
    pub const LENGTH: Range<usize> = 2..4;
    pub const IDENT: Range<usize> = 4..6;
    /// Flags (reserved, DF, MF) and the fragment offset in 8-byte units.
    pub const FLG_OFF: Range<usize> = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Range<usize> = 10..12;
    pub const SRC_ADDR: Range<usize> = 12..16;
    pub const DST_ADDR: Range<usize> = 16..20;
    /// Options run from here to the IHL-given header length.
    pub const OPTIONS: usize = DST_ADDR.end;
}

/// Length of a header without options (IHL 5).
pub const MIN_HEADER_LEN: usize = field::OPTIONS;
/// Length of a header with the most options IHL can express (IHL 15).
pub const MAX_HEADER_LEN: usize = 15 * WORD;

/// IHL and the fragment offset count in these units.
const WORD: usize = 4;
const FRAG_UNIT: u16 = 8;
const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const FRAG_OFFSET_MASK: u16 = 0x1fff;

/// A view of an IPv4 packet: header, options and payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Wraps `buffer` without checking it; getters may panic on a short or inconsistent buffer.
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps `buffer` after [`check_len`](Self::check_len). Bytes past the total length (link
    /// padding, WireGuard padding) are allowed and ignored by [`payload`](Self::payload).
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks, in this order: the fixed header fits (`Truncated`), version is 4 (`BadVersion`),
    /// IHL ≥ 5 (`BadHeaderLen`), total length ≥ header length (`BadLength`), and the buffer holds
    /// the header with options and the total length (`Truncated`).
    pub fn check_len(&self) -> Result<(), WireError> {
        let len = self.buffer.as_ref().len();
        if len < MIN_HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if self.version() != 4 {
            return Err(WireError::BadVersion);
        }
        let header_len = self.header_len();
        if header_len < MIN_HEADER_LEN {
            return Err(WireError::BadHeaderLen);
        }
        let total_len = usize::from(self.total_len());
        if total_len < header_len {
            return Err(WireError::BadLength);
        }
        if len < total_len {
            return Err(WireError::Truncated);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// The header length in bytes (IHL × 4), options included.
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::VER_IHL] & 0x0f) * WORD
    }

    pub fn dscp(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN] >> 2
    }

    pub fn ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN] & 0x03
    }

    /// The total length field: header plus payload, in bytes.
    pub fn total_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::LENGTH)
    }

    pub fn ident(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::IDENT)
    }

    pub fn dont_frag(&self) -> bool {
        read_u16(self.buffer.as_ref(), field::FLG_OFF) & FLAG_DF != 0
    }

    pub fn more_frags(&self) -> bool {
        read_u16(self.buffer.as_ref(), field::FLG_OFF) & FLAG_MF != 0
    }

    /// The fragment offset in bytes (the field counts 8-byte units).
    pub fn frag_offset(&self) -> u16 {
        (read_u16(self.buffer.as_ref(), field::FLG_OFF) & FRAG_OFFSET_MASK) * FRAG_UNIT
    }

    /// Whether this is a fragment (MF set or a nonzero offset): its payload is not a whole
    /// upper-layer packet, so an upper-layer checksum cannot be computed over it.
    pub fn is_fragment(&self) -> bool {
        self.more_frags() || self.frag_offset() != 0
    }

    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    pub fn protocol(&self) -> IpProtocol {
        IpProtocol(self.buffer.as_ref()[field::PROTOCOL])
    }

    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    pub fn src_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(read::<4>(self.buffer.as_ref(), field::SRC_ADDR))
    }

    pub fn dst_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(read::<4>(self.buffer.as_ref(), field::DST_ADDR))
    }

    /// The options, between the fixed header and the IHL-given header length.
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[field::OPTIONS..self.header_len()]
    }

    /// The payload: from the header length to the total length.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..usize::from(self.total_len())]
    }

    /// Whether the header checksum verifies.
    pub fn verify_checksum(&self) -> bool {
        Checksum::new()
            .add_bytes(&self.buffer.as_ref()[..self.header_len()])
            .verifies()
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    pub fn set_version(&mut self, version: u8) {
        let byte = &mut self.buffer.as_mut()[field::VER_IHL];
        *byte = (*byte & 0x0f) | (version << 4);
    }

    /// Sets IHL from a header length in bytes (rounded down to whole words).
    pub fn set_header_len(&mut self, len: usize) {
        let words = u8::try_from(len / WORD).unwrap_or(u8::MAX) & 0x0f;
        let byte = &mut self.buffer.as_mut()[field::VER_IHL];
        *byte = (*byte & 0xf0) | words;
    }

    pub fn set_dscp(&mut self, dscp: u8) {
        let byte = &mut self.buffer.as_mut()[field::DSCP_ECN];
        *byte = (*byte & 0x03) | (dscp << 2);
    }

    pub fn set_ecn(&mut self, ecn: u8) {
        let byte = &mut self.buffer.as_mut()[field::DSCP_ECN];
        *byte = (*byte & !0x03) | (ecn & 0x03);
    }

    pub fn set_total_len(&mut self, len: u16) {
        write_u16(self.buffer.as_mut(), field::LENGTH, len);
    }

    pub fn set_ident(&mut self, ident: u16) {
        write_u16(self.buffer.as_mut(), field::IDENT, ident);
    }

    /// Clears the flags (including the reserved bit) and the fragment offset.
    pub fn clear_flags(&mut self) {
        write_u16(self.buffer.as_mut(), field::FLG_OFF, 0);
    }

    pub fn set_dont_frag(&mut self, value: bool) {
        self.set_flag(FLAG_DF, value);
    }

    pub fn set_more_frags(&mut self, value: bool) {
        self.set_flag(FLAG_MF, value);
    }

    /// Sets the fragment offset from a byte offset (rounded down to 8-byte units).
    pub fn set_frag_offset(&mut self, offset: u16) {
        let raw = read_u16(self.buffer.as_ref(), field::FLG_OFF);
        let units = (offset / FRAG_UNIT) & FRAG_OFFSET_MASK;
        write_u16(
            self.buffer.as_mut(),
            field::FLG_OFF,
            (raw & !FRAG_OFFSET_MASK) | units,
        );
    }

    pub fn set_ttl(&mut self, ttl: u8) {
        self.buffer.as_mut()[field::TTL] = ttl;
    }

    pub fn set_protocol(&mut self, protocol: IpProtocol) {
        self.buffer.as_mut()[field::PROTOCOL] = protocol.0;
    }

    pub fn set_checksum(&mut self, checksum: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, checksum);
    }

    pub fn set_src_addr(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&addr.octets());
    }

    pub fn set_dst_addr(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&addr.octets());
    }

    pub fn options_mut(&mut self) -> &mut [u8] {
        let end = self.header_len();
        &mut self.buffer.as_mut()[field::OPTIONS..end]
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let range = self.header_len()..usize::from(self.total_len());
        &mut self.buffer.as_mut()[range]
    }

    /// Computes the header checksum (options included) and stores it.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let sum = checksum::internet_checksum(&self.buffer.as_ref()[..self.header_len()]);
        self.set_checksum(sum);
    }

    fn set_flag(&mut self, flag: u16, value: bool) {
        let raw = read_u16(self.buffer.as_ref(), field::FLG_OFF);
        let raw = if value { raw | flag } else { raw & !flag };
        write_u16(self.buffer.as_mut(), field::FLG_OFF, raw);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::captured;
    use proptest::prelude::*;

    fn exercise<T: AsRef<[u8]>>(p: &Ipv4Packet<T>) {
        let _ = (
            p.version(),
            p.header_len(),
            p.dscp(),
            p.ecn(),
            p.total_len(),
            p.ident(),
        );
        let _ = (
            p.dont_frag(),
            p.more_frags(),
            p.frag_offset(),
            p.is_fragment(),
            p.ttl(),
        );
        let _ = (p.protocol(), p.checksum(), p.src_addr(), p.dst_addr());
        let _ = (p.options(), p.payload(), p.verify_checksum());
    }

    #[test]
    fn captured_udp_every_getter() {
        let bytes = captured::bytes(captured::IPV4_UDP);
        let p = Ipv4Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.dscp(), 0);
        assert_eq!(p.ecn(), 0);
        assert_eq!(p.total_len(), 35);
        assert_eq!(p.ident(), 0xd883);
        assert!(p.dont_frag());
        assert!(!p.more_frags());
        assert_eq!(p.frag_offset(), 0);
        assert!(!p.is_fragment());
        assert_eq!(p.ttl(), 64);
        assert_eq!(p.protocol(), IpProtocol::UDP);
        assert_eq!(p.checksum(), 0xdde1);
        assert_eq!(p.src_addr(), Ipv4Addr::new(192, 0, 2, 1));
        assert_eq!(p.dst_addr(), Ipv4Addr::new(192, 0, 2, 99));
        assert!(p.options().is_empty());
        assert_eq!(p.payload(), &bytes[MIN_HEADER_LEN..]);
        assert!(p.verify_checksum());
    }

    #[test]
    fn build_matches_capture_byte_for_byte() {
        let expected = captured::bytes(captured::IPV4_UDP);
        let mut bytes = vec![0u8; expected.len()];
        let mut p = Ipv4Packet::new_unchecked(&mut bytes[..]);
        p.set_version(4);
        p.set_header_len(MIN_HEADER_LEN);
        p.set_total_len(35);
        p.set_ident(0xd883);
        p.set_dont_frag(true);
        p.set_ttl(64);
        p.set_protocol(IpProtocol::UDP);
        p.set_src_addr(Ipv4Addr::new(192, 0, 2, 1));
        p.set_dst_addr(Ipv4Addr::new(192, 0, 2, 99));
        p.payload_mut().copy_from_slice(&expected[MIN_HEADER_LEN..]);
        p.fill_checksum();
        assert_eq!(bytes, expected);
    }

    #[test]
    fn setters_round_trip_with_options() {
        let mut bytes = [0xffu8; 32];
        let mut p = Ipv4Packet::new_unchecked(&mut bytes[..]);
        p.set_version(4);
        p.set_header_len(24);
        p.set_dscp(0x2e);
        p.set_ecn(0b01);
        p.set_total_len(30);
        p.set_ident(0x1234);
        p.clear_flags();
        p.set_more_frags(true);
        p.set_frag_offset(1480);
        p.set_ttl(1);
        p.set_protocol(IpProtocol::ICMP);
        p.set_src_addr(Ipv4Addr::new(10, 0, 0, 1));
        p.set_dst_addr(Ipv4Addr::new(10, 0, 0, 2));
        p.options_mut().copy_from_slice(&[0x94, 0x04, 0x00, 0x00]); // Router Alert.
        p.payload_mut().fill(0xaa);
        p.fill_checksum();

        let p = Ipv4Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!((p.version(), p.header_len()), (4, 24));
        assert_eq!((p.dscp(), p.ecn()), (0x2e, 0b01));
        assert_eq!((p.total_len(), p.ident()), (30, 0x1234));
        assert!(!p.dont_frag() && p.more_frags() && p.is_fragment());
        assert_eq!(p.frag_offset(), 1480);
        assert_eq!((p.ttl(), p.protocol()), (1, IpProtocol::ICMP));
        assert_eq!(p.src_addr(), Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(p.dst_addr(), Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(p.options(), &[0x94, 0x04, 0x00, 0x00]);
        assert_eq!(p.payload(), &[0xaa; 6]);
        assert!(p.verify_checksum());
        // The trailing two bytes are beyond the total length: padding, not payload.
        assert_eq!(bytes[usize::from(p.total_len())..], [0xff, 0xff]);
    }

    #[test]
    fn checksum_covers_options_and_detects_corruption() {
        let mut bytes = captured::bytes(captured::IPV4_UDP);
        let mut p = Ipv4Packet::new_checked(&mut bytes[..]).unwrap();
        p.set_ttl(63);
        assert!(!p.verify_checksum());
        p.fill_checksum();
        assert!(p.verify_checksum());
        // The incremental update gives the same answer as the fill.
        assert_eq!(p.checksum(), checksum::update_u16(0xdde1, 0x4011, 0x3f11));
    }

    #[test]
    fn truncation_table() {
        let good = captured::bytes(captured::IPV4_UDP);
        let with = |f: &dyn Fn(&mut Ipv4Packet<&mut [u8]>)| {
            let mut b = good.clone();
            f(&mut Ipv4Packet::new_unchecked(&mut b[..]));
            b
        };
        let v6 = with(&|p| p.set_version(6));
        let ihl4 = with(&|p| p.set_header_len(16));
        let ihl15 = with(&|p| p.set_header_len(MAX_HEADER_LEN));
        let total19 = with(&|p| p.set_total_len(19));
        let total36 = with(&|p| p.set_total_len(36));
        let cases: &[(&str, &[u8], Result<(), WireError>)] = &[
            ("empty", &[], Err(WireError::Truncated)),
            ("19 bytes", &good[..19], Err(WireError::Truncated)),
            ("header only", &good[..20], Err(WireError::Truncated)),
            ("one short", &good[..34], Err(WireError::Truncated)),
            ("version 6", &v6, Err(WireError::BadVersion)),
            ("IHL 4", &ihl4, Err(WireError::BadHeaderLen)),
            ("IHL 15 past total", &ihl15, Err(WireError::BadLength)),
            ("total below header", &total19, Err(WireError::BadLength)),
            ("total past buffer", &total36, Err(WireError::Truncated)),
            ("exact", &good, Ok(())),
        ];
        for (name, bytes, expected) in cases {
            let got = Ipv4Packet::new_checked(*bytes).map(|_| ());
            assert_eq!(got, *expected, "{name}");
        }
        // Padding after the total length is accepted and excluded from the payload.
        let mut padded = good.clone();
        padded.extend_from_slice(&[0; 13]);
        let p = Ipv4Packet::new_checked(&padded[..]).unwrap();
        assert_eq!(p.payload().len(), 15);
    }

    proptest! {
        #[test]
        fn checked_view_never_panics(data in proptest::collection::vec(any::<u8>(), 0..100)) {
            if let Ok(p) = Ipv4Packet::new_checked(&data[..]) {
                exercise(&p);
                prop_assert!(p.header_len() <= usize::from(p.total_len()));
            }
        }

        #[test]
        fn checked_view_never_panics_v4_shaped(
            ihl in 0u8..16, total in 0u16..80, rest in proptest::collection::vec(any::<u8>(), 0..80),
        ) {
            let mut data = vec![0; 4];
            data.extend_from_slice(&rest);
            let mut p = Ipv4Packet::new_unchecked(&mut data[..]);
            p.set_version(4);
            p.set_header_len(usize::from(ihl) * WORD);
            p.set_total_len(total);
            if let Ok(p) = Ipv4Packet::new_checked(&data[..]) {
                exercise(&p);
            }
        }
    }
}
