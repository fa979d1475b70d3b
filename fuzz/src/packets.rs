//! The packet views of `proto::wire` (Ethernet, IPv4, IPv6, UDP, ICMP) and the helpers the
//! data path classifies decrypted packets with (`ip_version`, `inner_packet_len`,
//! `source_addr`, `dest_addr`).
//!
//! The input is read twice: as an Ethernet frame and as a bare IP packet (what a decrypted
//! data message holds). Whatever a view accepts, every getter reads within bounds, the helpers
//! agree with the views, a checksum the view fills verifies, and the fields written back
//! through the setters rebuild the same header.

use proto::wire::{
    dest_addr, inner_packet_len, ip_version, source_addr, EtherType, EthernetFrame, Icmpv4Packet,
    Icmpv6Packet, IpProtocol, Ipv4Packet, Ipv6Packet, PseudoHeader, UdpPacket, WireError,
};
use std::net::{IpAddr, Ipv6Addr};

pub fn run(data: &[u8]) {
    if let Ok(eth) = EthernetFrame::new_checked(data) {
        assert_eq!(eth.payload().len(), data.len() - 14);
        let mut copy = data.to_vec();
        let mut b = EthernetFrame::new_unchecked(&mut copy[..]);
        b.set_dst_addr(eth.dst_addr());
        b.set_src_addr(eth.src_addr());
        b.set_ethertype(eth.ethertype());
        assert_eq!(copy, data, "Ethernet header rebuilds from its fields");
        if matches!(eth.ethertype(), EtherType::IPV4 | EtherType::IPV6) {
            ip(eth.payload());
        }
    } else {
        assert!(data.len() < 14);
    }
    ip(data);
}

/// An IP packet (or anything) at the start of `p`.
fn ip(p: &[u8]) {
    let version = ip_version(p);
    let len = inner_packet_len(p);
    assert_eq!(source_addr(p).is_some(), version.is_some());
    assert_eq!(dest_addr(p).is_some(), version.is_some());
    if let Ok(n) = len {
        assert!(n <= p.len() && version.is_some());
    }

    match Ipv4Packet::new_checked(p) {
        Ok(v4) => {
            assert_eq!(version, Some(4));
            let (header, total) = (v4.header_len(), usize::from(v4.total_len()));
            assert!((20..=60).contains(&header) && header <= total && total <= p.len());
            assert_eq!(len, Ok(total), "the helper agrees with the view");
            assert_eq!(v4.options().len(), header - 20);
            assert_eq!(v4.payload().len(), total - header);
            assert_eq!(source_addr(p), Some(IpAddr::V4(v4.src_addr())));
            assert_eq!(dest_addr(p), Some(IpAddr::V4(v4.dst_addr())));
            let _ = (v4.dscp(), v4.ecn(), v4.ident(), v4.dont_frag(), v4.ttl());
            let _ = (v4.checksum(), v4.verify_checksum());
            let mut copy = p.to_vec();
            let mut filled = Ipv4Packet::new_unchecked(&mut copy[..]);
            filled.fill_checksum();
            assert!(filled.verify_checksum(), "a filled IPv4 checksum verifies");
            if !v4.is_fragment() {
                let (s, d) = (v4.src_addr(), v4.dst_addr());
                match v4.protocol() {
                    IpProtocol::UDP => udp(v4.payload(), s, d),
                    IpProtocol::ICMP => icmpv4(v4.payload()),
                    _ => {}
                }
            }
        }
        // The helper reads the total length alone (IHL is the view's concern), so it must
        // refuse at least what the view refuses as truncated.
        Err(WireError::Truncated) if version == Some(4) => assert!(len.is_err()),
        Err(_) => {}
    }

    if let Ok(v6) = Ipv6Packet::new_checked(p) {
        assert_eq!(version, Some(6));
        assert_eq!(len, Ok(v6.total_len()), "the helper agrees with the view");
        assert_eq!(v6.payload().len(), usize::from(v6.payload_len()));
        assert_eq!(source_addr(p), Some(IpAddr::V6(v6.src_addr())));
        assert_eq!(dest_addr(p), Some(IpAddr::V6(v6.dst_addr())));
        let mut copy = p.to_vec();
        let mut b = Ipv6Packet::new_unchecked(&mut copy[..]);
        b.set_version(v6.version());
        b.set_traffic_class(v6.traffic_class());
        b.set_flow_label(v6.flow_label());
        b.set_payload_len(v6.payload_len());
        b.set_next_header(v6.next_header());
        b.set_hop_limit(v6.hop_limit());
        b.set_src_addr(v6.src_addr());
        b.set_dst_addr(v6.dst_addr());
        assert_eq!(copy, p, "IPv6 header rebuilds from its fields");
        assert_eq!(
            (v6.dscp() << 2) | v6.ecn(),
            v6.traffic_class(),
            "DSCP and ECN make up the traffic class"
        );
        let (s, d) = (v6.src_addr(), v6.dst_addr());
        match v6.next_header() {
            IpProtocol::UDP => udp(v6.payload(), s, d),
            IpProtocol::ICMPV6 => icmpv6(v6.payload(), s, d),
            _ => {}
        }
    } else if version == Some(6) {
        assert!(
            len.is_err(),
            "the view refuses only what the helper refuses"
        );
    }
}

fn udp<A: PseudoHeader>(l4: &[u8], src: A, dst: A) {
    let Ok(u) = UdpPacket::new_checked(l4) else {
        return;
    };
    let length = usize::from(u.length());
    assert!((8..=l4.len()).contains(&length));
    assert_eq!(u.payload().len(), length - 8);
    let _ = u.verify_checksum(src, dst);
    let mut copy = l4.to_vec();
    let mut b = UdpPacket::new_unchecked(&mut copy[..]);
    b.set_src_port(u.src_port());
    b.set_dst_port(u.dst_port());
    b.set_length(u.length());
    b.set_checksum(u.checksum());
    assert_eq!(copy, l4, "UDP header rebuilds from its fields");
    let mut b = UdpPacket::new_unchecked(&mut copy[..]);
    b.fill_checksum(src, dst);
    assert!(
        b.verify_checksum(src, dst),
        "a filled UDP checksum verifies"
    );
    assert_ne!(b.checksum(), 0, "a filled UDP checksum is never 'none'");
}

fn icmpv4(l4: &[u8]) {
    let Ok(m) = Icmpv4Packet::new_checked(l4) else {
        assert!(l4.len() < 8);
        return;
    };
    assert_eq!(m.payload().len(), l4.len() - 8);
    let _ = (m.msg_type(), m.msg_code(), m.echo_ident(), m.echo_seq_no());
    let _ = m.verify_checksum();
    let mut copy = l4.to_vec();
    let mut b = Icmpv4Packet::new_unchecked(&mut copy[..]);
    b.fill_checksum();
    assert!(b.verify_checksum(), "a filled ICMPv4 checksum verifies");
}

fn icmpv6(l4: &[u8], src: Ipv6Addr, dst: Ipv6Addr) {
    let Ok(m) = Icmpv6Packet::new_checked(l4) else {
        assert!(l4.len() < 8);
        return;
    };
    assert_eq!(m.payload().len(), l4.len() - 8);
    let _ = (m.msg_type(), m.msg_code(), m.echo_ident(), m.echo_seq_no());
    let _ = m.verify_checksum(src, dst);
    let mut copy = l4.to_vec();
    let mut b = Icmpv6Packet::new_unchecked(&mut copy[..]);
    b.fill_checksum(src, dst);
    assert!(
        b.verify_checksum(src, dst),
        "a filled ICMPv6 checksum verifies"
    );
}
