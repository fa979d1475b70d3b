//! A handshake flood against the whole gateway (security review, long run 1): one
//! MAC1-valid initiation replayed from many spoofed sources for [`FLOOD`], at [`FLOOD_RATE`],
//! while an established peer moves traffic and new peers handshake.
//!
//! The rate: control turns away about 120-130k such messages per second of its CPU (MAC1, a
//! cookie reply each; Intel Ice Lake, 2026-12-03: 1.5M in 11.5-12.4 s of CPU, where an
//! unoptimised control took 19.4 s), one core sending flat out makes 106-125k/s, and the
//! kernel drops what overflows control's socket. A new peer's retry with its cookie goes to
//! the cookie lane (control/src/daemon/lanes.rs), which the flood cannot fill; its first
//! initiation, without a cookie, shares the flood's socket and, dropped there, waits the
//! protocol's 5 s retry. So flat out, a new peer's handshake can take over 1 s: a capacity
//! limit of one control thread, not a property this test can assert on a 2-core machine. At
//! FLOOD_RATE, well inside the under-load regime (cookie replies throughout), control keeps
//! up with room to spare, and the test asserts the 1 s.
//!
//! Needs root, namespaces, wireguard-go, wg, iperf3: skipped with a message elsewhere, a
//! failure in CI. It measures rates, so it runs alone (`.config/nextest.toml`).

mod common;

use common::*;
use proto::device::{Device, PeerConfig, PeerId, Received};
use proto::keys::{PrivateKey, PublicKey};
use proto::messages::INITIATION_LEN;
use proto::time::{Instant as PInstant, Now};
use rand_core::OsRng;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};
use testbed::IfAddr;

/// How long the flood lasts (the figure).
const FLOOD: Duration = Duration::from_secs(30);
/// Initiations per second: a hundred times the kernel's under-load threshold, below one
/// control thread's capacity here (see the module docs).
const FLOOD_RATE: f64 = 50_000.0;
/// The auth log's budget given to `wgxdp up`: small, so that the flood reaches it.
const AUTH_LOG_MAX: u64 = 32 << 10;
/// The flooder's and our own peer's hosts on the WAN segment.
const FLOODER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 200);
const OURS: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 201);
/// The spoofed sources: 32768 addresses in 128 /24s (more than the auth log tracks per
/// window), off-link for the gateway, which routes them as it would the internet.
const SPOOFED_NET: u32 = u32::from_be_bytes([198, 19, 128, 0]);
const SPOOFED: u32 = 1 << 15;
const METRICS: &str = "127.0.0.1:9586";

/// An initiation with a valid MAC1 for `gw` from a key the gateway does not know: what an
/// attacker who knows only the gateway's public key (it is in every client's configuration)
/// can make, and replay forever.
fn stranger_initiation(gw: &PublicKey) -> [u8; INITIATION_LEN] {
    let mut dev = Device::new(PrivateKey::generate(&mut OsRng), OsRng);
    let now = Now::new(PInstant::from_nanos(1), unix_now());
    let id = dev
        .add_peer(
            now,
            *gw,
            PeerConfig {
                endpoint: Some("198.18.0.1:51820".parse().unwrap()),
                ..PeerConfig::default()
            },
        )
        .unwrap();
    dev.initiate_handshake(now, id);
    let mut m = [0u8; INITIATION_LEN];
    let t = dev.poll_transmit(now, &mut m).unwrap();
    assert_eq!(t.len, INITIATION_LEN);
    m
}

fn unix_now() -> Duration {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
}

