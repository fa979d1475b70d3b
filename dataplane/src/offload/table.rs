//! The offloaded flows, as the workers read them: a fixed-size hash table from a packet's
//! tuple to the tuple it is rewritten into, with one writer (the offload thread) and lock-free
//! readers (every worker, per packet).
//!
//! Each flow is two entries: its original direction's tuple (client to the internet) and its
//! reply direction's (the internet to the translated address). An entry is a seqlock over its
//! key's and its target's words (five each: [`Tuple::to_words`]), in a slot of 128 bytes (two
//! cache lines, with the sequence and the last use); a reader that sees a write in progress
//! treats the entry as absent, so the packet takes the kernel's path, which is always correct. Entries live in
//! a window of [`PROBES`] slots from their hash, with no moving on removal: a lookup costs at
//! most that many slots, present or not, and an insertion that finds its window full fails
//! (the flow stays on the kernel's path, counted by the caller). The hash is keyed per table,
//! so a sender cannot aim its tuples at one window of another table.

use super::tuple::{Tuple, WORDS};
use std::hash::BuildHasher;
use std::sync::atomic::{fence, AtomicU64, Ordering};
use std::sync::Arc;

/// Slots a key may sit in from its hash.
pub const PROBES: usize = 8;

#[derive(Default)]
#[repr(align(64))]
struct Slot {
    /// Even: stable. Odd: the writer is changing the slot.
    seq: AtomicU64,
    key: [AtomicU64; WORDS],
    to: [AtomicU64; WORDS],
    /// Monotonic ns a worker last carried a packet of this entry (for the writer's timeout
    /// refresh); written only when it moved by more than [`TOUCH_NS`].
    used_ns: AtomicU64,
}

/// How stale `used_ns` may be: a worker writes it at most once per this, so a flow's packets
/// on several cores do not each write the shared line.
const TOUCH_NS: u64 = 100_000_000;

pub struct FlowTable {
    slots: Box<[Slot]>,
    mask: usize,
    seeds: [u64; 2],
    /// Entries present (the writer's count): while there are none, workers skip the lookup.
    entries: std::sync::atomic::AtomicUsize,
    /// The kernel was seen translating a client's flow out of the LAN port (the operator NATs
    /// towards it): workers then no longer serve LAN hosts directly (see
    /// [`Writer::set_lan_translated`]).
    lan_translated: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for FlowTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowTable")
            .field("slots", &self.slots.len())
            .finish_non_exhaustive()
    }
}

/// A hit: where the entry is (to mark it used) and the tuple to rewrite the packet into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    pub slot: usize,
    pub to: Tuple,
}

impl FlowTable {
    /// A table with room for `flows` flows (two entries each) at half load at most.
    pub fn new(flows: usize) -> Arc<Self> {
        let n = (flows.max(1) * 4).next_power_of_two();
        let state = std::collections::hash_map::RandomState::new();
        Arc::new(Self {
            slots: (0..n).map(|_| Slot::default()).collect(),
            mask: n - 1,
            seeds: [state.hash_one(1u8), state.hash_one(2u8)],
            entries: std::sync::atomic::AtomicUsize::new(0),
            lan_translated: std::sync::atomic::AtomicBool::new(false),
        })
    }

    fn home(&self, key: [u64; WORDS]) -> usize {
        let mut h = self.seeds[0];
        for w in key {
            h = (h ^ w).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            h ^= h >> 29;
        }
        h = (h ^ self.seeds[1]).wrapping_mul(0xc2b2_ae3d_27d4_eb4f);
        (h ^ (h >> 32)) as usize & self.mask
    }

