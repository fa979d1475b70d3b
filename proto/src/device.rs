//! The local WireGuard interface as a sans-IO state machine (the kernel's `wg_device` with the
//! send/receive logic of `send.c` and `receive.c`).
//!
//! Input: datagrams via [`Device::handle_datagram`], plaintext packets via [`Device::send`],
//! time via [`Device::handle_timeout`]. Output: datagrams via [`Device::poll_transmit`] into
//! the caller's buffer, and the next deadline via [`Device::poll_timeout`]. Every call takes
//! `now`; the device owns its randomness source, injected at construction.
//!
//! This single-threaded path serves the control process, the fallback backend and the tests;
//! the XDP data path takes the keys from here and seals/opens in batches itself.

use crate::allowedips::{AllowedIps, Prefix};
use crate::constants::{
    KEEPALIVE_TIMEOUT, MAX_STAGED_PACKETS, MAX_TIMER_HANDSHAKES, REJECT_AFTER_TIME,
    REKEY_AFTER_MESSAGES, REKEY_AFTER_TIME, REKEY_TIMEOUT, REKEY_TIMEOUT_JITTER_MAX,
};
use crate::cookie::{CookieChecker, MacState};
use crate::data;
use crate::keypair::Keypair;
use crate::keys::{PresharedKey, PrivateKey, PublicKey};
use crate::messages::{
    CookieReply, Data, Initiation, MessageType, Response, COOKIE_REPLY_LEN, DATA_HEADER_LEN,
    DATA_OVERHEAD, INITIATION_LEN, RESPONSE_LEN,
};
use crate::noise::{Handshake, HandshakeError, StaticIdentity};
use crate::ratelimiter::RateLimiter;
use crate::time::{Instant, Now};
use crate::timers::TimerKind;
use crate::wire;
use rand_core::CryptoRngCore;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::time::Duration;

pub use crate::peer::{Peer, PeerId, PeerStats};

/// Why an incoming datagram or an outgoing packet was dropped. `Copy`, one counter each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum DropReason {
    #[error("unknown message type or reserved bits set")]
    UnknownType,
    #[error("message has the wrong length for its type")]
    BadLength,
    #[error("mac1 invalid")]
    InvalidMac1,
    #[error("rate limited under load")]
    RateLimited,
    #[error("handshake refused: {0}")]
    Handshake(HandshakeError),
    #[error("no peer has this receiver index")]
    UnknownIndex,
    #[error("cookie reply not expected or not authentic")]
    BadCookieReply,
    #[error("keypair expired")]
    KeyExpired,
    #[error("data message failed authentication")]
    DataAuth,
    #[error("counter replayed or outside the window")]
    Replay,
    #[error("decrypted packet is not a valid IPv4/IPv6 packet")]
    BadInnerPacket,
    #[error("inner source address not in the peer's allowed IPs")]
    SourceNotAllowed,
    #[error("no peer's allowed IPs contain the destination")]
    NoRoute,
    #[error("too many packets waiting for a handshake")]
    StagedQueueFull,
}

/// What an accepted datagram was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// An initiation was accepted; the response is queued for [`Device::poll_transmit`].
    Initiation { peer: PeerId },
    /// Our initiation was answered: a new session is in use.
    Response { peer: PeerId },
    /// A cookie for our next handshake message to this peer.
    CookieReply { peer: PeerId },
    /// Under load, the sender must prove its address first: a cookie reply is queued.
    CookieReplySent,
    /// A keepalive (empty data message).
    Keepalive { peer: PeerId },
    /// A data packet: the inner IP packet is `datagram[range]`, decrypted in place.
    Data { peer: PeerId, range: Range<usize> },
}

/// A datagram written by [`Device::poll_transmit`]: `out[..len]` goes to `dst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit {
    pub dst: SocketAddr,
    pub len: usize,
    pub peer: Option<PeerId>,
}

/// Errors of configuration calls.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceError {
    #[error("peer {0} is already configured")]
    DuplicatePeer(PublicKey),
    #[error("peer {0} has the interface's own public key")]
    OwnKey(PublicKey),
    #[error("no such peer")]
    NoSuchPeer,
}

/// A handshake message waiting to be sent: the largest is an initiation.
struct Queued {
    dst: SocketAddr,
    peer: Option<PeerId>,
    len: usize,
    bytes: [u8; INITIATION_LEN],
}

