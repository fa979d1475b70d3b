//! What the offload thread decides, apart from its I/O: which connections the workers carry,
//! the bounds, and when the kernel's entries get a new timeout. It reads connection-tracking
//! messages ([`Conn`]) and acts through a [`Kernel`] (in production the ctnetlink socket and
//! the WAN programs' map; a fake in the tests below).

use super::conntrack::{self, Conn, Kind};
use super::table::Writer;
use super::tuple::{Tuple, ICMP, ICMPV6, TCP};
use contract::Region;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Flows offloaded at most (each two table entries and one WAN map entry): past it, new flows
/// stay on the kernel's path.
pub const MAX_FLOWS: usize = 65_536;
/// Flows one client (one peer, whatever its addresses) may have offloaded: no client fills
/// the table.
pub const MAX_FLOWS_PER_CLIENT: usize = 4_096;

/// What the thread asks of the kernel.
pub trait Kernel {
    /// Gives the connection whose original tuple is `orig` a new timeout (and, for TCP,
    /// liberal window tracking).
    fn refresh(&mut self, orig: &Tuple, timeout_s: u32);
    /// Steers return packets of `key` (a reply tuple) to the workers; false if refused.
    fn steer(&mut self, key: ebpf::abi::Flow) -> bool;
    fn unsteer(&mut self, key: &ebpf::abi::Flow);
    /// Steers nothing any more (whatever an earlier run left).
    fn unsteer_all(&mut self);
}

/// The kernel's timeouts for established flows (its sysctls), given again to flows the
/// workers carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub tcp: u32,
    pub udp: u32,
    pub icmp: u32,
    pub icmpv6: u32,
}

impl Timeouts {
    pub fn read() -> Self {
        let sysctl = |name: &str, default: u32| {
            std::fs::read_to_string(format!("/proc/sys/net/netfilter/{name}"))
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(default)
        };
        Self {
            tcp: sysctl("nf_conntrack_tcp_timeout_established", 432_000),
            udp: sysctl("nf_conntrack_udp_timeout_stream", 120),
            icmp: sysctl("nf_conntrack_icmp_timeout", 30),
            icmpv6: sysctl("nf_conntrack_icmpv6_timeout", 30),
        }
    }
}

/// One offloaded flow, as the thread keeps it.
#[derive(Debug)]
struct Flow {
    reply: Tuple,
    /// The tuple of its packets that arrive from a port (not through the tunnel): the reply
    /// tuple of a client's flow, the original tuple of one a host started towards a client.
    /// The programs' map holds it.
    from_port: Tuple,
    /// The client's peer, whose share of the table the flow takes.
    client: u32,
    slots: [usize; 2],
    /// The workers' last use already reported to the kernel.
    refreshed_ns: u64,
}

/// The peer whose allowed IPs hold an address (a client's), if any.
pub type Clients = Box<dyn FnMut(IpAddr) -> Option<u32> + Send>;

pub struct Follower {
    writer: Writer,
    flows: HashMap<Tuple, Flow>,
    per_client: HashMap<u32, usize>,
    clients: Clients,
    /// This host's own addresses: flows to them are the gateway's (delivered through wg0,
    /// never by the offload), so they are not entered.
    local: HashSet<IpAddr>,
    /// The LAN port's own addresses (a two-armed gateway's): a client's flow translated to one
    /// of them leaves by the LAN port through the operator's NAT.
    lan: HashSet<IpAddr>,
    region: Arc<Region>,
    timeouts: Timeouts,
    max_flows: usize,
    max_per_client: usize,
}

impl std::fmt::Debug for Follower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Follower")
            .field("flows", &self.flows.len())
            .finish_non_exhaustive()
    }
}

impl Follower {
    pub fn new(writer: Writer, clients: Clients, timeouts: Timeouts, region: Arc<Region>) -> Self {
        Self {
            writer,
            flows: HashMap::new(),
            per_client: HashMap::new(),
            clients,
            local: HashSet::new(),
            lan: HashSet::new(),
            region,
            timeouts,
            max_flows: MAX_FLOWS,
            max_per_client: MAX_FLOWS_PER_CLIENT,
        }
    }

