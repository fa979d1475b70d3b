//! The inner packets a generated peer sends: IPv4/UDP from its tunnel address to the sink,
//! checksums correct, and a [`Tag`] at the start of the UDP payload that the sink verifies.

use proto::wire::{IpProtocol, Ipv4Packet, UdpPacket};
use std::net::SocketAddrV4;

const IPV4_HEADER_LEN: usize = 20;
const UDP_HEADER_LEN: usize = 8;
/// Source port of every generated packet (the sink does not care).
pub const SRC_PORT: u16 = 40_000;

/// What the sink checks in each payload: the magic, which round of the pool and which packet
/// of it (so duplicates and strays are told apart from delivered packets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tag {
    pub round: u32,
    pub seq: u64,
}

mod field {
    use std::ops::Range;
    pub const MAGIC: Range<usize> = 0..4;
    pub const ROUND: Range<usize> = 4..8;
    pub const SEQ: Range<usize> = 8..16;
}
pub const TAG_LEN: usize = field::SEQ.end;
const MAGIC: [u8; 4] = *b"WGXB";

impl Tag {
    pub fn write(self, payload: &mut [u8]) {
        payload[field::MAGIC].copy_from_slice(&MAGIC);
        payload[field::ROUND].copy_from_slice(&self.round.to_be_bytes());
        payload[field::SEQ].copy_from_slice(&self.seq.to_be_bytes());
    }

    /// The tag of a UDP payload, if it is one of ours.
    pub fn read(payload: &[u8]) -> Option<Tag> {
        if payload.len() < TAG_LEN || payload[field::MAGIC] != MAGIC {
            return None;
        }
        Some(Tag {
            round: u32::from_be_bytes(payload[field::ROUND].try_into().ok()?),
            seq: u64::from_be_bytes(payload[field::SEQ].try_into().ok()?),
        })
    }
}

/// Writes an IPv4/UDP packet of exactly `buf.len()` bytes (at least 44) from `src` to `dst`.
pub fn write_udp4(buf: &mut [u8], src: SocketAddrV4, dst: SocketAddrV4, tag: Tag) {
    let total = u16::try_from(buf.len()).unwrap_or(u16::MAX);
    let mut ip = Ipv4Packet::new_unchecked(&mut *buf);
    ip.set_version(4);
    ip.set_header_len(IPV4_HEADER_LEN);
    ip.set_total_len(total);
    ip.set_dscp(0);
    ip.set_ecn(0);
    ip.set_ident(tag.seq as u16);
    ip.clear_flags();
    ip.set_dont_frag(true);
    ip.set_ttl(64);
    ip.set_protocol(IpProtocol::UDP);
    ip.set_src_addr(*src.ip());
    ip.set_dst_addr(*dst.ip());
    ip.fill_checksum();
    let mut udp = UdpPacket::new_unchecked(ip.payload_mut());
    udp.set_src_port(src.port());
    udp.set_dst_port(dst.port());
    udp.set_length(total - IPV4_HEADER_LEN as u16);
    let payload = udp.payload_mut();
    tag.write(payload);
    for (k, b) in payload[TAG_LEN..].iter_mut().enumerate() {
        *b = k as u8;
    }
    udp.fill_checksum(*src.ip(), *dst.ip());
}

/// Room the headers take before the tag.
pub const HEADERS_LEN: usize = IPV4_HEADER_LEN + UDP_HEADER_LEN;

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn packet_checks_out() {
        let src = SocketAddrV4::new(Ipv4Addr::new(198, 19, 0, 1), SRC_PORT);
        let dst = SocketAddrV4::new(Ipv4Addr::new(198, 18, 1, 2), 9000);
        let tag = Tag { round: 3, seq: 99 };
        for len in [44usize, 64, 512, 1420] {
            let mut buf = vec![0u8; len];
            write_udp4(&mut buf, src, dst, tag);
            let ip = Ipv4Packet::new_checked(&buf[..]).unwrap();
            assert!(ip.verify_checksum());
            assert_eq!(usize::from(ip.total_len()), len);
            let udp = UdpPacket::new_checked(ip.payload()).unwrap();
            assert!(udp.verify_checksum(*src.ip(), *dst.ip()));
            assert_eq!(Tag::read(udp.payload()), Some(tag));
            assert_eq!(proto::wire::inner_packet_len(&buf), Ok(len));
        }
        assert_eq!(Tag::read(b"WGXA0123456789ab"), None);
    }
}
