//! The workers' per-packet transforms (`dataplane::packet`): pure functions over a UMEM chunk.
//!
//! Input: a flags byte, the frame's `start` and `len` in the chunk (16-bit, or with flag bit 0
//! any 64-bit value, as a corrupt descriptor could hold), then the chunk itself. Besides never
//! panicking, what the parsers return lies inside the frame, the in-place rewrites keep the
//! checksums they promise, and a parsed LAN packet encapsulates into a WAN frame that
//! `parse_outer` finds and that opens back to the same packet.

use crate::Input;
use dataplane::packet::{
    complete_partial_checksum, decrement_ttl, encapsulate, frame_inner, frame_source,
    may_report_too_big, parse_inner, parse_outer, too_big_reply, Route, ETH_LEN, HEADROOM,
};
use proto::wire::{EthernetFrame, Icmpv4Packet, Icmpv6Packet, Ipv4Packet, Ipv6Packet};
use std::net::{IpAddr, SocketAddr};

const KEY: [u8; 32] = [7; 32];
const MTU: usize = 1420;

pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let flags = input.u8();
    let (start, len) = if flags & 1 != 0 {
        (input.u64() as usize, input.u64() as usize)
    } else {
        (usize::from(input.u16()), usize::from(input.u16()))
    };
    let buf = input.rest();
    let frame_end = start.checked_add(len);
    let in_frame = |off: usize, n: usize| match (off.checked_add(n), frame_end) {
        (Some(end), Some(frame_end)) => off >= start && end <= frame_end && frame_end <= buf.len(),
        _ => false,
    };

    if let Ok(o) = parse_outer(buf, start, len) {
        assert!(
            in_frame(o.msg_offset, o.msg_len),
            "message inside the frame"
        );
        assert!(o.msg_len >= 32, "room for a data header and tag");
    }
    if let Some(mac) = frame_source(buf, start) {
        assert_eq!(&buf[start + 6..start + 12], &mac);
    }

    let mut chunk = buf.to_vec();
    if decrement_ttl(&mut chunk, start).is_ok() {
        ttl_rewrite_keeps_checksum(&buf[start..], &chunk[start..]);
    }
    let mut once = buf.to_vec();
    complete_partial_checksum(&mut once, start, len);
    let mut twice = once.clone();
    complete_partial_checksum(&mut twice, start, len);
    assert_eq!(once, twice, "a completed checksum is left alone");

    let Ok((off, n, dst)) = parse_inner(buf, start, len) else {
        return;
    };
    assert!(
        off == start + ETH_LEN && in_frame(off, n),
        "packet inside the frame"
    );
    let packet = &buf[off..off + n];
    assert_eq!(proto::wire::dest_addr(packet), Some(dst));

    let mut chunk = buf.to_vec();
    if let Ok((s, l)) = frame_inner(&mut chunk, off, n, [1; 6], [2; 6]) {
        assert_eq!((s, l), (start, ETH_LEN + n));
        assert_eq!(
            &chunk[off..off + n],
            packet,
            "framing leaves the packet alone"
        );
    }

    let v6 = flags & 2 != 0;
    let _ = may_report_too_big(packet);
    too_big(packet, v6);
    encapsulation_round_trip(packet, v6);
}

/// The incremental IPv4 checksum update after a TTL decrement keeps a valid header valid.
fn ttl_rewrite_keeps_checksum(before: &[u8], after: &[u8]) {
    if let (Ok(b), Ok(a)) = (
        Ipv4Packet::new_checked(before),
        Ipv4Packet::new_checked(after),
    ) {
        assert_eq!(a.ttl(), b.ttl() - 1);
        if b.verify_checksum() {
            assert!(a.verify_checksum(), "incremental checksum update");
        }
    }
    if let (Ok(b), Ok(a)) = (
        Ipv6Packet::new_checked(before),
        Ipv6Packet::new_checked(after),
    ) {
        assert_eq!(a.hop_limit(), b.hop_limit() - 1);
    }
}

/// An ICMP "too big" answer is a well-formed frame of bounded size with a valid checksum.
fn too_big(packet: &[u8], v6: bool) {
    let from: IpAddr = if v6 {
        "2001:db8::fe".parse().expect("address")
    } else {
        "192.0.2.254".parse().expect("address")
    };
    let mut out = vec![0u8; 2048];
    let Ok(total) = too_big_reply(packet, &mut out, from, [1; 6], [2; 6], 1280) else {
        return;
    };
    let eth = EthernetFrame::new_checked(&out[..total]).expect("a whole Ethernet frame");
    if v6 {
        assert!(total <= ETH_LEN + 1280, "within the IPv6 minimum MTU");
        let ip = Ipv6Packet::new_checked(eth.payload()).expect("a whole IPv6 packet");
        let icmp = Icmpv6Packet::new_checked(ip.payload()).expect("an ICMPv6 header");
        assert!(icmp.verify_checksum(ip.src_addr(), ip.dst_addr()));
    } else {
        assert!(total <= ETH_LEN + 576, "within 576 bytes");
        let ip = Ipv4Packet::new_checked(eth.payload()).expect("a whole IPv4 packet");
        assert!(ip.verify_checksum());
        let icmp = Icmpv4Packet::new_checked(ip.payload()).expect("an ICMP header");
        assert!(icmp.verify_checksum());
    }
}

/// LAN packet → data message in a WAN frame → `parse_outer` → open → the same packet.
fn encapsulation_round_trip(packet: &[u8], v6: bool) {
    let (src, dst) = if v6 {
        ("[2001:db8::1]:51820", "[2001:db8::2]:40000")
    } else {
        ("198.18.0.1:51820", "198.18.0.2:40000")
    };
    let (src, dst): (SocketAddr, SocketAddr) =
        (src.parse().expect("address"), dst.parse().expect("address"));
    let route = Route {
        src,
        dst,
        src_mac: [2, 0, 0, 0, 0, 1],
        dst_mac: [2, 0, 0, 0, 0, 2],
    };
    // The chunk as the kernel hands it: the packet after the headroom and an Ethernet header.
    let inner_off = HEADROOM + ETH_LEN;
    let mut chunk = vec![0u8; inner_off + packet.len() + 64];
    chunk[inner_off..inner_off + packet.len()].copy_from_slice(packet);
    let n = packet.len();
    let Ok((s, l)) = encapsulate(&mut chunk, inner_off, n, &KEY, 9, 3, &route, MTU) else {
        // Only a packet too large for a UDP datagram cannot be encapsulated.
        assert!(n > 65_000, "encapsulation refused a {n}-byte packet");
        return;
    };
    let o = parse_outer(&chunk, s, l).expect("our own frame parses");
    assert_eq!(o.src, src);
    assert_eq!(o.dst_port, dst.port());
    let msg = &mut chunk[o.msg_offset..o.msg_offset + o.msg_len];
    let plain = proto::data::open(&KEY, msg).expect("our own message opens");
    assert!(plain >= n);
    assert_eq!(&msg[16..16 + n], packet, "the packet comes back");
}
