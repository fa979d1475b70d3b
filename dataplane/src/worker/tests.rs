//! The worker's batch core on the in-memory link, with a fake clock: staging, roaming, the
//! shared replay window across two workers, the kernel path failing, and a session retired
//! while a worker is about to seal. Each test also checks that every frame was consumed once
//! (none lost, none released twice).

use super::*;
use crate::link::fake::FakeLink;
use crate::neigh::Snapshot;
use crate::packet::{self, Route};
use allowedips::AllowedIps;
use contract::layout::{Layout, PeerRecord, SessionRecord, NO_SLOT};
use proto::allowedips::Prefix;
use proto::wire::{IpProtocol, Ipv4Packet, UdpPacket};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

const GW_WAN: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);
const GW_LAN: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 1);
const PEER_TUNNEL: Ipv4Addr = Ipv4Addr::new(198, 18, 200, 2);
const LAN_HOST: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 10);
const WAN_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const LAN_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
const PEER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 3];
const HOST_MAC: [u8; 6] = [2, 0, 0, 0, 0, 4];
const PORT: u16 = 51820;
const WAN_INDEX: u32 = 7;
const LAN_INDEX: u32 = 8;
/// Our receiver index for the peer's session, and the peer's.
const LOCAL: u32 = 0x1111_0001;
const REMOTE: u32 = 0x2222_0001;
const KEY_TO_US: [u8; 32] = [0x11; 32];
const KEY_TO_PEER: [u8; 32] = [0x22; 32];
const T0: u64 = 1_000_000_000_000;
const FRAME: usize = 2048;

fn endpoint() -> SocketAddr {
    SocketAddr::new(Ipv4Addr::new(198, 18, 1, 2).into(), 40000)
}

/// A region with one peer (slot 0) owning 198.18.200.0/24 and, unless `session` is false, a
/// sendable session in slot 0; and the allowed-IPs table.
struct Gateway {
    region: Arc<Region>,
    table: AllowedIps,
}

impl Gateway {
    fn new(name: &str, session: bool) -> Self {
        let path =
            std::env::temp_dir().join(format!("wgxdp-worker-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let region = Region::create(
            &path,
            Layout {
                sessions: 8,
                peers: 4,
                prefixes: 8,
                workers: 2,
            },
        )
        .unwrap();
        region.remove().unwrap();
        region
            .header()
            .listen_port
            .store(u64::from(PORT), Ordering::Relaxed);
        let region = Arc::new(region);
        let gw = Self {
            // The table in the region, as control writes it.
            table: AllowedIps::attach(region.clone(), []).unwrap(),
            region,
        };
        gw.set_peer(endpoint(), if session { 0 } else { NO_SLOT });
        if session {
            gw.install(0, LOCAL, KEY_TO_PEER, KEY_TO_US);
        }
        let mut gw = gw;
        gw.table
            .insert(Prefix::new(PEER_TUNNEL.into(), 24).unwrap(), 0)
            .unwrap();
        gw
    }

    fn set_peer(&self, endpoint: SocketAddr, current_session: u32) {
        let rec = PeerRecord {
            valid: true,
            endpoint: Some(endpoint),
            current_session,
            key_tag: 1,
        };
        self.region.peers()[0].record.write(&rec.encode());
    }

    /// What control's install does: counters and window reset, then the record, then the
    /// index.
    fn install(&self, slot: u32, local: u32, send: [u8; 32], recv: [u8; 32]) {
        install(&self.region, slot, local, send, recv);
    }

    fn worker<'a>(
        &self,
        id: usize,
        link: FakeLink<'a>,
        snapshot: Snapshot,
    ) -> Worker<'a, FakeLink<'a>> {
        self.worker_on(id, link, Neighbours::fixed(snapshot))
    }

