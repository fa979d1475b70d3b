//! Next-hop MAC addresses from the kernel's route and neighbour tables (netlink), never from
//! configuration (design §8).
//!
//! A resolver thread owns two netlink sockets: one for requests, one subscribed to the
//! kernel's neighbour, route and address events. It keeps a snapshot of (destination → next
//! hop) from RTM_GETROUTE answers and of (next hop → MAC) from the neighbour table, and
//! publishes it with an atomic pointer swap when it changed. Nothing is polled: the neighbour
//! table is dumped once at start, then followed event by event; a new destination is resolved
//! when a worker first asks for it, and every known one again when a route changes (at most
//! once per [`ROUTE_SETTLE`], however fast routes churn); the host's own addresses are read
//! again when an address event says they changed. Lost events (the socket overflowed) mean a
//! full reread. Workers load the snapshot once per batch (lock-free) and, on a miss, ask the
//! resolver to look the destination up and hand that packet to the kernel, which resolves the
//! neighbour itself; the event that follows teaches the resolver the entry. The snapshot also
//! holds this host's own addresses: decrypted packets for them go to the gateway's own
//! interface.

use arc_swap::ArcSwap;
use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage, RouteType};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Duration;

/// How long the resolver sleeps at most between looks at its event socket and the workers'
/// requests: how late an event is applied, at worst.
pub const WAKE: Duration = Duration::from_millis(20);
/// Route changes come in bursts (an interface going down withdraws all its routes); every
/// known destination is resolved again at most this often.
pub const ROUTE_SETTLE: Duration = Duration::from_millis(200);
/// How often destinations nobody asked for lately are forgotten (in memory, no syscall).
pub const EXPIRE_EVERY: Duration = Duration::from_secs(5);

/// Where the kernel's FIB sends a destination: the neighbour whose MAC to use (a gateway, or
/// the destination itself if on-link) and the interface it leaves by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hop {
    pub via: IpAddr,
    pub oif: u32,
}

/// What workers read.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    /// Destination → its unicast route's next hop (destinations with no unicast route, such
    /// as broadcast or local ones, have none: the kernel's stack decides for them).
    pub next_hop: crate::FastMap<IpAddr, Hop>,
    /// (interface index, neighbour) → MAC: a neighbour is per interface.
    pub mac: crate::FastMap<(u32, IpAddr), [u8; 6]>,
    /// This host's own addresses, on every interface (wg0's included): a decrypted packet
    /// for one of them is delivered through the gateway's own interface, not forwarded.
    /// Re-read on every address event, so an address added by `ip address add` (wg-quick's
    /// step, or an operator's) counts within [`WAKE`].
    pub local: crate::FastSet<IpAddr>,
}

impl Snapshot {
    /// The Ethernet destination for `dst` if the FIB sends it out of interface `oif` (the
    /// one the caller transmits on) and the next hop's MAC is known. A destination the FIB
    /// sends elsewhere gets none: the frame must not leave by an interface the route does
    /// not name (with the wrong neighbour's MAC, plaintext would be flooded to a segment it
    /// was never meant for).
    pub fn lookup(&self, dst: IpAddr, oif: u32) -> Option<[u8; 6]> {
        let hop = self.next_hop.get(&dst).filter(|h| h.oif == oif)?;
        self.mac.get(&(oif, hop.via)).copied()
    }

    /// Whether `dst` is one of this host's own addresses.
    pub fn is_local(&self, dst: IpAddr) -> bool {
        self.local.contains(&dst)
    }
}

/// This host's addresses, on every interface of the calling thread's namespace.
pub fn local_addrs() -> std::io::Result<crate::FastSet<IpAddr>> {
    addrs(None)
}

/// The addresses of interface `only` (or of every interface, for `None`).
pub fn addrs<C: FromIterator<IpAddr>>(only: Option<&str>) -> std::io::Result<C> {
    Ok(nix::ifaddrs::getifaddrs()
        .map_err(std::io::Error::from)?
        .filter(|a| only.is_none_or(|n| a.interface_name == n))
        .filter_map(|a| {
            a.address.and_then(|s| {
                s.as_sockaddr_in()
                    .map(|x| IpAddr::V4(x.ip()))
                    .or_else(|| s.as_sockaddr_in6().map(|x| IpAddr::V6(x.ip())))
            })
        })
        .collect())
}

