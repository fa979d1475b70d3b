//! Building tries from sorted prefixes: the bulk build of a whole family and the rebuild of a
//! small region during an incremental update share this code.
//!
//! Input is always a slice of `(key, len, peer)` sorted by `(key, len)` and lying strictly inside
//! a region (every `len` greater than the region's depth). Sorted that way, the prefixes under
//! each 64-way child are contiguous, and the ones ending inside the node's stride (whose keys are
//! aligned to the child they start at) come first in their child's run.

use crate::fib::{single_ref, Fib, Node, Single, MAX_SKIP, NODE_WORDS, NONE, UNIT_WORDS};
use crate::key::{Key, STRIDE};

/// A prefix as the builders take it.
pub(crate) type Entry<K> = (K, u8, u32);

/// Where built blocks go: plain vectors for a bulk build, the live arena for an update.
pub(crate) trait Sink<K: Key> {
    /// Stores `nodes` contiguously; returns the first index (0 when empty).
    fn node_block(&mut self, nodes: &[Node]) -> u32;
    /// Stores `leaves` contiguously; returns the first index (0 when empty).
    fn leaf_block(&mut self, leaves: &[u32]) -> u32;
    /// Stores a singleton reached at `depth`; returns its reference (the leaf value).
    fn single(&mut self, s: &Single<K>, depth: u32) -> u32;
}

/// A child as the builders see it: a leaf value (peer, [`NONE`], or a singleton reference) or a
/// node not yet placed in its parent's block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kid {
    Leaf(u32),
    Node(Node),
}

/// The child for a region at `depth` holding `prefixes` (all longer than `depth`); `fallback` is
/// the child's own value (the longest prefix ending in the parent's stride that covers it).
pub(crate) fn build_kid<K: Key, S: Sink<K>>(
    sink: &mut S,
    prefixes: &[Entry<K>],
    depth: u32,
    fallback: u32,
) -> Kid {
    match prefixes {
        [] => Kid::Leaf(fallback),
        &[(key, len, peer)] => Kid::Leaf(sink.single(
            &Single {
                key,
                len,
                peer,
                fallback,
            },
            depth,
        )),
        _ => Kid::Node(build_node(sink, prefixes, depth, fallback)),
    }
}

/// The values of a node's 64 children from the prefixes ending in its stride: the longest
/// covering prefix wins.
pub(crate) fn stride_values<K: Key>(prefixes: &[Entry<K>], depth: u32) -> [u32; 64] {
    let mut vals = [NONE; 64];
    let mut lens = [0u8; 64];
    let end = depth + STRIDE;
    for &(key, len, peer) in prefixes {
        let len32 = u32::from(len);
        if len32 <= end {
            let start = key.chunk(depth);
            for c in start..start + (1usize << (end - len32)) {
                if len > lens[c] {
                    vals[c] = peer;
                    lens[c] = len;
                }
            }
        }
    }
    vals
}

fn build_node<K: Key, S: Sink<K>>(
    sink: &mut S,
    prefixes: &[Entry<K>],
    depth: u32,
    default: u32,
) -> Node {
    let vals = stride_values(prefixes, depth);
    let end = depth + STRIDE;
    let mut kids = [Kid::Leaf(NONE); 64];
    let mut rest = prefixes;
    for (c, kid) in kids.iter_mut().enumerate() {
        let in_child = rest
            .iter()
            .position(|e| e.0.chunk(depth) != c)
            .unwrap_or(rest.len());
        let (group, tail) = rest.split_at(in_child);
        rest = tail;
        let deep_from = group
            .iter()
            .position(|e| u32::from(e.1) > end)
            .unwrap_or(group.len());
        *kid = build_kid(sink, &group[deep_from..], end, vals[c]);
    }
    emit_node(sink, &kids, default)
}

/// Places a node's children (node block, compressed leaf block) and returns the node; a chain
/// node is not placed but folded into its child (path compression, see [`Node`]).
pub(crate) fn emit_node<K: Key, S: Sink<K>>(sink: &mut S, kids: &[Kid; 64], default: u32) -> Node {
    if let Some(node) = fold_chain(kids, default) {
        return node;
    }
    let mut vector = 0u64;
    let mut leafvec = 0u64;
    let mut inner = [Node::default(); 64];
    let mut n_inner = 0;
    let mut leaves = [0u32; 64];
    let mut n_leaves = 0;
    let mut prev = None;
    for (c, kid) in kids.iter().enumerate() {
        match *kid {
            Kid::Node(node) => {
                vector |= 1 << c;
                inner[n_inner] = node;
                n_inner += 1;
            }
            Kid::Leaf(v) => {
                if prev != Some(v) {
                    leafvec |= 1 << c;
                    leaves[n_leaves] = v;
                    n_leaves += 1;
                    prev = Some(v);
                }
            }
        }
    }
    Node {
        vector,
        leafvec,
        base1: sink.node_block(&inner[..n_inner]),
        base0: sink.leaf_block(&leaves[..n_leaves]),
        default,
        skip: 0,
        skipped: 0,
    }
}

