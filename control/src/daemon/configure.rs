//! Applying `set=1` requests (what `wg set`, `wg setconf`, `wg addconf` and `wg syncconf`
//! send) to the running gateway, with wireguard-go's semantics.
//!
//! Everything that can fail is checked before anything changes (the request was parsed
//! whole; room for new peers and prefixes; binding a new listen port; the fwmark), so a
//! refused request leaves the gateway as it was. Then the changes are applied in request
//! order, and the workers see them in one publication: peer records at once, the allowed-IPs
//! list once per request (a `wg setconf` of 100k peers is one list, not 100k).
//!
//! A removed peer, or one whose key changed (which `wg` expresses as remove + add), loses its
//! sessions before the reply is sent: its traffic stops at once.

use super::{lanes, Control};
use crate::uapi::set::{
    error, DeviceOp, Disposition, Errno, PeerChange, PeerOp, SetRequest, UapiError,
};
use crate::uapi::{format_get, Op};
use proto::device::{PeerConfig, PeerId};
use proto::keys::PublicKey;
use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// The longest a `set=1` reply waits for the data path to apply a change of allowed IPs.
pub(crate) const APPLY_WAIT: Duration = Duration::from_secs(5);

impl Control {
    /// Answers every request the UAPI thread has waiting. A change of allowed IPs is
    /// answered once the data path holds it (or after [`APPLY_WAIT`]), so that, as with the
    /// kernel, traffic follows the new table when `wg set` returns; control keeps running
    /// meanwhile.
    pub(crate) fn serve_uapi(&mut self) {
        let synced = self.routes.synced(&self.region);
        let now = std::time::Instant::now();
        while let Some(pos) = self.waiting.iter().position(|(_, d)| synced || *d <= now) {
            let (req, _) = self.waiting.swap_remove(pos);
            req.answer(Ok(String::new()));
        }
        while let Some(req) = self.uapi.as_ref().and_then(|u| u.poll()) {
            let answer = match &req.op {
                Op::Get => Ok(format_get(&self.view())
                    .trim_end_matches("errno=0\n\n")
                    .to_string()),
                Op::Set(set) => {
                    let r = self.apply(set);
                    if r.is_ok() && !self.routes.synced(&self.region) && self.data_path_running() {
                        self.waiting.push((req, now + APPLY_WAIT));
                        continue;
                    }
                    r.map(|()| String::new())
                }
            };
            req.answer(answer);
        }
    }

    /// Whether a data path is attached and running (a worker's heartbeat in the last second).
    fn data_path_running(&self) -> bool {
        let now = self.clock.region_ns();
        (0..self.region.layout().workers).any(|w| {
            self.region.worker_stats(w).is_some_and(|s| {
                let hb = s.heartbeat_ns.load(Ordering::Relaxed);
                hb != 0 && now.saturating_sub(hb) < 1_000_000_000
            })
        })
    }

    /// Applies one `set=1` request, all or nothing.
    pub fn apply(&mut self, req: &SetRequest) -> Result<(), UapiError> {
        self.check_room(req)?;
        let mut new_socket = self.prepare_socket(req)?;
        let now = self.now();
        let mut touched: HashSet<PeerId> = HashSet::new();
        let mut prefixes_changed = false;
        for op in &req.device {
            match op {
                DeviceOp::PrivateKey(k) => {
                    if let Some(gone) = self.device.set_private_key(k.clone()) {
                        self.destroy_peer(gone);
                        prefixes_changed = true;
                    }
                    // Every session was derived under the old key: the retire events wipe
                    // them; peers re-handshake when traffic asks for it.
                    self.drain_events();
                    touched.extend(self.peers.ids());
                }
                DeviceOp::ListenPort(_) => {
                    if let Some(s) = new_socket.take() {
                        self.socket = s.main;
                        self.lane = s.lane;
                        let port = self.socket.local_addr().map_or(0, |a| a.port());
                        self.region
                            .header()
                            .listen_port
                            .store(u64::from(port), Ordering::Relaxed);
                    }
                }
                DeviceOp::Fwmark(m) => self.fwmark = *m,
                DeviceOp::ReplacePeers => {
                    let all: Vec<PeerId> = self.peers.ids().collect();
                    for id in all {
                        self.destroy_peer(id);
                    }
                    prefixes_changed = true;
                }
            }
        }
        for change in &req.peers {
            prefixes_changed |= self.apply_peer(now, change, &mut touched);
        }
        if prefixes_changed {
            self.publish_prefixes();
        }
        for id in touched {
            self.publish_peer(id);
        }
        self.drain_events();
        self.flush();
        Ok(())
    }

