//! Attaching to the shared region (`contract::Region::attach`, `contract::Status::attach`):
//! the input is the region file.
//!
//! The file is written with mode 0600 and owned by the running user, since attach refuses
//! anything else before it reads a byte. Attach must then refuse the file or return a region
//! every accessor of which stays inside the mapping (the accessors' `debug_assert`s and slice
//! bounds check that, and the fuzz build keeps debug assertions on), whose rings yield at most
//! their capacity, and whose tables behave as tables: a receiver index just inserted is found,
//! a prefix change just logged reads back. (A valid region now holds the allowed-IPs table's
//! directories, 32 MiB at least, so inputs that pass attach are rare: the header's checks are
//! what this target mostly reaches.)

use contract::layout::{SessionSummary, RING_CAP};
use contract::prefix_log::PrefixChange;
use contract::{PeerRecord, Region, SessionRecord, Status, WorkerEvent};
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::PathBuf;
use std::sync::atomic::Ordering;

/// One file per process, reused by every run: attach checks owner and mode, not the name.
fn scratch_path() -> PathBuf {
    std::env::temp_dir().join(format!("wgxdp-fuzz-region-{}", std::process::id()))
}

pub fn run(data: &[u8]) {
    let path = scratch_path();
    write_private(&path, data);
    let region = Region::attach(&path);
    let status = Status::attach(&path);
    // Both read the same header and make the same checks.
    match (&region, &status) {
        (Ok(r), Ok(s)) => assert_eq!(r.layout(), s.layout()),
        (Err(_), Err(_)) => {}
        (r, s) => panic!(
            "Region and Status disagree: {:?} / {:?}",
            r.as_ref().err(),
            s.as_ref().err()
        ),
    }
    if let Ok(s) = status {
        read_status(&s);
    }
    if let Ok(r) = region {
        assert!(r.layout().total_len() <= data.len());
        use_region(&r);
    }
    let _ = std::fs::remove_file(&path);
}

fn write_private(path: &std::path::Path, data: &[u8]) {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .expect("scratch file");
    // `mode` applies only to a file this call creates.
    f.set_permissions(std::fs::Permissions::from_mode(0o600))
        .expect("chmod 0600");
    f.write_all(data).expect("write scratch file");
}

fn read_status(s: &Status) {
    let layout = s.layout();
    let _ = s.header().prefix_log_head.load(Ordering::Relaxed);
    assert_eq!(s.peers().len(), layout.peers);
    assert_eq!(s.session_info().len(), layout.sessions);
    for p in s.peers() {
        if let Some(w) = p.record.read() {
            let _ = PeerRecord::decode(&w);
        }
    }
    for i in s.session_info() {
        if let Some(w) = i.record.read() {
            let _ = SessionSummary::decode(&w);
        }
    }
    for w in 0..layout.workers {
        let stats = s.worker_stats(w).expect("a worker within the layout");
        let _ = stats.heartbeat_ns.load(Ordering::Relaxed);
    }
    assert!(s.worker_stats(layout.workers).is_none());
}

/// What control and the workers do with a region they attached to.
fn use_region(r: &Region) {
    let layout = r.layout();
    assert_eq!(r.sessions().len(), layout.sessions);
    assert_eq!(r.peers().len(), layout.peers);
    assert_eq!(r.session_info().len(), layout.sessions);
    for s in r.sessions() {
        if let Some(w) = s.record.read() {
            let record = SessionRecord::decode(&w);
            let _ = r.index_lookup(record.local_index);
        }
        let _ = s.replay.is_exhausted();
        let _ = s.replay.validate(s.send_counter.load(Ordering::Relaxed));
    }
    for p in r.peers() {
        if let Some(w) = p.record.read() {
            let _ = PeerRecord::decode(&w);
        }
    }
    for w in 0..=layout.workers {
        let present = w < layout.workers;
        assert_eq!(r.worker_stats(w).is_some(), present);
        assert_eq!(r.to_control(w).is_some(), present);
        // A ring holds at most its capacity: draining one must end, whatever its indices say.
        let mut n = 0;
        while r.pop_event(w).is_some() {
            n += 1;
            assert!(n <= RING_CAP, "ring {w} yields more than its capacity");
        }
        let e = WorkerEvent::NeedSession { peer: 7 };
        if r.push_event(w, &e) {
            assert_eq!(
                r.pop_event(w),
                Some(e),
                "a drained ring gives back what was pushed"
            );
        }
    }

    // Control's first act on an inherited region; afterwards nothing is torn.
    r.repair_torn();
    assert!(r.sessions().iter().all(|s| !s.record.is_torn()));
    assert!(r.peers().iter().all(|p| !p.record.is_torn()));
    assert!(r.session_info().iter().all(|i| !i.record.is_torn()));

    let _ = r.index_probe_limit();
    let _ = r.index_lookup_probes(u32::MAX);
    // With `repair_torn` done, as control does on attaching: a file can hold entries past the
    // header's probe limit, which the repair covers, so an older entry for the same index
    // cannot hide the new one.
    let index = 0x5566_7788;
    if r.index_insert(index, 0) {
        assert_eq!(r.index_lookup(index), Some(0), "an inserted index is found");
    }
    r.index_remove(index);

    // The prefix log: whatever the file holds drains without panicking and at most a ring's
    // worth; then a change written is the change read.
    let log = r.prefix_log();
    let mut n = 0;
    log.drain(usize::MAX, |_| n += 1);
    assert!(n <= contract::prefix_log::PREFIX_LOG_CAP);
    let change = PrefixChange::Set {
        addr: [10, 0, 0, 0].into(),
        len: 8,
        peer: 1,
    };
    if log.push(change) {
        let mut got = Vec::new();
        log.drain(usize::MAX, |c| got.push(c));
        assert_eq!(got, [change], "a change written is read back");
    }
}