    /// [`Gateway::worker`] with the neighbour handle given (one that records requests).
    fn worker_on<'a>(
        &self,
        id: usize,
        link: FakeLink<'a>,
        neighbours: Neighbours,
    ) -> Worker<'a, FakeLink<'a>> {
        Worker::new(
            WorkerConfig {
                id,
                wan: Iface {
                    name: "wan".into(),
                    index: WAN_INDEX,
                    mac: WAN_MAC,
                    v4: Some(GW_WAN),
                    v6: None,
                    mtu: 1500,
                },
                lan: Some(Iface {
                    name: "lan".into(),
                    index: LAN_INDEX,
                    mac: LAN_MAC,
                    v4: Some(GW_LAN),
                    v6: None,
                    mtu: 1500,
                }),
                listen_port: PORT,
                mtu: 1420,
            },
            self.region.clone(),
            link,
            neighbours,
            self.table.reader().unwrap(),
        )
    }

    fn drops(&self, worker: usize, reason: DropReason) -> u64 {
        self.region.worker_stats(worker).unwrap().drops[reason as usize].load(Ordering::Relaxed)
    }

    fn events(&self, worker: usize) -> Vec<WorkerEvent> {
        std::iter::from_fn(|| self.region.pop_event(worker)).collect()
    }
}

fn install(region: &Region, slot: u32, local: u32, send: [u8; 32], recv: [u8; 32]) {
    let s = &region.sessions()[slot as usize];
    s.replay.reset();
    s.send_counter.store(0, Ordering::Relaxed);
    let rec = SessionRecord {
        local_index: local,
        remote_index: REMOTE,
        peer: 0,
        flags: SessionRecord::VALID | SessionRecord::INITIATOR | SessionRecord::SENDABLE,
        birth_ns: T0,
        send_key: send,
        recv_key: recv,
    };
    s.record.write(&rec.encode());
    assert!(region.index_insert(local, slot));
}

/// What control's retire does: the record invalid and wiped, the index forgotten.
fn retire(region: &Region, slot: u32, local: u32) {
    region.index_remove(local);
    region.sessions()[slot as usize].record.write(&[0; 12]);
}

/// Every next hop known: the LAN host and the peer's endpoint.
fn neighbours() -> Snapshot {
    let mut s = Snapshot::default();
    for (ip, mac, oif) in [
        (LAN_HOST, HOST_MAC, LAN_INDEX),
        (*endpoint_ip(), PEER_MAC, WAN_INDEX),
    ] {
        s.next_hop.insert(
            ip.into(),
            crate::neigh::Hop {
                via: ip.into(),
                oif,
            },
        );
        s.mac.insert((oif, ip.into()), mac);
    }
    s
}

fn endpoint_ip() -> &'static Ipv4Addr {
    static IP: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 2);
    &IP
}

/// An IPv4/UDP packet from `src` to `dst` carrying `tag` in an 8-byte payload.
fn inner(src: Ipv4Addr, dst: Ipv4Addr, tag: u64) -> Vec<u8> {
    let mut b = vec![0u8; 20 + 8 + 8];
    {
        let mut ip = Ipv4Packet::new_unchecked(&mut b[..]);
        ip.set_version(4);
        ip.set_header_len(20);
        ip.set_total_len(36);
        ip.set_ttl(64);
        ip.set_protocol(IpProtocol::UDP);
        ip.set_src_addr(src);
        ip.set_dst_addr(dst);
        ip.fill_checksum();
        let mut udp = UdpPacket::new_unchecked(ip.payload_mut());
        udp.set_src_port(1000);
        udp.set_dst_port(2000);
        udp.set_length(16);
        udp.payload_mut().copy_from_slice(&tag.to_be_bytes());
        udp.fill_checksum(src, dst);
    }
    b
}

