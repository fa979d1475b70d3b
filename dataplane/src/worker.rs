//! One worker: a pinned thread that owns a receive queue's AF_XDP sockets (WAN and LAN, one
//! UMEM), and moves packets between them (design §1).
//!
//! Inbound (WAN rx): parse, find the session by receiver index, open, replay check, inner
//! source in the peer's allowed IPs, TTL, Ethernet header for the LAN next hop, LAN tx.
//! Outbound (LAN rx): inner destination → peer (allowed IPs) → its current session, take a
//! counter, TTL, seal, outer headers towards the peer's endpoint, WAN tx.
//!
//! Per packet there is no allocation, lock or syscall: the worker reads the shared region
//! (atomics), its own caches and the neighbour snapshot (loaded once per batch). Syscalls are
//! per batch (TX kick, poll when idle) or on a neighbour miss (the kernel path).
//!
//! Crypto is batched: a round's inbound messages are opened in one `aead-batch` call, its
//! outbound packets sealed in one (SIMD lanes span packets). The allowed-IPs table is one
//! lock-free table for all workers in this process, updated by difference (`daemon.rs`).
//! The replay window of a session is shared by all workers (`shm::replay`): a replayed
//! packet is refused whichever queue it arrives on.

use crate::kernel::KernelPath;
use crate::neigh::{Neighbours, Snapshot};
use crate::packet::{self, Route};
use crate::xsk::{desc, Desc, Frames, Port};
use aead_batch::{Backend, Packet, Verdict, TAG_LEN};
use contract::clock::mono_ns;
use contract::layout::{PeerRecord, SessionRecord, WorkerStats, NO_SLOT};
use contract::DropReason;
use contract::{Region, WorkerEvent};
use proto::constants::{REJECT_AFTER_MESSAGES, REJECT_AFTER_TIME};
use proto::messages::{Data, DATA_HEADER_LEN};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// An interface as the worker needs it.
#[derive(Debug, Clone)]
pub struct Iface {
    pub name: String,
    pub mac: [u8; 6],
    pub v4: Option<Ipv4Addr>,
    pub v6: Option<Ipv6Addr>,
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

/// An inbound message between lookup and finish.
struct InPending {
    desc: Desc,
    slot: u32,
    peer: u32,
    key: [u8; 32],
    counter: u64,
    src: SocketAddr,
    msg_offset: usize,
    msg_len: usize,
}

/// An outbound packet between preparation and finish.
struct OutPending {
    desc: Desc,
    slot: u32,
    key: [u8; 32],
    counter: u64,
    encap: packet::Encap,
    route: Route,
    mac_known: bool,
}

struct CachedSession {
    version: u64,
    record: SessionRecord,
}

const BATCH: usize = 64;
/// Frames kept out of the fill rings for packets the worker generates.
const RESERVED_FRAMES: usize = 64;
/// How often a worker re-asks control for a session it still lacks.
const NEED_SESSION_INTERVAL_NS: u64 = 1_000_000_000;
/// Frames for peers without a usable session that wait for one (the kernel stages up to
/// MAX_STAGED_PACKETS per peer; here per worker, since the frames come out of its UMEM).
const MAX_STAGED: usize = 128;
/// How long a staged frame waits for its session before it is dropped (REKEY_TIMEOUT: by
/// then the handshake was lost and is being retried).
const STAGE_TIMEOUT_NS: u64 = 5_000_000_000;

pub struct Worker {
    cfg: WorkerConfig,
    region: Arc<Region>,
    frames: Frames,
    wan: Port,
    lan: Option<Port>,
    neigh: Neighbours,
    kernel: KernelPath,
    sessions: HashMap<u32, CachedSession>,
    /// The allowed-IPs table the data-path process keeps in step with control (one writer
    /// for all workers, see `daemon.rs`); lookups never wait for it. Pinned once per round
    /// (taken out of the worker meanwhile, so the round's methods can borrow `self`).
    prefixes: Option<allowedips::Reader>,
    need_session_sent: HashMap<u32, u64>,
    /// Per peer slot: the source last checked against the peer's record, and the record's
    /// version then. A packet from the same source is not checked again until the record
    /// changes (control moved the endpoint, e.g. after a handshake from elsewhere).
    endpoints_checked: HashMap<u32, (u64, SocketAddr)>,
    rx: Vec<Desc>,
    tx_wan: Vec<Desc>,
    tx_lan: Vec<Desc>,
    in_pending: Vec<InPending>,
    out_pending: Vec<OutPending>,
    /// LAN frames waiting for their peer's session (with their deadlines), so that the
    /// packet that caused a handshake is sent when it completes, as the kernel does; and
    /// the buffers they are retried from (kept to avoid allocating per round).
    staged: Vec<Desc>,
    staged_deadlines: Vec<u64>,
    retry: Vec<Desc>,
    retry_deadlines: Vec<u64>,
    backend: Backend,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("id", &self.cfg.id)
            .finish_non_exhaustive()
    }
}

