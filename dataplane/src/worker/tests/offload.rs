//! Offloaded flows through the worker: a client's packet of an offloaded flow leaves by the
//! WAN port translated, with a hop taken off and checksums that verify; the flow's return
//! packet is translated back and sealed for the client; what conntrack must see (a SYN), a
//! flow whose next hop is not known yet, and a return packet of no flow keep the kernel's path
//! or are dropped and counted.

use super::*;
use crate::offload::table::{FlowTable, Writer};
use crate::offload::tuple::{Tuple, UDP};
use proto::wire::PseudoHeader as _;

/// A host on the internet, behind the WAN router.
const INET: Ipv4Addr = Ipv4Addr::new(198, 18, 5, 5);
const ROUTER: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 254);
const ROUTER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 9];
/// The port MASQUERADE chose.
const NAT_PORT: u16 = 61000;

/// The client's flow as conntrack lists it: `inner()`'s ports (1000 to 2000), its source
/// translated to the gateway's WAN address.
fn flow() -> (Tuple, Tuple) {
    let orig = Tuple {
        proto: UDP,
        src: PEER_TUNNEL.into(),
        dst: INET.into(),
        sport: 1000,
        dport: 2000,
    };
    let reply = Tuple {
        proto: UDP,
        src: INET.into(),
        dst: GW_WAN.into(),
        sport: 2000,
        dport: NAT_PORT,
    };
    (orig, reply)
}

/// The table with the flow offloaded, as the offload thread enters it.
fn table() -> Arc<FlowTable> {
    table_of(flow())
}

fn table_of((orig, reply): (Tuple, Tuple)) -> Arc<FlowTable> {
    let t = FlowTable::new(16);
    let mut w = Writer::new(t.clone());
    w.insert(orig, reply.reversed()).unwrap();
    w.insert(reply, orig.reversed()).unwrap();
    t
}

/// The neighbours, and the internet host routed via the WAN router.
fn with_router() -> Snapshot {
    let mut s = neighbours();
    s.next_hop.insert(
        INET.into(),
        crate::neigh::Hop {
            via: ROUTER.into(),
            oif: WAN_INDEX,
        },
    );
    s.mac.insert((WAN_INDEX, ROUTER.into()), ROUTER_MAC);
    s
}

/// The internet host's reply to the gateway's translated address, as a frame from the router.
fn from_internet(tag: u64) -> Vec<u8> {
    from_internet_to(GW_WAN, WAN_MAC, tag)
}

/// The same to translated address `gw`, on the port whose MAC is `port_mac`.
fn from_internet_to(gw: Ipv4Addr, port_mac: [u8; 6], tag: u64) -> Vec<u8> {
    let mut ip = inner(INET, gw, tag);
    ip[20..22].copy_from_slice(&2000u16.to_be_bytes());
    ip[22..24].copy_from_slice(&NAT_PORT.to_be_bytes());
    let mut p = Ipv4Packet::new_unchecked(&mut ip[..]);
    UdpPacket::new_unchecked(p.payload_mut()).fill_checksum(INET, gw);
    let mut f = Vec::new();
    f.extend_from_slice(&port_mac);
    f.extend_from_slice(&ROUTER_MAC);
    f.extend_from_slice(&[0x08, 0x00]);
    f.extend_from_slice(&ip);
    f
}

/// Whether the IPv4 header and UDP checksums of `ip` verify.
fn checksums_verify(ip: &[u8]) -> bool {
    let p = Ipv4Packet::new_checked(ip).unwrap();
    let l4 = p.payload();
    let sum = p
        .src_addr()
        .pseudo_header(p.dst_addr(), IpProtocol::UDP, l4.len() as u32)
        .add_bytes(l4)
        .finish();
    p.verify_checksum() && sum == 0
}

fn counters(gw: &Gateway) -> (u64, u64) {
    let s = gw.region.worker_stats(0).unwrap();
    (
        s.offloaded_out.load(Ordering::Relaxed),
        s.offloaded_in.load(Ordering::Relaxed),
    )
}

