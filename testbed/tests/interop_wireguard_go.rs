//! Interop: our sans-IO protocol core (`proto::device::Device`), driven over an ordinary UDP
//! socket in one network namespace, against wireguard-go (configured with the stock `wg`) in
//! another. Both sides initiate, ICMP echo built here crosses wireguard-go's TUN (the kernel in
//! its namespace answers or asks), IPv4 and IPv6 inner and outer, and the session is rekeyed.
//!
//! Needs root, network namespaces, /dev/net/tun, wireguard-go and wg: skipped with a message
//! on a developer machine that lacks them, a failure in CI (`WGXDP_REQUIRE_PRIVILEGED=1`).

use proto::allowedips::Prefix;
use proto::device::{Device, DropReason, PeerConfig, PeerId, Received};
use proto::keys::{PrivateKey, PublicKey};
use proto::time::{Instant, Now};
use proto::wire::{
    self, Icmpv4Packet, Icmpv4Type, Icmpv6Packet, Icmpv6Type, IpProtocol, Ipv4Packet, Ipv6Packet,
};
use rand_core::OsRng;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use testbed::{plan, IfAddr, Netns, VethPair, WgConfig, WgPeer, WireguardGo};

const PAYLOAD: &[u8] = b"wgxdp interop ping payload";

/// Our side: the protocol core, its socket, and a clock that can be skewed forward to
/// exercise time-based rekeying without waiting two minutes.
struct Ours {
    device: Device<OsRng>,
    socket: UdpSocket,
    peer: PeerId,
    base: std::time::Instant,
    skew: Duration,
    drops: Vec<DropReason>,
    events: Vec<Received>,
}

impl Ours {
    fn now(&self) -> Now {
        let mono = self.base.elapsed() + self.skew;
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            + self.skew;
        Now::new(
            Instant::from_nanos(u64::try_from(mono.as_nanos()).unwrap_or(u64::MAX)),
            unix,
        )
    }

    fn flush(&mut self) {
        let mut buf = [0u8; 2048];
        while let Some(t) = self.device.poll_transmit(self.now(), &mut buf) {
            self.socket.send_to(&buf[..t.len], t.dst).expect("send_to");
        }
    }

    fn send(&mut self, packet: &[u8]) {
        let now = self.now();
        self.device
            .send(now, packet)
            .expect("route to the wireguard-go peer");
        self.flush();
    }

    /// Runs the protocol until `f` returns `Some`, or panics after `timeout` naming what
    /// happened meanwhile. `f` sees every decrypted inner packet (`Some`), and is also asked
    /// after every other event or idle interval (`None`).
    fn pump_until<T>(
        &mut self,
        timeout: Duration,
        mut f: impl FnMut(&mut Self, Option<&[u8]>) -> Option<T>,
    ) -> T {
        let deadline = std::time::Instant::now() + timeout;
        let mut buf = [0u8; 2048];
        self.socket
            .set_read_timeout(Some(Duration::from_millis(20)))
            .expect("timeout");
        while std::time::Instant::now() < deadline {
            let now = self.now();
            if self.device.poll_timeout().is_some_and(|t| t <= now.mono) {
                self.device.handle_timeout(now);
            }
            self.flush();
            let inner = match self.socket.recv_from(&mut buf) {
                Err(_) => None,
                Ok((n, src)) => {
                    match self
                        .device
                        .handle_datagram(self.now(), src, &mut buf[..n], false)
                    {
                        Ok(Received::Data { range, .. }) => Some(buf[range].to_vec()),
                        Ok(other) => {
                            self.events.push(other);
                            None
                        }
                        Err(e) => {
                            self.drops.push(e);
                            None
                        }
                    }
                }
            };
            self.flush();
            if let Some(t) = f(self, inner.as_deref()) {
                return t;
            }
        }
        panic!(
            "timed out; events {:?}, drops {:?}",
            self.events, self.drops
        );
    }

    fn current_index(&self) -> Option<u32> {
        self.device
            .peer(self.peer)?
            .keypairs()
            .current()
            .map(|k| k.local_index())
    }

    fn saw(&self, pred: impl Fn(&Received) -> bool) -> usize {
        self.events.iter().filter(|e| pred(e)).count()
    }
}

