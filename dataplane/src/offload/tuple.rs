//! A flow's tuple as the workers see it in a packet, and the rewrite of a packet from one
//! tuple into another (the translation conntrack chose: SNAT, MASQUERADE, DNAT, or none).
//!
//! Only IPv4 TCP and UDP packets that are whole (no fragment) and, for TCP, carry none of
//! SYN, FIN and RST are a flow's fast-path packets: the kernel's connection tracking must see
//! the packets that open and close a connection, and only it can reassemble fragments.
//! Everything else keeps the kernel's path.

use proto::wire::checksum::{self, update_u16};
use proto::wire::{tcp, udp, IpProtocol, Ipv4Packet};
use std::net::Ipv4Addr;

/// A flow's 5-tuple in one direction, as in the IPv4 and TCP/UDP headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tuple {
    pub proto: u8,
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub sport: u16,
    pub dport: u16,
}

pub const TCP: u8 = 6;
pub const UDP: u8 = 17;

const FIN: u8 = 0x01;
const RST: u8 = 0x04;

impl Tuple {
    /// The tuple of the other direction's packets.
    pub fn reversed(self) -> Self {
        Self {
            proto: self.proto,
            src: self.dst,
            dst: self.src,
            sport: self.dport,
            dport: self.sport,
        }
    }

    /// Two words for the table: addresses, then protocol and ports. The protocol is never 0
    /// for a tuple [`classify`] returns, so all-zero words mean "empty".
    pub fn to_words(self) -> [u64; 2] {
        [
            (u64::from(u32::from(self.src)) << 32) | u64::from(u32::from(self.dst)),
            (u64::from(self.proto) << 32) | (u64::from(self.sport) << 16) | u64::from(self.dport),
        ]
    }

    pub fn from_words(w: [u64; 2]) -> Self {
        Self {
            proto: (w[1] >> 32) as u8,
            src: Ipv4Addr::from((w[0] >> 32) as u32),
            dst: Ipv4Addr::from(w[0] as u32),
            sport: (w[1] >> 16) as u16,
            dport: w[1] as u16,
        }
    }
}

/// The tuple of `ip` (an IP packet, exactly its length) if it is a flow's fast-path packet.
pub fn classify(ip: &[u8]) -> Option<Tuple> {
    let p = Ipv4Packet::new_checked(ip).ok()?;
    if p.version() != 4 || p.is_fragment() || usize::from(p.total_len()) != ip.len() {
        return None;
    }
    let l4 = p.payload();
    let proto = p.protocol();
    let ports = |min: usize| -> Option<(u16, u16)> {
        let h = l4.get(..min)?;
        Some((
            u16::from_be_bytes([h[0], h[1]]),
            u16::from_be_bytes([h[2], h[3]]),
        ))
    };
    let (sport, dport) = if proto == IpProtocol::TCP {
        let ports = ports(tcp::HEADER_LEN)?;
        if l4[tcp::field::FLAGS] & (tcp::SYN | FIN | RST) != 0 {
            return None;
        }
        ports
    } else if proto == IpProtocol::UDP {
        ports(udp::HEADER_LEN)?
    } else {
        return None;
    };
    Some(Tuple {
        proto: proto.0,
        src: p.src_addr(),
        dst: p.dst_addr(),
        sport,
        dport,
    })
}

