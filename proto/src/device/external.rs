//! The external data path: the XDP workers seal and open data messages themselves, with keys
//! this device derives, and report what they did. The device keeps doing everything else —
//! handshakes, cookies, key rotation, timers — driven by those reports, and tells its owner
//! what to publish through [`Event`]s.
//!
//! Contract with the owner (the control process): after [`Device::set_external_data_path`],
//! drain [`Device::poll_event`] after every call; report every authenticated data message or
//! keepalive the workers received with [`Device::external_data_received`] and every one they
//! sent with [`Device::external_data_sent`] (a summary per peer per polling interval is
//! enough: the timers have second granularity). Handshake messages still go through
//! [`Device::handle_datagram`] and [`Device::poll_transmit`].

use super::*;
use crate::constants::{REKEY_AFTER_MESSAGES, REKEY_AFTER_TIME};

impl<R: CryptoRngCore> Device<R> {
    /// Switches data messages to the external path: no data is sealed or opened here, and
    /// keepalives become [`Event::Keepalive`].
    pub fn set_external_data_path(&mut self, on: bool) {
        self.external = on;
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The keypair under our receiver index `local_index`, for publishing its keys.
    pub fn keypair(&self, local_index: u32) -> Option<(PeerId, &Keypair)> {
        let id = *self.indices.get(&local_index)?;
        let kp = self.peer(id)?.keypairs.get(local_index)?;
        Some((id, kp))
    }

    /// A worker received an authenticated, fresh data message (`plain_len` bytes of padded
    /// plaintext, 0 for a keepalive) from `src` on our receiver index `local_index`.
    pub fn external_data_received(
        &mut self,
        now: Now,
        local_index: u32,
        src: SocketAddr,
        plain_len: usize,
    ) -> Result<PeerId, DropReason> {
        let id = *self
            .indices
            .get(&local_index)
            .ok_or(DropReason::UnknownIndex)?;
        let peer = self
            .peers
            .get_mut(id.0 as usize)
            .and_then(Option::as_mut)
            .ok_or(DropReason::UnknownIndex)?;
        let (slot, _) = peer
            .keypairs
            .lookup_mut(local_index)
            .ok_or(DropReason::UnknownIndex)?;
        self.after_authenticated_data(now, id, slot, src, plain_len);
        Ok(id)
    }

    /// A worker (or the owner, for a keepalive) sent a data message to `id` on its current
    /// keypair; `next_counter` is that keypair's sending counter afterwards.
    pub fn external_data_sent(
        &mut self,
        now: Now,
        id: PeerId,
        keepalive: bool,
        next_counter: u64,
        len: usize,
    ) {
        let jitter = self.jitter();
        let Some(peer) = self.peers.get_mut(id.0 as usize).and_then(Option::as_mut) else {
            return;
        };
        peer.stats.tx_bytes += len as u64;
        peer.timers.any_authenticated_packet_traversal(now.mono);
        peer.timers.any_authenticated_packet_sent();
        if !keepalive {
            peer.timers.data_sent(now.mono, jitter);
        }
        // keep_key_fresh (send side), with the workers' counter; and, as the kernel's send
        // path does, a keypair past REJECT_AFTER_TIME (or out of counters) needs a new
        // handshake whichever side made it.
        let rekey = peer.keypairs.current().is_some_and(|k| {
            k.sending_valid
                && (next_counter > REKEY_AFTER_MESSAGES
                    || (k.i_am_the_initiator && now.mono.has_expired(k.birth, REKEY_AFTER_TIME)))
        });
        let unusable = peer.keypairs.current().is_none_or(|k| {
            now.mono
                .has_expired(k.birth, crate::constants::REJECT_AFTER_TIME)
                || next_counter >= crate::constants::REJECT_AFTER_MESSAGES
        });
        if rekey || unusable {
            self.send_queued_initiation(now, id, false);
        }
    }

    /// Workers had traffic for `id` but no usable session: start a handshake (at most one per
    /// REKEY_TIMEOUT), as the kernel does when it stages packets.
    pub fn external_needs_session(&mut self, now: Now, id: PeerId) {
        self.send_queued_initiation(now, id, false);
    }

    /// A peer's data for a session this device does not hold came from where it is believed
    /// to be (it failed over from another gateway of a cluster): one initiation (at most one
    /// per REKEY_TIMEOUT), not retransmitted. The trigger is unauthenticated, so it gets no
    /// more than one message per trigger; a peer that does not answer starts the handshake
    /// itself, by its own timers. Returns whether an initiation was sent.
    pub fn external_failover_initiation(&mut self, now: Now, id: PeerId) -> bool {
        let before = self.peer(id).and_then(|p| p.last_sent_handshake);
        self.send_queued_initiation(now, id, false);
        let Some(peer) = self.peer_mut(id) else {
            return false;
        };
        if peer.last_sent_handshake == before {
            return false;
        }
        peer.timers.retransmit_handshake = None;
        true
    }
}
