//! The forwarding structure the workers read: a poptrie-style multibit trie in flat arrays.
//!
//! Layout (one [`Fib`] per address family), every reference an index, never a pointer, so the
//! same words can live in a shared-memory region mapped at different addresses by the control
//! process (the only writer) and the workers (readers):
//!
//! - `dir`: one word per value of the address's top bits (20 for both families). Low
//!   half: the peer of the longest prefix no longer than that covering the slot (or [`NONE`]);
//!   high half: the slot's child.
//! - `nodes`: [`NODE_WORDS`] words per node. A node resolves 6 bits (64 children). Its `vector`
//!   has bit `i` set when child `i` is itself a node; those children sit contiguously from
//!   `base1`, so child `i` is `base1 + popcount(vector & below(i))` (Asai and Ohara, "Poptrie",
//!   SIGCOMM 2015). The remaining children are leaves, run-length compressed: `leafvec` marks
//!   where a run of equal leaf values starts, and the value of child `i` is
//!   `leaves[base0 + popcount(leafvec & upto(i)) - 1]`. `default` is the peer of the longest prefix
//!   that ends exactly at this node's depth and covers it, or [`NONE`]. A node may stand for a
//!   chain of up to [`MAX_SKIP`] single-child levels above its own stride (path compression;
//!   see [`Node`]): a peers' address pool deep below its directory slot costs one round, not
//!   one per 6 bits.
//! - `leaves`: one `u32` per leaf run: a peer id, [`NONE`] ("no prefix ends in this stride; use
//!   the best found above"), or a singleton reference ([`SINGLE`], [`LONG`] for the long form,
//!   and the index of its first unit).
//! - `singles`: path-compressed leaves in 16-byte units (see [`Single`]). A child region that
//!   holds exactly one prefix longer than the child's depth is not expanded into nodes; the
//!   leaf names a singleton entry (the prefix, the peer, and the fallback value of the child
//!   itself) and the lookup compares the address with the prefix once. This keeps a peer's /32 or /128 one step below the point where it diverges
//!   from its neighbours instead of a chain of single-child nodes.
//!
//! Each prefix is recorded exactly once, in the node whose stride contains its last bit (as leaf
//! values or child defaults), with "no prefix here" meaning "inherit": so a change touches one
//! node, and the lookup carries the best value found so far down the path. The shape depends only
//! on the set of prefixes (a child is a node iff its region holds two or more longer prefixes,
//! and chains of single-child nodes are folded), so an incrementally updated table is identical
//! in shape to a bulk-built one.
//!
//! Concurrency contract: the writer (control) only writes words that no reader can reach:
//! freshly allocated blocks, then publishes them with one `Release` store of a `dir` word (see
//! `update.rs`). Readers load the `dir` word with `Acquire` and everything below it with
//! `Relaxed`: blocks reachable from a published word never change until they are retired and
//! the grace period (`epoch.rs`) has passed. All words are atomics, so even a bug cannot make a
//! torn read undefined behaviour; it stays a wrong answer, which the concurrency tests look for.

use std::cell::RefCell;
use std::hint::select_unpredictable;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::key::{Key, STRIDE};
use crate::memory::Arrays;

/// No prefix: the lookup misses (or, inside the trie, inherits the best value above).
pub(crate) const NONE: u32 = u32::MAX;
/// Tag of a leaf or child that names a singleton entry; peer ids stay below it.
pub(crate) const SINGLE: u32 = 1 << 31;
/// Tag of a singleton reference whose entry has the long form (two units; IPv6 only).
pub(crate) const LONG: u32 = 1 << 30;
/// Unit index bits of a singleton reference.
const UNIT_INDEX: u32 = LONG - 1;
/// Words per singleton unit (16 bytes).
pub(crate) const UNIT_WORDS: usize = 2;
/// Key bits an IPv6 singleton keeps in its short form.
const TAIL_BITS: u32 = 57;
const TAIL: u64 = (1 << TAIL_BITS) - 1;
/// Words per node: vector, leafvec, base1 | base0 << 32, header (default, skip, skipped bits).
pub(crate) const NODE_WORDS: usize = 4;
/// What a lookup reads in place of a node past the array (only a corrupt index points there):
/// no default, no children, no leaves, so the walk ends with the best value found above it.
const DEAD_END: [u64; NODE_WORDS] = [0, 0, 0, NONE as u64];
/// Most levels one node skips (path compression): its skipped bits share the header word
/// with the default, 4 levels of 6 bits.
pub(crate) const MAX_SKIP: u8 = 4;