    pub fn set_local(&mut self, local: HashSet<IpAddr>) {
        self.local = local;
    }

    pub fn set_lan(&mut self, lan: HashSet<IpAddr>) {
        self.lan = lan;
    }

    /// Whether the kernel translated a client's flow to the LAN port's address (MASQUERADE
    /// towards the LAN, as the guides do to reach a home network): the first packet to each
    /// LAN host takes the kernel's path (its neighbour is not known yet), so the first such
    /// flow tells. Workers then send LAN traffic through the kernel too ([`Writer::set_lan_translated`]).
    fn note_lan_translation(&mut self, conn: &Conn) {
        if self.writer.table().lan_translated()
            || conn.kind == Kind::Destroy
            || !self.lan.contains(&conn.reply.dst)
            || (self.clients)(conn.orig.src).is_none()
        {
            return;
        }
        self.writer.set_lan_translated();
        tracing::info!(
            "the kernel translates clients' traffic out of the LAN port ({} to {} leaves as {}): \
             LAN hosts are reached through the kernel, and their established flows offloaded",
            conn.orig.src,
            conn.orig.dst,
            conn.reply.dst
        );
    }

    /// The client's peer and the tuple that arrives from a port, if `conn` is a flow between
    /// a client and a host beyond a port that the workers may carry now.
    fn wanted(&mut self, conn: &Conn) -> Option<(u32, Tuple)> {
        if conn.status & conntrack::STATUS_DYING != 0
            || conn.status & conntrack::STATUS_SEEN_REPLY == 0
        {
            return None;
        }
        if conn.orig.proto == TCP {
            match conn.tcp_state {
                Some(s) if s != conntrack::TCP_ESTABLISHED => return None,
                // A change that does not name the state keeps what the flow had.
                None if !self.flows.contains_key(&conn.orig) => return None,
                _ => {}
            }
        }
        // An echo flow is carried from its request's side: the reply tuple must answer the
        // original (a flow conntrack saw start with a reply is the kernel's).
        if conn.orig.is_echo() && conn.orig.reversed().dport != conn.reply.dport {
            return None;
        }
        // One end must be a client (in some peer's allowed IPs): only then do that end's
        // packets reach the workers, and only then may the other end's be taken from the
        // kernel. The other end must be a host beyond a port: not the gateway itself (its own
        // traffic and services go through wg0), and not another client (the kernel hairpins
        // that: no port carries it).
        let local = |a: &IpAddr| self.local.contains(a);
        let (o, r) = (&conn.orig, &conn.reply);
        match ((self.clients)(o.src), (self.clients)(r.src)) {
            // A client's flow: its answers arrive from a port, to the address the kernel's NAT
            // chose (often the gateway's own).
            (Some(client), None) if !local(&o.dst) && !local(&r.src) => Some((client, *r)),
            // A host's flow to a client (a LAN host, or a port the operator forwards: its
            // original destination may be the gateway's).
            (None, Some(client)) if !local(&o.src) && !local(&r.dst) => Some((client, *o)),
            _ => None,
        }
    }

    /// Follows one connection-tracking message.
    pub fn on(&mut self, conn: &Conn, k: &mut impl Kernel) {
        self.note_lan_translation(conn);
        let client = match conn.kind {
            Kind::Destroy => None,
            _ => self.wanted(conn),
        };
        let Some((client, from_port)) = client else {
            self.remove(&conn.orig, k);
            return;
        };
        if let Some(f) = self.flows.get(&conn.orig) {
            if f.reply == conn.reply {
                return;
            }
            // Another translation under the same original tuple (a dump after a resync may
            // list a new connection): start again.
            self.remove(&conn.orig, k);
        }
        self.insert(conn, client, from_port, k);
    }

    fn refused(&self) {
        self.region
            .header()
            .offload_refused
            .fetch_add(1, Ordering::Relaxed);
    }

