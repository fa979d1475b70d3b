//! Control's book of the peers the workers know: which slot of the shared region each peer
//! has, which prefixes it owns (cryptokey routing, whitepaper §2, with the kernel's rules: a
//! prefix has one owner and inserting it for another peer moves it), and the bytes of its
//! retired sessions.
//!
//! This is control's book, keyed by prefix: a `wg set` is checked and applied here, and every
//! prefix it touches is marked dirty; `daemon::routes` then brings the workers' table (the
//! `allowedips` crate's, in the region, keyed by slot) in step, prefix by prefix.
//!
//! Slots are numbered independently of the protocol's `PeerId`s so that a removed peer's slot
//! is not handed out again while a worker may still hold an answer from the table that routed
//! to it (and so to the new peer). A removed slot waits in `pending` until its removal is in
//! the table, then in `freed` until every worker has moved past that table's epoch.

use proto::allowedips::Prefix;
use proto::device::PeerId;
use std::collections::{BTreeSet, HashMap, VecDeque};

#[derive(Debug, Default)]
struct Entry {
    slot: u32,
    allowed: BTreeSet<Prefix>,
    /// What the peer's sessions that are gone carried: bytes received, bytes sent, packets
    /// received, packets sent.
    retired: [u64; 4],
}

#[derive(Debug)]
pub struct PeerTable {
    entries: HashMap<PeerId, Entry>,
    by_slot: Vec<Option<PeerId>>,
    /// Free slots in the order they may be reused, with the allowed-IPs version the data path
    /// must hold first (0: never used). Versions never decrease along the queue.
    freed: VecDeque<(u32, u64)>,
    /// Slots freed since the last publication.
    pending: Vec<u32>,
    owner: HashMap<Prefix, PeerId>,
    /// Prefixes whose owner changed since the last [`PeerTable::take_dirty`].
    dirty: Vec<Prefix>,
}

