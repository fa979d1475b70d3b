//! The XDP steering programs, judged packet by packet with BPF_PROG_TEST_RUN: each fixture is
//! a frame in and the expected action and verdict counter out. Needs root (CAP_BPF); skipped
//! with a message elsewhere, a failure in CI.

use dataplane::xdp::{Role, Steering, XDP_DROP, XDP_PASS};
use ebpf::abi::Verdict;
use proto::allowedips::Prefix;
use proto::wire::{EtherType, EthernetFrame, IpProtocol, Ipv4Packet, Ipv6Packet, UdpPacket};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

const PORT: u16 = 51820;

fn privileged() -> bool {
    if testbed::Privilege::check().is_root() {
        return true;
    }
    testbed::skip_or_fail("loading BPF programs needs root (CAP_BPF)");
    false
}

fn eth(ethertype: EtherType, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 14 + payload.len()];
    let mut e = EthernetFrame::new_unchecked(&mut f[..]);
    e.set_dst_addr([2, 0, 0, 0, 0, 1]);
    e.set_src_addr([2, 0, 0, 0, 0, 2]);
    e.set_ethertype(ethertype);
    e.payload_mut().copy_from_slice(payload);
    f
}

fn ipv4(proto: IpProtocol, dst: Ipv4Addr, frag: Option<(bool, u16)>, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0u8; 20 + payload.len()];
    let total = u16::try_from(p.len()).unwrap();
    let mut ip = Ipv4Packet::new_unchecked(&mut p[..]);
    ip.set_version(4);
    ip.set_header_len(20);
    ip.set_total_len(total);
    ip.set_ttl(64);
    ip.set_protocol(proto);
    ip.set_src_addr(Ipv4Addr::new(198, 18, 0, 2));
    ip.set_dst_addr(dst);
    if let Some((more, offset)) = frag {
        ip.set_more_frags(more);
        ip.set_frag_offset(offset);
    }
    ip.fill_checksum();
    ip.payload_mut().copy_from_slice(payload);
    eth(EtherType::IPV4, &p)
}

fn ipv6(next: IpProtocol, dst: Ipv6Addr, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0u8; 40 + payload.len()];
    let plen = u16::try_from(payload.len()).unwrap();
    let mut ip = Ipv6Packet::new_unchecked(&mut p[..]);
    ip.set_version(6);
    ip.set_payload_len(plen);
    ip.set_next_header(next);
    ip.set_hop_limit(64);
    ip.set_src_addr("2001:2::2".parse().unwrap());
    ip.set_dst_addr(dst);
    ip.payload_mut().copy_from_slice(payload);
    eth(EtherType::IPV6, &p)
}

fn udp(dst_port: u16, payload: &[u8]) -> Vec<u8> {
    let mut u = vec![0u8; 8 + payload.len()];
    let len = u16::try_from(u.len()).unwrap();
    let mut v = UdpPacket::new_unchecked(&mut u[..]);
    v.set_src_port(40000);
    v.set_dst_port(dst_port);
    v.set_length(len);
    v.payload_mut().copy_from_slice(payload);
    u
}

/// A WireGuard message: header word (type + reserved) and `len` bytes in all.
fn wg(kind: u8, len: usize) -> Vec<u8> {
    let mut m = vec![0xabu8; len];
    m[..4].copy_from_slice(&[kind, 0, 0, 0]);
    m
}

const WAN_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
fn wan_v6() -> Ipv6Addr {
    "2001:2::1".parse().unwrap()
}

/// Runs `frame` through `role`'s program and checks the action and that exactly `verdict`'s
/// counter moved, by one.
fn expect(s: &mut Steering, role: Role, frame: &[u8], action: u32, verdict: Verdict, what: &str) {
    let before = s.stats().unwrap();
    let got = s.test_run(role, frame).unwrap();
    let after = s.stats().unwrap();
    assert_eq!(got, action, "{what}: action");
    let moved: Vec<Verdict> = Verdict::ALL
        .iter()
        .copied()
        .filter(|v| after[*v as usize] != before[*v as usize])
        .collect();
    assert_eq!(moved, vec![verdict], "{what}: verdict");
    assert_eq!(
        after[verdict as usize] - before[verdict as usize],
        1,
        "{what}: count"
    );
}

