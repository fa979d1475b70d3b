//! The forwarding structure the workers read: a poptrie-style multibit trie in flat arrays.
//!
//! Layout (one [`Fib`] per address family), every reference an index, never a pointer, so the
//! same words can live in a shared-memory region mapped at different addresses by the control
//! process (the only writer) and the workers (readers):
//!
//! - `dir`: one word per value of the address's top bits (20 for IPv4, 18 for IPv6). Low
//!   half: the peer of the longest prefix no longer than that covering the slot (or [`NONE`]);
//!   high half: the slot's child.
//! - `nodes`: [`NODE_WORDS`] words per node. A node resolves 6 bits (64 children). Its `vector`
//!   has bit `i` set when child `i` is itself a node; those children sit contiguously from
//!   `base1`, so child `i` is `base1 + popcount(vector & below(i))` (Asai and Ohara, "Poptrie",
//!   SIGCOMM 2015). The remaining children are leaves, run-length compressed: `leafvec` marks
//!   where a run of equal leaf values starts, and the value of child `i` is
//!   `leaves[base0 + popcount(leafvec & upto(i)) - 1]`. `default` is the peer of the longest prefix
//!   that ends exactly at this node's depth and covers it, or [`NONE`].
//! - `leaves`: one `u32` per leaf run: a peer id, [`NONE`] ("no prefix ends in this stride; use
//!   the best found above"), or [`SINGLE`]` | i`.
//! - `singles`: path-compressed leaves. A child region that holds exactly one prefix longer than
//!   the child's depth is not expanded into nodes; the leaf names a singleton entry (key, length,
//!   peer, and the fallback value of the child itself) and the lookup compares the address with
//!   the key once. This keeps a peer's /32 or /128 one step below the point where it diverges
//!   from its neighbours instead of a chain of single-child nodes.
//!
//! Each prefix is recorded exactly once, in the node whose stride contains its last bit (as leaf
//! values or child defaults), with "no prefix here" meaning "inherit": so a change touches one
//! node, and the lookup carries the best value found so far down the path. The shape depends only
//! on the set of prefixes (a child is a node iff its region holds two or more longer prefixes),
//! so an incrementally updated table is identical in shape to a bulk-built one.
//!
//! Concurrency contract: the writer (control) only writes words that no reader can reach:
//! freshly allocated blocks, then publishes them with one `Release` store of a `dir` word (see
//! `update.rs`). Readers load the `dir` word with `Acquire` and everything below it with
//! `Relaxed`: blocks reachable from a published word never change until they are retired and
//! the grace period (`epoch.rs`) has passed. All words are atomics, so even a bug cannot make a
//! torn read undefined behaviour; it stays a wrong answer, which the concurrency tests look for.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::key::{Key, STRIDE};

/// No prefix: the lookup misses (or, inside the trie, inherits the best value above).
pub(crate) const NONE: u32 = u32::MAX;
/// Tag of a leaf or child that names a singleton entry; peer ids stay below it.
pub(crate) const SINGLE: u32 = 1 << 31;
/// Words per node: vector, leafvec, base1 | base0 << 32, default.
pub(crate) const NODE_WORDS: usize = 4;

/// Lookups a batch advances together (see [`Fib::lookup_batch`]).
pub(crate) const GROUP: usize = 64;

/// A node as the writer handles it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Node {
    pub vector: u64,
    pub leafvec: u64,
    /// First child node.
    pub base1: u32,
    /// First leaf run.
    pub base0: u32,
    pub default: u32,
}

/// A singleton entry as the writer handles it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Single<K> {
    pub key: K,
    pub len: u8,
    pub peer: u32,
    pub fallback: u32,
}

/// One address family's forwarding arrays; see the module documentation.
#[derive(Debug)]
pub(crate) struct Fib<K> {
    pub(crate) dir: Box<[AtomicU64]>,
    pub(crate) nodes: Box<[AtomicU64]>,
    pub(crate) leaves: Box<[AtomicU32]>,
    pub(crate) singles: Box<[AtomicU64]>,
    _key: PhantomData<K>,
}

