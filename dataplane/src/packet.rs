//! The per-packet transforms of the workers, on a frame's whole UMEM chunk: pure functions
//! over byte buffers, so they are tested without a kernel.
//!
//! Inbound (WAN → LAN): an Ethernet/IP/UDP frame carrying a WireGuard data message becomes,
//! after opening, an Ethernet frame of the inner packet, written in place just before it.
//! Outbound (LAN → WAN): an Ethernet frame of an inner packet becomes a data message inside
//! new outer headers, written in place before it (the kernel leaves 256 bytes of headroom in
//! every received chunk), padded and sealed after it.

use contract::DropReason;
use proto::data;
use proto::messages::{DATA_HEADER_LEN, DATA_OVERHEAD};
use proto::wire::{
    checksum, EtherType, EthernetFrame, IpProtocol, Ipv4Packet, Ipv6Packet, PseudoHeader as _,
    UdpPacket,
};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

pub const ETH_LEN: usize = 14;
/// Room the kernel leaves in front of a received packet in its chunk, and the worker in
/// front of a packet it writes itself: enough for the outer headers of encapsulation.
pub const HEADROOM: usize = 256;
const IPV4_LEN: usize = 20;
const IPV6_LEN: usize = 40;
const UDP_LEN: usize = 8;

/// Where a WireGuard data message sits in a received WAN frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outer {
    /// The sender's address as the packet says (the endpoint, once authenticated).
    pub src: SocketAddr,
    /// The UDP destination port (one-armed mode tells WireGuard from plaintext by it).
    pub dst_port: u16,
    /// Offset of the data message (its 16-byte header) in the buffer, and its length.
    pub msg_offset: usize,
    pub msg_len: usize,
}

/// `buf[start..start + len]`, or `None` if that is not inside `buf`. The sum is checked: the
/// callers' offsets come from descriptors and headers, and an overflow must be "not in the
/// chunk" like any other bad range, not a panic (debug builds) or a wrapped range.
fn range(buf: &[u8], start: usize, len: usize) -> Option<&[u8]> {
    buf.get(start..start.checked_add(len)?)
}

/// Finds the data message in a WAN frame at `buf[start..start + len]`. The XDP program
/// already checked type, port and lengths; this re-checks everything it relies on.
pub fn parse_outer(buf: &[u8], start: usize, len: usize) -> Result<Outer, DropReason> {
    let frame = range(buf, start, len).ok_or(DropReason::Malformed)?;
    let eth = EthernetFrame::new_checked(frame).map_err(|_| DropReason::Malformed)?;
    let (src_ip, l4_off, l4_len): (IpAddr, usize, usize) = match eth.ethertype() {
        EtherType::IPV4 => {
            let ip = Ipv4Packet::new_checked(eth.payload()).map_err(|_| DropReason::Malformed)?;
            if ip.protocol() != IpProtocol::UDP || ip.is_fragment() {
                return Err(DropReason::Malformed);
            }
            (
                ip.src_addr().into(),
                ETH_LEN + ip.header_len(),
                ip.payload().len(),
            )
        }
        EtherType::IPV6 => {
            let ip = Ipv6Packet::new_checked(eth.payload()).map_err(|_| DropReason::Malformed)?;
            if ip.next_header() != IpProtocol::UDP {
                return Err(DropReason::Malformed);
            }
            (ip.src_addr().into(), ETH_LEN + IPV6_LEN, ip.payload().len())
        }
        _ => return Err(DropReason::Malformed),
    };
    let udp = UdpPacket::new_checked(&frame[l4_off..l4_off + l4_len])
        .map_err(|_| DropReason::Malformed)?;
    let msg_len = udp.payload().len();
    if msg_len < DATA_OVERHEAD {
        return Err(DropReason::Malformed);
    }
    Ok(Outer {
        src: SocketAddr::new(src_ip, udp.src_port()),
        dst_port: udp.dst_port(),
        msg_offset: start + l4_off + UDP_LEN,
        msg_len,
    })
}

