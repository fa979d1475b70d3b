//! One worker: the batch core that moves a queue's packets between the peers' side and the
//! plaintext side (design §1), over a [`Link`] (AF_XDP in production, a fake in tests).
//!
//! Inbound (WAN rx, [`inbound`]): parse, find the session by receiver index, open, replay
//! check, inner source in the peer's allowed IPs, TTL, Ethernet header for the LAN next hop,
//! LAN tx. Outbound (LAN rx, [`outbound`]): inner destination → peer (allowed IPs) → its
//! current session, take a counter, TTL, seal, outer headers towards the peer's endpoint, WAN
//! tx.
//!
//! The gateway as a host (design §1): a link may have a local side, the gateway's own kernel
//! interface (wg0, a TUN device). An authenticated packet for one of the gateway's own
//! addresses goes to it unforwarded (no TTL decrement, as the kernel delivers what arrives on
//! wg0), and what the kernel routes into it is sealed for the peer that owns the destination,
//! exactly as LAN traffic is. Both count with the LAN side's packets (the plaintext side; the
//! region's counters have no slot of their own for it).
//!
//! Frames are owned ([`Frame`]): each one the link hands over is consumed exactly once, by
//! being queued for transmission, handed to the kernel path, staged, or released. Every step
//! that may fail only borrows the frame and returns a decision; the caller then consumes it.
//!
//! Per packet there is no allocation, lock or syscall: the worker reads the shared region
//! (atomics), its own caches and the neighbour snapshot (loaded once per round). Syscalls are
//! per round (TX kick, poll when idle) or on a neighbour miss (the kernel path). The worker
//! reads no clock: `now` comes with each round.
//!
//! Crypto is batched: a round's inbound messages are opened in one `aead-batch` call, its
//! outbound packets sealed in one (SIMD lanes span packets). The allowed-IPs table is the one
//! control writes in the region: lock-free, read by every worker, never waited for.
//! The replay window of a session is shared by all workers (`contract::replay`): a replayed
//! packet is refused whichever queue it arrives on.

mod inbound;
mod offload;
mod outbound;
mod share;
#[cfg(test)]
mod tests;
mod unknown;

pub use share::{Exchange, Share, SHARE_MIN_BYTES};

use crate::frame::Frame;
use crate::link::{Link, Side};
use crate::neigh::Neighbours;
use aead_batch::{Dispatch, Verdict};
use contract::layout::{SessionRecord, WorkerStats};
use contract::{DropReason, Region, WorkerEvent};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// An interface as the worker needs it.
#[derive(Debug, Clone)]
pub struct Iface {
    pub name: String,
    /// Its interface index: frames leave by it only for destinations the FIB routes out of it.
    pub index: u32,
    pub mac: [u8; 6],
    pub v4: Option<Ipv4Addr>,
    pub v6: Option<Ipv6Addr>,
    /// Its MTU when the data path started: a packet the workers would send out of it must fit
    /// (a longer one takes the kernel's path, which fragments it or reports the MTU).
    pub mtu: usize,
}

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub id: usize,
    pub wan: Iface,
    /// The plaintext side; `None` in one-armed mode (WAN carries both).
    pub lan: Option<Iface>,
    pub listen_port: u16,
    pub mtu: usize,
}

struct CachedSession {
    version: u64,
    record: SessionRecord,
}

impl Drop for CachedSession {
    fn drop(&mut self) {
        // A retired session's keys do not linger in the worker's memory.
        zeroize::Zeroize::zeroize(&mut self.record.send_key);
        zeroize::Zeroize::zeroize(&mut self.record.recv_key);
    }
}