impl PeerTable {
    pub fn new(slots: usize) -> Self {
        let slots = u32::try_from(slots).unwrap_or(u32::MAX);
        Self {
            entries: HashMap::new(),
            by_slot: vec![None; slots as usize],
            freed: (0..slots).map(|s| (s, 0)).collect(),
            pending: Vec::new(),
            owner: HashMap::new(),
            dirty: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn prefix_count(&self) -> usize {
        self.owner.len()
    }

    /// Slots that can be given to new peers now, with the data path at version `applied`.
    /// (`freed` is ordered by version: never-used slots first, then by publication.)
    pub fn available(&self, applied: u64) -> usize {
        self.freed.partition_point(|(_, v)| *v <= applied)
    }

    /// Gives `id` a slot; `None` if every free slot still waits for the data path.
    pub fn add(&mut self, id: PeerId, applied: u64) -> Option<u32> {
        if self.freed.front()?.1 > applied {
            return None;
        }
        let (slot, _) = self.freed.pop_front()?;
        self.claim(id, slot);
        Some(slot)
    }

    /// Gives `id` this particular slot (a restarted control keeps a peer where it was).
    pub fn add_at(&mut self, id: PeerId, slot: u32) -> bool {
        if self.by_slot.get(slot as usize) != Some(&None) {
            return false;
        }
        self.freed.retain(|(s, _)| *s != slot);
        self.claim(id, slot);
        true
    }

    fn claim(&mut self, id: PeerId, slot: u32) {
        self.by_slot[slot as usize] = Some(id);
        self.entries.insert(
            id,
            Entry {
                slot,
                ..Entry::default()
            },
        );
    }

    /// Forgets `id` and its prefixes; returns its slot, which is reused only after the next
    /// publication has been applied.
    pub fn remove(&mut self, id: PeerId) -> Option<u32> {
        let e = self.entries.remove(&id)?;
        for p in &e.allowed {
            self.owner.remove(p);
        }
        self.dirty.extend(e.allowed.iter().copied());
        self.by_slot[e.slot as usize] = None;
        self.pending.push(e.slot);
        Some(e.slot)
    }

    /// Marks a slot nobody has now but that the data path may still route to (left by a
    /// previous control process).
    pub fn quarantine(&mut self, slot: u32) {
        if self.by_slot.get(slot as usize) == Some(&None) {
            self.freed.retain(|(s, _)| *s != slot);
            self.pending.push(slot);
        }
    }

    /// The table holds every change so far as of `version` (its epoch): slots freed before
    /// wait for the workers to pass it.
    pub fn published(&mut self, version: u64) {
        for s in self.pending.drain(..) {
            self.freed.push_back((s, version));
        }
    }

    pub fn slot(&self, id: PeerId) -> Option<u32> {
        self.entries.get(&id).map(|e| e.slot)
    }

    pub fn peer_at(&self, slot: u32) -> Option<PeerId> {
        self.by_slot.get(slot as usize).copied().flatten()
    }

    pub fn ids(&self) -> impl Iterator<Item = PeerId> + '_ {
        self.entries.keys().copied()
    }

    /// Assigns `prefix` to `id`, taking it from any other peer. False if `id` is unknown.
    pub fn insert_prefix(&mut self, id: PeerId, prefix: Prefix) -> bool {
        if !self.entries.contains_key(&id) {
            return false;
        }
        if let Some(old) = self.owner.insert(prefix, id) {
            if old != id {
                if let Some(e) = self.entries.get_mut(&old) {
                    e.allowed.remove(&prefix);
                }
            }
        }
        if let Some(e) = self.entries.get_mut(&id) {
            e.allowed.insert(prefix);
        }
        self.dirty.push(prefix);
        true
    }

    /// Removes `prefix` if `id` owns it.
    pub fn remove_prefix(&mut self, id: PeerId, prefix: Prefix) -> bool {
        if self.owner.get(&prefix) != Some(&id) {
            return false;
        }
        self.owner.remove(&prefix);
        if let Some(e) = self.entries.get_mut(&id) {
            e.allowed.remove(&prefix);
        }
        self.dirty.push(prefix);
        true
    }

    /// Removes all of `id`'s prefixes; returns how many it had.
    pub fn clear_prefixes(&mut self, id: PeerId) -> usize {
        let Some(e) = self.entries.get_mut(&id) else {
            return 0;
        };
        let gone = std::mem::take(&mut e.allowed);
        for p in &gone {
            self.owner.remove(p);
        }
        self.dirty.extend(gone.iter().copied());
        gone.len()
    }

    /// `id`'s prefixes in canonical order (IPv4 before IPv6, then by address and length).
    pub fn prefixes(&self, id: PeerId) -> impl Iterator<Item = Prefix> + '_ {
        self.entries
            .get(&id)
            .into_iter()
            .flat_map(|e| e.allowed.iter().copied())
    }

    /// Adds a retired session's counters (bytes rx, bytes tx, packets rx, packets tx).
    pub fn add_retired(&mut self, id: PeerId, counters: [u64; 4]) {
        if let Some(e) = self.entries.get_mut(&id) {
            for (a, b) in e.retired.iter_mut().zip(counters) {
                *a += b;
            }
        }
    }

    pub fn retired(&self, id: PeerId) -> [u64; 4] {
        self.entries.get(&id).map_or([0; 4], |e| e.retired)
    }

