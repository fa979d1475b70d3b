//! Inbound: WireGuard data messages from the peers, opened and sent on as plaintext.

use super::share::{self, Back, Part, Work};
use super::Worker;
use crate::frame::Frame;
use crate::link::{Link, Side};
use crate::neigh::Snapshot;
use crate::packet;
use aead_batch::{Packet, Verdict, TAG_LEN};
use contract::layout::PeerRecord;
use contract::{DropReason, WorkerEvent};
use proto::constants::REJECT_AFTER_TIME;
use proto::messages::{Data, DATA_HEADER_LEN};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;

/// A message between lookup and finish: its frame and what the lookup found.
pub(super) struct Pending<'a> {
    frame: Frame<'a>,
    meta: Prepared,
}

/// A message is opened by whichever worker has time (`share`), and finished by its owner.
impl<'a> Part<'a> for Pending<'a> {
    const DIRECTION: usize = 0;

    /// Its ciphertext and tag, with the session's key and its counter, to open in place.
    fn packet(&mut self) -> Packet<'_> {
        let m = &self.meta;
        let payload = m.msg_offset + DATA_HEADER_LEN..m.msg_offset + m.msg_len;
        Packet::new(&m.key, m.counter, &mut self.frame.chunk_mut()[payload])
    }

    fn into_frame(self) -> Frame<'a> {
        self.frame
    }

    fn queue<'w>(work: &'w mut Work<'a>) -> &'w mut Vec<Self> {
        &mut work.open
    }

    fn text_len(&self) -> usize {
        self.meta.msg_len - DATA_HEADER_LEN
    }
}

/// Where an authenticated message's plaintext goes.
enum Delivery {
    /// A keepalive: nothing to send on.
    Consumed,
    /// Out of the LAN port, its frame's packet now the Ethernet frame of the inner packet.
    Lan,
    /// Out of the WAN port, likewise: an offloaded flow's packet for the internet.
    Wan,
    /// For one of the gateway's own addresses: to its local interface (wg0), the frame's
    /// packet the inner packet behind an Ethernet header with zero MACs (the link strips it).
    Local,
    /// The next hop's MAC is not known: to the kernel's stack, the frame's packet now the
    /// inner IP packet.
    Kernel(IpAddr),
}

