//! Mapping the shared region and viewing it as its [`Layout`]. All `unsafe` of the shared
//! region is here and in its submodules: `map` (the mapping on a huge page boundary) and
//! `huge` (huge pages under the allowed-IPs table).

mod huge;
mod map;

pub use huge::{mapped_huge_kb, HugeBacking, HugeReport};
use map::{map, page_size};

use super::layout::*;
use crate::prefix_log::PrefixLog;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, thiserror::Error)]
pub enum ShmError {
    #[error("{path}: {what}: {source}")]
    Io {
        path: PathBuf,
        what: &'static str,
        source: std::io::Error,
    },
    #[error("{path}: not a wgxdp shared region (bad magic or version {version})")]
    Incompatible { path: PathBuf, version: u64 },
    #[error("{path}: file is {len} bytes, its header describes {expected}")]
    Truncated {
        path: PathBuf,
        len: usize,
        expected: usize,
    },
}

/// A mapping of the shared region. Dropping it unmaps it; the file stays until
/// [`Region::remove`] (control removes it on a clean `wgxdp down`).
#[derive(Debug)]
pub struct Region {
    ptr: NonNull<u8>,
    len: usize,
    layout: Layout,
    /// Where the allowed-IPs table lies, computed once: workers ask for it every round.
    table: TableParts,
    path: PathBuf,
    /// Whether the file is on tmpfs, asked of the open file when it was mapped (the path may
    /// be gone since: a removed region stays mapped).
    in_memory: Option<bool>,
}

/// The key-free status part of a region alone (header, worker counters, peer records), for
/// operators' commands: the sessions' keys are not mapped into their process at all.
#[derive(Debug)]
pub struct Status {
    ptr: NonNull<u8>,
    len: usize,
    layout: Layout,
}

// SAFETY: as for `Region`: the status part is atomics only.
unsafe impl Send for Status {}
// SAFETY: as above.
unsafe impl Sync for Status {}

/// Upper bounds a header's sizes must respect before any offset is computed from them, so
/// that a corrupt or hostile file cannot make the layout arithmetic overflow.
const MAX_SLOTS: usize = 1 << 26;
const MAX_WORKERS: usize = 1 << 12;

/// Reads and checks the header at `ptr` (at least a header long): the region's layout.
fn read_layout(h: &Header, path: &Path) -> Result<Layout, ShmError> {
    let version = h.version.load(Ordering::Relaxed);
    if h.magic.load(Ordering::Acquire) != MAGIC || version != VERSION {
        return Err(ShmError::Incompatible {
            path: path.to_path_buf(),
            version,
        });
    }
    let get = |a: &AtomicU64| usize::try_from(a.load(Ordering::Relaxed)).unwrap_or(usize::MAX);
    let layout = Layout {
        sessions: get(&h.session_slots),
        peers: get(&h.peer_slots),
        prefixes: get(&h.prefix_slots),
        workers: get(&h.workers),
    };
    if layout.sessions > MAX_SLOTS
        || layout.peers > MAX_SLOTS
        || layout.prefixes > MAX_SLOTS
        || layout.workers > MAX_WORKERS
    {
        return Err(ShmError::Incompatible {
            path: path.to_path_buf(),
            version,
        });
    }
    Ok(layout)
}

fn nix_euid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

fn unmap(ptr: NonNull<u8>, len: usize) {
    // SAFETY: callers pass a mapping made by `map` with its length, once, when no reference
    // into it remains (the owners' accessors borrow them).
    unsafe {
        libc::munmap(ptr.as_ptr().cast(), len);
    }
}

fn open_existing(path: &Path) -> Result<(File, usize), ShmError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(io(path, "open"))?;
    let meta = file.metadata().map_err(io(path, "stat"))?;
    // The region holds session keys: only a file of our own that nobody else may read or
    // write is one (a file planted by someone else, or opened up, is refused).
    {
        use std::os::unix::fs::MetadataExt as _;
        if meta.uid() != nix_euid() || meta.mode() & 0o077 != 0 {
            return Err(io(path, "open")(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!(
                    "owned by uid {} with mode {:o}: a region must be ours and 0600",
                    meta.uid(),
                    meta.mode() & 0o777
                ),
            )));
        }
    }
    let len = usize::try_from(meta.len()).unwrap_or(0);
    if len < std::mem::size_of::<Header>() {
        return Err(ShmError::Truncated {
            path: path.to_path_buf(),
            len,
            expected: std::mem::size_of::<Header>(),
        });
    }
    Ok((file, len))
}