const BATCH: usize = 64;
/// How often the session cache drops what control changed since (and so the keys of retired
/// sessions): a sweep is O(cached sessions), once a second.
const SWEEP_INTERVAL_NS: u64 = 1_000_000_000;
/// How often a worker re-asks control for a session it still lacks.
const NEED_SESSION_INTERVAL_NS: u64 = 1_000_000_000;
/// Frames for peers without a usable session that wait for one (the kernel stages up to
/// MAX_STAGED_PACKETS per peer; here per worker, since the frames come out of its UMEM).
const MAX_STAGED: usize = 128;
/// How long a staged frame waits for its session before it is dropped (REKEY_TIMEOUT: by
/// then the handshake was lost and is being retried).
const STAGE_TIMEOUT_NS: u64 = 5_000_000_000;
/// While the peers and the LAN keep a worker busy, its local side (a TUN queue, one `read`
/// per packet and one more that finds it empty) is read every this many rounds, not every
/// round: the gateway's own traffic is a trickle beside forwarded traffic, and an empty read
/// per round would be a syscall per round on the forwarding path. It waits at most that many
/// rounds (microseconds); an idle worker, or one whose last local read found packets, reads
/// it every round.
const LOCAL_EVERY: u32 = 8;
/// How long a worker that helped another (or was rung by one) keeps polling before it sleeps:
/// a part that follows at once (a round's next outbound batch) then finds it awake. Short:
/// between an owner's rounds it sleeps and is rung (an eventfd write per part), which its
/// wake-up absorbs while the owner does its own share. Polling for 2 ms instead took a whole
/// core on two vCPUs shared with a load generator, and starved it (bench/RESULTS.md).
const HOT_NS: u64 = 100_000;

/// A test's stand-in for control acting between two steps of the worker.
#[cfg(test)]
type Hook<'a> = Box<dyn FnMut(&Region) + Send + 'a>;

pub struct Worker<'a, L: Link<'a>> {
    cfg: WorkerConfig,
    region: Arc<Region>,
    link: L,
    neigh: Neighbours,
    sessions: crate::FastMap<u32, CachedSession>,
    /// The allowed-IPs table control writes in the region (one writer for all workers);
    /// lookups never wait for it. Pinned once per round (taken out of the worker meanwhile,
    /// so the round's methods can borrow `self`).
    prefixes: Option<allowedips::Reader>,
    need_session_sent: crate::FastMap<u32, u64>,
    /// When the session cache was last swept of records control changed since (the retired
    /// sessions' keys leave the worker's memory within a sweep interval).
    last_sweep_ns: u64,
    /// Per peer slot: the source last checked against the peer's record, and the record's
    /// version then. A packet from the same source is not checked again until the record
    /// changes (control moved the endpoint, e.g. after a handshake from elsewhere).
    endpoints_checked: crate::FastMap<u32, (u64, SocketAddr)>,
    /// Sources of data for unknown indices reported to control (bounded).
    unknown: unknown::Reporter,
    /// The round's frames as received, by direction (with a staging deadline for outbound
    /// ones), and what is queued for each side (kept between rounds so that a round
    /// allocates nothing).
    received: Vec<Frame<'a>>,
    inbound: Vec<Frame<'a>>,
    outbound: Vec<outbound::Plain<'a>>,
    tx_wan: Vec<Frame<'a>>,
    tx_lan: Vec<Frame<'a>>,
    tx_local: Vec<Frame<'a>>,
    in_pending: Vec<inbound::Pending<'a>>,
    out_pending: Vec<outbound::Pending<'a>>,
    /// LAN frames waiting for their peer's session, with their deadlines, so that the packet
    /// that caused a handshake is sent when it completes, as the kernel does.
    staged: Vec<outbound::Plain<'a>>,
    /// Busy rounds left before the local side is read again (see [`LOCAL_EVERY`]).
    local_wait: u32,
    /// The batch kernels of this CPU's level, and ring for the sizes where it is faster.
    backend: Dispatch,
    /// Offloaded flows (docs/egress.md): `None` where the data path offloads nothing.
    flows: Option<Arc<crate::offload::table::FlowTable>>,
    /// The other workers this one shares crypto with (`share`); `None` alone.
    share: Option<Share<'a>>,
    /// A round's verdicts (kept so that a round allocates nothing).
    verdicts: Vec<Verdict>,
    /// The owner's weight when it splits a round with helpers (`share::split`), opening and
    /// sealing apart (their costs after the AEAD differ), adapted round by round.
    split_weight: [u32; 2],
    /// Tests: runs after the worker read a session's key and before it uses the slot's
    /// counter or window (a control process acting in that window).
    #[cfg(test)]
    after_key_read: Option<Hook<'a>>,
}