#[test]
fn wan_fixtures() {
    if !privileged() {
        return;
    }
    let mut s = Steering::load(PORT).unwrap();
    s.add_local_addr(WAN_V4.into()).unwrap();
    s.add_local_addr(wan_v6().into()).unwrap();
    let w = Role::Wan;
    let data = wg(4, 32 + 64);
    // WireGuard to our port but for another host, routed through this one: not taken.
    expect(
        &mut s,
        w,
        &ipv4(
            IpProtocol::UDP,
            Ipv4Addr::new(198, 18, 9, 9),
            None,
            &udp(PORT, &data),
        ),
        XDP_PASS,
        Verdict::WanPassTransit,
        "transit v4 data",
    );
    expect(
        &mut s,
        w,
        &ipv6(
            IpProtocol::UDP,
            "2001:2:9::9".parse().unwrap(),
            &udp(PORT, &data),
        ),
        XDP_PASS,
        Verdict::WanPassTransit,
        "transit v6 data",
    );
    // With no AF_XDP socket on the queue, a steered packet falls back to the kernel.
    expect(
        &mut s,
        w,
        &ipv4(IpProtocol::UDP, WAN_V4, None, &udp(PORT, &data)),
        XDP_PASS,
        Verdict::WanNoSocket,
        "v4 data",
    );
    expect(
        &mut s,
        w,
        &ipv6(IpProtocol::UDP, wan_v6(), &udp(PORT, &data)),
        XDP_PASS,
        Verdict::WanNoSocket,
        "v6 data",
    );
    expect(
        &mut s,
        w,
        &ipv4(IpProtocol::UDP, WAN_V4, None, &udp(PORT, &wg(4, 32))),
        XDP_PASS,
        Verdict::WanNoSocket,
        "keepalive",
    );
    for (kind, len) in [(1u8, 148usize), (2, 92), (3, 64)] {
        expect(
            &mut s,
            w,
            &ipv4(IpProtocol::UDP, WAN_V4, None, &udp(PORT, &wg(kind, len))),
            XDP_PASS,
            Verdict::WanPassHandshake,
            "handshake",
        );
    }
    expect(
        &mut s,
        w,
        &ipv6(IpProtocol::UDP, wan_v6(), &udp(PORT, &wg(1, 148))),
        XDP_PASS,
        Verdict::WanPassHandshake,
        "v6 handshake",
    );
    expect(
        &mut s,
        w,
        &ipv4(IpProtocol::UDP, WAN_V4, None, &udp(PORT, &wg(4, 31))),
        XDP_PASS,
        Verdict::WanPassShortData,
        "short data",
    );
    let mut reserved = wg(4, 64);
    reserved[2] = 1;
    expect(
        &mut s,
        w,
        &ipv4(IpProtocol::UDP, WAN_V4, None, &udp(PORT, &reserved)),
        XDP_PASS,
        Verdict::WanPassNotWg,
        "reserved set",
    );
    expect(
        &mut s,
        w,
        &ipv4(IpProtocol::UDP, WAN_V4, None, &udp(PORT, &wg(9, 64))),
        XDP_PASS,
        Verdict::WanPassNotWg,
        "type 9",
    );
    expect(
        &mut s,
        w,
        &ipv4(IpProtocol::UDP, WAN_V4, None, &udp(PORT, &[4, 0])),
        XDP_PASS,
        Verdict::WanPassNotWg,
        "2 bytes",
    );
    expect(
        &mut s,
        w,
        &ipv4(IpProtocol::UDP, WAN_V4, None, &udp(PORT + 1, &data)),
        XDP_PASS,
        Verdict::WanPassOtherPort,
        "other port",
    );
    expect(
        &mut s,
        w,
        &ipv4(IpProtocol::TCP, WAN_V4, None, &udp(PORT, &data)),
        XDP_PASS,
        Verdict::WanPassNotUdp,
        "tcp",
    );
    expect(
        &mut s,
        w,
        &ipv6(IpProtocol::IPV6_OPTS, wan_v6(), &udp(PORT, &data)),
        XDP_PASS,
        Verdict::WanPassNotUdp,
        "v6 ext header",
    );
    expect(
        &mut s,
        w,
        &ipv4(IpProtocol::UDP, WAN_V4, Some((true, 0)), &udp(PORT, &data)),
        XDP_PASS,
        Verdict::WanPassFragment,
        "first fragment",
    );
    expect(
        &mut s,
        w,
        &ipv4(
            IpProtocol::UDP,
            WAN_V4,
            Some((false, 1480)),
            &udp(PORT, &data),
        ),
        XDP_PASS,
        Verdict::WanPassFragment,
        "last fragment",
    );
    expect(
        &mut s,
        w,
        &ipv6(IpProtocol::IPV6_FRAG, wan_v6(), &udp(PORT, &data)),
        XDP_PASS,
        Verdict::WanPassFragment,
        "v6 fragment",
    );
    expect(
        &mut s,
        w,
        &eth(EtherType::ARP, &[0u8; 28]),
        XDP_PASS,
        Verdict::WanPassNotIp,
        "arp",
    );
    let full = ipv4(IpProtocol::UDP, WAN_V4, None, &udp(PORT, &data));
    expect(
        &mut s,
        w,
        &full[..14 + 10],
        XDP_PASS,
        Verdict::WanPassMalformed,
        "truncated ip",
    );
    expect(
        &mut s,
        w,
        &full[..14 + 20 + 4],
        XDP_PASS,
        Verdict::WanPassMalformed,
        "truncated udp",
    );
    let mut bad_ihl = full.clone();
    bad_ihl[14] = 0x44;
    expect(
        &mut s,
        w,
        &bad_ihl,
        XDP_PASS,
        Verdict::WanPassMalformed,
        "ihl 4",
    );
    s.set_listen_port(0).unwrap();
    expect(
        &mut s,
        w,
        &full,
        XDP_PASS,
        Verdict::WanPassUnconfigured,
        "no port",
    );
}