/// Decrements the TTL / hop limit of the IP packet at `buf[off..]` as a router must, fixing
/// the IPv4 header checksum incrementally. `DropReason::TtlExceeded` if it would reach zero.
pub fn decrement_ttl(buf: &mut [u8], off: usize) -> Result<(), DropReason> {
    let p = buf.get_mut(off..).ok_or(DropReason::BadInner)?;
    match proto::wire::ip_version(p) {
        Some(4) => {
            let mut ip = Ipv4Packet::new_unchecked(p);
            let ttl = ip.ttl();
            if ttl <= 1 {
                return Err(DropReason::TtlExceeded);
            }
            // TTL shares a 16-bit word with the protocol number.
            let proto_byte = ip.protocol().0;
            let old = u16::from_be_bytes([ttl, proto_byte]);
            let new = u16::from_be_bytes([ttl - 1, proto_byte]);
            ip.set_ttl(ttl - 1);
            let c = checksum::update_u16(ip.checksum(), old, new);
            ip.set_checksum(c);
            Ok(())
        }
        Some(6) => {
            let mut ip = Ipv6Packet::new_unchecked(p);
            let hl = ip.hop_limit();
            if hl <= 1 {
                return Err(DropReason::TtlExceeded);
            }
            ip.set_hop_limit(hl - 1);
            Ok(())
        }
        _ => Err(DropReason::BadInner),
    }
}

/// Completes a TCP or UDP checksum left partial by a sender on this host.
///
/// A socket sending through a veth hands the device CHECKSUM_PARTIAL: the checksum field
/// holds only the folded pseudo-header sum, and a NIC (or the receiving kernel) is to finish
/// it. A frame taken by AF_XDP skips that, so it would leave here with a wrong checksum
/// (design §8). The partial value is cheap to recognise; only then is the full sum computed.
/// Recomputing is always correct, so a complete checksum that happens to look partial is
/// harmless.
pub fn complete_partial_checksum(buf: &mut [u8], off: usize, len: usize) {
    let Some(p) = off.checked_add(len).and_then(|end| buf.get_mut(off..end)) else {
        return;
    };
    match proto::wire::ip_version(p) {
        Some(4) => {
            let mut ip = Ipv4Packet::new_unchecked(&mut *p);
            if ip.check_len().is_err() || ip.is_fragment() {
                return;
            }
            let (src, dst, proto) = (ip.src_addr(), ip.dst_addr(), ip.protocol());
            fix_l4(ip.payload_mut(), proto, |l4_len| {
                src.pseudo_header(dst, proto, l4_len)
            });
        }
        Some(6) => {
            let mut ip = Ipv6Packet::new_unchecked(&mut *p);
            if ip.check_len().is_err() {
                return;
            }
            let (src, dst, proto) = (ip.src_addr(), ip.dst_addr(), ip.next_header());
            fix_l4(ip.payload_mut(), proto, |l4_len| {
                src.pseudo_header(dst, proto, l4_len)
            });
        }
        _ => {}
    }
}

/// Lowers the MSS of a TCP SYN (or SYN-ACK) crossing the tunnel to what fits a tunnel of
/// `mtu` bytes (the MTU less the IP and TCP headers: 40 for IPv4, 60 for IPv6), as operators
/// do with `iptables ... -j TCPMSS --clamp-mss-to-pmtu`: without it, a full-tunnel client
/// behind a path with a smaller MTU stalls on its first full-size segment. The packet at
/// `buf[off..off + len]` has complete checksums (complete a partial one first); the TCP one
/// is updated in place. Returns whether it changed anything. IPv6 packets with extension
/// headers and IPv4 fragments past the first are left alone.
pub fn clamp_mss(buf: &mut [u8], off: usize, len: usize, mtu: usize) -> bool {
    let Some(p) = off.checked_add(len).and_then(|end| buf.get_mut(off..end)) else {
        return false;
    };
    let max = |overhead: usize| u16::try_from(mtu.saturating_sub(overhead)).unwrap_or(u16::MAX);
    match proto::wire::ip_version(p) {
        Some(4) => {
            let mut ip = Ipv4Packet::new_unchecked(&mut *p);
            if ip.check_len().is_err() || ip.frag_offset() != 0 || ip.protocol() != IpProtocol::TCP
            {
                return false;
            }
            proto::wire::tcp::clamp_mss(ip.payload_mut(), max(40)).is_some()
        }
        Some(6) => {
            let mut ip = Ipv6Packet::new_unchecked(&mut *p);
            if ip.check_len().is_err() || ip.next_header() != IpProtocol::TCP {
                return false;
            }
            proto::wire::tcp::clamp_mss(ip.payload_mut(), max(60)).is_some()
        }
        _ => false,
    }
}

