//! What a control process does when it finds a region a previous one left: the data path
//! kept forwarding on it, so its sessions and peer slots are in use and must be adopted, not
//! overwritten.
//!
//! - Sessions: a live record stays usable by the workers until its keys expire; its slot is
//!   inherited (freed then, or taken back early if a new session needs the room). Their keys
//!   died with the previous process, so every configured peer is asked for a new handshake.
//! - Peers: a configured peer whose key tag a valid record carries keeps that slot (the
//!   workers' sessions and prefixes refer to it) and the endpoint it roamed to. Slots of peers
//!   no longer configured are invalidated and quarantined until the data path has dropped
//!   their prefixes.

use super::{key_tag, resolve, Control, ControlError};
use crate::config::Config;
use contract::layout::{PeerRecord, SessionRecord};
use contract::Region;
use proto::allowedips::Prefix;
use proto::device::PeerConfig;
use std::collections::HashMap;
use std::time::Duration;

/// The live sessions a previous control process published: (slot, birth on the region's
/// clock).
pub(super) fn inherited_sessions(region: &Region) -> Vec<(u32, u64)> {
    region
        .sessions()
        .iter()
        .enumerate()
        .filter_map(|(i, s)| {
            let r = SessionRecord::decode(&s.record.read()?);
            r.is_valid().then_some((i as u32, r.birth_ns))
        })
        .collect()
}

impl Control {
    /// Adds the configured peers, adopting what a previous process left in the region.
    pub(super) fn reconcile(&mut self, config: &Config) -> Result<(), ControlError> {
        let region = self.region.clone();
        let mut old_peers: HashMap<u64, (u32, PeerRecord)> = region
            .peers()
            .iter()
            .enumerate()
            .filter_map(|(i, p)| {
                let r = PeerRecord::decode(&p.record.read()?);
                r.valid.then_some((r.key_tag, (i as u32, r)))
            })
            .collect();
        let restarted = !inherited_sessions(&region).is_empty() || !old_peers.is_empty();
        let now = self.now();
        for p in &config.peers {
            let pc = PeerConfig {
                public_key: Some(p.public_key),
                preshared_key: p.preshared_key.clone(),
                endpoint: p.endpoint.as_ref().and_then(resolve),
                allowed_ips: Vec::new(),
                persistent_keepalive: p
                    .persistent_keepalive
                    .map(|s| Duration::from_secs(u64::from(s))),
            };
            let allowed = p
                .allowed_ips
                .iter()
                .filter_map(|a| Prefix::new(a.addr(), a.prefix_len()).ok());
            let old = old_peers.remove(&key_tag(&p.public_key));
            let id = self.create_peer(now, pc, allowed, old.map(|(slot, _)| slot))?;
            if let Some(ep) = old.and_then(|(_, r)| r.endpoint) {
                let _ = self.device.set_endpoint(id, ep);
            }
            if restarted {
                // The sessions the previous process left have keys that died with it:
                // replace them with fresh ones, so that timers and rekeying run again.
                self.device.initiate_handshake(now, id);
            }
        }
        // Slots of peers that are no longer configured: nobody's, and not reused until the
        // data path has dropped their prefixes.
        for (slot, _) in old_peers.into_values() {
            self.peers.quarantine(slot);
            if let Some(p) = region.peers().get(slot as usize) {
                p.record.write(&PeerRecord::default().encode());
            }
        }
        Ok(())
    }
}