#[test]
fn lan_fixtures() {
    if !privileged() {
        return;
    }
    let mut s = Steering::load(PORT).unwrap();
    let prefix = |s: &str| {
        let (a, l) = s.split_once('/').unwrap();
        Prefix::new(a.parse().unwrap(), l.parse().unwrap()).unwrap()
    };
    s.insert_peer_prefix(prefix("10.20.0.0/16"), 1).unwrap();
    s.insert_peer_prefix(prefix("2001:2:0:10::/64"), 1).unwrap();
    s.add_local_addr(IpAddr::V4(Ipv4Addr::new(10, 20, 0, 1)))
        .unwrap();
    s.add_local_addr("2001:2:0:10::1".parse().unwrap()).unwrap();
    let l = Role::Lan;
    let body = udp(5201, b"iperf");
    // With no AF_XDP socket on the queue (start-up, shutdown, a dead worker), plaintext for a
    // peer is dropped: passed, the kernel would route it unencrypted.
    expect(
        &mut s,
        l,
        &ipv4(IpProtocol::UDP, Ipv4Addr::new(10, 20, 3, 4), None, &body),
        XDP_DROP,
        Verdict::LanNoSocket,
        "peer v4",
    );
    expect(
        &mut s,
        l,
        &ipv6(IpProtocol::UDP, "2001:2:0:10::99".parse().unwrap(), &body),
        XDP_DROP,
        Verdict::LanNoSocket,
        "peer v6",
    );
    expect(
        &mut s,
        l,
        &ipv4(IpProtocol::UDP, Ipv4Addr::new(10, 20, 0, 1), None, &body),
        XDP_PASS,
        Verdict::LanPassLocal,
        "local v4",
    );
    expect(
        &mut s,
        l,
        &ipv6(IpProtocol::UDP, "2001:2:0:10::1".parse().unwrap(), &body),
        XDP_PASS,
        Verdict::LanPassLocal,
        "local v6",
    );
    expect(
        &mut s,
        l,
        &ipv4(IpProtocol::UDP, Ipv4Addr::new(10, 21, 0, 1), None, &body),
        XDP_PASS,
        Verdict::LanPassNoPeer,
        "no peer",
    );
    expect(
        &mut s,
        l,
        &ipv4(IpProtocol::UDP, Ipv4Addr::new(224, 0, 0, 251), None, &body),
        XDP_PASS,
        Verdict::LanPassMulticast,
        "mdns",
    );
    expect(
        &mut s,
        l,
        &ipv4(IpProtocol::UDP, Ipv4Addr::BROADCAST, None, &body),
        XDP_PASS,
        Verdict::LanPassMulticast,
        "broadcast",
    );
    expect(
        &mut s,
        l,
        &ipv6(
            IpProtocol::ICMPV6,
            "ff02::1:ff00:99".parse().unwrap(),
            &[135, 0, 0, 0],
        ),
        XDP_PASS,
        Verdict::LanPassMulticast,
        "ns to solicited-node",
    );
    expect(
        &mut s,
        l,
        &ipv6(
            IpProtocol::ICMPV6,
            "2001:2:0:10::99".parse().unwrap(),
            &[135, 0, 0, 0],
        ),
        XDP_PASS,
        Verdict::LanPassNd,
        "unicast ns",
    );
    expect(
        &mut s,
        l,
        &ipv6(
            IpProtocol::ICMPV6,
            "2001:2:0:10::99".parse().unwrap(),
            &[128, 0, 0, 0],
        ),
        XDP_DROP,
        Verdict::LanNoSocket,
        "ping to peer",
    );
    expect(
        &mut s,
        l,
        &ipv6(IpProtocol::UDP, "fe80::1".parse().unwrap(), &body),
        XDP_PASS,
        Verdict::LanPassMulticast,
        "link-local",
    );
    expect(
        &mut s,
        l,
        &eth(EtherType::ARP, &[0u8; 28]),
        XDP_PASS,
        Verdict::LanPassNotIp,
        "arp",
    );
    let full = ipv4(IpProtocol::UDP, Ipv4Addr::new(10, 20, 3, 4), None, &body);
    expect(
        &mut s,
        l,
        &full[..20],
        XDP_PASS,
        Verdict::LanPassMalformed,
        "truncated",
    );
    s.remove_peer_prefix(prefix("10.20.0.0/16")).unwrap();
    expect(
        &mut s,
        l,
        &full,
        XDP_PASS,
        Verdict::LanPassNoPeer,
        "prefix removed",
    );
}

