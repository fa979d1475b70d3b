//! One tunnel across cores, measured without the kernel (issue 15): the data path's worker on
//! its in-memory link, fed one peer's stream of 1420-byte packets, alone and with helper
//! workers on their own threads (`dataplane::worker::Exchange`). Prints, per direction and
//! worker count, the owner's delivered rate, and the costs the 8- and 16-core model in
//! bench/RESULTS.md is built from: the AEAD alone per packet (the same batch code, in
//! batches of 64) and everything else the owner does per packet.
//!
//!   cargo run --release -p bench --bin wgxdp-share [-- SECONDS]
//!
//! The in-memory link copies each packet in (inject) and out (a Vec per sent packet), where
//! AF_XDP in copy mode has the kernel copy it: the "rest" here is the worker's own serial
//! work plus that copy, not the kernel's AF_XDP and veth costs (bench/gateway measures those).

use aead_batch::{Dispatch, Packet};
use allowedips::AllowedIps;
use bench::inner::Tag;
use contract::layout::{Layout, PeerRecord, SessionRecord};
use contract::Region;
use dataplane::link::fake::FakeLink;
use dataplane::link::Side;
use dataplane::neigh::{Hop, Neighbours, Snapshot};
use dataplane::packet::{self, Route};
use dataplane::worker::{Exchange, Iface, Share, Worker, WorkerConfig};
use proto::allowedips::Prefix;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

const GW_WAN: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);
const GW_LAN: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 1);
const PEER_TUNNEL: Ipv4Addr = Ipv4Addr::new(198, 18, 200, 2);
const LAN_HOST: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 10);
const PEER: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 2);
const WAN_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const LAN_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
const PEER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 3];
const HOST_MAC: [u8; 6] = [2, 0, 0, 0, 0, 4];
const PORT: u16 = 51820;
const LOCAL: u32 = 0x1111_0001;
const KEY_TO_US: [u8; 32] = [0x11; 32];
const KEY_TO_PEER: [u8; 32] = [0x22; 32];
const FRAME: usize = 2048;
const BATCH: usize = 64;
const INNER: usize = 1420;

fn endpoint() -> SocketAddr {
    SocketAddr::new(PEER.into(), 40000)
}