#[test]
fn an_offloaded_flow_is_carried_both_ways_by_the_worker() {
    let gw = Gateway::new("flow", true);
    let mut arena = vec![0u8; 64 * FRAME];
    let mut w = gw
        .worker(0, FakeLink::new(&mut arena, FRAME, true), with_router())
        .with_flows(table());
    let msg = from_peer(&inner(PEER_TUNNEL, INET, 7), &KEY_TO_US, 0, endpoint());
    assert!(w.link_mut().inject(Side::Wan, &msg));
    w.poll_once(T0);
    let out = w.link_mut().take_sent(Side::Wan);
    assert_eq!(out.len(), 1, "out of the WAN port");
    let f = &out[0];
    assert_eq!((&f[..6], &f[6..12]), (&ROUTER_MAC[..], &WAN_MAC[..]));
    let ip = Ipv4Packet::new_checked(&f[14..]).unwrap();
    assert_eq!((ip.src_addr(), ip.dst_addr(), ip.ttl()), (GW_WAN, INET, 63));
    let udp = UdpPacket::new_checked(ip.payload()).unwrap();
    assert_eq!((udp.src_port(), udp.dst_port()), (NAT_PORT, 2000));
    assert!(checksums_verify(&f[14..]));
    assert_eq!(
        u64::from_be_bytes(f[14 + 28..14 + 36].try_into().unwrap()),
        7
    );

    // The reply: translated back to the client and sealed for its peer.
    assert!(w.link_mut().inject(Side::Wan, &from_internet(8)));
    w.poll_once(T0 + 1);
    let sealed = w.link_mut().take_sent(Side::Wan);
    assert_eq!(sealed.len(), 1);
    let outer = packet::parse_outer(&sealed[0], 0, sealed[0].len()).unwrap();
    let mut m = sealed[0][outer.msg_offset..outer.msg_offset + outer.msg_len].to_vec();
    let n = proto::data::open(&KEY_TO_PEER, &mut m).unwrap();
    let plain = &m[16..16 + n];
    let ip = Ipv4Packet::new_checked(plain).unwrap();
    assert_eq!(
        (ip.src_addr(), ip.dst_addr(), ip.ttl()),
        (INET, PEER_TUNNEL, 63)
    );
    let udp = UdpPacket::new_checked(ip.payload()).unwrap();
    assert_eq!((udp.src_port(), udp.dst_port()), (2000, 1000));
    assert!(checksums_verify(plain));
    assert_eq!(counters(&gw), (1, 1));
    let link = w.link_mut();
    assert!(link.to_kernel.is_empty());
    assert_eq!((link.outstanding(), link.duplicates()), (0, 0));
}

#[test]
fn what_the_kernel_must_see_keeps_its_path_untranslated() {
    let gw = Gateway::new("flow-kernel", true);
    let mut arena = vec![0u8; 64 * FRAME];
    // The flow's next hop is not known yet (no route learned for the internet host).
    let mut w = gw
        .worker(
            0,
            FakeLink::new(&mut arena, FRAME, true).with_local(),
            neighbours(),
        )
        .with_flows(table());
    let msg = from_peer(&inner(PEER_TUNNEL, INET, 1), &KEY_TO_US, 0, endpoint());
    assert!(w.link_mut().inject(Side::Wan, &msg));
    w.poll_once(T0);
    let local = w.link_mut().take_sent(Side::Local);
    assert_eq!(
        local.len(),
        1,
        "through wg0 to the kernel, which translates it"
    );
    // The link strips the zero-MAC Ethernet header towards wg0.
    let ip = Ipv4Packet::new_checked(&local[0][..]).unwrap();
    assert_eq!((ip.src_addr(), ip.ttl()), (PEER_TUNNEL, 64), "untouched");
    assert_eq!(counters(&gw), (0, 0));
    drop(w);

    // A SYN of the same tuple: conntrack must see it, whatever the table says.
    let mut arena = vec![0u8; 64 * FRAME];
    let mut w = gw
        .worker(
            0,
            FakeLink::new(&mut arena, FRAME, true).with_local(),
            with_router(),
        )
        .with_flows(table());
    let mut syn = inner(PEER_TUNNEL, INET, 2);
    syn.extend_from_slice(&[0; 12]); // room for a TCP header
    {
        let mut p = Ipv4Packet::new_unchecked(&mut syn[..]);
        p.set_total_len(48);
        p.set_protocol(IpProtocol::TCP);
        p.fill_checksum();
        let seg = p.payload_mut();
        seg[12] = 5 << 4;
        seg[13] = proto::wire::tcp::SYN;
    }
    let msg = from_peer(&syn, &KEY_TO_US, 1, endpoint());
    assert!(w.link_mut().inject(Side::Wan, &msg));
    w.poll_once(T0);
    assert_eq!(w.link_mut().take_sent(Side::Local).len(), 1);
    assert!(w.link_mut().take_sent(Side::Wan).is_empty());
    assert_eq!(counters(&gw), (0, 0));
}

