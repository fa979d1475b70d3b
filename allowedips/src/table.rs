//! The allowed-IPs table: [`AllowedIps`] is the writer (control), [`Reader`] a worker's handle.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use arc_swap::{ArcSwap, Guard};
use proto::allowedips::Prefix;

use crate::epoch::{Epoch, MAX_READERS};
use crate::fib::{Fib, NONE};
use crate::update::{ArenaStats, Family};

/// A peer's index in the data path. Values up to [`MAX_PEER_ID`].
pub type PeerId = u32;
/// The largest peer id: the top bit of a stored value tags path-compressed leaves.
pub const MAX_PEER_ID: PeerId = (1 << 31) - 2;

/// What the table refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("peer id {0} is above the largest allowed, {MAX_PEER_ID}")]
    PeerId(u32),
    #[error("all {MAX_READERS} reader slots are taken")]
    TooManyReaders,
}

/// What both sides share: the published arenas and the grace-period slots.
#[derive(Debug)]
struct Shared {
    v4: ArcSwap<Fib<u32>>,
    v6: ArcSwap<Fib<u128>>,
    epoch: Epoch,
}

/// A prefix in the order `wg` lists them: IPv4 first, then by address, then by length.
type Canonical = (bool, u128, u8);

enum Split {
    V4(u32, u8),
    V6(u128, u8),
}

fn split(prefix: Prefix) -> Split {
    match prefix.addr() {
        IpAddr::V4(a) => Split::V4(u32::from(a), prefix.len()),
        IpAddr::V6(a) => Split::V6(u128::from(a), prefix.len()),
    }
}

fn canonical(prefix: Prefix) -> Canonical {
    match split(prefix) {
        Split::V4(k, l) => (false, u128::from(k), l),
        Split::V6(k, l) => (true, k, l),
    }
}

fn from_canonical((v6, bits, len): Canonical) -> Prefix {
    let addr = if v6 {
        IpAddr::V6(Ipv6Addr::from(bits))
    } else {
        IpAddr::V4(Ipv4Addr::from(bits as u32))
    };
    // The stored key came from a valid prefix, so the length fits.
    Prefix::new(addr, len).unwrap_or_else(|_| unreachable!("stored prefixes are valid"))
}

fn some(v: u32) -> Option<PeerId> {
    (v != NONE).then_some(v)
}

/// Sizes of the published arrays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    pub v4_prefixes: usize,
    pub v6_prefixes: usize,
    pub v4: ArenaStats,
    pub v6: ArenaStats,
}

/// The allowed-IPs table with the kernel's semantics, owned by its single writer.
///
/// A prefix belongs to exactly one peer: inserting it for another peer moves it. Host bits are
/// cleared ([`Prefix`] does that). Every change is published to the readers when the call
/// returns; [`AllowedIps::remove_by_peer`] publishes one prefix at a time, as the kernel does.
#[derive(Debug)]
pub struct AllowedIps {
    shared: Arc<Shared>,
    v4: Family<u32>,
    v6: Family<u128>,
    by_peer: HashMap<PeerId, BTreeSet<Canonical>>,
}

impl Default for AllowedIps {
    fn default() -> Self {
        Self::from_maps(BTreeMap::new(), BTreeMap::new(), HashMap::new())
    }
}

impl AllowedIps {
    pub fn new() -> Self {
        Self::default()
    }

    fn from_maps(
        v4: BTreeMap<(u32, u8), u32>,
        v6: BTreeMap<(u128, u8), u32>,
        by_peer: HashMap<PeerId, BTreeSet<Canonical>>,
    ) -> Self {
        let v4 = Family::build(v4);
        let v6 = Family::build(v6);
        let shared = Arc::new(Shared {
            v4: ArcSwap::new(Arc::clone(v4.fib())),
            v6: ArcSwap::new(Arc::clone(v6.fib())),
            epoch: Epoch::default(),
        });
        Self {
            shared,
            v4,
            v6,
            by_peer,
        }
    }

