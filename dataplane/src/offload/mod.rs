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
pub mod follower;
pub mod table;
pub mod tuple;

use crate::xdp::FlowMap;
use conntrack::Message;
use contract::Region;
use follower::{Follower, Kernel};
use netlink_sys::Socket;
use std::collections::HashSet;
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use table::Writer;
use tuple::Tuple;

pub use follower::{MAX_FLOWS, MAX_FLOWS_PER_CLIENT};

/// How often the kernel's entries of flows the workers carried are given a new timeout, and
/// the host's own addresses read again.
const REFRESH: Duration = Duration::from_secs(2);

/// The kernel as the offload thread talks to it: the ctnetlink socket and the WAN map.
struct Netfilter {
    sock: Socket,
    map: FlowMap,
    seq: u32,
}

impl Kernel for Netfilter {
    fn refresh(&mut self, orig: &Tuple, timeout_s: u32) {
        self.seq = self.seq.wrapping_add(1);
        let _ = self
            .sock
            .send(&conntrack::refresh_request(orig, timeout_s, self.seq), 0);
    }

    fn steer(&mut self, key: ebpf::abi::Flow) -> bool {
        self.map.insert(key).is_ok()
    }

    fn unsteer(&mut self, key: &ebpf::abi::Flow) {
        self.map.remove(key);
    }

    fn unsteer_all(&mut self) {
        for k in self.map.keys() {
            self.map.remove(&k);
        }
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

/// This host's addresses (flows to them are the gateway's own: never offloaded).
fn local_addrs() -> HashSet<IpAddr> {
    crate::neigh::local_addrs()
        .unwrap_or_default()
        .into_iter()
        .collect()
}

/// The addresses of interface `name` (none if it is gone).
fn addrs_of(name: &str) -> HashSet<IpAddr> {
    crate::neigh::addrs(Some(name)).unwrap_or_default()
}

/// Starts the offload thread: it follows connection tracking until `stop` is set, keeping the
/// workers' table (`writer`) and the programs' map in step with the flows it offloads. `lan`
/// names the port that carries plaintext for peers (a one-armed gateway's only one).
pub fn spawn(
    writer: Writer,
    map: FlowMap,
    region: Arc<Region>,
    lan: String,
    stop: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let sock = open_socket()?;
    let mut reader = allowedips::Reader::attach(region.clone())
        .map_err(|e| std::io::Error::other(format!("allowed IPs: {e}")))?;
    let clients = Box::new(move |a: IpAddr| reader.pin().lookup(a));
    let mut f = Follower::new(writer, clients, follower::Timeouts::read(), region);
    let mut kernel = Netfilter { sock, map, seq: 0 };
    std::thread::Builder::new()
        .name("wgxdp-offload".into())
        .spawn(move || follow(&mut f, &mut kernel, &lan, &stop))
}

fn follow(f: &mut Follower, k: &mut Netfilter, lan: &str, stop: &AtomicBool) {
    let mut buf = vec![0u8; 1 << 16];
    f.set_local(local_addrs());
    f.set_lan(addrs_of(lan));
    let _ = k.sock.send(&conntrack::dump_request(0), 0);
    let mut last_refresh = std::time::Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let mut pfd = [nix::poll::PollFd::new(
            k.sock.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        let _ = nix::poll::poll(&mut pfd, nix::poll::PollTimeout::from(200u16));
        loop {
            match k.sock.recv(&mut &mut buf[..], 0) {
                Ok(n) => {
                    let conns: Vec<_> = conntrack::messages(&buf[..n])
                        .filter_map(|m| match m {
                            Message::Conn(c) => Some(c),
                            _ => None,
                        })
                        .collect();
                    for c in conns {
                        f.on(&c, k);
                    }
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    // Events were lost: what the table holds may be stale. Start again from
                    // a full listing.
                    f.resync(k);
                    let _ = k.sock.send(&conntrack::dump_request(0), 0);
                }
                Err(_) => break,
            }
        }
        if last_refresh.elapsed() >= REFRESH {
            last_refresh = std::time::Instant::now();
            f.set_local(local_addrs());
            f.set_lan(addrs_of(lan));
            f.refresh_used(k);
        }
    }
    f.clear(k);
}