#[test]
fn return_packets_of_no_flow_are_dropped_and_counted() {
    let gw = Gateway::new("flow-gone", true);
    let mut arena = vec![0u8; 64 * FRAME];
    let t = table();
    let mut w = gw
        .worker(0, FakeLink::new(&mut arena, FRAME, true), with_router())
        .with_flows(t.clone());
    // The flow ended between the WAN program and the worker (another flow stays: with none
    // at all, a two-armed worker takes whatever its WAN socket brings as WireGuard, and such a
    // frame is dropped as malformed instead).
    let (orig, reply) = flow();
    let mut writer = Writer::new(t);
    assert!(writer.remove(orig) && writer.remove(reply));
    let other = Tuple {
        sport: 3000,
        ..orig
    };
    writer.insert(other, other.reversed()).unwrap();
    assert!(w.link_mut().inject(Side::Wan, &from_internet(9)));
    w.poll_once(T0);
    let link = w.link_mut();
    assert!(link.sent.is_empty() && link.to_kernel.is_empty());
    assert_eq!((link.outstanding(), link.duplicates()), (0, 0));
    assert_eq!(gw.drops(0, DropReason::FlowGone), 1);
}

/// A two-armed gateway whose internet is behind its LAN port: the LAN program steers the
/// flow's return packets to the LAN socket, and the worker translates them back and seals them
/// for the client, as it does those from the WAN port.
#[test]
fn a_return_packet_on_the_lan_port_is_translated_and_sealed() {
    let gw = Gateway::new("flow-lan", true);
    let mut arena = vec![0u8; 64 * FRAME];
    let (orig, mut reply) = flow();
    reply.dst = GW_LAN.into();
    let mut w = gw
        .worker(0, FakeLink::new(&mut arena, FRAME, true), with_router())
        .with_flows(table_of((orig, reply)));
    assert!(w
        .link_mut()
        .inject(Side::Lan, &from_internet_to(GW_LAN, LAN_MAC, 5)));
    w.poll_once(T0);
    let sealed = w.link_mut().take_sent(Side::Wan);
    assert_eq!(sealed.len(), 1, "sealed for the client");
    let outer = packet::parse_outer(&sealed[0], 0, sealed[0].len()).unwrap();
    let mut m = sealed[0][outer.msg_offset..outer.msg_offset + outer.msg_len].to_vec();
    let n = proto::data::open(&KEY_TO_PEER, &mut m).unwrap();
    let ip = Ipv4Packet::new_checked(&m[16..16 + n]).unwrap();
    assert_eq!((ip.src_addr(), ip.dst_addr()), (INET, PEER_TUNNEL));
    let udp = UdpPacket::new_checked(ip.payload()).unwrap();
    assert_eq!((udp.src_port(), udp.dst_port()), (2000, 1000));
    assert!(checksums_verify(&m[16..16 + n]));
    assert_eq!(counters(&gw), (0, 1));
    let link = w.link_mut();
    assert!(link.sent.is_empty() && link.to_kernel.is_empty());
    assert_eq!((link.outstanding(), link.duplicates()), (0, 0));
}