/// How a peer is configured (the subset of `wg set` the protocol needs).
#[derive(Debug, Clone, Default)]
pub struct PeerConfig {
    pub public_key: Option<PublicKey>,
    pub preshared_key: Option<PresharedKey>,
    pub endpoint: Option<SocketAddr>,
    pub allowed_ips: Vec<Prefix>,
    pub persistent_keepalive: Option<Duration>,
}

pub struct Device<R: CryptoRngCore> {
    identity: StaticIdentity,
    checker: CookieChecker,
    limiter: RateLimiter,
    peers: Vec<Option<Peer>>,
    by_key: HashMap<PublicKey, PeerId>,
    /// Our receiver indices: each belongs to one peer's handshake or keypair.
    indices: HashMap<u32, PeerId>,
    allowed_ips: AllowedIps<PeerId>,
    queue: VecDeque<Queued>,
    /// Peers with staged packets and (probably) a usable session.
    ready: VecDeque<PeerId>,
    rng: R,
    mtu: usize,
}

impl<R: CryptoRngCore> fmt::Debug for Device<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Device")
            .field("public_key", self.identity.public())
            .field("peers", &self.by_key.len())
            .finish_non_exhaustive()
    }
}

/// The default MTU of a WireGuard interface, used to cap padding.
pub const DEFAULT_MTU: usize = 1420;

impl<R: CryptoRngCore> Device<R> {
    pub fn new(private_key: PrivateKey, rng: R) -> Self {
        let identity = StaticIdentity::new(private_key);
        Self {
            checker: CookieChecker::new(identity.public()),
            identity,
            limiter: RateLimiter::default(),
            peers: Vec::new(),
            by_key: HashMap::new(),
            indices: HashMap::new(),
            allowed_ips: AllowedIps::default(),
            queue: VecDeque::new(),
            ready: VecDeque::new(),
            rng,
            mtu: DEFAULT_MTU,
        }
    }

    pub fn public_key(&self) -> &PublicKey {
        self.identity.public()
    }

    pub fn set_mtu(&mut self, mtu: usize) {
        self.mtu = mtu;
    }

    pub fn peer(&self, id: PeerId) -> Option<&Peer> {
        self.peers.get(id.0 as usize).and_then(Option::as_ref)
    }

    fn peer_mut(&mut self, id: PeerId) -> Option<&mut Peer> {
        self.peers.get_mut(id.0 as usize).and_then(Option::as_mut)
    }

    pub fn peer_by_key(&self, key: &PublicKey) -> Option<PeerId> {
        self.by_key.get(key).copied()
    }

    pub fn peers(&self) -> impl Iterator<Item = (PeerId, &Peer)> {
        self.peers
            .iter()
            .enumerate()
            .filter_map(|(i, p)| Some((PeerId(i as u32), p.as_ref()?)))
    }

    pub fn allowed_ips(&self) -> &AllowedIps<PeerId> {
        &self.allowed_ips
    }

    /// Adds a peer. With a persistent keepalive it starts a handshake at once, as the kernel
    /// does when such a peer is configured on a running interface.
    pub fn add_peer(
        &mut self,
        now: Now,
        public_key: PublicKey,
        config: PeerConfig,
    ) -> Result<PeerId, DeviceError> {
        if self.by_key.contains_key(&public_key) {
            return Err(DeviceError::DuplicatePeer(public_key));
        }
        if public_key.ct_eq(self.identity.public()) {
            return Err(DeviceError::OwnKey(public_key));
        }
        let peer = Peer::new(
            &self.identity,
            public_key,
            config.preshared_key.unwrap_or_default(),
            config.endpoint,
            config.persistent_keepalive.filter(|d| !d.is_zero()),
        );
        let id = match self.peers.iter().position(Option::is_none) {
            Some(i) => {
                self.peers[i] = Some(peer);
                PeerId(i as u32)
            }
            None => {
                self.peers.push(Some(peer));
                PeerId((self.peers.len() - 1) as u32)
            }
        };
        self.by_key.insert(public_key, id);
        for prefix in config.allowed_ips {
            self.allowed_ips.insert(prefix, id);
        }
        if config.persistent_keepalive.is_some_and(|d| !d.is_zero()) {
            self.send_keepalive(now, id);
        }
        Ok(id)
    }

