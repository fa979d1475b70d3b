//! The receive half of [`Device`] (the kernel's `receive.c`): the mac/load decision table,
//! consuming handshake messages and cookie replies, and opening data messages.

use super::*;

impl<R: CryptoRngCore> Device<R> {
    /// Processes one datagram from `src`. Data messages are decrypted in place.
    /// `under_load` is whether the caller's handshake queue is congested (see
    /// [`crate::cookie`]); it only affects handshake messages.
    pub fn handle_datagram(
        &mut self,
        now: Now,
        src: SocketAddr,
        datagram: &mut [u8],
        under_load: bool,
    ) -> Result<Received, DropReason> {
        let kind = MessageType::of(datagram).ok_or(DropReason::UnknownType)?;
        if matches!(kind, MessageType::Initiation | MessageType::Response) {
            self.last_static = None;
        }
        match kind {
            // With an external data path, the workers own the receive windows: a data message
            // that reaches this device (the steering missed it) must not be opened here, where
            // a second window would accept what the workers refused, and move the endpoint.
            MessageType::Data if self.external => Err(DropReason::DataElsewhere),
            MessageType::Data => self.handle_data(now, src, datagram),
            MessageType::CookieReply => self.handle_cookie_reply(now, datagram),
            MessageType::Initiation => {
                if datagram.len() != INITIATION_LEN {
                    return Err(DropReason::BadLength);
                }
                if let Some(r) = self.check_macs(now, src, datagram, under_load)? {
                    return Ok(r);
                }
                self.handle_initiation(now, src, datagram)
            }
            MessageType::Response => {
                if datagram.len() != RESPONSE_LEN {
                    return Err(DropReason::BadLength);
                }
                if let Some(r) = self.check_macs(now, src, datagram, under_load)? {
                    return Ok(r);
                }
                self.handle_response(now, src, datagram)
            }
        }
    }

    /// The kernel's decision table on mac state and load. Returns `Some` when the message was
    /// answered with a cookie reply instead of being processed.
    pub(super) fn check_macs(
        &mut self,
        now: Now,
        src: SocketAddr,
        msg: &[u8],
        under_load: bool,
    ) -> Result<Option<Received>, DropReason> {
        match (
            self.checker
                .validate(msg, src, under_load, now.mono, &mut self.rng),
            under_load,
        ) {
            (MacState::InvalidMac, _) => Err(DropReason::InvalidMac1),
            (MacState::ValidMacButNoCookie, false) => Ok(None),
            (MacState::ValidMacWithCookie, _) => {
                if self.limiter.allow(src.ip(), now.mono) {
                    Ok(None)
                } else {
                    Err(DropReason::RateLimited)
                }
            }
            (MacState::ValidMacButNoCookie, true) => {
                // Both handshake messages carry the sender index at bytes 4..8.
                let sender = Initiation::new_checked(msg)
                    .map(|m| m.sender())
                    .or_else(|_| Response::new_checked(msg).map(|m| m.sender()))
                    .map_err(|_| DropReason::BadLength)?;
                let mut bytes = [0u8; INITIATION_LEN];
                let mut reply = CookieReply::new_init(&mut bytes[..COOKIE_REPLY_LEN])
                    .map_err(|_| DropReason::BadLength)?;
                self.checker
                    .create_reply(msg, sender, src, now.mono, &mut self.rng, &mut reply);
                self.queue.push_back(Queued {
                    dst: src,
                    peer: None,
                    len: COOKIE_REPLY_LEN,
                    bytes,
                });
                Ok(Some(Received::CookieReplySent))
            }
        }
    }