fn fix_l4(l4: &mut [u8], proto: IpProtocol, pseudo: impl Fn(u32) -> checksum::Checksum) {
    let field = match proto {
        IpProtocol::TCP if l4.len() >= proto::wire::tcp::HEADER_LEN => {
            proto::wire::tcp::field::CHECKSUM
        }
        IpProtocol::UDP if l4.len() >= UDP_LEN => proto::wire::udp::field::CHECKSUM,
        _ => return,
    };
    let l4_len = u32::try_from(l4.len()).unwrap_or(u32::MAX);
    let stored = u16::from_be_bytes([l4[field.start], l4[field.start + 1]]);
    if stored != pseudo(l4_len).sum() {
        return;
    }
    l4[field.clone()].fill(0);
    let mut c = pseudo(l4_len).add_bytes(l4).finish();
    if proto == IpProtocol::UDP && c == 0 {
        c = 0xffff;
    }
    l4[field].copy_from_slice(&c.to_be_bytes());
}

/// Dresses an IP packet of `len` bytes that a TUN device wrote at `HEADROOM + ETH_LEN` of
/// `frame` as the Ethernet frame the worker parses (zero MACs, the packet's EtherType) and
/// sets the frame's packet range to it. False if it does not fit.
pub fn dress_tun_packet(frame: &mut crate::frame::Frame<'_>, len: usize) -> bool {
    let at = HEADROOM + ETH_LEN;
    let Some(ip) = frame.chunk().get(at..at + len) else {
        return false;
    };
    let ethertype = match proto::wire::ip_version(ip) {
        Some(6) => EtherType::IPV6,
        _ => EtherType::IPV4,
    };
    let mut eth = EthernetFrame::new_unchecked(&mut frame.chunk_mut()[HEADROOM..at]);
    eth.set_dst_addr([0; 6]);
    eth.set_src_addr([0; 6]);
    eth.set_ethertype(ethertype);
    frame.set_packet(HEADROOM, ETH_LEN + len)
}

/// Writes an Ethernet header for the inner packet at `buf[inner_off..inner_off + inner_len]`
/// just before it; returns the frame's (start, len).
pub fn frame_inner(
    buf: &mut [u8],
    inner_off: usize,
    inner_len: usize,
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
) -> Result<(usize, usize), DropReason> {
    let start = inner_off
        .checked_sub(ETH_LEN)
        .ok_or(DropReason::Malformed)?;
    let ethertype = match proto::wire::ip_version(&buf[inner_off..inner_off + inner_len]) {
        Some(4) => EtherType::IPV4,
        Some(6) => EtherType::IPV6,
        _ => return Err(DropReason::BadInner),
    };
    let frame = buf
        .get_mut(start..inner_off + inner_len)
        .ok_or(DropReason::Malformed)?;
    let mut eth = EthernetFrame::new_unchecked(frame);
    eth.set_dst_addr(dst_mac);
    eth.set_src_addr(src_mac);
    eth.set_ethertype(ethertype);
    Ok((start, ETH_LEN + inner_len))
}

/// Most of the offending packet an ICMP error quotes: IPv4 keeps the reply within 576 bytes
/// (RFC 1812 §4.3.2.3), IPv6 within the minimum MTU of 1280 (RFC 4443 §2.4).
const QUOTE_V4: usize = 576 - IPV4_LEN - ICMP_HEADER_LEN;
const QUOTE_V6: usize = 1280 - IPV6_LEN - ICMP_HEADER_LEN;
/// ICMP and ICMPv6 error headers: type, code, checksum and four bytes (unused or the MTU).
const ICMP_HEADER_LEN: usize = 8;

/// Whether an inner packet too big for the tunnel may be answered with "fragmentation
/// needed" / "packet too big" (IPv4 only with DF set; without DF the kernel would fragment,
/// which this data path does not).
pub fn may_report_too_big(packet: &[u8]) -> bool {
    match proto::wire::ip_version(packet) {
        Some(4) => Ipv4Packet::new_unchecked(packet).dont_frag(),
        Some(6) => true,
        _ => false,
    }
}