impl Worker {
    pub fn new(
        cfg: WorkerConfig,
        region: Arc<Region>,
        frames: Frames,
        wan: Port,
        lan: Option<Port>,
        neigh: Neighbours,
        prefixes: allowedips::Reader,
    ) -> Self {
        Self {
            cfg,
            region,
            frames,
            wan,
            lan,
            neigh,
            kernel: KernelPath::new(),
            sessions: HashMap::with_capacity(1024),
            prefixes: Some(prefixes),
            need_session_sent: HashMap::new(),
            endpoints_checked: HashMap::new(),
            rx: vec![
                Desc {
                    addr: 0,
                    len: 0,
                    options: 0
                };
                BATCH
            ],
            tx_wan: Vec::with_capacity(2 * BATCH),
            tx_lan: Vec::with_capacity(2 * BATCH),
            in_pending: Vec::with_capacity(BATCH),
            out_pending: Vec::with_capacity(BATCH),
            staged: Vec::with_capacity(MAX_STAGED),
            staged_deadlines: Vec::with_capacity(MAX_STAGED),
            retry: Vec::with_capacity(MAX_STAGED),
            retry_deadlines: Vec::with_capacity(MAX_STAGED),
            backend: Backend::detect(),
        }
    }

    /// Free frames that may go to the fill rings: a few always stay back for packets the
    /// worker makes itself (ICMP errors), so that it never has to wait for the kernel.
    fn fillable(&self) -> u32 {
        u32::try_from(self.frames.free_count().saturating_sub(RESERVED_FRAMES)).unwrap_or(u32::MAX)
    }

    fn stats(&self) -> Option<&WorkerStats> {
        self.region.worker_stats(self.cfg.id)
    }

