//! Flow offload (docs/egress.md): established flows that the kernel routes, filters and
//! translates between the peers and the internet are carried by the workers themselves.
//!
//! The kernel decides: a flow's first packets take its path (through wg0, its rules and its
//! NAT), and once connection tracking has the flow established, the offload thread
//! ([`conntrack`] events) enters the flow's two tuples in the [`table`] the workers read and
//! its reply tuple in the WAN program's map. The workers then rewrite its packets as conntrack
//! would ([`tuple`]) and send them themselves, both ways. Packets that must reach connection
//! tracking still take the kernel's path (TCP SYN, FIN and RST, fragments, oversized packets,
//! ICMP errors), and the thread keeps the kernel's entry alive while the workers carry the
//! flow.

pub mod conntrack;
pub mod table;
pub mod tuple;

use crate::xdp::FlowMap;
use conntrack::{Conn, Kind, Message};
use contract::Region;
use netlink_sys::Socket;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use table::Writer;
use tuple::{Tuple, TCP};

/// Flows offloaded at most (each two table entries and one WAN map entry): past it, new flows
/// stay on the kernel's path.
pub const MAX_FLOWS: usize = 65_536;
/// Flows one client (one tunnel address) may have offloaded: no client fills the table.
pub const MAX_FLOWS_PER_CLIENT: usize = 4_096;
/// How often the kernel's entries of flows the workers carried are given a new timeout.
const REFRESH: Duration = Duration::from_secs(2);

/// One offloaded flow, as the thread keeps it.
#[derive(Debug)]
struct Flow {
    reply: Tuple,
    slots: [usize; 2],
    /// The workers' last use already reported to the kernel.
    refreshed_ns: u64,
}

/// The offload thread's state: the flows, the table's writer, the WAN map, and what it asks
/// of the kernel.
struct Follower {
    writer: Writer,
    map: FlowMap,
    flows: HashMap<Tuple, Flow>,
    per_client: HashMap<Ipv4Addr, usize>,
    reader: allowedips::Reader,
    region: Arc<Region>,
    timeouts: Timeouts,
    seq: u32,
}

/// The kernel's timeouts for established flows (its sysctls), given again to flows the
/// workers carry.
#[derive(Debug, Clone, Copy)]
struct Timeouts {
    tcp: u32,
    udp: u32,
}

impl Timeouts {
    fn read() -> Self {
        let sysctl = |name: &str, default: u32| {
            std::fs::read_to_string(format!("/proc/sys/net/netfilter/{name}"))
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(default)
        };
        Self {
            tcp: sysctl("nf_conntrack_tcp_timeout_established", 432_000),
            udp: sysctl("nf_conntrack_udp_timeout_stream", 120),
        }
    }
}

impl Follower {
    /// Whether `conn` is a client's flow that the workers may carry now.
    fn wanted(&mut self, conn: &Conn) -> bool {
        if conn.status & conntrack::STATUS_DYING != 0
            || conn.status & conntrack::STATUS_SEEN_REPLY == 0
        {
            return false;
        }
        if conn.orig.proto == TCP {
            match conn.tcp_state {
                Some(s) if s != conntrack::TCP_ESTABLISHED => return false,
                // A change that does not name the state keeps what the flow had.
                None if !self.flows.contains_key(&conn.orig) => return false,
                _ => {}
            }
        }
        // The original direction must come from a peer (its source in some peer's allowed
        // IPs): only then do its packets reach the workers, and only then may its return
        // packets be taken from the kernel.
        self.reader
            .pin()
            .lookup(IpAddr::V4(conn.orig.src))
            .is_some()
    }

    fn on(&mut self, conn: &Conn, sock: &Socket) {
        if conn.kind == Kind::Destroy || !self.wanted(conn) {
            self.remove(&conn.orig);
            return;
        }
        if let Some(f) = self.flows.get(&conn.orig) {
            if f.reply == conn.reply {
                return;
            }
            // The translation changed (it cannot for a confirmed entry, but a dump after a
            // resync may list a new entry under an old tuple): start again.
            self.remove(&conn.orig);
        }
        self.insert(conn, sock);
    }

