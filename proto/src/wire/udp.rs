//! UDP headers (RFC 768) and their pseudo-header checksums over IPv4 and IPv6 (RFC 8200 §8.1).

use super::checksum::{Checksum, PseudoHeader};
use super::{read_u16, write_u16, IpProtocol, WireError};

pub mod field {
    use core::ops::Range;

    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const LENGTH: Range<usize> = 4..6;
    pub const CHECKSUM: Range<usize> = 6..8;
    pub const PAYLOAD: usize = CHECKSUM.end;
}

/// Length of the UDP header.
pub const HEADER_LEN: usize = field::PAYLOAD;

/// A view of a UDP datagram: header and payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    /// Wraps `buffer` without checking it; getters may panic on a short buffer.
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps `buffer` after [`check_len`](Self::check_len). Bytes past the UDP length are
    /// allowed and ignored.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks that the header fits (`Truncated`), the length field covers at least the header
    /// (`BadLength`), and the buffer holds that length (`Truncated`).
    pub fn check_len(&self) -> Result<(), WireError> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let udp_len = usize::from(self.length());
        if udp_len < HEADER_LEN {
            return Err(WireError::BadLength);
        }
        if len < udp_len {
            return Err(WireError::Truncated);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn src_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::SRC_PORT)
    }

    pub fn dst_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::DST_PORT)
    }

    /// The length field: header plus payload, in bytes.
    pub fn length(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::LENGTH)
    }

    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// The payload, up to the length field.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD..usize::from(self.length())]
    }

    /// The checksum-covered sum of pseudo-header, header and payload (checksum field included).
    fn sum<A: PseudoHeader>(&self, src: A, dst: A) -> Checksum {
        let datagram = &self.buffer.as_ref()[..usize::from(self.length())];
        src.pseudo_header(dst, IpProtocol::UDP, u32::from(self.length()))
            .add_bytes(datagram)
    }

    /// Whether the checksum verifies for this source and destination. Over IPv4 a zero checksum
    /// means the sender did not compute one and verifies; over IPv6 it never does.
    pub fn verify_checksum<A: PseudoHeader>(&self, src: A, dst: A) -> bool {
        if self.checksum() == 0 {
            return A::UDP_CHECKSUM_OPTIONAL;
        }
        self.sum(src, dst).verifies()
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    pub fn set_src_port(&mut self, port: u16) {
        write_u16(self.buffer.as_mut(), field::SRC_PORT, port);
    }

    pub fn set_dst_port(&mut self, port: u16) {
        write_u16(self.buffer.as_mut(), field::DST_PORT, port);
    }

    pub fn set_length(&mut self, len: u16) {
        write_u16(self.buffer.as_mut(), field::LENGTH, len);
    }

    pub fn set_checksum(&mut self, checksum: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, checksum);
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = usize::from(self.length());
        &mut self.buffer.as_mut()[field::PAYLOAD..end]
    }

    /// Computes the checksum from scratch (ignoring what the field held, e.g. a partial sum
    /// left by checksum offload) and stores it. A computed 0 is stored as 0xffff, since 0 means
    /// "no checksum" over IPv4 and is invalid over IPv6 (RFC 768, RFC 8200 §8.1).
    pub fn fill_checksum<A: PseudoHeader>(&mut self, src: A, dst: A) {
        self.set_checksum(0);
        let checksum = self.sum(src, dst).finish();
        self.set_checksum(if checksum == 0 { 0xffff } else { checksum });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{captured, Ipv4Packet, Ipv6Packet};
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn v6(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    #[test]
    fn captured_ipv4_udp() {
        let bytes = captured::bytes(captured::IPV4_UDP);
        let ip = Ipv4Packet::new_checked(&bytes[..]).unwrap();
        let udp = UdpPacket::new_checked(ip.payload()).unwrap();
        assert_eq!(udp.src_port(), 51820);
        assert_eq!(udp.dst_port(), 53);
        assert_eq!(udp.length(), 15);
        assert_eq!(udp.checksum(), 0x50dc);
        assert_eq!(udp.payload(), b"wgxdp!\0");
        assert!(udp.verify_checksum(ip.src_addr(), ip.dst_addr()));
        assert!(!udp.verify_checksum(ip.dst_addr(), Ipv4Addr::new(192, 0, 2, 2)));
    }

    #[test]
    fn captured_ipv6_udp() {
        let bytes = captured::bytes(captured::IPV6_UDP);
        let ip = Ipv6Packet::new_checked(&bytes[..]).unwrap();
        let udp = UdpPacket::new_checked(ip.payload()).unwrap();
        assert_eq!((udp.src_port(), udp.dst_port()), (51820, 4500));
        assert_eq!(udp.length(), 23);
        assert_eq!(udp.checksum(), 0x6d0a);
        assert_eq!(udp.payload(), b"hello wireguard");
        assert!(udp.verify_checksum(ip.src_addr(), ip.dst_addr()));
    }

    #[test]
    fn ipv6_known_answer() {
        // A worked example from a Q&A thread on the IPv6 UDP checksum (answer 0x7ed5),
        // re-checked by an independent computation.
        let src = v6("2100::1:abcd:0:0:1");
        let dst = v6("fd00::160");
        let mut bytes = hex::decode("26922692000c000012345678").unwrap();
        let mut udp = UdpPacket::new_checked(&mut bytes[..]).unwrap();
        udp.fill_checksum(src, dst);
        assert_eq!(udp.checksum(), 0x7ed5);
        assert!(udp.verify_checksum(src, dst));
    }

    #[test]
    fn fill_rebuilds_captured_checksums_over_partial_sums() {
        // Offloaded frames arrive with only the pseudo-header sum in the field; filling must
        // overwrite it with the whole checksum.
        let mut bytes = captured::bytes(captured::IPV4_UDP);
        let mut ip = Ipv4Packet::new_checked(&mut bytes[..]).unwrap();
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        let mut udp = UdpPacket::new_checked(ip.payload_mut()).unwrap();
        let partial = src.pseudo_header(dst, IpProtocol::UDP, 15).sum();
        udp.set_checksum(partial);
        assert!(!udp.verify_checksum(src, dst));
        udp.fill_checksum(src, dst);
        assert_eq!(udp.checksum(), 0x50dc);

        let mut bytes = captured::bytes(captured::IPV6_UDP);
        let mut ip = Ipv6Packet::new_checked(&mut bytes[..]).unwrap();
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        let mut udp = UdpPacket::new_checked(ip.payload_mut()).unwrap();
        udp.set_checksum(0x1234);
        udp.fill_checksum(src, dst);
        assert_eq!(udp.checksum(), 0x6d0a);
    }

    /// Returns a datagram whose computed checksum is 0: the payload's first word is chosen to
    /// cancel the rest of the sum.
    fn zero_sum_datagram<A: PseudoHeader>(src: A, dst: A) -> Vec<u8> {
        let mut bytes = hex::decode("ca6c11940010000000000102030405").unwrap();
        bytes.push(0x06);
        let mut udp = UdpPacket::new_checked(&mut bytes[..]).unwrap();
        udp.fill_checksum(src, dst);
        let cancel = udp.checksum();
        udp.payload_mut()[..2].copy_from_slice(&cancel.to_be_bytes());
        bytes
    }

    #[test]
    fn zero_checksum_is_sent_as_all_ones() {
        let (src6, dst6) = (v6("2001:db8::1"), v6("2001:db8::2"));
        let mut bytes = zero_sum_datagram(src6, dst6);
        let mut udp = UdpPacket::new_checked(&mut bytes[..]).unwrap();
        udp.fill_checksum(src6, dst6);
        assert_eq!(udp.checksum(), 0xffff);
        assert!(udp.verify_checksum(src6, dst6));

        let (src4, dst4) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
        let mut bytes = zero_sum_datagram(src4, dst4);
        let mut udp = UdpPacket::new_checked(&mut bytes[..]).unwrap();
        udp.fill_checksum(src4, dst4);
        assert_eq!(udp.checksum(), 0xffff);
        assert!(udp.verify_checksum(src4, dst4));
    }

    #[test]
    fn zero_field_means_none_over_ipv4_only() {
        let mut bytes = captured::bytes(captured::IPV4_UDP);
        let mut udp = UdpPacket::new_checked(&mut bytes[MIN_IP4..]).unwrap();
        udp.set_checksum(0);
        assert!(udp.verify_checksum(Ipv4Addr::LOCALHOST, Ipv4Addr::LOCALHOST));
        assert!(!udp.verify_checksum(Ipv6Addr::LOCALHOST, Ipv6Addr::LOCALHOST));
    }

    const MIN_IP4: usize = crate::wire::ipv4::MIN_HEADER_LEN;

    #[test]
    fn setters_round_trip() {
        let mut bytes = [0u8; HEADER_LEN + 3];
        let mut udp = UdpPacket::new_unchecked(&mut bytes[..]);
        udp.set_src_port(51820);
        udp.set_dst_port(51821);
        udp.set_length(11);
        udp.payload_mut().copy_from_slice(b"abc");
        udp.set_checksum(0xbeef);
        let udp = UdpPacket::new_checked(&bytes[..]).unwrap();
        assert_eq!((udp.src_port(), udp.dst_port()), (51820, 51821));
        assert_eq!((udp.length(), udp.checksum()), (11, 0xbeef));
        assert_eq!(udp.payload(), b"abc");
    }

    #[test]
    fn truncation_table() {
        let good = hex::decode("ca6c119400090000ff").unwrap();
        let with_len = |len: u16| {
            let mut b = good.clone();
            UdpPacket::new_unchecked(&mut b[..]).set_length(len);
            b
        };
        let (len7, len10, len8) = (with_len(7), with_len(10), with_len(8));
        let cases: &[(&str, &[u8], Result<(), WireError>)] = &[
            ("empty", &[], Err(WireError::Truncated)),
            ("7 bytes", &good[..7], Err(WireError::Truncated)),
            ("header only", &good[..8], Err(WireError::Truncated)),
            ("length below header", &len7, Err(WireError::BadLength)),
            ("length past buffer", &len10, Err(WireError::Truncated)),
            ("length 8, one byte of padding", &len8, Ok(())),
            ("exact", &good, Ok(())),
        ];
        for (name, bytes, expected) in cases {
            let got = UdpPacket::new_checked(*bytes).map(|_| ());
            assert_eq!(got, *expected, "{name}");
        }
    }

    proptest! {
        #[test]
        fn checked_view_never_panics(
            data in proptest::collection::vec(any::<u8>(), 0..40),
            src in any::<[u8; 16]>(),
            dst in any::<[u8; 16]>(),
            src4 in any::<[u8; 4]>(),
        ) {
            if let Ok(udp) = UdpPacket::new_checked(&data[..]) {
                let _ = (udp.src_port(), udp.dst_port(), udp.length(), udp.checksum());
                let _ = udp.payload();
                let _ = udp.verify_checksum(Ipv6Addr::from(src), Ipv6Addr::from(dst));
                let _ = udp.verify_checksum(Ipv4Addr::from(src4), Ipv4Addr::LOCALHOST);
            }
        }

        #[test]
        fn fill_then_verify(
            payload in proptest::collection::vec(any::<u8>(), 0..300),
            src in any::<[u8; 16]>(),
            dst in any::<[u8; 16]>(),
        ) {
            let mut bytes = vec![0u8; HEADER_LEN];
            bytes.extend_from_slice(&payload);
            let len = u16::try_from(bytes.len()).unwrap();
            let mut udp = UdpPacket::new_unchecked(&mut bytes[..]);
            udp.set_length(len);
            let (src, dst) = (Ipv6Addr::from(src), Ipv6Addr::from(dst));
            udp.fill_checksum(src, dst);
            prop_assert_ne!(udp.checksum(), 0);
            prop_assert!(udp.verify_checksum(src, dst));
        }
    }
}