    fn window(&self, key: [u64; WORDS]) -> impl Iterator<Item = usize> + '_ {
        let home = self.home(key);
        (0..PROBES).map(move |i| (home + i) & self.mask)
    }

    /// Whether no flow is offloaded (a packet need not even be parsed for a lookup).
    pub fn is_empty(&self) -> bool {
        self.entries.load(Ordering::Relaxed) == 0
    }

    /// Whether packets to LAN hosts must take the kernel's path (its NAT applies to them).
    pub fn lan_translated(&self) -> bool {
        self.lan_translated.load(Ordering::Relaxed)
    }

    /// The rewrite for a packet of tuple `t`, if its flow is offloaded.
    pub fn lookup(&self, t: &Tuple) -> Option<Hit> {
        let key = t.to_words();
        for i in self.window(key) {
            let s = &self.slots[i];
            let seq = s.seq.load(Ordering::Acquire);
            if seq & 1 == 1 {
                continue;
            }
            if load(&s.key) != key {
                continue;
            }
            let to = load(&s.to);
            fence(Ordering::Acquire);
            if s.seq.load(Ordering::Relaxed) == seq {
                return Some(Hit {
                    slot: i,
                    to: Tuple::from_words(to),
                });
            }
        }
        None
    }

    /// Notes that a worker carried a packet of the entry in `slot` at `now`.
    pub fn touch(&self, slot: usize, now: u64) {
        if let Some(s) = self.slots.get(slot) {
            if now.saturating_sub(s.used_ns.load(Ordering::Relaxed)) >= TOUCH_NS {
                s.used_ns.store(now, Ordering::Relaxed);
            }
        }
    }

    fn write(&self, i: usize, key: [u64; WORDS], to: [u64; WORDS]) {
        let s = &self.slots[i];
        let seq = s.seq.load(Ordering::Relaxed);
        s.seq.store(seq.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        for (w, v) in s.key.iter().zip(key) {
            w.store(v, Ordering::Relaxed);
        }
        for (w, v) in s.to.iter().zip(to) {
            w.store(v, Ordering::Relaxed);
        }
        s.used_ns.store(0, Ordering::Relaxed);
        s.seq.store(seq.wrapping_add(2), Ordering::Release);
    }

    fn key_at(&self, i: usize) -> [u64; WORDS] {
        load(&self.slots[i].key)
    }
}

fn load(words: &[AtomicU64; WORDS]) -> [u64; WORDS] {
    std::array::from_fn(|i| words[i].load(Ordering::Relaxed))
}

/// The table's one writer. Not `Clone`: two writers would race on a slot's sequence.
#[derive(Debug)]
pub struct Writer {
    table: Arc<FlowTable>,
}

/// No slot in the key's window was free.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

impl Writer {
    pub fn new(table: Arc<FlowTable>) -> Self {
        Self { table }
    }

    pub fn table(&self) -> &Arc<FlowTable> {
        &self.table
    }

    /// Makes packets of tuple `from` be rewritten into `to`; returns the entry's slot.
    pub fn insert(&mut self, from: Tuple, to: Tuple) -> Result<usize, Full> {
        let key = from.to_words();
        let t = &self.table;
        let mut free = None;
        for i in t.window(key) {
            let k = t.key_at(i);
            if k == key {
                t.write(i, key, to.to_words());
                return Ok(i);
            }
            if k == [0; WORDS] && free.is_none() {
                free = Some(i);
            }
        }
        let i = free.ok_or(Full)?;
        t.write(i, key, to.to_words());
        t.entries.fetch_add(1, Ordering::Relaxed);
        Ok(i)
    }

    /// From now on, packets to LAN hosts take the kernel's path (and the offload, once their
    /// flow is established) instead of being served directly: the kernel translates what
    /// leaves by the LAN port, and a flow whose packets went round its NAT would otherwise
    /// leave partly translated, partly not.
    pub fn set_lan_translated(&mut self) {
        self.table.lan_translated.store(true, Ordering::Relaxed);
    }

    /// Takes tuple `from`'s entry out; false if there was none.
    pub fn remove(&mut self, from: Tuple) -> bool {
        let key = from.to_words();
        let t = &self.table;
        let Some(i) = t.window(key).find(|&i| t.key_at(i) == key) else {
            return false;
        };
        t.write(i, [0; WORDS], [0; WORDS]);
        t.entries.fetch_sub(1, Ordering::Relaxed);
        true
    }