/// Writes into `out` an Ethernet frame carrying the ICMP error that tells the sender of
/// `packet` (an IP packet that does not fit the tunnel) the largest size that does: ICMPv4
/// type 3 code 4 with the next-hop MTU, or ICMPv6 "packet too big". `from` is this host's
/// address of the packet's family. Returns the frame length.
pub fn too_big_reply(
    packet: &[u8],
    out: &mut [u8],
    from: IpAddr,
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    mtu: u16,
) -> Result<usize, DropReason> {
    let dst = proto::wire::source_addr(packet).ok_or(DropReason::BadInner)?;
    let (ip_len, quote) = match (from, dst) {
        (IpAddr::V4(_), IpAddr::V4(_)) => (IPV4_LEN, packet.len().min(QUOTE_V4)),
        (IpAddr::V6(_), IpAddr::V6(_)) => (IPV6_LEN, packet.len().min(QUOTE_V6)),
        _ => return Err(DropReason::NoRoute),
    };
    let icmp_len = 8 + quote;
    let total = ETH_LEN + ip_len + icmp_len;
    let frame = out.get_mut(..total).ok_or(DropReason::Malformed)?;
    let mut eth = EthernetFrame::new_unchecked(&mut frame[..]);
    eth.set_dst_addr(dst_mac);
    eth.set_src_addr(src_mac);
    match (from, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            eth.set_ethertype(EtherType::IPV4);
            let mut ip = Ipv4Packet::new_unchecked(eth.payload_mut());
            write_ipv4(&mut ip, s, d, IpProtocol::ICMP, icmp_len as u16);
            let mut icmp = proto::wire::Icmpv4Packet::new_unchecked(ip.payload_mut());
            icmp.set_msg_type(proto::wire::Icmpv4Type::DST_UNREACHABLE);
            icmp.set_msg_code(4);
            icmp.set_next_hop_mtu(mtu);
            icmp.payload_mut().copy_from_slice(&packet[..quote]);
            icmp.fill_checksum();
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            eth.set_ethertype(EtherType::IPV6);
            let mut ip = Ipv6Packet::new_unchecked(eth.payload_mut());
            write_ipv6(&mut ip, s, d, IpProtocol::ICMPV6, icmp_len as u16);
            let mut icmp = proto::wire::Icmpv6Packet::new_unchecked(ip.payload_mut());
            icmp.set_msg_type(proto::wire::Icmpv6Type::PACKET_TOO_BIG);
            icmp.set_msg_code(0);
            icmp.set_mtu(u32::from(mtu));
            icmp.payload_mut().copy_from_slice(&packet[..quote]);
            icmp.fill_checksum(s, d);
        }
        _ => return Err(DropReason::NoRoute),
    }
    Ok(total)
}

/// Where an outer IP/UDP packet (no Ethernet header) goes, and where its UDP payload lies in
/// it: what a socket needs to send the payload itself.
pub fn udp_destination(ip: &[u8]) -> Option<(SocketAddr, core::ops::Range<usize>)> {
    let (dst, l4_off, l4_len): (IpAddr, usize, usize) = match proto::wire::ip_version(ip)? {
        4 => {
            let p = Ipv4Packet::new_checked(ip).ok()?;
            if p.protocol() != IpProtocol::UDP {
                return None;
            }
            (p.dst_addr().into(), p.header_len(), p.payload().len())
        }
        6 => {
            let p = Ipv6Packet::new_checked(ip).ok()?;
            if p.next_header() != IpProtocol::UDP {
                return None;
            }
            (p.dst_addr().into(), IPV6_LEN, p.payload().len())
        }
        _ => return None,
    };
    let udp = UdpPacket::new_checked(ip.get(l4_off..l4_off + l4_len)?).ok()?;
    let start = l4_off + UDP_LEN;
    Some((
        SocketAddr::new(dst, udp.dst_port()),
        start..start + udp.payload().len(),
    ))
}