    /// Every prefix with its owner's slot.
    pub fn all_prefixes(&self) -> impl Iterator<Item = (Prefix, u32)> + '_ {
        self.owner
            .iter()
            .filter_map(|(p, id)| Some((*p, self.slot(*id)?)))
    }

    /// The slot of the peer that owns exactly `prefix`.
    pub fn owner_slot(&self, prefix: Prefix) -> Option<u32> {
        self.slot(*self.owner.get(&prefix)?)
    }

    /// The prefixes whose owner changed since the last call (a prefix may appear twice).
    pub fn take_dirty(&mut self) -> Vec<Prefix> {
        std::mem::take(&mut self.dirty)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Prefix {
        let (a, l) = s.split_once('/').unwrap();
        Prefix::new(a.parse().unwrap(), l.parse().unwrap()).unwrap()
    }

    #[test]
    fn a_removed_slot_waits_for_the_data_path() {
        let mut t = PeerTable::new(2);
        assert_eq!(t.add(PeerId(0), 0), Some(0));
        assert_eq!(t.add(PeerId(1), 0), Some(1));
        assert_eq!(t.add(PeerId(2), 0), None, "full");
        assert_eq!(t.remove(PeerId(0)), Some(0));
        assert_eq!(t.available(u64::MAX), 0, "not before publication");
        t.published(10);
        assert_eq!(t.available(8), 0);
        assert_eq!(
            t.add(PeerId(2), 8),
            None,
            "the data path still routes to it"
        );
        assert_eq!(t.add(PeerId(2), 10), Some(0));
        assert_eq!(t.peer_at(0), Some(PeerId(2)));
    }

    #[test]
    fn never_used_slots_come_before_freed_ones() {
        let mut t = PeerTable::new(3);
        t.add(PeerId(0), 0);
        t.remove(PeerId(0));
        t.published(2);
        assert_eq!(t.add(PeerId(1), 2), Some(1));
        assert_eq!(t.add(PeerId(2), 2), Some(2));
        assert_eq!(t.add(PeerId(3), 2), Some(0));
    }

    #[test]
    fn restart_keeps_slots_and_quarantines_orphans() {
        let mut t = PeerTable::new(4);
        assert!(t.add_at(PeerId(0), 2));
        assert!(!t.add_at(PeerId(1), 2), "taken");
        t.quarantine(3);
        assert_eq!(t.add(PeerId(1), 0), Some(0));
        assert_eq!(t.add(PeerId(2), 0), Some(1));
        assert_eq!(t.add(PeerId(3), 0), None, "3 waits for the data path");
        t.published(4);
        assert_eq!(t.add(PeerId(3), 4), Some(3));
    }

    #[test]
    fn prefixes_have_one_owner_and_list_canonically() {
        let mut t = PeerTable::new(4);
        t.add(PeerId(0), 0);
        t.add(PeerId(1), 0);
        for s in ["2001:db8::/32", "10.0.0.0/8", "10.0.0.0/16", "0.0.0.0/0"] {
            assert!(t.insert_prefix(PeerId(0), p(s)));
        }
        assert!(!t.insert_prefix(PeerId(9), p("1.0.0.0/8")), "unknown peer");
        // Takeover.
        t.insert_prefix(PeerId(1), p("10.0.0.0/16"));
        let listed: Vec<String> = t.prefixes(PeerId(0)).map(|p| p.to_string()).collect();
        assert_eq!(listed, ["0.0.0.0/0", "10.0.0.0/8", "2001:db8::/32"]);
        assert!(!t.remove_prefix(PeerId(0), p("10.0.0.0/16")), "not its own");
        assert!(t.remove_prefix(PeerId(1), p("10.0.0.0/16")));
        assert_eq!(t.prefix_count(), 3);
        assert_eq!(t.clear_prefixes(PeerId(0)), 3);
        assert_eq!(t.prefix_count(), 0);
        t.insert_prefix(PeerId(1), p("192.95.5.65/27"));
        assert_eq!(
            t.prefixes(PeerId(1)).next().unwrap().to_string(),
            "192.95.5.64/27",
            "host bits cleared"
        );
        assert_eq!(t.all_prefixes().count(), 1);
        t.take_dirty();
        t.remove(PeerId(1));
        assert_eq!(
            t.all_prefixes().count(),
            0,
            "a removed peer's prefixes go with it"
        );
        assert_eq!(
            t.take_dirty(),
            [p("192.95.5.64/27")],
            "and are marked for the table"
        );
    }
}
