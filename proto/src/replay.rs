//! The anti-replay window for transport data messages (whitepaper §5.4.6), with the Linux
//! kernel's semantics: the RFC 6479 ring bitmap of `counter_validate` in
//! drivers/net/wireguard/receive.c, sized by the constants of messages.h.
//!
//! What it accepts, stated without the bitmap: a counter below [`REJECT_AFTER_MESSAGES`] that
//! has not been accepted before and is no more than [`COUNTER_WINDOW_SIZE`] below the greatest
//! counter accepted so far. So the window holds 8129 counters, the greatest and the 8128 before
//! it, and within it nothing is forgotten: the ring's extra word (the "redundant bits") keeps
//! the oldest counters' word alive while the newest word fills.

use crate::constants::{COUNTER_BITS_TOTAL, COUNTER_WINDOW_SIZE, REJECT_AFTER_MESSAGES};

const WORD_BITS: u64 = u64::BITS as u64;
const RING_WORDS: usize = (COUNTER_BITS_TOTAL / WORD_BITS) as usize;

/// The receive-side replay state of one keypair.
///
/// Contract: call [`validate`](Self::validate) only for a data message whose AEAD tag has
/// verified under this keypair's receiving key, and then drop the message if it returns false.
/// Checking before authentication would let anyone advance the window with a forged counter
/// and make the peer's genuine packets look old (the kernel validates in `wg_packet_rx_poll`,
/// after `decrypt_packet`). This window has one owner (the protocol core's own keypair, in
/// control or a test), so the kernel's spinlock becomes `&mut self`; the data path's workers
/// share one lock-free window per session instead (`contract::replay`), checked against this
/// one by a differential test.
#[derive(Clone)]
pub struct ReplayWindow {
    /// One more than the greatest counter accepted, 0 before the first. Counter `c` is kept as
    /// ring bit `c + 1`, so the zeroed state is valid and needs no "nothing seen yet" flag;
    /// this field is then the bit position of the greatest accepted counter.
    next: u64,
    /// Ring bitmap: bit `p % 64` of word `(p / 64) % 128` records position `p`.
    ring: [u64; RING_WORDS],
}

impl ReplayWindow {
    /// An empty window: any counter below [`REJECT_AFTER_MESSAGES`] is accepted once.
    pub const fn new() -> Self {
        Self {
            next: 0,
            ring: [0; RING_WORDS],
        }
    }

    /// Decides whether an authenticated message with `counter` is fresh, and records it.
    /// Returns false for a replay, a counter too far behind, or one at or past
    /// [`REJECT_AFTER_MESSAGES`]; the window is then unchanged.
    #[must_use = "a false result means the packet is a replay and must be dropped"]
    pub fn validate(&mut self, counter: u64) -> bool {
        // The kernel also refuses when its stored counter exceeds the limit; that cannot happen
        // here, since only counters below the limit are ever recorded.
        if counter >= REJECT_AFTER_MESSAGES {
            return false;
        }
        // No overflow: counter + 1 + COUNTER_WINDOW_SIZE <= u64::MAX - 1.
        let position = counter + 1;
        if position + COUNTER_WINDOW_SIZE < self.next {
            return false;
        }
        let word = position / WORD_BITS;
        if position > self.next {
            // Moving forward: the words between the old greatest and the new one now stand for
            // newer counters, so clear them. Past a whole ring's worth, everything is stale.
            let current = self.next / WORD_BITS;
            let stale = (word - current).min(RING_WORDS as u64);
            for i in 1..=stale {
                self.ring[ring_index(current + i)] = 0;
            }
            self.next = position;
        }
        let bit = 1u64 << (position % WORD_BITS);
        let slot = &mut self.ring[ring_index(word)];
        let fresh = *slot & bit == 0;
        *slot |= bit;
        fresh
    }

    /// The greatest counter accepted so far, if any.
    pub fn greatest_accepted(&self) -> Option<u64> {
        self.next.checked_sub(1)
    }

    /// Whether the keypair has used up its counters: the greatest accepted is
    /// `REJECT_AFTER_MESSAGES - 1`, so nothing further can be accepted. The kernel checks this
    /// before decrypting (`decrypt_packet`: `receive.counter >= REJECT_AFTER_MESSAGES`) and
    /// then marks the keypair invalid; the caller does the same.
    pub fn is_exhausted(&self) -> bool {
        self.next >= REJECT_AFTER_MESSAGES
    }
}

impl Default for ReplayWindow {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for ReplayWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The ring is 1 KiB of bits; the greatest counter is what a reader wants.
        f.debug_struct("ReplayWindow")
            .field("greatest_accepted", &self.greatest_accepted())
            .finish_non_exhaustive()
    }
}