#[test]
fn one_armed_fixtures() {
    if !privileged() {
        return;
    }
    let mut s = Steering::load(PORT).unwrap();
    s.insert_peer_prefix(
        Prefix::new(IpAddr::V4(Ipv4Addr::new(10, 20, 0, 0)), 16).unwrap(),
        1,
    )
    .unwrap();
    s.add_local_addr(WAN_V4.into()).unwrap();
    let o = Role::OneArmed;
    expect(
        &mut s,
        o,
        &ipv4(IpProtocol::UDP, WAN_V4, None, &udp(PORT, &wg(4, 64))),
        XDP_PASS,
        Verdict::WanNoSocket,
        "data",
    );
    expect(
        &mut s,
        o,
        &ipv4(IpProtocol::UDP, WAN_V4, None, &udp(PORT, &wg(1, 148))),
        XDP_PASS,
        Verdict::WanPassHandshake,
        "handshake",
    );
    expect(
        &mut s,
        o,
        &ipv4(
            IpProtocol::UDP,
            Ipv4Addr::new(10, 20, 1, 1),
            None,
            &udp(80, b"x"),
        ),
        XDP_DROP,
        Verdict::LanNoSocket,
        "for a peer",
    );
    expect(
        &mut s,
        o,
        &ipv4(IpProtocol::TCP, Ipv4Addr::new(8, 8, 8, 8), None, b"x"),
        XDP_PASS,
        Verdict::LanPassNoPeer,
        "elsewhere",
    );
}

