//! Failing over from another gateway of a cluster (docs/scale-out.md): a peer whose gateway
//! died keeps sending on the session it held, and the router now brings those data messages
//! here, where no session holds their receiver index. The peer itself starts a new handshake
//! only after KEEPALIVE_TIMEOUT + REKEY_TIMEOUT (15 s). If the source is where the cluster
//! last saw a peer (`wgxdp sync` hands those endpoints over as `wgxdp_failover_endpoint`
//! hints), this gateway starts the handshake itself instead, within a round trip.
//!
//! A hint is not the peer's endpoint here: nothing is sent to a peer because of it, so a
//! gateway the peer is not on never sends it anything (its keepalive timers included).
//!
//! The data message is unauthenticated, so what it can make control do is bounded: workers
//! report a source at most once a second; control looks it up in O(1) (the hints, one per
//! peer, kept in step as they change); it acts only for a peer with no usable session here
//! (a peer that is on this gateway is not failing over to it); it sends one initiation, not
//! retransmitted, at most one per REKEY_TIMEOUT per peer and [`PER_SECOND`] in all.

use super::Control;
use proto::device::PeerId;
use proto::time::Instant;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

/// Initiations a second at most that unknown-index reports may start.
pub const PER_SECOND: u32 = 100;

/// Where the cluster last saw each peer, and the initiation budget.
#[derive(Debug, Default)]
pub(super) struct Failover {
    by_endpoint: HashMap<SocketAddr, PeerId>,
    by_peer: HashMap<PeerId, SocketAddr>,
    window: Option<Instant>,
    in_window: u32,
    /// Initiations sent for peers failing over (a metric).
    pub started: u64,
}

impl Failover {
    /// Peer `id` was last seen at `e` (by the gateway of the cluster it is on).
    pub fn hint(&mut self, id: PeerId, e: SocketAddr) {
        self.forget(id);
        self.by_peer.insert(id, e);
        self.by_endpoint.insert(e, id);
    }

    /// Peer `id` is gone.
    pub fn forget(&mut self, id: PeerId) {
        if let Some(old) = self.by_peer.remove(&id) {
            if self.by_endpoint.get(&old) == Some(&id) {
                self.by_endpoint.remove(&old);
            }
        }
    }
}

impl Control {
    /// A worker saw data for an unknown index from `from`.
    pub(super) fn unknown_index(&mut self, from: SocketAddr) {
        let now = self.now();
        let Some(&id) = self.failover.by_endpoint.get(&from) else {
            return;
        };
        // A peer with a usable session here is on this gateway: the message is somebody
        // else's (or forged), and the peer's own timers look after its sessions.
        if self.sessions.current(id).is_some() {
            return;
        }
        let f = &mut self.failover;
        if f.window
            .is_none_or(|w| now.mono.has_expired(w, Duration::from_secs(1)))
        {
            f.window = Some(now.mono);
            f.in_window = 0;
        }
        if f.in_window >= PER_SECOND {
            return;
        }
        f.in_window += 1;
        // The handshake goes to where the peer is now.
        if self.device.peer(id).and_then(|p| p.endpoint()) != Some(from) {
            let _ = self.device.set_endpoint(id, from);
            self.publish_peer(id);
        }
        if self.device.external_failover_initiation(now, id) {
            self.failover.started += 1;
            tracing::debug!(%from, "data for an unknown index from a peer of the cluster: handshaking");
        }
    }
}