/// The shared handle: the published snapshot and the request queue.
#[derive(Debug, Clone)]
pub struct Neighbours {
    snapshot: Arc<ArcSwap<Snapshot>>,
    requests: SyncSender<IpAddr>,
}

impl Neighbours {
    /// A handle on a fixed snapshot with no resolver behind it (the worker's unit tests, and
    /// links whose kernel resolves next hops itself): requests go nowhere.
    pub fn fixed(snapshot: Snapshot) -> Self {
        let (requests, _) = std::sync::mpsc::sync_channel(1);
        Self {
            snapshot: Arc::new(ArcSwap::from_pointee(snapshot)),
            requests,
        }
    }

    /// [`Neighbours::fixed`], with the requests it receives readable (tests).
    pub fn recording(snapshot: Snapshot) -> (Self, Receiver<IpAddr>) {
        let (requests, rx) = std::sync::mpsc::sync_channel(64);
        (
            Self {
                snapshot: Arc::new(ArcSwap::from_pointee(snapshot)),
                requests,
            },
            rx,
        )
    }

    pub fn load(&self) -> arc_swap::Guard<Arc<Snapshot>> {
        self.snapshot.load()
    }

    /// Asks the resolver to learn `dst`. Never blocks; a full queue drops the request (the
    /// next miss asks again).
    pub fn request(&self, dst: IpAddr) {
        match self.requests.try_send(dst) {
            Ok(()) | Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

/// Starts the resolver thread (in the calling thread's network namespace).
pub fn spawn(stop: Arc<AtomicBool>) -> std::io::Result<(Neighbours, std::thread::JoinHandle<()>)> {
    let snapshot = Arc::new(ArcSwap::from_pointee(Snapshot::default()));
    let (tx, rx) = std::sync::mpsc::sync_channel(1024);
    let mut nl = Netlink::new()?;
    let mut events = Events::new()?;
    let published = snapshot.clone();
    let handle = std::thread::Builder::new()
        .name("wgxdp-neigh".into())
        .spawn(move || resolver(&mut nl, &mut events, &published, &rx, &stop))?;
    Ok((
        Neighbours {
            snapshot,
            requests: tx,
        },
        handle,
    ))
}

/// What events said must be read again.
#[derive(Debug, Clone, Copy)]
struct Stale {
    routes: bool,
    neighbours: bool,
    local: bool,
}

impl Stale {
    const ALL: Stale = Stale {
        routes: true,
        neighbours: true,
        local: true,
    };
}

fn resolver(
    nl: &mut Netlink,
    events: &mut Events,
    published: &ArcSwap<Snapshot>,
    rx: &Receiver<IpAddr>,
    stop: &AtomicBool,
) {
    let mut wanted = Wanted::new(MAX_WANTED);
    let mut fresh: Vec<IpAddr> = Vec::new();
    let mut current = Snapshot::default();
    let mut stale = Stale::ALL;
    let mut last_routes: Option<std::time::Instant> = None;
    let mut last_expire = std::time::Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let now = std::time::Instant::now();
        while let Ok(dst) = rx.try_recv() {
            if wanted.request(dst, now) {
                fresh.push(dst);
            }
        }
        let mut next = current.clone();
        let mut changed = events.apply(&mut next.mac, &mut stale);
        if stale.neighbours {
            stale.neighbours = false;
            next.mac = nl.neighbours();
            changed = true;
        }
        if now.duration_since(last_expire) >= EXPIRE_EVERY {
            last_expire = now;
            wanted.expire(now);
            let before = next.next_hop.len();
            next.next_hop.retain(|d, _| wanted.contains(d));
            changed |= next.next_hop.len() != before;
        }
        if stale.routes && last_routes.is_none_or(|t| t.elapsed() >= ROUTE_SETTLE) {
            stale.routes = false;
            last_routes = Some(now);
            fresh.clear();
            let all: crate::FastMap<IpAddr, Hop> = wanted
                .iter()
                .filter_map(|&d| Some((d, nl.route_get(d)?)))
                .collect();
            changed |= all != next.next_hop;
            next.next_hop = all;
        } else {
            for d in fresh.drain(..) {
                if let Some(hop) = nl.route_get(d) {
                    changed |= next.next_hop.insert(d, hop) != Some(hop);
                }
            }
        }
        // A failed read keeps what was known (an address does not vanish with a syscall).
        if stale.local {
            stale.local = false;
            if let Ok(l) = local_addrs() {
                changed |= l != next.local;
                next.local = l;
            }
        }
        if changed {
            current = next;
            published.store(Arc::new(current.clone()));
        }
        match rx.recv_timeout(WAKE) {
            Ok(dst) => {
                if wanted.request(dst, std::time::Instant::now()) {
                    fresh.push(dst);
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// The kernel's neighbour, route and address events (rtnetlink multicast groups).
struct Events {
    socket: Socket,
    buf: Vec<u8>,
}

/// `RTNLGRP_*` of `linux/rtnetlink.h`.
const RTNLGRP_NEIGH: u32 = 3;
const RTNLGRP_IPV4_IFADDR: u32 = 5;
const RTNLGRP_IPV4_ROUTE: u32 = 7;
const RTNLGRP_IPV6_IFADDR: u32 = 9;
const RTNLGRP_IPV6_ROUTE: u32 = 11;

impl Events {
    fn new() -> std::io::Result<Self> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        for g in [
            RTNLGRP_NEIGH,
            RTNLGRP_IPV4_IFADDR,
            RTNLGRP_IPV4_ROUTE,
            RTNLGRP_IPV6_IFADDR,
            RTNLGRP_IPV6_ROUTE,
        ] {
            socket.add_membership(g)?;
        }
        // A burst (a link going down) must not overflow it; if it does, everything is read
        // again. SO_RCVBUFFORCE needs CAP_NET_ADMIN; failing, the default stays.
        let _ = nix::sys::socket::setsockopt(
            &std::os::fd::AsFd::as_fd(&socket),
            nix::sys::socket::sockopt::RcvBufForce,
            &(4 << 20),
        );
        socket.set_non_blocking(true)?;
        Ok(Self {
            socket,
            buf: vec![0; 1 << 16],
        })
    }

    /// Applies every event waiting: neighbours to `mac` directly, routes and addresses as
    /// `stale` marks; lost events mark everything. Returns whether `mac` changed.
    fn apply(
        &mut self,
        mac: &mut crate::FastMap<(u32, IpAddr), [u8; 6]>,
        stale: &mut Stale,
    ) -> bool {
        let mut changed = false;
        loop {
            let size = match self.socket.recv(&mut &mut self.buf[..], 0) {
                Ok(n) => n,
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    *stale = Stale::ALL;
                    continue;
                }
                Err(_) => return changed,
            };
            let mut offset = 0;
            while offset < size {
                let Ok(m) =
                    NetlinkMessage::<RouteNetlinkMessage>::deserialize(&self.buf[offset..size])
                else {
                    break;
                };
                let len = m.header.length as usize;
                if let NetlinkPayload::InnerMessage(inner) = m.payload {
                    match inner {
                        RouteNetlinkMessage::NewNeighbour(n) => {
                            if let Some((key, value)) = neighbour_entry(&n) {
                                changed |= match value {
                                    Some(v) => mac.insert(key, v) != Some(v),
                                    None => mac.remove(&key).is_some(),
                                };
                            }
                        }
                        RouteNetlinkMessage::DelNeighbour(n) => {
                            if let Some((key, _)) = neighbour_entry(&n) {
                                changed |= mac.remove(&key).is_some();
                            }
                        }
                        RouteNetlinkMessage::NewRoute(_) | RouteNetlinkMessage::DelRoute(_) => {
                            stale.routes = true;
                        }
                        RouteNetlinkMessage::NewAddress(_) | RouteNetlinkMessage::DelAddress(_) => {
                            stale.local = true;
                        }
                        _ => {}
                    }
                }
                if len == 0 {
                    break;
                }
                offset += len;
            }
        }
    }
}

/// A neighbour: the interface it is on, and its address.
type NeighbourKey = (u32, IpAddr);

/// A neighbour message's key (interface, address) and its MAC, `None` for an entry that is
/// not usable (incomplete, failed) or has no link-layer address.
fn neighbour_entry(n: &NeighbourMessage) -> Option<(NeighbourKey, Option<[u8; 6]>)> {
    let ip = n.attributes.iter().find_map(|a| match a {
        NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)) => Some(IpAddr::V4(*ip)),
        NeighbourAttribute::Destination(NeighbourAddress::Inet6(ip)) => Some(IpAddr::V6(*ip)),
        _ => None,
    })?;
    let usable = !matches!(
        n.header.state,
        NeighbourState::Incomplete | NeighbourState::Failed | NeighbourState::None
    );
    let mac = n.attributes.iter().find_map(|a| match a {
        NeighbourAttribute::LinkLayerAddress(m) if m.len() == 6 => {
            let mut mac = [0u8; 6];
            mac.copy_from_slice(m);
            Some(mac)
        }
        _ => None,
    });
    Some(((n.header.ifindex, ip), mac.filter(|_| usable)))
}

/// Destinations the resolver keeps resolved at most: what peers send to is theirs to choose,
/// so the set (and the work of resolving it again after a route change) must not grow without
/// bound. Past it, a new destination is not learnt until room frees up: its packets keep
/// taking the kernel path, which routes them correctly, only slower. Sized for 100k peers'
/// endpoints and their LAN destinations. (Resolving by route, from the route events' own
/// contents, instead of by destination would make a route change cost O(routes changed).)
pub const MAX_WANTED: usize = 1 << 18;
const _: () = assert!(
    MAX_WANTED >= 200_000,
    "room for a 100k-peer gateway's endpoints"
);
/// A destination no worker asked for in this long is forgotten. A destination in use is asked
/// for again only on a miss, so forgetting it costs one packet through the kernel path.
pub const WANTED_IDLE: Duration = Duration::from_secs(120);

/// The destinations to keep resolved, with when a worker last asked for each.
#[derive(Debug)]
struct Wanted {
    asked: HashMap<IpAddr, std::time::Instant>,
    cap: usize,
}

impl Wanted {
    fn new(cap: usize) -> Self {
        Self {
            asked: HashMap::new(),
            cap,
        }
    }

    /// A worker asked for `dst`; true if it is new (to be resolved at once).
    fn request(&mut self, dst: IpAddr, now: std::time::Instant) -> bool {
        if let Some(t) = self.asked.get_mut(&dst) {
            *t = now;
            return false;
        }
        if self.asked.len() >= self.cap {
            return false;
        }
        self.asked.insert(dst, now);
        true
    }

    /// Forgets what nobody asked for in WANTED_IDLE.
    fn expire(&mut self, now: std::time::Instant) {
        self.asked
            .retain(|_, t| now.saturating_duration_since(*t) < WANTED_IDLE);
    }

    fn iter(&self) -> impl Iterator<Item = &IpAddr> {
        self.asked.keys()
    }

    fn contains(&self, dst: &IpAddr) -> bool {
        self.asked.contains_key(dst)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.asked.len()
    }
}

struct Netlink {
    socket: Socket,
    buf: Vec<u8>,
    seq: u32,
}

impl Netlink {
    fn new() -> std::io::Result<Self> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        socket.set_non_blocking(false)?;
        Ok(Self {
            socket,
            buf: vec![0; 1 << 16],
            seq: 0,
        })
    }

    /// Sends `msg` and feeds every answer to `f` until the kernel says done (or, for a
    /// non-dump request, after the first answer).
    fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        dump: bool,
        mut f: impl FnMut(RouteNetlinkMessage),
    ) {
        let mut hdr = NetlinkHeader::default();
        hdr.flags = NLM_F_REQUEST | if dump { NLM_F_DUMP } else { 0 };
        self.seq = self.seq.wrapping_add(1);
        hdr.sequence_number = self.seq;
        let mut req = NetlinkMessage::new(hdr, NetlinkPayload::from(msg));
        req.finalize();
        let mut out = vec![0; req.header.length as usize];
        req.serialize(&mut out[..]);
        if self.socket.send(&out, 0).is_err() {
            return;
        }
        loop {
            let Ok(size) = self.socket.recv(&mut &mut self.buf[..], 0) else {
                return;
            };
            let mut offset = 0;
            while offset < size {
                let Ok(m) =
                    NetlinkMessage::<RouteNetlinkMessage>::deserialize(&self.buf[offset..size])
                else {
                    return;
                };
                let len = m.header.length as usize;
                match m.payload {
                    NetlinkPayload::Done(_) | NetlinkPayload::Error(_) => return,
                    NetlinkPayload::InnerMessage(inner) => {
                        f(inner);
                        if !dump {
                            return;
                        }
                    }
                    _ => {}
                }
                if len == 0 {
                    return;
                }
                offset += len;
            }
        }
    }

    /// `ip route get DST`: the gateway, or `dst` itself when on-link.
    /// The unicast route to `dst`: next hop and output interface. `None` for any other kind
    /// of route (local, broadcast, unreachable, ...), which the kernel's stack handles.
    fn route_get(&mut self, dst: IpAddr) -> Option<Hop> {
        let mut msg = RouteMessage::default();
        let (family, addr, len) = match dst {
            IpAddr::V4(a) => (AddressFamily::Inet, RouteAddress::Inet(a), 32),
            IpAddr::V6(a) => (AddressFamily::Inet6, RouteAddress::Inet6(a), 128),
        };
        msg.header.address_family = family;
        msg.header.destination_prefix_length = len;
        msg.attributes.push(RouteAttribute::Destination(addr));
        let mut hop = None;
        self.request(RouteNetlinkMessage::GetRoute(msg), false, |answer| {
            if let RouteNetlinkMessage::NewRoute(r) = answer {
                if r.header.kind != RouteType::Unicast {
                    return;
                }
                let gw = r.attributes.iter().find_map(|a| match a {
                    RouteAttribute::Gateway(RouteAddress::Inet(g)) => Some(IpAddr::V4(*g)),
                    RouteAttribute::Gateway(RouteAddress::Inet6(g)) => Some(IpAddr::V6(*g)),
                    _ => None,
                });
                let oif = r.attributes.iter().find_map(|a| match a {
                    RouteAttribute::Oif(i) => Some(*i),
                    _ => None,
                });
                if let Some(oif) = oif {
                    hop = Some(Hop {
                        via: gw.unwrap_or(dst),
                        oif,
                    });
                }
            }
        });
        hop
    }

    /// Every usable neighbour entry with a link-layer address, by interface.
    fn neighbours(&mut self) -> crate::FastMap<(u32, IpAddr), [u8; 6]> {
        let mut out = crate::FastMap::default();
        self.request(
            RouteNetlinkMessage::GetNeighbour(NeighbourMessage::default()),
            true,
            |answer| {
                if let RouteNetlinkMessage::NewNeighbour(n) = answer {
                    if let Some((key, Some(mac))) = neighbour_entry(&n) {
                        out.insert(key, mac);
                    }
                }
            },
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_lookup_goes_through_the_next_hop() {
        let mut s = Snapshot::default();
        let dst: IpAddr = "198.19.113.9".parse().unwrap();
        let gw: IpAddr = "198.18.0.254".parse().unwrap();
        s.next_hop.insert(dst, Hop { via: gw, oif: 2 });
        assert_eq!(s.lookup(dst, 2), None, "next hop known, MAC not yet");
        s.mac.insert((2, gw), [1, 2, 3, 4, 5, 6]);
        assert_eq!(s.lookup(dst, 2), Some([1, 2, 3, 4, 5, 6]));
        assert_eq!(
            s.lookup(gw, 2),
            None,
            "the gateway itself was never asked for"
        );
        // The route leaves by interface 2: nothing for a caller transmitting on another one,
        // even if that interface knows a neighbour with the same address.
        s.mac.insert((3, gw), [9; 6]);
        assert_eq!(s.lookup(dst, 3), None);
    }

    /// However many destinations the peers send to, the resolver keeps at most its cap, and
    /// forgets what nobody asked for in a while.
    #[test]
    fn the_wanted_set_is_bounded_and_forgets_idle_destinations() {
        let t0 = std::time::Instant::now();
        let mut w = Wanted::new(1000);
        let mut new = 0;
        for i in 0..100_000u32 {
            let dst = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            new += usize::from(w.request(dst, t0));
        }
        assert_eq!((w.len(), new), (1000, 1000));
        let kept: IpAddr = "10.0.0.5".parse().unwrap();
        assert!(!w.request(kept, t0 + WANTED_IDLE / 2), "known, asked again");
        w.expire(t0 + WANTED_IDLE);
        assert_eq!(w.iter().copied().collect::<Vec<_>>(), [kept]);
        assert!(
            w.request("10.9.9.9".parse().unwrap(), t0 + WANTED_IDLE),
            "room again"
        );
    }
}
