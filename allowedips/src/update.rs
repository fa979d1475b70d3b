//! The writer's side of one address family: the authoritative prefix map, the arena allocator,
//! and incremental updates published by path copying.
//!
//! An update of a prefix longer than the directory's bits (20) touches
//! one directory slot. The writer walks from that slot down to the node whose stride holds the
//! prefix's last bit, rewrites the affected children there, and copies every node on the way
//! back up into fresh blocks (siblings are shared, not copied deeper). Nothing a reader can
//! reach is modified; the new path becomes visible with one `Release` store of the slot's
//! directory word, so a lookup sees the table before or after the update, never a mix. The
//! replaced blocks are retired and reused after a grace period (`epoch.rs`). A shorter prefix
//! only changes directory defaults: one atomic store per slot it covers, each answering with
//! the old or the new table.
//!
//! Regions collapse as they empty: a child is a node only while its region holds two or more
//! longer prefixes, so the shape stays that of a bulk build (the tests compare them).

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::build::{
    build_family, build_kid, decode_node, dir_child, emit_node, unfold_chain, Entry, Kid, Sink,
    VecSink,
};
use crate::epoch::Epoch;
use crate::fib::{
    is_single, single_ref, single_units, Fib, Node, Single, NONE, SINGLE, UNIT_WORDS,
};
use crate::key::{Key, STRIDE};
use crate::memory::{Arrays, Shared};
use crate::table::Error;

/// How long a switch of sections waits for readers still on the other one (they pin for one
/// batch, microseconds; only a reader stuck mid-batch takes longer).
const PATIENCE: Duration = Duration::from_secs(1);

/// The family's two sections in `shared`, and its index among the `active` words.
fn sections<'m, K: Key>(shared: &Shared<'m>) -> ([Arrays<'m>; 2], usize) {
    if K::BITS == 32 {
        (shared.v4, 0)
    } else {
        (shared.v6, 1)
    }
}

/// The family's section readers use now.
pub(crate) fn active_fib<'m, K: Key>(shared: &Shared<'m>) -> Fib<'m, K> {
    let (s, f) = sections::<K>(shared);
    Fib::new(s[shared.header.active(f)])
}

/// One kind of block storage: bump allocation with free lists per block size (1..=64).
#[derive(Debug)]
struct Pool {
    next: u32,
    cap: u32,
    free: Vec<Vec<u32>>,
    live: usize,
}

impl Pool {
    fn new(used: usize, cap: usize) -> Self {
        Self {
            next: used as u32,
            cap: cap as u32,
            free: vec![Vec::new(); 65],
            live: used,
        }
    }

    fn alloc(&mut self, size: usize) -> Option<u32> {
        let start = match self.free[size].pop() {
            Some(start) => start,
            None if self.next as usize + size <= self.cap as usize => {
                self.next += size as u32;
                self.next - size as u32
            }
            None => return None,
        };
        self.live += size;
        Some(start)
    }

    fn release(&mut self, start: u32, size: usize) {
        self.free[size].push(start);
        self.live -= size;
    }
}

#[derive(Debug, Clone, Copy)]
enum Block {
    Nodes(u32, u8),
    Leaves(u32, u8),
    /// A singleton reference.
    Single(u32),
}

/// Arena bookkeeping: the pools and the blocks waiting for their grace period.
#[derive(Debug)]
struct Alloc {
    nodes: Pool,
    leaves: Pool,
    singles: Pool,
    retired: VecDeque<(u64, Block)>,
}

impl Alloc {
    /// Pools over a section holding `(used, capacity)` nodes, leaf runs and singleton units.
    fn new(nodes: (usize, usize), leaves: (usize, usize), singles: (usize, usize)) -> Self {
        Self {
            nodes: Pool::new(nodes.0, nodes.1),
            leaves: Pool::new(leaves.0, leaves.1),
            singles: Pool::new(singles.0, singles.1),
            retired: VecDeque::new(),
        }
    }

    fn empty() -> Self {
        Self::new((0, 0), (0, 0), (0, 0))
    }

