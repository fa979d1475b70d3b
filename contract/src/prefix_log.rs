//! The allowed-IPs changes control tells the data-path process about, beyond the table itself.
//!
//! The workers read the allowed-IPs table where control writes it (the region's table
//! sections, `allowedips::Memory`). What else must follow the prefixes lives in the data-path
//! process and only it can change: the LAN program's peer tries (which LAN destinations are
//! steered to the workers) with XDP, the kernel's routes into the TUN device with the socket
//! backend. This log carries each change to them: one writer (control), one reader (the
//! data-path process), a bounded ring of [`PREFIX_LOG_CAP`] entries.
//!
//! Control never overwrites an entry the reader has not applied (`applied` tells it how far
//! the reader is); what does not fit waits in control, which sends each prefix's latest state
//! when room frees up. A [`PrefixChange::Reset`] tells the reader to start over from nothing:
//! control sends one, then every prefix, when it starts (a new control process does not know
//! what the reader holds) and when the reader asks ([`PrefixLog::request_resync`], a data path
//! starting over a running control).

use crate::layout::{decode_prefix, encode_prefix};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

/// Entries in the ring.
pub const PREFIX_LOG_CAP: usize = 8192;

/// What a removal's entry carries in place of a peer.
const NO_PEER: u32 = u32::MAX;

/// One change to the set of prefixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrefixChange {
    /// Forget every prefix; the current ones follow.
    Reset,
    /// The prefix belongs to this peer slot now (it may have belonged to another).
    Set { addr: IpAddr, len: u8, peer: u32 },
    /// The prefix belongs to nobody now.
    Remove { addr: IpAddr, len: u8 },
}

impl PrefixChange {
    fn encode(self) -> [u64; 3] {
        match self {
            Self::Reset => [0; 3],
            Self::Set { addr, len, peer } => encode_prefix(addr, len, peer),
            Self::Remove { addr, len } => encode_prefix(addr, len, NO_PEER),
        }
    }

    /// `None` for words no writer produces (a hostile or corrupt region).
    fn decode(w: &[u64; 3]) -> Option<Self> {
        if *w == [0; 3] {
            return Some(Self::Reset);
        }
        let (addr, len, peer) = decode_prefix(w)?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if len > max {
            return None;
        }
        Some(if peer == NO_PEER {
            Self::Remove { addr, len }
        } else {
            Self::Set { addr, len, peer }
        })
    }
}

/// The words of the log in the region's header and body.
#[derive(Debug, Clone, Copy)]
pub struct PrefixLog<'a> {
    /// Entries control has written (a count; the ring position is modulo the capacity).
    pub(crate) head: &'a AtomicU64,
    /// Entries the data path has applied.
    pub(crate) applied: &'a AtomicU64,
    /// Non-zero while the data path waits for a [`PrefixChange::Reset`] and everything.
    pub(crate) resync: &'a AtomicU64,
    pub(crate) entries: &'a [[AtomicU64; 3]],
}

