//! The gateway as a host: its own interface (wg0) as the link's local side. A decrypted packet
//! for one of its own addresses goes there unforwarded; what the kernel routes into wg0 is
//! sealed for the peer that owns the destination, staged while there is no session, and
//! dropped (counted) when no peer owns it.

use super::*;

/// The gateway's tunnel address (its `Address`, on wg0).
const GW_TUNNEL: Ipv4Addr = Ipv4Addr::new(198, 18, 200, 1);
/// Owned by no peer (the peer has 198.18.200.0/24).
const NOBODY: Ipv4Addr = Ipv4Addr::new(198, 18, 201, 7);

/// Every next hop known, and the gateway's own addresses.
fn with_local_addrs() -> Snapshot {
    let mut s = neighbours();
    s.local
        .extend([IpAddr::from(GW_TUNNEL), IpAddr::from(GW_LAN)]);
    s
}

/// The IP packet `inner` as the local side hands it over: behind an Ethernet header with
/// zero MACs.
fn from_local(inner: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 12];
    f.extend_from_slice(&[0x08, 0x00]);
    f.extend_from_slice(inner);
    f
}

fn with_ttl(mut p: Vec<u8>, ttl: u8) -> Vec<u8> {
    let mut ip = Ipv4Packet::new_unchecked(&mut p[..]);
    ip.set_ttl(ttl);
    ip.fill_checksum();
    p
}

/// The plaintext of a data message the gateway sent to the peer.
fn opened(frame: &[u8]) -> Vec<u8> {
    let outer = packet::parse_outer(frame, 0, frame.len()).unwrap();
    let mut msg = frame[outer.msg_offset..outer.msg_offset + outer.msg_len].to_vec();
    let n = proto::data::open(&KEY_TO_PEER, &mut msg).unwrap();
    let plain = &msg[16..16 + n];
    let len = proto::wire::inner_packet_len(plain).unwrap();
    plain[..len].to_vec()
}

#[test]
fn a_packet_for_the_gateway_itself_goes_to_its_own_interface() {
    let gw = Gateway::new("local-in", true);
    let mut arena = vec![0u8; 16 * FRAME];
    let link = FakeLink::new(&mut arena, FRAME, true).with_local();
    let mut w = gw.worker(0, link, with_local_addrs());
    // To its tunnel address with the TTL at its last hop, and to its LAN address: both are
    // delivered, as the kernel delivers what arrives on wg0 for a local address.
    let to_tunnel = with_ttl(inner(PEER_TUNNEL, GW_TUNNEL, 1), 1);
    let to_lan_addr = inner(PEER_TUNNEL, GW_LAN, 2);
    for (i, p) in [&to_tunnel, &to_lan_addr].into_iter().enumerate() {
        let msg = from_peer(p, &KEY_TO_US, i as u64, endpoint());
        assert!(w.link_mut().inject(Side::Wan, &msg));
    }
    w.poll_once(T0);
    let link = w.link_mut();
    assert_eq!(
        link.take_sent(Side::Local),
        [to_tunnel, to_lan_addr],
        "to wg0 as sent, TTL untouched"
    );
    assert!(link.sent.is_empty() && link.to_kernel.is_empty());
    assert_eq!((link.outstanding(), link.duplicates()), (0, 0));
    assert_eq!(gw.drops(0, DropReason::TtlExceeded), 0);
}

/// Without a local interface (a data path started without one), a packet for the host goes
/// to the kernel's stack as it did before there was one.
#[test]
fn without_a_local_interface_the_kernel_path_takes_it() {
    let gw = Gateway::new("local-none", true);
    let mut arena = vec![0u8; 16 * FRAME];
    let mut w = gw.worker(
        0,
        FakeLink::new(&mut arena, FRAME, true),
        with_local_addrs(),
    );
    let msg = from_peer(&inner(PEER_TUNNEL, GW_TUNNEL, 1), &KEY_TO_US, 0, endpoint());
    assert!(w.link_mut().inject(Side::Wan, &msg));
    w.poll_once(T0);
    let link = w.link_mut();
    assert!(link.take_sent(Side::Local).is_empty());
    assert_eq!(link.to_kernel.len(), 1);
}

#[test]
fn the_gateways_own_traffic_is_sealed_for_its_peer() {
    let gw = Gateway::new("local-out", true);
    let mut arena = vec![0u8; 16 * FRAME];
    let link = FakeLink::new(&mut arena, FRAME, true).with_local();
    let mut w = gw.worker(0, link, with_local_addrs());
    // TTL 1: the gateway's own packet is not forwarded, so it loses no hop.
    let own = with_ttl(inner(GW_TUNNEL, PEER_TUNNEL, 9), 1);
    assert!(w.link_mut().inject(Side::Local, &from_local(&own)));
    assert_eq!(w.poll_once(T0 + 1), 1);
    let link = w.link_mut();
    let wan = link.take_sent(Side::Wan);
    assert_eq!(wan.len(), 1, "sealed and sent to the peer");
    assert_eq!(opened(&wan[0]), own, "the packet as the kernel wrote it");
    assert!(link.sent.is_empty() && link.to_kernel.is_empty());
    assert_eq!((link.outstanding(), link.duplicates()), (0, 0));
}