/// The peer's data message for `inner`, sealed with `key` at `counter`, as an Ethernet frame
/// from `from` to the gateway.
fn from_peer(inner: &[u8], key: &[u8; 32], counter: u64, from: SocketAddr) -> Vec<u8> {
    let mut buf = vec![0u8; FRAME];
    let at = 256;
    buf[at..at + inner.len()].copy_from_slice(inner);
    let route = Route {
        src: from,
        dst: SocketAddr::new(GW_WAN.into(), PORT),
        src_mac: PEER_MAC,
        dst_mac: WAN_MAC,
    };
    let (start, len) =
        packet::encapsulate(&mut buf, at, inner.len(), key, LOCAL, counter, &route, 1420).unwrap();
    buf[start..start + len].to_vec()
}

/// A LAN host's frame carrying `inner` to the gateway.
fn from_lan(inner: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + inner.len());
    f.extend_from_slice(&LAN_MAC);
    f.extend_from_slice(&HOST_MAC);
    f.extend_from_slice(&[0x08, 0x00]);
    f.extend_from_slice(inner);
    f
}

/// Opens a frame the gateway sent to the peer with `key`: (counter, tag of the inner packet).
fn open_to_peer(frame: &[u8], key: &[u8; 32]) -> Option<(u64, u64)> {
    let outer = packet::parse_outer(frame, 0, frame.len()).ok()?;
    let mut msg = frame[outer.msg_offset..outer.msg_offset + outer.msg_len].to_vec();
    let counter = proto::messages::Data::new_checked(&msg[..]).ok()?.counter();
    let n = proto::data::open(key, &mut msg).ok()?;
    let plain = &msg[16..16 + n];
    Some((counter, u64::from_be_bytes(plain[28..36].try_into().ok()?)))
}

/// The tag of the inner packet in a frame sent to the LAN.
fn lan_tag(frame: &[u8]) -> u64 {
    assert_eq!(&frame[..6], &HOST_MAC, "to the LAN host");
    assert_eq!(&frame[6..12], &LAN_MAC, "from the gateway's LAN port");
    u64::from_be_bytes(frame[14 + 28..14 + 36].try_into().unwrap())
}

#[test]
fn forwards_both_ways_and_consumes_every_frame() {
    let gw = Gateway::new("both", true);
    let mut arena = vec![0u8; 64 * FRAME];
    let mut w = gw.worker(0, FakeLink::new(&mut arena, FRAME, true), neighbours());
    let link = w.link_mut();
    assert!(link.inject(
        Side::Wan,
        &from_peer(&inner(PEER_TUNNEL, LAN_HOST, 7), &KEY_TO_US, 0, endpoint())
    ));
    assert!(link.inject(Side::Lan, &from_lan(&inner(LAN_HOST, PEER_TUNNEL, 8))));
    assert_eq!(w.poll_once(T0 + 1), 2);
    let link = w.link_mut();
    let lan = link.take_sent(Side::Lan);
    assert_eq!(lan.iter().map(|f| lan_tag(f)).collect::<Vec<_>>(), [7]);
    let wan = link.take_sent(Side::Wan);
    assert_eq!(wan.len(), 1);
    assert_eq!(open_to_peer(&wan[0], &KEY_TO_PEER), Some((0, 8)));
    assert_eq!((link.outstanding(), link.duplicates()), (0, 0));
}