/// Once the kernel was seen translating clients' traffic out of the LAN port, a packet to a
/// LAN host whose next hop is known takes the kernel's path (through wg0, untouched) instead of
/// being served directly: its NAT must apply to every packet of the flow, not to some.
#[test]
fn lan_hosts_take_the_kernels_path_where_the_lan_is_translated() {
    let gw = Gateway::new("flow-lan-nat", true);
    for translated in [false, true] {
        let mut arena = vec![0u8; 64 * FRAME];
        let t = table();
        if translated {
            Writer::new(t.clone()).set_lan_translated();
        }
        let mut w = gw
            .worker(
                0,
                FakeLink::new(&mut arena, FRAME, true).with_local(),
                neighbours(),
            )
            .with_flows(t);
        let counter = if translated { 2 } else { 3 };
        let msg = from_peer(
            &inner(PEER_TUNNEL, LAN_HOST, 1),
            &KEY_TO_US,
            counter,
            endpoint(),
        );
        assert!(w.link_mut().inject(Side::Wan, &msg));
        w.poll_once(T0);
        let (lan, local) = (
            w.link_mut().take_sent(Side::Lan),
            w.link_mut().take_sent(Side::Local),
        );
        if translated {
            assert_eq!((lan.len(), local.len()), (0, 1), "through the kernel");
            let ip = Ipv4Packet::new_checked(&local[0][..]).unwrap();
            assert_eq!((ip.src_addr(), ip.ttl()), (PEER_TUNNEL, 64), "untouched");
        } else {
            assert_eq!((lan.len(), local.len()), (1, 0), "served directly");
        }
    }
}

/// A packet longer than the port it would leave by takes the kernel's path (which fragments
/// it or tells the client the MTU), whether it is an offloaded flow's or for a LAN host.
#[test]
fn packets_longer_than_the_port_take_the_kernels_path() {
    let gw = Gateway::new("flow-mtu", true);
    let mut arena = vec![0u8; 64 * FRAME];
    let mut w = gw
        .worker(
            0,
            FakeLink::new(&mut arena, FRAME, true).with_local(),
            with_router(),
        )
        .with_flows(table());
    // `inner()` packets are 36 bytes long.
    w.cfg.wan.mtu = 35;
    if let Some(lan) = w.cfg.lan.as_mut() {
        lan.mtu = 35;
    }
    for (counter, dst) in [(0, INET), (1, LAN_HOST)] {
        let msg = from_peer(&inner(PEER_TUNNEL, dst, 1), &KEY_TO_US, counter, endpoint());
        assert!(w.link_mut().inject(Side::Wan, &msg));
        w.poll_once(T0);
        let link = w.link_mut();
        assert_eq!(link.take_sent(Side::Local).len(), 1, "{dst}: to the kernel");
        assert!(link.take_sent(Side::Wan).is_empty() && link.take_sent(Side::Lan).is_empty());
    }
    assert_eq!(counters(&gw), (0, 0));
    // At the MTU, both leave directly.
    w.cfg.wan.mtu = 36;
    if let Some(lan) = w.cfg.lan.as_mut() {
        lan.mtu = 36;
    }
    for (counter, dst, side) in [(2, INET, Side::Wan), (3, LAN_HOST, Side::Lan)] {
        let msg = from_peer(&inner(PEER_TUNNEL, dst, 1), &KEY_TO_US, counter, endpoint());
        assert!(w.link_mut().inject(Side::Wan, &msg));
        w.poll_once(T0);
        assert_eq!(w.link_mut().take_sent(side).len(), 1, "{dst}: directly");
    }
    assert_eq!(counters(&gw).0, 1);
}
