//! One remote peer's protocol state: its handshake, keypairs, timers, cookie, endpoint, the
//! packets waiting for a session, and counters (the kernel's `struct wg_peer`).

use crate::cookie::Cookie;
use crate::keypair::Keypairs;
use crate::keys::{PresharedKey, PublicKey};
use crate::noise::Handshake;
use crate::time::Instant;
use crate::timers::Timers;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

/// A handle to a peer of a [`crate::device::Device`]. Stable while the peer exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(pub u32);

/// Counters reported by `wg show`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerStats {
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    /// Wall-clock time (since the Unix epoch) of the last completed handshake.
    pub last_handshake: Option<Duration>,
}

#[derive(Debug)]
pub struct Peer {
    pub(crate) public_key: PublicKey,
    pub(crate) handshake: Handshake,
    pub(crate) keypairs: Keypairs,
    pub(crate) timers: Timers,
    pub(crate) cookie: Cookie,
    pub(crate) endpoint: Option<SocketAddr>,
    /// Plaintext packets waiting for a usable session; an empty one is a keepalive.
    pub(crate) staged: VecDeque<Vec<u8>>,
    pub(crate) last_sent_handshake: Option<Instant>,
    pub(crate) stats: PeerStats,
    /// Already queued in the device's list of peers with packets to send.
    pub(crate) ready: bool,
}

impl Peer {
    pub(crate) fn new(
        public_key: PublicKey,
        psk: PresharedKey,
        endpoint: Option<SocketAddr>,
        persistent_keepalive: Option<Duration>,
    ) -> Self {
        let timers = Timers {
            persistent_keepalive_interval: persistent_keepalive,
            ..Timers::default()
        };
        Self {
            public_key,
            handshake: Handshake::new(public_key, psk),
            keypairs: Keypairs::default(),
            timers,
            cookie: Cookie::new(&public_key),
            endpoint,
            staged: VecDeque::new(),
            last_sent_handshake: None,
            stats: PeerStats::default(),
            ready: false,
        }
    }

    pub fn public_key(&self) -> &PublicKey {
        &self.public_key
    }

    /// The pre-shared key (all zeros when none is configured). Secret.
    pub fn preshared_key(&self) -> &PresharedKey {
        self.handshake.preshared_key()
    }

    pub fn endpoint(&self) -> Option<SocketAddr> {
        self.endpoint
    }

    pub fn stats(&self) -> PeerStats {
        self.stats
    }

    pub fn keypairs(&self) -> &Keypairs {
        &self.keypairs
    }

    pub fn persistent_keepalive(&self) -> Option<Duration> {
        self.timers.persistent_keepalive_interval
    }

    pub fn staged_len(&self) -> usize {
        self.staged.len()
    }

    /// Whether a handshake is in flight and being retransmitted.
    pub fn handshake_pending(&self) -> bool {
        self.timers.retransmit_handshake.is_some()
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.timers.next_deadline()
    }
}