    fn count_drop(&self, d: DropReason) {
        if let Some(s) = self.stats() {
            s.drops[d as usize].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Runs until `stop` is set.
    pub fn run(&mut self, stop: &AtomicBool) {
        let half = self.fillable() / if self.lan.is_some() { 2 } else { 1 };
        self.wan.fill(&mut self.frames, half);
        if let Some(lan) = self.lan.as_mut() {
            lan.fill(&mut self.frames, half);
        }
        while !stop.load(Ordering::Relaxed) {
            let moved = self.poll_once();
            if moved == 0 {
                let mut fds = vec![self.wan.fd()];
                if let Some(l) = &self.lan {
                    fds.push(l.fd());
                }
                crate::xsk::wait_readable(&fds, 1);
            }
        }
    }

    /// One round: completions, refill, a batch from each side, transmit. Returns how many
    /// frames were received.
    pub fn poll_once(&mut self) -> usize {
        let now = mono_ns();
        if let Some(s) = self.stats() {
            s.heartbeat_ns.store(now, Ordering::Relaxed);
        }
        // `wg set listen-port` moves the port while we run.
        self.cfg.listen_port =
            u16::try_from(self.region.header().listen_port.load(Ordering::Relaxed))
                .unwrap_or(self.cfg.listen_port);
        self.wan.complete(&mut self.frames, BATCH as u32 * 2);
        if let Some(lan) = self.lan.as_mut() {
            lan.complete(&mut self.frames, BATCH as u32 * 2);
        }
        let snapshot = self.neigh.load();
        let Some(mut reader) = self.prefixes.take() else {
            return 0;
        };
        let routes = reader.pin();
        let mut moved = 0;

        let mut inbound = arrayvec::ArrayVec::<Desc, BATCH>::new();
        let mut outbound = arrayvec::ArrayVec::<Desc, { 2 * BATCH }>::new();
        let n = self.wan.recv(&mut self.rx);
        moved += n;
        if let Some(s) = self.stats() {
            s.rx_wan.fetch_add(n as u64, Ordering::Relaxed);
        }
        for i in 0..n {
            let d = self.rx[i];
            // One-armed: the WAN socket also carries the plaintext for peers.
            if self.lan.is_none() && !self.is_wireguard(d) {
                outbound.push(d);
            } else {
                inbound.push(d);
            }
        }
        if let Some(lan) = self.lan.as_mut() {
            let n = lan.recv(&mut self.rx);
            moved += n;
            if let Some(s) = self.region.worker_stats(self.cfg.id) {
                s.rx_lan.fetch_add(n as u64, Ordering::Relaxed);
            }
            outbound.extend(self.rx[..n].iter().copied());
        }
        self.inbound_batch(&inbound, now, &snapshot, &routes);
        // Staged frames first, so that a peer's packets leave in the order they came.
        if !self.staged.is_empty() {
            std::mem::swap(&mut self.staged, &mut self.retry);
            std::mem::swap(&mut self.staged_deadlines, &mut self.retry_deadlines);
            let (retry, deadlines) = (
                std::mem::take(&mut self.retry),
                std::mem::take(&mut self.retry_deadlines),
            );
            for (c, d) in retry.chunks(BATCH).zip(deadlines.chunks(BATCH)) {
                self.outbound_batch(c, now, &snapshot, &routes, d);
            }
            self.retry = retry;
            self.retry.clear();
            self.retry_deadlines = deadlines;
            self.retry_deadlines.clear();
        }
        for chunk in outbound.chunks(BATCH) {
            self.outbound_batch(chunk, now, &snapshot, &routes, &[]);
        }
        drop(routes);
        self.prefixes = Some(reader);
        self.transmit();
        let refill = self.fillable() / if self.lan.is_some() { 2 } else { 1 };
        self.wan.fill(&mut self.frames, refill);
        if let Some(lan) = self.lan.as_mut() {
            lan.fill(&mut self.frames, refill);
        }
        moved
    }

    fn transmit(&mut self) {
        // One-armed: everything leaves on the WAN port.
        if self.lan.is_none() {
            let lan_bound = std::mem::take(&mut self.tx_lan);
            self.tx_wan.extend_from_slice(&lan_bound);
            self.tx_lan = lan_bound;
            self.tx_lan.clear();
        }
        let sent = self.wan.send(&self.tx_wan);
        for d in &self.tx_wan[sent..] {
            self.frames.release(d.addr);
        }
        if !self.tx_wan.is_empty() {
            self.wan.kick();
        }
        if let Some(s) = self.region.worker_stats(self.cfg.id) {
            s.tx_wan.fetch_add(sent as u64, Ordering::Relaxed);
            s.drops[DropReason::RingFull as usize]
                .fetch_add((self.tx_wan.len() - sent) as u64, Ordering::Relaxed);
        }
        self.tx_wan.clear();
        if let Some(lan) = self.lan.as_mut() {
            let sent = lan.send(&self.tx_lan);
            for d in &self.tx_lan[sent..] {
                self.frames.release(d.addr);
            }
            if !self.tx_lan.is_empty() {
                lan.kick();
            }
            if let Some(s) = self.region.worker_stats(self.cfg.id) {
                s.tx_lan.fetch_add(sent as u64, Ordering::Relaxed);
                s.drops[DropReason::RingFull as usize]
                    .fetch_add((self.tx_lan.len() - sent) as u64, Ordering::Relaxed);
            }
            self.tx_lan.clear();
        }
    }

    /// One-armed classification: UDP to our port carrying a data message header.
    fn is_wireguard(&mut self, d: Desc) -> bool {
        let port = self.cfg.listen_port;
        let Some((_, off, chunk)) = self.frames.chunk_mut(d.addr) else {
            return false;
        };
        packet::parse_outer(chunk, off, d.len as usize).is_ok_and(|o| {
            chunk.get(o.msg_offset) == Some(&4) && {
                // The destination port sits right before the message, in the UDP header.
                let p = o.msg_offset - 6;
                u16::from_be_bytes([chunk[p], chunk[p + 1]]) == port
            }
        })
    }

    /// The cached session in `slot`, refreshed if control changed it.
    fn session(&mut self, slot: u32) -> Option<&mut CachedSession> {
        let shm = self.region.sessions().get(slot as usize)?;
        let version = shm.record.version();
        let stale = self
            .sessions
            .get(&slot)
            .is_none_or(|c| c.version != version);
        if stale {
            let record = SessionRecord::decode(&shm.record.read()?);
            match self.sessions.get_mut(&slot) {
                Some(c) if c.record.local_index == record.local_index => {
                    c.record = record;
                    c.version = version;
                }
                _ => {
                    self.sessions
                        .insert(slot, CachedSession { version, record });
                }
            }
        }
        self.sessions.get_mut(&slot)
    }

    fn push_event(&self, event: WorkerEvent) {
        if !self.region.push_event(self.cfg.id, &event) {
            self.count_drop(DropReason::EventRingFull);
        }
    }

    /// Inbound batch: look every message's session up, open them all in one batch call,
    /// then finish the authentic ones.
    fn inbound_batch(
        &mut self,
        descs: &[Desc],
        now: u64,
        snapshot: &Snapshot,
        routes: &allowedips::Snapshot<'_>,
    ) {
        let mut pending = std::mem::take(&mut self.in_pending);
        pending.clear();
        for &d in descs {
            match self.inbound_prepare(d, now) {
                Ok(p) => pending.push(p),
                Err(e) => self.drop_frame(d, e),
            }
        }
        let addrs: arrayvec::ArrayVec<u64, BATCH> = pending.iter().map(|p| p.desc.addr).collect();
        let mut verdicts = [Verdict::Pending; BATCH];
        let backend = self.backend;
        let opened = self.frames.with_chunks(&addrs, |chunks| {
            let mut packets = arrayvec::ArrayVec::<Packet<'_>, BATCH>::new();
            for (p, chunk) in pending.iter().zip(chunks.iter_mut()) {
                let payload = p.msg_offset + DATA_HEADER_LEN..p.msg_offset + p.msg_len;
                packets.push(Packet::new(&p.key, p.counter, &mut chunk[payload]));
            }
            backend.open(&mut packets);
            for (v, p) in verdicts.iter_mut().zip(&packets) {
                *v = p.verdict();
            }
        });
        for (i, p) in pending.iter().enumerate() {
            let result = match (opened, verdicts[i]) {
                (Some(()), Verdict::Ok) => self.inbound_finish(p, now, snapshot, routes),
                (Some(()), _) => Err(DropReason::DataAuth),
                (None, _) => Err(DropReason::Malformed),
            };
            if let Err(e) = result {
                self.drop_frame(p.desc, e);
            }
        }
        self.in_pending = pending;
    }

    fn drop_frame(&mut self, d: Desc, e: DropReason) {
        self.count_drop(e);
        self.frames.release(d.addr);
    }

    /// Parses a WAN frame and finds its session; nothing is decrypted yet.
    fn inbound_prepare(&mut self, d: Desc, now: u64) -> Result<InPending, DropReason> {
        let (_, off, chunk) = self.frames.chunk_mut(d.addr).ok_or(DropReason::Malformed)?;
        let outer = packet::parse_outer(chunk, off, d.len as usize)?;
        let (receiver, counter) = {
            let m = Data::new_checked(&chunk[outer.msg_offset..outer.msg_offset + outer.msg_len])
                .map_err(|_| DropReason::Malformed)?;
            (m.receiver(), m.counter())
        };
        let slot = self
            .region
            .index_lookup(receiver)
            .ok_or(DropReason::UnknownIndex)?;
        let s = self.session(slot).ok_or(DropReason::UnknownIndex)?;
        if !s.record.is_valid() || s.record.local_index != receiver {
            return Err(DropReason::UnknownIndex);
        }
        if now.saturating_sub(s.record.birth_ns) >= REJECT_AFTER_TIME.as_nanos() as u64 {
            return Err(DropReason::KeyExpired);
        }
        Ok(InPending {
            desc: d,
            slot,
            peer: s.record.peer,
            key: s.record.recv_key,
            counter,
            src: outer.src,
            msg_offset: outer.msg_offset,
            msg_len: outer.msg_len,
        })
    }

    /// After a message authenticated: replay check, accounting, and the inner packet out to
    /// the LAN.
    fn inbound_finish(
        &mut self,
        p: &InPending,
        now: u64,
        snapshot: &Snapshot,
        routes: &allowedips::Snapshot<'_>,
    ) -> Result<(), DropReason> {
        let shm = &self.region.sessions()[p.slot as usize];
        // The session's one window, whichever worker checks it (after authentication).
        if !shm.replay.validate(p.counter) {
            return Err(DropReason::Replay);
        }
        let plain = p.msg_len - DATA_HEADER_LEN - TAG_LEN;
        shm.rx_packets.fetch_add(1, Ordering::Relaxed);
        shm.rx_bytes.fetch_add(p.msg_len as u64, Ordering::Relaxed);
        shm.last_rx_ns.store(now, Ordering::Relaxed);
        if plain > 0 {
            shm.last_rx_data_ns.store(now, Ordering::Relaxed);
        }
        self.note_endpoint(p.peer, p.src);
        if plain == 0 {
            if let Some(s) = self.stats() {
                s.keepalives.fetch_add(1, Ordering::Relaxed);
            }
            self.frames.release(p.desc.addr);
            return Ok(());
        }
        let inner_off = p.msg_offset + DATA_HEADER_LEN;
        let (base, _, chunk) = self
            .frames
            .chunk_mut(p.desc.addr)
            .ok_or(DropReason::Malformed)?;
        let inner = &chunk[inner_off..inner_off + plain];
        let inner_len = proto::wire::inner_packet_len(inner).map_err(|_| DropReason::BadInner)?;
        let src = proto::wire::source_addr(inner).ok_or(DropReason::BadInner)?;
        let dst = proto::wire::dest_addr(inner).ok_or(DropReason::BadInner)?;
        if routes.lookup(src) != Some(p.peer) {
            return Err(DropReason::SourceNotAllowed);
        }
        packet::decrement_ttl(chunk, inner_off)?;
        let lan_mac = self.cfg.lan.as_ref().unwrap_or(&self.cfg.wan).mac;
        let Some(mac) = snapshot.lookup(dst) else {
            self.neigh.request(dst);
            let sent = self
                .kernel
                .send(&chunk[inner_off..inner_off + inner_len], dst);
            self.frames.release(p.desc.addr);
            return self.to_kernel(sent);
        };
        let (start, len) = packet::frame_inner(chunk, inner_off, inner_len, lan_mac, mac)?;
        self.tx_lan.push(desc(base + start as u64, len as u32));
        Ok(())
    }

    fn to_kernel(&self, sent: bool) -> Result<(), DropReason> {
        if !sent {
            return Err(DropReason::NoNeighbour);
        }
        if let Some(s) = self.stats() {
            s.to_kernel.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Reports a peer's new source address to control (roaming). Checked against the peer's
    /// record, not against what this worker reported last: another worker, or a handshake
    /// through control, may have moved the endpoint since, and a peer returning to an address
    /// it used before must move it back.
    fn note_endpoint(&mut self, peer: u32, src: SocketAddr) {
        let Some(slot) = self.region.peers().get(peer as usize) else {
            return;
        };
        let version = slot.record.version();
        if self.endpoints_checked.get(&peer) == Some(&(version, src)) {
            return;
        }
        let Some(known) = slot.record.read().map(|w| PeerRecord::decode(&w).endpoint) else {
            return;
        };
        if known != Some(src) {
            self.push_event(WorkerEvent::Endpoint { peer, from: src });
        }
        // Reported (or already known): not again until the record changes.
        self.endpoints_checked.insert(peer, (version, src));
    }

    fn need_session(&mut self, peer: u32, now: u64) {
        let last = self.need_session_sent.get(&peer).copied().unwrap_or(0);
        if last == 0 || now.saturating_sub(last) >= NEED_SESSION_INTERVAL_NS {
            self.need_session_sent.insert(peer, now);
            self.push_event(WorkerEvent::NeedSession { peer });
        }
    }

    /// Outbound batch: route and prepare every packet, seal them all in one batch call, then
    /// write the outer headers. `deadlines` are those of staged frames being retried (empty
    /// for fresh ones).
    fn outbound_batch(
        &mut self,
        descs: &[Desc],
        now: u64,
        snapshot: &Snapshot,
        routes: &allowedips::Snapshot<'_>,
        deadlines: &[u64],
    ) {
        let mut pending = std::mem::take(&mut self.out_pending);
        pending.clear();
        for (i, &d) in descs.iter().enumerate() {
            match self.outbound_prepare(d, now, snapshot, routes) {
                Ok(p) => pending.push(p),
                // No session yet (control was asked for one): wait for it, within limits.
                Err(DropReason::NoSession) if self.staged.len() < MAX_STAGED => {
                    let deadline = deadlines.get(i).copied().unwrap_or(now + STAGE_TIMEOUT_NS);
                    if now < deadline {
                        self.staged.push(d);
                        self.staged_deadlines.push(deadline);
                    } else {
                        self.drop_frame(d, DropReason::NoSession);
                    }
                }
                Err(e) => self.drop_frame(d, e),
            }
        }
        let addrs: arrayvec::ArrayVec<u64, BATCH> = pending.iter().map(|p| p.desc.addr).collect();
        let backend = self.backend;
        let sealed = self.frames.with_chunks(&addrs, |chunks| {
            let mut packets = arrayvec::ArrayVec::<Packet<'_>, BATCH>::new();
            for (p, chunk) in pending.iter().zip(chunks.iter_mut()) {
                packets.push(Packet::new(
                    &p.key,
                    p.counter,
                    &mut chunk[p.encap.payload()],
                ));
            }
            backend.seal(&mut packets)
        });
        for p in &pending {
            let result = match sealed {
                Some(_) => self.outbound_finish(p, now),
                None => Err(DropReason::Malformed),
            };
            if let Err(e) = result {
                self.drop_frame(p.desc, e);
            }
        }
        self.out_pending = pending;
    }

    /// Routes a LAN frame to its peer's session, takes a counter and lays out the message.
    fn outbound_prepare(
        &mut self,
        d: Desc,
        now: u64,
        snapshot: &Snapshot,
        routes: &allowedips::Snapshot<'_>,
    ) -> Result<OutPending, DropReason> {
        let (_, off, chunk) = self.frames.chunk_mut(d.addr).ok_or(DropReason::Malformed)?;
        let (inner_off, inner_len, dst) = packet::parse_inner(chunk, off, d.len as usize)?;
        let peer = routes.lookup(dst).ok_or(DropReason::NoRoute)?;
        if inner_len > self.cfg.mtu {
            self.report_too_big(d, off, inner_off, inner_len);
            return Err(DropReason::TooBig);
        }
        let record = self
            .region
            .peers()
            .get(peer as usize)
            .and_then(|p| p.record.read())
            .map(|w| PeerRecord::decode(&w))
            .ok_or(DropReason::NoRoute)?;
        if !record.valid {
            return Err(DropReason::NoRoute);
        }
        let Some(endpoint) = record.endpoint else {
            return Err(DropReason::NoEndpoint);
        };
        if record.current_session == NO_SLOT {
            self.need_session(peer, now);
            return Err(DropReason::NoSession);
        }
        let slot = record.current_session;
        let (key, remote_index, birth, flags) = match self.session(slot) {
            Some(s) if s.record.is_valid() && s.record.peer == peer => (
                s.record.send_key,
                s.record.remote_index,
                s.record.birth_ns,
                s.record.flags,
            ),
            _ => {
                self.need_session(peer, now);
                return Err(DropReason::NoSession);
            }
        };
        if flags & SessionRecord::SENDABLE == 0
            || now.saturating_sub(birth) >= REJECT_AFTER_TIME.as_nanos() as u64
        {
            self.need_session(peer, now);
            return Err(DropReason::NoSession);
        }
        let src_ip: IpAddr = match endpoint.ip() {
            IpAddr::V4(_) => self.cfg.wan.v4.map(IpAddr::V4),
            IpAddr::V6(_) => self.cfg.wan.v6.map(IpAddr::V6),
        }
        .ok_or(DropReason::NoRoute)?;
        let counter = self.region.sessions()[slot as usize]
            .send_counter
            .fetch_add(1, Ordering::Relaxed);
        if counter >= REJECT_AFTER_MESSAGES {
            self.need_session(peer, now);
            return Err(DropReason::CounterExhausted);
        }
        let (_, _, chunk) = self.frames.chunk_mut(d.addr).ok_or(DropReason::Malformed)?;
        packet::complete_partial_checksum(chunk, inner_off, inner_len);
        packet::decrement_ttl(chunk, inner_off)?;
        let encap = packet::prepare_encap(
            chunk,
            inner_off,
            inner_len,
            remote_index,
            counter,
            endpoint.is_ipv6(),
            self.cfg.mtu,
        )?;
        let dst_mac = snapshot.lookup(endpoint.ip());
        let route = Route {
            src: SocketAddr::new(src_ip, self.cfg.listen_port),
            dst: endpoint,
            src_mac: self.cfg.wan.mac,
            dst_mac: dst_mac.unwrap_or([0; 6]),
        };
        Ok(OutPending {
            desc: d,
            slot,
            key,
            counter,
            encap,
            route,
            mac_known: dst_mac.is_some(),
        })
    }

    /// Tells the sender of an oversized LAN packet the tunnel's MTU (PMTU discovery, as the
    /// kernel does for a packet routed into a WireGuard interface), in a frame of its own.
    fn report_too_big(&mut self, d: Desc, off: usize, inner_off: usize, inner_len: usize) {
        let Some((_, _, chunk)) = self.frames.chunk_mut(d.addr) else {
            return;
        };
        let packet = &chunk[inner_off..inner_off + inner_len];
        if !packet::may_report_too_big(packet) {
            return;
        }
        // The frame's source MAC is the host (or router) that sent it to us.
        let mut dst_mac = [0u8; 6];
        dst_mac.copy_from_slice(&chunk[off + 6..off + 12]);
        let mut quote = [0u8; 1280];
        let n = inner_len.min(quote.len());
        quote[..n].copy_from_slice(&packet[..n]);
        let side = self.cfg.lan.as_ref().unwrap_or(&self.cfg.wan);
        let from = match proto::wire::ip_version(&quote[..n]) {
            Some(4) => side.v4.map(IpAddr::V4),
            _ => side.v6.map(IpAddr::V6),
        };
        let (src_mac, mtu) = (side.mac, u16::try_from(self.cfg.mtu).unwrap_or(u16::MAX));
        let (Some(from), Some(addr)) = (from, self.frames.alloc()) else {
            return;
        };
        let Some((base, _, out)) = self.frames.chunk_mut(addr) else {
            return;
        };
        // Leave the kernel's usual headroom in front, as for a received frame.
        match packet::too_big_reply(&quote[..n], &mut out[256..], from, src_mac, dst_mac, mtu) {
            Ok(len) => self.tx_lan.push(desc(base + 256, len as u32)),
            Err(_) => self.frames.release(addr),
        }
    }

    /// After sealing: outer headers, accounting, and out on the WAN (or through the kernel
    /// while the next hop's MAC is unknown).
    fn outbound_finish(&mut self, p: &OutPending, now: u64) -> Result<(), DropReason> {
        let (base, _, chunk) = self
            .frames
            .chunk_mut(p.desc.addr)
            .ok_or(DropReason::Malformed)?;
        let (start, len) = packet::finish_encap(chunk, &p.encap, &p.route)?;
        let shm = &self.region.sessions()[p.slot as usize];
        shm.tx_packets.fetch_add(1, Ordering::Relaxed);
        shm.tx_bytes
            .fetch_add((len - packet::ETH_LEN) as u64, Ordering::Relaxed);
        shm.last_tx_ns.store(now, Ordering::Relaxed);
        shm.last_tx_data_ns.store(now, Ordering::Relaxed);
        if !p.mac_known {
            let dst = p.route.dst.ip();
            self.neigh.request(dst);
            let sent = self
                .kernel
                .send(&chunk[start + packet::ETH_LEN..start + len], dst);
            self.frames.release(p.desc.addr);
            return self.to_kernel(sent);
        }
        self.tx_wan.push(desc(base + start as u64, len as u32));
        Ok(())
    }
}
