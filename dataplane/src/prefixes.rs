//! The data path's copy of control's allowed-IPs list: the workers' lookup table, and whatever
//! else must follow the list (the LAN program's peer tries with XDP; the kernel's routes into
//! the TUN device in the socket backend), all changed by difference so that an update costs
//! what changed.

use allowedips::AllowedIps;
use contract::layout::decode_prefix;
use contract::Region;
use proto::allowedips::Prefix;
use std::collections::HashMap;
use std::sync::atomic::Ordering;

/// What follows the list besides the workers' table.
pub trait PrefixSink {
    /// `prefix` now belongs to `peer` (it may have belonged to another).
    fn insert(&mut self, prefix: Prefix, peer: u32);
    /// `prefix` belongs to nobody now.
    fn remove(&mut self, prefix: Prefix);
}

#[derive(Debug, Default)]
pub struct Prefixes {
    table: AllowedIps,
    installed: HashMap<Prefix, u32>,
    version: Option<u64>,
    buf: Vec<[u64; 3]>,
}

impl Prefixes {
    /// A worker's handle on the table.
    pub fn reader(&self) -> Result<allowedips::Reader, allowedips::Error> {
        self.table.reader()
    }

    /// Applies a newly published list, then tells control which version is in force (it
    /// reuses a removed peer's number only after that, so no packet can reach the new peer
    /// through the old one's prefixes; and it answers a `wg set` only after that).
    pub fn sync(&mut self, region: &Region, sink: &mut dyn PrefixSink) {
        if Some(region.prefixes_version()) == self.version {
            return;
        }
        let Some(v) = region.read_prefixes(&mut self.buf) else {
            return;
        };
        let mut wanted = HashMap::with_capacity(self.buf.len());
        for e in &self.buf {
            if let Some((addr, len, peer)) = decode_prefix(e) {
                if let Ok(p) = Prefix::new(addr, len) {
                    wanted.insert(p, peer);
                }
            }
        }
        self.installed.retain(|p, peer| {
            if wanted.contains_key(p) {
                return true;
            }
            self.table.remove(*p, *peer);
            sink.remove(*p);
            false
        });
        for (p, peer) in wanted {
            if self.installed.get(&p) == Some(&peer) {
                continue;
            }
            // A peer number beyond the table's range cannot be routed: leave it out.
            if self.table.insert(p, peer).is_ok() {
                sink.insert(p, peer);
                self.installed.insert(p, peer);
            }
        }
        self.version = Some(v);
        region.header().prefixes_applied.store(v, Ordering::Release);
    }
}
