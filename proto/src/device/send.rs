//! The send half of [`Device`] (the kernel's `send.c`): staging plaintext, starting
//! handshakes, sealing data messages and keeping keys fresh.

use super::*;

impl<R: CryptoRngCore> Device<R> {
    /// Queues a plaintext IP packet for the peer whose allowed IPs contain its destination.
    pub fn send(&mut self, now: Now, packet: &[u8]) -> Result<PeerId, DropReason> {
        let dst = wire::dest_addr(packet).ok_or(DropReason::BadInnerPacket)?;
        let id = self.allowed_ips.lookup(dst).ok_or(DropReason::NoRoute)?;
        self.send_to(now, id, packet)?;
        Ok(id)
    }

    /// Queues a plaintext packet for `id` (empty = keepalive). It is sent by
    /// [`Self::poll_transmit`] once a session exists; a handshake is started if needed.
    pub fn send_to(&mut self, now: Now, id: PeerId, packet: &[u8]) -> Result<(), DropReason> {
        let peer = self.peer_mut(id).ok_or(DropReason::NoRoute)?;
        if peer.staged.len() >= MAX_STAGED_PACKETS {
            // The kernel drops the oldest staged packet; keeping the newest serves TCP better.
            peer.staged.pop_front();
        }
        peer.staged.push_back(packet.to_vec());
        self.flush_staged(now, id);
        Ok(())
    }

    /// `wg_packet_send_keepalive`: a keepalive only if nothing else is waiting.
    pub(super) fn send_keepalive(&mut self, now: Now, id: PeerId) {
        if self.external {
            // The owner seals it with the workers' counter; without a usable keypair the
            // keepalive turns into a handshake, as a staged one would.
            if self.has_usable_keypair(now, id) {
                self.events.push_back(Event::Keepalive { peer: id });
            } else {
                self.send_queued_initiation(now, id, false);
            }
            return;
        }
        let Some(peer) = self.peer_mut(id) else {
            return;
        };
        if peer.staged.is_empty() {
            peer.staged.push_back(Vec::new());
        }
        self.flush_staged(now, id);
    }

    /// Marks the peer ready to send if it has a usable current keypair, else starts a handshake.
    pub(super) fn flush_staged(&mut self, now: Now, id: PeerId) {
        if self.peer(id).is_none_or(|p| p.staged.is_empty()) {
            return;
        }
        if self.has_usable_keypair(now, id) {
            let Some(peer) = self.peers.get_mut(id.0 as usize).and_then(Option::as_mut) else {
                return;
            };
            if !peer.ready {
                peer.ready = true;
                self.ready.push_back(id);
            }
        } else {
            self.send_queued_initiation(now, id, false);
        }
    }

    /// Whether `id`'s current keypair may still send (send.c: valid, younger than
    /// REJECT_AFTER_TIME, counters left).
    pub(super) fn has_usable_keypair(&self, now: Now, id: PeerId) -> bool {
        self.peer(id)
            .and_then(|p| p.keypairs.current())
            .is_some_and(|k| {
                k.sending_valid
                    && !now.mono.has_expired(k.birth, REJECT_AFTER_TIME)
                    && k.sending_counter < crate::constants::REJECT_AFTER_MESSAGES
            })
    }

    /// Starts a handshake with `id` now (subject to the one-per-REKEY_TIMEOUT limit).
    pub fn initiate_handshake(&mut self, now: Now, id: PeerId) {
        self.send_queued_initiation(now, id, false);
    }