/// Lookups a batch advances together (see [`Fib::lookup_batch`]). More lanes keep more cache
/// misses in flight per round; past 128 the gain was within noise (random lookups of the
/// provider tables: 64 -> 128 lanes about +5%, 128 -> 256 up to +5% more), while every call
/// initialises arrays of this size, which a worker's batch of 64 would pay for.
pub(crate) const GROUP: usize = 128;
// Lane numbers are `u8`s and indices are masked with `GROUP - 1`.
const _: () = assert!(GROUP.is_power_of_two() && GROUP <= 256);

/// A node as the writer handles it.
///
/// Path compression: a node whose region has no prefix ending in its stride and all longer
/// prefixes under one child (a "chain" node, e.g. the levels between a directory slot and a
/// peers' /64 address pool) is not stored; its child is stored in its place with `skip` one
/// higher and the chain node's chunk prepended to `skipped`. A lookup that reaches a node with
/// `skip > 0` at depth `d` compares its address bits `d..d + 6 * skip` with `skipped`: on a
/// mismatch no stored prefix below can match and the answer is the best found above; on a
/// match it continues with the node's own stride at `d + 6 * skip`. The chain nodes' defaults
/// are all [`NONE`] except the first one's, which the compressed node carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Node {
    pub vector: u64,
    pub leafvec: u64,
    /// First child node.
    pub base1: u32,
    /// First leaf run.
    pub base0: u32,
    pub default: u32,
    /// Levels skipped above this node's stride, `0..=MAX_SKIP`.
    pub skip: u8,
    /// The skipped address bits, right-aligned (`STRIDE * skip` bits).
    pub skipped: u32,
}

impl Node {
    /// The stored form.
    pub(crate) fn to_words(self) -> [u64; NODE_WORDS] {
        [
            self.vector,
            self.leafvec,
            u64::from(self.base1) | u64::from(self.base0) << 32,
            u64::from(self.default) | u64::from(self.skip) << 32 | u64::from(self.skipped) << 36,
        ]
    }

    fn from_words([vector, leafvec, bases, header]: [u64; NODE_WORDS]) -> Self {
        Self {
            vector,
            leafvec,
            base1: bases as u32,
            base0: (bases >> 32) as u32,
            default: header as u32,
            // Clamped: only a corrupt word holds more (see `lookup_group`).
            skip: ((header >> 32) as u8 & 0xF).min(MAX_SKIP),
            skipped: (header >> 36) as u32,
        }
    }
}

/// The working arrays of one group of [`Fib::lookup_batch`], one set per thread (a worker's
/// own state; setting up 9 KiB per batch showed as a fifth of the instructions of a lookup):
/// each group writes every entry it reads first. Per address (indexed like the group's addresses): `best`,
/// the best value inherited so far, and `result`, the value the walk ended on (a peer, NONE
/// for "inherit", or a singleton reference). Per lane, the lookups still walking packed at the
/// front after every round: `lane` (the address), `cur` (its node), `depth` and the round's
/// `words`, `next`, `leaf` and leaf `value`. `dir` holds the directory words.
struct Lanes {
    best: [u32; GROUP],
    result: [u32; GROUP],
    lane: [u8; GROUP],
    cur: [u32; GROUP],
    depth: [u32; GROUP],
    dir: [u64; GROUP],
    words: [[u64; NODE_WORDS]; GROUP],
    next: [u32; GROUP],
    leaf: [u32; GROUP],
    value: [u32; GROUP],
}

thread_local! {
    static LANES: RefCell<Lanes> = RefCell::new(Lanes::default());
}

impl Default for Lanes {
    fn default() -> Self {
        Self {
            best: [NONE; GROUP],
            result: [NONE; GROUP],
            lane: [0; GROUP],
            cur: [0; GROUP],
            depth: [0; GROUP],
            dir: [0; GROUP],
            words: [[0; NODE_WORDS]; GROUP],
            next: [0; GROUP],
            leaf: [0; GROUP],
            value: [0; GROUP],
        }
    }
}

