//! Grace periods for reusing the arena's blocks: epoch-based reclamation with per-reader slots.
//!
//! Contract. Writer: the control process, one thread. Readers: the workers, each owning one
//! slot. A reader never waits: pinning is one `swap` and a fence on its own cache line, unpinning
//! one store. The writer publishes (a `Release` store of a directory word), tags the blocks it
//! replaced with the epoch current at the time, advances the global epoch, and frees a tagged
//! block only once every slot is idle or holds a later epoch. A reader that pinned at a later
//! epoch read the global epoch after the advance, which came after the publication, so it can
//! only reach the new blocks. A reader whose pin raced the scan (its slot still looked idle) is
//! covered by the two SeqCst fences: either the writer's scan sees its slot, or its loads after
//! the pin see the publication (the store-buffering pattern, forbidden with fences on both sides).
//!
//! Shared memory: the global epoch and the slots are plain 64-bit words; they map onto a
//! region's header unchanged (one cache line per worker).

use std::sync::atomic::{fence, AtomicU64, Ordering};

use crate::memory::ReaderSlot;

/// Readers (workers) that can be registered at once.
pub const MAX_READERS: usize = 64;
/// A slot's value while its reader is outside a lookup batch.
pub(crate) const IDLE: u64 = u64::MAX;

/// The global epoch and the readers' slots, wherever the table lives.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Epoch<'m> {
    pub(crate) global: &'m AtomicU64,
    pub(crate) slots: &'m [ReaderSlot],
}

impl Epoch<'_> {
    /// Claims a free slot.
    pub(crate) fn register(&self) -> Option<usize> {
        let slot = self.slots.iter().position(|s| {
            s.used
                .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        })?;
        // Until this store the writer may see the slot pinned at a stale epoch, which only
        // delays reclamation.
        self.slots[slot].epoch.store(IDLE, Ordering::Release);
        Some(slot)
    }

    /// Returns a slot; its reader must be unpinned.
    pub(crate) fn unregister(&self, slot: usize) {
        self.slots[slot].epoch.store(IDLE, Ordering::Release);
        self.slots[slot].used.store(0, Ordering::Release);
    }

    /// Reader: announce that loads of published words follow. Wait-free.
    #[inline]
    pub(crate) fn pin(&self, slot: usize) {
        let e = self.global.load(Ordering::Acquire);
        self.slots[slot].epoch.swap(e, Ordering::SeqCst);
        fence(Ordering::SeqCst);
    }

    /// Reader: no references into the arena are held any more.
    #[inline]
    pub(crate) fn unpin(&self, slot: usize) {
        self.slots[slot].epoch.store(IDLE, Ordering::Release);
    }

    /// Writer: the epoch that blocks retired now are tagged with.
    pub(crate) fn current(&self) -> u64 {
        self.global.load(Ordering::Relaxed)
    }

    /// Writer, after publishing: start a new epoch and return the oldest epoch a pinned reader
    /// may still be in (`u64::MAX` when none is pinned). Blocks tagged below it are free.
    pub(crate) fn advance(&self) -> u64 {
        self.global.fetch_add(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        self.slots
            .iter()
            .filter(|s| s.used.load(Ordering::SeqCst) != 0)
            .map(|s| s.epoch.load(Ordering::SeqCst))
            .min()
            .unwrap_or(IDLE)
    }

    /// Writer: waits (briefly: readers pin for one batch) until no reader is still pinned in
    /// an epoch up to `tag`. False if one still is after `patience`: a reader stuck mid-batch.
    pub(crate) fn wait_past(&self, tag: u64, patience: std::time::Duration) -> bool {
        let start = std::time::Instant::now();
        loop {
            if self.advance() > tag {
                return true;
            }
            if start.elapsed() > patience {
                return false;
            }
            std::thread::yield_now();
        }
    }
}