/// A LAN packet for a peer without a session waits for the handshake it causes (as the
/// kernel stages), leaves when the session appears, and is dropped once its wait is over.
#[test]
fn staging_holds_packets_until_the_session_exists() {
    let gw = Gateway::new("staging", false);
    let mut arena = vec![0u8; 64 * FRAME];
    let mut w = gw.worker(0, FakeLink::new(&mut arena, FRAME, true), neighbours());
    for tag in [1, 2] {
        assert!(w
            .link_mut()
            .inject(Side::Lan, &from_lan(&inner(LAN_HOST, PEER_TUNNEL, tag))));
    }
    w.poll_once(T0);
    assert!(w.link_mut().take_sent(Side::Wan).is_empty());
    assert_eq!(gw.events(0), [WorkerEvent::NeedSession { peer: 0 }]);
    assert_eq!(w.link_mut().outstanding(), 2, "both frames staged");
    // Another round without the session: still waiting, control not asked again yet.
    w.poll_once(T0 + 100_000_000);
    assert!(gw.events(0).is_empty());
    assert_eq!(gw.drops(0, DropReason::NoSession), 0);

    gw.install(0, LOCAL, KEY_TO_PEER, KEY_TO_US);
    gw.set_peer(endpoint(), 0);
    w.poll_once(T0 + 200_000_000);
    let sent: Vec<_> = w
        .link_mut()
        .take_sent(Side::Wan)
        .iter()
        .map(|f| open_to_peer(f, &KEY_TO_PEER).unwrap().1)
        .collect();
    assert_eq!(sent, [1, 2], "sent in order once the session exists");
    assert_eq!(w.link_mut().outstanding(), 0);

    // Without a session for longer than the wait, a staged packet is dropped and counted.
    gw.set_peer(endpoint(), NO_SLOT);
    assert!(w
        .link_mut()
        .inject(Side::Lan, &from_lan(&inner(LAN_HOST, PEER_TUNNEL, 3))));
    w.poll_once(T0 + 300_000_000);
    assert_eq!(w.link_mut().outstanding(), 1);
    w.poll_once(T0 + 300_000_000 + STAGE_TIMEOUT_NS);
    assert_eq!(w.link_mut().outstanding(), 0);
    assert_eq!(gw.drops(0, DropReason::NoSession), 1);
    assert_eq!(w.link_mut().duplicates(), 0);
}

/// An authenticated packet from a new address is reported once; a peer that returns to an
/// address it used before, after control moved the endpoint, is reported again.
#[test]
fn roaming_is_reported_against_the_published_endpoint() {
    let gw = Gateway::new("roaming", true);
    let mut arena = vec![0u8; 64 * FRAME];
    let mut w = gw.worker(0, FakeLink::new(&mut arena, FRAME, true), neighbours());
    let moved = SocketAddr::new(endpoint().ip(), 40001);
    fn send_from<'a>(w: &mut Worker<'a, FakeLink<'a>>, from: SocketAddr, counter: &mut u64) {
        let f = from_peer(
            &inner(PEER_TUNNEL, LAN_HOST, *counter),
            &KEY_TO_US,
            *counter,
            from,
        );
        *counter += 1;
        assert!(w.link_mut().inject(Side::Wan, &f));
        w.poll_once(T0 + *counter);
        assert_eq!(w.link_mut().take_sent(Side::Lan).len(), 1, "delivered");
    }
    let mut counter = 0;
    send_from(&mut w, endpoint(), &mut counter);
    assert!(
        gw.events(0).is_empty(),
        "the known endpoint is not reported"
    );
    send_from(&mut w, moved, &mut counter);
    assert_eq!(
        gw.events(0),
        [WorkerEvent::Endpoint {
            peer: 0,
            from: moved
        }]
    );
    send_from(&mut w, moved, &mut counter);
    assert!(
        gw.events(0).is_empty(),
        "reported once until the record changes"
    );
    // Control takes the new endpoint: nothing more to report while the peer stays there.
    gw.set_peer(moved, 0);
    send_from(&mut w, moved, &mut counter);
    assert!(gw.events(0).is_empty());
    // A handshake through control moves the record back to the first address while the
    // peer's data still comes from `moved`, which this worker reported before: it must be
    // reported again, or the peer's traffic would go to the wrong address.
    gw.set_peer(endpoint(), 0);
    send_from(&mut w, moved, &mut counter);
    assert_eq!(
        gw.events(0),
        [WorkerEvent::Endpoint {
            peer: 0,
            from: moved
        }]
    );
    // And the peer going back to the first address, after control followed it, likewise.
    gw.set_peer(moved, 0);
    send_from(&mut w, endpoint(), &mut counter);
    assert_eq!(
        gw.events(0),
        [WorkerEvent::Endpoint {
            peer: 0,
            from: endpoint()
        }]
    );
    // An unauthenticated packet from elsewhere moves nothing.
    let mut forged = from_peer(&inner(PEER_TUNNEL, LAN_HOST, 99), &KEY_TO_US, 99, moved);
    let last = forged.len() - 1;
    forged[last] ^= 1;
    assert!(w.link_mut().inject(Side::Wan, &forged));
    w.poll_once(T0 + 1000);
    assert!(gw.events(0).is_empty());
    assert_eq!(gw.drops(0, DropReason::DataAuth), 1);
    assert_eq!(
        (w.link_mut().outstanding(), w.link_mut().duplicates()),
        (0, 0)
    );
}

