//! Typed zero-copy views of the Ethernet, IP, UDP and ICMP headers the data path touches.
//!
//! Each view wraps a caller's buffer (`T: AsRef<[u8]>`, and `AsMut<[u8]>` for the setters) in
//! the style of smoltcp: `new_unchecked` for buffers the caller has already validated,
//! `new_checked` for bytes from the network, getters for every field, and setters that write in
//! place. Each file names its header's field offsets once, in a private `mod field`.
//!
//! Contract: a view from `new_checked` never panics in a getter, `payload()` or a checksum
//! check. A view from `new_unchecked`, or one whose length fields were changed through setters,
//! may panic on slicing if the buffer is shorter than the header says.

pub mod checksum;
pub mod ethernet;
pub mod icmp;
pub mod ipv4;
pub mod ipv6;
pub mod tcp;
pub mod udp;

pub use checksum::{Checksum, PseudoHeader};
pub use ethernet::{EtherType, EthernetFrame, MacAddr};
pub use icmp::{Icmpv4Packet, Icmpv4Type, Icmpv6Packet, Icmpv6Type};
pub use ipv4::Ipv4Packet;
pub use ipv6::Ipv6Packet;
pub use udp::UdpPacket;

use core::ops::Range;
use std::net::IpAddr;

/// Why a buffer was refused as a packet. `Copy` and small, so the data path can count it as a
/// drop reason without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum WireError {
    /// The buffer is shorter than the fixed header, or than a length its header declares.
    #[error("packet truncated: shorter than its header or declared length")]
    Truncated,
    /// The IP version field does not match the view (or is neither 4 nor 6).
    #[error("unexpected IP version")]
    BadVersion,
    /// The IPv4 header length (IHL) is below the five-word minimum.
    #[error("IPv4 header length below 20 bytes")]
    BadHeaderLen,
    /// A length field is smaller than the header it covers.
    #[error("length field smaller than the header")]
    BadLength,
    /// A checksum did not verify (for callers that treat that as a drop reason).
    #[error("bad checksum")]
    BadChecksum,
}

/// An IP protocol number / IPv6 next-header value (IANA "Assigned Internet Protocol Numbers").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IpProtocol(pub u8);

impl IpProtocol {
    pub const HOPOPT: Self = Self(0);
    pub const ICMP: Self = Self(1);
    pub const TCP: Self = Self(6);
    pub const UDP: Self = Self(17);
    pub const IPV6_ROUTE: Self = Self(43);
    pub const IPV6_FRAG: Self = Self(44);
    pub const ICMPV6: Self = Self(58);
    pub const IPV6_NONXT: Self = Self(59);
    pub const IPV6_OPTS: Self = Self(60);
}

/// The IP version of `packet` (4 or 6) if its version nibble says so and its fixed header fits;
/// `None` otherwise. Mirrors the kernel's check of a decrypted packet before it reads any field
/// (receive.c, `wg_packet_consume_data_done`).
pub fn ip_version(packet: &[u8]) -> Option<u8> {
    let version = packet.first()? >> 4;
    match version {
        4 if packet.len() >= ipv4::MIN_HEADER_LEN => Some(4),
        6 if packet.len() >= ipv6::HEADER_LEN => Some(6),
        _ => None,
    }
}

/// The length of the IP packet at the start of `packet`, from its own header: IPv4's total
/// length, or IPv6's payload length plus the 40-byte header.
///
/// WireGuard pads plaintext to a multiple of 16 bytes, so a decrypted data message is trimmed to
/// this length, not to what was decrypted (whitepaper §5.4.6; receive.c). As in the kernel, an
/// IPv4 length below 20 is `BadLength`, a length beyond the buffer is `Truncated`, and IHL and
/// options are not examined here.
pub fn inner_packet_len(packet: &[u8]) -> Result<usize, WireError> {
    let len = match ip_version(packet) {
        Some(4) => {
            let len = usize::from(Ipv4Packet::new_unchecked(packet).total_len());
            if len < ipv4::MIN_HEADER_LEN {
                return Err(WireError::BadLength);
            }
            len
        }
        Some(6) => Ipv6Packet::new_unchecked(packet).total_len(),
        _ => {
            return Err(match packet.first() {
                Some(b) if matches!(b >> 4, 4 | 6) => WireError::Truncated,
                None => WireError::Truncated,
                Some(_) => WireError::BadVersion,
            })
        }
    };
    if len > packet.len() {
        return Err(WireError::Truncated);
    }
    Ok(len)
}

