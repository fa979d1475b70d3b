//! Outbound: plaintext for the peers, sealed and sent as WireGuard data messages.

use super::share::{self, Back, Part, Work};
use super::{Worker, BATCH, MAX_STAGED};
use crate::frame::Frame;
use crate::link::{Link, Side};
use crate::neigh::Snapshot;
use crate::packet::{self, Route};
use aead_batch::Packet;
use contract::layout::{PeerRecord, SessionRecord, NO_SLOT};
use contract::DropReason;
use proto::constants::{REJECT_AFTER_MESSAGES, REJECT_AFTER_TIME};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;

/// A plaintext packet for a peer, as received: its frame, until when it may wait for its
/// peer's session, and the side it came from (the LAN, or the gateway itself through its
/// local interface).
pub(super) struct Plain<'a> {
    frame: Frame<'a>,
    deadline: u64,
    from: Side,
}

impl<'a> Plain<'a> {
    pub(super) fn new(frame: Frame<'a>, deadline: u64, from: Side) -> Self {
        Self {
            frame,
            deadline,
            from,
        }
    }
}

/// A packet between preparation and finish: its frame and what preparation decided.
pub(super) struct Pending<'a> {
    frame: Frame<'a>,
    meta: Prepared,
}

/// A packet is sealed by whichever worker has time (`share`), and finished by its owner.
impl<'a> Part<'a> for Pending<'a> {
    const DIRECTION: usize = 1;

    /// Its padded plaintext and the tag's room, with the session's key and the counter it
    /// took, to seal in place.
    fn packet(&mut self) -> Packet<'_> {
        let m = &self.meta;
        Packet::new(
            &m.key,
            m.counter,
            &mut self.frame.chunk_mut()[m.encap.payload()],
        )
    }

    fn into_frame(self) -> Frame<'a> {
        self.frame
    }

    fn queue<'w>(work: &'w mut Work<'a>) -> &'w mut Vec<Self> {
        &mut work.seal
    }

    fn text_len(&self) -> usize {
        self.meta.encap.payload().len() - aead_batch::TAG_LEN
    }
}

pub(super) struct Prepared {
    slot: u32,
    key: [u8; 32],
    counter: u64,
    encap: packet::Encap,
    route: Route,
    mac_known: bool,
}

impl Drop for Prepared {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.key);
    }
}

