//! Failing over from another gateway of a cluster (docs/scale-out.md): a peer whose gateway
//! died keeps sending on the session it held, and the router now brings those data messages
//! here, where no session holds their receiver index. The peer itself starts a new handshake
//! only after KEEPALIVE_TIMEOUT + REKEY_TIMEOUT (15 s). If the source is a known peer's
//! endpoint (the cluster shares each peer's endpoint through etcd, `wgxdp sync`), this gateway
//! starts the handshake itself instead, within a round trip.
//!
//! The data message is unauthenticated, so what it can make control do is bounded: workers
//! report a source at most once a second; control looks it up in O(1) (an index of endpoints
//! rebuilt at most once a second), sends at most [`PER_SECOND`] initiations a second for such
//! reports in all, and a peer's own handshake rate limit (REKEY_TIMEOUT) holds as for any
//! initiation. A forged source can make the gateway send a known peer a handshake initiation
//! it did not ask for, which that peer answers or ignores: nothing more.

use super::Control;
use proto::device::PeerId;
use proto::time::Instant;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

/// Initiations a second at most that unknown-index reports may start.
pub const PER_SECOND: u32 = 100;
/// How stale the endpoint index may be before a miss rebuilds it.
const REBUILD_AFTER: Duration = Duration::from_secs(1);

/// Which peer each endpoint belongs to, as of `built`, and the initiation budget.
#[derive(Debug, Default)]
pub(super) struct Failover {
    endpoints: HashMap<SocketAddr, PeerId>,
    built: Option<Instant>,
    window: Option<Instant>,
    in_window: u32,
    /// Initiations started for unknown indices (a metric, and for the tests).
    pub started: u64,
}

impl Control {
    /// A worker saw data for an unknown index from `from`.
    pub(super) fn unknown_index(&mut self, from: SocketAddr) {
        let now = self.now();
        let Some(id) = self.peer_at_endpoint(from, now.mono) else {
            return;
        };
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
        let sent = |c: &Control| c.device.peer(id).and_then(|p| p.last_sent_handshake());
        let before = sent(self);
        self.device.external_needs_session(now, id);
        // Not if the peer's own rate limit held it back.
        if sent(self) != before {
            self.failover.started += 1;
            tracing::debug!(%from, "data for an unknown index from a peer's endpoint: handshaking");
        }
    }

    /// The peer whose endpoint is `from`, checked against the peer itself (the index may be
    /// up to [`REBUILD_AFTER`] old).
    fn peer_at_endpoint(&mut self, from: SocketAddr, now: Instant) -> Option<PeerId> {
        let holds =
            |c: &Control, id: PeerId| c.device.peer(id).and_then(|p| p.endpoint()) == Some(from);
        if let Some(&id) = self.failover.endpoints.get(&from) {
            if holds(self, id) {
                return Some(id);
            }
        }
        if self
            .failover
            .built
            .is_some_and(|b| !now.has_expired(b, REBUILD_AFTER))
        {
            return None;
        }
        let endpoints = self
            .device
            .peers()
            .filter_map(|(id, p)| Some((p.endpoint()?, id)))
            .collect();
        self.failover.endpoints = endpoints;
        self.failover.built = Some(now);
        let id = *self.failover.endpoints.get(&from)?;
        holds(self, id).then_some(id)
    }
}