    /// Removes a peer: its sessions, indices, routes and queued packets are gone at once.
    pub fn remove_peer(&mut self, id: PeerId) -> Result<(), DeviceError> {
        let mut peer = self
            .peers
            .get_mut(id.0 as usize)
            .and_then(Option::take)
            .ok_or(DeviceError::NoSuchPeer)?;
        if let Some(i) = peer.handshake.held_index() {
            self.indices.remove(&i);
        }
        for i in peer.keypairs.clear().iter() {
            self.indices.remove(&i);
        }
        peer.handshake.clear();
        self.by_key.remove(&peer.public_key);
        self.allowed_ips.remove_by_peer(id);
        self.queue.retain(|q| q.peer != Some(id));
        self.ready.retain(|p| *p != id);
        Ok(())
    }

    pub fn set_endpoint(&mut self, id: PeerId, endpoint: SocketAddr) -> Result<(), DeviceError> {
        self.peer_mut(id).ok_or(DeviceError::NoSuchPeer)?.endpoint = Some(endpoint);
        Ok(())
    }

    pub fn add_allowed_ip(&mut self, id: PeerId, prefix: Prefix) -> Result<(), DeviceError> {
        self.peer(id).ok_or(DeviceError::NoSuchPeer)?;
        self.allowed_ips.insert(prefix, id);
        Ok(())
    }

    fn jitter(&mut self) -> Duration {
        let max = u64::try_from(REKEY_TIMEOUT_JITTER_MAX.as_millis()).unwrap_or(333) + 1;
        Duration::from_millis(self.rng.next_u64() % max)
    }

    /// A fresh random receiver index that collides with no live one.
    fn allocate_index(&mut self, id: PeerId) -> u32 {
        loop {
            let i = self.rng.next_u32();
            if let std::collections::hash_map::Entry::Vacant(e) = self.indices.entry(i) {
                e.insert(id);
                return i;
            }
        }
    }

    fn release_indices(&mut self, released: impl Iterator<Item = u32>) {
        for i in released {
            self.indices.remove(&i);
        }
    }

    // ---- sending -------------------------------------------------------------------------

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
    fn send_keepalive(&mut self, now: Now, id: PeerId) {
        let Some(peer) = self.peer_mut(id) else {
            return;
        };
        if peer.staged.is_empty() {
            peer.staged.push_back(Vec::new());
        }
        self.flush_staged(now, id);
    }

    /// Marks the peer ready to send if it has a usable current keypair, else starts a handshake.
    fn flush_staged(&mut self, now: Now, id: PeerId) {
        let Some(peer) = self.peer_mut(id) else {
            return;
        };
        if peer.staged.is_empty() {
            return;
        }
        let usable = peer.keypairs.current().is_some_and(|k| {
            k.sending_valid
                && !now.mono.has_expired(k.birth, REJECT_AFTER_TIME)
                && k.sending_counter < crate::constants::REJECT_AFTER_MESSAGES
        });
        if usable {
            if !peer.ready {
                peer.ready = true;
                self.ready.push_back(id);
            }
        } else {
            self.send_queued_initiation(now, id, false);
        }
    }

    /// Starts a handshake with `id` now (subject to the one-per-REKEY_TIMEOUT limit).
    pub fn initiate_handshake(&mut self, now: Now, id: PeerId) {
        self.send_queued_initiation(now, id, false);
    }

