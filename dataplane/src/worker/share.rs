//! One tunnel across cores (design §3): a worker hands part of a round's AEAD work to the
//! other workers, and finishes the round's packets itself, in the order they arrived.
//!
//! RSS puts one tunnel (one outer 5-tuple) on one queue, so without help one peer's traffic
//! is capped at one worker. The kernel spreads a peer's crypto over every CPU through a
//! device-wide queue and restores the order with a per-peer queue that a serial stage drains.
//! Here the worker that received the packets is that serial stage, and the hand-off is a
//! fork-join within its round:
//!
//! 1. It prepares the batch as before (parse, session, counters, headers), then moves the
//!    tail of the prepared packets into the inbox of each worker that has room ([`Exchange`]),
//!    one contiguous part per helper.
//! 2. It seals or opens the head itself and finishes it (replay window, allowed IPs, route,
//!    transmit queue), then takes the parts back in order and finishes them.
//! 3. While it waits it serves its own inbox, so two workers that hand to each other cannot
//!    wait on each other; a part that no helper claimed by the time it is free ([`RECLAIM_SPINS`]) it takes
//!    back and does itself, so a busy or sleeping helper costs at most that wait.
//!
//! Only the AEAD moves: the frames go to the helper and come back with their verdicts, so a
//! helper never transmits, releases or reorders another worker's frames (the types say so: a
//! helper sees a [`Work`], not a link), and every packet is finished by the worker that owns
//! its frame, in arrival order. The replay window and counters are the session's, shared by
//! all workers already, and are touched only by the owner.
//!
//! The inbox is a small state machine on one atomic; its mutex only gives the frames a safe
//! home while they are away, and is never contended (the state says whose turn it is). Per
//! round: a handful of atomics, no allocation (the inbox's vectors keep their capacity), and
//! an eventfd write only to wake a helper that went to sleep.

use super::{inbound, outbound, BATCH};
use crate::frame::Frame;
use aead_batch::{Dispatch, Packet, Verdict};
use nix::sys::eventfd::{EfdFlags, EventFd};
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Nothing in the inbox: an owner may reserve it.
const EMPTY: u8 = 0;
/// Reserved by an owner, who is moving frames in (or out, after a reclaim).
const FILLING: u8 = 1;
/// Frames in it, for its worker to claim.
const OFFERED: u8 = 2;
/// Its worker is sealing or opening them.
const CLAIMED: u8 = 3;
/// Done: the owner may take them back.
const DONE: u8 = 4;

/// How long an owner that finished its own share waits (spin-loop hints: a few microseconds)
/// for a helper to claim a part before it takes the part back and does it itself. Short: a
/// helper that has not claimed it by then is busy, asleep or descheduled, and the owner is
/// free; a claimed part is always waited for (its helper is at work on it).
const RECLAIM_SPINS: u32 = 64;

/// The default least text (bytes) a round must seal or open before it is shared: below it,
/// the hand-off costs more than the crypto it moves (a batch of 64-byte packets is about
/// 4 KiB, a few microseconds of AEAD).
pub const SHARE_MIN_BYTES: usize = 8 * 1024;

/// The fewest packets worth a part of their own.
const MIN_PART: usize = 4;

/// Frames in one inbox, as the owner left them: messages to open, or packets to seal.
#[derive(Default)]
pub(super) struct Work<'a> {
    pub(super) open: Vec<inbound::Pending<'a>>,
    pub(super) seal: Vec<outbound::Pending<'a>>,
    pub(super) verdicts: Vec<Verdict>,
}

impl Work<'_> {
    fn with_capacity() -> Self {
        Self {
            open: Vec::with_capacity(BATCH),
            seal: Vec::with_capacity(BATCH),
            verdicts: Vec::with_capacity(BATCH),
        }
    }

    /// Opens or seals what is in it, in place.
    fn process(&mut self, backend: Dispatch) -> usize {
        self.verdicts.clear();
        open_all(backend, &mut self.open, &mut self.verdicts);
        seal_all(backend, &mut self.seal);
        self.open.len() + self.seal.len()
    }
}