/// A region with one peer owning 198.18.200.0/24 and a session, and its allowed-IPs table.
fn region() -> (Arc<Region>, AllowedIps) {
    let path = std::env::temp_dir().join(format!("wgxdp-share-bench-{}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let layout = Layout {
        sessions: 8,
        peers: 4,
        prefixes: 8,
        workers: 16,
    };
    let region = Region::create(&path, layout).expect("region");
    region.remove().expect("unlink");
    let region = Arc::new(region);
    region
        .header()
        .listen_port
        .store(u64::from(PORT), Ordering::Relaxed);
    let peer = PeerRecord {
        valid: true,
        endpoint: Some(endpoint()),
        current_session: 0,
        key_tag: 1,
    };
    region.peers()[0].record.write(&peer.encode());
    let s = &region.sessions()[0];
    s.replay.reset();
    s.send_counter.store(0, Ordering::Relaxed);
    let rec = SessionRecord {
        local_index: LOCAL,
        remote_index: 0x2222_0001,
        peer: 0,
        flags: SessionRecord::VALID | SessionRecord::INITIATOR | SessionRecord::SENDABLE,
        birth_ns: contract::clock::mono_ns(),
        send_key: KEY_TO_PEER,
        recv_key: KEY_TO_US,
    };
    s.record.write(&rec.encode());
    assert!(region.index_insert(LOCAL, 0));
    let mut table = AllowedIps::attach(region.clone(), []).expect("table");
    table
        .insert(Prefix::new(PEER_TUNNEL.into(), 24).expect("prefix"), 0)
        .expect("insert");
    (region, table)
}

fn neighbours() -> Neighbours {
    let mut s = Snapshot::default();
    for (ip, mac, oif) in [(LAN_HOST, HOST_MAC, 8), (PEER, PEER_MAC, 7)] {
        s.next_hop.insert(
            ip.into(),
            Hop {
                via: ip.into(),
                oif,
            },
        );
        s.mac.insert((oif, ip.into()), mac);
    }
    Neighbours::fixed(s)
}

fn config(id: usize) -> WorkerConfig {
    let iface = |name: &str, index, mac, v4| Iface {
        name: name.into(),
        index,
        mac,
        v4: Some(v4),
        v6: None,
        mtu: 1500,
    };
    WorkerConfig {
        id,
        wan: iface("wan", 7, WAN_MAC, GW_WAN),
        lan: Some(iface("lan", 8, LAN_MAC, GW_LAN)),
        listen_port: PORT,
        mtu: 1420,
    }
}

/// An IPv4/UDP packet of `INNER` bytes from `src` to `dst` (the load generator's own).
fn inner(src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
    let mut b = vec![0u8; INNER];
    let (src, dst) = (SocketAddrV4::new(src, 1000), SocketAddrV4::new(dst, 2000));
    bench::inner::write_udp4(&mut b, src, dst, Tag { round: 0, seq: 0 });
    b
}

/// The peer's data messages, counters `0..n`, as frames to the gateway.
fn sealed(n: usize) -> Vec<Vec<u8>> {
    let plain = inner(PEER_TUNNEL, LAN_HOST);
    let route = Route {
        src: endpoint(),
        dst: SocketAddr::new(GW_WAN.into(), PORT),
        src_mac: PEER_MAC,
        dst_mac: WAN_MAC,
    };
    (0..n)
        .map(|c| {
            let mut buf = vec![0u8; FRAME];
            buf[256..256 + plain.len()].copy_from_slice(&plain);
            let (start, len) = packet::encapsulate(
                &mut buf,
                256,
                plain.len(),
                &KEY_TO_US,
                LOCAL,
                c as u64,
                &route,
                1420,
            )
            .expect("encapsulate");
            buf[start..start + len].to_vec()
        })
        .collect()
}

fn lan_frame() -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + INNER);
    f.extend_from_slice(&LAN_MAC);
    f.extend_from_slice(&HOST_MAC);
    f.extend_from_slice(&[0x08, 0x00]);
    f.extend_from_slice(&inner(LAN_HOST, PEER_TUNNEL));
    f
}

/// The owner's delivered packets per second over `rounds` rounds of a batch each, with
/// `workers - 1` helpers on threads of their own.
fn run(workers: usize, inbound: bool, messages: &[Vec<u8>], rounds: usize) -> (f64, u64, u64) {
    let (region, table) = region();
    let exchange = Exchange::new(workers).expect("exchange");
    let stop = AtomicBool::new(false);
    let mut arenas: Vec<Vec<u8>> = (0..workers).map(|_| vec![0u8; 4 * BATCH * FRAME]).collect();
    let mut links = arenas
        .iter_mut()
        .map(|a| FakeLink::new(a, FRAME, true))
        .collect::<Vec<_>>()
        .into_iter();
    let reader = || table.reader().expect("reader");
    let mut all: Vec<_> = (0..workers)
        .map(|id| {
            let w = Worker::new(
                config(id),
                region.clone(),
                links.next().expect("link"),
                neighbours(),
                reader(),
            );
            with_share(w, &exchange, id, workers)
        })
        .collect();
    let mut owner = all.remove(0);
    let mut helpers = all;
    let plain = lan_frame();
    let mut delivered = 0u64;
    let elapsed = std::thread::scope(|s| {
        for h in &mut helpers {
            let stop = &stop;
            s.spawn(move || h.run(stop));
        }
        let start = Instant::now();
        let mut next = 0;
        for _ in 0..rounds {
            let link = owner.link_mut();
            for _ in 0..BATCH {
                if inbound {
                    link.inject(Side::Wan, &messages[next % messages.len()]);
                    next += 1;
                } else {
                    link.inject(Side::Lan, &plain);
                }
            }
            let now = contract::clock::mono_ns();
            owner.poll_once(now);
            let link = owner.link_mut();
            delivered += link.sent.len() as u64;
            link.sent.clear();
        }
        let t = start.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        t
    });
    let stats = region.worker_stats(0).expect("stats");
    let handed = stats.crypto_handed.load(Ordering::Relaxed);
    let back = stats.crypto_reclaimed.load(Ordering::Relaxed);
    let _ = &mut links;
    (delivered as f64 / elapsed, handed, back)
}