    /// Gives a block back to its pool: one no reader can reach.
    fn free(&mut self, block: Block) {
        match block {
            Block::Nodes(start, n) => self.nodes.release(start, n.into()),
            Block::Leaves(start, n) => self.leaves.release(start, n.into()),
            Block::Single(r) => {
                let (i, units) = single_units(r);
                self.singles.release(i, units);
            }
        }
    }
}

/// Writes into the live arena for an update; records what it replaced.
struct ArenaSink<'a, K> {
    fib: Fib<'a, K>,
    alloc: &'a mut Alloc,
    retire: Vec<Block>,
    /// What this update allocated: unreachable until published, so given back at once if the
    /// update does not fit.
    allocated: Vec<Block>,
    overflow: bool,
}

impl<K: Key> Sink<K> for ArenaSink<'_, K> {
    fn node_block(&mut self, nodes: &[Node]) -> u32 {
        if nodes.is_empty() {
            return 0;
        }
        let Some(start) = self.alloc.nodes.alloc(nodes.len()) else {
            self.overflow = true;
            return 0;
        };
        self.allocated.push(Block::Nodes(start, nodes.len() as u8));
        for (i, n) in nodes.iter().enumerate() {
            self.fib.write_node(start + i as u32, n);
        }
        start
    }

    fn leaf_block(&mut self, leaves: &[u32]) -> u32 {
        if leaves.is_empty() {
            return 0;
        }
        let Some(start) = self.alloc.leaves.alloc(leaves.len()) else {
            self.overflow = true;
            return 0;
        };
        self.allocated
            .push(Block::Leaves(start, leaves.len() as u8));
        for (i, &v) in leaves.iter().enumerate() {
            self.fib.write_leaf(start + i as u32, v);
        }
        start
    }

    fn single(&mut self, s: &Single<K>, depth: u32) -> u32 {
        let (words, long) = s.encode(depth);
        let units = if long { 2 } else { 1 };
        let Some(i) = self.alloc.singles.alloc(units) else {
            self.overflow = true;
            return 0;
        };
        self.fib.write_single(i, &words[..units * UNIT_WORDS]);
        self.allocated.push(Block::Single(single_ref(i, long)));
        single_ref(i, long)
    }
}

impl<K: Key> ArenaSink<'_, K> {
    fn retire_node_blocks(&mut self, node: &Node) {
        let inner = node.vector.count_ones();
        if inner > 0 {
            self.retire.push(Block::Nodes(node.base1, inner as u8));
        }
        let runs = node.leafvec.count_ones();
        if runs > 0 {
            self.retire.push(Block::Leaves(node.base0, runs as u8));
        }
    }

    fn retire_leaf_value(&mut self, v: u32) {
        if is_single(v) {
            self.retire.push(Block::Single(v));
        }
    }

    /// Retires everything below `node` (not `node` itself, which lives in its parent's block).
    fn retire_subtree(&mut self, node: &Node) {
        for kid in decode_node(&self.fib, node) {
            match kid {
                Kid::Node(child) => self.retire_subtree(&child),
                Kid::Leaf(v) => self.retire_leaf_value(v),
            }
        }
        self.retire_node_blocks(node);
    }
}

/// Live and capacity counts of an arena, for statistics and leak checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ArenaStats {
    /// Nodes (32 bytes each).
    pub nodes: usize,
    /// Leaf runs (4 bytes each).
    pub leaves: usize,
    /// Singleton units (16 bytes each; an IPv6 singleton in the long form takes two).
    pub singles: usize,
    /// Bytes of the family's arrays including free space and the directory.
    pub bytes: usize,
}

impl ArenaStats {
    /// Live nodes, leaf runs and singleton units: the shape, without free space.
    pub fn live(&self) -> (usize, usize, usize) {
        (self.nodes, self.leaves, self.singles)
    }
}

/// One address family: authoritative map (control side) plus the allocator of the active
/// section.
#[derive(Debug)]
pub(crate) struct Family<K: Key> {
    /// Every prefix (host bits clear) and its peer.
    master: BTreeMap<(K, u8), u32>,
    /// The prefixes no longer than the directory's bits, which live in directory defaults.
    short: BTreeMap<(K, u8), u32>,
    /// The section readers use (this writer's copy of the family's `active` word).
    active: usize,
    alloc: Alloc,
    /// The epoch of the last switch: the other section is free once no reader is pinned at or
    /// before it.
    switched: u64,
}