/// A prepared packet that can be handed out (implemented beside each direction's
/// `Pending`): its AEAD input, where it goes in an inbox, and what it costs.
pub(super) trait Part<'a>: Sized {
    /// Its direction's index in per-direction state (0 opening, 1 sealing).
    const DIRECTION: usize;
    /// Its text and tag in place, with its key and counter.
    fn packet(&mut self) -> Packet<'_>;
    /// Its frame, the rest dropped (keys wiped).
    fn into_frame(self) -> Frame<'a>;
    fn queue<'w>(work: &'w mut Work<'a>) -> &'w mut Vec<Self>;
    fn text_len(&self) -> usize;
}

/// Opens `pending` (at most a batch), the verdicts appended to `verdicts` in order.
pub(super) fn open_all(
    backend: Dispatch,
    pending: &mut [inbound::Pending<'_>],
    verdicts: &mut Vec<Verdict>,
) {
    let mut packets = arrayvec::ArrayVec::<Packet<'_>, BATCH>::new();
    for p in pending.iter_mut().take(BATCH) {
        packets.push(p.packet());
    }
    backend.open(&mut packets);
    verdicts.extend(packets.iter().map(Packet::verdict));
}

/// Seals `pending` (at most a batch).
pub(super) fn seal_all(backend: Dispatch, pending: &mut [outbound::Pending<'_>]) {
    let mut packets = arrayvec::ArrayVec::<Packet<'_>, BATCH>::new();
    for p in pending.iter_mut().take(BATCH) {
        packets.push(p.packet());
    }
    backend.seal(&mut packets);
}

struct Inbox<'a> {
    state: AtomicU8,
    /// Its worker's last round received nothing of its own: it has time for others' parts.
    /// A worker busy with its own queue is not handed any (with every core busy, moving
    /// crypto between them only moves cache lines).
    idle: AtomicBool,
    work: Mutex<Work<'a>>,
    /// Its worker is about to sleep, or sleeps: an owner that fills the inbox rings.
    sleeping: AtomicBool,
    /// Rung (the eventfd written) since the worker last looked.
    rung: AtomicBool,
    /// Its worker stopped (however: a panic included); it takes no part any more, and a part
    /// it held is taken back by its owner.
    dead: AtomicBool,
    bell: EventFd,
}

/// The inboxes of all workers of a data path.
pub struct Exchange<'a> {
    inboxes: Box<[Inbox<'a>]>,
}

impl std::fmt::Debug for Exchange<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exchange")
            .field("workers", &self.inboxes.len())
            .finish_non_exhaustive()
    }
}

/// What became of a part an owner handed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Back {
    /// A helper did it: the frames are back with their verdicts. `waited`: the owner had to
    /// wait for it (the helper's part was the longer one).
    Done { waited: bool },
    /// Nobody claimed it in time: the frames are back, untouched, for the owner to do.
    Reclaimed,
    /// The helper stopped while it held them (the data path is stopping): they are lost.
    Lost,
}