/// The source address of the IP packet at the start of `packet`, if its fixed header fits.
pub fn source_addr(packet: &[u8]) -> Option<IpAddr> {
    match ip_version(packet)? {
        4 => Some(Ipv4Packet::new_unchecked(packet).src_addr().into()),
        _ => Some(Ipv6Packet::new_unchecked(packet).src_addr().into()),
    }
}

/// The destination address of the IP packet at the start of `packet`, if its fixed header fits.
pub fn dest_addr(packet: &[u8]) -> Option<IpAddr> {
    match ip_version(packet)? {
        4 => Some(Ipv4Packet::new_unchecked(packet).dst_addr().into()),
        _ => Some(Ipv6Packet::new_unchecked(packet).dst_addr().into()),
    }
}

/// The bytes of a field, as an array. Field ranges are constants of the right width, so the
/// copy cannot mismatch.
fn read<const N: usize>(buf: &[u8], field: Range<usize>) -> [u8; N] {
    let mut out = [0; N];
    out.copy_from_slice(&buf[field]);
    out
}

fn read_u16(buf: &[u8], field: Range<usize>) -> u16 {
    u16::from_be_bytes(read(buf, field))
}

fn read_u32(buf: &[u8], field: Range<usize>) -> u32 {
    u32::from_be_bytes(read(buf, field))
}

fn write_u16(buf: &mut [u8], field: Range<usize>, value: u16) {
    buf[field].copy_from_slice(&value.to_be_bytes());
}

fn write_u32(buf: &mut [u8], field: Range<usize>, value: u32) {
    buf[field].copy_from_slice(&value.to_be_bytes());
}

/// Packets the kernel produced, captured from a TUN device in a scratch network namespace
/// (`unshare -n`; Linux computed every checksum). Shared by the per-header tests.
#[cfg(test)]
pub(crate) mod captured {
    /// 192.0.2.1:51820 -> 192.0.2.99:53, payload "wgxdp!\0" (odd length).
    pub const IPV4_UDP: &str = "45000023d88340004011dde1c0000201c0000263\
                                ca6c0035000f50dc77677864702100";
    /// [2001:db8::1]:51820 -> [2001:db8::99]:4500, payload "hello wireguard" (odd length).
    pub const IPV6_UDP: &str = "60056a2f0017114020010db8000000000000000000000001\
                                20010db8000000000000000000000099\
                                ca6c119400176d0a68656c6c6f20776972656775617264";
    /// A ping-socket echo request 192.0.2.1 -> 192.0.2.99, ident 0xa5bb, seq 1, "pingdata".
    pub const IPV4_ICMP_ECHO: &str = "4500002452ab4000400163c9c0000201c0000263\
                                      08009aafa5bb000170696e6764617461";
    /// A ping-socket echo request 2001:db8::1 -> 2001:db8::99, ident 0xa5bc, seq 1, "pingdata6".
    pub const IPV6_ICMP_ECHO: &str = "600e95d100113a4020010db8000000000000000000000001\
                                      20010db8000000000000000000000099\
                                      80009056a5bc000170696e676461746136";