    /// When a worker last carried a packet of the entry in `slot` (0: not since it was
    /// written).
    pub fn used_ns(&self, slot: usize) -> u64 {
        self.table
            .slots
            .get(slot)
            .map_or(0, |s| s.used_ns.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::offload::tuple::{TCP, UDP};
    use std::collections::HashMap;
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    /// Flow `n`'s tuple: TCP or UDP, IPv4 or (every third) IPv6.
    fn t(n: u32, port: u16) -> Tuple {
        let (src, dst): (IpAddr, IpAddr) = if n.is_multiple_of(3) {
            (
                Ipv6Addr::from(0x2001_0002_0000_0001_u128 << 64 | u128::from(n)).into(),
                Ipv6Addr::from(0x2001_0002_0000_00ff_u128 << 64 | 1).into(),
            )
        } else {
            (
                Ipv4Addr::from(0xc612_0000 | n).into(),
                Ipv4Addr::new(198, 18, 0, 250).into(),
            )
        };
        Tuple {
            proto: if n.is_multiple_of(2) { TCP } else { UDP },
            src,
            dst,
            sport: port,
            dport: 443,
        }
    }

    /// Against a plain map (the reference), through a random series of inserts and
    /// removals: every present key is found with its target, every absent one is not, and an
    /// insert fails only when its whole window is taken.
    #[test]
    fn behaves_as_a_map_until_a_window_is_full() {
        let table = FlowTable::new(64);
        let mut w = Writer::new(table.clone());
        let mut reference = HashMap::new();
        let mut rng = 0x1234_5678_u64;
        let mut full = 0;
        for step in 0..20_000u32 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let k = t((rng % 300) as u32, (rng >> 20) as u16 % 4);
            if rng & (1 << 40) == 0 {
                let to = t(step, 1);
                match w.insert(k, to) {
                    Ok(_) => {
                        reference.insert(k, to);
                    }
                    Err(Full) => {
                        full += 1;
                        let window: Vec<_> = table.window(k.to_words()).collect();
                        assert!(window.iter().all(|&i| table.key_at(i) != [0; WORDS]));
                        assert!(!reference.contains_key(&k));
                    }
                }
            } else {
                assert_eq!(w.remove(k), reference.remove(&k).is_some());
            }
            if step % 97 == 0 {
                for n in 0..300 {
                    for p in 0..4 {
                        let k = t(n, p);
                        assert_eq!(table.lookup(&k).map(|h| h.to), reference.get(&k).copied());
                    }
                }
            }
        }
        assert!(
            full > 0,
            "the test never filled a window (make the table smaller)"
        );
    }

    /// A reader racing the writer never sees a key with another key's target.
    #[test]
    fn a_concurrent_reader_never_sees_a_torn_entry() {
        let table = FlowTable::new(4);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = {
            let (table, stop) = (table.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut seen = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    for n in 0..8 {
                        if let Some(h) = table.lookup(&t(n, 7)) {
                            // Each key's target carries the key's number in its port.
                            assert_eq!(h.to.sport, n as u16, "torn entry");
                            seen += 1;
                        }
                    }
                }
                seen
            })
        };
        let mut w = Writer::new(table.clone());
        for round in 0..200_000u32 {
            let n = round % 8;
            let mut to = t(round, n as u16);
            to.sport = n as u16;
            if round % 3 == 0 {
                w.remove(t(n, 7));
            } else {
                let _ = w.insert(t(n, 7), to);
            }
        }
        stop.store(true, Ordering::Relaxed);
        assert!(
            reader.join().unwrap() > 0,
            "the reader never found an entry"
        );
    }

    #[test]
    fn touch_marks_an_entry_used_and_a_rewrite_clears_it() {
        let table = FlowTable::new(8);
        let mut w = Writer::new(table.clone());
        let slot = w.insert(t(1, 1), t(2, 2)).unwrap();
        assert_eq!(w.used_ns(slot), 0);
        table.touch(slot, 5_000_000_000);
        assert_eq!(w.used_ns(slot), 5_000_000_000);
        // Within TOUCH_NS: not written again.
        table.touch(slot, 5_000_000_001);
        assert_eq!(w.used_ns(slot), 5_000_000_000);
        w.insert(t(1, 1), t(3, 3)).unwrap();
        assert_eq!(w.used_ns(slot), 0);
    }
}