impl<'a> Exchange<'a> {
    /// Inboxes for `workers` workers.
    pub fn new(workers: usize) -> std::io::Result<Arc<Self>> {
        let inboxes = (0..workers)
            .map(|_| {
                Ok(Inbox {
                    state: AtomicU8::new(EMPTY),
                    idle: AtomicBool::new(false),
                    work: Mutex::new(Work::with_capacity()),
                    sleeping: AtomicBool::new(false),
                    rung: AtomicBool::new(false),
                    dead: AtomicBool::new(false),
                    bell: EventFd::from_value_and_flags(
                        0,
                        EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC,
                    )?,
                })
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(Arc::new(Self {
            inboxes: inboxes.into(),
        }))
    }

    pub fn workers(&self) -> usize {
        self.inboxes.len()
    }

    /// Marks worker `me` stopped when dropped (its run, however it ends).
    pub(super) fn closer(&self, me: usize) -> Closer<'_, 'a> {
        Closer(self, me)
    }

    fn inbox(&self, i: usize) -> Option<&Inbox<'a>> {
        self.inboxes.get(i)
    }

    fn lock<'i>(inbox: &'i Inbox<'a>) -> MutexGuard<'i, Work<'a>> {
        // A helper that panicked while it held the lock poisoned it; the frames in it are
        // still whole (AEAD in place), and the data path is stopping anyway.
        inbox.work.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reserves up to `max` inboxes of workers other than `me` (empty ones of idle workers
    /// only), in `out`.
    pub(super) fn reserve(&self, me: usize, max: usize, out: &mut arrayvec::ArrayVec<usize, 8>) {
        let n = self.inboxes.len();
        for k in 1..n {
            if out.len() >= max.min(out.capacity()) {
                break;
            }
            let i = (me + k) % n;
            let inbox = &self.inboxes[i];
            if inbox.idle.load(Ordering::Relaxed)
                && !inbox.dead.load(Ordering::Acquire)
                && inbox
                    .state
                    .compare_exchange(EMPTY, FILLING, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                out.push(i);
            }
        }
    }

    /// Fills a reserved inbox and offers it to its worker, waking it if it sleeps.
    pub(super) fn offer(&self, helper: usize, fill: impl FnOnce(&mut Work<'a>)) {
        let Some(inbox) = self.inbox(helper) else {
            return;
        };
        fill(&mut Self::lock(inbox));
        inbox.state.store(OFFERED, Ordering::SeqCst);
        // Paired with `prepare_sleep`: either it sees the offer before it sleeps, or this sees
        // it asleep and rings.
        if inbox.sleeping.load(Ordering::SeqCst) && !inbox.rung.swap(true, Ordering::SeqCst) {
            let _ = inbox.bell.write(1);
        }
    }

    /// Waits for the part in `helper`'s inbox and gives its frames to `take` (with the
    /// verdicts when done). While waiting, `serve` is called (the owner helps others); a part
    /// not claimed after `reclaim_spins` is taken back, and so is one whose helper stopped
    /// (its frames whole, their crypto maybe half done: [`Back::Lost`]).
    pub(super) fn collect(
        &self,
        helper: usize,
        reclaim_spins: u32,
        mut serve: impl FnMut() -> usize,
        take: impl FnOnce(&mut Work<'a>),
    ) -> Back {
        let Some(inbox) = self.inbox(helper) else {
            return Back::Lost;
        };
        let mut spins = 0u32;
        loop {
            let dead = inbox.dead.load(Ordering::Acquire);
            match inbox.state.load(Ordering::Acquire) {
                DONE => {
                    take(&mut Self::lock(inbox));
                    inbox.state.store(EMPTY, Ordering::Release);
                    return Back::Done { waited: spins > 0 };
                }
                OFFERED
                    if (spins >= reclaim_spins || dead)
                        && inbox
                            .state
                            .compare_exchange(
                                OFFERED,
                                FILLING,
                                Ordering::Acquire,
                                Ordering::Relaxed,
                            )
                            .is_ok() =>
                {
                    take(&mut Self::lock(inbox));
                    inbox.state.store(EMPTY, Ordering::Release);
                    return Back::Reclaimed;
                }
                CLAIMED if dead => {
                    // It stopped while it held them (a panic: the lock is poisoned, the
                    // frames are still in it). The inbox stays unusable: it is dead.
                    take(&mut Self::lock(inbox));
                    return Back::Lost;
                }
                _ => {}
            }
            if serve() == 0 {
                std::hint::spin_loop();
            }
            spins = spins.saturating_add(1);
        }
    }

    /// Does the part offered to worker `me`, if any; returns how many packets.
    pub(super) fn serve(&self, me: usize, backend: Dispatch) -> usize {
        let Some(inbox) = self.inbox(me) else {
            return 0;
        };
        if inbox.state.load(Ordering::Relaxed) != OFFERED
            || inbox
                .state
                .compare_exchange(OFFERED, CLAIMED, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
        {
            return 0;
        }
        let n = Self::lock(inbox).process(backend);
        inbox.state.store(DONE, Ordering::Release);
        n
    }

    /// Whether worker `me`'s last round received anything of its own (written only when it
    /// changes: the flag's cache line is read by every owner).
    pub(super) fn set_idle(&self, me: usize, idle: bool) {
        if let Some(inbox) = self.inbox(me) {
            if inbox.idle.load(Ordering::Relaxed) != idle {
                inbox.idle.store(idle, Ordering::Relaxed);
            }
        }
    }

    /// Tests: worker `i` claims the part offered to it (waiting for one) and stops without
    /// finishing it, as a helper that panicked would.
    #[cfg(test)]
    pub(super) fn claim_and_stop(&self, i: usize) {
        let inbox = &self.inboxes[i];
        while inbox
            .state
            .compare_exchange(OFFERED, CLAIMED, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            std::hint::spin_loop();
        }
        drop(self.closer(i));
    }

    /// Whether worker `i` said it is idle (tests wait for a helper to be ready).
    #[cfg(test)]
    pub(super) fn is_idle(&self, i: usize) -> bool {
        self.inbox(i)
            .is_some_and(|b| b.idle.load(Ordering::Relaxed))
    }

    /// Worker `me` is about to sleep: true if it may (nothing offered to it meanwhile).
    pub(super) fn prepare_sleep(&self, me: usize) -> bool {
        let Some(inbox) = self.inbox(me) else {
            return true;
        };
        inbox.sleeping.store(true, Ordering::SeqCst);
        if inbox.state.load(Ordering::SeqCst) == OFFERED {
            inbox.sleeping.store(false, Ordering::SeqCst);
            return false;
        }
        true
    }

    /// Worker `me` woke: no more rings until it sleeps again; true if it was rung.
    ///
    /// The bell is drained after `rung` is cleared, whatever `rung` said: an owner that rang
    /// in between is drained too (harmless: this worker is awake and looks at its inbox
    /// next), and an owner that sets `rung` after the clear also writes, so the next sleep
    /// ends at once. A ring is never lost, and a stale count never keeps the bell readable.
    /// (A read per wake-up: the idle path, not per packet.)
    pub(super) fn woke(&self, me: usize) -> bool {
        let Some(inbox) = self.inbox(me) else {
            return false;
        };
        inbox.sleeping.store(false, Ordering::SeqCst);
        let rung = inbox.rung.swap(false, Ordering::SeqCst);
        let _ = inbox.bell.read();
        rung
    }

    /// The fd that becomes readable when worker `me` is rung.
    pub(super) fn bell(&self, me: usize) -> Option<BorrowedFd<'_>> {
        self.inbox(me).map(|i| i.bell.as_fd())
    }
}

/// Marks its worker stopped when dropped.
pub(super) struct Closer<'e, 'a>(&'e Exchange<'a>, usize);

impl Drop for Closer<'_, '_> {
    fn drop(&mut self) {
        if let Some(inbox) = self.0.inbox(self.1) {
            inbox.idle.store(false, Ordering::Relaxed);
            inbox.dead.store(true, Ordering::Release);
        }
    }
}

/// A worker's part in an exchange, and when it shares.
#[derive(Debug, Clone)]
pub struct Share<'a> {
    pub(super) exchange: Arc<Exchange<'a>>,
    pub(super) me: usize,
    /// Rounds with less text than this are not shared.
    pub(super) min_bytes: usize,
    /// How long the owner waits for a helper to claim a part ([`RECLAIM_SPINS`]).
    pub(super) reclaim_spins: u32,
}

impl<'a> Share<'a> {
    pub fn new(exchange: Arc<Exchange<'a>>, me: usize) -> Self {
        Self {
            exchange,
            me,
            min_bytes: SHARE_MIN_BYTES,
            reclaim_spins: RECLAIM_SPINS,
        }
    }

    /// Shares rounds with at least `bytes` of text (tests: 0, every round).
    #[must_use]
    pub fn min_bytes(mut self, bytes: usize) -> Self {
        self.min_bytes = bytes;
        self
    }

    /// Waits as long as it takes for a helper to claim a part (tests that must see the
    /// helper do the work, whatever the scheduler does).
    #[cfg(test)]
    #[must_use]
    pub(super) fn patient(mut self) -> Self {
        self.reclaim_spins = u32::MAX;
        self
    }

    /// How many helpers to ask for a round of `pending` (its text summed only for a round
    /// long enough to split).
    pub(super) fn helpers_wanted<P: Part<'a>>(&self, pending: &[P]) -> usize {
        let packets = pending.len();
        if packets < 2 * MIN_PART || pending.iter().map(P::text_len).sum::<usize>() < self.min_bytes
        {
            return 0;
        }
        (self.exchange.workers() - 1).min(packets / MIN_PART - 1)
    }
}

/// The owner's weight in a split when it starts: a helper weighs [`HELPER_WEIGHT`], and the
/// owner keeps a smaller share since it also prepares and finishes every packet.
pub(super) const OWNER_WEIGHT: u32 = 42;
const HELPER_WEIGHT: u32 = 64;
const WEIGHT_RANGE: std::ops::RangeInclusive<u32> = 4..=256;

/// Where a round's `n` packets split between the owner (of weight `owner`, against
/// [`HELPER_WEIGHT`] for each helper) and `helpers` helpers: the owner keeps `[0, head)`,
/// helper `k` gets `[head + k * part, ...)`, the last one taking the rest.
pub(super) fn split(n: usize, helpers: usize, owner: u32) -> (usize, usize) {
    if helpers == 0 {
        return (n, 0);
    }
    let total = owner as usize + HELPER_WEIGHT as usize * helpers;
    let head = n * owner as usize / total;
    let part = (n - head) / helpers;
    (head, part)
}

/// The owner's weight after a round whose parts came back as `back`: more if it had to wait
/// for a helper, less if the part was done before it looked (the helper idled), unchanged if
/// it took a part back (nothing learnt about the helpers' speed). Balances the two sides'
/// time per round on the running machine, whatever its crypto and link costs.
pub(super) fn adapt(owner: u32, back: Back) -> u32 {
    let w = match back {
        Back::Done { waited: true } => owner + 2,
        Back::Done { waited: false } => owner.saturating_sub(1),
        Back::Reclaimed | Back::Lost => owner,
    };
    w.clamp(*WEIGHT_RANGE.start(), *WEIGHT_RANGE.end())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_cover_the_batch_in_order() {
        for n in 0..=64 {
            for h in 0..8 {
                for w in WEIGHT_RANGE {
                    let (head, part) = split(n, h, w);
                    assert!(head <= n);
                    if h == 0 {
                        assert_eq!(head, n);
                        continue;
                    }
                    // Every helper but the last gets `part`, the last the rest: nothing lost.
                    assert!(head + part * (h - 1) <= n, "{n} {h} {w}");
                    if w <= HELPER_WEIGHT {
                        assert!(head <= part + 1, "owner weight {w}, {n} {h}");
                    }
                }
            }
        }
        assert_eq!(split(64, 1, OWNER_WEIGHT), (25, 39));
        assert_eq!(split(64, 1, HELPER_WEIGHT), (32, 32));
    }

    /// Whether `fd` is readable now.
    fn readable(fd: BorrowedFd<'_>) -> bool {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
        poll(&mut fds, PollTimeout::ZERO).unwrap() == 1
    }

    /// A sleeping worker is rung when a part is offered to it, exactly once, and the bell
    /// is quiet again once it woke; one that is about to sleep while a part waits does not.
    #[test]
    fn a_sleeping_helper_is_rung_and_never_left_ringing() {
        let ex = Exchange::new(2).unwrap();
        ex.set_idle(1, true);
        assert!(ex.prepare_sleep(1), "nothing offered: it may sleep");
        let mut got = arrayvec::ArrayVec::<usize, 8>::new();
        ex.reserve(0, 1, &mut got);
        assert_eq!(&got[..], &[1]);
        ex.offer(1, |_| {});
        assert!(readable(ex.bell(1).unwrap()), "rung");
        assert!(ex.woke(1));
        assert!(!readable(ex.bell(1).unwrap()), "drained");
        // The part is still there: it must not go back to sleep.
        assert!(!ex.prepare_sleep(1));
        assert_eq!(ex.serve(1, Dispatch::detect()), 0, "an empty part");
        // Woken by its timeout, not rung: nothing to drain, and it says so.
        assert!(ex.prepare_sleep(1));
        assert!(!ex.woke(1));
        assert!(!readable(ex.bell(1).unwrap()));
    }

    /// The weight follows the helpers: up while the owner waits, down while they idle, and
    /// stays inside its range.
    #[test]
    fn the_split_adapts_to_who_waits() {
        let mut w = OWNER_WEIGHT;
        for _ in 0..1000 {
            w = adapt(w, Back::Done { waited: true });
        }
        assert_eq!(w, *WEIGHT_RANGE.end());
        for _ in 0..1000 {
            w = adapt(w, Back::Done { waited: false });
        }
        assert_eq!(w, *WEIGHT_RANGE.start());
        assert_eq!(adapt(50, Back::Reclaimed), 50);
        assert_eq!(adapt(50, Back::Lost), 50);
    }
}