    fn insert(&mut self, conn: &Conn, sock: &Socket) {
        let client = conn.orig.src;
        let share = self.per_client.get(&client).copied().unwrap_or(0);
        if self.flows.len() >= MAX_FLOWS || share >= MAX_FLOWS_PER_CLIENT {
            self.region
                .header()
                .offload_refused
                .fetch_add(1, Ordering::Relaxed);
            return;
        }
        let out = self.writer.insert(conn.orig, conn.reply.reversed());
        let ret = self.writer.insert(conn.reply, conn.orig.reversed());
        let key = map_key(&conn.reply);
        let (Ok(a), Ok(b)) = (out, ret) else {
            self.writer.remove(conn.orig);
            self.writer.remove(conn.reply);
            self.region
                .header()
                .offload_refused
                .fetch_add(1, Ordering::Relaxed);
            return;
        };
        if self.map.insert(key).is_err() {
            self.writer.remove(conn.orig);
            self.writer.remove(conn.reply);
            self.region
                .header()
                .offload_refused
                .fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.flows.insert(
            conn.orig,
            Flow {
                reply: conn.reply,
                slots: [a, b],
                refreshed_ns: 0,
            },
        );
        *self.per_client.entry(client).or_default() += 1;
        self.region
            .header()
            .offload_flows
            .store(self.flows.len() as u64, Ordering::Relaxed);
        // TCP: liberal window tracking from now on (see conntrack::refresh_request).
        self.refresh(&conn.orig, sock);
    }

    fn remove(&mut self, orig: &Tuple) {
        let Some(f) = self.flows.remove(orig) else {
            return;
        };
        self.writer.remove(*orig);
        self.writer.remove(f.reply);
        self.map.remove(&map_key(&f.reply));
        if let Some(n) = self.per_client.get_mut(&orig.src) {
            *n -= 1;
            if *n == 0 {
                self.per_client.remove(&orig.src);
            }
        }
        self.region
            .header()
            .offload_flows
            .store(self.flows.len() as u64, Ordering::Relaxed);
    }

    /// Forgets every flow (after the events socket overflowed: a dump follows).
    fn clear(&mut self) {
        let all: Vec<Tuple> = self.flows.keys().copied().collect();
        for t in all {
            self.remove(&t);
        }
        for k in self.map.keys() {
            self.map.remove(&k);
        }
    }

    fn refresh(&mut self, orig: &Tuple, sock: &Socket) {
        let timeout = if orig.proto == TCP {
            self.timeouts.tcp
        } else {
            self.timeouts.udp
        };
        self.seq = self.seq.wrapping_add(1);
        let _ = sock.send(&conntrack::refresh_request(orig, timeout, self.seq), 0);
    }

    /// Gives the kernel's entry of every flow the workers carried since the last time a new
    /// timeout, as their packets would have had they passed through it.
    fn refresh_used(&mut self, sock: &Socket) {
        let mut due = Vec::new();
        for (orig, f) in &mut self.flows {
            let used = f
                .slots
                .iter()
                .map(|&s| self.writer.used_ns(s))
                .max()
                .unwrap_or(0);
            if used > f.refreshed_ns {
                f.refreshed_ns = used;
                due.push(*orig);
            }
        }
        for orig in due {
            self.refresh(&orig, sock);
        }
    }
}

/// The WAN map's key for a reply tuple.
fn map_key(reply: &Tuple) -> ebpf::abi::FlowV4 {
    ebpf::abi::FlowV4 {
        saddr: reply.src.octets(),
        daddr: reply.dst.octets(),
        sport_be: reply.sport.to_be(),
        dport_be: reply.dport.to_be(),
        proto: reply.proto,
        pad: [0; 3],
    }
}

/// The events socket: subscribed to new, changed and destroyed connections, with a large
/// receive buffer (a burst of new flows must not overflow it; if it does, the thread lists
/// everything again).
fn open_socket() -> std::io::Result<Socket> {
    let mut sock = Socket::new(conntrack::NETLINK_NETFILTER)?;
    sock.bind_auto()?;
    for g in [
        conntrack::GROUP_NEW,
        conntrack::GROUP_UPDATE,
        conntrack::GROUP_DESTROY,
    ] {
        sock.add_membership(g)?;
    }
    // SO_RCVBUFFORCE needs CAP_NET_ADMIN (the data path has it); failing, the default stays.
    let _ = nix::sys::socket::setsockopt(
        &sock.as_fd(),
        nix::sys::socket::sockopt::RcvBufForce,
        &(8 << 20),
    );
    sock.set_non_blocking(true)?;
    Ok(sock)
}

/// Starts the offload thread: it follows connection tracking until `stop` is set, keeping the
/// workers' table (`writer`) and the WAN programs' map in step with the flows it offloads.
pub fn spawn(
    writer: Writer,
    map: FlowMap,
    region: Arc<Region>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let sock = open_socket()?;
    let reader = allowedips::Reader::attach(region.clone())
        .map_err(|e| std::io::Error::other(format!("allowed IPs: {e}")))?;
    let mut f = Follower {
        writer,
        map,
        flows: HashMap::new(),
        per_client: HashMap::new(),
        reader,
        region,
        timeouts: Timeouts::read(),
        seq: 0,
    };
    std::thread::Builder::new()
        .name("wgxdp-offload".into())
        .spawn(move || follow(&mut f, &sock, &stop))
}

fn follow(f: &mut Follower, sock: &Socket, stop: &AtomicBool) {
    let mut buf = vec![0u8; 1 << 16];
    let _ = sock.send(&conntrack::dump_request(0), 0);
    let mut last_refresh = std::time::Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let mut pfd = [nix::poll::PollFd::new(
            sock.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        let _ = nix::poll::poll(&mut pfd, nix::poll::PollTimeout::from(200u16));
        loop {
            match sock.recv(&mut &mut buf[..], 0) {
                Ok(n) => {
                    for m in conntrack::messages(&buf[..n]) {
                        if let Message::Conn(c) = m {
                            f.on(&c, sock);
                        }
                    }
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    // Events were lost: what the table holds may be stale. Start again from
                    // a full listing.
                    f.region
                        .header()
                        .offload_resyncs
                        .fetch_add(1, Ordering::Relaxed);
                    f.clear();
                    let _ = sock.send(&conntrack::dump_request(0), 0);
                }
                Err(_) => break,
            }
        }
        if last_refresh.elapsed() >= REFRESH {
            last_refresh = std::time::Instant::now();
            f.refresh_used(sock);
        }
    }
    f.clear();
}
