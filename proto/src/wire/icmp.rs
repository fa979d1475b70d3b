//! ICMP (RFC 792) and ICMPv6 (RFC 4443) messages, enough to build and check echo (ping).
//!
//! Both share a layout: type, code, checksum, four bytes whose meaning depends on the type
//! (identifier and sequence number for echo), then the body. A view spans the whole IP payload,
//! since ICMP has no length field of its own. They differ in the checksum: ICMPv4 covers the
//! message alone, ICMPv6 also an IPv6 pseudo-header (RFC 4443 §2.3).

use super::checksum::{self, Checksum, PseudoHeader};
use super::{read_u16, write_u16, IpProtocol, WireError};
use std::net::Ipv6Addr;

pub mod field {
    use core::ops::Range;

    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Range<usize> = 2..4;
    /// The echo identifier; for other types, the first half of the type-specific word.
    pub const ECHO_IDENT: Range<usize> = 4..6;
    /// The echo sequence number; for other types, the second half of the type-specific word.
    pub const ECHO_SEQ_NO: Range<usize> = 6..8;
    /// ICMPv4 "fragmentation needed": the next-hop MTU (RFC 1191 §4).
    pub const NEXT_HOP_MTU: Range<usize> = 6..8;
    /// ICMPv6 "packet too big": the MTU (RFC 4443 §3.2).
    pub const MTU: Range<usize> = 4..8;
    pub const PAYLOAD: usize = ECHO_SEQ_NO.end;
}

/// Length of the header every ICMP and ICMPv6 message has (type, code, checksum, one word).
pub const HEADER_LEN: usize = field::PAYLOAD;

/// An ICMPv4 message type (IANA "ICMP Type Numbers").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Icmpv4Type(pub u8);

impl Icmpv4Type {
    pub const ECHO_REPLY: Self = Self(0);
    pub const DST_UNREACHABLE: Self = Self(3);
    pub const ECHO_REQUEST: Self = Self(8);
    pub const TIME_EXCEEDED: Self = Self(11);
}

/// An ICMPv6 message type (RFC 4443 §2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Icmpv6Type(pub u8);

impl Icmpv6Type {
    pub const DST_UNREACHABLE: Self = Self(1);
    pub const PACKET_TOO_BIG: Self = Self(2);
    pub const TIME_EXCEEDED: Self = Self(3);
    pub const ECHO_REQUEST: Self = Self(128);
    pub const ECHO_REPLY: Self = Self(129);
}

/// The accessors the two views share; only the type enum and the checksum differ.
macro_rules! icmp_view {
    ($(#[$doc:meta])* $name:ident, $msg_type:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct $name<T: AsRef<[u8]>> {
            buffer: T,
        }

        impl<T: AsRef<[u8]>> $name<T> {
            /// Wraps `buffer` without checking it; getters panic on a short buffer.
            pub const fn new_unchecked(buffer: T) -> Self {
                Self { buffer }
            }

            /// Wraps `buffer` (the whole IP payload) after checking that it holds the header.
            pub fn new_checked(buffer: T) -> Result<Self, WireError> {
                let packet = Self::new_unchecked(buffer);
                packet.check_len()?;
                Ok(packet)
            }

            /// Checks that the buffer holds the 8-byte header (`Truncated`).
            pub fn check_len(&self) -> Result<(), WireError> {
                if self.buffer.as_ref().len() < HEADER_LEN {
                    return Err(WireError::Truncated);
                }
                Ok(())
            }

            pub fn into_inner(self) -> T {
                self.buffer
            }

            pub fn msg_type(&self) -> $msg_type {
                $msg_type(self.buffer.as_ref()[field::TYPE])
            }

            pub fn msg_code(&self) -> u8 {
                self.buffer.as_ref()[field::CODE]
            }

            pub fn checksum(&self) -> u16 {
                read_u16(self.buffer.as_ref(), field::CHECKSUM)
            }

            /// The echo identifier (meaningful for echo request and reply).
            pub fn echo_ident(&self) -> u16 {
                read_u16(self.buffer.as_ref(), field::ECHO_IDENT)
            }

            /// The echo sequence number (meaningful for echo request and reply).
            pub fn echo_seq_no(&self) -> u16 {
                read_u16(self.buffer.as_ref(), field::ECHO_SEQ_NO)
            }

            /// The body after the 8-byte header: echo data, or an error's invoking packet.
            pub fn payload(&self) -> &[u8] {
                &self.buffer.as_ref()[field::PAYLOAD..]
            }
        }

        impl<T: AsRef<[u8]> + AsMut<[u8]>> $name<T> {
            pub fn set_msg_type(&mut self, msg_type: $msg_type) {
                self.buffer.as_mut()[field::TYPE] = msg_type.0;
            }

            pub fn set_msg_code(&mut self, code: u8) {
                self.buffer.as_mut()[field::CODE] = code;
            }

            pub fn set_checksum(&mut self, checksum: u16) {
                write_u16(self.buffer.as_mut(), field::CHECKSUM, checksum);
            }

            pub fn set_echo_ident(&mut self, ident: u16) {
                write_u16(self.buffer.as_mut(), field::ECHO_IDENT, ident);
            }

            pub fn set_echo_seq_no(&mut self, seq_no: u16) {
                write_u16(self.buffer.as_mut(), field::ECHO_SEQ_NO, seq_no);
            }

            pub fn payload_mut(&mut self) -> &mut [u8] {
                &mut self.buffer.as_mut()[field::PAYLOAD..]
            }
        }
    };
}