    fn count(&self) {
        self.region
            .header()
            .offload_flows
            .store(self.flows.len() as u64, Ordering::Relaxed);
    }

    fn insert(&mut self, conn: &Conn, client: u32, from_port: Tuple, k: &mut impl Kernel) {
        let share = self.per_client.get(&client).copied().unwrap_or(0);
        if self.flows.len() >= self.max_flows || share >= self.max_per_client {
            self.refused();
            return;
        }
        let out = self.writer.insert(conn.orig, conn.reply.reversed());
        let ret = self.writer.insert(conn.reply, conn.orig.reversed());
        let slots = match (out, ret) {
            (Ok(a), Ok(b)) if k.steer(map_key(&from_port)) => [a, b],
            _ => {
                self.writer.remove(conn.orig);
                self.writer.remove(conn.reply);
                self.refused();
                return;
            }
        };
        self.flows.insert(
            conn.orig,
            Flow {
                reply: conn.reply,
                from_port,
                client,
                slots,
                refreshed_ns: 0,
            },
        );
        *self.per_client.entry(client).or_default() += 1;
        self.count();
        // TCP: liberal window tracking from now on (see conntrack::refresh_request).
        self.refresh(&conn.orig, k);
    }

    fn remove(&mut self, orig: &Tuple, k: &mut impl Kernel) {
        let Some(f) = self.flows.remove(orig) else {
            return;
        };
        self.writer.remove(*orig);
        self.writer.remove(f.reply);
        k.unsteer(&map_key(&f.from_port));
        if let Some(n) = self.per_client.get_mut(&f.client) {
            *n -= 1;
            if *n == 0 {
                self.per_client.remove(&f.client);
            }
        }
        self.count();
    }

    /// Forgets every flow (the thread stops).
    pub fn clear(&mut self, k: &mut impl Kernel) {
        let all: Vec<Tuple> = self.flows.keys().copied().collect();
        for t in all {
            self.remove(&t, k);
        }
        k.unsteer_all();
    }

    /// Forgets every flow because events were lost (a full listing follows), and counts it.
    pub fn resync(&mut self, k: &mut impl Kernel) {
        self.clear(k);
        self.region
            .header()
            .offload_resyncs
            .fetch_add(1, Ordering::Relaxed);
    }

    fn refresh(&self, orig: &Tuple, k: &mut impl Kernel) {
        let timeout = match orig.proto {
            TCP => self.timeouts.tcp,
            ICMP => self.timeouts.icmp,
            ICMPV6 => self.timeouts.icmpv6,
            _ => self.timeouts.udp,
        };
        k.refresh(orig, timeout);
    }

    /// Gives the kernel's entry of every flow the workers carried since the last time a new
    /// timeout, as their packets would have had they passed through it. O(flows), every
    /// couple of seconds.
    pub fn refresh_used(&mut self, k: &mut impl Kernel) {
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
            self.refresh(&orig, k);
        }
    }
}