/// One window per session for all workers: a message accepted by one worker is a replay on
/// the other (a copy sent from another port lands on another queue).
#[test]
fn the_replay_window_is_shared_by_the_workers() {
    let gw = Gateway::new("replay", true);
    let (mut a, mut b) = (vec![0u8; 16 * FRAME], vec![0u8; 16 * FRAME]);
    let mut w0 = gw.worker(0, FakeLink::new(&mut a, FRAME, true), neighbours());
    let mut w1 = gw.worker(1, FakeLink::new(&mut b, FRAME, true), neighbours());
    let msg = from_peer(&inner(PEER_TUNNEL, LAN_HOST, 5), &KEY_TO_US, 5, endpoint());
    assert!(w0.link_mut().inject(Side::Wan, &msg));
    assert!(w1.link_mut().inject(Side::Wan, &msg));
    w0.poll_once(T0);
    w1.poll_once(T0);
    assert_eq!(w0.link_mut().take_sent(Side::Lan).len(), 1);
    assert!(
        w1.link_mut().take_sent(Side::Lan).is_empty(),
        "the copy was not delivered"
    );
    assert_eq!(gw.drops(1, DropReason::Replay), 1);
    // Within the window, an older counter not seen yet still passes, on either worker.
    let older = from_peer(&inner(PEER_TUNNEL, LAN_HOST, 4), &KEY_TO_US, 4, endpoint());
    assert!(w1.link_mut().inject(Side::Wan, &older));
    w1.poll_once(T0 + 1);
    assert_eq!(w1.link_mut().take_sent(Side::Lan).len(), 1);
    for w in [w0.link_mut(), w1.link_mut()] {
        assert_eq!((w.outstanding(), w.duplicates()), (0, 0));
    }
}