impl<'a, L: Link<'a>> std::fmt::Debug for Worker<'a, L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("id", &self.cfg.id)
            .finish_non_exhaustive()
    }
}

impl<'a, L: Link<'a>> Worker<'a, L> {
    pub fn new(
        cfg: WorkerConfig,
        region: Arc<Region>,
        link: L,
        neigh: Neighbours,
        prefixes: allowedips::Reader,
    ) -> Self {
        Self {
            cfg,
            region,
            link,
            neigh,
            sessions: crate::FastMap::with_capacity_and_hasher(1024, Default::default()),
            prefixes: Some(prefixes),
            need_session_sent: crate::FastMap::default(),
            last_sweep_ns: 0,
            endpoints_checked: crate::FastMap::default(),
            unknown: unknown::Reporter::default(),
            received: Vec::with_capacity(BATCH),
            inbound: Vec::with_capacity(BATCH),
            outbound: Vec::with_capacity(2 * BATCH + MAX_STAGED),
            tx_wan: Vec::with_capacity(2 * BATCH + MAX_STAGED),
            tx_lan: Vec::with_capacity(2 * BATCH),
            tx_local: Vec::with_capacity(BATCH),
            in_pending: Vec::with_capacity(BATCH),
            out_pending: Vec::with_capacity(BATCH),
            staged: Vec::with_capacity(MAX_STAGED),
            local_wait: 0,
            backend: Dispatch::detect(),
            flows: None,
            share: None,
            verdicts: Vec::with_capacity(BATCH),
            split_weight: [share::OWNER_WEIGHT; 2],
            #[cfg(test)]
            after_key_read: None,
        }
    }

    /// Carries the flows of `table` itself (flow offload).
    #[must_use]
    pub fn with_flows(mut self, table: Arc<crate::offload::table::FlowTable>) -> Self {
        self.flows = Some(table);
        self
    }

    /// Shares crypto with the other workers of `share`'s exchange.
    #[must_use]
    pub fn with_share(mut self, share: Share<'a>) -> Self {
        self.share = Some(share);
        self
    }

    #[cfg(test)]
    fn run_after_key_read(&mut self) {
        if let Some(hook) = self.after_key_read.as_mut() {
            hook(&self.region);
        }
    }

    /// Cached sessions (tests).
    #[cfg(test)]
    fn cached_sessions(&self) -> usize {
        self.sessions.len()
    }

    /// The link (tests look at what was sent; the socket backend takes the handshakes it
    /// received).
    pub fn link_mut(&mut self) -> &mut L {
        &mut self.link
    }

    fn stats(&self) -> Option<&WorkerStats> {
        self.region.worker_stats(self.cfg.id)
    }

    fn count_drop(&self, d: DropReason) {
        if let Some(s) = self.stats() {
            s.drops[d as usize].fetch_add(1, Ordering::Relaxed);
        }
    }

    fn count(&self, which: impl Fn(&WorkerStats) -> &std::sync::atomic::AtomicU64, n: usize) {
        if let Some(s) = self.stats() {
            which(s).fetch_add(n as u64, Ordering::Relaxed);
        }
    }

    /// Consumes a frame that cannot go on, counting why.
    fn drop_frame(&mut self, frame: Frame<'a>, reason: DropReason) {
        self.count_drop(reason);
        self.link.release(frame);
    }

    /// Hands a frame (its packet range an IP packet) to the kernel's stack because the next
    /// hop's MAC is not known yet, and asks the resolver to learn it.
    fn send_via_kernel(&mut self, frame: Frame<'a>, side: Side, dst: std::net::IpAddr) {
        self.neigh.request(dst);
        if self.link.send_via_kernel(frame, side, dst) {
            self.count(|s| &s.to_kernel, 1);
        } else {
            self.count_drop(DropReason::NoNeighbour);
        }
    }

    /// Runs until `stop` is set, reading the clock once per round.
    pub fn run(&mut self, stop: &AtomicBool) {
        let share = self.share.clone();
        // However this ends (a panic included), its owners take back what it held.
        let _closer = share.as_ref().map(|s| s.exchange.closer(s.me));
        let mut hot_until = 0;
        while !stop.load(Ordering::Relaxed) {
            let now = contract::clock::mono_ns();
            let own = self.poll_once(now);
            let helped = self.serve_inbox();
            let Some(s) = &share else {
                if own == 0 {
                    self.link.wait(1, None);
                }
                continue;
            };
            s.exchange.set_idle(s.me, own == 0);
            if helped > 0 {
                // Helping: stay awake for the owner's next part (no wake-up per part).
                hot_until = now + HOT_NS;
            }
            if own + helped > 0 {
                continue;
            }
            if now < hot_until {
                std::hint::spin_loop();
            } else if s.exchange.prepare_sleep(s.me) {
                self.link.wait(1, s.exchange.bell(s.me));
                if s.exchange.woke(s.me) {
                    // Rung: an owner is sharing; its next part should find this one awake.
                    hot_until = contract::clock::mono_ns() + HOT_NS;
                }
            }
        }
    }

    /// Opens or seals what another worker offered this one; returns how many packets.
    fn serve_inbox(&self) -> usize {
        let Some(s) = &self.share else { return 0 };
        let n = s.exchange.serve(s.me, self.backend);
        if n > 0 {
            self.count(|st| &st.crypto_helped, n);
        }
        n
    }

    /// Moves the tail of a prepared round into other workers' inboxes when it is worth it
    /// (`share`), one part per helper, and notes the helpers in order; `pending` keeps the
    /// owner's head.
    fn hand_off<P: share::Part<'a>>(
        &mut self,
        pending: &mut Vec<P>,
        helpers: &mut arrayvec::ArrayVec<usize, 8>,
    ) {
        let Some(s) = &self.share else { return };
        let want = s.helpers_wanted(pending);
        if want == 0 {
            return;
        }
        s.exchange.reserve(s.me, want, helpers);
        if helpers.is_empty() {
            return;
        }
        let n = pending.len();
        let (head, part) = share::split(n, helpers.len(), self.split_weight[P::DIRECTION]);
        // From the back, so that each drain leaves the parts before it in place; the last
        // helper takes the rest.
        for (k, &h) in helpers.iter().enumerate().rev() {
            let start = head + k * part;
            s.exchange.offer(h, |w| {
                let q = P::queue(w);
                q.clear();
                q.extend(pending.drain(start..));
            });
        }
        self.count(|st| &st.crypto_handed, n - head);
    }

    /// Takes back the part `helper` had into `pending` (empty), its verdicts into
    /// `verdicts`, serving this worker's own inbox while it waits; the next split follows
    /// how long that took.
    fn take_back<P: share::Part<'a>>(
        &mut self,
        helper: usize,
        pending: &mut Vec<P>,
        verdicts: &mut Vec<Verdict>,
    ) -> share::Back {
        let Some(s) = &self.share else {
            return share::Back::Lost;
        };
        verdicts.clear();
        let back = s.exchange.collect(
            helper,
            s.reclaim_spins,
            || self.serve_inbox(),
            |w| {
                pending.append(P::queue(w));
                verdicts.append(&mut w.verdicts);
            },
        );
        match back {
            share::Back::Reclaimed => {
                verdicts.clear();
                self.count(|st| &st.crypto_reclaimed, pending.len());
            }
            share::Back::Lost => {
                // Their crypto may be half done: none of them goes on.
                verdicts.clear();
                for p in pending.drain(..) {
                    self.drop_frame(P::into_frame(p), DropReason::HelperLost);
                }
            }
            share::Back::Done { .. } => {}
        }
        let w = &mut self.split_weight[P::DIRECTION];
        *w = share::adapt(*w, back);
        back
    }

    /// One round at monotonic time `now` (ns): completions and refill, a batch from each
    /// side, transmit. Returns how many frames were received.
    pub fn poll_once(&mut self, now: u64) -> usize {
        if let Some(s) = self.stats() {
            s.heartbeat_ns.store(now, Ordering::Relaxed);
        }
        // `wg set listen-port` moves the port while we run.
        self.cfg.listen_port =
            u16::try_from(self.region.header().listen_port.load(Ordering::Relaxed))
                .unwrap_or(self.cfg.listen_port);
        self.link.service();
        if now.saturating_sub(self.last_sweep_ns) >= SWEEP_INTERVAL_NS {
            self.last_sweep_ns = now;
            self.sweep_sessions();
        }
        let snapshot = self.neigh.load();
        let Some(mut reader) = self.prefixes.take() else {
            return 0;
        };
        let routes = reader.pin();

        let mut received = std::mem::take(&mut self.received);
        let mut inbound = std::mem::take(&mut self.inbound);
        let mut outbound = std::mem::take(&mut self.outbound);
        // Staged frames first, so that a peer's packets leave in the order they came.
        outbound.append(&mut self.staged);
        let n = self.link.recv(Side::Wan, &mut received, BATCH);
        self.count(|s| &s.rx_wan, n);
        let mut moved = n;
        let one_armed = !self.link.has_lan();
        // Two-armed with no flow offloaded, the WAN program steers WireGuard data only: no
        // need to tell the kinds apart (inbound parses each frame anyway).
        let mixed = one_armed || self.flows.as_ref().is_some_and(|f| !f.is_empty());
        for mut f in received.drain(..) {
            if !mixed || self.is_wireguard(&f) {
                inbound.push(f);
                continue;
            }
            // Not WireGuard: offloaded flows' return packets, translated back here (once,
            // before any staging); one-armed, also the plaintext for peers that shares the
            // WAN socket.
            match self.offload_return(&mut f, now, &snapshot, one_armed) {
                Ok(()) => {
                    let side = if one_armed { Side::Lan } else { Side::Wan };
                    outbound.push(outbound::Plain::new(f, now + STAGE_TIMEOUT_NS, side));
                }
                Err(e) => self.drop_frame(f, e),
            }
        }
        if !one_armed {
            let m = self.link.recv(Side::Lan, &mut received, BATCH);
            self.count(|s| &s.rx_lan, m);
            moved += m;
            // The LAN program steers offloaded flows' return packets here too (an internet
            // behind the LAN port): translated back first, like the WAN side's.
            let flows = self.flows.as_ref().is_some_and(|f| !f.is_empty());
            for mut f in received.drain(..) {
                if flows {
                    if let Err(e) = self.offload_return(&mut f, now, &snapshot, true) {
                        self.drop_frame(f, e);
                        continue;
                    }
                }
                outbound.push(outbound::Plain::new(f, now + STAGE_TIMEOUT_NS, Side::Lan));
            }
        }
        if self.link.has_local() && moved > 0 && self.local_wait > 0 {
            self.local_wait -= 1;
        } else if self.link.has_local() {
            // The kernel's own traffic into wg0: a syscall per packet by nature (a TUN read),
            // bounded by the batch.
            let m = self.link.recv(Side::Local, &mut received, BATCH);
            self.local_wait = if m == 0 { LOCAL_EVERY - 1 } else { 0 };
            self.count(|s| &s.rx_lan, m);
            moved += m;
            outbound.extend(
                received
                    .drain(..)
                    .map(|f| outbound::Plain::new(f, now + STAGE_TIMEOUT_NS, Side::Local)),
            );
        }
        self.inbound_batch(&mut inbound, now, &snapshot, &routes);
        while !outbound.is_empty() {
            self.outbound_batch(&mut outbound, now, &snapshot, &routes);
        }
        (self.received, self.inbound, self.outbound) = (received, inbound, outbound);
        drop(routes);
        self.prefixes = Some(reader);
        self.transmit();
        moved
    }
}