// SAFETY: the region is made only of atomics (see the module docs of `shm`), so shared
// references to it may be used from any thread; the mapping itself is not thread-bound.
unsafe impl Send for Region {}
// SAFETY: as above: every access through `&Region` is an atomic operation.
unsafe impl Sync for Region {}

fn io<'a>(path: &'a Path, what: &'static str) -> impl FnOnce(std::io::Error) -> ShmError + 'a {
    move |source| ShmError::Io {
        path: path.to_path_buf(),
        what,
        source,
    }
}

impl Region {
    /// Creates the region file (mode 0600, must not exist) and initialises its header. The
    /// file is built under a temporary name and renamed into place, so whoever sees `path`
    /// sees a complete header.
    pub fn create(path: impl AsRef<Path>, layout: Layout) -> Result<Self, ShmError> {
        let path = path.as_ref();
        if path.exists() {
            return Err(io(path, "create")(std::io::Error::from(
                std::io::ErrorKind::AlreadyExists,
            )));
        }
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io(path, "create"))?;
        let len = layout.total_len();
        // A fresh file reads as zeros: every atomic starts at 0, which is each record's
        // "empty" state.
        let init = (|| {
            file.set_len(len as u64).map_err(io(path, "set size"))?;
            map(&file, len, path)
        })();
        let ptr = match init {
            Ok(p) => p,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        };
        let region = Self {
            ptr,
            len,
            layout,
            table: layout.table_parts().0,
            path: path.to_path_buf(),
            in_memory: huge::on_tmpfs(&file),
        };
        let h = region.header();
        h.session_slots
            .store(layout.sessions as u64, Ordering::Relaxed);
        h.peer_slots.store(layout.peers as u64, Ordering::Relaxed);
        h.prefix_slots
            .store(layout.prefixes as u64, Ordering::Relaxed);
        h.workers.store(layout.workers as u64, Ordering::Relaxed);
        h.version.store(VERSION, Ordering::Relaxed);
        h.magic.store(MAGIC, Ordering::Release);
        if let Err(e) = std::fs::rename(&tmp, path) {
            let _ = std::fs::remove_file(&tmp);
            return Err(io(path, "rename into place")(e));
        }
        Ok(region)
    }

    /// Maps an existing region, checking that it is one and reading its layout.
    pub fn attach(path: impl AsRef<Path>) -> Result<Self, ShmError> {
        let path = path.as_ref();
        let (file, len) = open_existing(path)?;
        let ptr = map(&file, len, path)?;
        let empty = Layout {
            sessions: 0,
            peers: 0,
            prefixes: 0,
            workers: 0,
        };
        let mut region = Self {
            ptr,
            len,
            layout: empty,
            table: empty.table_parts().0,
            path: path.to_path_buf(),
            in_memory: huge::on_tmpfs(&file),
        };
        let layout = read_layout(region.header(), path)?;
        if layout.total_len() > len {
            return Err(ShmError::Truncated {
                path: path.to_path_buf(),
                len,
                expected: layout.total_len(),
            });
        }
        region.layout = layout;
        region.table = layout.table_parts().0;
        Ok(region)
    }

    /// Deletes the region's file (mappings stay valid until dropped).
    pub fn remove(&self) -> Result<(), ShmError> {
        std::fs::remove_file(&self.path).map_err(io(&self.path, "remove"))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// # Safety
    ///
    /// `offset` must be 64-byte aligned and `offset + count * size_of::<T>()` within the
    /// mapping, and `T` must be a type made only of atomics for which all-zero bytes are a
    /// valid value (the region types are).
    unsafe fn slice<T>(&self, offset: usize, count: usize) -> &[T] {
        debug_assert!(
            offset.is_multiple_of(64) && offset + count * std::mem::size_of::<T>() <= self.len
        );
        // SAFETY: per this function's contract the range is inside the live mapping, aligned
        // for `T` (64 ≥ align_of::<T>() for every region type), and holds valid `T`s (zeroed
        // or written as `T`); `T` is atomics only, so shared access from other threads and
        // processes is not a data race.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().add(offset).cast::<T>(), count) }
    }

    pub fn header(&self) -> &Header {
        // SAFETY: the header is at offset 0, the mapping is at least a header long (checked on
        // create and attach), and `Header` is atomics only.
        unsafe { &self.slice::<Header>(0, 1)[0] }
    }

    pub fn sessions(&self) -> &[SessionSlot] {
        // SAFETY: offset and count come from the layout whose total length was checked.
        unsafe { self.slice(self.layout.sessions_offset(), self.layout.sessions) }
    }

    pub fn peers(&self) -> &[PeerSlot] {
        // SAFETY: as for `sessions`.
        unsafe { self.slice(self.layout.peers_offset(), self.layout.peers) }
    }

    /// The key-free summaries of the sessions (control writes one beside each record).
    pub fn session_info(&self) -> &[SessionInfo] {
        // SAFETY: as for `sessions`.
        unsafe { self.slice(self.layout.session_info_offset(), self.layout.sessions) }
    }

    fn index_table(&self) -> &[AtomicU64] {
        // SAFETY: as for `sessions`.
        unsafe { self.slice(self.layout.index_offset(), self.layout.index_slots()) }
    }

    /// The allowed-IPs changes for the data-path process ([`crate::prefix_log`]).
    pub fn prefix_log(&self) -> PrefixLog<'_> {
        let h = self.header();
        PrefixLog {
            head: &h.prefix_log_head,
            applied: &h.prefix_log_applied,
            resync: &h.prefix_log_resync,
            // SAFETY: as for `sessions`; an entry is 24 bytes, which the layout uses.
            entries: unsafe {
                self.slice(
                    self.layout.prefix_log_offset(),
                    crate::prefix_log::PREFIX_LOG_CAP,
                )
            },
        }
    }

    /// Events from worker `w` to control (`None` past the last worker).
    pub fn to_control(&self, w: usize) -> Option<&EventRing> {
        // SAFETY: as for `sessions`; one ring per worker.
        let rings: &[EventRing] =
            unsafe { self.slice(self.layout.rings_offset(), self.layout.workers) };
        rings.get(w)
    }

    /// Worker `w`: queues `event` for control. False if the ring is full (the caller counts
    /// it) or there is no such worker.
    pub fn push_event(&self, w: usize, event: &crate::WorkerEvent) -> bool {
        self.to_control(w).is_some_and(|r| r.push(event.encode()))
    }

    /// Control: the next event from worker `w` (messages it cannot decode are skipped).
    pub fn pop_event(&self, w: usize) -> Option<crate::WorkerEvent> {
        let ring = self.to_control(w)?;
        while let Some(msg) = ring.pop() {
            if let Some(e) = crate::WorkerEvent::decode(&msg) {
                return Some(e);
            }
        }
        None
    }

    /// Counters of worker `w`.
    pub fn worker_stats(&self, w: usize) -> Option<&WorkerStats> {
        // SAFETY: as for `sessions`.
        let stats: &[WorkerStats] =
            unsafe { self.slice(self.layout.stats_offset(), self.layout.workers) };
        stats.get(w)
    }

    // ---- receiver index -> session slot (written by control, read by workers) ------------

    fn index(&self) -> crate::index::IndexTable<'_> {
        crate::index::IndexTable {
            entries: self.index_table(),
            limit: &self.header().index_probe_limit,
        }
    }

    /// Control: maps receiver `index` to session `slot`. False if the table is full.
    pub fn index_insert(&self, index: u32, slot: u32) -> bool {
        self.index().insert(index, slot)
    }

    /// Control: forgets receiver `index`.
    pub fn index_remove(&self, index: u32) {
        self.index().remove(index);
    }

    /// Workers: the session slot of receiver `index`. The caller still checks the slot's
    /// record carries this index (the table may change under it).
    pub fn index_lookup(&self, index: u32) -> Option<u32> {
        self.index().lookup(index).0
    }

    /// [`Self::index_lookup`] and the number of table entries it read (at most
    /// [`Self::index_probe_limit`] + 1): for tests and benchmarks.
    pub fn index_lookup_probes(&self, index: u32) -> (Option<u32>, usize) {
        self.index().lookup(index)
    }

    /// How far past its home any present receiver index lies (see [`crate::index`]).
    pub fn index_probe_limit(&self) -> usize {
        self.index().limit()
    }

    /// Control, on attaching to a region a previous process left: records that process was
    /// writing when it died (odd sequence) are made empty, so that nothing half-written is
    /// ever taken for a session or a peer. Returns how many. (The allowed-IPs table needs no
    /// repair: control builds it anew in the other section and switches the workers to it.)
    pub fn repair_torn(&self) -> usize {
        // The index table's probe limit must cover every entry present (see `IndexTable`).
        self.index().repair();
        let mut n = 0;
        for s in self.sessions() {
            if s.record.is_torn() {
                // Its index entry, if any, now points at an invalid record: lookups drop.
                s.record.write(&[0; SESSION_WORDS]);
                n += 1;
            }
        }
        for i in self.session_info() {
            if i.record.is_torn() {
                i.record.write(&[0; 2]);
                n += 1;
            }
        }
        for p in self.peers() {
            if p.record.is_torn() {
                p.record.write(&PeerRecord::default().encode());
                n += 1;
            }
        }
        n
    }
}

