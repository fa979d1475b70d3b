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
                        tracing::error!("building the allowed-IPs table: {e}");
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
                tracing::warn!(prefix = %p, "allowed IP not applied: {e}");
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

#[cfg(test)]
mod tests {
    use super::*;
    use contract::Layout;
    use proto::device::PeerId;

    fn p(s: &str) -> Prefix {
        let (a, l) = s.split_once('/').unwrap();
        Prefix::new(a.parse().unwrap(), l.parse().unwrap()).unwrap()
    }

    fn region(tag: &str) -> Arc<Region> {
        let path = std::env::temp_dir().join(format!("wgxdp-routes-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let layout = Layout {
            sessions: 4,
            peers: 2,
            prefixes: 64,
            workers: 1,
        };
        let r = Region::create(&path, layout).unwrap();
        r.remove().unwrap();
        Arc::new(r)
    }

    /// What the data path learns from the log, applied to what it had.
    fn drain(region: &Region, model: &mut Vec<PrefixChange>) {
        region.prefix_log().drain(usize::MAX, |c| model.push(c));
    }

    #[test]
    fn a_removed_peers_slot_waits_for_a_worker_still_in_its_batch() {
        let region = region("reuse");
        let mut peers = PeerTable::new(2);
        let mut routes = Routes::default();
        peers.add(PeerId(0), 0).unwrap();
        peers.insert_prefix(PeerId(0), p("198.18.0.0/24"));
        routes.sync(&region, &mut peers);
        let mut worker = allowedips::Reader::attach(region.clone()).unwrap();
        let batch = worker.pin();
        assert_eq!(batch.lookup("198.18.0.1".parse().unwrap()), Some(0));
        peers.remove(PeerId(0));
        routes.sync(&region, &mut peers);
        assert_eq!(
            peers.available(routes.settled()),
            1,
            "only the never-used slot while a batch from before the removal runs"
        );
        drop(batch);
        assert_eq!(peers.available(routes.settled()), 2);
        assert_eq!(worker.lookup("198.18.0.1".parse().unwrap()), None);
    }

    #[test]
    fn the_log_carries_each_change_and_a_backlog_collapses_into_a_reset() {
        let region = region("log");
        let mut peers = PeerTable::new(2);
        let mut routes = Routes::default();
        peers.add(PeerId(0), 0).unwrap();
        peers.insert_prefix(PeerId(0), p("198.18.0.0/24"));
        routes.sync(&region, &mut peers);
        routes.push_log(&region, &peers);
        let mut seen = Vec::new();
        drain(&region, &mut seen);
        let a = PrefixChange::Set {
            addr: "198.18.0.0".parse().unwrap(),
            len: 24,
            peer: 0,
        };
        assert_eq!(
            seen,
            [PrefixChange::Reset, a],
            "a new control starts from nothing"
        );
        assert!(routes.synced(&region));

        peers.insert_prefix(PeerId(0), p("2001:2::/48"));
        routes.sync(&region, &mut peers);
        assert!(!routes.synced(&region), "until the data path has it");
        routes.push_log(&region, &peers);
        seen.clear();
        drain(&region, &mut seen);
        assert_eq!(
            seen,
            [PrefixChange::Set {
                addr: "2001:2::".parse().unwrap(),
                len: 48,
                peer: 0
            }]
        );

        // Thousands of prefixes come and go before control writes the log: their latest
        // states would outgrow the table, so the log restarts from what holds now.
        for i in 0..2000u32 {
            let q = p(&format!("198.19.{}.{}/32", i / 256, i % 256));
            peers.insert_prefix(PeerId(0), q);
            peers.remove_prefix(PeerId(0), q);
            routes.sync(&region, &mut peers);
        }
        routes.push_log(&region, &peers);
        seen.clear();
        drain(&region, &mut seen);
        assert_eq!(seen[0], PrefixChange::Reset);
        assert_eq!(
            seen.len(),
            3,
            "the reset and the two prefixes that hold: {seen:?}"
        );
        assert!(routes.synced(&region));
    }
}