/// Rewrites `ip` (a packet [`classify`] accepted) to carry tuple `to` (same protocol),
/// updating the IPv4 header checksum and the TCP or UDP checksum incrementally (RFC 1624): the
/// addresses count in the latter through the pseudo-header. A UDP checksum of 0 (none, over
/// IPv4) stays 0.
pub fn rewrite(ip: &mut [u8], to: Tuple) {
    let Ok(mut p) = Ipv4Packet::new_checked(&mut *ip) else {
        return;
    };
    let (src, dst) = (p.src_addr(), p.dst_addr());
    let proto = p.protocol();
    let mut ip_sum = p.checksum();
    ip_sum = checksum::update(ip_sum, &src.octets(), &to.src.octets());
    ip_sum = checksum::update(ip_sum, &dst.octets(), &to.dst.octets());
    p.set_src_addr(to.src);
    p.set_dst_addr(to.dst);
    p.set_checksum(ip_sum);
    let l4 = p.payload_mut();
    let field = if proto == IpProtocol::TCP {
        tcp::field::CHECKSUM
    } else {
        udp::field::CHECKSUM
    };
    let Some(sum) = l4.get(field.clone()) else {
        return;
    };
    let old = u16::from_be_bytes([sum[0], sum[1]]);
    let (sport, dport) = (
        u16::from_be_bytes([l4[0], l4[1]]),
        u16::from_be_bytes([l4[2], l4[3]]),
    );
    l4[0..2].copy_from_slice(&to.sport.to_be_bytes());
    l4[2..4].copy_from_slice(&to.dport.to_be_bytes());
    if proto == IpProtocol::UDP && old == 0 {
        return;
    }
    let mut c = checksum::update(old, &src.octets(), &to.src.octets());
    c = checksum::update(c, &dst.octets(), &to.dst.octets());
    c = update_u16(c, sport, to.sport);
    c = update_u16(c, dport, to.dport);
    if proto == IpProtocol::UDP && c == 0 {
        c = 0xffff;
    }
    l4[field].copy_from_slice(&c.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use proto::wire::PseudoHeader as _;

    /// A whole IPv4 packet with correct checksums, computed in full (the reference).
    fn packet(proto: u8, t: Tuple, flags: u8, payload: &[u8], udp_sum: bool) -> Vec<u8> {
        let l4_len = if proto == TCP { 20 } else { 8 } + payload.len();
        let mut p = vec![0u8; 20 + l4_len];
        p[0] = 0x45;
        let total = p.len() as u16;
        p[2..4].copy_from_slice(&total.to_be_bytes());
        p[8] = 64;
        p[9] = proto;
        p[12..16].copy_from_slice(&t.src.octets());
        p[16..20].copy_from_slice(&t.dst.octets());
        full_checksums(&mut p, proto, flags, t, payload, udp_sum);
        p
    }

    fn full_checksums(p: &mut [u8], proto: u8, flags: u8, t: Tuple, payload: &[u8], udp: bool) {
        let l4 = &mut p[20..];
        l4[0..2].copy_from_slice(&t.sport.to_be_bytes());
        l4[2..4].copy_from_slice(&t.dport.to_be_bytes());
        let len = l4.len() as u32;
        let (field, start) = if proto == TCP {
            l4[12] = 5 << 4;
            l4[13] = flags;
            (16..18, 20)
        } else {
            l4[4..6].copy_from_slice(&(len as u16).to_be_bytes());
            (6..8, 8)
        };
        l4[start..].copy_from_slice(payload);
        l4[field.clone()].fill(0);
        if proto == TCP || udp {
            let mut c = t
                .src
                .pseudo_header(t.dst, IpProtocol(proto), len)
                .add_bytes(l4)
                .finish();
            if proto == UDP && c == 0 {
                c = 0xffff;
            }
            l4[field].copy_from_slice(&c.to_be_bytes());
        }
        p[10..12].fill(0);
        let c = checksum::internet_checksum(&p[..20]);
        p[10..12].copy_from_slice(&c.to_be_bytes());
    }

    fn tuple(proto: u8, a: u32, b: u32, sp: u16, dp: u16) -> Tuple {
        Tuple {
            proto,
            src: a.into(),
            dst: b.into(),
            sport: sp,
            dport: dp,
        }
    }

    proptest! {
        /// The incremental rewrite gives exactly the packet built from scratch with the new
        /// tuple (the reference computes every checksum in full).
        #[test]
        fn rewrite_equals_a_packet_built_with_the_new_tuple(
            tcp in any::<bool>(), udp_sum in any::<bool>(),
            a in any::<u32>(), b in any::<u32>(), c in any::<u32>(), d in any::<u32>(),
            ports in any::<[u16; 4]>(),
            payload in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let proto = if tcp { TCP } else { UDP };
            let from = tuple(proto, a, b, ports[0], ports[1]);
            let to = tuple(proto, c, d, ports[2], ports[3]);
            let mut p = packet(proto, from, 0x10, &payload, udp_sum);
            prop_assert_eq!(classify(&p), Some(from));
            rewrite(&mut p, to);
            prop_assert_eq!(p, packet(proto, to, 0x10, &payload, udp_sum));
        }

        #[test]
        fn words_round_trip(a in any::<u32>(), b in any::<u32>(), ports in any::<[u16; 2]>()) {
            let t = tuple(TCP, a, b, ports[0], ports[1]);
            prop_assert_eq!(Tuple::from_words(t.to_words()), t);
            prop_assert_ne!(t.to_words(), [0, 0]);
        }
    }

    #[test]
    fn only_whole_tcp_and_udp_packets_without_syn_fin_rst_take_the_fast_path() {
        let t = tuple(TCP, 1, 2, 3, 4);
        assert_eq!(classify(&packet(TCP, t, 0x10, b"x", true)), Some(t)); // ACK
        for flags in [0x02, 0x12, 0x11, 0x04, 0x14] {
            assert_eq!(
                classify(&packet(TCP, t, flags, b"x", true)),
                None,
                "{flags:#x}"
            );
        }
        let u = tuple(UDP, 1, 2, 3, 4);
        assert_eq!(classify(&packet(UDP, u, 0, b"x", false)), Some(u));
        // A fragment (more fragments set), ICMP, a truncated packet, IPv6.
        let mut frag = packet(UDP, u, 0, b"x", true);
        frag[6] = 0x20;
        assert_eq!(classify(&frag), None);
        let mut icmp = packet(UDP, u, 0, b"x", true);
        icmp[9] = 1;
        assert_eq!(classify(&icmp), None);
        let whole = packet(TCP, t, 0x10, b"", true);
        assert_eq!(classify(&whole[..30]), None);
        let mut v6 = whole.clone();
        v6[0] = 0x60;
        assert_eq!(classify(&v6), None);
    }
}