    /// `wg_packet_send_queued_handshake_initiation` + `wg_packet_send_handshake_initiation`.
    pub(super) fn send_queued_initiation(&mut self, now: Now, id: PeerId, is_retry: bool) {
        let Some(peer) = self.peer_mut(id) else {
            return;
        };
        if !is_retry {
            peer.timers.handshake_attempts = 0;
        }
        if peer
            .last_sent_handshake
            .is_some_and(|t| !now.mono.has_expired(t, REKEY_TIMEOUT))
        {
            return;
        }
        if let Some(old) = peer.handshake.held_index() {
            self.indices.remove(&old);
        }
        let index = self.allocate_index(id);
        let jitter = self.jitter();
        let mut bytes = [0u8; INITIATION_LEN];
        let Some(peer) = self.peers.get_mut(id.0 as usize).and_then(Option::as_mut) else {
            return;
        };
        let mut msg = match Initiation::new_init(&mut bytes[..]) {
            Ok(m) => m,
            Err(_) => return,
        };
        if peer
            .handshake
            .create_initiation(&self.identity, now, index, &mut self.rng, &mut msg)
            .is_err()
        {
            // A low-order peer key: nothing can ever be sent to this peer.
            self.indices.remove(&index);
            return;
        }
        peer.cookie.add_macs(&mut bytes, now.mono);
        peer.timers.any_authenticated_packet_traversal(now.mono);
        peer.timers.any_authenticated_packet_sent();
        peer.last_sent_handshake = Some(now.mono);
        peer.timers.handshake_initiated(now.mono, jitter);
        if let Some(dst) = peer.endpoint {
            peer.stats.tx_bytes += INITIATION_LEN as u64;
            self.queue.push_back(Queued {
                dst,
                peer: Some(id),
                len: INITIATION_LEN,
                bytes,
            });
        }
    }

    /// Writes the next datagram to send into `out` (which must hold at least an initiation,
    /// 148 bytes, and for data the packet plus 47 bytes).
    pub fn poll_transmit(&mut self, now: Now, out: &mut [u8]) -> Option<Transmit> {
        if let Some(q) = self.queue.pop_front() {
            if out.len() < q.len {
                return None;
            }
            out[..q.len].copy_from_slice(&q.bytes[..q.len]);
            return Some(Transmit {
                dst: q.dst,
                len: q.len,
                peer: q.peer,
            });
        }
        while let Some(id) = self.ready.pop_front() {
            if let Some(t) = self.transmit_staged(now, id, out) {
                return Some(t);
            }
        }
        None
    }

    /// Encrypts the peer's next staged packet into `out`; re-queues the peer if more remain.
    pub(super) fn transmit_staged(
        &mut self,
        now: Now,
        id: PeerId,
        out: &mut [u8],
    ) -> Option<Transmit> {
        let mtu = self.mtu;
        let peer = self.peers.get_mut(id.0 as usize).and_then(Option::as_mut)?;
        peer.ready = false;
        let packet = peer.staged.pop_front()?;
        let (dst, keypair) = match (peer.endpoint, peer.keypairs.current_mut()) {
            (Some(dst), Some(k)) => (dst, k),
            _ => {
                peer.staged.push_front(packet);
                self.send_queued_initiation(now, id, false);
                return None;
            }
        };
        let padded = data::padded_len(packet.len(), mtu);
        if out.len() < DATA_OVERHEAD + padded {
            return None; // caller's buffer too small: the packet is dropped
        }
        let Some(counter) = keypair.next_sending_counter(now.mono) else {
            peer.staged.push_front(packet);
            self.send_queued_initiation(now, id, false);
            return None;
        };
        out[DATA_HEADER_LEN..DATA_HEADER_LEN + packet.len()].copy_from_slice(&packet);
        out[DATA_HEADER_LEN + packet.len()..DATA_HEADER_LEN + padded].fill(0);
        let len = data::seal(
            keypair.sending_key(),
            keypair.remote_index,
            counter,
            out,
            padded,
        )
        .ok()?;
        let rekey = keypair.sending_counter > REKEY_AFTER_MESSAGES
            || (keypair.i_am_the_initiator
                && now.mono.has_expired(keypair.birth, REKEY_AFTER_TIME));
        peer.stats.tx_bytes += len as u64;
        peer.timers.any_authenticated_packet_traversal(now.mono);
        peer.timers.any_authenticated_packet_sent();
        if !packet.is_empty() {
            let jitter = Duration::from_millis(self.rng.next_u64() % 334);
            let peer = self.peers.get_mut(id.0 as usize).and_then(Option::as_mut)?;
            peer.timers.data_sent(now.mono, jitter);
        }
        let peer = self.peers.get_mut(id.0 as usize).and_then(Option::as_mut)?;
        if !peer.staged.is_empty() {
            peer.ready = true;
            self.ready.push_back(id);
        }
        // keep_key_fresh (send side)
        if rekey {
            self.send_queued_initiation(now, id, false);
        }
        Some(Transmit {
            dst,
            len,
            peer: Some(id),
        })
    }
}
