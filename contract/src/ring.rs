//! A single-producer single-consumer ring of fixed-size messages, made of atomics so that it
//! can live in shared memory between two processes. One ring per direction per worker:
//! workers tell control about events (traffic for a peer without a session, an endpoint that
//! moved), control tells workers about changes. Neither side ever waits: a full ring refuses
//! the message and the producer counts it.

use std::sync::atomic::{AtomicU64, Ordering};

/// Words per message.
pub const MSG_WORDS: usize = 4;
pub type Msg = [u64; MSG_WORDS];

#[repr(C, align(64))]
#[derive(Debug, Default)]
struct Padded(AtomicU64);

#[repr(C, align(64))]
#[derive(Debug)]
pub struct Ring<const CAP: usize> {
    /// Next slot the producer writes; written only by the producer.
    head: Padded,
    /// Next slot the consumer reads; written only by the consumer.
    tail: Padded,
    slots: [[AtomicU64; MSG_WORDS]; CAP],
}

impl<const CAP: usize> Default for Ring<CAP> {
    fn default() -> Self {
        Self {
            head: Padded::default(),
            tail: Padded::default(),
            slots: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))),
        }
    }
}

impl<const CAP: usize> Ring<CAP> {
    /// Producer side. False if the ring is full (the message is not queued).
    pub fn push(&self, msg: Msg) -> bool {
        let head = self.head.0.load(Ordering::Relaxed);
        let tail = self.tail.0.load(Ordering::Acquire);
        if head.wrapping_sub(tail) >= CAP as u64 {
            return false;
        }
        let slot = &self.slots[(head % CAP as u64) as usize];
        for (w, v) in slot.iter().zip(msg) {
            w.store(v, Ordering::Relaxed);
        }
        self.head.0.store(head.wrapping_add(1), Ordering::Release);
        true
    }

    /// Consumer side.
    pub fn pop(&self) -> Option<Msg> {
        let tail = self.tail.0.load(Ordering::Relaxed);
        let head = self.head.0.load(Ordering::Acquire);
        if tail == head {
            return None;
        }
        // `push` never lets the producer get more than CAP ahead, so indices further apart
        // (or the consumer ahead) were not left by this protocol: a corrupt region. Reading on
        // would hand out up to 2^64 stale slots, and control drains a ring in a loop; drop
        // what the indices claim instead.
        if head.wrapping_sub(tail) > CAP as u64 {
            self.tail.0.store(head, Ordering::Release);
            return None;
        }
        let slot = &self.slots[(tail % CAP as u64) as usize];
        let msg = std::array::from_fn(|i| slot[i].load(Ordering::Relaxed));
        self.tail.0.store(tail.wrapping_add(1), Ordering::Release);
        Some(msg)
    }

    pub fn len(&self) -> usize {
        let head = self.head.0.load(Ordering::Acquire);
        let tail = self.tail.0.load(Ordering::Acquire);
        usize::try_from(head.wrapping_sub(tail)).unwrap_or(usize::MAX)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn fifo_and_full() {
        let r = Ring::<4>::default();
        for i in 0..4 {
            assert!(r.push([i, 0, 0, 0]));
        }
        assert!(!r.push([9, 0, 0, 0]), "full");
        assert_eq!(r.len(), 4);
        for i in 0..4 {
            assert_eq!(r.pop(), Some([i, 0, 0, 0]));
        }
        assert_eq!(r.pop(), None);
    }

    /// Found by the `region` fuzz target: a region whose ring indices are far apart made
    /// control's drain loop run (practically) forever. Such a ring empties at once instead.
    #[test]
    fn indices_further_apart_than_the_capacity_empty_the_ring() {
        for (head, tail) in [(u64::MAX / 2, 0), (0, 1), (5, 0)] {
            let r = Ring::<4>::default();
            r.head.0.store(head, Ordering::Relaxed);
            r.tail.0.store(tail, Ordering::Relaxed);
            assert_eq!(r.pop(), None, "head {head}, tail {tail}");
            assert!(r.is_empty());
            assert!(r.push([1, 2, 3, 4]), "usable again");
            assert_eq!(r.pop(), Some([1, 2, 3, 4]));
        }
    }

    /// A producer and a consumer thread: every message arrives once, whole, in order.
    #[test]
    fn spsc_across_threads() {
        let r = Arc::new(Ring::<64>::default());
        let n = 200_000u64;
        let producer = {
            let r = r.clone();
            std::thread::spawn(move || {
                let mut i = 0;
                while i < n {
                    if r.push([i, !i, i.rotate_left(7), i ^ 0x55]) {
                        i += 1;
                    } else {
                        std::hint::spin_loop();
                    }
                }
            })
        };
        let mut next = 0;
        while next < n {
            if let Some(m) = r.pop() {
                assert_eq!(m, [next, !next, next.rotate_left(7), next ^ 0x55]);
                next += 1;
            }
        }
        producer.join().unwrap();
        assert!(r.is_empty());
    }
}