fn atomics64(words: &[u64], extra: usize) -> Box<[AtomicU64]> {
    words
        .iter()
        .map(|&w| AtomicU64::new(w))
        .chain(std::iter::repeat_with(|| AtomicU64::new(0)).take(extra))
        .collect()
}

impl<K: Key> Fib<K> {
    /// Arrays holding `dir`, `nodes`, `leaves` and `singles` as built, with room for
    /// `spare_nodes` more nodes, `spare_leaves` leaf runs and `spare_singles` singletons.
    pub(crate) fn from_parts(
        dir: &[u64],
        nodes: &[u64],
        leaves: &[u32],
        singles: &[u64],
        spare: (usize, usize, usize),
    ) -> Self {
        debug_assert_eq!(dir.len(), (1usize << K::DIR_BITS));
        Self {
            dir: atomics64(dir, 0),
            nodes: atomics64(nodes, spare.0 * NODE_WORDS),
            leaves: leaves
                .iter()
                .map(|&w| AtomicU32::new(w))
                .chain(std::iter::repeat_with(|| AtomicU32::new(0)).take(spare.1))
                .collect(),
            singles: atomics64(singles, spare.2 * K::SINGLE_WORDS),
            _key: PhantomData,
        }
    }

    /// Bytes of the arrays (what a shared-memory region for this family would hold).
    pub(crate) fn bytes(&self) -> usize {
        (self.dir.len() + self.nodes.len() + self.singles.len()) * 8 + self.leaves.len() * 4
    }

    pub(crate) fn read_node(&self, i: u32) -> Node {
        let n = i as usize * NODE_WORDS;
        let bases = self.nodes[n + 2].load(Ordering::Relaxed);
        Node {
            vector: self.nodes[n].load(Ordering::Relaxed),
            leafvec: self.nodes[n + 1].load(Ordering::Relaxed),
            base1: bases as u32,
            base0: (bases >> 32) as u32,
            default: self.nodes[n + 3].load(Ordering::Relaxed) as u32,
        }
    }

    /// Writer only, into a block no reader can reach yet.
    pub(crate) fn write_node(&self, i: u32, node: &Node) {
        let n = i as usize * NODE_WORDS;
        self.nodes[n].store(node.vector, Ordering::Relaxed);
        self.nodes[n + 1].store(node.leafvec, Ordering::Relaxed);
        self.nodes[n + 2].store(
            u64::from(node.base1) | u64::from(node.base0) << 32,
            Ordering::Relaxed,
        );
        self.nodes[n + 3].store(u64::from(node.default), Ordering::Relaxed);
    }

    pub(crate) fn read_leaf(&self, i: u32) -> u32 {
        self.leaves[i as usize].load(Ordering::Relaxed)
    }

    /// Writer only, into a block no reader can reach yet.
    pub(crate) fn write_leaf(&self, i: u32, value: u32) {
        self.leaves[i as usize].store(value, Ordering::Relaxed);
    }

    pub(crate) fn read_single(&self, i: u32) -> Single<K> {
        let w = i as usize * K::SINGLE_WORDS;
        let (key, len, tail) = if K::SINGLE_WORDS == 2 {
            let w0 = self.singles[w].load(Ordering::Relaxed);
            (u128::from(w0 as u32), (w0 >> 32) as u8, w + 1)
        } else {
            let hi = self.singles[w].load(Ordering::Relaxed);
            let lo = self.singles[w + 1].load(Ordering::Relaxed);
            let len = self.singles[w + 2].load(Ordering::Relaxed) as u8;
            (u128::from(hi) << 64 | u128::from(lo), len, w + 3)
        };
        let t = self.singles[tail].load(Ordering::Relaxed);
        Single {
            key: K::from_u128(key),
            len,
            peer: t as u32,
            fallback: (t >> 32) as u32,
        }
    }

    /// Writer only, into an entry no reader can reach yet.
    pub(crate) fn write_single(&self, i: u32, s: &Single<K>) {
        let w = i as usize * K::SINGLE_WORDS;
        let key = s.key.to_u128();
        let tail = if K::SINGLE_WORDS == 2 {
            self.singles[w].store(key as u64 | u64::from(s.len) << 32, Ordering::Relaxed);
            w + 1
        } else {
            self.singles[w].store((key >> 64) as u64, Ordering::Relaxed);
            self.singles[w + 1].store(key as u64, Ordering::Relaxed);
            self.singles[w + 2].store(u64::from(s.len), Ordering::Relaxed);
            w + 3
        };
        self.singles[tail].store(
            u64::from(s.peer) | u64::from(s.fallback) << 32,
            Ordering::Relaxed,
        );
    }