/// An offloaded flow's return packets (their reply tuple in `flows`) go to the socket (here
/// none is bound: passed and counted as such), on the WAN, the one-armed and the LAN program
/// (a two-armed gateway's internet may be behind its LAN port), IPv4 and IPv6, TCP, UDP and
/// echo replies; what the kernel's connection tracking must see passes as before: SYN, FIN,
/// RST, fragments, extension headers, ICMP errors, echo requests, packets longer than the flow
/// MTU, other tuples, and everything while the MTU is 0.
#[test]
fn flow_return_fixtures() {
    if !privileged() {
        return;
    }
    let mut s = Steering::load(PORT).unwrap();
    s.add_local_addr(WAN_V4.into()).unwrap();
    s.add_local_addr(wan_v6().into()).unwrap();
    let mut flows = s.take_flow_map().unwrap();
    // The fixtures' sources: 198.18.0.2 and 2001:2::2.
    let key = |proto: u8, sport: u16, dport: u16, v6: bool| {
        let (mut saddr, mut daddr) = ([0u8; 16], [0u8; 16]);
        if v6 {
            saddr = "2001:2::2".parse::<Ipv6Addr>().unwrap().octets();
            daddr = wan_v6().octets();
        } else {
            saddr[..4].copy_from_slice(&[198, 18, 0, 2]);
            daddr[..4].copy_from_slice(&WAN_V4.octets());
        }
        ebpf::abi::Flow {
            saddr,
            daddr,
            sport_be: sport.to_be(),
            dport_be: dport.to_be(),
            proto,
            family: if v6 { 6 } else { 4 },
            pad: [0; 2],
        }
    };
    flows.insert(key(17, 40000, 61000, false)).unwrap();
    flows.insert(key(6, 40000, 61001, false)).unwrap();
    flows.insert(key(17, 40000, 61000, true)).unwrap();
    flows.insert(key(6, 40000, 61001, true)).unwrap();
    // Echo replies (type 0 and 129) with identifier 0x4242.
    flows.insert(key(1, 0x4242, 0, false)).unwrap();
    flows.insert(key(58, 0x4242, 129, true)).unwrap();
    let l3 = |proto: IpProtocol, v6: bool, l4: &[u8]| {
        if v6 {
            ipv6(proto, wan_v6(), l4)
        } else {
            ipv4(proto, WAN_V4, None, l4)
        }
    };
    // A TCP segment from port 40000 to `dport` with `flags`, `len` bytes of payload.
    let tcp = |dport: u16, flags: u8, len: usize, v6: bool| {
        let mut t = vec![0u8; 20 + len];
        t[0..2].copy_from_slice(&40000u16.to_be_bytes());
        t[2..4].copy_from_slice(&dport.to_be_bytes());
        t[12] = 5 << 4;
        t[13] = flags;
        l3(IpProtocol::TCP, v6, &t)
    };
    let udp_to =
        |dport: u16, len: usize, v6: bool| l3(IpProtocol::UDP, v6, &udp(dport, &vec![7; len]));
    // An ICMP message of `kind` with identifier `id`.
    let icmp = |kind: u8, id: u16, v6: bool| {
        let mut m = vec![kind, 0, 0, 0, 0, 0, 0, 1];
        m[4..6].copy_from_slice(&id.to_be_bytes());
        let proto = if v6 {
            IpProtocol::ICMPV6
        } else {
            IpProtocol::ICMP
        };
        l3(proto, v6, &m)
    };
    for role in [Role::Wan, Role::OneArmed, Role::Lan] {
        // What each program says of a packet that is not a flow's: the WAN program's verdict,
        // or "local" from the programs that judge it as LAN traffic.
        let or_local = |wan: Verdict| {
            if role == Role::Wan {
                wan
            } else {
                Verdict::LanPassLocal
            }
        };
        let steered = if role == Role::Lan {
            Verdict::LanFlowNoSocket
        } else {
            Verdict::WanFlowNoSocket
        };
        let other = or_local(Verdict::WanPassOtherPort);
        let not_udp = or_local(Verdict::WanPassNotUdp);
        // Offload off (MTU 0): nothing is steered.
        s.set_flow_mtu(0).unwrap();
        expect(
            &mut s,
            role,
            &udp_to(61000, 10, false),
            XDP_PASS,
            other,
            "offload off",
        );
        s.set_flow_mtu(1420).unwrap();
        for v6 in [false, true] {
            let ip = if v6 { 40 } else { 20 };
            let what = |w: &str| format!("{role:?} v6={v6}: {w}");
            let mut check = |frame: &[u8], verdict: Verdict, w: &str| {
                expect(&mut s, role, frame, XDP_PASS, verdict, &what(w));
            };
            check(&udp_to(61000, 10, v6), steered, "udp flow");
            check(&tcp(61001, 0x10, 10, v6), steered, "tcp ack");
            for (flags, w) in [(0x02, "syn"), (0x11, "fin"), (0x04, "rst")] {
                check(&tcp(61001, flags, 10, v6), not_udp, w);
            }
            check(&udp_to(61002, 10, v6), other, "another tuple");
            check(&tcp(61000, 0x10, 10, v6), not_udp, "another protocol");
            // ip + 8 + n = 1420 is steered; one more byte passes.
            check(&udp_to(61000, 1420 - ip - 8, v6), steered, "at the MTU");
            check(&udp_to(61000, 1420 - ip - 7, v6), other, "over the MTU");
            // Echo: the reply is the flow's; a request with the same identifier (the
            // internet pinging the gateway), another identifier, and an error are not.
            let (reply, request, error) = if v6 { (129, 128, 1) } else { (0, 8, 3) };
            check(&icmp(reply, 0x4242, v6), steered, "echo reply");
            check(&icmp(request, 0x4242, v6), not_udp, "echo request");
            check(&icmp(reply, 0x4343, v6), not_udp, "another identifier");
            check(&icmp(error, 0x4242, v6), not_udp, "an error");
        }
        let frag = ipv4(IpProtocol::UDP, WAN_V4, Some((true, 0)), &udp(61000, b"x"));
        let why = or_local(Verdict::WanPassFragment);
        expect(&mut s, role, &frag, XDP_PASS, why, "fragment");
        // An IPv6 extension header (a fragment header) before the flow's UDP.
        let mut ext = vec![17, 0, 0, 0, 0, 0, 0, 1];
        ext.extend(udp(61000, b"x"));
        let ext = ipv6(IpProtocol::IPV6_FRAG, wan_v6(), &ext);
        let why = or_local(Verdict::WanPassFragment);
        expect(&mut s, role, &ext, XDP_PASS, why, "v6 fragment header");
    }
    flows.remove(&key(17, 40000, 61000, false));
    expect(
        &mut s,
        Role::Wan,
        &udp_to(61000, 10, false),
        XDP_PASS,
        Verdict::WanPassOtherPort,
        "removed",
    );
}