    /// Bulk build; a prefix listed twice goes to its last peer.
    pub fn from_prefixes(
        prefixes: impl IntoIterator<Item = (Prefix, PeerId)>,
    ) -> Result<Self, Error> {
        let mut v4 = BTreeMap::new();
        let mut v6 = BTreeMap::new();
        let mut owner: HashMap<Canonical, PeerId> = HashMap::new();
        for (prefix, peer) in prefixes {
            if peer > MAX_PEER_ID {
                return Err(Error::PeerId(peer));
            }
            match split(prefix) {
                Split::V4(k, l) => v4.insert((k, l), peer),
                Split::V6(k, l) => v6.insert((k, l), peer),
            };
            owner.insert(canonical(prefix), peer);
        }
        let mut by_peer: HashMap<PeerId, BTreeSet<Canonical>> = HashMap::new();
        for (c, peer) in owner {
            by_peer.entry(peer).or_default().insert(c);
        }
        Ok(Self::from_maps(v4, v6, by_peer))
    }

    /// Assigns `prefix` to `peer`, taking it over from any other peer; returns the previous
    /// owner. Published when this returns.
    pub fn insert(&mut self, prefix: Prefix, peer: PeerId) -> Result<Option<PeerId>, Error> {
        if peer > MAX_PEER_ID {
            return Err(Error::PeerId(peer));
        }
        let old = self.set(prefix, Some(peer));
        if old != Some(peer) {
            if let Some(o) = old {
                self.unindex(o, prefix);
            }
            self.by_peer
                .entry(peer)
                .or_default()
                .insert(canonical(prefix));
        }
        Ok(old)
    }

    /// Removes `prefix` if `peer` owns it (`wg set ... allowed-ips` without it); returns whether
    /// it did.
    pub fn remove(&mut self, prefix: Prefix, peer: PeerId) -> bool {
        if self.owner(prefix) != Some(peer) {
            return false;
        }
        self.set(prefix, None);
        self.unindex(peer, prefix);
        true
    }

    /// Removes all of `peer`'s prefixes; returns how many.
    pub fn remove_by_peer(&mut self, peer: PeerId) -> usize {
        let Some(prefixes) = self.by_peer.remove(&peer) else {
            return 0;
        };
        for &c in &prefixes {
            self.set(from_canonical(c), None);
        }
        prefixes.len()
    }

    /// `peer`'s prefixes in canonical order (IPv4 first, then by address and length).
    pub fn prefixes_of(&self, peer: PeerId) -> Vec<Prefix> {
        self.by_peer
            .get(&peer)
            .map(|s| s.iter().map(|&c| from_canonical(c)).collect())
            .unwrap_or_default()
    }

    /// The peer that owns exactly `prefix`.
    pub fn owner(&self, prefix: Prefix) -> Option<PeerId> {
        match split(prefix) {
            Split::V4(k, l) => self.v4.get(k, l),
            Split::V6(k, l) => self.v6.get(k, l),
        }
    }

    /// Longest-prefix match from the writer's side (control needs no pin: it alone reclaims).
    pub fn lookup(&self, ip: IpAddr) -> Option<PeerId> {
        some(match ip {
            IpAddr::V4(a) => self.v4.fib().lookup(u32::from(a)),
            IpAddr::V6(a) => self.v6.fib().lookup(u128::from(a)),
        })
    }

    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A handle for one worker; at most [`MAX_READERS`] at once.
    pub fn reader(&self) -> Result<Reader, Error> {
        let slot = self.shared.epoch.register().ok_or(Error::TooManyReaders)?;
        Ok(Reader {
            shared: Arc::clone(&self.shared),
            slot,
        })
    }

    /// Rebuilds both arenas compactly and publishes them whole.
    pub fn compact(&mut self) {
        self.v4.rebuild(&self.shared.v4);
        self.v6.rebuild(&self.shared.v6);
    }