impl<K: Key> Family<K> {
    /// Builds `master` into the section readers do not use and switches them to it: a new
    /// writer over memory that may hold another writer's table.
    pub(crate) fn build(
        master: BTreeMap<(K, u8), u32>,
        shared: &Shared<'_>,
        epoch: &Epoch<'_>,
    ) -> Result<Self, Error> {
        let short = master
            .iter()
            .filter(|(k, _)| u32::from(k.1) <= K::DIR_BITS)
            .map(|(k, v)| (*k, *v))
            .collect();
        let (_, f) = sections::<K>(shared);
        let active = shared.header.active(f);
        let mut family = Self {
            master,
            short,
            active,
            alloc: Alloc::empty(),
            // Whatever switched last, readers pinned from now on see `active`.
            switched: epoch.current(),
        };
        family.rebuild(shared, epoch)?;
        Ok(family)
    }

    fn fib<'m>(&self, shared: &Shared<'m>) -> Fib<'m, K> {
        Fib::new(sections::<K>(shared).0[self.active])
    }

    pub(crate) fn get(&self, key: K, len: u8) -> Option<u32> {
        self.master.get(&(key, len)).copied()
    }

    pub(crate) fn len(&self) -> usize {
        self.master.len()
    }

    /// The active section's arrays as far as they were ever allocated: the directory whole,
    /// the pools up to their high-water marks (free blocks below them included: they come
    /// back into use first).
    pub(crate) fn in_use<'m>(&self, shared: &Shared<'m>) -> Arrays<'m> {
        let a = sections::<K>(shared).0[self.active];
        let upto = |pool: &Pool, units: usize| pool.next as usize * units;
        Arrays {
            dir: a.dir,
            nodes: &a.nodes[..upto(&self.alloc.nodes, 1).min(a.nodes.len())],
            leaves: &a.leaves[..upto(&self.alloc.leaves, 1).min(a.leaves.len())],
            singles: &a.singles[..upto(&self.alloc.singles, UNIT_WORDS).min(a.singles.len())],
        }
    }

    pub(crate) fn stats(&self, shared: &Shared<'_>) -> ArenaStats {
        ArenaStats {
            nodes: self.alloc.nodes.live,
            leaves: self.alloc.leaves.live,
            singles: self.alloc.singles.live,
            bytes: self.fib(shared).bytes(),
        }
    }

    /// Sets (`Some`) or removes (`None`) the owner of `key/len` (host bits already clear) and
    /// publishes the change. Returns the previous owner. A change that fits in neither section
    /// is refused and leaves the table as it was.
    pub(crate) fn set(
        &mut self,
        key: K,
        len: u8,
        peer: Option<u32>,
        shared: &Shared<'_>,
        epoch: &Epoch<'_>,
    ) -> Result<Option<u32>, Error> {
        let old = match peer {
            Some(p) => self.master.insert((key, len), p),
            None => self.master.remove(&(key, len)),
        };
        if old == peer {
            return Ok(old);
        }
        let retired = if u32::from(len) <= K::DIR_BITS {
            match peer {
                Some(p) => self.short.insert((key, len), p),
                None => self.short.remove(&(key, len)),
            };
            self.refresh_short(key, len, shared);
            Vec::new()
        } else {
            match self.refresh_long(key, len, shared) {
                Some(retired) => retired,
                None => {
                    // The section ran out of room part-way; nothing was published. Build the
                    // family (with the change) compactly into the other section.
                    if let Err(e) = self.rebuild(shared, epoch) {
                        match old {
                            Some(p) => self.master.insert((key, len), p),
                            None => self.master.remove(&(key, len)),
                        };
                        return Err(e);
                    }
                    return Ok(old);
                }
            }
        };
        // Readers pinned in the current epoch may still hold the replaced blocks; those that
        // pin after the advance cannot reach them.
        let tag = epoch.current();
        self.alloc
            .retired
            .extend(retired.into_iter().map(|b| (tag, b)));
        self.reclaim(epoch.advance());
        Ok(old)
    }

    /// Builds the family from the map into the other section and switches readers to it
    /// (compaction; the way out when the active section is full).
    pub(crate) fn rebuild(&mut self, shared: &Shared<'_>, epoch: &Epoch<'_>) -> Result<(), Error> {
        let sorted: Vec<Entry<K>> = self.master.iter().map(|(&(k, l), &p)| (k, l, p)).collect();
        let mut sink = VecSink::default();
        let dir = build_family::<K, _>(&mut sink, &sorted);
        let (secs, f) = sections::<K>(shared);
        let target = 1 - self.active;
        let fib = Fib::<K>::new(secs[target]);
        let family = if K::BITS == 32 { "IPv4" } else { "IPv6" };
        if sink.nodes.len() > fib.nodes.len()
            || sink.leaves.len() > fib.leaves.len()
            || sink.singles.len() > fib.singles.len()
        {
            return Err(Error::Full(family));
        }
        // Readers that pinned before the last switch may still walk the other section.
        if !epoch.wait_past(self.switched, PATIENCE) {
            return Err(Error::Busy);
        }
        if !fib.fill(&dir, &sink.nodes, &sink.leaves, &sink.singles) {
            return Err(Error::Full(family));
        }
        shared.header.active[f].store(target as u64, Ordering::SeqCst);
        self.active = target;
        self.switched = epoch.current();
        epoch.advance();
        self.alloc = Alloc::new(
            (sink.nodes.len(), fib.nodes.len()),
            (sink.leaves.len(), fib.leaves.len()),
            (
                sink.singles.len() / UNIT_WORDS,
                fib.singles.len() / UNIT_WORDS,
            ),
        );
        Ok(())
    }

    fn reclaim(&mut self, oldest_pinned: u64) {
        while let Some(&(tag, block)) = self.alloc.retired.front() {
            if tag >= oldest_pinned {
                break;
            }
            self.alloc.retired.pop_front();
            self.alloc.free(block);
        }
    }

    /// Recomputes the directory defaults of the slots `key/len` (len <= directory bits) covers.
    fn refresh_short(&mut self, key: K, len: u8, shared: &Shared<'_>) {
        let fib = self.fib(shared);
        let start = key.top();
        let n = 1usize << (K::DIR_BITS - u32::from(len));
        let mut inherited = NONE;
        for l in (0..len).rev() {
            if let Some(&p) = self.short.get(&(key.mask(l), l)) {
                inherited = p;
                break;
            }
        }
        let mut defaults = vec![inherited; n];
        let mut inside: Vec<(u8, usize, u32)> = self
            .short
            .range((key, len)..=(key.last(len), K::DIR_BITS as u8))
            .filter(|((_, l), _)| *l >= len && u32::from(*l) <= K::DIR_BITS)
            .map(|(&(k, l), &p)| (l, k.top() - start, p))
            .collect();
        inside.sort_by_key(|e| e.0);
        for (l, offset, p) in inside {
            let count = 1usize << (K::DIR_BITS - u32::from(l));
            defaults[offset..offset + count].fill(p);
        }
        for (i, &d) in defaults.iter().enumerate() {
            let (old, child) = fib.read_dir(start + i);
            if old != d {
                fib.publish_dir(start + i, d, child);
            }
        }
    }

    /// Path-copies the slot holding `key/len` (len > 16) and publishes it; returns the blocks it
    /// replaced, or `None` when the arena overflowed (then nothing was published).
    fn refresh_long(&mut self, key: K, len: u8, shared: &Shared<'_>) -> Option<Vec<Block>> {
        let slot = key.top();
        let fib = self.fib(shared);
        let (default, child) = fib.read_dir(slot);
        let cur = if child & SINGLE != 0 {
            Kid::Leaf(child)
        } else {
            Kid::Node(fib.read_node(child))
        };
        let mut sink = ArenaSink {
            fib,
            alloc: &mut self.alloc,
            retire: Vec::new(),
            allocated: Vec::new(),
            overflow: false,
        };
        let kid = update_kid(
            &self.master,
            &mut sink,
            cur,
            K::DIR_BITS,
            key.mask(K::DIR_BITS as u8),
            NONE,
            (key, len),
        );
        let new_child = dir_child(&mut sink, kid);
        if sink.overflow {
            let allocated = std::mem::take(&mut sink.allocated);
            for b in allocated {
                self.alloc.free(b);
            }
            return None;
        }
        if let Kid::Node(_) = cur {
            sink.retire.push(Block::Nodes(child, 1));
        }
        fib.publish_dir(slot, default, new_child);
        Some(sink.retire)
    }
}