/// [`Fib::lookup_batch`]'s groups, compiled per CPU level (the popcounts of every round are
/// the instructions that differ) and dispatched on the running CPU's features.
#[multiversion::multiversion(targets("x86_64+popcnt+bmi1+bmi2", "x86_64+popcnt"))]
fn lookup_groups<K: Key>(
    fib: &Fib<'_, K>,
    lanes: &mut Lanes,
    addrs: &[K],
    out: &mut [Option<u32>],
) {
    for (a, o) in addrs.chunks(GROUP).zip(out.chunks_mut(GROUP)) {
        fib.lookup_group(lanes, a, o);
    }
}

/// A singleton entry as the writer handles it.
///
/// Stored in 16-byte units. IPv4: `key | len << 32`, `peer | fallback << 32`. IPv6, short
/// form: the last [`TAIL_BITS`] bits of the prefix (bits `len - 57..len`) `| (len - 1) << 57`,
/// then `peer | fallback << 32`. A lookup reaches a singleton at depth `d` only through a
/// path that matched the address's bits `0..d`, so comparing bits `len - 57..len` decides
/// the match whenever `len - d <= 57`: a peer's /128 below its pool's nodes, a /48 or /64
/// one level below the directory. Otherwise (a long prefix alone high up) the long form
/// takes two units: key high, key low, `len`, `peer | fallback << 32`, and the reference
/// carries [`LONG`]. Halving most IPv6 singletons halves the largest array the workers read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Single<K> {
    pub key: K,
    pub len: u8,
    pub peer: u32,
    pub fallback: u32,
}

impl<K: Key> Single<K> {
    /// The stored words of this singleton reached at `depth`, and whether it is long.
    pub(crate) fn encode(&self, depth: u32) -> ([u64; 4], bool) {
        let tail = u64::from(self.peer) | u64::from(self.fallback) << 32;
        let key = self.key.to_u128();
        let len = u32::from(self.len);
        if K::BITS == 32 {
            ([key as u64 | u64::from(len) << 32, tail, 0, 0], false)
        } else if len.saturating_sub(depth) <= TAIL_BITS && len > 0 {
            let bits = (key >> (K::BITS - len)) as u64 & TAIL;
            ([bits | u64::from(len - 1) << TAIL_BITS, tail, 0, 0], false)
        } else {
            ([(key >> 64) as u64, key as u64, u64::from(len), tail], true)
        }
    }
}

/// The reference (leaf value) of the singleton at unit `index`.
pub(crate) fn single_ref(index: u32, long: bool) -> u32 {
    SINGLE | if long { LONG } else { 0 } | index
}

/// A singleton reference's first unit and unit count.
pub(crate) fn single_units(r: u32) -> (u32, usize) {
    (r & UNIT_INDEX, if r & LONG != 0 { 2 } else { 1 })
}

/// Whether a stored value names a singleton entry.
#[inline(always)]
pub(crate) fn is_single(v: u32) -> bool {
    v & SINGLE != 0 && v != NONE
}

/// The answer at a singleton (words as loaded; `long` from its reference): its peer if `addr`
/// is inside its prefix, else its fallback, else `best`.
#[inline(always)]
fn single_answer<K: Key>(addr: K, w: &[u64; 4], long: bool, best: u32) -> u32 {
    let a = addr.to_u128();
    let (inside, tail) = if K::BITS == 32 {
        let len = (w[0] >> 32) as u32 & 0xFF;
        let differ = (a as u64 ^ w[0]) & 0xFFFF_FFFF;
        (differ.wrapping_shr(32u32.wrapping_sub(len)) == 0, w[1])
    } else if long {
        let key = u128::from(w[0]) << 64 | u128::from(w[1]);
        let shift = 128u32.wrapping_sub(w[2] as u32 & 0xFF);
        ((a ^ key).checked_shr(shift).unwrap_or(0) == 0, w[3])
    } else {
        let len_1 = (w[0] >> TAIL_BITS) as u32;
        ((a >> (127 - len_1)) as u64 & TAIL == w[0] & TAIL, w[1])
    };
    let (peer, fallback) = (tail as u32, (tail >> 32) as u32);
    let outside = select_unpredictable(fallback != NONE, fallback, best);
    select_unpredictable(inside, peer, outside)
}

/// One address family's forwarding arrays in one section (see the module documentation): a
/// view; the words live in a [`crate::Memory`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fib<'m, K> {
    pub(crate) dir: &'m [AtomicU64],
    pub(crate) nodes: &'m [[AtomicU64; NODE_WORDS]],
    pub(crate) leaves: &'m [AtomicU32],
    pub(crate) singles: &'m [AtomicU64],
    _key: PhantomData<K>,
}