/// Without a session yet, the gateway's own packet waits for the handshake it causes, like a
/// LAN packet.
#[test]
fn the_gateways_own_traffic_waits_for_a_session() {
    let gw = Gateway::new("local-stage", false);
    let mut arena = vec![0u8; 16 * FRAME];
    let link = FakeLink::new(&mut arena, FRAME, true).with_local();
    let mut w = gw.worker(0, link, with_local_addrs());
    let own = inner(GW_TUNNEL, PEER_TUNNEL, 4);
    assert!(w.link_mut().inject(Side::Local, &from_local(&own)));
    w.poll_once(T0);
    assert_eq!(gw.events(0), [WorkerEvent::NeedSession { peer: 0 }]);
    assert_eq!(w.link_mut().outstanding(), 1, "staged");
    gw.install(0, LOCAL, KEY_TO_PEER, KEY_TO_US);
    gw.set_peer(endpoint(), 0);
    w.poll_once(T0 + 1_000);
    let wan = w.link_mut().take_sent(Side::Wan);
    assert_eq!(wan.iter().map(|f| opened(f)).collect::<Vec<_>>(), [own]);
    assert_eq!(w.link_mut().outstanding(), 0);
}

#[test]
fn the_gateways_own_traffic_to_no_peer_is_dropped_and_counted() {
    let gw = Gateway::new("local-noroute", true);
    let mut arena = vec![0u8; 16 * FRAME];
    let link = FakeLink::new(&mut arena, FRAME, true).with_local();
    let mut w = gw.worker(0, link, with_local_addrs());
    assert!(w
        .link_mut()
        .inject(Side::Local, &from_local(&inner(GW_TUNNEL, NOBODY, 1))));
    w.poll_once(T0);
    let link = w.link_mut();
    assert!(link.sent.is_empty() && link.to_kernel.is_empty());
    assert_eq!((link.outstanding(), link.duplicates()), (0, 0));
    assert_eq!(gw.drops(0, DropReason::NoRoute), 1);
}

/// While the peers keep the worker busy, the local side is read every LOCAL_EVERY rounds
/// (not every round), so the gateway's own packet waits a few rounds, never longer.
#[test]
fn under_load_the_local_side_is_read_every_few_rounds() {
    let gw = Gateway::new("local-every", true);
    let mut arena = vec![0u8; 64 * FRAME];
    let link = FakeLink::new(&mut arena, FRAME, true).with_local();
    let mut w = gw.worker(0, link, with_local_addrs());
    fn busy_round<'a>(w: &mut Worker<'a, FakeLink<'a>>, counter: &mut u64) -> usize {
        let msg = from_peer(
            &inner(PEER_TUNNEL, LAN_HOST, 1),
            &KEY_TO_US,
            *counter,
            endpoint(),
        );
        *counter += 1;
        assert!(w.link_mut().inject(Side::Wan, &msg));
        w.poll_once(T0 + *counter);
        w.link_mut().take_sent(Side::Wan).len()
    }
    let mut counter = 0;
    // A busy round whose local read finds nothing...
    assert_eq!(busy_round(&mut w, &mut counter), 0);
    let own = inner(GW_TUNNEL, PEER_TUNNEL, 3);
    assert!(w.link_mut().inject(Side::Local, &from_local(&own)));
    // ...so the next busy ones leave the local side alone, at most LOCAL_EVERY - 1 of them.
    let mut rounds = 1;
    while busy_round(&mut w, &mut counter) == 0 {
        rounds += 1;
        assert!(
            rounds <= LOCAL_EVERY,
            "not read within {LOCAL_EVERY} busy rounds"
        );
    }
    assert_eq!(rounds, LOCAL_EVERY, "read on the LOCAL_EVERY-th busy round");
    // An idle worker reads it at once.
    assert!(w.link_mut().inject(Side::Local, &from_local(&own)));
    w.poll_once(T0 + 1_000_000);
    assert_eq!(w.link_mut().take_sent(Side::Wan).len(), 1);
    assert_eq!(w.link_mut().outstanding(), 0);
}