    pub(super) fn handle_initiation(
        &mut self,
        now: Now,
        src: SocketAddr,
        datagram: &[u8],
    ) -> Result<Received, DropReason> {
        let msg = Initiation::new_checked(datagram).map_err(|_| DropReason::BadLength)?;
        let partial = Handshake::begin_consume_initiation(&self.identity, &msg)
            .map_err(DropReason::Handshake)?;
        self.last_static = Some(*partial.remote_static());
        let id = *self
            .by_key
            .get(partial.remote_static())
            .ok_or(DropReason::Handshake(HandshakeError::UnknownPeer))?;
        let peer = self
            .peers
            .get_mut(id.0 as usize)
            .and_then(Option::as_mut)
            .ok_or(DropReason::UnknownIndex)?;
        let old_index = peer.handshake.held_index();
        peer.handshake
            .finish_consume_initiation(&self.identity, partial, &msg, now.mono)
            .map_err(DropReason::Handshake)?;
        if let Some(old) = old_index {
            self.indices.remove(&old);
        }
        let index = self.allocate_index(id);
        let mut bytes = [0u8; INITIATION_LEN];
        let peer = self
            .peers
            .get_mut(id.0 as usize)
            .and_then(Option::as_mut)
            .ok_or(DropReason::UnknownIndex)?;
        peer.endpoint = Some(src);
        peer.stats.rx_bytes += INITIATION_LEN as u64;
        let mut resp =
            Response::new_init(&mut bytes[..RESPONSE_LEN]).map_err(|_| DropReason::BadLength)?;
        if let Err(e) = peer
            .handshake
            .create_response(index, &mut self.rng, &mut resp)
        {
            self.indices.remove(&index);
            return Err(DropReason::Handshake(e));
        }
        peer.cookie.add_macs(&mut bytes[..RESPONSE_LEN], now.mono);
        self.begin_session(now, id)?;
        let peer = self
            .peers
            .get_mut(id.0 as usize)
            .and_then(Option::as_mut)
            .ok_or(DropReason::UnknownIndex)?;
        peer.timers.any_authenticated_packet_traversal(now.mono);
        peer.timers.any_authenticated_packet_sent();
        peer.timers.any_authenticated_packet_received();
        peer.stats.tx_bytes += RESPONSE_LEN as u64;
        self.queue.push_back(Queued {
            dst: src,
            peer: Some(id),
            len: RESPONSE_LEN,
            bytes,
        });
        Ok(Received::Initiation { peer: id })
    }

    pub(super) fn handle_response(
        &mut self,
        now: Now,
        src: SocketAddr,
        datagram: &[u8],
    ) -> Result<Received, DropReason> {
        let msg = Response::new_checked(datagram).map_err(|_| DropReason::BadLength)?;
        let id = *self
            .indices
            .get(&msg.receiver())
            .ok_or(DropReason::UnknownIndex)?;
        let peer = self
            .peers
            .get_mut(id.0 as usize)
            .and_then(Option::as_mut)
            .ok_or(DropReason::UnknownIndex)?;
        self.last_static = Some(peer.public_key);
        peer.handshake
            .consume_response(&self.identity, &msg)
            .map_err(DropReason::Handshake)?;
        peer.endpoint = Some(src);
        peer.stats.rx_bytes += RESPONSE_LEN as u64;
        self.begin_session(now, id)?;
        let peer = self
            .peers
            .get_mut(id.0 as usize)
            .and_then(Option::as_mut)
            .ok_or(DropReason::UnknownIndex)?;
        peer.timers.handshake_complete();
        peer.stats.last_handshake = Some(now.unix);
        peer.timers.any_authenticated_packet_received();
        peer.timers.any_authenticated_packet_traversal(now.mono);
        // Confirm the session at once: staged packets, or else a keepalive.
        self.send_keepalive(now, id);
        Ok(Received::Response { peer: id })
    }

    pub(super) fn handle_cookie_reply(
        &mut self,
        now: Now,
        datagram: &[u8],
    ) -> Result<Received, DropReason> {
        let msg = CookieReply::new_checked(datagram).map_err(|_| DropReason::BadLength)?;
        let id = *self
            .indices
            .get(&msg.receiver())
            .ok_or(DropReason::UnknownIndex)?;
        let peer = self.peer_mut(id).ok_or(DropReason::UnknownIndex)?;
        peer.cookie
            .consume_reply(&msg, now.mono)
            .map_err(|_| DropReason::BadCookieReply)?;
        Ok(Received::CookieReply { peer: id })
    }

