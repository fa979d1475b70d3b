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
use crate::keypair::{Keypair, Slot};
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

mod config;
mod external;
mod receive;
mod send;

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
    #[error("a data message, but the data path is external (it must not reach this device)")]
    DataElsewhere,
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
    /// Indices of `peers` that are `None`, to reuse.
    free_ids: Vec<u32>,
    by_key: HashMap<PublicKey, PeerId>,
    /// Our receiver indices: each belongs to one peer's handshake or keypair.
    indices: HashMap<u32, PeerId>,
    allowed_ips: AllowedIps<PeerId>,
    queue: VecDeque<Queued>,
    /// Peers with staged packets and (probably) a usable session.
    ready: VecDeque<PeerId>,
    rng: R,
    mtu: usize,
    /// Data messages are sealed and opened outside (the XDP workers): see `external.rs`.
    external: bool,
    events: VecDeque<Event>,
    /// The static key of the last handshake message's sender, once known (decrypted from an
    /// initiation, or the peer a response answered): for the authentication log.
    last_static: Option<PublicKey>,
}

/// What the owner of an external data path must act on (only in that mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// New keys for `peer` under receiver index `local_index`; read them with
    /// [`Device::keypair`]. Sendable at once if we initiated, else after confirmation.
    SessionEstablished { peer: PeerId, local_index: u32 },
    /// The responder's keypair was confirmed by data from the initiator: now sendable.
    SessionConfirmed { peer: PeerId, local_index: u32 },
    /// The keypair under `local_index` is gone: stop using it and wipe its keys.
    SessionRetired { local_index: u32 },
    /// Send a keepalive to `peer` on its current keypair now.
    Keepalive { peer: PeerId },
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
            free_ids: Vec::new(),
            by_key: HashMap::new(),
            indices: HashMap::new(),
            allowed_ips: AllowedIps::default(),
            queue: VecDeque::new(),
            ready: VecDeque::new(),
            rng,
            mtu: DEFAULT_MTU,
            external: false,
            events: VecDeque::new(),
            last_static: None,
        }
    }

    pub fn public_key(&self) -> &PublicKey {
        self.identity.public()
    }

    /// The interface's private key, for `wg showconf`-style output (treat as secret).
    pub fn private_key(&self) -> &PrivateKey {
        self.identity.private()
    }

    /// Who sent the handshake message [`Self::handle_datagram`] last processed, if that got
    /// far enough to know (an initiation whose static key decrypted, or a response to one of
    /// our handshakes), whether or not it was accepted. Public keys are not secret.
    pub fn handshake_sender(&self) -> Option<&PublicKey> {
        self.last_static.as_ref()
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
            if self.external {
                self.events
                    .push_back(Event::SessionRetired { local_index: i });
            }
        }
    }

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
mod simulation_tests;

#[cfg(test)]
mod external_tests;