    pub fn stats(&self) -> Stats {
        Stats {
            v4_prefixes: self.v4.len(),
            v6_prefixes: self.v6.len(),
            v4: self.v4.stats(),
            v6: self.v6.stats(),
        }
    }

    fn set(&mut self, prefix: Prefix, peer: Option<PeerId>) -> Option<PeerId> {
        let shared = &self.shared;
        match split(prefix) {
            Split::V4(k, l) => self.v4.set(k, l, peer, &shared.v4, &shared.epoch),
            Split::V6(k, l) => self.v6.set(k, l, peer, &shared.v6, &shared.epoch),
        }
    }

    fn unindex(&mut self, peer: PeerId, prefix: Prefix) {
        if let Some(set) = self.by_peer.get_mut(&peer) {
            set.remove(&canonical(prefix));
            if set.is_empty() {
                self.by_peer.remove(&peer);
            }
        }
    }
}

/// A worker's read handle. Lookups never wait for the writer.
#[derive(Debug)]
pub struct Reader {
    shared: Arc<Shared>,
    slot: usize,
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.shared.epoch.unregister(self.slot);
    }
}

impl Reader {
    /// Starts a batch (a read-side critical section): every block a lookup can reach stays
    /// valid until the returned guard drops. Each lookup reads the latest published version of
    /// its directory slot, so updates keep appearing while pinned; after the writer swapped in
    /// a whole new arena (growth, [`AllowedIps::compact`]) a pinned reader keeps reading the
    /// old one until it pins again. Hold it for a batch, not indefinitely: the writer cannot
    /// reuse memory meanwhile (it grows the arena instead).
    pub fn pin(&mut self) -> Snapshot<'_> {
        self.shared.epoch.pin(self.slot);
        Snapshot {
            v4: self.shared.v4.load(),
            v6: self.shared.v6.load(),
            reader: self,
        }
    }

    /// One lookup in its own batch (pins and unpins).
    pub fn lookup(&mut self, ip: IpAddr) -> Option<PeerId> {
        self.pin().lookup(ip)
    }
}

/// A pinned reader (see [`Reader::pin`]): each lookup answers from the table before or after
/// any update, never a mix.
#[derive(Debug)]
pub struct Snapshot<'r> {
    v4: Guard<Arc<Fib<u32>>>,
    v6: Guard<Arc<Fib<u128>>>,
    reader: &'r Reader,
}

impl Drop for Snapshot<'_> {
    fn drop(&mut self) {
        self.reader.shared.epoch.unpin(self.reader.slot);
    }
}

impl Snapshot<'_> {
    pub fn lookup(&self, ip: IpAddr) -> Option<PeerId> {
        match ip {
            IpAddr::V4(a) => self.lookup_v4(u32::from(a)),
            IpAddr::V6(a) => self.lookup_v6(u128::from(a)),
        }
    }

    /// IPv4 lookup by the address as a host-order integer (`u32::from(Ipv4Addr)`).
    #[inline]
    pub fn lookup_v4(&self, addr: u32) -> Option<PeerId> {
        some(self.v4.lookup(addr))
    }

    /// IPv6 lookup by the address as a host-order integer (`u128::from(Ipv6Addr)`).
    #[inline]
    pub fn lookup_v6(&self, addr: u128) -> Option<PeerId> {
        some(self.v6.lookup(addr))
    }

    /// Looks up `addrs` into `out`; returns how many (the shorter length).
    pub fn lookup_v4_batch(&self, addrs: &[u32], out: &mut [Option<PeerId>]) -> usize {
        let n = addrs.len().min(out.len());
        self.v4.lookup_batch(&addrs[..n], &mut out[..n]);
        n
    }

    /// Looks up `addrs` into `out`; returns how many (the shorter length).
    pub fn lookup_v6_batch(&self, addrs: &[u128], out: &mut [Option<PeerId>]) -> usize {
        let n = addrs.len().min(out.len());
        self.v6.lookup_batch(&addrs[..n], &mut out[..n]);
        n
    }
}