/// An ICMP echo (request or reply) between the tunnel addresses, with correct checksums.
fn echo(src: IpAddr, dst: IpAddr, reply: bool, ident: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let mut buf = vec![0u8; 20 + 8 + payload.len()];
            let total = u16::try_from(buf.len()).unwrap();
            let mut ip = Ipv4Packet::new_unchecked(&mut buf[..]);
            ip.set_version(4);
            ip.set_header_len(20);
            ip.set_total_len(total);
            ip.set_ttl(64);
            ip.set_protocol(IpProtocol::ICMP);
            ip.set_src_addr(s);
            ip.set_dst_addr(d);
            ip.fill_checksum();
            let mut icmp = Icmpv4Packet::new_unchecked(ip.payload_mut());
            icmp.set_msg_type(if reply {
                Icmpv4Type::ECHO_REPLY
            } else {
                Icmpv4Type::ECHO_REQUEST
            });
            icmp.set_msg_code(0);
            icmp.set_echo_ident(ident);
            icmp.set_echo_seq_no(seq);
            icmp.payload_mut().copy_from_slice(payload);
            icmp.fill_checksum();
            buf
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let mut buf = vec![0u8; 40 + 8 + payload.len()];
            let plen = u16::try_from(8 + payload.len()).unwrap();
            let mut ip = Ipv6Packet::new_unchecked(&mut buf[..]);
            ip.set_version(6);
            ip.set_payload_len(plen);
            ip.set_next_header(IpProtocol::ICMPV6);
            ip.set_hop_limit(64);
            ip.set_src_addr(s);
            ip.set_dst_addr(d);
            let mut icmp = Icmpv6Packet::new_unchecked(ip.payload_mut());
            icmp.set_msg_type(if reply {
                Icmpv6Type::ECHO_REPLY
            } else {
                Icmpv6Type::ECHO_REQUEST
            });
            icmp.set_msg_code(0);
            icmp.set_echo_ident(ident);
            icmp.set_echo_seq_no(seq);
            icmp.payload_mut().copy_from_slice(payload);
            icmp.fill_checksum(s, d);
            buf
        }
        _ => unreachable!("mixed address families"),
    }
}

/// An echo parsed from an inner packet: (src, dst, is_reply, ident, seq, payload).
fn parse_echo(p: &[u8]) -> Option<(IpAddr, IpAddr, bool, u16, u16, Vec<u8>)> {
    match wire::ip_version(p)? {
        4 => {
            let ip = Ipv4Packet::new_checked(p).ok()?;
            if ip.protocol() != IpProtocol::ICMP || !ip.verify_checksum() {
                return None;
            }
            let icmp = Icmpv4Packet::new_checked(ip.payload()).ok()?;
            assert!(
                icmp.verify_checksum(),
                "ICMP checksum from the peer's kernel"
            );
            let t = icmp.msg_type();
            if t != Icmpv4Type::ECHO_REPLY && t != Icmpv4Type::ECHO_REQUEST {
                return None;
            }
            Some((
                ip.src_addr().into(),
                ip.dst_addr().into(),
                t == Icmpv4Type::ECHO_REPLY,
                icmp.echo_ident(),
                icmp.echo_seq_no(),
                icmp.payload().to_vec(),
            ))
        }
        _ => {
            let ip = Ipv6Packet::new_checked(p).ok()?;
            if ip.next_header() != IpProtocol::ICMPV6 {
                return None;
            }
            let icmp = Icmpv6Packet::new_checked(ip.payload()).ok()?;
            let t = icmp.msg_type();
            if t != Icmpv6Type::ECHO_REPLY && t != Icmpv6Type::ECHO_REQUEST {
                return None; // neighbour discovery and friends do not cross a WireGuard tunnel
            }
            assert!(icmp.verify_checksum(ip.src_addr(), ip.dst_addr()));
            Some((
                ip.src_addr().into(),
                ip.dst_addr().into(),
                t == Icmpv6Type::ECHO_REPLY,
                icmp.echo_ident(),
                icmp.echo_seq_no(),
                icmp.payload().to_vec(),
            ))
        }
    }
}

struct Bed {
    _ours: Netns,
    theirs: Netns,
    _wan: VethPair,
}