/// The allowed-IPs table lives in the region: control writes it, the workers read it.
impl allowedips::Memory for Region {
    fn table(&self) -> allowedips::Shared<'_> {
        let parts = &self.table;
        let arrays = |s: &Section| {
            // SAFETY: offsets and counts come from the layout whose total length was checked
            // on create and attach; each array starts 64-byte aligned; the element types are
            // atomics (or arrays of them) for which zero is valid.
            unsafe {
                allowedips::Arrays {
                    dir: self.slice(s.dir, s.dims.dir),
                    nodes: self.slice(s.nodes, s.dims.nodes),
                    leaves: self.slice(s.leaves, s.dims.leaves),
                    singles: self.slice(s.singles, s.dims.singles),
                }
            }
        };
        allowedips::Shared {
            // SAFETY: as above; the header and the reader slots are atomics only.
            header: unsafe { &self.slice::<allowedips::TableHeader>(parts.header, 1)[0] },
            // SAFETY: as above.
            readers: unsafe { self.slice(parts.readers, allowedips::MAX_READERS) },
            v4: [arrays(&parts.v4[0]), arrays(&parts.v4[1])],
            v6: [arrays(&parts.v6[0]), arrays(&parts.v6[1])],
        }
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // The mapping made in `create`/`attach`, unmapped once; no reference into it outlives
        // `self` (all accessors borrow `self`).
        unmap(self.ptr, self.len);
    }
}