/// Where the kernel translates LAN traffic (`set_lan_via_kernel`), plaintext for peers passes
/// to the kernel (which tracks both directions of every LAN flow) unless it is an offloaded
/// flow's: then it goes to the socket (none here: passed and counted as such).
#[test]
fn lan_traffic_for_peers_passes_to_the_kernel_where_it_translates() {
    if !privileged() {
        return;
    }
    let mut s = Steering::load(PORT).unwrap();
    let prefix = |s: &str| {
        let (a, l) = s.split_once('/').unwrap();
        Prefix::new(a.parse().unwrap(), l.parse().unwrap()).unwrap()
    };
    s.insert_peer_prefix(prefix("10.20.0.0/16"), 1).unwrap();
    s.insert_peer_prefix(prefix("2001:2:0:10::/64"), 1).unwrap();
    s.set_flow_mtu(1420).unwrap();
    let mut flows = s.take_flow_map().unwrap();
    let client = Ipv4Addr::new(10, 20, 3, 4);
    let v4 = ipv4(IpProtocol::UDP, client, None, &udp(5201, b"x"));
    let v6 = ipv6(
        IpProtocol::UDP,
        "2001:2:0:10::4".parse().unwrap(),
        &udp(5201, b"x"),
    );
    for role in [Role::Lan, Role::OneArmed] {
        expect(&mut s, role, &v4, XDP_DROP, Verdict::LanNoSocket, "steered");
    }
    s.set_lan_via_kernel().unwrap();
    for role in [Role::Lan, Role::OneArmed] {
        expect(
            &mut s,
            role,
            &v4,
            XDP_PASS,
            Verdict::LanPassViaKernel,
            "v4 to the kernel",
        );
        expect(
            &mut s,
            role,
            &v6,
            XDP_PASS,
            Verdict::LanPassViaKernel,
            "v6 to the kernel",
        );
    }
    // A LAN host's flow to the client, offloaded: steered by its original tuple.
    let mut saddr = [0u8; 16];
    saddr[..4].copy_from_slice(&[198, 18, 0, 2]);
    let mut daddr = [0u8; 16];
    daddr[..4].copy_from_slice(&client.octets());
    flows
        .insert(ebpf::abi::Flow {
            saddr,
            daddr,
            sport_be: 40000u16.to_be(),
            dport_be: 5201u16.to_be(),
            proto: 17,
            family: 4,
            pad: [0; 2],
        })
        .unwrap();
    expect(
        &mut s,
        Role::Lan,
        &v4,
        XDP_PASS,
        Verdict::LanFlowNoSocket,
        "lan flow",
    );
    expect(
        &mut s,
        Role::OneArmed,
        &v4,
        XDP_PASS,
        Verdict::WanFlowNoSocket,
        "one-armed flow",
    );
}