fn with_share<'a>(
    w: Worker<'a, FakeLink<'a>>,
    exchange: &Arc<Exchange<'a>>,
    id: usize,
    workers: usize,
) -> Worker<'a, FakeLink<'a>> {
    if workers > 1 {
        w.with_share(Share::new(exchange.clone(), id))
    } else {
        w
    }
}

/// The AEAD alone, per 1420-byte packet, in batches of 64 (the workers' dispatch).
fn aead_ns(inbound: bool) -> f64 {
    let d = Dispatch::detect();
    let mut bufs: Vec<Vec<u8>> = (0..BATCH).map(|_| vec![7u8; INNER + 16]).collect();
    // Sealed once, so that opening them authenticates (the workers' path).
    let seal_all = |bufs: &mut Vec<Vec<u8>>, counter: u64| {
        let mut ps: Vec<Packet<'_>> = bufs
            .iter_mut()
            .map(|b| Packet::new(&KEY_TO_US, counter, b))
            .collect();
        d.seal(&mut ps);
    };
    seal_all(&mut bufs, 1);
    let iters = 2000;
    let start = Instant::now();
    for i in 0..iters {
        if inbound {
            let mut copies = bufs.clone();
            let mut ps: Vec<Packet<'_>> = copies
                .iter_mut()
                .map(|b| Packet::new(&KEY_TO_US, 1, b))
                .collect();
            assert_eq!(d.open(&mut ps), BATCH);
        } else {
            seal_all(&mut bufs, i);
        }
    }
    let mut t = start.elapsed().as_secs_f64();
    if inbound {
        // Take the copies' cost out.
        let start = Instant::now();
        for _ in 0..iters {
            std::hint::black_box(bufs.clone());
        }
        t -= start.elapsed().as_secs_f64();
    }
    t * 1e9 / (iters as usize * BATCH) as f64
}

fn main() {
    let secs: f64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(2.0);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "# wgxdp-share: one tunnel, 1420-byte inner packets, batches of {BATCH}; {cpus} CPUs; AEAD {}",
        Dispatch::detect().name()
    );
    let messages = sealed(300_000);
    println!("| direction | workers | delivered (pps) | × 1 worker | handed to helpers | taken back | AEAD alone (ns/packet) | rest of the owner's work (ns/packet) |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for inbound in [true, false] {
        let aead = aead_ns(inbound);
        // Calibrate the rounds to about `secs` with one worker.
        let (probe, _, _) = run(1, inbound, &messages, 200);
        // Inbound, each message once (the replay window refuses a second pass).
        let most = if inbound {
            messages.len() / BATCH
        } else {
            usize::MAX
        };
        let rounds = ((probe * secs) as usize / BATCH).clamp(200, most);
        let mut one = 0.0;
        for workers in 1..=cpus.clamp(2, 4) {
            let (pps, handed, back) = run(workers, inbound, &messages, rounds);
            if workers == 1 {
                one = pps;
            }
            let rest = if workers == 1 {
                format!("{:.0}", 1e9 / pps - aead)
            } else {
                String::new()
            };
            println!(
                "| {} | {workers} | {pps:.0} | {:.2} | {handed} | {back} | {aead:.0} | {rest} |",
                if inbound { "in" } else { "out" },
                pps / one
            );
        }
    }
}