impl Status {
    /// Maps the status part of the region at `path`: the header first, to learn the layout,
    /// then exactly the key-free part.
    pub fn attach(path: impl AsRef<Path>) -> Result<Self, ShmError> {
        let path = path.as_ref();
        let (file, len) = open_existing(path)?;
        let head_len = std::mem::size_of::<Header>();
        let head = map(&file, head_len, path)?;
        // SAFETY: `head` maps at least a header (the file is at least that long, checked by
        // `open_existing`), page-aligned, and `Header` is atomics only.
        let layout = read_layout(unsafe { head.cast::<Header>().as_ref() }, path);
        unmap(head, head_len);
        let layout = layout?;
        if layout.total_len() > len {
            return Err(ShmError::Truncated {
                path: path.to_path_buf(),
                len,
                expected: layout.total_len(),
            });
        }
        let status_len = layout.status_len();
        let ptr = map(&file, status_len, path)?;
        Ok(Self {
            ptr,
            len: status_len,
            layout,
        })
    }

    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// # Safety
    ///
    /// As [`Region::slice`], within the status part.
    unsafe fn slice<T>(&self, offset: usize, count: usize) -> &[T] {
        debug_assert!(
            offset.is_multiple_of(64) && offset + count * std::mem::size_of::<T>() <= self.len
        );
        // SAFETY: as in `Region::slice`: inside the live mapping, aligned, atomics only.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().add(offset).cast::<T>(), count) }
    }

    pub fn header(&self) -> &Header {
        // SAFETY: the header is at offset 0 of the status part.
        unsafe { &self.slice::<Header>(0, 1)[0] }
    }

    pub fn peers(&self) -> &[PeerSlot] {
        // SAFETY: the peers lie inside the status part (`Layout::status_len`).
        unsafe { self.slice(self.layout.peers_offset(), self.layout.peers) }
    }

    /// The key-free summaries of the sessions.
    pub fn session_info(&self) -> &[SessionInfo] {
        // SAFETY: the summaries lie inside the status part (`Layout::status_len`).
        unsafe { self.slice(self.layout.session_info_offset(), self.layout.sessions) }
    }

