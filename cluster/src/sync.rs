//! `wgxdp sync`: keeps one gateway's peer set equal to the records under a prefix in etcd.
//!
//! It reads every record at one revision, makes the gateway's peers match (through its UAPI
//! socket, as `wg syncconf` would), then watches from the next revision and applies each
//! change as it comes. When etcd cannot be reached, the gateway keeps the peers it has and
//! this process retries (logged once per outage, and `wgxdp_peer_source_up` is 0); on
//! reconnect it resumes the watch from the last revision it applied, so nothing in between is
//! missed. If etcd has compacted that revision away, or the gateway refused a change, it reads
//! everything again.
//!
//! It is a process of its own, beside the gateway: neither the workers nor control's packet
//! loop ever wait for etcd.

use crate::apply::{self, SyncCounts};
use crate::etcd::{Etcd, EtcdError, Event};
use crate::record;
use control::config::Peer;
use control::InterfaceName;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use zeroize::Zeroizing;

const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

#[derive(Debug)]
pub struct Options {
    pub name: InterfaceName,
    pub endpoints: Vec<String>,
    /// The cluster's prefix, ending in `/`.
    pub prefix: String,
    pub metrics: Option<SocketAddr>,
    /// The gateway's shared region, whose key-free part says which peers are on it and where
    /// (for sharing endpoints: [`crate::endpoints`]).
    pub region: std::path::PathBuf,
}

/// What the sync has done, for its metrics endpoint.
#[derive(Debug, Default)]
pub struct Status {
    up: AtomicBool,
    revision: AtomicI64,
    peers: AtomicU64,
    applied: AtomicU64,
    rejected: AtomicU64,
    errors: AtomicU64,
    resyncs: AtomicU64,
    last_change: AtomicU64,
}

impl Status {
    fn page(&self) -> String {
        let mut p = control::metrics::Page::default();
        let gauges: [(&str, &str, f64); 4] = [
            (
                "wgxdp_peer_source_up",
                "1 while etcd answers; 0 while the gateway serves its last peer set.",
                f64::from(u8::from(self.up.load(Relaxed))),
            ),
            (
                "wgxdp_peer_source_revision",
                "The etcd revision the gateway's peers are at.",
                self.revision.load(Relaxed) as f64,
            ),
            (
                "wgxdp_peer_source_peers",
                "Peers with a valid record.",
                self.peers.load(Relaxed) as f64,
            ),
            (
                "wgxdp_peer_source_last_change_timestamp_seconds",
                "When a change from etcd was last applied (Unix time).",
                self.last_change.load(Relaxed) as f64,
            ),
        ];
        for (name, help, v) in gauges {
            p.family(name, "gauge", help);
            p.sample(name, &[], v);
        }
        let counters: [(&str, &str, &AtomicU64); 4] = [
            (
                "wgxdp_peer_source_changes_applied_total",
                "Peers added, changed or removed from etcd records.",
                &self.applied,
            ),
            (
                "wgxdp_peer_source_records_rejected_total",
                "Records that were not one valid [Peer] section for their key (logged).",
                &self.rejected,
            ),
            (
                "wgxdp_peer_source_errors_total",
                "Failed requests to etcd or to the gateway.",
                &self.errors,
            ),
            (
                "wgxdp_peer_source_resyncs_total",
                "Full reads of the peer set (start, compaction, refused change).",
                &self.resyncs,
            ),
        ];
        for (name, help, v) in counters {
            p.family(name, "counter", help);
            p.sample(name, &[], v.load(Relaxed) as f64);
        }
        p.finish()
    }
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The records as last applied: valid ones by public key (hex), and the keys of unreadable
/// ones, whose peers are left as they were.
#[derive(Debug, Default)]
struct Applied {
    revision: i64,
    records: BTreeMap<String, Peer>,
    unreadable: BTreeSet<String>,
}

struct Sync {
    opts: Options,
    /// The peers' keys by the tag the region names them with, for [`crate::endpoints`].
    tags: crate::endpoints::Tags,
    etcd: Etcd,
    peers_prefix: String,
    status: Arc<Status>,
    backoff: Duration,
    /// Whether the current outage has been logged.
    down_logged: bool,
}

impl Sync {
    fn failed(&mut self, what: &str, e: &dyn std::fmt::Display, applied: &Applied) {
        self.status.errors.fetch_add(1, Relaxed);
        self.status.up.store(false, Relaxed);
        if !self.down_logged {
            tracing::warn!(
                "{what}: {e}; {} keeps serving its last peer set ({} peers, revision {}) and retries",
                self.opts.name,
                applied.records.len(),
                applied.revision
            );
            self.down_logged = true;
        } else {
            tracing::debug!("{what}: {e}");
        }
        std::thread::sleep(self.backoff);
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
    }