/// Attached natively on veth (which supports XDP), visible to `ip link`, and gone once the
/// `Steering` drops; a missing interface is a clear error that attaches nothing.
#[test]
fn attach_native_on_veth_and_detach_on_drop() {
    if !testbed::require_netns() {
        return;
    }
    let gw = testbed::Netns::new("xdpgw").unwrap();
    let peer = testbed::Netns::new("xdppeer").unwrap();
    let wan = testbed::VethPair::wan(&gw, &peer).unwrap();
    let ifname = wan.a.ifname.clone();
    let shows_xdp = || {
        let out = gw.ip(["-d", "link", "show", "dev", &ifname]).unwrap();
        String::from_utf8_lossy(&out.stdout).contains("prog/xdp")
    };
    let mut s = Steering::load(PORT).unwrap();
    assert!(!shows_xdp());
    let mode = gw.run_in(|| s.attach(Role::Wan, &ifname)).unwrap();
    assert_eq!(mode, dataplane::xdp::AttachMode::Native);
    assert!(shows_xdp(), "ip link shows the program");
    let err = gw.run_in(|| s.attach(Role::Lan, "nosuchif0")).unwrap_err();
    assert!(err.to_string().contains("nosuchif0"), "{err}");
    drop(s);
    assert!(!shows_xdp(), "detached when Steering dropped");
}