fn ring_index(word: u64) -> usize {
    (word % RING_WORDS as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    /// The acceptance rule stated plainly, with every counter ever accepted in a set.
    #[derive(Default)]
    struct Reference {
        seen: BTreeSet<u64>,
        greatest: Option<u64>,
    }

    impl Reference {
        fn validate(&mut self, counter: u64) -> bool {
            let too_old = self
                .greatest
                .is_some_and(|g| counter < g.saturating_sub(COUNTER_WINDOW_SIZE));
            if counter >= REJECT_AFTER_MESSAGES || too_old || !self.seen.insert(counter) {
                return false;
            }
            self.greatest = self.greatest.max(Some(counter));
            true
        }
    }

    fn run(window: &mut ReplayWindow, cases: &[(u64, bool)]) {
        for (i, &(counter, expected)) in cases.iter().enumerate() {
            assert_eq!(
                window.validate(counter),
                expected,
                "step {i}: counter {counter}, {window:?}"
            );
        }
    }

    #[test]
    fn constants_match_messages_h() {
        assert_eq!(COUNTER_WINDOW_SIZE, 8128);
        assert_eq!(REJECT_AFTER_MESSAGES, u64::MAX - 8129);
        assert_eq!(REJECT_AFTER_MESSAGES, 0u64.wrapping_sub(8130));
        assert_eq!(std::mem::size_of::<ReplayWindow>(), 8 + 1024);
    }

    /// The sequence of the kernel's own self-test (drivers/net/wireguard/selftest/counter.c),
    /// with its expected results.
    #[test]
    fn kernel_selftest_sequence() {
        const LIM: u64 = COUNTER_WINDOW_SIZE + 1;
        const RAM: u64 = REJECT_AFTER_MESSAGES;
        let mut w = ReplayWindow::new();
        run(
            &mut w,
            &[
                (0, true),
                (1, true),
                (1, false),
                (9, true),
                (8, true),
                (7, true),
                (7, false),
                (LIM, true),
                (LIM - 1, true),
                (LIM - 1, false),
                (LIM - 2, true),
                (2, true),
                (2, false),
                (LIM + 16, true),
                (3, false),
                (LIM + 16, false),
                (LIM * 4, true),
                (LIM * 4 - (LIM - 1), true),
                (10, false),
                (LIM * 4 - LIM, false),
                (LIM * 4 - (LIM + 1), false),
                (LIM * 4 - (LIM - 2), true),
                (LIM * 4 + 1 - LIM, false),
                (0, false),
                (RAM, false),
                (RAM - 1, true),
                (RAM, false),
                (RAM - 1, false),
                (RAM - 2, true),
                (RAM + 1, false),
                (RAM + 2, false),
                (RAM - 2, false),
                (RAM - 3, true),
                (0, false),
            ],
        );

        // 1..=W then 0: 0 is exactly W behind the greatest, still inside.
        let mut w = ReplayWindow::new();
        for i in 1..=COUNTER_WINDOW_SIZE {
            assert!(w.validate(i));
        }
        run(&mut w, &[(0, true), (0, false)]);

        // 2..=W+1 then 1 (inside) and 0 (one past the edge).
        let mut w = ReplayWindow::new();
        for i in 2..=COUNTER_WINDOW_SIZE + 1 {
            assert!(w.validate(i));
        }
        run(&mut w, &[(1, true), (0, false)]);

        // Descending from W to 0: all inside.
        let mut w = ReplayWindow::new();
        for i in (0..=COUNTER_WINDOW_SIZE).rev() {
            assert!(w.validate(i));
        }

        // Descending from W+1 to 1, then 0 is one past the edge.
        let mut w = ReplayWindow::new();
        for i in (1..=COUNTER_WINDOW_SIZE + 1).rev() {
            assert!(w.validate(i));
        }
        assert!(!w.validate(0));

        // Descending from W to 1, then W+1 moves the edge to exactly 1, past 0.
        let mut w = ReplayWindow::new();
        for i in (1..=COUNTER_WINDOW_SIZE).rev() {
            assert!(w.validate(i));
        }
        run(&mut w, &[(COUNTER_WINDOW_SIZE + 1, true), (0, false)]);

        // Same, but 0 arrives before W+1.
        let mut w = ReplayWindow::new();
        for i in (1..=COUNTER_WINDOW_SIZE).rev() {
            assert!(w.validate(i));
        }
        run(&mut w, &[(0, true), (COUNTER_WINDOW_SIZE + 1, true)]);
    }

    #[test]
    fn edge_cases() {
        const W: u64 = COUNTER_WINDOW_SIZE;
        const G: u64 = 100_000;
        type Case = (&'static str, &'static [u64], u64, bool);
        let cases: &[Case] = &[
            ("counter 0 first", &[], 0, true),
            ("large first counter", &[], 1 << 40, true),
            ("duplicate", &[5], 5, false),
            ("reordered, inside", &[10], 3, true),
            ("exactly at the left edge", &[G], G - W, true),
            ("one past the left edge", &[G], G - W - 1, false),
            ("left edge seen before", &[G - W, G], G - W, false),
            ("far behind", &[G], 0, false),
            ("just below the limit", &[], REJECT_AFTER_MESSAGES - 1, true),
            ("at the limit", &[], REJECT_AFTER_MESSAGES, false),
            ("u64::MAX", &[], u64::MAX, false),
            (
                "below the limit after it",
                &[REJECT_AFTER_MESSAGES - 1],
                REJECT_AFTER_MESSAGES - 2,
                true,
            ),
            (
                "jump clears an aliased bit",
                &[64, 64 + 8192 + 1],
                64 + 8192,
                true,
            ),
            (
                "jump of exactly one ring",
                &[1000, 1000 + 8192],
                1000 + 8192 - W,
                true,
            ),
            (
                "jump of one ring, old counter",
                &[1000, 1000 + 8192],
                1000,
                false,
            ),
            ("huge jump", &[7, 1 << 62], (1 << 62) - 1, true),
            ("huge jump, old counter", &[7, 1 << 62], 7, false),
        ];
        for &(name, before, counter, expected) in cases {
            let mut w = ReplayWindow::new();
            for &c in before {
                assert!(w.validate(c), "{name}: setup counter {c}");
            }
            assert_eq!(w.validate(counter), expected, "{name}");
        }
    }

    #[test]
    fn exhaustion() {
        let mut w = ReplayWindow::new();
        assert!(!w.is_exhausted());
        assert!(w.validate(REJECT_AFTER_MESSAGES - 2));
        assert!(!w.is_exhausted());
        assert!(w.validate(REJECT_AFTER_MESSAGES - 1));
        assert!(w.is_exhausted());
        assert_eq!(w.greatest_accepted(), Some(REJECT_AFTER_MESSAGES - 1));
    }

    #[test]
    fn rejection_leaves_state_unchanged() {
        let mut w = ReplayWindow::new();
        for c in [3, 9000, 8999] {
            assert!(w.validate(c));
        }
        let before = w.clone();
        for c in [3, 9000, 0, REJECT_AFTER_MESSAGES, u64::MAX] {
            assert!(!w.validate(c));
            assert_eq!(w.ring, before.ring);
            assert_eq!(w.next, before.next);
        }
    }

    #[test]
    fn ring_wraps_many_times_in_order() {
        // Eight trips round the ring, each counter once, with every in-window duplicate and the
        // first counter past the edge refused along the way.
        let mut w = ReplayWindow::new();
        for c in 0..8 * COUNTER_BITS_TOTAL {
            assert!(w.validate(c));
            if c % 997 == 0 {
                for back in [0, 1, 63, 64, 65, COUNTER_WINDOW_SIZE] {
                    if let Some(old) = c.checked_sub(back) {
                        assert!(!w.validate(old), "replay of {old} after {c}");
                    }
                }
                if let Some(old) = c.checked_sub(COUNTER_WINDOW_SIZE + 1) {
                    assert!(!w.validate(old));
                }
            }
        }
        assert_eq!(w.greatest_accepted(), Some(8 * COUNTER_BITS_TOTAL - 1));
    }

    #[test]
    fn ring_wraps_with_gaps() {
        // Every third counter, then the skipped ones still inside the window are all accepted
        // once, and the ones outside are refused.
        let mut w = ReplayWindow::new();
        let top = 5 * COUNTER_BITS_TOTAL;
        for c in (0..=top).step_by(3) {
            assert!(w.validate(c));
        }
        for c in (0..=top).rev() {
            let inside = c + COUNTER_WINDOW_SIZE >= top;
            let fresh = c % 3 != 0;
            assert_eq!(w.validate(c), inside && fresh, "counter {c}");
        }
    }

    /// Counters generated relative to the reference's greatest so far, to hit the edges often.
    #[derive(Debug, Clone)]
    enum Step {
        /// `greatest + delta`: reordering, duplicates, the left edge and small advances.
        Near(i64),
        /// A forward jump, from within a word to many rings.
        Jump(u64),
        /// An absolute counter, often at or near the limit.
        Absolute(u64),
    }

    fn step() -> impl Strategy<Value = Step> {
        let w = COUNTER_WINDOW_SIZE as i64;
        prop_oneof![
            6 => (-w - 70..70i64).prop_map(Step::Near),
            2 => (-w - 2..=-w + 2).prop_map(Step::Near),
            2 => prop_oneof![0..200u64, 8000..8300u64, 8300..40_000u64, any::<u64>()]
                .prop_map(Step::Jump),
            1 => prop_oneof![
                0..100u64,
                (REJECT_AFTER_MESSAGES - 10_000)..=u64::MAX,
                any::<u64>(),
            ]
            .prop_map(Step::Absolute),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn matches_reference(steps in proptest::collection::vec(step(), 1..400)) {
            let mut window = ReplayWindow::new();
            let mut reference = Reference::default();
            for s in steps {
                let base = reference.greatest.unwrap_or(0);
                let counter = match s {
                    Step::Near(d) => base.saturating_add_signed(d),
                    Step::Jump(d) => base.saturating_add(d),
                    Step::Absolute(c) => c,
                };
                // Each step also re-sends the counter, which must be refused if it was taken.
                for _ in 0..2 {
                    let expected = reference.validate(counter);
                    prop_assert_eq!(window.validate(counter), expected, "counter {}", counter);
                }
                prop_assert_eq!(window.greatest_accepted(), reference.greatest);
            }
        }
    }
}
