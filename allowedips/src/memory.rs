//! Where the table lives: fixed-size sections of plain words, in the process's heap
//! ([`HeapMemory`], tests and benchmarks) or in the region control shares with the data path
//! (`contract::Region` implements [`Memory`]).
//!
//! Everything here is position-independent (blocks refer to each other by index) and valid
//! when zeroed: the directory is stored complemented, so a zero word is "no prefix, no child",
//! and a zeroed reader slot is unused. A fresh mapping is therefore an empty table without a
//! byte written, and the section that is not active costs nothing until it is built.
//!
//! Each family has two sections of the same capacity. The writer updates the active one in
//! place by path copying (`update.rs`); when it runs out of room, or to compact, it builds the
//! whole family into the other section and switches the family's `active` word. Readers choose
//! a section when they pin (`epoch.rs`), so a reader pinned before the switch finishes its
//! batch on the old section, which the writer reuses only after that reader's grace period.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::epoch::MAX_READERS;
use crate::fib::NODE_WORDS;

/// Directory slots per family (the top 20 bits of the address, both families).
pub const DIR_SLOTS: usize = 1 << 20;

/// One family's arrays in one section.
#[derive(Debug, Clone, Copy)]
pub struct Arrays<'m> {
    pub dir: &'m [AtomicU64],
    pub nodes: &'m [[AtomicU64; NODE_WORDS]],
    pub leaves: &'m [AtomicU32],
    pub singles: &'m [AtomicU64],
}

/// A reader's (worker's) grace-period slot, one cache line each. Zeroed: unused.
#[derive(Debug, Default)]
#[repr(C, align(64))]
pub struct ReaderSlot {
    /// The epoch the reader pinned at, or `IDLE` (`epoch.rs`).
    pub(crate) epoch: AtomicU64,
    /// Non-zero while a reader owns the slot.
    pub(crate) used: AtomicU64,
}

/// The table's own words. Zeroed: epoch 0, section 0 active for both families.
#[derive(Debug, Default)]
#[repr(C, align(64))]
pub struct TableHeader {
    /// The global epoch (`epoch.rs`).
    pub(crate) epoch: AtomicU64,
    /// Per family (IPv4, IPv6): the section readers use, 0 or 1.
    pub(crate) active: [AtomicU64; 2],
}

impl TableHeader {
    pub(crate) fn active(&self, family: usize) -> usize {
        (self.active[family].load(Ordering::Acquire) & 1) as usize
    }
}

/// The whole table's memory as the writer and the readers see it.
#[derive(Debug, Clone, Copy)]
pub struct Shared<'m> {
    pub header: &'m TableHeader,
    pub readers: &'m [ReaderSlot],
    pub v4: [Arrays<'m>; 2],
    pub v6: [Arrays<'m>; 2],
}

/// A mapping that holds a table: the heap, or a shared region.
pub trait Memory: Send + Sync + std::fmt::Debug {
    /// The table's words. Each array has the length [`Capacity`] gives for the memory's
    /// prefix count, and there are [`MAX_READERS`] reader slots.
    fn table(&self) -> Shared<'_>;
}

/// Element counts of one family's section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dims {
    pub dir: usize,
    pub nodes: usize,
    pub leaves: usize,
    /// 64-bit words (two per singleton unit).
    pub singles: usize,
}

/// The room a table needs for a number of prefixes, per family section.
///
/// Sized so that `prefixes` prefixes of one family fit in a compactly built section whatever
/// their shape: a prefix adds at most one branching node, IPv6 ones up to four nodes of a
/// path-compressed chain between branches (108 bits below the directory, at most 30 per node),
/// each node at most a handful of leaf runs, and a singleton at most two units. The tests fill
/// a table with adversarial sets at its capacity. The writer refuses a change that does not fit
/// ([`crate::Error::Full`]) instead of growing: the table is bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capacity {
    pub prefixes: usize,
}

impl Capacity {
    /// Spare blocks on top of the per-prefix room, so that small tables can still path-copy.
    const SPARE: usize = 1024;

    pub fn new(prefixes: usize) -> Self {
        Self { prefixes }
    }

    pub fn v4(&self) -> Dims {
        let p = self.prefixes;
        Dims {
            dir: DIR_SLOTS,
            nodes: p + Self::SPARE,
            leaves: 4 * p + 4 * Self::SPARE,
            singles: 2 * (p + Self::SPARE),
        }
    }

    pub fn v6(&self) -> Dims {
        let p = self.prefixes;
        Dims {
            dir: DIR_SLOTS,
            nodes: 3 * p + Self::SPARE,
            leaves: 8 * p + 4 * Self::SPARE,
            singles: 4 * (p + Self::SPARE),
        }
    }
}

#[derive(Debug)]
struct HeapArrays {
    dir: Box<[AtomicU64]>,
    nodes: Box<[[AtomicU64; NODE_WORDS]]>,
    leaves: Box<[AtomicU32]>,
    singles: Box<[AtomicU64]>,
}

impl HeapArrays {
    /// Zeroed arrays: allocated zeroed, so the pages stay untouched until written.
    fn new(d: Dims) -> Self {
        Self {
            dir: bytemuck::allocation::zeroed_slice_box(d.dir),
            nodes: bytemuck::allocation::zeroed_slice_box(d.nodes),
            leaves: bytemuck::allocation::zeroed_slice_box(d.leaves),
            singles: bytemuck::allocation::zeroed_slice_box(d.singles),
        }
    }

    fn arrays(&self) -> Arrays<'_> {
        Arrays {
            dir: &self.dir,
            nodes: &self.nodes,
            leaves: &self.leaves,
            singles: &self.singles,
        }
    }
}

/// A table in the process's own memory.
#[derive(Debug)]
pub struct HeapMemory {
    header: TableHeader,
    readers: Box<[ReaderSlot]>,
    v4: [HeapArrays; 2],
    v6: [HeapArrays; 2],
}

impl HeapMemory {
    pub fn new(capacity: Capacity) -> Self {
        Self {
            header: TableHeader::default(),
            readers: (0..MAX_READERS).map(|_| ReaderSlot::default()).collect(),
            v4: [0, 1].map(|_| HeapArrays::new(capacity.v4())),
            v6: [0, 1].map(|_| HeapArrays::new(capacity.v6())),
        }
    }
}

impl Memory for HeapMemory {
    fn table(&self) -> Shared<'_> {
        Shared {
            header: &self.header,
            readers: &self.readers,
            v4: [self.v4[0].arrays(), self.v4[1].arrays()],
            v6: [self.v6[0].arrays(), self.v6[1].arrays()],
        }
    }
}

/// Frees every reader slot: a data-path process starting over a region its predecessor used
/// (that process's readers are gone, and a slot it left pinned would hold memory forever).
pub fn reset_readers(memory: &dyn Memory) {
    for s in memory.table().readers {
        s.epoch.store(crate::epoch::IDLE, Ordering::Release);
        s.used.store(0, Ordering::Release);
    }
}