/// A node's words as stored.
#[inline(always)]
fn load_node(n: &[AtomicU64; NODE_WORDS]) -> [u64; NODE_WORDS] {
    n.each_ref().map(|w| w.load(Ordering::Relaxed))
}

/// A directory word as stored: complemented, so that zeroed memory reads as "no prefix, no
/// child" (`NONE`, `NONE`) and a fresh mapping is an empty table.
#[inline(always)]
pub(crate) fn dir_word(stored: u64) -> u64 {
    !stored
}

impl<'m, K: Key> Fib<'m, K> {
    pub(crate) fn new(a: Arrays<'m>) -> Self {
        Self {
            dir: a.dir,
            nodes: a.nodes,
            leaves: a.leaves,
            singles: a.singles,
            _key: PhantomData,
        }
    }

    /// Writes a bulk build (`dir`, `nodes`, `leaves`, `singles` as built) into this section,
    /// which no reader may be reading. False if it does not fit.
    pub(crate) fn fill(
        &self,
        dir: &[u64],
        nodes: &[[u64; NODE_WORDS]],
        leaves: &[u32],
        singles: &[u64],
    ) -> bool {
        if dir.len() != self.dir.len()
            || nodes.len() > self.nodes.len()
            || leaves.len() > self.leaves.len()
            || singles.len() > self.singles.len()
        {
            return false;
        }
        for (w, n) in self.nodes.iter().zip(nodes) {
            for (w, &v) in w.iter().zip(n) {
                w.store(v, Ordering::Relaxed);
            }
        }
        for (w, &v) in self.leaves.iter().zip(leaves) {
            w.store(v, Ordering::Relaxed);
        }
        for (w, &v) in self.singles.iter().zip(singles) {
            w.store(v, Ordering::Relaxed);
        }
        for (w, &v) in self.dir.iter().zip(dir) {
            w.store(!v, Ordering::Release);
        }
        true
    }

    /// Bytes of the arrays (the section's size).
    pub(crate) fn bytes(&self) -> usize {
        (self.dir.len() + self.nodes.len() * NODE_WORDS + self.singles.len()) * 8
            + self.leaves.len() * 4
    }

    pub(crate) fn read_node(&self, i: u32) -> Node {
        Node::from_words(load_node(&self.nodes[i as usize]))
    }

    /// Writer only, into a block no reader can reach yet.
    pub(crate) fn write_node(&self, i: u32, node: &Node) {
        for (w, v) in self.nodes[i as usize].iter().zip(node.to_words()) {
            w.store(v, Ordering::Relaxed);
        }
    }

    /// Leaf `i`; [`NONE`] past the array (only a corrupt index points there).
    pub(crate) fn read_leaf(&self, i: u32) -> u32 {
        self.leaves
            .get(i as usize)
            .map_or(NONE, |l| l.load(Ordering::Relaxed))
    }

    /// Writer only, into a block no reader can reach yet.
    pub(crate) fn write_leaf(&self, i: u32, value: u32) {
        self.leaves[i as usize].store(value, Ordering::Relaxed);
    }

    /// The words of the singleton `r` names (the last two unused for a short one).
    fn read_single(&self, r: u32) -> [u64; 4] {
        let (i, units) = single_units(r);
        let mut w = [0; 4];
        let at = i as usize * UNIT_WORDS;
        // Zeros past the array (a corrupt reference): a wrong answer, not a panic.
        let words = self.singles.get(at..at + units * UNIT_WORDS).unwrap_or(&[]);
        for (w, x) in w.iter_mut().zip(words) {
            *w = x.load(Ordering::Relaxed);
        }
        w
    }

    /// The fallback of the singleton `r` names (the high half of its last word).
    pub(crate) fn single_fallback(&self, r: u32) -> u32 {
        let (i, units) = single_units(r);
        let last = (i as usize + units) * UNIT_WORDS - 1;
        (self.singles[last].load(Ordering::Relaxed) >> 32) as u32
    }

    /// Writer only, into units no reader can reach yet.
    pub(crate) fn write_single(&self, index: u32, words: &[u64]) {
        let at = index as usize * UNIT_WORDS;
        for (w, &v) in self.singles[at..].iter().zip(words) {
            w.store(v, Ordering::Relaxed);
        }
    }