    fn reachable(&mut self, applied: &Applied) {
        if self.down_logged {
            tracing::info!(
                "etcd reachable again at {}; resuming from revision {}",
                self.etcd.endpoint(),
                applied.revision
            );
        }
        self.down_logged = false;
        self.backoff = BACKOFF_MIN;
        self.status.up.store(true, Relaxed);
    }

    fn send(&self, request: &str) -> Result<(), String> {
        control::uapi::request(&self.opts.name, request).map(drop)
    }

    /// Reads every record and makes the gateway's peers match them.
    fn full(&mut self, applied: &mut Applied) -> Result<(), String> {
        let started = std::time::Instant::now();
        let snap = self
            .etcd
            .range_prefix(self.peers_prefix.as_bytes())
            .map_err(|e| e.to_string())?;
        let mut next = Applied {
            revision: snap.revision,
            ..Applied::default()
        };
        for kv in &snap.kvs {
            match record::parse_record(&self.peers_prefix, &kv.key, &kv.value) {
                Ok(p) => {
                    next.records.insert(hex::encode(p.public_key.as_bytes()), p);
                }
                Err(e) => {
                    self.reject(&kv.key, &e);
                    if let Ok(k) = record::key_peer(&self.peers_prefix, &kv.key) {
                        next.unreadable.insert(hex::encode(k.as_bytes()));
                    }
                }
            }
        }
        let read = started.elapsed();
        let get = control::uapi::request(&self.opts.name, "get=1\n\n")?;
        let (requests, counts) = apply::full_sync(&next.records, &next.unreadable, &get);
        for r in &requests {
            self.send(r)?;
        }
        let SyncCounts {
            added,
            updated,
            removed,
            unchanged,
        } = counts;
        tracing::info!(
            "{}: {} peers from etcd at revision {} ({added} added, {updated} changed, {removed} removed, {unchanged} unchanged; read in {:.2} s, applied in {:.2} s)",
            self.opts.name,
            next.records.len(),
            next.revision,
            read.as_secs_f64(),
            (started.elapsed() - read).as_secs_f64()
        );
        self.status.resyncs.fetch_add(1, Relaxed);
        self.status
            .applied
            .fetch_add((added + updated + removed) as u64, Relaxed);
        self.status.revision.store(next.revision, Relaxed);
        self.status.peers.store(next.records.len() as u64, Relaxed);
        self.status.last_change.store(now_unix(), Relaxed);
        self.tags.replace(next.records.keys());
        *applied = next;
        Ok(())
    }

    fn reject(&self, key: &[u8], e: &record::RecordError) {
        self.status.rejected.fetch_add(1, Relaxed);
        tracing::warn!(
            "etcd record {} ignored: {e}",
            String::from_utf8_lossy(&key[..key.len().min(200)])
        );
    }