impl<'a, L: Link<'a>> Worker<'a, L> {
    /// Outbound batch: takes up to a batch of frames from the front of `frames` (each with
    /// the deadline it may wait for a session until, and its origin), routes and prepares them, seals them
    /// all in one batch call, then writes the outer headers. Consumes every frame it takes:
    /// sent, staged, or dropped.
    pub(super) fn outbound_batch(
        &mut self,
        frames: &mut Vec<Plain<'a>>,
        now: u64,
        snapshot: &Snapshot,
        routes: &allowedips::Snapshot<'_>,
    ) {
        let mut pending = std::mem::take(&mut self.out_pending);
        pending.clear();
        let take = frames.len().min(BATCH);
        for mut plain in frames.drain(..take) {
            match self.outbound_prepare(&mut plain.frame, plain.from, now, snapshot, routes) {
                Ok(meta) => pending.push(Pending {
                    frame: plain.frame,
                    meta,
                }),
                // No session yet (control was asked for one): wait for it, within limits.
                Err(DropReason::NoSession)
                    if self.staged.len() < MAX_STAGED && now < plain.deadline =>
                {
                    self.staged.push(plain);
                }
                Err(e) => self.drop_frame(plain.frame, e),
            }
        }
        // Other workers seal the tail meanwhile (one tunnel across cores, `share`); the parts
        // are finished in the order they were received.
        let mut helpers = arrayvec::ArrayVec::<usize, 8>::new();
        self.hand_off(&mut pending, &mut helpers);
        share::seal_all(self.backend, &mut pending);
        for p in pending.drain(..) {
            self.outbound_finish(p, now);
        }
        let mut verdicts = std::mem::take(&mut self.verdicts);
        for helper in helpers {
            if self.take_back(helper, &mut pending, &mut verdicts) == Back::Reclaimed {
                share::seal_all(self.backend, &mut pending);
            }
            for p in pending.drain(..) {
                self.outbound_finish(p, now);
            }
        }
        self.verdicts = verdicts;
        self.out_pending = pending;
    }

    /// Routes a plaintext frame (from the LAN, or from the gateway's own interface) to its
    /// peer's session, takes a counter and lays out the message.
    fn outbound_prepare(
        &mut self,
        frame: &mut Frame<'a>,
        from: Side,
        now: u64,
        snapshot: &Snapshot,
        routes: &allowedips::Snapshot<'_>,
    ) -> Result<Prepared, DropReason> {
        let (off, len) = (frame.offset(), frame.len());
        let (inner_off, inner_len, dst) = packet::parse_inner(frame.chunk(), off, len)?;
        let peer = routes.lookup(dst).ok_or(DropReason::NoRoute)?;
        if inner_len > self.cfg.mtu {
            self.report_too_big(frame, from, inner_off, inner_len);
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
        let (key, remote_index, birth, flags, version) = match self.session(slot) {
            Some(s) if s.record.is_valid() && s.record.peer == peer => (
                s.record.send_key,
                s.record.remote_index,
                s.record.birth_ns,
                s.record.flags,
                s.version,
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
        #[cfg(test)]
        self.run_after_key_read();
        let src_ip: IpAddr = match endpoint.ip() {
            IpAddr::V4(_) => self.cfg.wan.v4.map(IpAddr::V4),
            IpAddr::V6(_) => self.cfg.wan.v6.map(IpAddr::V6),
        }
        .ok_or(DropReason::NoRoute)?;
        let counter = self.region.sessions()[slot as usize]
            .send_counter
            .fetch_add(1, Ordering::Relaxed);
        // The counter came from the slot as it is now: if control retired the session since
        // its key was read (and a new one may already have reset the counter), this counter
        // is not the key's to use.
        if !self.session_unchanged(slot, version) {
            return Err(DropReason::SessionRetired);
        }
        if counter >= REJECT_AFTER_MESSAGES {
            self.need_session(peer, now);
            return Err(DropReason::CounterExhausted);
        }
        let chunk = frame.chunk_mut();
        packet::complete_partial_checksum(chunk, inner_off, inner_len);
        if packet::clamp_mss(chunk, inner_off, inner_len, self.cfg.mtu) {
            self.count(|s| &s.mss_clamped, 1);
        }
        // Forwarded packets lose a hop here; the gateway's own ones leave with the TTL its
        // stack gave them, as from a kernel WireGuard interface.
        if from != Side::Local {
            packet::decrement_ttl(chunk, inner_off)?;
        }
        let encap = packet::prepare_encap(
            chunk,
            inner_off,
            inner_len,
            remote_index,
            counter,
            endpoint.is_ipv6(),
            self.cfg.mtu,
        )?;
        let dst_mac = snapshot.lookup(endpoint.ip(), self.cfg.wan.index);
        let route = Route {
            src: SocketAddr::new(src_ip, self.cfg.listen_port),
            dst: endpoint,
            src_mac: self.cfg.wan.mac,
            dst_mac: dst_mac.unwrap_or([0; 6]),
        };
        Ok(Prepared {
            slot,
            key,
            counter,
            encap,
            route,
            mac_known: dst_mac.is_some(),
        })
    }

    /// Tells the sender of an oversized plaintext packet the tunnel's MTU (PMTU discovery, as
    /// the kernel does for a packet routed into a WireGuard interface), in a frame of its own,
    /// back by the side it came from (the gateway's own stack, if it came from wg0: only if
    /// an operator raised wg0's MTU past the tunnel's).
    fn report_too_big(
        &mut self,
        frame: &Frame<'a>,
        origin: Side,
        inner_off: usize,
        inner_len: usize,
    ) {
        let Some(packet) = frame.chunk().get(inner_off..inner_off + inner_len) else {
            return;
        };
        if !packet::may_report_too_big(packet) {
            return;
        }
        // The frame's source MAC is the host (or router) that sent it to us.
        let Some(dst_mac) = packet::frame_source(frame.chunk(), frame.offset()) else {
            return;
        };
        let side = match origin {
            Side::Wan => &self.cfg.wan,
            _ => self.cfg.lan.as_ref().unwrap_or(&self.cfg.wan),
        };
        let from = match proto::wire::ip_version(packet) {
            Some(4) => side.v4.map(IpAddr::V4),
            _ => side.v6.map(IpAddr::V6),
        };
        let (src_mac, mtu) = (side.mac, u16::try_from(self.cfg.mtu).unwrap_or(u16::MAX));
        let Some(from) = from else { return };
        let Some(mut reply) = self.link.alloc() else {
            return;
        };
        // Leave the usual headroom in front, as for a received frame.
        let written = reply
            .chunk_mut()
            .get_mut(packet::HEADROOM..)
            .ok_or(())
            .and_then(|out| {
                packet::too_big_reply(packet, out, from, src_mac, dst_mac, mtu).map_err(|_| ())
            });
        match written {
            Ok(len) if reply.set_packet(packet::HEADROOM, len) => match origin {
                Side::Local => self.tx_local.push(reply),
                Side::Wan => self.tx_wan.push(reply),
                Side::Lan => self.tx_lan.push(reply),
            },
            _ => self.link.release(reply),
        }
    }

    /// After sealing: consumes the frame, out on the WAN (or through the kernel while the
    /// next hop's MAC is unknown), or dropped.
    fn outbound_finish(&mut self, p: Pending<'a>, now: u64) {
        let Pending { mut frame, meta } = p;
        match self.outbound_frame(&mut frame, &meta, now) {
            Ok(()) if meta.mac_known => self.tx_wan.push(frame),
            Ok(()) => {
                // The outer IP packet alone: the kernel writes its own Ethernet header.
                let (start, len) = (frame.offset(), frame.len());
                frame.set_packet(start + packet::ETH_LEN, len - packet::ETH_LEN);
                self.send_via_kernel(frame, Side::Wan, meta.route.dst.ip());
            }
            Err(e) => self.drop_frame(frame, e),
        }
    }

    /// Outer headers and accounting; the frame's packet becomes the outer Ethernet frame.
    fn outbound_frame(
        &mut self,
        frame: &mut Frame<'a>,
        p: &Prepared,
        now: u64,
    ) -> Result<(), DropReason> {
        let (start, len) = packet::finish_encap(frame.chunk_mut(), &p.encap, &p.route)?;
        frame.set_packet(start, len);
        let shm = &self.region.sessions()[p.slot as usize];
        shm.tx_packets.fetch_add(1, Ordering::Relaxed);
        shm.tx_bytes
            .fetch_add((len - packet::ETH_LEN) as u64, Ordering::Relaxed);
        shm.last_tx_ns.store(now, Ordering::Relaxed);
        shm.last_tx_data_ns.store(now, Ordering::Relaxed);
        Ok(())
    }
}
