//! A flow's tuple as the workers see it in a packet, and the rewrite of a packet from one
//! tuple into another (the translation conntrack chose: SNAT, MASQUERADE, NAT66, DNAT, or
//! none).
//!
//! A flow's fast-path packets are whole IPv4 or IPv6 packets (no fragment, and for IPv6 no
//! extension header) of TCP without SYN, FIN or RST, of UDP, or ICMP and ICMPv6 echo
//! requests and replies: the kernel's connection tracking must see the packets that open and
//! close a connection, only it can reassemble fragments, and ICMP errors quote a packet whose
//! headers only it translates. Everything else keeps the kernel's path.
//!
//! An echo flow is tracked as conntrack tracks it: its identifier plays the source port
//! (NAT changes it as it changes a port), and its message type the destination port, so that
//! an echo request arriving on the reply tuple's addresses and identifier is not taken for
//! the flow's echo reply.

use proto::wire::checksum;
use proto::wire::icmp::{self, Icmpv4Type, Icmpv6Type};
use proto::wire::{tcp, udp, Ipv4Packet, Ipv6Packet};
use std::net::{IpAddr, Ipv6Addr};

/// A flow's 5-tuple in one direction, as in the IP and TCP/UDP/ICMP headers. `src` and `dst`
/// are of one family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tuple {
    pub proto: u8,
    pub src: IpAddr,
    pub dst: IpAddr,
    /// The source port, or an echo message's identifier.
    pub sport: u16,
    /// The destination port, or an echo message's type.
    pub dport: u16,
}

pub const ICMP: u8 = 1;
pub const TCP: u8 = 6;
pub const UDP: u8 = 17;
pub const ICMPV6: u8 = 58;

const FIN: u8 = 0x01;
const RST: u8 = 0x04;

/// Words a tuple takes in the table: two addresses of two words, then family, protocol and
/// ports.
pub const WORDS: usize = 5;
const V6_FLAG: u64 = 1 << 40;

/// The echo type that answers (or is answered by) `t`, for an echo protocol.
fn echo_counterpart(proto: u8, t: u16) -> u16 {
    let (request, reply) = if proto == ICMP {
        (Icmpv4Type::ECHO_REQUEST.0, Icmpv4Type::ECHO_REPLY.0)
    } else {
        (Icmpv6Type::ECHO_REQUEST.0, Icmpv6Type::ECHO_REPLY.0)
    };
    match u8::try_from(t) {
        Ok(x) if x == request => u16::from(reply),
        Ok(x) if x == reply => u16::from(request),
        _ => t,
    }
}

fn words(a: IpAddr) -> [u64; 2] {
    let bits = match a {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => u128::from(v6),
    };
    [(bits >> 64) as u64, bits as u64]
}

fn addr(w: [u64; 2], v6: bool) -> IpAddr {
    let bits = (u128::from(w[0]) << 64) | u128::from(w[1]);
    if v6 {
        IpAddr::V6(Ipv6Addr::from(bits))
    } else {
        IpAddr::V4((bits as u32).into())
    }
}

impl Tuple {
    pub fn is_echo(&self) -> bool {
        self.proto == ICMP || self.proto == ICMPV6
    }

    /// The tuple of the other direction's packets: for an echo flow, the answering type with
    /// the same identifier.
    pub fn reversed(self) -> Self {
        let (sport, dport) = if self.is_echo() {
            (self.sport, echo_counterpart(self.proto, self.dport))
        } else {
            (self.dport, self.sport)
        };
        Self {
            proto: self.proto,
            src: self.dst,
            dst: self.src,
            sport,
            dport,
        }
    }

    /// The table's words: source, destination (IPv4 as IPv4-mapped IPv6), then family,
    /// protocol and ports. The protocol is never 0 for a tuple [`classify`] returns, so
    /// all-zero words mean "empty".
    pub fn to_words(self) -> [u64; WORDS] {
        let [s0, s1] = words(self.src);
        let [d0, d1] = words(self.dst);
        let family = if self.src.is_ipv6() { V6_FLAG } else { 0 };
        [
            s0,
            s1,
            d0,
            d1,
            family
                | (u64::from(self.proto) << 32)
                | (u64::from(self.sport) << 16)
                | u64::from(self.dport),
        ]
    }