/// The Ethernet source of the frame at `buf[start..]`: the host or router that sent it.
pub fn frame_source(buf: &[u8], start: usize) -> Option<[u8; 6]> {
    EthernetFrame::new_checked(buf.get(start..)?)
        .ok()
        .map(|e| e.src_addr())
}

/// The inner IP packet of a LAN frame at `buf[start..start + len]`: its offset, its length by
/// its own header (the frame may carry Ethernet padding), and its destination.
pub fn parse_inner(
    buf: &[u8],
    start: usize,
    len: usize,
) -> Result<(usize, usize, IpAddr), DropReason> {
    let frame = range(buf, start, len).ok_or(DropReason::Malformed)?;
    let eth = EthernetFrame::new_checked(frame).map_err(|_| DropReason::Malformed)?;
    let p = eth.payload();
    let inner_len = proto::wire::inner_packet_len(p).map_err(|_| DropReason::BadInner)?;
    let dst = proto::wire::dest_addr(p).ok_or(DropReason::BadInner)?;
    Ok((start + ETH_LEN, inner_len, dst))
}

/// What the outer headers need.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
}

/// Where an outgoing data message sits in its chunk, between [`prepare_encap`] and
/// [`finish_encap`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Encap {
    /// Start of the outer frame (Ethernet header).
    pub start: usize,
    /// Start of the data message (its 16-byte header).
    pub msg_off: usize,
    /// Padded plaintext length.
    pub padded: usize,
}

impl Encap {
    /// The sealable payload, `plaintext || tag`, in the chunk.
    pub fn payload(&self) -> core::ops::Range<usize> {
        self.msg_off + DATA_HEADER_LEN..self.msg_off + DATA_OVERHEAD + self.padded
    }

    pub fn end(&self) -> usize {
        self.msg_off + DATA_OVERHEAD + self.padded
    }
}

/// First half of encapsulation: checks the room around the inner packet at
/// `buf[inner_off..inner_off + inner_len]`, writes the data message header for
/// `remote_index`/`counter` before it and zero padding after it. The payload is then sealed
/// (one packet, or a whole batch) and [`finish_encap`] writes the outer headers.
pub fn prepare_encap(
    buf: &mut [u8],
    inner_off: usize,
    inner_len: usize,
    remote_index: u32,
    counter: u64,
    outer_v6: bool,
    mtu: usize,
) -> Result<Encap, DropReason> {
    let ip_len = if outer_v6 { IPV6_LEN } else { IPV4_LEN };
    let msg_off = inner_off
        .checked_sub(DATA_HEADER_LEN)
        .ok_or(DropReason::Malformed)?;
    let start = msg_off
        .checked_sub(ETH_LEN + ip_len + UDP_LEN)
        .ok_or(DropReason::Malformed)?;
    let padded = data::padded_len(inner_len, mtu);
    let e = Encap {
        start,
        msg_off,
        padded,
    };
    if e.end() > buf.len() {
        return Err(DropReason::Malformed);
    }
    buf[inner_off + inner_len..inner_off + padded].fill(0);
    proto::messages::Data::new_init(&mut buf[msg_off..e.end()], remote_index, counter)
        .map_err(|_| DropReason::Malformed)?;
    Ok(e)
}

/// Second half: the Ethernet, IP and UDP headers for `route` in front of the sealed message,
/// with complete checksums (the UDP one covers the ciphertext, so it comes after sealing).
/// Returns the frame's (start, len).
pub fn finish_encap(
    buf: &mut [u8],
    e: &Encap,
    route: &Route,
) -> Result<(usize, usize), DropReason> {
    let frame = buf.get_mut(e.start..e.end()).ok_or(DropReason::Malformed)?;
    write_udp_headers(frame, route, DATA_OVERHEAD + e.padded)?;
    Ok((e.start, e.end() - e.start))
}

/// Bytes of Ethernet, IP and UDP headers in front of a UDP payload sent along `route`.
pub fn udp_headers_len(route: &Route) -> usize {
    ETH_LEN
        + if route.dst.is_ipv6() {
            IPV6_LEN
        } else {
            IPV4_LEN
        }
        + UDP_LEN
}