/// The value of child `c` of the node at `depth` over `region`: the longest prefix ending in
/// the node's stride that covers the child.
fn stride_value<K: Key>(master: &BTreeMap<(K, u8), u32>, region: K, depth: u32, c: usize) -> u32 {
    let key = region.with_chunk(depth, c);
    let end = (depth + STRIDE).min(K::BITS);
    for l in (depth + 1..=end).rev() {
        let l = l as u8;
        if let Some(&p) = master.get(&(key.mask(l), l)) {
            return p;
        }
    }
    NONE
}

/// Prefixes strictly inside `region` at `depth`, at most `limit` of them.
fn inside<K: Key>(
    master: &BTreeMap<(K, u8), u32>,
    region: K,
    depth: u32,
    limit: usize,
) -> Vec<Entry<K>> {
    master
        .range((region, depth as u8 + 1)..=(region.last(depth as u8), K::BITS as u8))
        .take(limit)
        .map(|(&(k, l), &p)| (k, l, p))
        .collect()
}

/// The new form of the child `cur` over `region` at `depth` after `changed` (strictly inside
/// the region) was set or removed in `master`. `fallback` is the child's own value.
fn update_kid<K: Key>(
    master: &BTreeMap<(K, u8), u32>,
    sink: &mut ArenaSink<'_, K>,
    cur: Kid,
    depth: u32,
    region: K,
    fallback: u32,
    changed: (K, u8),
) -> Kid {
    let node = match cur {
        Kid::Leaf(v) => {
            // A leaf region held at most one longer prefix before this change: rebuild it.
            sink.retire_leaf_value(v);
            return build_kid(
                sink,
                &inside(master, region, depth, usize::MAX),
                depth,
                fallback,
            );
        }
        Kid::Node(node) => node,
    };
    let now_inside = inside(master, region, depth, 2);
    if now_inside.len() < 2 {
        sink.retire_subtree(&node);
        return build_kid(sink, &now_inside, depth, fallback);
    }
    // A path-compressed node is handled as the chain node it stands for, one level at a time;
    // `emit_node` folds what is still a chain back. That chain node has no blocks of its own.
    let folded = node.skip > 0;
    let mut kids = if folded {
        unfold_chain(&node)
    } else {
        decode_node(&sink.fib, &node)
    };
    let (key, len) = changed;
    let end = depth + STRIDE;
    if u32::from(len) <= end {
        let start = key.chunk(depth);
        let covered = 1usize << (end - u32::from(len));
        for (c, kid) in kids.iter_mut().enumerate().skip(start).take(covered) {
            let v = stride_value(master, region, depth, c);
            *kid = match *kid {
                Kid::Node(mut m) => {
                    m.default = v;
                    Kid::Node(m)
                }
                Kid::Leaf(x) if is_single(x) => {
                    sink.retire_leaf_value(x);
                    // The child's region is untouched by this change: rebuilt, it is the
                    // same singleton with the new fallback.
                    let child = region.with_chunk(depth, c);
                    build_kid(sink, &inside(master, child, end, usize::MAX), end, v)
                }
                Kid::Leaf(_) => Kid::Leaf(v),
            };
        }
    } else {
        let c = key.chunk(depth);
        let child_fallback = match kids[c] {
            Kid::Node(m) => m.default,
            Kid::Leaf(x) if is_single(x) => sink.fib.single_fallback(x),
            Kid::Leaf(x) => x,
        };
        kids[c] = update_kid(
            master,
            sink,
            kids[c],
            end,
            key.mask(end as u8),
            child_fallback,
            changed,
        );
    }
    if !folded {
        sink.retire_node_blocks(&node);
    }
    Kid::Node(emit_node(sink, &kids, node.default))
}