icmp_view!(
    /// A view of an ICMPv4 message.
    Icmpv4Packet,
    Icmpv4Type
);

icmp_view!(
    /// A view of an ICMPv6 message.
    Icmpv6Packet,
    Icmpv6Type
);

impl<T: AsRef<[u8]>> Icmpv4Packet<T> {
    /// Whether the checksum over the whole message verifies.
    pub fn verify_checksum(&self) -> bool {
        Checksum::new().add_bytes(self.buffer.as_ref()).verifies()
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv4Packet<T> {
    /// Sets the next-hop MTU of a "fragmentation needed" message (the unused half stays 0).
    pub fn set_next_hop_mtu(&mut self, mtu: u16) {
        let b = self.buffer.as_mut();
        b[field::ECHO_IDENT].fill(0);
        b[field::NEXT_HOP_MTU].copy_from_slice(&mtu.to_be_bytes());
    }

    /// Computes the checksum over the whole message and stores it.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let sum = checksum::internet_checksum(self.buffer.as_ref());
        self.set_checksum(sum);
    }
}

impl<T: AsRef<[u8]>> Icmpv6Packet<T> {
    fn sum(&self, src: Ipv6Addr, dst: Ipv6Addr) -> Checksum {
        let message = self.buffer.as_ref();
        let len = u32::try_from(message.len()).unwrap_or(u32::MAX);
        src.pseudo_header(dst, IpProtocol::ICMPV6, len)
            .add_bytes(message)
    }