    pub(crate) fn read_dir(&self, slot: usize) -> (u32, u32) {
        let e = dir_word(self.dir[slot].load(Ordering::Relaxed));
        (e as u32, (e >> 32) as u32)
    }

    /// Publishes a directory slot: everything written before becomes visible to a reader that
    /// loads this word.
    pub(crate) fn publish_dir(&self, slot: usize, default: u32, child: u32) {
        self.dir[slot].store(
            !(u64::from(default) | u64::from(child) << 32),
            Ordering::Release,
        );
    }

    /// Longest-prefix match for a batch: `out[i]` is the answer for `addrs[i]`. Lookups
    /// advance in groups of [`GROUP`] lanes, one trie level per round, and each round is split
    /// into phases whose loads depend only on earlier phases: all lanes' node loads, then all
    /// lanes' leaf loads, and at the end all singleton loads. The loads of one phase are
    /// independent, so the memory system serves them in parallel instead of one lookup's chain
    /// of cache misses at a time. The steps select instead of branching, so nothing is
    /// mispredicted: `select_unpredictable` keeps the compiler from turning the selects back
    /// into branches (it did for the leaf load and the final choice, and those mispredictions
    /// cost IPv4 lookups a fifth of their throughput). Finished lanes are compacted away after
    /// every round.
    ///
    /// Built for baseline x86-64 (no `popcnt` instruction: each popcount is a dozen
    /// instructions), and again for CPUs with `popcnt` (and BMI), chosen once at run time.
    pub(crate) fn lookup_batch(&self, addrs: &[K], out: &mut [Option<u32>]) {
        LANES.with_borrow_mut(|lanes| lookup_groups(self, lanes, addrs, out));
    }

