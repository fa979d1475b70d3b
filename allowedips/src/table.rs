//! The allowed-IPs table: [`AllowedIps`] is the writer (control), [`Reader`] a worker's handle.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use proto::allowedips::Prefix;

use crate::epoch::{Epoch, MAX_READERS};
use crate::fib::{Fib, NONE};
use crate::memory::{Arrays, Capacity, HeapMemory, Memory, Shared};
use crate::update::{active_fib, ArenaStats, Family};

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
    #[error("the allowed-IPs table has no room for more {0} prefixes of this shape (its capacity is set at start)")]
    Full(&'static str),
    #[error("a reader of the allowed-IPs table is stuck mid-lookup; the table cannot be rebuilt")]
    Busy,
}

/// The capacity [`AllowedIps::new`] gives a table in the heap.
pub const DEFAULT_CAPACITY: usize = 65536;

fn epoch<'m>(shared: &Shared<'m>) -> Epoch<'m> {
    Epoch {
        global: &shared.header.epoch,
        slots: shared.readers,
    }
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
/// The table lives in a [`Memory`] of fixed capacity: a change that does not fit is refused
/// ([`Error::Full`]) and changes nothing.
#[derive(Debug)]
pub struct AllowedIps {
    memory: Arc<dyn Memory>,
    v4: Family<u32>,
    v6: Family<u128>,
    by_peer: HashMap<PeerId, BTreeSet<Canonical>>,
}

impl Default for AllowedIps {
    fn default() -> Self {
        Self::with_capacity(Capacity::new(DEFAULT_CAPACITY))
    }
}

impl AllowedIps {
    /// An empty table in the heap with room for [`DEFAULT_CAPACITY`] prefixes per family.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty table in the heap with room for `capacity`.
    pub fn with_capacity(capacity: Capacity) -> Self {
        // An empty table always fits, and no reader exists yet to be waited for.
        Self::attach(Arc::new(HeapMemory::new(capacity)), [])
            .unwrap_or_else(|e| unreachable!("an empty table in fresh memory: {e}"))
    }

    /// The writer of the table in `memory`, holding `prefixes` (a prefix listed twice goes to
    /// its last peer). Whatever the memory held before (another writer's table, or nothing) is
    /// replaced: the readers switch to the new table at once.
    pub fn attach(
        memory: Arc<dyn Memory>,
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
        let shared = memory.table();
        let e = epoch(&shared);
        let v4 = Family::build(v4, &shared, &e)?;
        let v6 = Family::build(v6, &shared, &e)?;
        Ok(Self {
            memory,
            v4,
            v6,
            by_peer,
        })
    }

    /// Bulk build in the heap, with room for at least [`DEFAULT_CAPACITY`] prefixes or a
    /// quarter more than given; a prefix listed twice goes to its last peer.
    pub fn from_prefixes(
        prefixes: impl IntoIterator<Item = (Prefix, PeerId)>,
    ) -> Result<Self, Error> {
        let prefixes: Vec<_> = prefixes.into_iter().collect();
        let room = (prefixes.len() + prefixes.len() / 4).max(DEFAULT_CAPACITY);
        Self::attach(Arc::new(HeapMemory::new(Capacity::new(room))), prefixes)
    }