    pub fn bytes(hex: &str) -> Vec<u8> {
        hex::decode(hex).unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn helpers_on_captured_packets() {
        let v4 = captured::bytes(captured::IPV4_UDP);
        assert_eq!(ip_version(&v4), Some(4));
        assert_eq!(inner_packet_len(&v4), Ok(35));
        assert_eq!(source_addr(&v4), Some(Ipv4Addr::new(192, 0, 2, 1).into()));
        assert_eq!(dest_addr(&v4), Some(Ipv4Addr::new(192, 0, 2, 99).into()));

        let v6 = captured::bytes(captured::IPV6_UDP);
        assert_eq!(ip_version(&v6), Some(6));
        assert_eq!(inner_packet_len(&v6), Ok(63));
        let src: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let dst: Ipv6Addr = "2001:db8::99".parse().unwrap();
        assert_eq!(source_addr(&v6), Some(src.into()));
        assert_eq!(dest_addr(&v6), Some(dst.into()));
    }

    #[test]
    fn inner_len_ignores_wireguard_padding() {
        // A 35-byte packet padded to 48 as a decrypted data message would be.
        let mut padded = captured::bytes(captured::IPV4_UDP);
        padded.resize(48, 0);
        assert_eq!(inner_packet_len(&padded), Ok(35));
        let mut padded = captured::bytes(captured::IPV6_UDP);
        padded.resize(64, 0);
        assert_eq!(inner_packet_len(&padded), Ok(63));
    }

    #[test]
    fn inner_len_table() {
        let v4 = captured::bytes(captured::IPV4_UDP);
        let v6 = captured::bytes(captured::IPV6_UDP);
        let v4_with = |f: &dyn Fn(&mut Ipv4Packet<&mut [u8]>)| {
            let mut b = v4.clone();
            f(&mut Ipv4Packet::new_unchecked(&mut b[..]));
            b
        };
        let short_total = v4_with(&|p| p.set_total_len(19));
        let long_total = v4_with(&|p| p.set_total_len(36));
        let v5 = v4_with(&|p| p.set_version(5));
        let mut long_payload = v6.clone();
        Ipv6Packet::new_unchecked(&mut long_payload[..]).set_payload_len(24);
        let cases: &[(&str, &[u8], Result<usize, WireError>)] = &[
            ("empty", &[], Err(WireError::Truncated)),
            ("v4 nibble, 19 bytes", &v4[..19], Err(WireError::Truncated)),
            ("v6 nibble, 39 bytes", &v6[..39], Err(WireError::Truncated)),
            ("v6 header only", &v6[..40], Err(WireError::Truncated)),
            ("v4 cut short", &v4[..34], Err(WireError::Truncated)),
            (
                "v4 total below header",
                &short_total,
                Err(WireError::BadLength),
            ),
            (
                "v4 total past buffer",
                &long_total,
                Err(WireError::Truncated),
            ),
            (
                "v6 payload past buffer",
                &long_payload,
                Err(WireError::Truncated),
            ),
            ("version 5", &v5, Err(WireError::BadVersion)),
            ("zero byte", &[0], Err(WireError::BadVersion)),
            ("v4 exact", &v4, Ok(35)),
            ("v6 exact", &v6, Ok(63)),
        ];
        for (name, packet, expected) in cases {
            assert_eq!(inner_packet_len(packet), *expected, "{name}");
        }
        assert_eq!(source_addr(&v4[..19]), None);
        assert_eq!(dest_addr(&v6[..39]), None);
        assert_eq!(ip_version(&v5), None);
    }

    proptest! {
        #[test]
        fn helpers_never_panic(data in proptest::collection::vec(any::<u8>(), 0..80)) {
            let version = ip_version(&data);
            let len = inner_packet_len(&data);
            prop_assert_eq!(source_addr(&data).is_some(), version.is_some());
            prop_assert_eq!(dest_addr(&data).is_some(), version.is_some());
            if let Ok(len) = len {
                prop_assert!(len <= data.len());
                prop_assert!(version.is_some());
            }
        }
    }
}