    /// Whether the checksum over the pseudo-header and the whole message verifies.
    pub fn verify_checksum(&self, src: Ipv6Addr, dst: Ipv6Addr) -> bool {
        self.sum(src, dst).verifies()
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv6Packet<T> {
    /// Sets the MTU of a "packet too big" message.
    pub fn set_mtu(&mut self, mtu: u32) {
        self.buffer.as_mut()[field::MTU].copy_from_slice(&mtu.to_be_bytes());
    }

    /// Computes the checksum over the pseudo-header and the whole message and stores it.
    pub fn fill_checksum(&mut self, src: Ipv6Addr, dst: Ipv6Addr) {
        self.set_checksum(0);
        let sum = self.sum(src, dst).finish();
        self.set_checksum(sum);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{captured, ipv4, ipv6, Ipv4Packet, Ipv6Packet};
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    #[test]
    fn captured_icmpv4_echo() {
        let bytes = captured::bytes(captured::IPV4_ICMP_ECHO);
        let ip = Ipv4Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(ip.protocol(), IpProtocol::ICMP);
        assert!(ip.verify_checksum());
        let icmp = Icmpv4Packet::new_checked(ip.payload()).unwrap();
        assert_eq!(icmp.msg_type(), Icmpv4Type::ECHO_REQUEST);
        assert_eq!(icmp.msg_code(), 0);
        assert_eq!(icmp.checksum(), 0x9aaf);
        assert_eq!((icmp.echo_ident(), icmp.echo_seq_no()), (0xa5bb, 1));
        assert_eq!(icmp.payload(), b"pingdata");
        assert!(icmp.verify_checksum());
    }

    #[test]
    fn captured_icmpv6_echo() {
        let bytes = captured::bytes(captured::IPV6_ICMP_ECHO);
        let ip = Ipv6Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(ip.next_header(), IpProtocol::ICMPV6);
        let icmp = Icmpv6Packet::new_checked(ip.payload()).unwrap();
        assert_eq!(icmp.msg_type(), Icmpv6Type::ECHO_REQUEST);
        assert_eq!(icmp.msg_code(), 0);
        assert_eq!(icmp.checksum(), 0x9056);
        assert_eq!((icmp.echo_ident(), icmp.echo_seq_no()), (0xa5bc, 1));
        assert_eq!(icmp.payload(), b"pingdata6");
        assert!(icmp.verify_checksum(ip.src_addr(), ip.dst_addr()));
        let elsewhere = Ipv4Addr::LOCALHOST.to_ipv6_mapped();
        assert!(!icmp.verify_checksum(ip.src_addr(), elsewhere));
    }

    /// Builds a whole IPv4 ping from nothing, as an interop test would, and compares it with
    /// the kernel's.
    #[test]
    fn build_ipv4_ping_byte_for_byte() {
        let expected = captured::bytes(captured::IPV4_ICMP_ECHO);
        let mut bytes = vec![0u8; expected.len()];
        let mut ip = Ipv4Packet::new_unchecked(&mut bytes[..]);
        ip.set_version(4);
        ip.set_header_len(ipv4::MIN_HEADER_LEN);
        ip.set_total_len(36);
        ip.set_ident(0x52ab);
        ip.set_dont_frag(true);
        ip.set_ttl(64);
        ip.set_protocol(IpProtocol::ICMP);
        ip.set_src_addr(Ipv4Addr::new(192, 0, 2, 1));
        ip.set_dst_addr(Ipv4Addr::new(192, 0, 2, 99));
        ip.fill_checksum();
        let mut icmp = Icmpv4Packet::new_unchecked(ip.payload_mut());
        icmp.set_msg_type(Icmpv4Type::ECHO_REQUEST);
        icmp.set_echo_ident(0xa5bb);
        icmp.set_echo_seq_no(1);
        icmp.payload_mut().copy_from_slice(b"pingdata");
        icmp.fill_checksum();
        assert_eq!(bytes, expected);
    }

    #[test]
    fn build_ipv6_ping_byte_for_byte() {
        let expected = captured::bytes(captured::IPV6_ICMP_ECHO);
        let (src, dst) = (
            "2001:db8::1".parse().unwrap(),
            "2001:db8::99".parse().unwrap(),
        );
        let mut bytes = vec![0u8; expected.len()];
        let mut ip = Ipv6Packet::new_unchecked(&mut bytes[..]);
        ip.set_version(6);
        ip.set_flow_label(0xe_95d1);
        ip.set_payload_len(17);
        ip.set_next_header(IpProtocol::ICMPV6);
        ip.set_hop_limit(64);
        ip.set_src_addr(src);
        ip.set_dst_addr(dst);
        let mut icmp = Icmpv6Packet::new_unchecked(ip.payload_mut());
        icmp.set_msg_type(Icmpv6Type::ECHO_REQUEST);
        icmp.set_echo_ident(0xa5bc);
        icmp.set_echo_seq_no(1);
        icmp.payload_mut().copy_from_slice(b"pingdata6");
        icmp.fill_checksum(src, dst);
        assert_eq!(bytes, expected);
        assert_eq!(bytes.len(), ipv6::HEADER_LEN + 17);
    }

    /// Turning a request into a reply the way a responder does: swap addresses, change the
    /// type, keep ident, sequence and data, refill the checksums.
    #[test]
    fn echo_reply_from_request() {
        let mut bytes = captured::bytes(captured::IPV4_ICMP_ECHO);
        let mut ip = Ipv4Packet::new_checked(&mut bytes[..]).unwrap();
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        ip.set_src_addr(dst);
        ip.set_dst_addr(src);
        ip.fill_checksum();
        let mut icmp = Icmpv4Packet::new_checked(ip.payload_mut()).unwrap();
        icmp.set_msg_type(Icmpv4Type::ECHO_REPLY);
        icmp.fill_checksum();
        // Only the type byte changed (8 -> 0), so the checksum rose by 0x0800.
        assert_eq!(icmp.checksum(), 0x9aaf + 0x0800);

        let ip = Ipv4Packet::new_checked(&bytes[..]).unwrap();
        let reply = Icmpv4Packet::new_checked(ip.payload()).unwrap();
        assert_eq!(reply.msg_type(), Icmpv4Type::ECHO_REPLY);
        assert_eq!((reply.echo_ident(), reply.echo_seq_no()), (0xa5bb, 1));
        assert_eq!(reply.payload(), b"pingdata");
        assert!(ip.verify_checksum() && reply.verify_checksum());
    }

    #[test]
    fn truncation_table() {
        let bytes = captured::bytes(captured::IPV4_ICMP_ECHO);
        let message = &bytes[ipv4::MIN_HEADER_LEN..];
        for len in 0..HEADER_LEN {
            assert_eq!(
                Icmpv4Packet::new_checked(&message[..len]),
                Err(WireError::Truncated)
            );
            assert_eq!(
                Icmpv6Packet::new_checked(&message[..len]),
                Err(WireError::Truncated)
            );
        }
        let header_only = Icmpv4Packet::new_checked(&message[..HEADER_LEN]).unwrap();
        assert!(header_only.payload().is_empty());
    }

    proptest! {
        #[test]
        fn checked_views_never_panic(
            data in proptest::collection::vec(any::<u8>(), 0..40),
            src in any::<[u8; 16]>(),
        ) {
            if let Ok(p) = Icmpv4Packet::new_checked(&data[..]) {
                let _ = (p.msg_type(), p.msg_code(), p.checksum(), p.echo_ident());
                let _ = (p.echo_seq_no(), p.payload(), p.verify_checksum());
            }
            if let Ok(p) = Icmpv6Packet::new_checked(&data[..]) {
                let _ = (p.msg_type(), p.msg_code(), p.checksum(), p.echo_ident());
                let addr = Ipv6Addr::from(src);
                let _ = (p.echo_seq_no(), p.payload(), p.verify_checksum(addr, addr));
            }
        }
    }
}
