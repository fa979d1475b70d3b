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
use contract::region::HugeBacking;
use contract::Region;
use proto::allowedips::Prefix;
use proto::time::Instant;
use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

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
    /// Huge pages under the table where the region's file system has them (see
    /// `contract::region::HugeBacking`): the round under way, and the last one's end.
    huge: HugeBacking,
    huge_round_epoch: u64,
    huge_followed: Option<Followed>,
}

/// The end of a round of huge pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Followed {
    /// The table's epoch when the round started.
    epoch: u64,
    at: Instant,
    /// Until the next round: [`HUGE_EVERY`], or longer while chunks keep failing.
    wait: Duration,
    /// Every chunk the round asked for is in a huge page.
    clean: bool,
    backed: usize,
}

/// How often the huge pages follow a changing table at most: a table that grows by a few
/// prefixes a second needs no more. Chunks the kernel could not collapse (no free huge page,
/// a page in use) are asked for again after this, then after twice as long each time, up to
/// [`HUGE_RETRY_MOST`].
const HUGE_EVERY: Duration = Duration::from_secs(10);
const HUGE_RETRY_MOST: Duration = Duration::from_secs(640);
/// Chunks asked for per step of control's loop: a collapse copies 2 MiB and may first have
/// to compact memory, which must not hold up handshakes and timers for long.
const HUGE_PER_STEP: usize = 2;