/// When the next hop's MAC is unknown the packet goes to the kernel's stack; when the kernel
/// refuses it (sendto fails), the frame is released once and the drop counted once.
#[test]
fn a_kernel_path_failure_releases_the_frame_once() {
    let gw = Gateway::new("kernel", true);
    let mut arena = vec![0u8; 16 * FRAME];
    // No next hop known at all.
    let mut w = gw.worker(
        0,
        FakeLink::new(&mut arena, FRAME, true),
        Snapshot::default(),
    );
    let total = 16;
    w.link_mut().kernel_accepts = false;
    assert!(w.link_mut().inject(
        Side::Wan,
        &from_peer(&inner(PEER_TUNNEL, LAN_HOST, 1), &KEY_TO_US, 0, endpoint())
    ));
    assert!(w
        .link_mut()
        .inject(Side::Lan, &from_lan(&inner(LAN_HOST, PEER_TUNNEL, 2))));
    w.poll_once(T0);
    assert_eq!(gw.drops(0, DropReason::NoNeighbour), 2, "one per direction");
    let link = w.link_mut();
    assert!(link.sent.is_empty() && link.to_kernel.is_empty());
    assert_eq!((link.outstanding(), link.duplicates()), (0, 0));
    // Every frame is usable again, each once: fill the whole pool.
    for _ in 0..total {
        assert!(link.inject(Side::Lan, &from_lan(&inner(LAN_HOST, PEER_TUNNEL, 3))));
    }
    assert!(!link.inject(Side::Lan, &from_lan(&inner(LAN_HOST, PEER_TUNNEL, 3))));
    w.poll_once(T0 + 1);

    // The kernel accepting: the inner packet (inbound) and the outer IP packet (outbound).
    let link = w.link_mut();
    link.kernel_accepts = true;
    link.to_kernel.clear();
    let inner_in = inner(PEER_TUNNEL, LAN_HOST, 4);
    assert!(link.inject(Side::Wan, &from_peer(&inner_in, &KEY_TO_US, 1, endpoint())));
    assert!(link.inject(Side::Lan, &from_lan(&inner(LAN_HOST, PEER_TUNNEL, 5))));
    w.poll_once(T0 + 2);
    let link = w.link_mut();
    assert_eq!(link.to_kernel.len(), 2);
    let mut got = inner_in.clone();
    got[8] -= 1; // TTL
    assert_eq!(link.to_kernel[0].0[..20].len(), 20);
    assert_eq!(
        &link.to_kernel[0].0[12..20],
        &got[12..20],
        "the inner packet, to the LAN host"
    );
    assert_eq!(link.to_kernel[0].1, IpAddr::from(LAN_HOST));
    assert_eq!(
        link.to_kernel[1].1,
        endpoint().ip(),
        "the outer packet, to the peer"
    );
    assert_eq!(
        link.to_kernel[1].0[0] >> 4,
        4,
        "an IP packet, no Ethernet header"
    );
    assert_eq!((link.outstanding(), link.duplicates()), (0, 0));
}

/// Control retires the session (and a new handshake takes its slot, counter reset) between
/// the worker reading the key and taking a counter: the packet must not be sealed with the
/// old key at the new session's counter, which that key already used.
#[test]
fn a_session_retired_while_sealing_never_reuses_a_nonce() {
    let gw = Gateway::new("retired", true);
    let mut arena = vec![0u8; 16 * FRAME];
    let mut w = gw.worker(0, FakeLink::new(&mut arena, FRAME, true), neighbours());
    assert!(w
        .link_mut()
        .inject(Side::Lan, &from_lan(&inner(LAN_HOST, PEER_TUNNEL, 1))));
    w.poll_once(T0);
    let first = w.link_mut().take_sent(Side::Wan);
    assert_eq!(open_to_peer(&first[0], &KEY_TO_PEER), Some((0, 1)));

    let new_key = [0x33; 32];
    let mut fired = false;
    w.after_key_read = Some(Box::new(move |region: &Region| {
        if !std::mem::replace(&mut fired, true) {
            retire(region, 0, LOCAL);
            install(region, 0, LOCAL + 1, new_key, [0x44; 32]);
        }
    }));
    assert!(w
        .link_mut()
        .inject(Side::Lan, &from_lan(&inner(LAN_HOST, PEER_TUNNEL, 2))));
    w.poll_once(T0 + 1);
    for f in w.link_mut().take_sent(Side::Wan) {
        assert!(
            open_to_peer(&f, &KEY_TO_PEER).is_none(),
            "a packet left sealed with the retired key: {:?}",
            open_to_peer(&f, &KEY_TO_PEER)
        );
    }
    assert_eq!(gw.drops(0, DropReason::SessionRetired), 1);
    // The next packet goes out on the new session, from its counter 1 (0 was taken above).
    assert!(w
        .link_mut()
        .inject(Side::Lan, &from_lan(&inner(LAN_HOST, PEER_TUNNEL, 3))));
    w.poll_once(T0 + 2);
    let sent = w.link_mut().take_sent(Side::Wan);
    assert_eq!(open_to_peer(&sent[0], &new_key), Some((1, 3)));
    assert_eq!(
        (w.link_mut().outstanding(), w.link_mut().duplicates()),
        (0, 0)
    );
}