/// Two namespaces, a veth between them, wireguard-go in `theirs` and our core in `ours`.
/// `outer_v6` picks the address family of the encrypted UDP; `we_know_endpoint` whether our
/// side is told wireguard-go's endpoint (otherwise it learns it from the initiation).
fn setup(outer_v6: bool, we_know_endpoint: bool) -> Option<(Bed, Ours, WireguardGo)> {
    if !testbed::require_wireguard_go() {
        return None;
    }
    let ours_ns = Netns::new("ours").expect("netns");
    let theirs_ns = Netns::new("wggo").expect("netns");
    let wan = VethPair::wan(&ours_ns, &theirs_ns).expect("veth");
    let (our_ip, their_ip): (IpAddr, IpAddr) = if outer_v6 {
        (wan.a.v6().into(), wan.b.v6().into())
    } else {
        (wan.a.v4().into(), wan.b.v4().into())
    };
    let socket = ours_ns
        .run_in(|| UdpSocket::bind(SocketAddr::new(our_ip, 0)))
        .expect("bind in netns");
    let our_addr = socket.local_addr().unwrap();

    let private = PrivateKey::generate(&mut OsRng);
    let our_public = private.public_key();
    let their = WireguardGo::start(
        &theirs_ns,
        WgConfig {
            addrs: vec![plan::TUNNEL_B_V4, plan::TUNNEL_B_V6],
            peers: vec![WgPeer {
                allowed_ips: vec![plan::TUNNEL_A_V4.host(), plan::TUNNEL_A_V6.host()],
                endpoint: Some(our_addr),
                ..WgPeer::new(our_public.to_base64())
            }],
            ..WgConfig::default()
        },
    )
    .expect("wireguard-go");
    let their_endpoint = SocketAddr::new(their_ip, their.listen_port());
    let their_public = PublicKey::from_base64(their.public_key()).expect("wg's public key");

    let mut device = Device::new(private, OsRng);
    let base = std::time::Instant::now();
    let now = Now::new(
        Instant::from_nanos(0),
        SystemTime::now().duration_since(UNIX_EPOCH).unwrap(),
    );
    let host = |a: IfAddr| Prefix::new(a.ip, if a.is_ipv6() { 128 } else { 32 }).unwrap();
    let peer = device
        .add_peer(
            now,
            their_public,
            PeerConfig {
                endpoint: we_know_endpoint.then_some(their_endpoint),
                allowed_ips: vec![host(plan::TUNNEL_B_V4), host(plan::TUNNEL_B_V6)],
                ..PeerConfig::default()
            },
        )
        .expect("add peer");
    let ours = Ours {
        device,
        socket,
        peer,
        base,
        skew: Duration::ZERO,
        drops: vec![],
        events: vec![],
    };
    Some((
        Bed {
            _ours: ours_ns,
            theirs: theirs_ns,
            _wan: wan,
        },
        ours,
        their,
    ))
}

/// Sends an echo request through the tunnel and waits for the matching reply from the
/// kernel behind wireguard-go.
fn ping_through(ours: &mut Ours, v6_inner: bool, seq: u16) {
    let (src, dst) = if v6_inner {
        (plan::TUNNEL_A_V6.ip, plan::TUNNEL_B_V6.ip)
    } else {
        (plan::TUNNEL_A_V4.ip, plan::TUNNEL_B_V4.ip)
    };
    let ident = 0x7778;
    ours.send(&echo(src, dst, false, ident, seq, PAYLOAD));
    ours.pump_until(Duration::from_secs(10), |_, inner| {
        let (s, d, reply, id, sq, payload) = parse_echo(inner?)?;
        (reply && s == dst && d == src && id == ident && sq == seq && payload == PAYLOAD)
            .then_some(())
    });
}

#[test]
fn we_initiate_over_ipv4_then_ping_ipv4_and_ipv6_inner() {
    let Some((_bed, mut ours, their)) = setup(false, true) else {
        return;
    };
    ping_through(&mut ours, false, 1);
    assert_eq!(
        ours.saw(|e| matches!(e, Received::Response { .. })),
        1,
        "one handshake, ours"
    );
    ping_through(&mut ours, true, 2);
    let status = their
        .wait_for_handshake(
            &ours.device.public_key().to_base64(),
            Duration::from_secs(5),
        )
        .unwrap();
    assert!(status.latest_handshake.is_some());
    assert_eq!(status.endpoint, Some(ours.socket.local_addr().unwrap()));
    assert!(status.rx_bytes > 0 && status.tx_bytes > 0);
    assert!(ours.drops.is_empty(), "{:?}", ours.drops);
}