/// A chain node's replacement: when no prefix ends in the stride (every leaf [`NONE`], the
/// child node's default [`NONE`]) and exactly one child is a node, that child one level
/// higher, carrying the chain's default and its chunk.
fn fold_chain(kids: &[Kid; 64], default: u32) -> Option<Node> {
    let mut only = None;
    for (c, kid) in kids.iter().enumerate() {
        match *kid {
            Kid::Leaf(NONE) => {}
            Kid::Node(m) if only.is_none() && m.default == NONE && m.skip < MAX_SKIP => {
                only = Some((c as u32, m));
            }
            _ => return None,
        }
    }
    let (c, m) = only?;
    Some(Node {
        skip: m.skip + 1,
        skipped: c << (STRIDE * u32::from(m.skip)) | m.skipped,
        default,
        ..m
    })
}

/// The chain node a path-compressed node stands for (one level of it): `node` one level
/// lower, as its only child. The inverse of [`fold_chain`], for updates.
pub(crate) fn unfold_chain(node: &Node) -> [Kid; 64] {
    let shift = STRIDE * (u32::from(node.skip) - 1);
    let mut kids = [Kid::Leaf(NONE); 64];
    kids[(node.skipped >> shift) as usize] = Kid::Node(Node {
        skip: node.skip - 1,
        skipped: node.skipped & ((1 << shift) - 1),
        default: NONE,
        ..*node
    });
    kids
}

/// A node's 64 children as stored (below its own stride, after any skipped levels).
pub(crate) fn decode_node<K: Key>(fib: &Fib<'_, K>, node: &Node) -> [Kid; 64] {
    let mut kids = [Kid::Leaf(NONE); 64];
    let mut inner = node.base1;
    let mut run = node.base0;
    let mut value = NONE;
    for (c, kid) in kids.iter_mut().enumerate() {
        if node.vector >> c & 1 == 1 {
            *kid = Kid::Node(fib.read_node(inner));
            inner += 1;
        } else {
            if node.leafvec >> c & 1 == 1 {
                value = fib.read_leaf(run);
                run += 1;
            }
            *kid = Kid::Leaf(value);
        }
    }
    kids
}

/// Directory defaults for the short prefixes (no longer than the directory's bits) among `sorted`, painted shortest
/// first so that longer ones win.
pub(crate) fn dir_defaults<K: Key>(sorted: &[Entry<K>]) -> Vec<u32> {
    let mut short: Vec<&Entry<K>> = sorted
        .iter()
        .filter(|e| u32::from(e.1) <= K::DIR_BITS)
        .collect();
    short.sort_by_key(|e| e.1);
    let mut defaults = vec![NONE; 1usize << K::DIR_BITS];
    for &&(key, len, peer) in &short {
        let start = key.top();
        let n = 1usize << (K::DIR_BITS - u32::from(len));
        defaults[start..start + n].fill(peer);
    }
    defaults
}

/// The directory child word for a bucket's kid; a node gets its own one-node block.
pub(crate) fn dir_child<K: Key, S: Sink<K>>(sink: &mut S, kid: Kid) -> u32 {
    match kid {
        Kid::Leaf(v) => v,
        Kid::Node(node) => sink.node_block(&[node]),
    }
}

/// Bulk build of one family into `sink`; returns the directory words.
pub(crate) fn build_family<K: Key, S: Sink<K>>(sink: &mut S, sorted: &[Entry<K>]) -> Vec<u64> {
    let defaults = dir_defaults(sorted);
    let mut dir: Vec<u64> = defaults
        .iter()
        .map(|&d| u64::from(d) | u64::from(NONE) << 32)
        .collect();
    let mut rest = sorted;
    while let Some(first) = rest.first() {
        let slot = first.0.top();
        let in_slot = rest
            .iter()
            .position(|e| e.0.top() != slot)
            .unwrap_or(rest.len());
        let (group, tail) = rest.split_at(in_slot);
        rest = tail;
        let deep_from = group
            .iter()
            .position(|e| u32::from(e.1) > K::DIR_BITS)
            .unwrap_or(group.len());
        let kid = build_kid(sink, &group[deep_from..], K::DIR_BITS, NONE);
        let child = dir_child(sink, kid);
        dir[slot] = u64::from(defaults[slot]) | u64::from(child) << 32;
    }
    dir
}

/// A bulk build's output before it is moved into atomics.
#[derive(Debug, Default)]
pub(crate) struct VecSink {
    pub nodes: Vec<[u64; NODE_WORDS]>,
    pub leaves: Vec<u32>,
    pub singles: Vec<u64>,
}

impl<K: Key> Sink<K> for VecSink {
    fn node_block(&mut self, nodes: &[Node]) -> u32 {
        let first = self.nodes.len() as u32;
        self.nodes.extend(nodes.iter().map(|n| n.to_words()));
        if nodes.is_empty() {
            0
        } else {
            first
        }
    }

    fn leaf_block(&mut self, leaves: &[u32]) -> u32 {
        let first = self.leaves.len() as u32;
        self.leaves.extend_from_slice(leaves);
        if leaves.is_empty() {
            0
        } else {
            first
        }
    }

    fn single(&mut self, s: &Single<K>, depth: u32) -> u32 {
        let i = (self.singles.len() / UNIT_WORDS) as u32;
        let (words, long) = s.encode(depth);
        let units = if long { 2 } else { 1 };
        self.singles.extend_from_slice(&words[..units * UNIT_WORDS]);
        single_ref(i, long)
    }
}