/// A packet from the gateway's own stack too big for the tunnel (wg0's MTU raised past the
/// tunnel's by hand) is answered on wg0 itself, to the stack that sent it, with the tunnel's
/// MTU: never on the LAN port.
#[test]
fn an_oversized_own_packet_is_answered_on_the_local_side() {
    let gw = Gateway::new("local-too-big", true);
    let mut arena = vec![0u8; 16 * FRAME];
    let link = FakeLink::new(&mut arena, FRAME, true).with_local();
    let mut w = gw.worker(0, link, with_local_addrs());
    let mut big = vec![0u8; 1500];
    {
        let mut ip = Ipv4Packet::new_unchecked(&mut big[..]);
        ip.set_version(4);
        ip.set_header_len(20);
        ip.set_total_len(1500);
        ip.set_dont_frag(true);
        ip.set_ttl(64);
        ip.set_protocol(IpProtocol::UDP);
        ip.set_src_addr(GW_TUNNEL);
        ip.set_dst_addr(PEER_TUNNEL);
        ip.fill_checksum();
    }
    assert!(w.link_mut().inject(Side::Local, &from_local(&big)));
    w.poll_once(T0);
    let link = w.link_mut();
    let replies = link.take_sent(Side::Local);
    assert!(
        link.sent.is_empty() && link.to_kernel.is_empty(),
        "{:?}",
        link.sent
    );
    assert_eq!(replies.len(), 1);
    let icmp = Ipv4Packet::new_checked(&replies[0][..]).unwrap();
    assert_eq!(icmp.dst_addr(), GW_TUNNEL, "back to the sender");
    assert_eq!(icmp.protocol(), IpProtocol::ICMP);
    let body = icmp.payload();
    // Destination unreachable, fragmentation needed, next-hop MTU 1420 (RFC 1191).
    assert_eq!((body[0], body[1]), (3, 4));
    assert_eq!(u16::from_be_bytes([body[6], body[7]]), 1420);
    assert_eq!(gw.drops(0, DropReason::TooBig), 1);
    assert_eq!((link.outstanding(), link.duplicates()), (0, 0));
}

/// What the worker does not serve itself goes to the kernel through wg0, unforwarded, so that
/// the kernel's routing and the operator's filter and NAT rules decide (docs/egress.md): a
/// destination beyond the LAN (the internet, a full-tunnel client's traffic) and one that
/// another peer owns (client to client). A LAN host with a known next hop is still served
/// directly.
#[test]
fn what_the_lan_does_not_serve_goes_to_the_kernel_through_wg0() {
    let mut gw = Gateway::new("local-fwd", true);
    let other_peer = Ipv4Addr::new(198, 18, 202, 9);
    gw.table
        .insert(Prefix::new(other_peer.into(), 32).unwrap(), 1)
        .unwrap();
    let mut arena = vec![0u8; 16 * FRAME];
    let link = FakeLink::new(&mut arena, FRAME, true).with_local();
    let mut w = gw.worker(0, link, with_local_addrs());
    let internet = inner(PEER_TUNNEL, NOBODY, 1);
    let to_peer = inner(PEER_TUNNEL, other_peer, 2);
    let to_lan = inner(PEER_TUNNEL, LAN_HOST, 3);
    for (i, p) in [&internet, &to_peer, &to_lan].into_iter().enumerate() {
        let msg = from_peer(p, &KEY_TO_US, i as u64, endpoint());
        assert!(w.link_mut().inject(Side::Wan, &msg));
    }
    w.poll_once(T0);
    let link = w.link_mut();
    assert_eq!(
        link.take_sent(Side::Local),
        [internet, to_peer],
        "to wg0 as sent, TTL untouched (the kernel forwards)"
    );
    let lan = link.take_sent(Side::Lan);
    assert_eq!(lan.iter().map(|f| lan_tag(f)).collect::<Vec<_>>(), [3]);
    assert!(link.sent.is_empty() && link.to_kernel.is_empty());
    assert_eq!((link.outstanding(), link.duplicates()), (0, 0));
}

/// An inside host whose next hop the resolver has not learnt yet: its first packet goes
/// through wg0 (the kernel forwards it and resolves the neighbour) and the resolver is asked
/// for it, so that the next ones are served directly; a destination it knows to be routed
/// elsewhere is not asked for again. (Before this, every packet to such a host took wg0 for
/// good: the gateway benchmark's LAN sink was reached at the kernel's speed.)
#[test]
fn an_unresolved_inside_host_is_asked_for_while_wg0_carries_it() {
    let gw = Gateway::new("local-ask", true);
    let mut arena = vec![0u8; 16 * FRAME];
    let link = FakeLink::new(&mut arena, FRAME, true).with_local();
    let mut snapshot = with_local_addrs();
    snapshot.next_hop.remove(&IpAddr::from(LAN_HOST));
    // NOBODY is known to be routed out of the WAN port.
    snapshot.next_hop.insert(
        NOBODY.into(),
        crate::neigh::Hop {
            via: (*endpoint_ip()).into(),
            oif: WAN_INDEX,
        },
    );
    let (neighbours, asked) = Neighbours::recording(snapshot);
    let mut w = gw.worker_on(0, link, neighbours);
    for (i, dst) in [LAN_HOST, NOBODY].into_iter().enumerate() {
        let msg = from_peer(
            &inner(PEER_TUNNEL, dst, 1),
            &KEY_TO_US,
            i as u64,
            endpoint(),
        );
        assert!(w.link_mut().inject(Side::Wan, &msg));
    }
    w.poll_once(T0);
    assert_eq!(
        w.link_mut().take_sent(Side::Local).len(),
        2,
        "both through wg0"
    );
    assert_eq!(
        asked.try_iter().collect::<Vec<_>>(),
        [IpAddr::from(LAN_HOST)],
        "the inside host asked for, the routed-elsewhere one not"
    );
}