/// The programs' map key for a tuple that arrives from a port.
fn map_key(t: &Tuple) -> ebpf::abi::Flow {
    let (family, saddr, daddr) = match (t.src, t.dst) {
        (IpAddr::V6(s), IpAddr::V6(d)) => (6, s.octets(), d.octets()),
        _ => {
            let octets = |a: IpAddr| {
                let mut o = [0u8; 16];
                if let IpAddr::V4(v4) = a {
                    o[..4].copy_from_slice(&v4.octets());
                }
                o
            };
            (4, octets(t.src), octets(t.dst))
        }
    };
    ebpf::abi::Flow {
        saddr,
        daddr,
        sport_be: t.sport.to_be(),
        dport_be: t.dport.to_be(),
        proto: t.proto,
        family,
        pad: [0; 2],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::offload::table::FlowTable;
    use crate::offload::tuple::UDP;
    use contract::layout::Layout;

    /// The kernel as the tests see it: what is steered, what was refreshed.
    #[derive(Default)]
    struct FakeKernel {
        steered: HashSet<ebpf::abi::Flow>,
        refreshed: Vec<(Tuple, u32)>,
        refuse: bool,
    }

    impl Kernel for FakeKernel {
        fn refresh(&mut self, orig: &Tuple, timeout_s: u32) {
            self.refreshed.push((*orig, timeout_s));
        }
        fn steer(&mut self, key: ebpf::abi::Flow) -> bool {
            !self.refuse && self.steered.insert(key)
        }
        fn unsteer(&mut self, key: &ebpf::abi::Flow) {
            self.steered.remove(key);
        }
        fn unsteer_all(&mut self) {
            self.steered.clear();
        }
    }

    use std::net::{Ipv4Addr, Ipv6Addr};

    const GW: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
    const INET: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 250);
    /// IPv6: the clients are 2001:2:0:19::/64 (peer = the last byte), the gateway and the
    /// internet host in 2001:2:0:18::/64.
    const GW6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0x18, 0, 0, 0, 1);
    const INET6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0x18, 0, 0, 0, 0xfa);

    fn region(name: &str) -> Arc<Region> {
        let path =
            std::env::temp_dir().join(format!("wgxdp-follower-{}-{name}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let r = Region::create(
            &path,
            Layout {
                sessions: 4,
                peers: 2,
                prefixes: 4,
                workers: 1,
            },
        )
        .unwrap();
        r.remove().unwrap();
        Arc::new(r)
    }

    /// Clients are 198.19.0.0/24 and 2001:2:0:19::/64; the peer is the address's last byte.
    fn follower(name: &str) -> (Follower, Arc<FlowTable>) {
        let table = FlowTable::new(64);
        let clients: Clients = Box::new(|a: IpAddr| match a {
            IpAddr::V4(v4) => (v4.octets()[..3] == [198, 19, 0]).then_some(v4.octets()[3].into()),
            IpAddr::V6(v6) => {
                (v6.segments()[..4] == [0x2001, 2, 0, 0x19]).then_some(v6.octets()[15].into())
            }
        });
        let mut f = Follower::new(
            Writer::new(table.clone()),
            clients,
            Timeouts {
                tcp: 300,
                udp: 120,
                icmp: 30,
                icmpv6: 31,
            },
            region(name),
        );
        f.set_local(
            [GW.into(), Ipv4Addr::new(198, 19, 0, 1).into(), GW6.into()]
                .into_iter()
                .collect(),
        );
        (f, table)
    }

    fn conn(kind: Kind, proto: u8, client: u8, port: u16, status: u32, tcp: Option<u8>) -> Conn {
        let orig = Tuple {
            proto,
            src: Ipv4Addr::new(198, 19, 0, client).into(),
            dst: INET.into(),
            sport: port,
            dport: 443,
        };
        Conn {
            kind,
            orig,
            reply: Tuple {
                proto,
                src: INET.into(),
                dst: GW.into(),
                sport: 443,
                // Conntrack keeps reply tuples unique: a port per client and flow.
                dport: 60000 + u16::from(client) * 100 + port,
            },
            status,
            tcp_state: tcp,
        }
    }

    const SEEN: u32 = conntrack::STATUS_SEEN_REPLY;

    #[test]
    fn a_tcp_flow_is_carried_while_established_and_let_go_when_it_closes() {
        let (mut f, table) = follower("tcp");
        let mut k = FakeKernel::default();
        // SYN sent, SYN received: not yet.
        f.on(&conn(Kind::New, TCP, 2, 1, 0, Some(1)), &mut k);
        f.on(&conn(Kind::Update, TCP, 2, 1, SEEN, Some(2)), &mut k);
        assert!(k.steered.is_empty());
        let est = conn(
            Kind::Update,
            TCP,
            2,
            1,
            SEEN,
            Some(conntrack::TCP_ESTABLISHED),
        );
        f.on(&est, &mut k);
        assert_eq!(k.steered.len(), 1);
        let hit = table.lookup(&est.orig).unwrap();
        assert_eq!(
            hit.to,
            est.reply.reversed(),
            "rewritten as conntrack translated it"
        );
        assert_eq!(table.lookup(&est.reply).unwrap().to, est.orig.reversed());
        assert_eq!(k.refreshed, [(est.orig, 300)], "made liberal at once");
        // A status change that does not name the state keeps it.
        f.on(&conn(Kind::Update, TCP, 2, 1, SEEN | 4, None), &mut k);
        assert_eq!(k.steered.len(), 1);
        // FIN seen by the kernel: FIN_WAIT. Let go, both directions.
        f.on(&conn(Kind::Update, TCP, 2, 1, SEEN, Some(4)), &mut k);
        assert!(k.steered.is_empty());
        assert!(table.lookup(&est.orig).is_none() && table.lookup(&est.reply).is_none());
    }

    #[test]
    fn only_answered_client_flows_to_elsewhere_are_taken() {
        let (mut f, table) = follower("who");
        let mut k = FakeKernel::default();
        // UDP: once answered.
        f.on(&conn(Kind::New, UDP, 2, 1, 0, None), &mut k);
        assert!(k.steered.is_empty());
        let udp = conn(Kind::Update, UDP, 2, 1, SEEN, None);
        f.on(&udp, &mut k);
        assert!(table.lookup(&udp.orig).is_some());
        // Not a client's (an internet host's connection to the gateway, or the gateway's own).
        let mut stranger = conn(Kind::Update, UDP, 2, 2, SEEN, None);
        stranger.orig.src = Ipv4Addr::new(198, 18, 7, 7).into();
        f.on(&stranger, &mut k);
        // A client's, to the gateway itself (its DNS at the tunnel address).
        let mut own = conn(Kind::Update, UDP, 2, 3, SEEN, None);
        own.orig.dst = Ipv4Addr::new(198, 19, 0, 1).into();
        f.on(&own, &mut k);
        // Dying.
        f.on(
            &conn(
                Kind::Update,
                UDP,
                2,
                4,
                SEEN | conntrack::STATUS_DYING,
                None,
            ),
            &mut k,
        );
        assert_eq!(k.steered.len(), 1);
        // Destroyed.
        f.on(
            &Conn {
                kind: Kind::Destroy,
                ..udp
            },
            &mut k,
        );
        assert!(k.steered.is_empty() && table.lookup(&udp.orig).is_none());
    }

    #[test]
    fn the_bounds_hold_and_refusals_are_counted() {
        let (mut f, _) = follower("bounds");
        f.max_flows = 6;
        f.max_per_client = 4;
        let mut k = FakeKernel::default();
        for port in 1..=6 {
            f.on(&conn(Kind::Update, UDP, 2, port, SEEN, None), &mut k);
        }
        assert_eq!(k.steered.len(), 4, "one client's share");
        for port in 1..=3 {
            f.on(&conn(Kind::Update, UDP, 3, port, SEEN, None), &mut k);
        }
        assert_eq!(k.steered.len(), 6, "the table's bound");
        let h = f.region.header();
        assert_eq!(h.offload_refused.load(Ordering::Relaxed), 3);
        assert_eq!(h.offload_flows.load(Ordering::Relaxed), 6);
        // The kernel refusing the map entry leaves nothing behind in the table.
        let (mut g, table) = follower("refuse");
        let mut k = FakeKernel {
            refuse: true,
            ..FakeKernel::default()
        };
        let c = conn(Kind::Update, UDP, 2, 1, SEEN, None);
        g.on(&c, &mut k);
        assert!(table.lookup(&c.orig).is_none() && table.lookup(&c.reply).is_none());
        // A resync forgets everything.
        let mut k = FakeKernel::default();
        f.resync(&mut k);
        assert_eq!(f.region.header().offload_flows.load(Ordering::Relaxed), 0);
        assert!(f.flows.is_empty() && f.per_client.is_empty());
    }

    #[test]
    fn only_flows_the_workers_carried_are_refreshed() {
        let (mut f, table) = follower("refresh");
        let mut k = FakeKernel::default();
        let (a, b) = (
            conn(Kind::Update, UDP, 2, 1, SEEN, None),
            conn(Kind::Update, UDP, 2, 2, SEEN, None),
        );
        f.on(&a, &mut k);
        f.on(&b, &mut k);
        k.refreshed.clear();
        f.refresh_used(&mut k);
        assert!(k.refreshed.is_empty(), "nothing carried yet");
        // A worker carries a's return packet.
        let hit = table.lookup(&a.reply).unwrap();
        table.touch(hit.slot, 7_000_000_000);
        f.refresh_used(&mut k);
        assert_eq!(k.refreshed, [(a.orig, 120)]);
        // Not again until used again.
        f.refresh_used(&mut k);
        assert_eq!(k.refreshed.len(), 1);
    }

    /// An IPv6 flow (NAT66 here: the reply comes back to the gateway's address) and echo
    /// flows of both families are carried as TCP and UDP are; their map keys name the family.
    #[test]
    fn ipv6_and_echo_flows_are_carried_too() {
        let (mut f, table) = follower("v6");
        let mut k = FakeKernel::default();
        let client6 = Ipv6Addr::new(0x2001, 2, 0, 0x19, 0, 0, 0, 2);
        let v6 = Conn {
            kind: Kind::Update,
            orig: Tuple {
                proto: UDP,
                src: client6.into(),
                dst: INET6.into(),
                sport: 5353,
                dport: 53,
            },
            reply: Tuple {
                proto: UDP,
                src: INET6.into(),
                dst: GW6.into(),
                sport: 53,
                dport: 61000,
            },
            status: SEEN,
            tcp_state: None,
        };
        f.on(&v6, &mut k);
        assert_eq!(table.lookup(&v6.orig).unwrap().to, v6.reply.reversed());
        assert_eq!(table.lookup(&v6.reply).unwrap().to, v6.orig.reversed());
        let key = map_key(&v6.reply);
        assert_eq!(
            (key.family, key.saddr, key.daddr),
            (6, INET6.octets(), GW6.octets())
        );
        assert!(k.steered.contains(&key));
        // Ping through MASQUERADE: identifier 7 becomes 9; the reply tuple is the echo
        // reply's. Refreshed with the ICMP timeout.
        let ping = Conn {
            kind: Kind::Update,
            orig: Tuple {
                proto: ICMP,
                src: Ipv4Addr::new(198, 19, 0, 3).into(),
                dst: INET.into(),
                sport: 7,
                dport: 8,
            },
            reply: Tuple {
                proto: ICMP,
                src: INET.into(),
                dst: GW.into(),
                sport: 9,
                dport: 0,
            },
            status: SEEN,
            tcp_state: None,
        };
        k.refreshed.clear();
        f.on(&ping, &mut k);
        assert_eq!(table.lookup(&ping.reply).unwrap().to, ping.orig.reversed());
        assert_eq!(k.refreshed, [(ping.orig, 30)]);
        let key = map_key(&ping.reply);
        assert_eq!(
            (key.family, key.sport_be, key.dport_be, &key.saddr[..4]),
            (4, 9u16.to_be(), 0u16.to_be(), &INET.octets()[..])
        );
        assert_eq!(key.saddr[4..], [0; 12]);
        // ICMPv6 echo too.
        let ping6 = Conn {
            orig: Tuple {
                proto: ICMPV6,
                dport: 128,
                ..v6.orig
            },
            reply: Tuple {
                proto: ICMPV6,
                sport: 5353,
                dport: 129,
                ..v6.reply
            },
            ..v6
        };
        f.on(&ping6, &mut k);
        assert!(table.lookup(&ping6.reply).is_some());
        assert_eq!(
            k.refreshed.last(),
            Some(&(ping6.orig, 31)),
            "ICMPv6's timeout"
        );
        assert_eq!(k.steered.len(), 3);
    }

    /// A client's share is its peer's, whatever addresses it uses (an IPv6 client has a
    /// whole prefix to choose sources from).
    #[test]
    fn a_peers_share_counts_all_its_addresses() {
        let (mut f, _) = follower("share");
        f.max_per_client = 4;
        let mut k = FakeKernel::default();
        for n in 0..8u16 {
            let src = Ipv6Addr::new(0x2001, 2, 0, 0x19, n, 0, 0, 2);
            let c = Conn {
                kind: Kind::Update,
                orig: Tuple {
                    proto: UDP,
                    src: src.into(),
                    dst: INET6.into(),
                    sport: 1000,
                    dport: 53,
                },
                reply: Tuple {
                    proto: UDP,
                    src: INET6.into(),
                    dst: src.into(),
                    sport: 53,
                    dport: 1000,
                },
                status: SEEN,
                tcp_state: None,
            };
            f.on(&c, &mut k);
        }
        assert_eq!(k.steered.len(), 4, "peer 2's share, over 8 addresses");
    }

    /// A client's flow translated to the LAN port's address tells that the operator NATs
    /// towards the LAN: the table says so from then on. A translation to another address (the
    /// WAN's) and a stranger's flow do not.
    #[test]
    fn a_client_flow_translated_to_the_lan_address_marks_the_lan_translated() {
        let (mut f, table) = follower("lan-nat");
        let lan: IpAddr = Ipv4Addr::new(198, 18, 1, 1).into();
        f.set_lan([lan].into_iter().collect());
        let mut k = FakeKernel::default();
        let new = |client: u8, reply_dst: IpAddr| {
            let mut c = conn(Kind::New, UDP, client, 1, 0, None);
            c.reply.dst = reply_dst;
            c
        };
        f.on(&new(2, GW.into()), &mut k);
        let mut stranger = new(2, lan);
        stranger.orig.src = Ipv4Addr::new(198, 18, 7, 7).into();
        f.on(&stranger, &mut k);
        assert!(!table.lan_translated());
        f.on(&new(3, lan), &mut k);
        assert!(table.lan_translated());
    }

    /// A flow a host beyond a port starts towards a client (a LAN host's, or a forwarded
    /// port's) is carried too: its original packets arrive from the port, so those are the
    /// ones steered. A flow between two clients is the kernel's (no port carries it).
    #[test]
    fn flows_towards_clients_are_steered_by_their_original_tuple() {
        let (mut f, table) = follower("towards");
        let mut k = FakeKernel::default();
        let lan_host: IpAddr = Ipv4Addr::new(198, 18, 1, 9).into();
        let client: IpAddr = Ipv4Addr::new(198, 19, 0, 2).into();
        let orig = Tuple {
            proto: UDP,
            src: lan_host,
            dst: client,
            sport: 5000,
            dport: 53,
        };
        let towards = Conn {
            kind: Kind::Update,
            orig,
            reply: orig.reversed(),
            status: SEEN,
            tcp_state: None,
        };
        f.on(&towards, &mut k);
        assert_eq!(k.steered, [map_key(&orig)].into_iter().collect());
        assert_eq!(table.lookup(&orig).unwrap().to, orig);
        assert_eq!(table.lookup(&orig.reversed()).unwrap().to, orig.reversed());
        f.on(
            &Conn {
                kind: Kind::Destroy,
                ..towards
            },
            &mut k,
        );
        assert!(k.steered.is_empty() && table.lookup(&orig).is_none());
        // Client to client, and a client's flow to the gateway's own address.
        let between = Tuple {
            src: Ipv4Addr::new(198, 19, 0, 3).into(),
            ..orig
        };
        f.on(
            &Conn {
                orig: between,
                reply: between.reversed(),
                ..towards
            },
            &mut k,
        );
        let own = Tuple {
            src: client,
            dst: Ipv4Addr::new(198, 19, 0, 1).into(),
            ..orig
        };
        f.on(
            &Conn {
                orig: own,
                reply: own.reversed(),
                ..towards
            },
            &mut k,
        );
        assert!(k.steered.is_empty());
    }
}