/// How long after a round of huge pages the next may start: [`HUGE_EVERY`], doubled after
/// every round in a row that left chunks undone, up to [`HUGE_RETRY_MOST`].
fn next_wait(last: Option<Followed>, clean: bool) -> Duration {
    match last {
        Some(f) if !clean && !f.clean => (f.wait * 2).min(HUGE_RETRY_MOST),
        _ => HUGE_EVERY,
    }
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

    /// Asks for huge pages under the memory the workers' lookups walk, a few chunks per call
    /// (control's loop calls it every step): at once for a new table, then at most every
    /// [`HUGE_EVERY`] while it changes, and again later for chunks that failed. A file system
    /// without huge pages for files is reported once and not asked again.
    pub(crate) fn follow_pages(&mut self, region: &Region, now: Instant) {
        let Some(table) = &self.table else { return };
        if self.huge.refused() {
            return;
        }
        if !self.huge.busy() {
            let epoch = table.epoch();
            if let Some(f) = self.huge_followed {
                if now.saturating_since(f.at) < f.wait || (f.clean && f.epoch == epoch) {
                    return;
                }
            }
            self.huge.start(region, &table.in_use());
            self.huge_round_epoch = epoch;
        }
        let Some(report) = self.huge.step(region, HUGE_PER_STEP) else {
            return;
        };
        let clean = report.failed == 0;
        let wait = next_wait(self.huge_followed, clean);
        self.huge_followed = Some(Followed {
            epoch: self.huge_round_epoch,
            at: now,
            wait,
            clean,
            backed: report.backed,
        });
        if let Some(e) = report.refused {
            tracing::info!(
                region = %region.path().display(),
                "the allowed-IPs table stays in 4 KiB pages ({e}); a region on tmpfs gets \
                 huge pages"
            );
        } else {
            tracing::debug!(
                backed = report.backed,
                sparse = report.sparse,
                failed = report.failed,
                "allowed-IPs table: 2 MiB chunks in huge pages"
            );
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
        region_in(&std::env::temp_dir(), tag)
    }

    /// A region in `dir`, its file removed at once (the mappings stay).
    fn region_in(dir: &std::path::Path, tag: &str) -> Arc<Region> {
        let path = dir.join(format!("wgxdp-routes-{tag}-{}", std::process::id()));
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

    /// Steps of control's loop at `now` until the round of huge pages under way ends.
    fn round(routes: &mut Routes, region: &Region, now: Instant) -> usize {
        let mut steps = 0;
        loop {
            routes.follow_pages(region, now);
            steps += 1;
            if !routes.huge.busy() {
                return steps;
            }
            assert!(steps < 1000, "a round ends");
        }
    }

    #[test]
    fn huge_pages_follow_a_new_table_at_once_and_a_changing_one_at_most_every_ten_seconds() {
        // On tmpfs, where the kernel gives files huge pages (off tmpfs nothing is asked:
        // `contract`'s tests cover that).
        let shm = std::path::Path::new("/dev/shm");
        let tmpfs = nix::sys::statfs::statfs(shm)
            .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC);
        if !tmpfs {
            return testbed::note_skip("/dev/shm is not tmpfs here");
        }
        let region = region_in(shm, "huge");
        let mut peers = PeerTable::new(2);
        let mut routes = Routes::default();
        peers.add(PeerId(0), 0).unwrap();
        peers.insert_prefix(PeerId(0), p("198.18.0.0/24"));
        let t0 = Instant::from_nanos(1_000_000_000);
        routes.follow_pages(&region, t0);
        assert_eq!(routes.huge_followed, None, "no table yet");
        routes.sync(&region, &mut peers);
        let steps = round(&mut routes, &region, t0);
        if routes.huge.refused() {
            return testbed::note_skip("huge pages are not asked for here (base pages not 4 KiB)");
        }
        let built = routes.table.as_ref().unwrap().epoch();
        let f = routes.huge_followed.expect("a new table at once");
        assert_eq!((f.epoch, f.at), (built, t0));
        if !f.clean {
            // ENOMEM or EAGAIN on a busy machine; `contract`'s tests cover those chunks.
            return testbed::note_skip("the kernel could not collapse every chunk just now");
        }
        // Both directories are written whole by the build: 8 chunks of 2 MiB.
        assert!(f.backed >= 8, "{f:?}");
        assert!(
            steps >= f.backed / HUGE_PER_STEP,
            "a few chunks a step: {steps}"
        );

        peers.insert_prefix(PeerId(0), p("198.18.1.0/24"));
        routes.sync(&region, &mut peers);
        let changed = routes.table.as_ref().unwrap().epoch();
        assert_ne!(changed, built);
        round(&mut routes, &region, t0 + Duration::from_secs(9));
        assert_eq!(routes.huge_followed, Some(f), "not within ten seconds");
        let t1 = t0 + Duration::from_secs(10);
        round(&mut routes, &region, t1);
        let g = routes.huge_followed.unwrap();
        assert_eq!((g.epoch, g.at), (changed, t1), "after ten seconds");
        round(&mut routes, &region, t1 + Duration::from_secs(60));
        assert_eq!(routes.huge_followed, Some(g), "nothing changed since");

        // A round with chunks the kernel could not do is tried again without a change, ever
        // later while they fail.
        let failed = Followed { clean: false, ..g };
        routes.huge_followed = Some(failed);
        let t2 = t1 + Duration::from_secs(10);
        round(&mut routes, &region, t2);
        let h = routes.huge_followed.unwrap();
        assert_eq!((h.epoch, h.at, h.clean), (changed, t2, true), "retried");
    }

    #[test]
    fn rounds_that_leave_chunks_undone_wait_ever_longer_up_to_a_limit() {
        let f = |clean, wait| Followed {
            epoch: 1,
            at: Instant::from_nanos(0),
            wait,
            clean,
            backed: 0,
        };
        let s = Duration::from_secs;
        for (last, clean, want) in [
            (None, true, s(10)),
            (None, false, s(10)),
            (Some(f(true, s(10))), false, s(10)),
            (Some(f(false, s(10))), false, s(20)),
            (Some(f(false, s(320))), false, s(640)),
            (Some(f(false, s(640))), false, s(640)),
            (Some(f(false, s(640))), true, s(10)),
        ] {
            assert_eq!(next_wait(last, clean), want, "{last:?} {clean}");
        }
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