    pub fn from_words(w: [u64; WORDS]) -> Self {
        let v6 = w[4] & V6_FLAG != 0;
        Self {
            proto: (w[4] >> 32) as u8,
            src: addr([w[0], w[1]], v6),
            dst: addr([w[2], w[3]], v6),
            sport: (w[4] >> 16) as u16,
            dport: w[4] as u16,
        }
    }
}

/// The ports of a fast-path L4 header (`l4`, of protocol `proto` over IPv6 if `v6`), or the
/// identifier and type of an echo message; `None` if the packet must take the kernel's path.
fn ports(proto: u8, v6: bool, l4: &[u8]) -> Option<(u16, u16)> {
    let be = |r: std::ops::Range<usize>| Some(u16::from_be_bytes(l4.get(r)?.try_into().ok()?));
    match proto {
        TCP => {
            let flags = *l4.get(tcp::field::FLAGS)?;
            if l4.len() < tcp::HEADER_LEN || flags & (tcp::SYN | FIN | RST) != 0 {
                return None;
            }
            Some((be(tcp::field::SRC_PORT)?, be(tcp::field::DST_PORT)?))
        }
        UDP if l4.len() >= udp::HEADER_LEN => Some((be(0..2)?, be(2..4)?)),
        ICMP | ICMPV6 if (proto == ICMPV6) == v6 && l4.len() >= icmp::HEADER_LEN => {
            let t = l4[icmp::field::TYPE];
            let echo = if v6 {
                t == Icmpv6Type::ECHO_REQUEST.0 || t == Icmpv6Type::ECHO_REPLY.0
            } else {
                t == Icmpv4Type::ECHO_REQUEST.0 || t == Icmpv4Type::ECHO_REPLY.0
            };
            if !echo || l4[icmp::field::CODE] != 0 {
                return None;
            }
            Some((be(icmp::field::ECHO_IDENT)?, u16::from(t)))
        }
        _ => None,
    }
}

/// The tuple of `ip` (an IP packet, exactly its length) if it is a flow's fast-path packet.
pub fn classify(ip: &[u8]) -> Option<Tuple> {
    match proto::wire::ip_version(ip)? {
        4 => {
            let p = Ipv4Packet::new_checked(ip).ok()?;
            if p.is_fragment() || usize::from(p.total_len()) != ip.len() {
                return None;
            }
            let proto = p.protocol().0;
            let (sport, dport) = ports(proto, false, ip.get(p.header_len()..)?)?;
            Some(Tuple {
                proto,
                src: p.src_addr().into(),
                dst: p.dst_addr().into(),
                sport,
                dport,
            })
        }
        6 => {
            let p = Ipv6Packet::new_checked(ip).ok()?;
            if p.total_len() != ip.len() {
                return None;
            }
            // Extension headers (fragments among them) are the kernel's.
            let proto = p.next_header().0;
            let (sport, dport) = ports(proto, true, p.payload())?;
            Some(Tuple {
                proto,
                src: p.src_addr().into(),
                dst: p.dst_addr().into(),
                sport,
                dport,
            })
        }
        _ => None,
    }
}

/// Rewrites `ip` (a packet [`classify`] accepted) to carry tuple `to` (same protocol and
/// family), updating the IPv4 header checksum and the L4 checksum incrementally (RFC 1624):
/// the addresses count in the latter through the pseudo-header, except for ICMP over IPv4. A
/// UDP checksum of 0 (none, over IPv4) stays 0.
pub fn rewrite(ip: &mut [u8], to: Tuple) {
    match (to.src, to.dst) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => {
            let Ok(mut p) = Ipv4Packet::new_checked(&mut *ip) else {
                return;
            };
            let (mut old, mut new) = ([0u8; 8], [0u8; 8]);
            both(&p.src_addr().octets(), &p.dst_addr().octets(), &mut old);
            both(&src.octets(), &dst.octets(), &mut new);
            let sum = checksum::update(p.checksum(), &old, &new);
            p.set_src_addr(src);
            p.set_dst_addr(dst);
            p.set_checksum(sum);
            let proto = p.protocol().0;
            let pseudo = (proto != ICMP).then_some((&old[..], &new[..]));
            let start = p.header_len();
            if let Some(l4) = ip.get_mut(start..) {
                rewrite_l4(l4, proto, pseudo, &to);
            }
        }
        (IpAddr::V6(src), IpAddr::V6(dst)) => {
            let Ok(mut p) = Ipv6Packet::new_checked(&mut *ip) else {
                return;
            };
            let (mut old, mut new) = ([0u8; 32], [0u8; 32]);
            both(&p.src_addr().octets(), &p.dst_addr().octets(), &mut old);
            both(&src.octets(), &dst.octets(), &mut new);
            p.set_src_addr(src);
            p.set_dst_addr(dst);
            let proto = p.next_header().0;
            rewrite_l4(p.payload_mut(), proto, Some((&old, &new)), &to);
        }
        _ => {}
    }
}