#[test]
fn wireguard_go_initiates_over_ipv6_and_we_answer_its_pings() {
    let Some((bed, mut ours, their)) = setup(true, false) else {
        return;
    };
    // wireguard-go has traffic for us (a ping from its kernel) and initiates; we answer every
    // echo request that arrives through the tunnel.
    let answer = |ours: &mut Ours, inner: Option<&[u8]>| -> Option<()> {
        let (s, d, reply, id, sq, payload) = parse_echo(inner?)?;
        if !reply {
            ours.send(&echo(d, s, true, id, sq, &payload));
        }
        None
    };
    let round = |ours: &mut Ours, dst: IpAddr| {
        std::thread::scope(|scope| {
            let pinger = scope.spawn(|| bed.theirs.ping(dst, 3, Duration::from_secs(15)));
            ours.pump_until(Duration::from_secs(20), |o, inner| {
                answer(o, inner);
                pinger.is_finished().then_some(())
            });
            let out = pinger.join().expect("ping thread");
            assert!(out.is_ok(), "ping through the tunnel failed: {out:?}");
        });
    };
    round(&mut ours, plan::TUNNEL_A_V4.ip);
    assert_eq!(
        ours.saw(|e| matches!(e, Received::Initiation { .. })),
        1,
        "wireguard-go initiated"
    );
    let learned = ours.device.peer(ours.peer).unwrap().endpoint().unwrap();
    assert!(
        learned.is_ipv6(),
        "endpoint learned from the IPv6 initiation: {learned}"
    );
    round(&mut ours, plan::TUNNEL_A_V6.ip);

    // Make wireguard-go forget the session: its next packet starts a new handshake, which we,
    // the responder with a live session, must accept and rotate to.
    let first = ours.current_index();
    let pk = ours.device.public_key().to_base64();
    their.remove_peer(&pk).unwrap();
    their
        .set_peer(&WgPeer {
            allowed_ips: vec![plan::TUNNEL_A_V4.host(), plan::TUNNEL_A_V6.host()],
            endpoint: Some(ours.socket.local_addr().unwrap()),
            ..WgPeer::new(pk)
        })
        .unwrap();
    round(&mut ours, plan::TUNNEL_A_V4.ip);
    assert_eq!(ours.saw(|e| matches!(e, Received::Initiation { .. })), 2);
    assert_ne!(
        ours.current_index(),
        first,
        "responder moved to the new keypair"
    );
    drop(bed);
}

#[test]
fn rekey_after_time_with_wireguard_go() {
    let Some((_bed, mut ours, their)) = setup(false, true) else {
        return;
    };
    ping_through(&mut ours, false, 1);
    let first = ours.current_index();
    let pk = ours.device.public_key().to_base64();
    let before = their
        .wg_show_dump()
        .unwrap()
        .peer(&pk)
        .unwrap()
        .latest_handshake;
    // wg shows handshake times in whole seconds; make the next one land in another second.
    std::thread::sleep(Duration::from_millis(1100));
    // Our clock jumps past REKEY_AFTER_TIME: the next packet we send rekeys (we initiated the
    // current keypair). The TAI64N timestamp moves forward with it, as wireguard-go requires.
    ours.skew = proto::constants::REKEY_AFTER_TIME + Duration::from_secs(1);
    ping_through(&mut ours, false, 2);
    ours.pump_until(Duration::from_secs(10), |o, _| {
        (o.saw(|e| matches!(e, Received::Response { .. })) >= 2).then_some(())
    });
    ping_through(&mut ours, true, 3);
    assert_ne!(
        ours.current_index(),
        first,
        "data now flows on the new keypair"
    );
    let after = their
        .wg_show_dump()
        .unwrap()
        .peer(&pk)
        .unwrap()
        .latest_handshake;
    assert!(
        after > before,
        "wireguard-go saw a new handshake: {before:?} -> {after:?}"
    );
    assert!(ours.drops.is_empty(), "{:?}", ours.drops);
}