    /// `wg_packet_send_queued_handshake_initiation` + `wg_packet_send_handshake_initiation`.
    fn send_queued_initiation(&mut self, now: Now, id: PeerId, is_retry: bool) {
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
    fn transmit_staged(&mut self, now: Now, id: PeerId, out: &mut [u8]) -> Option<Transmit> {
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

    // ---- receiving -----------------------------------------------------------------------

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
        match MessageType::of(datagram).ok_or(DropReason::UnknownType)? {
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
    fn check_macs(
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

    fn handle_initiation(
        &mut self,
        now: Now,
        src: SocketAddr,
        datagram: &[u8],
    ) -> Result<Received, DropReason> {
        let msg = Initiation::new_checked(datagram).map_err(|_| DropReason::BadLength)?;
        let partial = Handshake::begin_consume_initiation(&self.identity, &msg)
            .map_err(DropReason::Handshake)?;
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
            .finish_consume_initiation(partial, &msg, now.mono)
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
        let keys = peer
            .handshake
            .begin_session()
            .map_err(DropReason::Handshake)?;
        let released = peer.keypairs.insert(Keypair::new(keys, now.mono));
        peer.timers.session_derived(now.mono);
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
        self.release_indices(released.iter());
        Ok(Received::Initiation { peer: id })
    }

    fn handle_response(
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
        peer.handshake
            .consume_response(&self.identity, &msg)
            .map_err(DropReason::Handshake)?;
        peer.endpoint = Some(src);
        peer.stats.rx_bytes += RESPONSE_LEN as u64;
        let keys = peer
            .handshake
            .begin_session()
            .map_err(DropReason::Handshake)?;
        let released = peer.keypairs.insert(Keypair::new(keys, now.mono));
        peer.timers.session_derived(now.mono);
        peer.timers.handshake_complete();
        peer.stats.last_handshake = Some(now.unix);
        peer.timers.any_authenticated_packet_received();
        peer.timers.any_authenticated_packet_traversal(now.mono);
        self.release_indices(released.iter());
        // Confirm the session at once: staged packets, or else a keepalive.
        self.send_keepalive(now, id);
        Ok(Received::Response { peer: id })
    }

    fn handle_cookie_reply(&mut self, now: Now, datagram: &[u8]) -> Result<Received, DropReason> {
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

    fn handle_data(
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
        self.release_indices(released.iter());
        if completed {
            self.flush_staged(now, id);
        }
        if lastminute {
            self.send_queued_initiation(now, id, false);
        }
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

    // ---- timers --------------------------------------------------------------------------

    /// The earliest instant at which [`Self::handle_timeout`] has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.peers
            .iter()
            .flatten()
            .filter_map(Peer::next_deadline)
            .min()
    }

    /// Runs every timer that has expired at `now`.
    pub fn handle_timeout(&mut self, now: Now) {
        for i in 0..self.peers.len() {
            let id = PeerId(i as u32);
            while let Some(kind) = self
                .peer_mut(id)
                .and_then(|p| p.timers.take_expired(now.mono))
            {
                self.on_timer(now, id, kind);
            }
        }
    }

    fn on_timer(&mut self, now: Now, id: PeerId, kind: TimerKind) {
        let Some(peer) = self.peer_mut(id) else {
            return;
        };
        match kind {
            TimerKind::RetransmitHandshake => {
                if peer.timers.handshake_attempts > MAX_TIMER_HANDSHAKES {
                    // Give up: drop what waited for the session and wipe any partial exchange
                    // later.
                    peer.timers.send_keepalive = None;
                    peer.staged.clear();
                    if peer.timers.zero_key_material.is_none() {
                        peer.timers.zero_key_material = Some(now.mono + REJECT_AFTER_TIME * 3);
                    }
                } else {
                    peer.timers.handshake_attempts += 1;
                    // Allow the retry through the REKEY_TIMEOUT limit: the timer is that limit.
                    peer.last_sent_handshake = None;
                    self.send_queued_initiation(now, id, true);
                }
            }
            TimerKind::SendKeepalive => {
                let again = std::mem::take(&mut peer.timers.need_another_keepalive);
                self.send_keepalive(now, id);
                if again {
                    if let Some(peer) = self.peer_mut(id) {
                        peer.timers.send_keepalive = Some(now.mono + KEEPALIVE_TIMEOUT);
                    }
                }
            }
            TimerKind::NewHandshake => self.send_queued_initiation(now, id, false),
            TimerKind::ZeroKeyMaterial => {
                if let Some(i) = peer.handshake.held_index() {
                    self.indices.remove(&i);
                }
                let Some(peer) = self.peer_mut(id) else {
                    return;
                };
                peer.handshake.zero();
                let released = peer.keypairs.clear();
                self.release_indices(released.iter());
            }
            TimerKind::PersistentKeepalive => {
                if peer.timers.persistent_keepalive_interval.is_some() {
                    self.send_keepalive(now, id);
                }
            }
        }
    }
}

#[cfg(test)]
impl<R: CryptoRngCore> Device<R> {
    pub(crate) fn peer_mut_for_test(&mut self, id: PeerId) -> &mut Peer {
        self.peer_mut(id).expect("peer exists")
    }

    pub(crate) fn indices_len_for_test(&self) -> usize {
        self.indices.len()
    }
}

#[cfg(test)]
#[path = "simulation_tests.rs"]
mod simulation_tests;