/// Source then destination address, as the pseudo-header orders them, into `out` (of exactly
/// their length: 8 or 32 bytes at the callers).
fn both<const N: usize>(src: &[u8; N], dst: &[u8; N], out: &mut [u8]) {
    for (o, b) in out.iter_mut().zip(src.iter().chain(dst)) {
        *o = *b;
    }
}

/// The L4 half of [`rewrite`]: ports (or the echo identifier) set to `to`'s, and the checksum
/// updated for them and, if it covers a pseudo-header, for the addresses (`pseudo`: their
/// old and new bytes, source then destination).
fn rewrite_l4(l4: &mut [u8], proto: u8, pseudo: Option<(&[u8], &[u8])>, to: &Tuple) {
    let (sum_at, ports_at) = match proto {
        TCP => (tcp::field::CHECKSUM, 0..4),
        UDP => (udp::field::CHECKSUM, 0..4),
        // The type is not rewritten: a flow's tuples keep each direction's type.
        ICMP | ICMPV6 => (icmp::field::CHECKSUM, icmp::field::ECHO_IDENT),
        _ => return,
    };
    let (Some(sum), Some(old_ports)) = (l4.get(sum_at.clone()), l4.get(ports_at.clone())) else {
        return;
    };
    let old = u16::from_be_bytes([sum[0], sum[1]]);
    let mut old_ports_b = [0u8; 4];
    old_ports_b[..old_ports.len()].copy_from_slice(old_ports);
    let mut new_ports = [0u8; 4];
    new_ports[..2].copy_from_slice(&to.sport.to_be_bytes());
    new_ports[2..].copy_from_slice(&to.dport.to_be_bytes());
    let n = ports_at.len();
    l4[ports_at].copy_from_slice(&new_ports[..n]);
    if proto == UDP && old == 0 {
        return;
    }
    let mut c = old;
    if let Some((from, into)) = pseudo {
        c = checksum::update(c, from, into);
    }
    c = checksum::update(c, &old_ports_b[..n], &new_ports[..n]);
    if proto == UDP && c == 0 {
        c = 0xffff;
    }
    l4[sum_at].copy_from_slice(&c.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use proto::wire::{IpProtocol, PseudoHeader};
    use std::net::Ipv4Addr;

    /// The L4 header and payload of a tuple's packet, its checksum left 0.
    fn l4(t: &Tuple, flags: u8, payload: &[u8]) -> (Vec<u8>, std::ops::Range<usize>) {
        let (mut l4, sum) = match t.proto {
            TCP => {
                let mut h = vec![0u8; 20];
                h[12] = 5 << 4;
                h[13] = flags;
                (h, 16..18)
            }
            UDP => (vec![0u8; 8], 6..8),
            _ => {
                let mut h = vec![0u8; 8];
                h[0] = t.dport as u8;
                h[6..8].copy_from_slice(&[0x12, 0x34]); // a sequence number
                (h, 2..4)
            }
        };
        if t.is_echo() {
            l4[4..6].copy_from_slice(&t.sport.to_be_bytes());
        } else {
            l4[0..2].copy_from_slice(&t.sport.to_be_bytes());
            l4[2..4].copy_from_slice(&t.dport.to_be_bytes());
        }
        if t.proto == UDP {
            let len = (8 + payload.len()) as u16;
            l4[4..6].copy_from_slice(&len.to_be_bytes());
        }
        l4.extend_from_slice(payload);
        (l4, sum)
    }

    /// A whole packet of tuple `t` with correct checksums, computed in full (the reference).
    /// `udp_sum` false leaves an IPv4 UDP checksum 0 (none).
    fn packet(t: Tuple, flags: u8, payload: &[u8], udp_sum: bool) -> Vec<u8> {
        let (mut body, at) = l4(&t, flags, payload);
        let len = body.len() as u32;
        let pseudo = match (t.src, t.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => s.pseudo_header(d, IpProtocol(t.proto), len),
            (IpAddr::V6(s), IpAddr::V6(d)) => s.pseudo_header(d, IpProtocol(t.proto), len),
            _ => unreachable!(),
        };
        let sum = if t.proto == ICMP {
            Some(checksum::internet_checksum(&body))
        } else if t.proto == UDP && !udp_sum && t.src.is_ipv4() {
            None
        } else {
            let c = pseudo.add_bytes(&body).finish();
            Some(if t.proto == UDP && c == 0 { 0xffff } else { c })
        };
        if let Some(c) = sum {
            body[at].copy_from_slice(&c.to_be_bytes());
        }
        match (t.src, t.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                let mut p = vec![0u8; 20];
                p[0] = 0x45;
                p[2..4].copy_from_slice(&((20 + body.len()) as u16).to_be_bytes());
                p[8] = 64;
                p[9] = t.proto;
                p[12..16].copy_from_slice(&s.octets());
                p[16..20].copy_from_slice(&d.octets());
                let c = checksum::internet_checksum(&p);
                p[10..12].copy_from_slice(&c.to_be_bytes());
                p.extend_from_slice(&body);
                p
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                let mut p = vec![0u8; 40];
                p[0] = 0x60;
                p[4..6].copy_from_slice(&(body.len() as u16).to_be_bytes());
                p[6] = t.proto;
                p[7] = 64;
                p[8..24].copy_from_slice(&s.octets());
                p[24..40].copy_from_slice(&d.octets());
                p.extend_from_slice(&body);
                p
            }
            _ => unreachable!(),
        }
    }

    fn v4(proto: u8, a: u32, b: u32, sp: u16, dp: u16) -> Tuple {
        Tuple {
            proto,
            src: Ipv4Addr::from(a).into(),
            dst: Ipv4Addr::from(b).into(),
            sport: sp,
            dport: dp,
        }
    }

    fn v6(proto: u8, a: u128, b: u128, sp: u16, dp: u16) -> Tuple {
        Tuple {
            proto,
            src: Ipv6Addr::from(a).into(),
            dst: Ipv6Addr::from(b).into(),
            sport: sp,
            dport: dp,
        }
    }

    /// One of the fast path's kinds: 0 TCP, 1 UDP, 2 echo request, 3 echo reply.
    fn kind(k: u8, is_v6: bool) -> (u8, Option<u16>) {
        match (k % 4, is_v6) {
            (0, _) => (TCP, None),
            (1, _) => (UDP, None),
            (2, false) => (ICMP, Some(8)),
            (3, false) => (ICMP, Some(0)),
            (2, true) => (ICMPV6, Some(128)),
            _ => (ICMPV6, Some(129)),
        }
    }

    proptest! {
        /// The incremental rewrite gives exactly the packet built from scratch with the new
        /// tuple (the reference computes every checksum in full), for each family and kind.
        #[test]
        fn rewrite_equals_a_packet_built_with_the_new_tuple(
            k in 0u8..4, is_v6 in any::<bool>(), udp_sum in any::<bool>(),
            a in any::<u128>(), b in any::<u128>(), c in any::<u128>(), d in any::<u128>(),
            ports in any::<[u16; 4]>(),
            payload in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let (proto, echo) = kind(k, is_v6);
            let t = |s: u128, d: u128, sp: u16, dp: u16| {
                let dp = echo.unwrap_or(dp);
                if is_v6 { v6(proto, s, d, sp, dp) } else { v4(proto, s as u32, d as u32, sp, dp) }
            };
            let from = t(a, b, ports[0], ports[1]);
            let to = t(c, d, ports[2], ports[3]);
            let mut p = packet(from, 0x10, &payload, udp_sum);
            prop_assert_eq!(classify(&p), Some(from));
            rewrite(&mut p, to);
            prop_assert_eq!(&p, &packet(to, 0x10, &payload, udp_sum));
            prop_assert_eq!(classify(&p), Some(to));
        }

        #[test]
        fn words_round_trip(
            k in 0u8..4, is_v6 in any::<bool>(), a in any::<u128>(), b in any::<u128>(),
            ports in any::<[u16; 2]>(),
        ) {
            let (proto, echo) = kind(k, is_v6);
            let dp = echo.unwrap_or(ports[1]);
            let t = if is_v6 {
                v6(proto, a, b, ports[0], dp)
            } else {
                v4(proto, a as u32, b as u32, ports[0], dp)
            };
            prop_assert_eq!(Tuple::from_words(t.to_words()), t);
            prop_assert_ne!(t.to_words(), [0; WORDS]);
        }
    }

    /// An IPv4 tuple and the IPv6 tuple of its IPv4-mapped addresses are different keys.
    #[test]
    fn families_do_not_collide() {
        let a = v4(UDP, 0xc612_0001, 0xc612_0002, 1, 2);
        let b = v6(
            UDP,
            u128::from(Ipv4Addr::from(0xc612_0001).to_ipv6_mapped()),
            u128::from(Ipv4Addr::from(0xc612_0002).to_ipv6_mapped()),
            1,
            2,
        );
        assert_ne!(a.to_words(), b.to_words());
    }

    #[test]
    fn an_echo_flow_reversed_answers_with_the_same_identifier() {
        let req = v4(ICMP, 1, 2, 0x4242, 8);
        assert_eq!(req.reversed(), v4(ICMP, 2, 1, 0x4242, 0));
        assert_eq!(req.reversed().reversed(), req);
        let req6 = v6(ICMPV6, 1, 2, 7, 128);
        assert_eq!(req6.reversed(), v6(ICMPV6, 2, 1, 7, 129));
        let udp = v4(UDP, 1, 2, 3, 4);
        assert_eq!(udp.reversed(), v4(UDP, 2, 1, 4, 3));
    }

    #[test]
    fn only_whole_packets_of_established_flows_take_the_fast_path() {
        for is_v6 in [false, true] {
            let t = |proto, dp| {
                if is_v6 {
                    v6(proto, 1, 2, 3, dp)
                } else {
                    v4(proto, 1, 2, 3, dp)
                }
            };
            let tcp = t(TCP, 4);
            assert_eq!(classify(&packet(tcp, 0x10, b"x", true)), Some(tcp)); // ACK
            for flags in [0x02, 0x12, 0x11, 0x04, 0x14] {
                assert_eq!(
                    classify(&packet(tcp, flags, b"x", true)),
                    None,
                    "{flags:#x}"
                );
            }
            let u = t(UDP, 4);
            assert_eq!(classify(&packet(u, 0, b"x", true)), Some(u));
            // Echo messages are; other ICMP (an error: destination unreachable), a non-zero
            // code, and the other family's ICMP are not.
            let (icmp, req, other) = if is_v6 {
                (ICMPV6, 128, ICMP)
            } else {
                (ICMP, 8, ICMPV6)
            };
            let echo = t(icmp, req);
            let p = packet(echo, 0, b"ping", true);
            assert_eq!(classify(&p), Some(echo));
            let mut unreachable = p.clone();
            unreachable[if is_v6 { 40 } else { 20 }] = if is_v6 { 1 } else { 3 };
            assert_eq!(classify(&unreachable), None);
            let mut code = p.clone();
            code[if is_v6 { 41 } else { 21 }] = 1;
            assert_eq!(classify(&code), None);
            let mut wrong_family = p.clone();
            wrong_family[if is_v6 { 6 } else { 9 }] = other;
            assert_eq!(classify(&wrong_family), None);
            // A truncated packet, and one with trailing bytes.
            let whole = packet(tcp, 0x10, b"", true);
            assert_eq!(classify(&whole[..whole.len() - 1]), None);
            let mut longer = whole.clone();
            longer.push(0);
            assert_eq!(classify(&longer), None);
        }
        // An IPv4 fragment (more fragments set), and an IPv6 packet with an extension header.
        let mut frag = packet(v4(UDP, 1, 2, 3, 4), 0, b"x", true);
        frag[6] = 0x20;
        assert_eq!(classify(&frag), None);
        let mut ext = packet(v6(UDP, 1, 2, 3, 4), 0, b"x", true);
        ext[6] = 44;
        assert_eq!(classify(&ext), None);
    }
}