    pub(crate) fn read_dir(&self, slot: usize) -> (u32, u32) {
        let e = self.dir[slot].load(Ordering::Relaxed);
        (e as u32, (e >> 32) as u32)
    }

    /// Publishes a directory slot: everything written before becomes visible to a reader that
    /// loads this word.
    pub(crate) fn publish_dir(&self, slot: usize, default: u32, child: u32) {
        self.dir[slot].store(
            u64::from(default) | u64::from(child) << 32,
            Ordering::Release,
        );
    }

    /// Longest-prefix match for a batch: `out[i]` is the answer for `addrs[i]` (peer id or
    /// [`NONE`]). Lookups advance in groups of [`GROUP`] lanes, one trie level per round, and
    /// each round is split into phases whose loads depend only on earlier phases: all lanes'
    /// node loads, then all lanes' leaf loads. The loads of one phase are independent, so the
    /// memory system serves them in parallel instead of one lookup's chain of cache misses at
    /// a time, and the steps select instead of branching, so nothing is mispredicted. Lanes
    /// that have finished re-read their (cached) node until the whole group is done.
    pub(crate) fn lookup_batch(&self, addrs: &[K], out: &mut [u32]) {
        for (a, o) in addrs.chunks(GROUP).zip(out.chunks_mut(GROUP)) {
            self.lookup_group(a, o);
        }
    }

    #[inline(always)]
    fn lookup_group(&self, addrs: &[K], out: &mut [u32]) {
        let n = addrs.len().min(out.len()).min(GROUP);
        let (addrs, out) = (&addrs[..n], &mut out[..n]);
        // Per address (indexed like `addrs`): the value found so far and the best inherited.
        let mut best = [NONE; GROUP];
        let mut result = [NONE; GROUP];
        // Per lane: the lookups still walking, packed at the front after every round.
        let mut lane = [0u8; GROUP];
        let mut cur = [0u32; GROUP];
        let mut depth = [K::DIR_BITS; GROUP];
        let mut words = [[0u64; NODE_WORDS]; GROUP];
        for (w, a) in words.iter_mut().zip(addrs) {
            w[0] = self.dir[a.top()].load(Ordering::Acquire);
        }
        let mut active = 0;
        for j in 0..n {
            best[j] = words[j][0] as u32;
            let child = (words[j][0] >> 32) as u32;
            result[j] = child;
            // Branch-free compaction: always write, advance only for a node.
            lane[active] = j as u8;
            cur[active] = child;
            active += usize::from(child & SINGLE == 0);
        }
        let mut leaf = [0u32; GROUP];
        let mut next = [0u32; GROUP];
        while active > 0 {
            for (w, &c) in words.iter_mut().zip(&cur[..active]) {
                let base = c as usize * NODE_WORDS;
                for (k, word) in w.iter_mut().enumerate() {
                    *word = self.nodes[base + k].load(Ordering::Relaxed);
                }
            }
            for l in 0..active {
                let j = usize::from(lane[l]);
                let [vector, leafvec, bases, default] = words[l];
                let bit = 1u64 << addrs[j].chunk(depth[l].min(K::BITS - 1));
                let run = (leafvec & (bit | (bit - 1))).count_ones();
                leaf[l] = ((bases >> 32) as u32 + run).saturating_sub(1);
                // NONE marks "ends here": the leaf value is the result.
                next[l] = if vector & bit != 0 {
                    bases as u32 + (vector & (bit - 1)).count_ones()
                } else {
                    NONE
                };
                let default = default as u32;
                best[j] = if default != NONE { default } else { best[j] };
            }
            let mut still = 0;
            for l in 0..active {
                let j = usize::from(lane[l]);
                let v = self.leaves[leaf[l] as usize].load(Ordering::Relaxed);
                let ends = next[l] == NONE;
                result[j] = if ends { v } else { result[j] };
                lane[still] = lane[l];
                cur[still] = next[l];
                depth[still] = depth[l] + STRIDE;
                still += usize::from(!ends);
            }
            active = still;
        }
        for j in 0..n {
            let r = result[j];
            let single = r != NONE && r & SINGLE != 0;
            let base = if single { (r & !SINGLE) as usize } else { 0 } * K::SINGLE_WORDS;
            for (k, word) in words[j].iter_mut().take(K::SINGLE_WORDS).enumerate() {
                *word = self.singles[base + k].load(Ordering::Relaxed);
            }
        }
        for j in 0..n {
            let r = result[j];
            let s = Self::decode_single(&words[j]);
            let from_single = if addrs[j].mask(s.len) == s.key {
                s.peer
            } else if s.fallback != NONE {
                s.fallback
            } else {
                best[j]
            };
            out[j] = if r != NONE && r & SINGLE != 0 {
                from_single
            } else if r == NONE {
                best[j]
            } else {
                r
            };
        }
    }