/// Writes the Ethernet, IP and UDP headers for `route` at the start of `frame`, in front of
/// the `payload_len`-byte UDP payload already at `frame[udp_headers_len(route)..]`, with
/// complete checksums.
pub fn write_udp_headers(
    frame: &mut [u8],
    route: &Route,
    payload_len: usize,
) -> Result<(), DropReason> {
    let end = udp_headers_len(route) + payload_len;
    let frame = frame.get_mut(..end).ok_or(DropReason::Malformed)?;
    let mut eth = EthernetFrame::new_unchecked(&mut frame[..]);
    eth.set_dst_addr(route.dst_mac);
    eth.set_src_addr(route.src_mac);
    let udp_total = u16::try_from(UDP_LEN + payload_len).map_err(|_| DropReason::Malformed)?;
    match (route.src.ip(), route.dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            eth.set_ethertype(EtherType::IPV4);
            let mut ip = Ipv4Packet::new_unchecked(eth.payload_mut());
            write_ipv4(&mut ip, s, d, IpProtocol::UDP, udp_total);
            let mut udp = UdpPacket::new_unchecked(ip.payload_mut());
            write_udp(&mut udp, route, udp_total);
            udp.fill_checksum(s, d);
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            eth.set_ethertype(EtherType::IPV6);
            let mut ip = Ipv6Packet::new_unchecked(eth.payload_mut());
            write_ipv6(&mut ip, s, d, IpProtocol::UDP, udp_total);
            let mut udp = UdpPacket::new_unchecked(ip.payload_mut());
            write_udp(&mut udp, route, udp_total);
            udp.fill_checksum(s, d);
        }
        _ => return Err(DropReason::NoRoute),
    }
    Ok(())
}

/// The whole encapsulation of one packet with the reference single-packet cipher (tests and
/// the odd packet outside a batch).
#[allow(
    clippy::too_many_arguments,
    reason = "one call site; a struct would only rename them"
)]
pub fn encapsulate(
    buf: &mut [u8],
    inner_off: usize,
    inner_len: usize,
    key: &[u8; 32],
    remote_index: u32,
    counter: u64,
    route: &Route,
    mtu: usize,
) -> Result<(usize, usize), DropReason> {
    let e = prepare_encap(
        buf,
        inner_off,
        inner_len,
        remote_index,
        counter,
        route.dst.is_ipv6(),
        mtu,
    )?;
    data::seal(
        key,
        remote_index,
        counter,
        &mut buf[e.msg_off..e.end()],
        e.padded,
    )
    .map_err(|_| DropReason::Malformed)?;
    finish_encap(buf, &e, route)
}

/// A fresh IPv4 header (no options, no fragmentation, TTL 64) for `payload_len` bytes of
/// `protocol`, checksum filled.
fn write_ipv4(
    ip: &mut Ipv4Packet<&mut [u8]>,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    protocol: IpProtocol,
    payload_len: u16,
) {
    ip.set_version(4);
    ip.set_header_len(IPV4_LEN);
    ip.set_dscp(0);
    ip.set_ecn(0);
    ip.set_total_len(payload_len + IPV4_LEN as u16);
    ip.set_ident(0);
    ip.clear_flags();
    ip.set_frag_offset(0);
    ip.set_ttl(64);
    ip.set_protocol(protocol);
    ip.set_src_addr(src);
    ip.set_dst_addr(dst);
    ip.fill_checksum();
}

/// A fresh IPv6 header (hop limit 64) for `payload_len` bytes of `next`.
fn write_ipv6(
    ip: &mut Ipv6Packet<&mut [u8]>,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    next: IpProtocol,
    payload_len: u16,
) {
    ip.set_version(6);
    ip.set_traffic_class(0);
    ip.set_flow_label(0);
    ip.set_payload_len(payload_len);
    ip.set_next_header(next);
    ip.set_hop_limit(64);
    ip.set_src_addr(src);
    ip.set_dst_addr(dst);
}