/// Receiving: a message opened with a key control retired meanwhile does not reach the
/// window of the session now in the slot.
#[test]
fn a_session_retired_while_opening_does_not_touch_the_new_window() {
    let gw = Gateway::new("retired-rx", true);
    let mut arena = vec![0u8; 16 * FRAME];
    let mut w = gw.worker(0, FakeLink::new(&mut arena, FRAME, true), neighbours());
    let mut fired = false;
    w.after_key_read = Some(Box::new(move |region: &Region| {
        if !std::mem::replace(&mut fired, true) {
            retire(region, 0, LOCAL);
            install(region, 0, LOCAL + 1, [0x33; 32], [0x44; 32]);
        }
    }));
    let high = 1000;
    assert!(w.link_mut().inject(
        Side::Wan,
        &from_peer(
            &inner(PEER_TUNNEL, LAN_HOST, 1),
            &KEY_TO_US,
            high,
            endpoint()
        )
    ));
    w.poll_once(T0);
    assert!(w.link_mut().take_sent(Side::Lan).is_empty());
    assert_eq!(gw.drops(0, DropReason::SessionRetired), 1);
    // The new session's window is untouched: its counter 0 is still acceptable.
    assert!(gw.region.sessions()[0].replay.validate(0));
    assert_eq!(
        (w.link_mut().outstanding(), w.link_mut().duplicates()),
        (0, 0)
    );
}

/// A keypair whose receiving counters are used up takes nothing more, as in the kernel.
#[test]
fn an_exhausted_keypair_receives_nothing() {
    let gw = Gateway::new("exhausted", true);
    let mut arena = vec![0u8; 16 * FRAME];
    let mut w = gw.worker(0, FakeLink::new(&mut arena, FRAME, true), neighbours());
    let last = proto::constants::REJECT_AFTER_MESSAGES - 1;
    assert!(gw.region.sessions()[0].replay.validate(last));
    // Within the window and never seen: the window alone would take it.
    let msg = from_peer(
        &inner(PEER_TUNNEL, LAN_HOST, 1),
        &KEY_TO_US,
        last - 5,
        endpoint(),
    );
    assert!(w.link_mut().inject(Side::Wan, &msg));
    w.poll_once(T0);
    assert!(
        w.link_mut().take_sent(Side::Lan).is_empty(),
        "not delivered"
    );
    assert_eq!(gw.drops(0, DropReason::CounterExhausted), 1);
    assert_eq!(
        (w.link_mut().outstanding(), w.link_mut().duplicates()),
        (0, 0)
    );
}

/// A roam that could not be reported (control's ring was full) is reported with the next
/// packet, not lost.
#[test]
fn a_roam_lost_to_a_full_ring_is_reported_again() {
    let gw = Gateway::new("roam-full", true);
    let mut arena = vec![0u8; 16 * FRAME];
    let mut w = gw.worker(0, FakeLink::new(&mut arena, FRAME, true), neighbours());
    let filler = WorkerEvent::NeedSession { peer: 3 };
    while gw.region.push_event(0, &filler) {}
    let moved = SocketAddr::new(endpoint().ip(), 40001);
    for counter in 0..2 {
        let f = from_peer(
            &inner(PEER_TUNNEL, LAN_HOST, counter),
            &KEY_TO_US,
            counter,
            moved,
        );
        assert!(w.link_mut().inject(Side::Wan, &f));
        w.poll_once(T0 + counter);
        if counter == 0 {
            assert_eq!(gw.drops(0, DropReason::EventRingFull), 1);
            // Control catches up with its ring.
            assert!(gw.events(0).iter().all(|e| *e == filler));
        }
    }
    assert_eq!(
        gw.events(0),
        [WorkerEvent::Endpoint {
            peer: 0,
            from: moved
        }]
    );
}

