//! A single-writer seqlock over words of atomics.
//!
//! The writer (control) makes the sequence odd, stores the words, makes it even again. A
//! reader loads the sequence, the words, and the sequence again; if the two differ or the
//! first was odd, it saw a write in progress and reads again. All loads and stores are atomic,
//! so there is no data race; the fences order the words against the sequence.
//!
//! Readers never wait for the writer: a write takes a few nanoseconds, so a retry almost
//! always succeeds at once; after [`MAX_READ_ATTEMPTS`] a reader gives up for this batch
//! (`None`) rather than spin behind a stalled writer.

use std::sync::atomic::{fence, AtomicU64, Ordering};

pub const MAX_READ_ATTEMPTS: u32 = 64;

#[repr(C)]
#[derive(Debug)]
pub struct SeqLock<const N: usize> {
    seq: AtomicU64,
    words: [AtomicU64; N],
}

impl<const N: usize> Default for SeqLock<N> {
    fn default() -> Self {
        Self {
            seq: AtomicU64::new(0),
            words: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl<const N: usize> SeqLock<N> {
    /// Publishes `words`. Only one writer may call this at a time (the control process is the
    /// single writer of every record; it serialises its own calls).
    pub fn write(&self, words: &[u64; N]) {
        // Even before the write, whatever was left: a writer killed mid-write leaves the
        // sequence odd, and counting on from there would make every later record odd while
        // valid and even while being written, so readers would take torn data.
        let s = self.seq.load(Ordering::Relaxed) & !1;
        self.seq.store(s.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        for (w, v) in self.words.iter().zip(words) {
            w.store(*v, Ordering::Relaxed);
        }
        self.seq.store(s.wrapping_add(2), Ordering::Release);
    }

    /// A consistent copy of the words, or `None` if a write kept overlapping the read.
    pub fn read(&self) -> Option<[u64; N]> {
        for _ in 0..MAX_READ_ATTEMPTS {
            let before = self.seq.load(Ordering::Acquire);
            if before & 1 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let out: [u64; N] = std::array::from_fn(|i| self.words[i].load(Ordering::Relaxed));
            fence(Ordering::Acquire);
            if self.seq.load(Ordering::Relaxed) == before {
                return Some(out);
            }
        }
        None
    }

    /// Whether a writer stopped in the middle of a write (the sequence is odd while no writer
    /// runs: it died). Readers refuse such a record until it is written again.
    pub fn is_torn(&self) -> bool {
        self.seq.load(Ordering::Acquire) & 1 == 1
    }

    /// The sequence number: even, and changed by every write. Lets a reader skip unchanged
    /// records cheaply.
    pub fn version(&self) -> u64 {
        self.seq.load(Ordering::Acquire)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// What a writer killed mid-write leaves: the sequence odd.
    pub(crate) fn tear<const N: usize>(l: &SeqLock<N>) {
        l.seq.fetch_add(1, Ordering::Relaxed);
    }
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    #[test]
    fn read_after_write() {
        let l = SeqLock::<3>::default();
        assert_eq!(l.read(), Some([0, 0, 0]));
        l.write(&[1, 2, 3]);
        assert_eq!(l.read(), Some([1, 2, 3]));
        assert_eq!(l.version(), 2);
    }

    /// A writer killed mid-write leaves the sequence odd; the next write (a restarted
    /// control's) must leave it even, so that readers accept the record again, and odd while
    /// it writes, so that they never accept a half-written one.
    #[test]
    fn a_write_after_a_dead_writer_restores_parity() {
        let l = SeqLock::<2>::default();
        l.write(&[1, 1]);
        // The dead writer: sequence made odd, one word stored, then nothing.
        l.seq
            .store(l.seq.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        l.words[0].store(2, Ordering::Relaxed);
        assert_eq!(l.read(), None, "a record being written is never read");
        l.write(&[3, 3]);
        assert_eq!(l.version() % 2, 0);
        assert_eq!(l.read(), Some([3, 3]));
        l.write(&[4, 4]);
        assert_eq!(l.version() % 2, 0);
        assert_eq!(l.read(), Some([4, 4]));
    }

    /// Readers hammer while the writer publishes records whose words all derive from one
    /// value: any mix of two writes would break the pattern. Torn reads must never surface.
    #[test]
    fn torn_reads_are_never_returned() {
        const N: usize = 12;
        let lock = Arc::new(SeqLock::<N>::default());
        lock.write(&pattern(0));
        let stop = Arc::new(AtomicBool::new(false));
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (lock, stop) = (lock.clone(), stop.clone());
                std::thread::spawn(move || {
                    let (mut ok, mut last) = (0u64, 0u64);
                    while !stop.load(Ordering::Relaxed) {
                        if let Some(w) = lock.read() {
                            assert_eq!(w, pattern(w[0]), "torn read");
                            assert!(w[0] >= last, "went back in time");
                            last = w[0];
                            ok += 1;
                        }
                    }
                    ok
                })
            })
            .collect();
        for v in 1..=200_000u64 {
            lock.write(&pattern(v));
        }
        stop.store(true, Ordering::Relaxed);
        for r in readers {
            assert!(r.join().unwrap() > 0);
        }
    }

    fn pattern<const N: usize>(v: u64) -> [u64; N] {
        std::array::from_fn(|i| {
            if i == 0 {
                v
            } else {
                v.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(i as u32)
            }
        })
    }
}