    /// Assigns `prefix` to `peer`, taking it over from any other peer; returns the previous
    /// owner. Published when this returns.
    pub fn insert(&mut self, prefix: Prefix, peer: PeerId) -> Result<Option<PeerId>, Error> {
        if peer > MAX_PEER_ID {
            return Err(Error::PeerId(peer));
        }
        let old = self.set(prefix, Some(peer))?;
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
    /// it did. (A removal path-copies too: in a full section it rebuilds into the other one,
    /// which can fail only if a reader is stuck.)
    pub fn remove(&mut self, prefix: Prefix, peer: PeerId) -> Result<bool, Error> {
        if self.owner(prefix) != Some(peer) {
            return Ok(false);
        }
        self.set(prefix, None)?;
        self.unindex(peer, prefix);
        Ok(true)
    }

    /// Removes all of `peer`'s prefixes; returns how many. On an error the prefixes not yet
    /// removed stay the peer's.
    pub fn remove_by_peer(&mut self, peer: PeerId) -> Result<usize, Error> {
        let prefixes = self.prefixes_of(peer);
        for &p in &prefixes {
            self.set(p, None)?;
            self.unindex(peer, p);
        }
        Ok(prefixes.len())
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
        let shared = self.memory.table();
        some(match ip {
            IpAddr::V4(a) => active_fib::<u32>(&shared).lookup(u32::from(a)),
            IpAddr::V6(a) => active_fib::<u128>(&shared).lookup(u128::from(a)),
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
        Reader::attach(Arc::clone(&self.memory))
    }

    /// Rebuilds both families compactly into their other sections and switches to them.
    pub fn compact(&mut self) -> Result<(), Error> {
        let shared = self.memory.table();
        let e = epoch(&shared);
        self.v4.rebuild(&shared, &e)?;
        self.v6.rebuild(&shared, &e)
    }

    /// The epoch of the changes made so far: once [`AllowedIps::settled`] is past it, no
    /// reader still holds an answer from before them (a peer id whose prefixes were all
    /// removed by then can reach no worker).
    pub fn epoch(&self) -> u64 {
        epoch(&self.memory.table()).current()
    }

    /// The oldest epoch a reader may still be in (`u64::MAX` when none is pinned): every
    /// change tagged below it is seen by all readers.
    pub fn settled(&self) -> u64 {
        epoch(&self.memory.table()).advance()
    }

    pub fn stats(&self) -> Stats {
        let shared = self.memory.table();
        Stats {
            v4_prefixes: self.v4.len(),
            v6_prefixes: self.v6.len(),
            v4: self.v4.stats(&shared),
            v6: self.v6.stats(&shared),
        }
    }

    /// The memory readers walk now, per family (`[v4, v6]`): each family's active arrays as
    /// far as they were ever allocated. What a memory's owner would keep resident, or back
    /// with huge pages; it changes with every change that allocates and every compaction.
    pub fn in_use(&self) -> [Arrays<'_>; 2] {
        let shared = self.memory.table();
        [self.v4.in_use(&shared), self.v6.in_use(&shared)]
    }

    fn set(&mut self, prefix: Prefix, peer: Option<PeerId>) -> Result<Option<PeerId>, Error> {
        let shared = self.memory.table();
        let e = epoch(&shared);
        match split(prefix) {
            Split::V4(k, l) => self.v4.set(k, l, peer, &shared, &e),
            Split::V6(k, l) => self.v6.set(k, l, peer, &shared, &e),
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
    memory: Arc<dyn Memory>,
    slot: usize,
}

impl Drop for Reader {
    fn drop(&mut self) {
        epoch(&self.memory.table()).unregister(self.slot);
    }
}

impl Reader {
    /// A reader of the table in `memory` (the data path's side of a shared region); at most
    /// [`MAX_READERS`] at once.
    pub fn attach(memory: Arc<dyn Memory>) -> Result<Self, Error> {
        let slot = epoch(&memory.table())
            .register()
            .ok_or(Error::TooManyReaders)?;
        Ok(Self { memory, slot })
    }

    /// Starts a batch (a read-side critical section): every block a lookup can reach stays
    /// valid until the returned guard drops. Each lookup reads the latest published version of
    /// its directory slot, so updates keep appearing while pinned; after the writer switched
    /// sections (a rebuild) a pinned reader keeps reading the old one until it pins again.
    /// Hold it for a batch, not indefinitely: the writer cannot reuse memory meanwhile, and a
    /// rebuild waits for it.
    pub fn pin(&mut self) -> Snapshot<'_> {
        let shared = self.memory.table();
        epoch(&shared).pin(self.slot);
        Snapshot {
            v4: active_fib(&shared),
            v6: active_fib(&shared),
            epoch: epoch(&shared),
            slot: self.slot,
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
    v4: Fib<'r, u32>,
    v6: Fib<'r, u128>,
    epoch: Epoch<'r>,
    slot: usize,
}

impl Drop for Snapshot<'_> {
    fn drop(&mut self) {
        self.epoch.unpin(self.slot);
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