    /// A singleton from its words as loaded.
    #[inline(always)]
    fn decode_single(w: &[u64; NODE_WORDS]) -> Single<K> {
        let (key, len, t) = if K::SINGLE_WORDS == 2 {
            (u128::from(w[0] as u32), (w[0] >> 32) as u8, w[1])
        } else {
            (u128::from(w[0]) << 64 | u128::from(w[1]), w[2] as u8, w[3])
        };
        Single {
            key: K::from_u128(key),
            len,
            peer: t as u32,
            fallback: (t >> 32) as u32,
        }
    }

    /// Longest-prefix match: the peer id, or [`NONE`].
    ///
    /// Written without data-dependent branches so that consecutive lookups overlap in the
    /// core: every step loads what both outcomes need and selects. A lookup that has reached
    /// its leaf keeps re-reading the same (cached) node until the loop ends. IPv4 runs a fixed
    /// number of rounds (three); IPv6 loops until its lookup is done.
    #[inline(always)]
    pub(crate) fn lookup(&self, addr: K) -> u32 {
        let e = self.dir[addr.top()].load(Ordering::Acquire);
        let mut best = e as u32;
        let child = (e >> 32) as u32;
        // `result` is final once `done`: a peer, NONE (use `best`) or a singleton reference.
        let mut done = child & SINGLE != 0;
        let mut result = child;
        let mut cur = if done { 0 } else { child as usize };
        let mut depth = K::DIR_BITS;
        let rounds = (K::BITS - K::DIR_BITS).div_ceil(STRIDE);
        let mut round = 0;
        while if K::BITS == 32 { round < rounds } else { !done } {
            round += 1;
            let n = cur * NODE_WORDS;
            let vector = self.nodes[n].load(Ordering::Relaxed);
            let leafvec = self.nodes[n + 1].load(Ordering::Relaxed);
            let bases = self.nodes[n + 2].load(Ordering::Relaxed);
            let default = self.nodes[n + 3].load(Ordering::Relaxed) as u32;
            let bit = 1u64 << addr.chunk(depth.min(K::BITS - 1));
            let internal = vector & bit != 0;
            let next = bases as u32 + (vector & (bit - 1)).count_ones();
            let run = (leafvec & (bit | (bit - 1))).count_ones();
            let leaf = ((bases >> 32) as u32 + run).saturating_sub(1);
            let value = self.leaves[leaf as usize].load(Ordering::Relaxed);
            let live = !done;
            best = if live & (default != NONE) {
                default
            } else {
                best
            };
            result = if live & !internal { value } else { result };
            cur = if live & internal { next as usize } else { cur };
            depth += if live & internal { STRIDE } else { 0 };
            done |= !internal;
        }
        let single = result != NONE && result & SINGLE != 0;
        let s = self.read_single(if single { result & !SINGLE } else { 0 });
        let from_single = if addr.mask(s.len) == s.key {
            s.peer
        } else if s.fallback != NONE {
            s.fallback
        } else {
            best
        };
        if single {
            from_single
        } else if result == NONE {
            best
        } else {
            result
        }
    }
}
