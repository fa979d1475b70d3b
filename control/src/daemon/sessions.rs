//! Control's table of the region's session slots: which slot holds which keypair (by our
//! receiver index), which slot each peer's workers send with, which slots are free, and which
//! a previous control process left behind.
//!
//! Control is the only writer of session records; this table is its private view of them, so
//! that finding a slot never means scanning the region. The records themselves (keys, flags,
//! birth) are written by the daemon, which pairs every change here with one there.

use proto::device::PeerId;
use std::collections::HashMap;

/// A live session slot: whose it is, and the workers' activity times last fed to the
/// protocol's timers.
#[derive(Debug)]
pub(super) struct Slot {
    pub local_index: u32,
    pub peer: PeerId,
    /// When the keys were derived (region clock): the record's birth, kept when it is
    /// rewritten (confirmation).
    pub birth_ns: u64,
    pub seen_rx: u64,
    pub seen_tx: u64,
    pub seen_rx_data: u64,
    pub seen_tx_data: u64,
}

#[derive(Debug, Default)]
pub(super) struct SessionSlots {
    live: HashMap<u32, Slot>,
    by_index: HashMap<u32, u32>,
    free: Vec<u32>,
    /// Slots a previous control process published, with their births (region clock): the
    /// workers keep using them until they expire, and they are taken back then, or earlier if
    /// a new session needs the room.
    inherited: Vec<(u32, u64)>,
    /// The slot each peer's workers send with.
    current: HashMap<PeerId, u32>,
}

impl SessionSlots {
    /// A table over `count` slots, of which `inherited` (slot, birth) are a previous
    /// process's live sessions; every other slot is free.
    pub fn new(count: usize, inherited: Vec<(u32, u64)>) -> Self {
        let taken: std::collections::HashSet<u32> = inherited.iter().map(|(s, _)| *s).collect();
        // Popped from the end: the lowest slots are used first.
        let free = (0..count as u32)
            .rev()
            .filter(|s| !taken.contains(s))
            .collect();
        Self {
            free,
            inherited,
            ..Self::default()
        }
    }

    /// A slot for the new session `local_index` of `peer`. When none is free, the oldest
    /// inherited slot is taken back (its keys died with the previous process; the peers were
    /// asked for new handshakes when it restarted): that slot is returned second, and the
    /// caller wipes its record before reusing it. `None` only when every slot holds a live
    /// session of this process.
    pub fn take(
        &mut self,
        local_index: u32,
        peer: PeerId,
        birth_ns: u64,
    ) -> Option<(u32, Option<u32>)> {
        let (slot, evicted) = match self.free.pop() {
            Some(s) => (s, None),
            None => {
                let oldest = self
                    .inherited
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, (_, birth))| *birth)
                    .map(|(i, _)| i)?;
                let (s, _) = self.inherited.swap_remove(oldest);
                (s, Some(s))
            }
        };
        self.live.insert(
            slot,
            Slot {
                local_index,
                peer,
                birth_ns,
                seen_rx: 0,
                seen_tx: 0,
                seen_rx_data: 0,
                seen_tx_data: 0,
            },
        );
        self.by_index.insert(local_index, slot);
        Some((slot, evicted))
    }

    /// The slot of session `local_index`.
    pub fn slot_of(&self, local_index: u32) -> Option<u32> {
        self.by_index.get(&local_index).copied()
    }

    pub fn get(&self, slot: u32) -> Option<&Slot> {
        self.live.get(&slot)
    }

    /// Ends session `local_index`: its slot is no longer its peer's current one. The caller
    /// wipes the record, then calls [`SessionSlots::free`].
    pub fn retire(&mut self, local_index: u32) -> Option<(u32, Slot)> {
        let slot = self.by_index.remove(&local_index)?;
        let info = self.live.remove(&slot)?;
        if self.current.get(&info.peer) == Some(&slot) {
            self.current.remove(&info.peer);
        }
        Some((slot, info))
    }

    /// A wiped slot back to the free list.
    pub fn free(&mut self, slot: u32) {
        self.free.push(slot);
    }

    pub fn set_current(&mut self, peer: PeerId, slot: u32) {
        self.current.insert(peer, slot);
    }

    pub fn current(&self, peer: PeerId) -> Option<u32> {
        self.current.get(&peer).copied()
    }

    pub fn forget_peer(&mut self, peer: PeerId) {
        self.current.remove(&peer);
    }

    pub fn is_inherited(&self, slot: u32) -> bool {
        self.inherited.iter().any(|(s, _)| *s == slot)
    }

    /// Inherited slots born at or before `cutoff` (region clock): taken out of the table; the
    /// caller wipes each, then frees it.
    pub fn expired_inherited(&mut self, cutoff: u64) -> Vec<u32> {
        let mut out = Vec::new();
        self.inherited.retain(|&(slot, birth)| {
            if birth > cutoff {
                return true;
            }
            out.push(slot);
            false
        });
        out
    }

    pub fn live_mut(&mut self) -> impl Iterator<Item = (u32, &mut Slot)> {
        self.live.iter_mut().map(|(s, i)| (*s, i))
    }

    pub fn live(&self) -> impl Iterator<Item = (u32, &Slot)> {
        self.live.iter().map(|(s, i)| (*s, i))
    }

    pub fn len(&self) -> usize {
        self.live.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(n: u32) -> PeerId {
        PeerId(n)
    }

    #[test]
    fn take_retire_free_and_current() {
        let mut t = SessionSlots::new(2, Vec::new());
        let (a, none) = t.take(10, peer(1), 0).unwrap();
        assert_eq!((a, none), (0, None), "lowest slot first");
        t.set_current(peer(1), a);
        let (b, _) = t.take(11, peer(1), 0).unwrap();
        assert_eq!(t.take(12, peer(2), 0), None, "full");
        assert_eq!(t.slot_of(11), Some(b));
        let (slot, info) = t.retire(10).unwrap();
        assert_eq!((slot, info.local_index), (a, 10));
        assert_eq!(
            t.current(peer(1)),
            None,
            "the retired slot is no one's current"
        );
        assert!(t.retire(10).is_none());
        t.free(slot);
        assert_eq!(t.take(12, peer(2), 0).unwrap().0, a);
    }

    /// Slots a previous process left are not lost to capacity: a new session takes back the
    /// oldest one when nothing else is free, and expiry frees them too.
    #[test]
    fn inherited_slots_are_taken_back() {
        let mut t = SessionSlots::new(3, vec![(0, 500), (1, 100)]);
        assert_eq!(t.take(1, peer(1), 0), Some((2, None)));
        assert_eq!(
            t.take(2, peer(1), 0),
            Some((1, Some(1))),
            "the oldest inherited"
        );
        assert!(t.is_inherited(0));
        assert_eq!(t.expired_inherited(499), Vec::<u32>::new());
        assert_eq!(t.expired_inherited(500), vec![0]);
        assert!(!t.is_inherited(0));
        assert_eq!(t.take(3, peer(2), 0), None);
    }
}