    /// One peer's changes; returns whether its prefixes changed.
    fn apply_peer(
        &mut self,
        now: proto::time::Now,
        change: &PeerChange,
        touched: &mut HashSet<PeerId>,
    ) -> bool {
        let existing = self.device.peer_by_key(&change.public_key);
        let own = *self.device.public_key();
        let id = match (change.disposition(&own, existing.is_some()), existing) {
            (Disposition::Ignore, _) | (Disposition::Remove, None) => return false,
            (Disposition::Remove, Some(id)) => {
                self.destroy_peer(id);
                touched.remove(&id);
                return true;
            }
            (Disposition::Apply { .. }, Some(id)) => id,
            (Disposition::Apply { .. }, None) => {
                let pc = PeerConfig {
                    public_key: Some(change.public_key),
                    ..PeerConfig::default()
                };
                match self.create_peer(now, pc, [], None) {
                    Ok(id) => id,
                    // check_room made sure there is room; nothing else can refuse a new peer.
                    Err(e) => {
                        tracing::error!(
                            peer = %crate::short_key(&change.public_key),
                            "UAPI: adding the peer: {e}"
                        );
                        return false;
                    }
                }
            }
        };
        touched.insert(id);
        let mut prefixes_changed = existing.is_none();
        for op in &change.ops {
            match op {
                PeerOp::UpdateOnly | PeerOp::Remove => {}
                PeerOp::PresharedKey(k) => {
                    let _ = self.device.set_preshared_key(id, k.clone());
                }
                PeerOp::Endpoint(e) => {
                    let _ = self.device.set_endpoint(id, *e);
                }
                PeerOp::FailoverEndpoint(e) => self.failover.hint(id, *e),
                PeerOp::PersistentKeepalive(s) => {
                    let _ = self.device.set_persistent_keepalive(
                        now,
                        id,
                        Duration::from_secs(u64::from(*s)),
                    );
                }
                PeerOp::ReplaceAllowedIps => {
                    prefixes_changed |= self.peers.clear_prefixes(id) > 0;
                }
                PeerOp::AllowedIp(p) => {
                    self.peers.insert_prefix(id, *p);
                    prefixes_changed = true;
                }
                PeerOp::RemoveAllowedIp(p) => {
                    prefixes_changed |= self.peers.remove_prefix(id, *p);
                }
            }
        }
        prefixes_changed
    }

    /// Refuses a request that would need more peer slots or allowed-IP entries than the
    /// region has (ENOSPC). The prefix count is an upper bound (every `allowed_ip` line
    /// counted as new), so a request near the limit may be refused that would just fit.
    fn check_room(&self, req: &SetRequest) -> Result<(), UapiError> {
        let replace = req
            .device
            .iter()
            .any(|o| matches!(o, DeviceOp::ReplacePeers));
        let own = *self.device.public_key();
        let mut created: HashSet<PublicKey> = HashSet::new();
        let mut removed: HashSet<PublicKey> = HashSet::new();
        let mut count = if replace { 0 } else { self.peers.len() };
        let mut prefixes = if replace {
            0
        } else {
            self.peers.prefix_count()
        };
        for c in &req.peers {
            let k = c.public_key;
            let exists = created.contains(&k)
                || (!replace && !removed.contains(&k) && self.device.peer_by_key(&k).is_some());
            match c.disposition(&own, exists) {
                Disposition::Ignore => {}
                Disposition::Remove => {
                    if exists {
                        count -= 1;
                    }
                    created.remove(&k);
                    removed.insert(k);
                }
                Disposition::Apply { create } => {
                    if create {
                        created.insert(k);
                        count += 1;
                    }
                    prefixes += c
                        .ops
                        .iter()
                        .filter(|o| matches!(o, PeerOp::AllowedIp(_)))
                        .count();
                }
            }
        }
        if count > self.max_peers {
            return Err(error(
                Errno::NoSpace,
                format!(
                    "{count} peers, the gateway has room for {} (start it with a larger --max-peers)",
                    self.max_peers
                ),
            ));
        }
        let room = self.peers.available(self.prefixes_applied());
        if created.len() > room {
            return Err(error(
                Errno::NoSpace,
                format!(
                    "{} new peers, {room} free slots until the data path applies the last change",
                    created.len()
                ),
            ));
        }
        let cap = self.region.layout().prefixes;
        if prefixes > cap {
            return Err(error(
                Errno::NoSpace,
                format!("up to {prefixes} allowed IPs, room for {cap} (--max-peers sizes it)"),
            ));
        }
        Ok(())
    }

    /// Binds the new listen port (EADDRINUSE if taken) and sets the fwmark on the socket that
    /// will be in use; the last fallible steps, so that failing here changes nothing else.
    fn prepare_socket(&self, req: &SetRequest) -> Result<Option<lanes::Bound>, UapiError> {
        let mut socket = None;
        let current = self.socket.local_addr().map_or(0, |a| a.port());
        for op in &req.device {
            if let DeviceOp::ListenPort(p) = op {
                socket = if *p == current && *p != 0 {
                    None
                } else {
                    let bound = lanes::bind(*p, !self.fed);
                    Some(bound.map_err(|e| error(Errno::PortInUse, e.to_string()))?)
                };
            }
        }
        for op in &req.device {
            if let DeviceOp::Fwmark(m) = op {
                let target = socket.as_ref().map_or(&self.socket, |b| &b.main);
                nix::sys::socket::setsockopt(target, nix::sys::socket::sockopt::Mark, m)
                    .map_err(|e| error(Errno::PortInUse, format!("fwmark: {e}")))?;
            }
        }
        // A new socket inherits the current mark unless the request sets one.
        if let Some(s) = socket.as_ref().map(|b| &b.main) {
            if !req.device.iter().any(|o| matches!(o, DeviceOp::Fwmark(_))) && self.fwmark != 0 {
                let _ =
                    nix::sys::socket::setsockopt(s, nix::sys::socket::sockopt::Mark, &self.fwmark);
            }
        }
        Ok(socket)
    }
}