    #[inline(always)]
    fn lookup_group(&self, lanes: &mut Lanes, addrs: &[K], out: &mut [Option<u32>]) {
        let n = addrs.len().min(out.len()).min(GROUP);
        let (addrs, out) = (&addrs[..n], &mut out[..n]);
        // Lane and address indices are masked with `GROUP - 1` (a no-op) so that indexing the
        // per-group arrays needs no bounds check.
        const M: usize = GROUP - 1;
        let Lanes {
            best,
            result,
            lane,
            cur,
            depth,
            dir,
            words,
            next,
            leaf,
            value,
        } = lanes;
        // Directory loads first, in a loop of their own: nothing in it waits for a miss.
        for (e, a) in dir.iter_mut().zip(addrs) {
            *e = dir_word(self.dir[a.top()].load(Ordering::Acquire));
        }
        let mut active = 0;
        for (j, &e) in dir[..n].iter().enumerate() {
            best[j & M] = e as u32;
            let child = (e >> 32) as u32;
            result[j & M] = child;
            // Branch-free compaction: always write, advance only for a node.
            lane[active & M] = j as u8;
            cur[active & M] = child;
            active += usize::from(child & SINGLE == 0);
        }
        depth[..active].fill(K::DIR_BITS);
        // Words from a corrupt table (a bug in the writer) must cost a wrong answer at worst,
        // never a panic or an endless walk in a worker: a child index past the node array
        // reads as a node with nothing in or below it ([`DEAD_END`]), and the walk stops after as many rounds as a real one can
        // take (the lanes still walking then answer with the best value found so far).
        let mut rounds = (K::BITS - K::DIR_BITS).div_ceil(STRIDE);
        while active > 0 && rounds > 0 {
            rounds -= 1;
            for (w, &c) in words.iter_mut().zip(&cur[..active]) {
                // The bounds check a plain index would make, without its panic.
                *w = self.nodes.get(c as usize).map_or(DEAD_END, load_node);
            }
            for l in 0..active {
                let j = usize::from(lane[l]) & M;
                let [vector, leafvec, bases, header] = words[l];
                let skip = (header >> 32) as u32 & 0xF;
                let width = STRIDE * (skip + 1);
                let window = addrs[j].window(depth[l], width);
                // A path-compressed node's skipped bits must match, or nothing below does.
                let missed = window >> STRIDE != (header >> 36) as u32;
                let bit = 1u64 << (window & 63);
                let below = bit - 1;
                let internal = vector & bit != 0;
                // Child nodes are counted in `vector`, leaf runs in `leafvec`: one popcount.
                let counted =
                    select_unpredictable(internal, vector & below, leafvec & (bit | below));
                let rank = counted.count_ones();
                let default = header as u32;
                best[j] = select_unpredictable(default != NONE, default, best[j]);
                let child = (bases as u32).wrapping_add(rank);
                next[l] = select_unpredictable(internal & !missed, child, NONE);
                // NONE (no leaf: the walk goes on, or the compressed path missed) reads as
                // "inherit" below.
                let run = ((bases >> 32) as u32).wrapping_add(rank).wrapping_sub(1);
                leaf[l] = select_unpredictable(internal | missed, NONE, run);
                depth[l] = depth[l].wrapping_add(width);
            }
            // Leaf loads in a loop of their own (entry 0 stands in for "no leaf"; selected
            // away below), then the bookkeeping.
            for (v, &i) in value.iter_mut().zip(&leaf[..active]) {
                let i = i as usize;
                let at = select_unpredictable(i < self.leaves.len(), i, 0);
                *v = self
                    .leaves
                    .get(at)
                    .map_or(NONE, |x| x.load(Ordering::Relaxed));
            }
            let mut still = 0;
            for l in 0..active {
                let j = usize::from(lane[l]) & M;
                // Unconditional: a lane that goes on overwrites it when it ends.
                result[j] =
                    select_unpredictable((leaf[l] as usize) < self.leaves.len(), value[l], NONE);
                lane[still] = lane[l];
                cur[still] = next[l];
                depth[still] = depth[l];
                still += usize::from(next[l] != NONE);
            }
            active = still;
        }
        for j in 0..n {
            let r = result[j & M];
            let single = is_single(r);
            let at = select_unpredictable(single, r & UNIT_INDEX, 0) as usize * UNIT_WORDS;
            let w = &mut words[j & M];
            if let Some(s) = self.singles.get(at..at + UNIT_WORDS) {
                w[0] = s[0].load(Ordering::Relaxed);
                w[1] = s[1].load(Ordering::Relaxed);
            }
            // Rare (a long IPv6 prefix alone high in the trie): a predictable branch.
            if K::BITS == 128 && single && r & LONG != 0 {
                if let Some(s) = self.singles.get(at + UNIT_WORDS..at + 2 * UNIT_WORDS) {
                    w[2] = s[0].load(Ordering::Relaxed);
                    w[3] = s[1].load(Ordering::Relaxed);
                }
            }
        }
        for (j, (o, &a)) in out.iter_mut().zip(addrs).enumerate() {
            let (r, best) = (result[j & M], best[j & M]);
            let long = K::BITS == 128 && is_single(r) && r & LONG != 0;
            let from_single = single_answer(a, &words[j & M], long, best);
            let v = select_unpredictable(r == NONE, best, r);
            let v = select_unpredictable(is_single(r), from_single, v);
            *o = (v != NONE).then_some(v);
        }
    }

    /// Longest-prefix match: the peer id, or [`NONE`]. One lookup at a time (the writer's
    /// lookups, single lookups); the same walk as [`Fib::lookup_batch`], with branches.
    pub(crate) fn lookup(&self, addr: K) -> u32 {
        let e = dir_word(self.dir[addr.top()].load(Ordering::Acquire));
        let mut best = e as u32;
        let mut result = (e >> 32) as u32;
        let mut depth = K::DIR_BITS;
        // The depth bound only stops a walk through corrupt words; a real walk ends earlier.
        while result & SINGLE == 0 && depth < K::BITS {
            // A corrupt index ends the walk (see `lookup_group`).
            let Some(node) = self.nodes.get(result as usize) else {
                return best;
            };
            let node = Node::from_words(load_node(node));
            if node.default != NONE {
                best = node.default;
            }
            let width = STRIDE * (u32::from(node.skip) + 1);
            let window = addr.window(depth, width);
            if window >> STRIDE != node.skipped {
                return best;
            }
            depth += width;
            let bit = 1u64 << (window & 63);
            if node.vector & bit != 0 {
                result = node
                    .base1
                    .wrapping_add((node.vector & (bit - 1)).count_ones());
            } else {
                let rank = (node.leafvec & (bit | (bit - 1))).count_ones();
                result = self.read_leaf(node.base0.wrapping_add(rank).wrapping_sub(1));
                break;
            }
        }
        if result == NONE {
            return best;
        }
        if result & SINGLE == 0 {
            return result;
        }
        single_answer(addr, &self.read_single(result), result & LONG != 0, best)
    }
}