    pub(super) fn handle_data(
        &mut self,
        now: Now,
        src: SocketAddr,
        datagram: &mut [u8],
    ) -> Result<Received, DropReason> {
        let msg = Data::new_checked(&*datagram).map_err(|_| DropReason::BadLength)?;
        let (receiver, counter) = (msg.receiver(), msg.counter());
        let id = *self
            .indices
            .get(&receiver)
            .ok_or(DropReason::UnknownIndex)?;
        let peer = self
            .peers
            .get_mut(id.0 as usize)
            .and_then(Option::as_mut)
            .ok_or(DropReason::UnknownIndex)?;
        let (slot, keypair) = peer
            .keypairs
            .lookup_mut(receiver)
            .ok_or(DropReason::UnknownIndex)?;
        if !keypair.can_receive(now.mono) {
            return Err(DropReason::KeyExpired);
        }
        let plain_len =
            data::open(keypair.receiving_key(), datagram).map_err(|_| DropReason::DataAuth)?;
        // Only an authenticated counter may move the window (see ReplayWindow's contract).
        if !keypair.accept_counter(counter) {
            return Err(DropReason::Replay);
        }
        self.after_authenticated_data(now, id, slot, src, plain_len);
        if plain_len == 0 {
            return Ok(Received::Keepalive { peer: id });
        }
        let plain = &datagram[DATA_HEADER_LEN..DATA_HEADER_LEN + plain_len];
        let inner_len = wire::inner_packet_len(plain).map_err(|_| DropReason::BadInnerPacket)?;
        let source = wire::source_addr(plain).ok_or(DropReason::BadInnerPacket)?;
        if self.allowed_ips.lookup(source) != Some(id) {
            return Err(DropReason::SourceNotAllowed);
        }
        Ok(Received::Data {
            peer: id,
            range: DATA_HEADER_LEN..DATA_HEADER_LEN + inner_len,
        })
    }

    /// Derives the transport keys of `id`'s completed handshake and installs them (the
    /// kernel's `wg_noise_handshake_begin_session` + `wg_timers_session_derived`).
    fn begin_session(&mut self, now: Now, id: PeerId) -> Result<(), DropReason> {
        let peer = self
            .peers
            .get_mut(id.0 as usize)
            .and_then(Option::as_mut)
            .ok_or(DropReason::UnknownIndex)?;
        let keys = peer
            .handshake
            .begin_session()
            .map_err(DropReason::Handshake)?;
        let local_index = keys.local_index;
        let released = peer.keypairs.insert(Keypair::new(keys, now.mono));
        peer.timers.session_derived(now.mono);
        if self.external {
            self.events.push_back(Event::SessionEstablished {
                peer: id,
                local_index,
            });
        }
        self.release_indices(released.iter());
        Ok(())
    }

    /// Everything that follows an authenticated, fresh data message on keypair `slot` of
    /// `id` (receive.c `wg_packet_consume_data_done`): roaming, key confirmation, the
    /// receive-side rekey, timers. Shared by the local and the external data path.
    pub(super) fn after_authenticated_data(
        &mut self,
        now: Now,
        id: PeerId,
        slot: Slot,
        src: SocketAddr,
        plain_len: usize,
    ) {
        let external = self.external;
        let Some(peer) = self.peers.get_mut(id.0 as usize).and_then(Option::as_mut) else {
            return;
        };
        peer.endpoint = Some(src);
        peer.stats.rx_bytes += (DATA_OVERHEAD + plain_len) as u64;
        let (completed, released) = peer.keypairs.received_with(slot);
        if completed {
            peer.timers.handshake_complete();
            peer.stats.last_handshake = Some(now.unix);
        }
        // keep_key_fresh (receive side): the initiator rekeys shortly before the key expires.
        let lastminute = !peer.timers.sent_lastminute_handshake
            && peer.keypairs.current().is_some_and(|k| {
                k.sending_valid
                    && k.i_am_the_initiator
                    && now.mono.has_expired(
                        k.birth,
                        REJECT_AFTER_TIME - KEEPALIVE_TIMEOUT - REKEY_TIMEOUT,
                    )
            });
        if lastminute {
            peer.timers.sent_lastminute_handshake = true;
        }
        peer.timers.any_authenticated_packet_received();
        peer.timers.any_authenticated_packet_traversal(now.mono);
        if plain_len > 0 {
            peer.timers.data_received(now.mono);
        }
        let confirmed = peer.keypairs.current().map(|k| k.local_index());
        self.release_indices(released.iter());
        if completed {
            if let (true, Some(local_index)) = (external, confirmed) {
                self.events.push_back(Event::SessionConfirmed {
                    peer: id,
                    local_index,
                });
            }
            self.flush_staged(now, id);
        }
        if lastminute {
            self.send_queued_initiation(now, id, false);
        }
    }
}
