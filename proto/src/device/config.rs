//! Configuration calls: what `wg set` and `wg setconf` change on a running interface (the
//! kernel's `netlink.c` set_device/set_peer). Every call takes effect at once; sessions that
//! a change invalidates are retired (in external mode the owner is told by
//! [`super::Event::SessionRetired`]).

use super::{Device, DeviceError, PeerConfig};
use crate::allowedips::Prefix;
use crate::cookie::CookieChecker;
use crate::keys::{PresharedKey, PrivateKey, PublicKey};
use crate::noise::StaticIdentity;
use crate::peer::{Peer, PeerId};
use crate::time::Now;
use rand_core::CryptoRngCore;
use std::net::SocketAddr;
use std::time::Duration;

impl<R: CryptoRngCore> Device<R> {
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
            public_key,
            config.preshared_key.unwrap_or_default(),
            config.endpoint,
            config.persistent_keepalive.filter(|d| !d.is_zero()),
        );
        // Reuse a removed peer's number (O(1): 100k peers are added one by one).
        let id = match self.free_ids.pop() {
            Some(i) => {
                self.peers[i as usize] = Some(peer);
                PeerId(i)
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
        self.free_ids.push(id.0);
        if let Some(i) = peer.handshake.held_index() {
            self.indices.remove(&i);
        }
        let released = peer.keypairs.clear();
        self.release_indices(released.iter());
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

    /// Replaces the interface's private key (`wg set wg0 private-key`). As the kernel does, a
    /// peer whose public key is the new public key is removed, every peer's static-static DH
    /// is recomputed and its in-flight handshake forgotten, and the cookie keys follow the
    /// new public key. The kernel only stops *sending* on existing keypairs; here they are
    /// retired outright (sessions derived under the old identity), so the next packet for a
    /// peer starts a handshake under the new one. Returns the removed peer, if any.
    pub fn set_private_key(&mut self, private_key: PrivateKey) -> Option<PeerId> {
        if private_key.as_bytes() == self.identity.private().as_bytes() {
            return None;
        }
        let public = private_key.public_key();
        let removed = self.peer_by_key(&public);
        if let Some(id) = removed {
            let _ = self.remove_peer(id);
        }
        self.identity = StaticIdentity::new(private_key);
        self.checker = CookieChecker::new(self.identity.public());
        for i in 0..self.peers.len() {
            let Some(peer) = self.peers[i].as_mut() else {
                continue;
            };
            if let Some(index) = peer.handshake.held_index() {
                self.indices.remove(&index);
            }
            peer.handshake.local_identity_changed();
            peer.last_sent_handshake = None;
            let released = peer.keypairs.clear();
            self.release_indices(released.iter());
        }
        removed
    }

    /// Sets a peer's pre-shared key; it applies from the next handshake on.
    pub fn set_preshared_key(&mut self, id: PeerId, psk: PresharedKey) -> Result<(), DeviceError> {
        self.peer_mut(id)
            .ok_or(DeviceError::NoSuchPeer)?
            .handshake
            .set_preshared_key(psk);
        Ok(())
    }

    /// Sets a peer's persistent keepalive interval (zero turns it off). Turning it on sends a
    /// keepalive at once, as wireguard-go and the kernel do.
    pub fn set_persistent_keepalive(
        &mut self,
        now: Now,
        id: PeerId,
        interval: Duration,
    ) -> Result<(), DeviceError> {
        let peer = self.peer_mut(id).ok_or(DeviceError::NoSuchPeer)?;
        let was_off = peer.timers.persistent_keepalive_interval.is_none();
        if interval.is_zero() {
            peer.timers.persistent_keepalive_interval = None;
            peer.timers.persistent_keepalive = None;
            return Ok(());
        }
        peer.timers.persistent_keepalive_interval = Some(interval);
        if was_off {
            self.send_keepalive(now, id);
        }
        Ok(())
    }

    /// Removes `prefix` from `id`'s allowed IPs if that peer owns it.
    pub fn remove_allowed_ip(&mut self, id: PeerId, prefix: Prefix) -> Result<bool, DeviceError> {
        self.peer(id).ok_or(DeviceError::NoSuchPeer)?;
        Ok(self.allowed_ips.remove(prefix, id))
    }

    /// Removes all of `id`'s allowed IPs (`replace_allowed_ips`).
    pub fn clear_allowed_ips(&mut self, id: PeerId) -> Result<(), DeviceError> {
        self.peer(id).ok_or(DeviceError::NoSuchPeer)?;
        self.allowed_ips.remove_by_peer(id);
        Ok(())
    }
}