/// IPv4 + UDP datagrams carrying `payload` to the gateway's port from spoofed source `i`
/// (address and port). The kernel fills in the IP checksum and length (IP_HDRINCL); the UDP
/// checksum is left out, as IPv4 allows.
fn spoofed_datagram(i: u32, dst: Ipv4Addr, payload: &[u8]) -> Vec<u8> {
    let src = Ipv4Addr::from(SPOOFED_NET + i % SPOOFED);
    let sport = 1024 + (i.wrapping_mul(7919) % 60_000) as u16;
    let udp_len = 8 + payload.len() as u16;
    let mut p = Vec::with_capacity(20 + usize::from(udp_len));
    p.extend_from_slice(&[0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(&sport.to_be_bytes());
    p.extend_from_slice(&51820u16.to_be_bytes());
    p.extend_from_slice(&udp_len.to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(payload);
    p
}

/// Sends the replayed initiation from spoofed sources through a raw socket of the flooder's
/// namespace until `stop`; returns how many datagrams went out.
fn flood(sock: &Socket, packets: &[Vec<u8>], dst: Ipv4Addr, stop: &AtomicBool) -> u64 {
    let to = SockAddr::from(SocketAddrV4::new(dst, 0));
    let mut sent = 0u64;
    let start = Instant::now();
    'outer: loop {
        for p in packets {
            if sock.send_to(p, &to).is_ok() {
                sent += 1;
            }
            if sent.is_multiple_of(256) {
                if stop.load(Ordering::Relaxed) {
                    break 'outer;
                }
                let due = start + Duration::from_secs_f64(sent as f64 / FLOOD_RATE);
                if let Some(ahead) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(ahead);
                }
            }
        }
    }
    sent
}

/// A Prometheus scrape of the gateway's control process (inside its namespace).
fn metrics(t: &Topo) -> String {
    t.gw.run_in(|| {
        let mut s = std::net::TcpStream::connect(METRICS).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut page = String::new();
        s.read_to_string(&mut page).unwrap();
        page
    })
}

/// The sum of the samples of `name` whose labels contain `label` ("" for any).
fn sample(page: &str, name: &str, label: &str) -> f64 {
    page.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(name) && l.contains(label))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

/// A legitimate new peer of our own: proto's `Device` on a UDP socket in its own namespace.
/// It follows the protocol, except that when a cookie reply comes it sends the initiation
/// again at once (its clock skips the REKEY_TIMEOUT wait), so that the time it takes is
/// control's: the cookie round trip and the handshake, nothing of a retry timer.
struct OurPeer {
    dev: Device<OsRng>,
    id: PeerId,
    sock: UdpSocket,
    start: Instant,
    skip: Duration,
}

#[derive(Debug)]
struct Handshake {
    took: Duration,
    initiations: u32,
    cookies: u32,
}

impl OurPeer {
    fn now(&self) -> Now {
        let mono = self.start.elapsed() + self.skip;
        Now::new(PInstant::from_nanos(mono.as_nanos() as u64 + 1), unix_now())
    }

    fn new(sock: UdpSocket, key: PrivateKey, gw: PublicKey, endpoint: SocketAddr) -> Self {
        let mut p = Self {
            dev: Device::new(key, OsRng),
            id: PeerId(0),
            sock,
            start: Instant::now(),
            skip: Duration::ZERO,
        };
        let now = p.now();
        p.id = p
            .dev
            .add_peer(
                now,
                gw,
                PeerConfig {
                    endpoint: Some(endpoint),
                    ..PeerConfig::default()
                },
            )
            .unwrap();
        p
    }

    fn handshake(&mut self, give_up: Duration) -> Option<Handshake> {
        let t0 = Instant::now();
        let mut h = Handshake {
            took: Duration::ZERO,
            initiations: 0,
            cookies: 0,
        };
        self.sock
            .set_read_timeout(Some(Duration::from_millis(10)))
            .unwrap();
        let now = self.now();
        self.dev.initiate_handshake(now, self.id);
        let mut buf = [0u8; 2048];
        while t0.elapsed() < give_up {
            let now = self.now();
            if self.dev.poll_timeout().is_some_and(|t| t <= now.mono) {
                self.dev.handle_timeout(now);
            }
            while let Some(tx) = self.dev.poll_transmit(now, &mut buf) {
                if buf[0] == 1 {
                    h.initiations += 1;
                }
                let _ = self.sock.send_to(&buf[..tx.len], tx.dst);
            }
            let Ok((n, from)) = self.sock.recv_from(&mut buf) else {
                continue;
            };
            match self
                .dev
                .handle_datagram(self.now(), from, &mut buf[..n], false)
            {
                Ok(Received::CookieReply { .. }) => {
                    h.cookies += 1;
                    self.skip += proto::constants::REKEY_TIMEOUT;
                    let now = self.now();
                    self.dev.initiate_handshake(now, self.id);
                }
                Ok(Received::Response { .. }) => {
                    h.took = t0.elapsed();
                    // Its keepalive confirms the session.
                    let now = self.now();
                    while let Some(tx) = self.dev.poll_transmit(now, &mut buf) {
                        let _ = self.sock.send_to(&buf[..tx.len], tx.dst);
                    }
                    return Some(h);
                }
                _ => {}
            }
        }
        None
    }
}

/// `auth.log` and `auth.log.1`, in bytes.
fn auth_log_size(t: &Topo) -> (u64, u64) {
    let size =
        |f: &str| std::fs::metadata(format!("{}/{f}", log_dir(&t.name))).map_or(0, |m| m.len());
    (size("auth.log"), size("auth.log.1"))
}

/// Datagrams the kernel dropped because a UDP socket's buffer was full, in namespace `ns`.
fn udp_rcvbuf_errors(ns: &testbed::Netns) -> u64 {
    let snmp = ok(ns.exec(["cat", "/proc/net/snmp"]));
    let mut udp = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let (Some(head), Some(vals)) = (udp.next(), udp.next()) else {
        return 0;
    };
    head.split_whitespace()
        .zip(vals.split_whitespace())
        .find(|(k, _)| *k == "RcvbufErrors")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

/// CPU time process `pid` has used (user + system).
fn cpu_time(pid: i32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the command.
    let ticks: u64 = fields
        .get(11..13)
        .map_or(0, |f| f.iter().filter_map(|v| v.parse::<u64>().ok()).sum());
    Duration::from_millis(ticks * 10)
}

/// One captured initiation replayed from 32768 spoofed sources for 30 s, as fast as one core
/// sends it. Meanwhile: (a) the auth log and its rotated file stay within `--auth-log-max`
/// (sampled every 100 ms), (b) peers added live one after the other each complete their
/// handshake, cookie round trip included, within 1 s of their first initiation, (c) the
/// established peer's traffic keeps at least 90% of the rate it had before the flood.
#[test]
fn handshake_flood_from_spoofed_sources() {
    if !require() {
        return;
    }
    let cap = format!("{}k", AUTH_LOG_MAX >> 10);
    let t = topo(1, &["--auth-log-max", &cap, "--metrics", METRICS]);
    let p = &t.peers[0];
    assert!(ping(&p.ns, LAN_V4), "{}", show(&t));
    let gw_pub =
        PublicKey::from_base64(ok(t.gw.exec(["wg", "show", &t.name, "public-key"])).trim())
            .unwrap();
    let gw_v4 = Ipv4Addr::new(198, 18, 0, 1);
    let control: i32 = std::fs::read_to_string(format!("/run/wgxdp/{}/control.pid", t.name))
        .unwrap()
        .trim()
        .parse()
        .unwrap();

    let flooder = t.sw.attach("fl", &[IfAddr::v4(FLOODER, 24)]).unwrap();
    let ours_host = t.sw.attach("ours", &[IfAddr::v4(OURS, 24)]).unwrap();
    // The gateway's way to the spoofed sources (the internet, for a real gateway): a cable
    // whose far end is down, so that a cookie reply costs control a transmit that the driver
    // drops, as a NIC's would cost it. (Through the switch, control's sends would also pay
    // for the bridge's netfilter hooks and the flooder's receive path, in its own time.) A
    // permanent neighbour spares the ARP.
    ok(t.gw.ip([
        "link",
        "add",
        "uplink",
        "type",
        "veth",
        "peer",
        "name",
        "uplink-far",
    ]));
    ok(t.gw.ip(["link", "set", "uplink", "up"]));
    ok(t.gw.ip([
        "neigh",
        "add",
        "198.18.255.1",
        "lladdr",
        "02:00:00:00:00:01",
        "dev",
        "uplink",
        "nud",
        "permanent",
    ]));
    ok(t.gw.ip([
        "route",
        "add",
        &format!("{}/17", Ipv4Addr::from(SPOOFED_NET)),
        "via",
        "198.18.255.1",
        "dev",
        "uplink",
        "onlink",
    ]));

    let init = stranger_initiation(&gw_pub);
    let packets: Vec<Vec<u8>> = (0..SPOOFED)
        .map(|i| spoofed_datagram(i, gw_v4, &init))
        .collect();
    // IPPROTO_RAW: the datagrams carry their own IP header (IP_HDRINCL).
    let raw = flooder
        .ns
        .run_in(|| Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(255))))
        .expect("a raw socket in the flooder's namespace");
    // Control has a core of its own (the last, see `wgxdp control`); the flooder takes the
    // other one, which it shares with the data path's worker, as a flood's receive
    // interrupts would on a real NIC.
    let flood_core = core_affinity::get_core_ids()
        .unwrap_or_default()
        .first()
        .copied();

    // Before: the established peer's rate, capped at what this machine sustains.
    let before = iperf_with(&t, &p.ns, LAN_V4, 5, false, &["-b", "100M"]);
    let rcvbuf_before = udp_rcvbuf_errors(&t.gw);
    let m0 = metrics(&t);
    let cpu0 = cpu_time(control);

    let stop = AtomicBool::new(false);
    let (sent, during, ours, largest, flood_time) = std::thread::scope(|s| {
        let flood_start = Instant::now();
        let flooder = s.spawn(|| {
            if let Some(c) = flood_core {
                core_affinity::set_for_current(c);
            }
            flood(&raw, &packets, gw_v4, &stop)
        });
        let sizes = s.spawn(|| {
            let mut largest = (0, 0);
            while !stop.load(Ordering::Relaxed) {
                let (a, b) = auth_log_size(&t);
                if a + b > largest.0 + largest.1 {
                    largest = (a, b);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            largest
        });
        // Control is under load within a step of the flood's start; give it a second.
        std::thread::sleep(Duration::from_secs(1));
        let during = s.spawn(|| iperf_with(&t, &p.ns, LAN_V4, 20, false, &["-b", "100M"]));
        std::thread::sleep(Duration::from_secs(4));
        // New peers, added live, handshake one after the other while the flood lasts.
        let mut ours = Vec::new();
        // Each gets up to one retry of the protocol's (REKEY_TIMEOUT) inside the flood.
        let give_up = proto::constants::REKEY_TIMEOUT + Duration::from_millis(1500);
        for i in 0.. {
            if flood_start.elapsed() + give_up > FLOOD {
                break;
            }
            let key = PrivateKey::generate(&mut OsRng);
            ok(t.gw.exec([
                "wg",
                "set",
                &t.name,
                "peer",
                &key.public_key().to_base64(),
                "allowed-ips",
                &format!("198.19.0.{}/32", 50 + i),
            ]));
            let sock = ours_host.ns.run_in(|| UdpSocket::bind((OURS, 0))).unwrap();
            let mut peer = OurPeer::new(sock, key, gw_pub, SocketAddr::new(gw_v4.into(), 51820));
            ours.push(peer.handshake(give_up));
            std::thread::sleep(Duration::from_millis(500));
        }
        let during = during.join().unwrap();
        std::thread::sleep(FLOOD.saturating_sub(flood_start.elapsed()));
        stop.store(true, Ordering::Relaxed);
        let sent = flooder.join().unwrap();
        let flood_time = flood_start.elapsed();
        (sent, during, ours, sizes.join().unwrap(), flood_time)
    });
    let cpu = cpu_time(control).saturating_sub(cpu0);
    let m1 = metrics(&t);
    let overflow = udp_rcvbuf_errors(&t.gw) - rcvbuf_before;
    let delta = |name: &str, label: &str| sample(&m1, name, label) - sample(&m0, name, label);
    let refused = delta("wgxdp_handshakes_total", "result=\"rejected\"");
    let cookies = delta("wgxdp_cookie_replies_sent_total", "");
    let lane = delta("wgxdp_cookie_lane_messages_total", "");
    let secs = flood_time.as_secs_f64();
    let (log, log1) = auth_log_size(&t);
    let summary = format!(
        "flood: {sent} datagrams in {flood_time:.1?} ({:.0}/s); control refused {refused} ({:.0}/s) \
         using {cpu:.1?} of CPU, {cookies} cookie replies; {overflow} dropped at control's full \
         socket; {lane} through the cookie lane\nauth log: at most {} + {} bytes, at the end {log} + {log1} (cap {AUTH_LOG_MAX})\n\
         our peers: {}\nestablished peer: {before:.1} Mbit/s before, {during:.1} during",
        sent as f64 / secs,
        refused / secs,
        largest.0,
        largest.1,
        ours.iter()
            .map(|h| h.as_ref().map_or("none in time".into(), |h| format!(
                "{:.0?} ({} initiations, {} cookies)",
                h.took, h.initiations, h.cookies
            )))
            .collect::<Vec<_>>()
            .join(", "),
    );
    eprintln!("{summary}");

    assert!(
        sent as f64 / secs > 10_000.0 && cookies > 1000.0,
        "a flood that put control under load\n{summary}"
    );
    // (a) The log stayed within its cap and the cap was what bounded it: it rotated.
    assert!(
        largest.0 + largest.1 <= AUTH_LOG_MAX && log + log1 <= AUTH_LOG_MAX,
        "the auth log within --auth-log-max\n{summary}"
    );
    assert!(log1 > 0, "the auth log rotated\n{summary}");
    // (b) Every one answered under load (a cookie first, then the handshake) within a second.
    assert!(!ours.is_empty());

    for h in &ours {
        let h = h
            .as_ref()
            .unwrap_or_else(|| panic!("a peer never completed its handshake\n{summary}"));
        assert!(h.cookies >= 1, "answered with a cookie first\n{summary}");
        assert!(
            h.took <= Duration::from_secs(1),
            "a legitimate handshake within 1 s\n{summary}"
        );
    }
    // Their retries, carrying the cookie, came through the cookie lane; the flood (a replayed
    // initiation with a zero mac2) did not. (A little room above: another handshake that got
    // a cookie during the flood would retry through it too.)
    let retries: u32 = ours.iter().flatten().map(|h| h.initiations - 1).sum();
    assert!(
        lane >= f64::from(retries) && lane <= f64::from(retries) + 10.0,
        "the retries, and only they, through the cookie lane\n{summary}"
    );
    // (c) The data path does not notice.
    assert!(before > 50.0, "{summary}");
    assert!(
        during >= 0.9 * before,
        "established traffic keeps 90% of its rate\n{summary}"
    );
}