impl<'a, L: Link<'a>> Worker<'a, L> {
    /// Queues the round's frames on their sides; what a full TX ring refuses is dropped and
    /// counted.
    fn transmit(&mut self) {
        if !self.link.has_lan() {
            // One-armed: everything leaves on the WAN port.
            self.tx_wan.append(&mut self.tx_lan);
        }
        for side in [Side::Wan, Side::Lan, Side::Local] {
            let mut queue = std::mem::take(self.tx(side));
            if queue.is_empty() {
                *self.tx(side) = queue;
                continue;
            }
            let sent = self.link.send(side, &mut queue);
            match side {
                Side::Wan => self.count(|s| &s.tx_wan, sent),
                Side::Lan | Side::Local => self.count(|s| &s.tx_lan, sent),
            }
            for f in queue.drain(..) {
                self.drop_frame(f, DropReason::RingFull);
            }
            *self.tx(side) = queue;
        }
    }

    fn tx(&mut self, side: Side) -> &mut Vec<Frame<'a>> {
        match side {
            Side::Wan => &mut self.tx_wan,
            Side::Lan => &mut self.tx_lan,
            Side::Local => &mut self.tx_local,
        }
    }

    /// One-armed classification: UDP to our port carrying a data message header.
    fn is_wireguard(&self, f: &Frame<'a>) -> bool {
        crate::packet::parse_outer(f.chunk(), f.offset(), f.len()).is_ok_and(|o| {
            o.dst_port == self.cfg.listen_port
                && f.chunk()
                    .get(o.msg_offset..)
                    .and_then(proto::messages::MessageType::of)
                    == Some(proto::messages::MessageType::Data)
        })
    }

    /// The cached session in `slot`, refreshed if control changed it.
    fn session(&mut self, slot: u32) -> Option<&CachedSession> {
        let shm = self.region.sessions().get(slot as usize)?;
        let version = shm.record.version();
        let stale = self
            .sessions
            .get(&slot)
            .is_none_or(|c| c.version != version);
        if stale {
            let record = SessionRecord::decode(&shm.record.read()?);
            // The version the words were read at (a write may have landed since `version`).
            let version = shm.record.version();
            match self.sessions.get_mut(&slot) {
                Some(c) => {
                    // The keys it replaces do not linger.
                    zeroize::Zeroize::zeroize(&mut c.record.send_key);
                    zeroize::Zeroize::zeroize(&mut c.record.recv_key);
                    c.record = record;
                    c.version = version;
                }
                None => {
                    self.sessions
                        .insert(slot, CachedSession { version, record });
                }
            }
        }
        self.sessions.get(&slot)
    }

    /// Drops cached sessions whose records changed (retired, replaced); their keys are wiped
    /// as they go (`CachedSession`'s drop).
    fn sweep_sessions(&mut self) {
        let region = &self.region;
        self.sessions.retain(|&slot, c| {
            region
                .sessions()
                .get(slot as usize)
                .is_some_and(|s| s.record.version() == c.version)
        });
    }

    /// Whether session `slot`'s record is still the one read at `version`: control has not
    /// retired or replaced it since (its keys and counters are still the ones in use).
    fn session_unchanged(&self, slot: u32, version: u64) -> bool {
        self.region
            .sessions()
            .get(slot as usize)
            .is_some_and(|s| s.record.version() == version)
    }

    /// Queues an event for control; false (and counted) if its ring was full.
    fn push_event(&self, event: WorkerEvent) -> bool {
        let pushed = self.region.push_event(self.cfg.id, &event);
        if !pushed {
            self.count_drop(DropReason::EventRingFull);
        }
        pushed
    }

    /// Data for a receiver index no session holds came from `from`: control hears of it
    /// (bounded, [`unknown::Reporter`]); it may be a peer failing over from another gateway.
    fn note_unknown_index(&mut self, from: SocketAddr, now: u64) {
        if self.unknown.should_report(from, now) {
            let _ = self.push_event(WorkerEvent::UnknownIndex { from });
        }
    }

    fn need_session(&mut self, peer: u32, now: u64) {
        let last = self.need_session_sent.get(&peer).copied().unwrap_or(0);
        if last == 0 || now.saturating_sub(last) >= NEED_SESSION_INTERVAL_NS {
            self.need_session_sent.insert(peer, now);
            let _ = self.push_event(WorkerEvent::NeedSession { peer });
        }
    }
}