impl<'a, L: Link<'a>> Worker<'a, L> {
    /// Inbound batch: look every message's session up, open them all in one batch call,
    /// then finish the authentic ones. Consumes every frame of `frames`.
    pub(super) fn inbound_batch(
        &mut self,
        frames: &mut Vec<Frame<'a>>,
        now: u64,
        snapshot: &Snapshot,
        routes: &allowedips::Snapshot<'_>,
    ) {
        let mut pending = std::mem::take(&mut self.in_pending);
        pending.clear();
        for frame in frames.drain(..) {
            match self.inbound_prepare(&frame, now) {
                Ok(meta) => pending.push(Pending { frame, meta }),
                Err(e) => self.drop_frame(frame, e),
            }
        }
        #[cfg(test)]
        if !pending.is_empty() {
            self.run_after_key_read();
        }
        // Other workers open the tail meanwhile (one tunnel across cores, `share`).
        let mut helpers = arrayvec::ArrayVec::<usize, 8>::new();
        self.hand_off(&mut pending, &mut helpers);
        let mut verdicts = std::mem::take(&mut self.verdicts);
        verdicts.clear();
        share::open_all(self.backend, &mut pending, &mut verdicts);
        self.finish_opened(&mut pending, &verdicts, now, snapshot, routes);
        for helper in helpers {
            if self.take_back(helper, &mut pending, &mut verdicts) == Back::Reclaimed {
                share::open_all(self.backend, &mut pending, &mut verdicts);
            }
            self.finish_opened(&mut pending, &verdicts, now, snapshot, routes);
        }
        self.verdicts = verdicts;
        self.in_pending = pending;
    }

    /// Finishes every message of `pending` (drained) by its verdict.
    fn finish_opened(
        &mut self,
        pending: &mut Vec<Pending<'a>>,
        verdicts: &[Verdict],
        now: u64,
        snapshot: &Snapshot,
        routes: &allowedips::Snapshot<'_>,
    ) {
        for (i, p) in pending.drain(..).enumerate() {
            if verdicts.get(i) == Some(&Verdict::Ok) {
                self.inbound_finish(p, now, snapshot, routes);
            } else {
                self.drop_frame(p.frame, DropReason::DataAuth);
            }
        }
    }

    /// Parses a WAN frame and finds its session; nothing is decrypted yet.
    fn inbound_prepare(&mut self, f: &Frame<'a>, now: u64) -> Result<Prepared, DropReason> {
        let outer = packet::parse_outer(f.chunk(), f.offset(), f.len())?;
        let msg = f
            .chunk()
            .get(outer.msg_offset..outer.msg_offset + outer.msg_len)
            .ok_or(DropReason::Malformed)?;
        let m = Data::new_checked(msg).map_err(|_| DropReason::Malformed)?;
        let (receiver, counter) = (m.receiver(), m.counter());
        let Some(slot) = self.region.index_lookup(receiver) else {
            self.note_unknown_index(outer.src, now);
            return Err(DropReason::UnknownIndex);
        };
        // As the kernel's decrypt_packet: a keypair whose receiving counters are used up
        // takes nothing more (not even a message that would authenticate).
        if self
            .region
            .sessions()
            .get(slot as usize)
            .is_none_or(|s| s.replay.is_exhausted())
        {
            return Err(DropReason::CounterExhausted);
        }
        let known = self
            .session(slot)
            .filter(|s| s.record.is_valid() && s.record.local_index == receiver);
        let Some(s) = known else {
            self.note_unknown_index(outer.src, now);
            return Err(DropReason::UnknownIndex);
        };
        if now.saturating_sub(s.record.birth_ns) >= REJECT_AFTER_TIME.as_nanos() as u64 {
            return Err(DropReason::KeyExpired);
        }
        Ok(Prepared {
            slot,
            version: s.version,
            peer: s.record.peer,
            key: s.record.recv_key,
            counter,
            src: outer.src,
            msg_offset: outer.msg_offset,
            msg_len: outer.msg_len,
        })
    }

    /// After a message authenticated: consumes its frame, out to the LAN, to the kernel, or
    /// released (keepalive or drop).
    fn inbound_finish(
        &mut self,
        p: Pending<'a>,
        now: u64,
        snapshot: &Snapshot,
        routes: &allowedips::Snapshot<'_>,
    ) {
        let Pending { mut frame, meta } = p;
        match self.inbound_deliver(&mut frame, &meta, now, snapshot, routes) {
            Ok(Delivery::Consumed) => self.link.release(frame),
            Ok(Delivery::Lan) => self.tx_lan.push(frame),
            Ok(Delivery::Wan) => self.tx_wan.push(frame),
            Ok(Delivery::Local) => self.tx_local.push(frame),
            Ok(Delivery::Kernel(dst)) => self.send_via_kernel(frame, Side::Lan, dst),
            Err(e) => self.drop_frame(frame, e),
        }
    }

    /// Replay check, accounting, and where the inner packet goes (the frame is rewritten
    /// for it, not consumed).
    fn inbound_deliver(
        &mut self,
        frame: &mut Frame<'a>,
        p: &Prepared,
        now: u64,
        snapshot: &Snapshot,
        routes: &allowedips::Snapshot<'_>,
    ) -> Result<Delivery, DropReason> {
        // Opened with a key control has retired (or replaced) since: its counter must not
        // land in the window of the session that now holds the slot.
        if !self.session_unchanged(p.slot, p.version) {
            return Err(DropReason::SessionRetired);
        }
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
            self.count(|s| &s.keepalives, 1);
            return Ok(Delivery::Consumed);
        }
        let inner_off = p.msg_offset + DATA_HEADER_LEN;
        let chunk = frame.chunk_mut();
        let inner = chunk
            .get(inner_off..inner_off + plain)
            .ok_or(DropReason::Malformed)?;
        let inner_len = proto::wire::inner_packet_len(inner).map_err(|_| DropReason::BadInner)?;
        let src = proto::wire::source_addr(inner).ok_or(DropReason::BadInner)?;
        let dst = proto::wire::dest_addr(inner).ok_or(DropReason::BadInner)?;
        if routes.lookup(src) != Some(p.peer) {
            return Err(DropReason::SourceNotAllowed);
        }
        // SYNs crossing the tunnel get an MSS that fits it, whichever way they leave.
        if packet::clamp_mss(chunk, inner_off, inner_len, self.cfg.mtu) {
            self.count(|s| &s.mss_clamped, 1);
        }
        if is_martian(dst) {
            return Err(DropReason::Martian);
        }
        // The gateway's own address: delivered, not forwarded (no hop taken off), through wg0
        // so that the kernel sees where it came from. Without a local interface it takes the
        // kernel path below, as before there was one.
        if self.link.has_local() && snapshot.is_local(dst) {
            let (start, len) = packet::frame_inner(chunk, inner_off, inner_len, [0; 6], [0; 6])?;
            frame.set_packet(start, len);
            return Ok(Delivery::Local);
        }
        // An established flow the kernel routed and translated: carried here, as it would.
        if let Some((side, start, len)) =
            self.offload_out(chunk, inner_off, inner_len, now, snapshot)?
        {
            frame.set_packet(start, len);
            return Ok(if side == Side::Wan {
                Delivery::Wan
            } else {
                Delivery::Lan
            });
        }
        // Served directly: a host the FIB reaches through the LAN port (the inside of a
        // two-armed gateway), its next hop known. Everything else (the internet through the
        // WAN port, another peer, a next hop not resolved yet) goes to the kernel through the
        // gateway's own interface when there is one, so that its routing and the operator's
        // filter and NAT rules (`-i wg0`, `-o eth0 -j MASQUERADE`) decide, as for kernel
        // WireGuard's traffic (docs/egress.md); the kernel takes the hop off when it forwards.
        // Not where the operator translates what leaves by the LAN port: the kernel's path then,
        // as for the internet, and the offload once the flow is established.
        let lan_translated = self.flows.as_ref().is_some_and(|f| f.lan_translated());
        let inside = match (&self.cfg.lan, self.link.has_local()) {
            (Some(_), true) if lan_translated => None,
            (Some(lan), _) => Some(lan),
            (None, false) => Some(&self.cfg.wan),
            (None, true) => None,
        };
        // A packet longer than the LAN port carries takes the kernel's path too: it fragments
        // it or tells the peer the MTU.
        let next_hop = inside
            .filter(|i| inner_len <= i.mtu)
            .and_then(|i| Some((i.mac, snapshot.lookup(dst, i.index)?)));
        let Some((our_mac, mac)) = next_hop else {
            // A destination the resolver has not looked up yet: ask, so that the next packets
            // to an inside host are served directly (the kernel resolves its neighbour as it
            // forwards this one). One it knows to be routed elsewhere is not asked again.
            if inside.is_some() && !snapshot.next_hop.contains_key(&dst) {
                self.neigh.request(dst);
            }
            if self.link.has_local() {
                let (start, len) =
                    packet::frame_inner(chunk, inner_off, inner_len, [0; 6], [0; 6])?;
                frame.set_packet(start, len);
                return Ok(Delivery::Local);
            }
            packet::decrement_ttl(chunk, inner_off)?;
            frame.set_packet(inner_off, inner_len);
            return Ok(Delivery::Kernel(dst));
        };
        packet::decrement_ttl(chunk, inner_off)?;
        let (start, len) = packet::frame_inner(chunk, inner_off, inner_len, our_mac, mac)?;
        frame.set_packet(start, len);
        Ok(Delivery::Lan)
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
        if known != Some(src) && !self.push_event(WorkerEvent::Endpoint { peer, from: src }) {
            // Control never heard of it (its ring was full): ask again with the next packet.
            return;
        }
        // Reported (or already known): not again until the record changes.
        self.endpoints_checked.insert(peer, (version, src));
    }
}

/// Destinations no packet from a peer may reach, as the kernel refuses them on input
/// (`ip_route_input_slow`'s martian destinations, `ip6_rcv_core`'s loopback check): loopback,
/// "this network" (0/8) and the unspecified addresses. Sent on, a peer could reach services
/// bound to the gateway's loopback with a source address of its own.
pub(super) fn is_martian(dst: IpAddr) -> bool {
    match dst {
        IpAddr::V4(a) => a.is_loopback() || a.octets()[0] == 0,
        IpAddr::V6(a) => {
            a.is_loopback()
                || a.is_unspecified()
                || a.to_ipv4_mapped()
                    .is_some_and(|m| m.is_loopback() || m.octets()[0] == 0)
        }
    }
}

/// What the lookup found for a message (everything of [`Pending`] but its frame).
pub(super) struct Prepared {
    slot: u32,
    version: u64,
    peer: u32,
    key: [u8; 32],
    counter: u64,
    src: SocketAddr,
    msg_offset: usize,
    msg_len: usize,
}

impl Drop for Prepared {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.key);
    }
}
