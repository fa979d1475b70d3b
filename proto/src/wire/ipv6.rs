//! IPv6 fixed headers (RFC 8200 §3). Extension headers are not walked: `next_header` reports
//! the first one, and `payload` starts right after the fixed header.

use super::{read, read_u16, read_u32, write_u16, write_u32, IpProtocol, WireError};
use std::net::Ipv6Addr;

mod field {
    use core::ops::Range;

    /// Version (4 bits), traffic class (8 bits), flow label (20 bits).
    pub const VER_TC_FLOW: Range<usize> = 0..4;
    pub const LENGTH: Range<usize> = 4..6;
    pub const NXT_HDR: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC_ADDR: Range<usize> = 8..24;
    pub const DST_ADDR: Range<usize> = 24..40;
    pub const PAYLOAD: usize = DST_ADDR.end;
}

/// Length of the fixed header.
pub const HEADER_LEN: usize = field::PAYLOAD;

const VERSION_SHIFT: u32 = 28;
const TC_SHIFT: u32 = 20;
const TC_MASK: u32 = 0x0ff0_0000;
const FLOW_MASK: u32 = 0x000f_ffff;

/// A view of an IPv6 packet: the fixed header and what follows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// Wraps `buffer` without checking it; getters may panic on a short buffer.
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps `buffer` after [`check_len`](Self::check_len). Bytes past the payload length are
    /// allowed and ignored by [`payload`](Self::payload).
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks that the fixed header fits (`Truncated`), the version is 6 (`BadVersion`), and the
    /// buffer holds the payload length (`Truncated`). A payload length of 0 is taken literally
    /// (no jumbograms).
    pub fn check_len(&self) -> Result<(), WireError> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if self.version() != 6 {
            return Err(WireError::BadVersion);
        }
        if len < self.total_len() {
            return Err(WireError::Truncated);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn ver_tc_flow(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::VER_TC_FLOW)
    }

    pub fn version(&self) -> u8 {
        (self.ver_tc_flow() >> VERSION_SHIFT) as u8
    }

    /// The traffic class: DSCP in the high six bits, ECN in the low two.
    pub fn traffic_class(&self) -> u8 {
        ((self.ver_tc_flow() & TC_MASK) >> TC_SHIFT) as u8
    }

    pub fn dscp(&self) -> u8 {
        self.traffic_class() >> 2
    }

    pub fn ecn(&self) -> u8 {
        self.traffic_class() & 0x03
    }

    pub fn flow_label(&self) -> u32 {
        self.ver_tc_flow() & FLOW_MASK
    }

    /// The payload length field: bytes after the fixed header, extension headers included.
    pub fn payload_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::LENGTH)
    }

    /// The packet's length from its header: 40 plus the payload length.
    pub fn total_len(&self) -> usize {
        HEADER_LEN + usize::from(self.payload_len())
    }

    /// The first extension header or the upper-layer protocol.
    pub fn next_header(&self) -> IpProtocol {
        IpProtocol(self.buffer.as_ref()[field::NXT_HDR])
    }

    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    pub fn src_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(read::<16>(self.buffer.as_ref(), field::SRC_ADDR))
    }

    pub fn dst_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(read::<16>(self.buffer.as_ref(), field::DST_ADDR))
    }

    /// The payload-length bytes after the fixed header.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD..self.total_len()]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    fn set_ver_tc_flow(&mut self, value: u32) {
        write_u32(self.buffer.as_mut(), field::VER_TC_FLOW, value);
    }

    pub fn set_version(&mut self, version: u8) {
        let word = self.ver_tc_flow() & !(u32::MAX << VERSION_SHIFT);
        self.set_ver_tc_flow(word | (u32::from(version & 0x0f) << VERSION_SHIFT));
    }

    pub fn set_traffic_class(&mut self, class: u8) {
        let word = self.ver_tc_flow() & !TC_MASK;
        self.set_ver_tc_flow(word | (u32::from(class) << TC_SHIFT));
    }

    pub fn set_dscp(&mut self, dscp: u8) {
        self.set_traffic_class((self.traffic_class() & 0x03) | (dscp << 2));
    }

    pub fn set_ecn(&mut self, ecn: u8) {
        self.set_traffic_class((self.traffic_class() & !0x03) | (ecn & 0x03));
    }

    /// Sets the flow label (its low 20 bits).
    pub fn set_flow_label(&mut self, label: u32) {
        let word = self.ver_tc_flow() & !FLOW_MASK;
        self.set_ver_tc_flow(word | (label & FLOW_MASK));
    }

    pub fn set_payload_len(&mut self, len: u16) {
        write_u16(self.buffer.as_mut(), field::LENGTH, len);
    }

    pub fn set_next_header(&mut self, next: IpProtocol) {
        self.buffer.as_mut()[field::NXT_HDR] = next.0;
    }

    pub fn set_hop_limit(&mut self, hop_limit: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = hop_limit;
    }

    pub fn set_src_addr(&mut self, addr: Ipv6Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&addr.octets());
    }

    pub fn set_dst_addr(&mut self, addr: Ipv6Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&addr.octets());
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = self.total_len();
        &mut self.buffer.as_mut()[field::PAYLOAD..end]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::captured;
    use proptest::prelude::*;

    fn addr(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    #[test]
    fn captured_udp_every_getter() {
        let bytes = captured::bytes(captured::IPV6_UDP);
        let p = Ipv6Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(p.version(), 6);
        assert_eq!(p.traffic_class(), 0);
        assert_eq!((p.dscp(), p.ecn()), (0, 0));
        assert_eq!(p.flow_label(), 0x5_6a2f);
        assert_eq!(p.payload_len(), 23);
        assert_eq!(p.total_len(), 63);
        assert_eq!(p.next_header(), IpProtocol::UDP);
        assert_eq!(p.hop_limit(), 64);
        assert_eq!(p.src_addr(), addr("2001:db8::1"));
        assert_eq!(p.dst_addr(), addr("2001:db8::99"));
        assert_eq!(p.payload(), &bytes[HEADER_LEN..]);
    }

    #[test]
    fn build_matches_capture_byte_for_byte() {
        let expected = captured::bytes(captured::IPV6_UDP);
        let mut bytes = vec![0u8; expected.len()];
        let mut p = Ipv6Packet::new_unchecked(&mut bytes[..]);
        p.set_version(6);
        p.set_flow_label(0x5_6a2f);
        p.set_payload_len(23);
        p.set_next_header(IpProtocol::UDP);
        p.set_hop_limit(64);
        p.set_src_addr(addr("2001:db8::1"));
        p.set_dst_addr(addr("2001:db8::99"));
        p.payload_mut().copy_from_slice(&expected[HEADER_LEN..]);
        assert_eq!(bytes, expected);
    }

    #[test]
    fn setters_round_trip() {
        let mut bytes = [0xffu8; HEADER_LEN + 4];
        let mut p = Ipv6Packet::new_unchecked(&mut bytes[..]);
        p.set_version(6);
        p.set_traffic_class(0);
        p.set_dscp(0x2e);
        p.set_ecn(0b11);
        p.set_flow_label(0xf_ffff_u32 + 1); // Only the low 20 bits are kept.
        p.set_payload_len(2);
        p.set_next_header(IpProtocol::IPV6_FRAG);
        p.set_hop_limit(255);
        p.set_src_addr(addr("fe80::1"));
        p.set_dst_addr(addr("ff02::1"));
        p.payload_mut().copy_from_slice(&[1, 2]);

        let p = Ipv6Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(p.version(), 6);
        assert_eq!(p.traffic_class(), (0x2e << 2) | 0b11);
        assert_eq!((p.dscp(), p.ecn()), (0x2e, 0b11));
        assert_eq!(p.flow_label(), 0);
        assert_eq!(p.next_header(), IpProtocol::IPV6_FRAG);
        assert_eq!(p.hop_limit(), 255);
        assert_eq!(p.src_addr(), addr("fe80::1"));
        assert_eq!(p.dst_addr(), addr("ff02::1"));
        assert_eq!(p.payload(), &[1, 2]);
        assert_eq!(bytes[HEADER_LEN + 2..], [0xff, 0xff]);
    }

    #[test]
    fn truncation_table() {
        let good = captured::bytes(captured::IPV6_UDP);
        let mut v4 = good.clone();
        Ipv6Packet::new_unchecked(&mut v4[..]).set_version(4);
        let mut long = good.clone();
        Ipv6Packet::new_unchecked(&mut long[..]).set_payload_len(24);
        let mut empty_payload = good.clone();
        Ipv6Packet::new_unchecked(&mut empty_payload[..]).set_payload_len(0);
        let cases: &[(&str, &[u8], Result<(), WireError>)] = &[
            ("empty", &[], Err(WireError::Truncated)),
            ("39 bytes", &good[..39], Err(WireError::Truncated)),
            ("header only", &good[..40], Err(WireError::Truncated)),
            ("one short", &good[..62], Err(WireError::Truncated)),
            ("version 4", &v4, Err(WireError::BadVersion)),
            ("payload past buffer", &long, Err(WireError::Truncated)),
            ("zero payload length", &empty_payload, Ok(())),
            ("exact", &good, Ok(())),
        ];
        for (name, bytes, expected) in cases {
            let got = Ipv6Packet::new_checked(*bytes).map(|_| ());
            assert_eq!(got, *expected, "{name}");
        }
        let p = Ipv6Packet::new_checked(&empty_payload[..]).unwrap();
        assert!(p.payload().is_empty());
    }

    proptest! {
        #[test]
        fn checked_view_never_panics(
            len in 0u16..40, rest in proptest::collection::vec(any::<u8>(), 0..100),
        ) {
            // Random bytes after a version-6 first nibble, so the checked path is reached often.
            let mut data = rest;
            if data.len() >= HEADER_LEN {
                let mut p = Ipv6Packet::new_unchecked(&mut data[..]);
                p.set_version(6);
                p.set_payload_len(len);
            }
            if let Ok(p) = Ipv6Packet::new_checked(&data[..]) {
                let _ = (p.version(), p.traffic_class(), p.dscp(), p.ecn(), p.flow_label());
                let _ = (p.payload_len(), p.next_header(), p.hop_limit());
                let _ = (p.src_addr(), p.dst_addr());
                prop_assert_eq!(p.payload().len(), usize::from(p.payload_len()));
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(p) = Ipv6Packet::new_checked(&data[..]) {
                let _ = (p.payload(), p.src_addr(), p.flow_label());
            }
        }
    }
}
