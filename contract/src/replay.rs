//! The anti-replay window of a session, shared by every worker (whitepaper §5.4.6, with the
//! kernel's semantics: the same as `proto::replay::ReplayWindow`, which is its reference).
//!
//! Why shared: a worker's private window would let a replayed packet through once on each
//! other worker (an attacker only has to change the UDP source port for RSS to pick another
//! queue), and an accepted replay also moves the peer's endpoint to the attacker's address.
//! The kernel has one window per keypair behind a spinlock; here it lives in the session's
//! slot of the shared region and is updated lock-free, so any worker can check any session.
//!
//! How: the greatest accepted position is an atomic maximum; the ring's words each hold a
//! 16-bit tag (which lap of the ring the word stands for) and 48 bits. A word whose tag is not
//! the checked counter's belongs to an older lap and counts as empty (the kernel clears such
//! words eagerly as the window advances; here they are replaced when next used, with a
//! compare-and-swap, so two workers checking the same counter cannot both accept it). With
//! 171 words (8208 bits) a word is never reused by a newer lap while any counter it holds is
//! still inside the 8128-counter window, so nothing inside the window is forgotten.

use proto::constants::{COUNTER_WINDOW_SIZE, REJECT_AFTER_MESSAGES};
use std::sync::atomic::{AtomicU64, Ordering};

/// Ring words: the fewest 48-bit words that span the window and one word more.
pub const RING_WORDS: usize = 171;
const WORD_BITS: u64 = 48;
const BITS_MASK: u64 = (1 << WORD_BITS) - 1;

// A newer lap could claim the word of a position p only from position (p / 48 + 171) * 48,
// which must lie beyond the window's reach from p: 171 * 48 >= 8128 + 48.
const _: () = assert!(RING_WORDS as u64 * WORD_BITS >= COUNTER_WINDOW_SIZE + WORD_BITS);

/// One session's window (all-zero bytes: empty).
#[repr(C)]
#[derive(Debug)]
pub struct SharedReplay {
    /// One more than the greatest counter accepted (0: none yet), as in the reference.
    next: AtomicU64,
    /// Word `(p / 48) % 171` holds the tag `(p / 48 / 171) as u16` and bit `p % 48` of
    /// position `p`.
    ring: [AtomicU64; RING_WORDS],
}

impl Default for SharedReplay {
    fn default() -> Self {
        Self {
            next: AtomicU64::new(0),
            ring: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl SharedReplay {
    /// Control: empties the window before the slot carries a new session.
    pub fn reset(&self) {
        for w in &self.ring {
            w.store(0, Ordering::Relaxed);
        }
        self.next.store(0, Ordering::Release);
    }

    /// Whether the session's receiving counters are used up (the greatest accepted reached
    /// REJECT_AFTER_MESSAGES - 1): the kernel then refuses the keypair for receiving.
    pub fn is_exhausted(&self) -> bool {
        self.next.load(Ordering::Acquire) >= REJECT_AFTER_MESSAGES
    }

    /// Workers: decides whether an authenticated message with `counter` is fresh and records
    /// it; false for a replay, a counter too far behind, or one at or past
    /// REJECT_AFTER_MESSAGES. Call only after the message authenticated (see
    /// `proto::replay::ReplayWindow::validate`). Lock-free: a fetch-max and a CAS loop.
    #[must_use = "a false result means the packet is a replay and must be dropped"]
    pub fn validate(&self, counter: u64) -> bool {
        if counter >= REJECT_AFTER_MESSAGES {
            return false;
        }
        let position = counter + 1;
        let next = self
            .next
            .fetch_max(position, Ordering::AcqRel)
            .max(position);
        if position + COUNTER_WINDOW_SIZE < next {
            return false;
        }
        let block = position / WORD_BITS;
        let word = &self.ring[(block % RING_WORDS as u64) as usize];
        let tag = (block / RING_WORDS as u64) & 0xffff;
        let bit = 1u64 << (position % WORD_BITS);
        let mut cur = word.load(Ordering::Acquire);
        loop {
            let new = if cur >> WORD_BITS == tag {
                if cur & bit != 0 {
                    return false;
                }
                cur | bit
            } else {
                // Another lap's word. Older, unless the window has meanwhile moved past this
                // counter (then a newer lap may own the word, and the counter is too old).
                if position + COUNTER_WINDOW_SIZE < self.next.load(Ordering::Acquire) {
                    return false;
                }
                tag << WORD_BITS | bit
            };
            debug_assert_eq!(new & BITS_MASK & bit, bit);
            match word.compare_exchange_weak(cur, new, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return true,
                Err(now) => cur = now,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use proto::replay::ReplayWindow;

    #[test]
    fn the_kernel_tables() {
        let w = SharedReplay::default();
        assert!(w.validate(0));
        assert!(!w.validate(0), "replay");
        assert!(w.validate(2) && w.validate(1) && !w.validate(1));
        assert!(w.validate(COUNTER_WINDOW_SIZE + 2));
        assert!(w.validate(2 + 1), "still inside: 8128 below the greatest");
        assert!(!w.validate(1), "just outside the window now");
        assert!(w.validate(COUNTER_WINDOW_SIZE * 3));
        assert!(!w.validate(COUNTER_WINDOW_SIZE + 3), "too old now");
        assert!(!w.validate(REJECT_AFTER_MESSAGES));
        assert!(w.validate(REJECT_AFTER_MESSAGES - 1));
        assert!(!w.validate(REJECT_AFTER_MESSAGES - 1));
        w.reset();
        assert!(w.validate(0), "empty after reset");
    }

    proptest! {
        /// Same answers as the reference window for any sequence: steps forward and back of
        /// every size, duplicates, jumps past the ring.
        #[test]
        fn matches_the_reference(steps in prop::collection::vec((0u8..6, 0u64..20_000), 1..2000)) {
            let shared = SharedReplay::default();
            let mut reference = ReplayWindow::new();
            let mut c: u64 = 0;
            for (kind, n) in steps {
                c = match kind {
                    0 => c + 1,
                    1 => c + n % 64,
                    2 => c.saturating_sub(n % 9000),
                    3 => c + n,
                    4 => c.saturating_sub(n % 200),
                    _ => c,
                };
                prop_assert_eq!(shared.validate(c), reference.validate(c), "counter {}", c);
            }
        }
    }

    /// Two threads offer the same counters (each in its own order): every counter is
    /// accepted exactly once overall.
    #[test]
    fn concurrent_workers_accept_each_counter_once() {
        let w = std::sync::Arc::new(SharedReplay::default());
        let total = 200_000u64;
        let run = |w: std::sync::Arc<SharedReplay>, shift: u64| {
            std::thread::spawn(move || {
                let mut accepted = Vec::new();
                // Mostly increasing with local reordering, as two queues would see.
                for i in 0..total {
                    let c = i ^ shift;
                    if c < total && w.validate(c) {
                        accepted.push(c);
                    }
                }
                accepted
            })
        };
        let a = run(w.clone(), 0);
        let b = run(w.clone(), 5);
        let mut all = a.join().unwrap();
        all.extend(b.join().unwrap());
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n, "a counter was accepted twice");
        assert!(n as u64 > total * 9 / 10, "most counters get through: {n}");
    }
}