fn write_udp(udp: &mut UdpPacket<&mut [u8]>, route: &Route, len: u16) {
    udp.set_src_port(route.src.port());
    udp.set_dst_port(route.dst.port());
    udp.set_length(len);
    udp.set_checksum(0);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inner_v4(payload: &[u8], ttl: u8) -> Vec<u8> {
        let mut p = vec![0u8; 20 + payload.len()];
        let total = p.len() as u16;
        let mut ip = Ipv4Packet::new_unchecked(&mut p[..]);
        ip.set_version(4);
        ip.set_header_len(20);
        ip.set_total_len(total);
        ip.set_ttl(ttl);
        ip.set_protocol(IpProtocol::UDP);
        ip.set_src_addr([10, 0, 0, 1].into());
        ip.set_dst_addr([10, 9, 0, 1].into());
        ip.fill_checksum();
        ip.payload_mut().copy_from_slice(payload);
        p
    }

    const KEY: [u8; 32] = [7; 32];

    fn route(v6: bool) -> Route {
        let (s, d) = if v6 {
            ("[2001:2::1]:51820", "[2001:2::2]:40000")
        } else {
            ("198.18.0.1:51820", "198.18.0.2:40000")
        };
        Route {
            src: s.parse().unwrap(),
            dst: d.parse().unwrap(),
            src_mac: [2, 0, 0, 0, 0, 1],
            dst_mac: [2, 0, 0, 0, 0, 2],
        }
    }

    /// LAN frame in a chunk at the kernel's 256-byte headroom → encapsulate → parse the outer
    /// frame → open → the inner packet again, framed for the LAN. Both outer families.
    #[test]
    fn encapsulate_then_decapsulate_round_trip() {
        for v6 in [false, true] {
            for size in [0usize, 1, 13, 100, 1372] {
                let inner = inner_v4(&vec![0x5a; size], 64);
                let mut chunk = vec![0u8; 2048];
                let rx = 256;
                chunk[rx + ETH_LEN..rx + ETH_LEN + inner.len()].copy_from_slice(&inner);
                // Ethernet padding after a short packet must not be carried along.
                let frame_len = (ETH_LEN + inner.len()).max(60);
                let (ioff, ilen, dst) = parse_inner(&chunk, rx, frame_len).unwrap();
                assert_eq!(
                    (ioff, ilen, dst),
                    (rx + ETH_LEN, inner.len(), IpAddr::from([10, 9, 0, 1]))
                );
                let r = route(v6);
                let (start, len) =
                    encapsulate(&mut chunk, ioff, ilen, &KEY, 0xabcd, 5, &r, 1420).unwrap();

                // What a peer's kernel would check: IP and UDP checksums.
                let eth = EthernetFrame::new_checked(&chunk[start..start + len]).unwrap();
                assert_eq!(eth.dst_addr(), r.dst_mac);
                if v6 {
                    let ip = Ipv6Packet::new_checked(eth.payload()).unwrap();
                    let udp = UdpPacket::new_checked(ip.payload()).unwrap();
                    assert!(udp.verify_checksum(ip.src_addr(), ip.dst_addr()));
                    assert_ne!(udp.checksum(), 0);
                } else {
                    let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
                    assert!(ip.verify_checksum());
                    let udp = UdpPacket::new_checked(ip.payload()).unwrap();
                    assert!(udp.verify_checksum(ip.src_addr(), ip.dst_addr()));
                }
                let outer = parse_outer(&chunk, start, len).unwrap();
                assert_eq!(outer.src, r.src);
                assert_eq!((outer.msg_len - 32) % 16, 0, "padded to 16");
                let msg = &mut chunk[outer.msg_offset..outer.msg_offset + outer.msg_len];
                let d = proto::messages::Data::new_checked(&*msg).unwrap();
                assert_eq!((d.receiver(), d.counter()), (0xabcd, 5));
                let plain = data::open(&KEY, msg).unwrap();
                let inner_off = outer.msg_offset + DATA_HEADER_LEN;
                assert_eq!(&chunk[inner_off..inner_off + inner.len()], &inner[..]);
                assert!(plain >= inner.len());
                decrement_ttl(&mut chunk, inner_off).unwrap();
                let (fs, fl) =
                    frame_inner(&mut chunk, inner_off, inner.len(), [1; 6], [3; 6]).unwrap();
                let eth = EthernetFrame::new_checked(&chunk[fs..fs + fl]).unwrap();
                let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
                assert_eq!(ip.ttl(), 63);
                assert!(
                    ip.verify_checksum(),
                    "incremental checksum after TTL decrement"
                );
            }
        }
    }

    /// A TCP segment whose checksum field holds only the pseudo-header sum (as a local
    /// sender hands it to a veth) leaves with a full, valid checksum; a valid one is untouched.
    #[test]
    fn partial_checksums_are_completed() {
        let mut tcp = vec![0u8; 20 + 10];
        tcp[12] = 5 << 4; // data offset
        tcp[20..].copy_from_slice(b"0123456789");
        let mut p = inner_v4(&tcp, 64);
        p[9] = 6; // protocol TCP
        let (src, dst) = (
            std::net::Ipv4Addr::new(10, 0, 0, 1),
            std::net::Ipv4Addr::new(10, 9, 0, 1),
        );
        let partial = src.pseudo_header(dst, IpProtocol::TCP, 30).sum();
        p[20 + 16..20 + 18].copy_from_slice(&partial.to_be_bytes());
        let len = p.len();
        complete_partial_checksum(&mut p, 0, len);
        let full = src
            .pseudo_header(dst, IpProtocol::TCP, 30)
            .add_bytes(&p[20..])
            .sum();
        assert_eq!(full, 0xffff, "checksum verifies");
        let before = p.clone();
        complete_partial_checksum(&mut p, 0, len);
        assert_eq!(p, before, "a complete checksum is left alone");
    }

    #[test]
    fn too_big_replies_quote_the_packet_and_name_the_mtu() {
        let mut big = inner_v4(&vec![7u8; 1480], 64);
        assert!(!may_report_too_big(&big), "no DF: not reportable");
        big[6] |= 0x40; // DF
        assert!(may_report_too_big(&big));
        let mut out = vec![0u8; 2048];
        let from: IpAddr = "10.9.0.254".parse().unwrap();
        let n = too_big_reply(&big, &mut out, from, [1; 6], [2; 6], 1420).unwrap();
        assert_eq!(n, 14 + 576, "IPv4 error kept within 576 bytes");
        let eth = EthernetFrame::new_checked(&out[..n]).unwrap();
        let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!(
            (ip.src_addr(), ip.dst_addr()),
            ([10, 9, 0, 254].into(), [10, 0, 0, 1].into())
        );
        let icmp = proto::wire::Icmpv4Packet::new_checked(ip.payload()).unwrap();
        assert!(icmp.verify_checksum());
        assert_eq!(
            (icmp.msg_type(), icmp.msg_code()),
            (proto::wire::Icmpv4Type::DST_UNREACHABLE, 4)
        );
        assert_eq!(&ip.payload()[6..8], &1420u16.to_be_bytes());
        assert_eq!(
            &icmp.payload()[..20],
            &big[..20],
            "quotes the offending header"
        );
    }

    #[test]
    fn ttl_and_garbage_are_refused() {
        let mut p = inner_v4(b"x", 1);
        assert_eq!(decrement_ttl(&mut p, 0), Err(DropReason::TtlExceeded));
        let mut junk = vec![0x99u8; 40];
        assert_eq!(decrement_ttl(&mut junk, 0), Err(DropReason::BadInner));
        assert_eq!(parse_outer(&junk, 0, 40), Err(DropReason::Malformed));
        assert_eq!(
            parse_outer(&junk, 30, 40),
            Err(DropReason::Malformed),
            "out of bounds"
        );
        let mut chunk = vec![0u8; 100];
        assert_eq!(
            encapsulate(&mut chunk, 20, 10, &KEY, 1, 1, &route(false), 1420),
            Err(DropReason::Malformed),
            "no headroom"
        );
    }

    /// Found by the `frames` fuzz target: a start and length whose sum overflows are a range
    /// outside the chunk, not a panic.
    #[test]
    fn overflowing_ranges_are_outside_the_chunk() {
        let mut chunk = inner_v4(b"x", 64);
        for (start, n) in [(usize::MAX, 1), (1, usize::MAX), (usize::MAX, usize::MAX)] {
            assert_eq!(parse_outer(&chunk, start, n), Err(DropReason::Malformed));
            assert_eq!(parse_inner(&chunk, start, n), Err(DropReason::Malformed));
            complete_partial_checksum(&mut chunk, start, n);
        }
        assert_eq!(chunk, inner_v4(b"x", 64), "nothing written");
    }
}