    /// Applies one watch message's events; the gateway gets them as one request.
    fn events(&self, applied: &mut Applied, events: Vec<Event>) -> Result<(), String> {
        let mut request = Zeroizing::new(String::from("set=1\n"));
        let mut changes = 0u64;
        let mut revision = applied.revision;
        for e in events {
            match e {
                Event::Put(kv) => {
                    revision = revision.max(kv.mod_revision);
                    match record::parse_record(&self.peers_prefix, &kv.key, &kv.value) {
                        Ok(p) => {
                            let hex = hex::encode(p.public_key.as_bytes());
                            applied.unreadable.remove(&hex);
                            if applied.records.get(&hex) != Some(&p) {
                                self.tags.insert(&hex);
                                apply::write_peer(&mut request, &p);
                                applied.records.insert(hex, p);
                                changes += 1;
                            }
                        }
                        // A bad value leaves the peer as it was: nothing is lost to a typo.
                        Err(e) => self.reject(&kv.key, &e),
                    }
                }
                Event::Delete { key, mod_revision } => {
                    revision = revision.max(mod_revision);
                    let Ok(k) = record::key_peer(&self.peers_prefix, &key) else {
                        continue;
                    };
                    let hex = hex::encode(k.as_bytes());
                    applied.unreadable.remove(&hex);
                    if applied.records.remove(&hex).is_some() {
                        apply::write_remove(&mut request, &hex);
                        changes += 1;
                    }
                }
            }
        }
        if changes > 0 {
            request.push('\n');
            self.send(&request)?;
            tracing::info!(
                "{}: {changes} peer change(s) from etcd at revision {revision}",
                self.opts.name
            );
            self.status.applied.fetch_add(changes, Relaxed);
            self.status.last_change.store(now_unix(), Relaxed);
        }
        applied.revision = revision;
        self.status.revision.store(revision, Relaxed);
        self.status
            .peers
            .store(applied.records.len() as u64, Relaxed);
        Ok(())
    }
}

/// Runs until killed.
pub fn run(opts: Options) -> Result<(), String> {
    let status = Arc::new(Status::default());
    if let Some(addr) = opts.metrics {
        let m =
            control::metrics::Metrics::bind(addr).map_err(|e| format!("--metrics {addr}: {e}"))?;
        let status = status.clone();
        std::thread::Builder::new()
            .name("wgxdp-sync-metrics".into())
            .spawn(move || loop {
                while let Some(scrape) = m.poll() {
                    scrape.answer(status.page());
                }
                std::thread::sleep(Duration::from_millis(50));
            })
            .map_err(|e| e.to_string())?;
    }
    // Peers' endpoints, shared for failing over (crate::endpoints): threads of their own.
    let tags = crate::endpoints::Tags::default();
    crate::endpoints::spawn(
        opts.name.clone(),
        opts.endpoints.clone(),
        &opts.prefix,
        opts.region.clone(),
        tags.clone(),
    )
    .map_err(|e| format!("starting the endpoint sharing: {e}"))?;
    let mut s = Sync {
        tags,
        etcd: Etcd::new(opts.endpoints.clone()),
        peers_prefix: record::peers_prefix(&opts.prefix),
        opts,
        status,
        backoff: BACKOFF_MIN,
        down_logged: false,
    };
    tracing::info!(
        "{}: peers from etcd {} under {}",
        s.opts.name,
        s.opts.endpoints.join(","),
        s.peers_prefix
    );
    let mut applied = Applied::default();
    let mut need_full = true;
    loop {
        if need_full {
            if let Err(e) = s.full(&mut applied) {
                s.failed("full sync", &e, &applied);
                continue;
            }
            need_full = false;
            s.reachable(&applied);
        }
        let mut watch = match s
            .etcd
            .watch(s.peers_prefix.as_bytes(), applied.revision + 1)
        {
            Ok(w) => w,
            Err(e) => {
                s.failed("watch", &e, &applied);
                continue;
            }
        };
        loop {
            match watch.recv() {
                Ok((_, events)) => {
                    s.reachable(&applied);
                    if let Err(e) = s.events(&mut applied, events) {
                        s.failed("applying a change", &e, &applied);
                        need_full = true;
                        break;
                    }
                }
                Err(EtcdError::Compacted { compact_revision }) => {
                    tracing::info!(
                        "etcd compacted past revision {} (to {compact_revision}); reading all peers again",
                        applied.revision
                    );
                    need_full = true;
                    break;
                }
                Err(EtcdError::Idle) => {
                    // A quiet watch: reopened from where it was, not an outage.
                    break;
                }
                Err(EtcdError::Unreachable(e)) => {
                    // The stream broke (its member died or restarted): reopened at once, on
                    // the next member if this one is gone. Only if no member answers is it
                    // an outage, logged as such by the reopening.
                    s.status.errors.fetch_add(1, Relaxed);
                    tracing::info!("watch on {} broke ({e}); reopening", s.etcd.endpoint());
                    std::thread::sleep(BACKOFF_MIN);
                    break;
                }
                Err(e) => {
                    s.failed("watch", &e, &applied);
                    break;
                }
            }
        }
    }
}