/// A retired session leaves the worker's cache (and its keys its memory) within a sweep,
/// even if no packet asks for that slot again.
#[test]
fn retired_sessions_leave_the_cache() {
    let gw = Gateway::new("sweep", true);
    let mut arena = vec![0u8; 16 * FRAME];
    let mut w = gw.worker(0, FakeLink::new(&mut arena, FRAME, true), neighbours());
    assert!(w
        .link_mut()
        .inject(Side::Lan, &from_lan(&inner(LAN_HOST, PEER_TUNNEL, 1))));
    w.poll_once(T0);
    assert_eq!(w.cached_sessions(), 1);
    retire(&gw.region, 0, LOCAL);
    w.poll_once(T0 + 10);
    assert_eq!(w.cached_sessions(), 1, "not before the sweep interval");
    w.poll_once(T0 + SWEEP_INTERVAL_NS + 10);
    assert_eq!(w.cached_sessions(), 0);
}

/// A decrypted packet for a loopback (or otherwise martian) destination is dropped, as the
/// kernel drops martians; it never reaches the LAN nor the kernel's stack.
#[test]
fn martian_destinations_are_dropped() {
    let gw = Gateway::new("martian", true);
    let mut arena = vec![0u8; 16 * FRAME];
    let mut w = gw.worker(0, FakeLink::new(&mut arena, FRAME, true), neighbours());
    for (i, dst) in [Ipv4Addr::LOCALHOST, Ipv4Addr::new(0, 1, 2, 3)]
        .into_iter()
        .enumerate()
    {
        let msg = from_peer(
            &inner(PEER_TUNNEL, dst, 1),
            &KEY_TO_US,
            i as u64,
            endpoint(),
        );
        assert!(w.link_mut().inject(Side::Wan, &msg));
    }
    w.poll_once(T0);
    let link = w.link_mut();
    assert!(link.sent.is_empty() && link.to_kernel.is_empty());
    assert_eq!(gw.drops(0, DropReason::Martian), 2);
    for a in ["::1", "::", "::ffff:127.0.0.1", "127.255.0.1"] {
        assert!(inbound::is_martian(a.parse().unwrap()), "{a}");
    }
    for a in ["198.18.1.2", "2001:2::1", "10.0.0.1"] {
        assert!(!inbound::is_martian(a.parse().unwrap()), "{a}");
    }
}

/// A destination the FIB routes out of another interface never leaves by the LAN port, even
/// when a neighbour of that address is known there: it takes the kernel's path, which sends
/// it where the route says.
#[test]
fn frames_leave_only_by_the_interface_the_route_names() {
    let gw = Gateway::new("oif", true);
    let mut arena = vec![0u8; 16 * FRAME];
    let mut snapshot = neighbours();
    // The FIB sends LAN_HOST out of the WAN interface, via a router there whose MAC is known
    // (say, the internet's default route).
    snapshot.next_hop.insert(
        LAN_HOST.into(),
        crate::neigh::Hop {
            via: (*endpoint_ip()).into(),
            oif: WAN_INDEX,
        },
    );
    let mut w = gw.worker(0, FakeLink::new(&mut arena, FRAME, true), snapshot);
    let msg = from_peer(&inner(PEER_TUNNEL, LAN_HOST, 1), &KEY_TO_US, 0, endpoint());
    assert!(w.link_mut().inject(Side::Wan, &msg));
    w.poll_once(T0);
    let link = w.link_mut();
    assert!(
        link.take_sent(Side::Lan).is_empty(),
        "not out of the LAN port"
    );
    assert_eq!(
        link.to_kernel.len(),
        1,
        "to the kernel's stack, which follows the route"
    );
    assert_eq!((link.outstanding(), link.duplicates()), (0, 0));
}

mod failover;
mod local;
mod mss;
mod offload;
mod share;