impl PrefixLog<'_> {
    // ---- control ---------------------------------------------------------------------

    /// Entries that can be written now.
    pub fn room(&self) -> usize {
        let head = self.head.load(Ordering::Relaxed);
        let applied = self.applied.load(Ordering::Acquire);
        self.entries
            .len()
            .saturating_sub(usize::try_from(head.wrapping_sub(applied)).unwrap_or(usize::MAX))
    }

    /// Appends `change`; false if the ring is full (nothing written).
    pub fn push(&self, change: PrefixChange) -> bool {
        if self.room() == 0 {
            return false;
        }
        let head = self.head.load(Ordering::Relaxed);
        let slot = &self.entries[(head % self.entries.len() as u64) as usize];
        for (w, v) in slot.iter().zip(change.encode()) {
            w.store(v, Ordering::Relaxed);
        }
        // The entry's words before the count that makes them the reader's.
        self.head.store(head.wrapping_add(1), Ordering::Release);
        true
    }

    /// Whether the reader has applied everything written.
    pub fn caught_up(&self) -> bool {
        self.applied.load(Ordering::Acquire) == self.head.load(Ordering::Relaxed)
    }

    /// Whether the reader asked for everything again; clears the request.
    pub fn take_resync_request(&self) -> bool {
        self.resync.swap(0, Ordering::AcqRel) != 0
    }

    // ---- the data path ---------------------------------------------------------------

    /// Asks control for a [`PrefixChange::Reset`] and every prefix (a reader starting with
    /// nothing). Entries not yet applied are skipped: the reset will cover them.
    pub fn request_resync(&self) {
        self.applied
            .store(self.head.load(Ordering::Acquire), Ordering::Release);
        self.resync.store(1, Ordering::Release);
    }

    /// Applies up to `max` waiting entries in order through `apply` (entries no writer could
    /// have produced are skipped), then records them applied; returns how many were taken.
    pub fn drain(&self, max: usize, mut apply: impl FnMut(PrefixChange)) -> usize {
        let head = self.head.load(Ordering::Acquire);
        let mut at = self.applied.load(Ordering::Relaxed);
        let mut n = 0;
        // A head that ran ahead by more than the ring (a hostile region) reads as empty.
        if head.wrapping_sub(at) > self.entries.len() as u64 {
            return 0;
        }
        while at != head && n < max {
            let slot = &self.entries[(at % self.entries.len() as u64) as usize];
            let w = std::array::from_fn(|i| slot[i].load(Ordering::Relaxed));
            if let Some(c) = PrefixChange::decode(&w) {
                apply(c);
            }
            at = at.wrapping_add(1);
            n += 1;
        }
        // The entries were read before control may overwrite them.
        self.applied.store(at, Ordering::Release);
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Words {
        head: AtomicU64,
        applied: AtomicU64,
        resync: AtomicU64,
        entries: Vec<[AtomicU64; 3]>,
    }

    fn words(cap: usize) -> Words {
        Words {
            head: AtomicU64::new(0),
            applied: AtomicU64::new(0),
            resync: AtomicU64::new(0),
            entries: (0..cap).map(|_| Default::default()).collect(),
        }
    }

    fn log(w: &Words) -> PrefixLog<'_> {
        PrefixLog {
            head: &w.head,
            applied: &w.applied,
            resync: &w.resync,
            entries: &w.entries,
        }
    }

    fn set(i: u8) -> PrefixChange {
        PrefixChange::Set {
            addr: IpAddr::from([198, 18, i, 0]),
            len: 24,
            peer: u32::from(i),
        }
    }

    #[test]
    fn changes_arrive_in_order_and_a_full_ring_refuses_instead_of_overwriting() {
        let w = words(4);
        let l = log(&w);
        let remove = PrefixChange::Remove {
            addr: "2001:2::".parse().unwrap(),
            len: 48,
        };
        for c in [PrefixChange::Reset, set(1), remove, set(2)] {
            assert!(l.push(c));
        }
        assert!(!l.push(set(3)), "full: the reader has applied nothing");
        assert!(!l.caught_up());
        let mut got = Vec::new();
        assert_eq!(l.drain(3, |c| got.push(c)), 3);
        assert_eq!(got, [PrefixChange::Reset, set(1), remove]);
        assert_eq!(l.room(), 3);
        assert!(l.push(set(3)));
        got.clear();
        l.drain(usize::MAX, |c| got.push(c));
        assert_eq!(got, [set(2), set(3)]);
        assert!(l.caught_up());
    }

    #[test]
    fn a_resync_request_skips_what_is_waiting() {
        let w = words(4);
        let l = log(&w);
        l.push(set(1));
        l.request_resync();
        assert!(l.caught_up());
        assert!(l.take_resync_request());
        assert!(!l.take_resync_request(), "taken once");
    }

    #[test]
    fn hostile_words_are_skipped_not_applied() {
        let w = words(4);
        let l = log(&w);
        l.push(set(1));
        // A length beyond the family, and a head that ran past the ring.
        w.entries[0][2].store(33 | 4 << 8, Ordering::Relaxed);
        let mut got = Vec::new();
        assert_eq!(l.drain(8, |c| got.push(c)), 1);
        assert!(got.is_empty());
        w.head.store(100, Ordering::Relaxed);
        assert_eq!(l.drain(8, |c| got.push(c)), 0);
    }
}