    /// Counters of worker `w`.
    pub fn worker_stats(&self, w: usize) -> Option<&WorkerStats> {
        // SAFETY: the counters lie inside the status part.
        let stats: &[WorkerStats] =
            unsafe { self.slice(self.layout.stats_offset(), self.layout.workers) };
        stats.get(w)
    }
}

impl Drop for Status {
    fn drop(&mut self) {
        unmap(self.ptr, self.len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn temp_path(name: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("wgxdp-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_file(&p);
        p
    }

    fn layout() -> Layout {
        Layout {
            sessions: 64,
            peers: 16,
            prefixes: 32,
            workers: 2,
        }
    }

    #[test]
    fn create_attach_share_and_mode() {
        use std::os::unix::fs::PermissionsExt as _;
        let path = temp_path("share");
        let control = Region::create(&path, layout()).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // A second mapping (as a worker process would have) sees the first one's writes.
        let worker = Region::attach(&path).unwrap();
        assert_eq!(worker.layout(), layout());
        let rec = SessionRecord {
            local_index: 5,
            remote_index: 6,
            peer: 1,
            flags: SessionRecord::VALID,
            birth_ns: 9,
            send_key: [1; 32],
            recv_key: [2; 32],
        };
        control.sessions()[3].record.write(&rec.encode());
        assert!(control.index_insert(5, 3));
        assert_eq!(worker.index_lookup(5), Some(3));
        assert_eq!(
            SessionRecord::decode(&worker.sessions()[3].record.read().unwrap()),
            rec
        );
        worker.sessions()[3]
            .send_counter
            .fetch_add(10, Ordering::Relaxed);
        assert_eq!(
            control.sessions()[3].send_counter.load(Ordering::Relaxed),
            10
        );
        let e = crate::WorkerEvent::NeedSession { peer: 4 };
        assert!(worker.push_event(1, &e));
        assert_eq!(control.pop_event(1), Some(e));
        assert_eq!(control.pop_event(1), None);
        assert!(!worker.push_event(2, &e), "no third worker");
        // The status part alone: same counters and peers, and it ends before the sessions.
        let status = Status::attach(&path).unwrap();
        worker
            .worker_stats(1)
            .unwrap()
            .rx_wan
            .store(77, Ordering::Relaxed);
        assert_eq!(
            status
                .worker_stats(1)
                .unwrap()
                .rx_wan
                .load(Ordering::Relaxed),
            77
        );
        assert_eq!(status.peers().len(), layout().peers);
        assert!(status.len <= layout().sessions_offset());
        assert!(
            Region::create(&path, layout()).is_err(),
            "never overwrites a live region"
        );
        control.remove().unwrap();
        assert!(!path.exists());
    }

    #[test]
    fn attach_refuses_foreign_files() {
        use std::os::unix::fs::PermissionsExt as _;
        let path = temp_path("foreign");
        std::fs::write(&path, vec![7u8; 4096]).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let open = Region::attach(&path).unwrap_err().to_string();
        assert!(
            open.contains("0600"),
            "a file others may read is refused: {open}"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let link = temp_path("foreign-link");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert!(Region::attach(&link).is_err(), "symlinks are not followed");
        std::fs::remove_file(&link).unwrap();
        assert!(matches!(
            Region::attach(&path),
            Err(ShmError::Incompatible { .. })
        ));
        std::fs::write(&path, b"short").unwrap();
        assert!(matches!(
            Region::attach(&path),
            Err(ShmError::Truncated { .. })
        ));
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(Region::attach(&path), Err(ShmError::Io { .. })));
    }

    #[test]
    fn index_table_insert_remove_and_tombstones() {
        let path = temp_path("index");
        let r = Region::create(&path, layout()).unwrap();
        r.remove().unwrap();
        for i in 0..64u32 {
            assert!(r.index_insert(i.wrapping_mul(2_654_435_761), i));
        }
        for i in 0..64u32 {
            assert_eq!(r.index_lookup(i.wrapping_mul(2_654_435_761)), Some(i));
        }
        for i in (0..64u32).step_by(2) {
            r.index_remove(i.wrapping_mul(2_654_435_761));
        }
        for i in 0..64u32 {
            let want = (i % 2 == 1).then_some(i);
            assert_eq!(r.index_lookup(i.wrapping_mul(2_654_435_761)), want);
        }
        assert_eq!(r.index_lookup(12345), None);
    }

    /// A header whose sizes would overflow the layout's arithmetic (a corrupt or hostile
    /// file) is refused before any offset is computed from them.
    #[test]
    fn attach_refuses_absurd_sizes() {
        let path = temp_path("absurd");
        let r = Region::create(&path, layout()).unwrap();
        for (field, value) in [
            (&r.header().session_slots, u64::MAX / 2),
            (&r.header().peer_slots, 1 << 40),
            (&r.header().workers, 1 << 20),
        ] {
            let old = field.swap(value, Ordering::Relaxed);
            assert!(
                matches!(Region::attach(&path), Err(ShmError::Incompatible { .. })),
                "{value}"
            );
            assert!(Status::attach(&path).is_err());
            field.store(old, Ordering::Relaxed);
        }
        assert!(Region::attach(&path).is_ok());
        r.remove().unwrap();
    }

    /// A writer killed mid-write leaves records odd: a control attaching afterwards empties
    /// them, and a list publication after a killed one is still never read half-written.
    #[test]
    fn torn_records_are_repaired_on_attach() {
        let path = temp_path("torn");
        let r = Region::create(&path, layout()).unwrap();
        let rec = SessionRecord {
            local_index: 5,
            remote_index: 6,
            peer: 1,
            flags: SessionRecord::VALID,
            birth_ns: 9,
            send_key: [1; 32],
            recv_key: [2; 32],
        };
        r.sessions()[2].record.write(&rec.encode());
        r.sessions()[3].record.write(&rec.encode());
        // The dead writer: sequences made odd (as `write` does first), then nothing.
        crate::seqlock::tests::tear(&r.sessions()[3].record);
        crate::seqlock::tests::tear(&r.peers()[1].record);
        let again = Region::attach(&path).unwrap();
        assert_eq!(again.repair_torn(), 2);
        assert_eq!(again.repair_torn(), 0);
        let s3 = SessionRecord::decode(&again.sessions()[3].record.read().unwrap());
        assert!(!s3.is_valid() && s3.send_key == [0; 32]);
        assert_eq!(
            SessionRecord::decode(&again.sessions()[2].record.read().unwrap()),
            rec,
            "whole records stay"
        );
        assert!(again.peers()[1].record.read().is_some());
        again.remove().unwrap();
    }

    /// The allowed-IPs table control writes through its mapping is what a worker reads
    /// through another (as in two processes), and a second writer (a restarted control)
    /// replaces it whole while the reader keeps its handle.
    #[test]
    fn the_allowed_ips_table_is_shared_through_the_region() {
        use allowedips::{AllowedIps, Memory, Reader};
        use proto::allowedips::Prefix;
        let path = temp_path("table");
        let control = Arc::new(Region::create(&path, layout()).unwrap());
        let data_path = Arc::new(Region::attach(&path).unwrap());
        let p = |s: &str, l| Prefix::new(s.parse().unwrap(), l).unwrap();
        let mut reader = Reader::attach(data_path.clone() as Arc<dyn Memory>).unwrap();
        let at = |r: &mut Reader, s: &str| r.lookup(s.parse().unwrap());
        assert_eq!(
            at(&mut reader, "198.18.0.1"),
            None,
            "a fresh region is an empty table"
        );
        let mut writer = AllowedIps::attach(control.clone(), [(p("198.18.0.0", 15), 3)]).unwrap();
        assert_eq!(at(&mut reader, "198.18.0.1"), Some(3));
        writer.insert(p("2001:2::", 48), 4).unwrap();
        writer.insert(p("198.18.7.7", 32), 5).unwrap();
        assert_eq!(at(&mut reader, "2001:2::1"), Some(4));
        assert_eq!(at(&mut reader, "198.18.7.7"), Some(5));
        assert_eq!(at(&mut reader, "198.18.7.8"), Some(3));
        drop(writer);
        let restarted = Arc::new(Region::attach(&path).unwrap());
        control.remove().unwrap();
        let writer = AllowedIps::attach(restarted, [(p("198.18.7.0", 24), 9)]).unwrap();
        assert_eq!(at(&mut reader, "198.18.7.7"), Some(9));
        assert_eq!(at(&mut reader, "198.18.0.1"), None);
        assert_eq!(at(&mut reader, "2001:2::1"), None);
        assert_eq!(writer.len(), 1);
    }
}
