//! Control's side of the allowed-IPs pipeline: the table the workers read, written in the
//! region (`allowedips::AllowedIps` over the region's memory), and the prefix log that tells
//! the data-path process what else must follow (its LAN program's tries, or its TUN routes).
//!
//! The peer table ([`crate::peers::PeerTable`]) is the book: who owns which prefix, by peer
//! slot. After each change control brings the table in step with it, prefix by prefix (the
//! workers see each change at once), and queues the changed prefixes for the log. The log is
//! a bounded ring: what does not fit waits here, one entry per prefix carrying its latest
//! state, and a backlog beyond the table's size collapses into one reset (then every prefix).

use crate::peers::PeerTable;
use allowedips::AllowedIps;
use contract::prefix_log::PrefixChange;
use contract::Region;
use proto::allowedips::Prefix;
use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

#[derive(Debug, Default)]
pub(crate) struct Routes {
    /// The workers' table; `None` until the first [`Routes::sync`], which builds it whole (a
    /// restarted control replaces its predecessor's table in one switch, not prefix by prefix).
    table: Option<AllowedIps>,
    /// Prefixes whose latest state the log has not carried yet, oldest first.
    queue: VecDeque<Prefix>,
    queued: HashSet<Prefix>,
    /// The next log entry must be a reset (then every prefix follows).
    reset: bool,
}

impl Routes {
    /// Brings the table in step with `peers` (the changes since the last call) and queues
    /// them for the log. Returns whether anything changed. A change the table refuses (it is
    /// full, which `check_room` should have prevented) is reported and left out.
    pub(crate) fn sync(&mut self, region: &Arc<Region>, peers: &mut PeerTable) -> bool {
        let dirty = peers.take_dirty();
        let table = match &mut self.table {
            Some(t) => t,
            None => {
                let all: Vec<(Prefix, u32)> = peers.all_prefixes().collect();
                match AllowedIps::attach(region.clone(), all) {
                    Ok(t) => {
                        self.reset = true;
                        self.queue.clear();
                        self.queued.clear();
                        let t = self.table.insert(t);
                        peers.published(t.epoch());
                        return true;
                    }
                    Err(e) => {
                        eprintln!("wgxdp control: building the allowed-IPs table: {e}");
                        return false;
                    }
                }
            }
        };
        let changed = !dirty.is_empty();
        let limit = 2 * region.layout().prefixes + 1024;
        for p in dirty {
            let r = match peers.owner_slot(p) {
                Some(slot) => table.insert(p, slot).map(|_| ()),
                None => match table.owner(p) {
                    Some(old) => table.remove(p, old).map(|_| ()),
                    None => Ok(()),
                },
            };
            if let Err(e) = r {
                eprintln!("wgxdp control: allowed IP {p} not applied: {e}");
            }
            if !self.reset && self.queued.insert(p) {
                self.queue.push_back(p);
                if self.queue.len() > limit {
                    self.reset = true;
                    self.queue.clear();
                    self.queued.clear();
                }
            }
        }
        peers.published(table.epoch());
        changed
    }

    /// Writes what fits of the queued changes into the log (and a reset first, when control
    /// started or the data path asked for one).
    pub(crate) fn push_log(&mut self, region: &Region, peers: &PeerTable) {
        let Some(table) = &self.table else { return };
        let log = region.prefix_log();
        if log.take_resync_request() {
            self.reset = true;
        }
        if self.reset {
            if !log.push(PrefixChange::Reset) {
                return;
            }
            self.reset = false;
            self.queue.clear();
            self.queued.clear();
            for (p, _) in peers.all_prefixes() {
                self.queued.insert(p);
                self.queue.push_back(p);
            }
        }
        while let Some(&p) = self.queue.front() {
            let (addr, len) = (p.addr(), p.len());
            let change = match table.owner(p) {
                Some(peer) => PrefixChange::Set { addr, len, peer },
                None => PrefixChange::Remove { addr, len },
            };
            if !log.push(change) {
                break;
            }
            self.queue.pop_front();
            self.queued.remove(&p);
        }
    }

    /// Whether the data path holds every change made so far (the log is written and applied).
    pub(crate) fn synced(&self, region: &Region) -> bool {
        self.table.is_some()
            && !self.reset
            && self.queue.is_empty()
            && region.prefix_log().caught_up()
    }

    /// The epoch below which removals are settled: a peer slot freed before it can be routed
    /// to by no worker (`PeerTable::available`).
    pub(crate) fn settled(&self) -> u64 {
        self.table
            .as_ref()
            .map_or(0, |t| t.settled().saturating_sub(1))
    }
}
