//! A real AF_XDP socket behind the WAN steering program on a veth, in copy mode: a WireGuard
//! data message sent from a peer namespace arrives in the socket's RX ring (and nothing else
//! does), and a frame the worker transmits arrives at the peer's UDP socket with a correct
//! checksum. Needs root and network namespaces.

use dataplane::xdp::{AttachMode, Role, Steering};
use dataplane::xsk::{BindMode, Port, Umem, UmemSpec};
use ebpf::abi::Verdict;
use proto::wire::{EthernetFrame, Ipv4Packet, UdpPacket};
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

const PORT: u16 = 51820;

#[test]
fn data_message_reaches_the_socket_and_a_reply_reaches_the_peer() {
    if !testbed::require_netns() {
        return;
    }
    let gw = testbed::Netns::new("xskgw").unwrap();
    let peer = testbed::Netns::new("xskpeer").unwrap();
    let wan = testbed::VethPair::wan(&gw, &peer).unwrap();
    let ifname = wan.a.ifname.clone();
    let gw_addr = SocketAddr::new(wan.a.v4().into(), PORT);

    let sock = peer
        .run_in(|| UdpSocket::bind(SocketAddr::new(wan.b.v4().into(), 40000)))
        .unwrap();
    let mut steering = Steering::load(PORT).unwrap();
    // Data is steered only when addressed to this host.
    steering.add_local_addr(gw_addr.ip()).unwrap();
    // The UMEM and rings are not Send: like a worker, this thread creates and uses them inside
    // the gateway's namespace.
    gw.run_in(|| worker_side(&mut steering, &ifname, &sock, gw_addr));
}

fn worker_side(steering: &mut Steering, ifname: &str, sock: &UdpSocket, gw_addr: SocketAddr) {
    assert_eq!(
        steering.attach(Role::Wan, ifname).unwrap(),
        AttachMode::Native
    );
    let spec = UmemSpec {
        frames: 256,
        frame_size: 2048,
        ring_size: 128,
    };
    let umem = Umem::new(spec).unwrap();
    let mut port = Port::bind(&umem, ifname, 0, BindMode::Copy, spec.ring_size).unwrap();
    let mut pool = umem.pool().unwrap();
    assert!(umem.pool().is_none(), "one pool per UMEM");
    steering.set_socket(Role::Wan, 0, port.fd()).unwrap();
    assert_eq!(port.fill(&mut pool, 64), 64);

    // The peer sends a handshake-looking packet (must not arrive) and a data message.
    let mut handshake = vec![1u8, 0, 0, 0];
    handshake.resize(148, 7);
    sock.send_to(&handshake, gw_addr).unwrap();
    let mut data = vec![4u8, 0, 0, 0];
    data.extend((0..60).map(|i| i as u8));
    sock.send_to(&data, gw_addr).unwrap();

    let mut received = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(3);
    while received.is_empty() && Instant::now() < deadline {
        port.recv(&mut received, 8);
        if received.is_empty() {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    std::thread::sleep(Duration::from_millis(50));
    port.recv(&mut received, 8);
    assert_eq!(received.len(), 1, "exactly the data message was steered");
    let mut f = received.pop().unwrap();
    let frame = f.packet().to_vec();
    let eth = EthernetFrame::new_checked(&frame[..]).unwrap();
    let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
    let udp = UdpPacket::new_checked(ip.payload()).unwrap();
    assert_eq!(udp.dst_port(), PORT);
    assert_eq!(udp.payload(), &data[..]);
    let stats = steering.stats().unwrap();
    assert_eq!(stats[Verdict::WanRedirect as usize], 1);
    assert!(stats[Verdict::WanPassHandshake as usize] >= 1);

    // Turn the frame around in place: swap addresses and ports, new payload, fresh checksums.
    let reply = b"reply from the worker";
    let new_len = 14 + 20 + 8 + reply.len();
    let start = f.offset();
    assert!(f.set_packet(start, new_len));
    let buf = &mut f.chunk_mut()[start..start + new_len];
    {
        let mut eth = EthernetFrame::new_unchecked(&mut buf[..]);
        let (src, dst) = (eth.src_addr(), eth.dst_addr());
        eth.set_src_addr(dst);
        eth.set_dst_addr(src);
        let mut ip = Ipv4Packet::new_unchecked(eth.payload_mut());
        let (s, t) = (ip.src_addr(), ip.dst_addr());
        ip.set_src_addr(t);
        ip.set_dst_addr(s);
        ip.set_total_len(u16::try_from(20 + 8 + reply.len()).unwrap());
        ip.fill_checksum();
        let mut udp = UdpPacket::new_unchecked(ip.payload_mut());
        let (sp, dp) = (udp.src_port(), udp.dst_port());
        udp.set_src_port(dp);
        udp.set_dst_port(sp);
        udp.set_length(u16::try_from(8 + reply.len()).unwrap());
        udp.payload_mut()[..reply.len()].copy_from_slice(reply);
        udp.fill_checksum(t, s);
    }
    let free_before = pool.free_count();
    let mut out = vec![f];
    assert_eq!(port.send(&mut out), 1);
    assert!(out.is_empty(), "the kernel holds the frame now");
    port.kick();
    sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut rbuf = [0u8; 256];
    let (n, from) = sock
        .recv_from(&mut rbuf)
        .expect("the peer's UDP socket received the reply");
    assert_eq!(
        &rbuf[..n],
        reply,
        "kernel accepted our UDP checksum and delivered it"
    );
    assert_eq!(from, gw_addr);
    // The frame comes back through the completion ring.
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut completed = 0;
    while completed == 0 && Instant::now() < deadline {
        completed = port.complete(&mut pool, 16);
    }
    assert_eq!(completed, 1);
    assert_eq!(pool.free_count(), free_before + 1);
    assert_eq!(
        umem.foreign(),
        0,
        "the rings named only chunks the kernel held"
    );
}

/// The bind mode is chosen, not assumed: veth has no AF_XDP zero-copy, so the probe is refused
/// and says why, and copy mode (which works) is taken; the copy bind then succeeds.
#[test]
fn zero_copy_is_tried_first_and_copy_taken_where_the_driver_refuses_it() {
    if !testbed::require_netns() {
        return;
    }
    let gw = testbed::Netns::new("xskzc").unwrap();
    let peer = testbed::Netns::new("xskzcp").unwrap();
    let wan = testbed::VethPair::wan(&gw, &peer).unwrap();
    let ifname = wan.a.ifname.clone();
    gw.run_in(|| {
        let spec = UmemSpec::default();
        let (mode, why) = dataplane::xsk::choose_mode(&[&ifname], spec);
        assert_eq!(mode, BindMode::Copy);
        let why = why.expect("a reason for copy mode");
        assert!(why.starts_with(&format!("{ifname}: ")), "{why}");
        let umem = Umem::new(spec).unwrap();
        Port::bind(&umem, &ifname, 0, mode, spec.ring_size).expect("copy mode binds on veth");
        // A missing interface is no reason to try zero-copy either.
        assert_eq!(
            dataplane::xsk::choose_mode(&["nosuchif0"], spec).0,
            BindMode::Copy
        );
    });
}
