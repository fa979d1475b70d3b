//! Backing the allowed-IPs table with huge pages, where the region's file system can.
//!
//! Random lookups in a provider-sized table (100,000 peers, about 1M prefixes) walk 40-60 MB
//! of the region, three or four dependent reads per lookup, each a TLB miss with 4 KiB pages,
//! and in a VM each miss walks two sets of page tables. With the same table in 2 MiB pages
//! the same process looked up IPv4 addresses 1.24-1.43x as fast in 21 of 24 comparisons
//! (0.91-1.33x in a slow phase of the machine), IPv6 addresses 1.09-1.41x (bench/RESULTS.md,
//! "allowedips in huge pages").
//!
//! The region is a file. On tmpfs (where `/run` is on most systems) the kernel puts a 2 MiB
//! range of a file in one huge page when asked (`MADV_COLLAPSE`, Linux 6.1), whatever the
//! mount's `huge=` option and the system's shmem setting, unless that is `deny`. Control asks
//! for each 2 MiB chunk of the memory the readers walk
//! ([`allowedips::AllowedIps::in_use`]) once at least half of its pages are in use anyway
//! (`mincore`): a small or sparse table is not made resident whole. The layout puts the
//! table's arrays on chunk boundaries ([`HUGE_PAGE`]), so no chunk holds what workers write.
//! Every process maps the region 2 MiB-aligned (`map`), so the kernel can map such a chunk
//! with one entry in each worker's page tables too (whether it replaces a worker's existing
//! small entries at once depends on the kernel: `ShmemPmdMapped` in the worker's smaps says).
//!
//! A collapse copies the chunk (and may have to compact memory first), so control works
//! through a round of chunks a few at a time ([`HugeBacking::step`]). Off tmpfs (ext4, btrfs
//! keep no huge pages for a file mapped for writing) or where base pages are not 4 KiB,
//! nothing is asked at all. On tmpfs a chunk the kernel did not collapse
//! (no free huge page, a page in use, the mount full; every chunk on a kernel before 6.1) is
//! asked for again in a later round. Nothing else changes: the table works the same in small
//! pages.

use super::Region;
use crate::layout::HUGE_PAGE;
use std::io;
use std::ops::Range;

/// Control's requests for huge pages under the table: the round of chunks under way, and
/// whether the kernel ever did or refused one.
#[derive(Debug, Default)]
pub struct HugeBacking {
    /// Not asked at all: the file is not on tmpfs, or base pages are not 4 KiB.
    refused: bool,
    /// The round's chunks still to ask for, last first.
    pending: Vec<usize>,
    round: HugeReport,
}

/// What one round of [`HugeBacking`] did.
#[derive(Debug, Default)]
pub struct HugeReport {
    /// Chunks of 2 MiB now in huge pages (already before, or by this round).
    pub backed: usize,
    /// Chunks left in small pages because fewer than half of their pages are in use.
    pub sparse: usize,
    /// Chunks the kernel could not back this time (no free huge page, pages busy, the file
    /// system full): for the next round.
    pub failed: usize,
    /// Why huge pages cannot be had for this region, in the first round (no round follows).
    pub refused: Option<io::Error>,
}

impl HugeBacking {
    /// Whether huge pages cannot be had for this region's file.
    pub fn refused(&self) -> bool {
        self.refused
    }

    /// Whether a round is under way.
    pub fn busy(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Starts a round over every 2 MiB chunk of `region` that holds part of `parts` (slices
    /// of the region's table, as [`allowedips::AllowedIps::in_use`] gives them), replacing
    /// any round under way.
    pub fn start(&mut self, region: &Region, parts: &[allowedips::Arrays<'_>]) {
        self.round = HugeReport::default();
        self.pending.clear();
        if self.refused {
            return;
        }
        // Off tmpfs the kernel collapses no chunk of a file mapped for writing; with other
        // base pages a 2 MiB range is not one huge page. Neither is worth a request.
        if super::page_size() * 512 != HUGE_PAGE {
            return self.refuse(io::Error::other("base pages are not 4 KiB"));
        }
        if region.in_memory() != Some(true) {
            return self.refuse(io::Error::other("the region's file is not on tmpfs"));
        }
        self.pending = parts
            .iter()
            .flat_map(|a| {
                [
                    region.offsets(a.dir),
                    region.offsets(a.nodes),
                    region.offsets(a.leaves),
                    region.offsets(a.singles),
                ]
            })
            .flatten()
            .flat_map(|r| r.start / HUGE_PAGE..r.end.div_ceil(HUGE_PAGE))
            // The file's last partial chunk cannot be one huge page.
            .filter(|c| (c + 1) * HUGE_PAGE <= region.len)
            .collect();
        self.pending.sort_unstable_by(|a, b| b.cmp(a));
        self.pending.dedup();
    }

    /// Asks for up to `budget` more chunks of the round. Returns the round's report once it
    /// is done (at once when no round is under way), `None` while chunks are left.
    pub fn step(&mut self, region: &Region, budget: usize) -> Option<HugeReport> {
        for _ in 0..budget {
            let Some(c) = self.pending.pop() else { break };
            if region.resident_pages(c) * 2 < HUGE_PAGE / super::page_size() {
                self.round.sparse += 1;
                continue;
            }
            // Every failure on tmpfs is left for the next round: ENOMEM and EAGAIN (no free
            // huge page, a page in use), and EINVAL, which the kernel also answers for one
            // chunk's trouble (a full size-limited mount, a page under writeback). On a
            // kernel before 6.1 that costs a few calls per round, rounds minutes apart.
            match region.collapse(c) {
                Ok(()) => self.round.backed += 1,
                Err(_) => self.round.failed += 1,
            }
        }
        (!self.busy()).then(|| std::mem::take(&mut self.round))
    }

    /// A whole round at once: [`HugeBacking::start`], then every chunk.
    pub fn follow(&mut self, region: &Region, parts: &[allowedips::Arrays<'_>]) -> HugeReport {
        self.start(region, parts);
        self.step(region, usize::MAX).unwrap_or_default()
    }

    fn refuse(&mut self, why: io::Error) {
        self.refused = true;
        self.pending.clear();
        self.round.refused = Some(why);
    }
}

/// kB of the file at `path` that this process maps with huge page entries, per mapping of it
/// (from `/proc/self/smaps`; empty where that cannot be read). For tests and benchmarks.
pub fn mapped_huge_kb(path: &std::path::Path) -> Vec<u64> {
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap_or_default();
    let name = path.to_string_lossy();
    let mut ours = false;
    let mut kb = Vec::new();
    for line in smaps.lines() {
        if let Some(v) = line.strip_prefix("ShmemPmdMapped:") {
            if ours {
                kb.push(v.trim().trim_end_matches(" kB").parse().unwrap_or(0));
            }
        } else if line.split_whitespace().count() >= 5 && line.contains('-') {
            // A mapping's first line: range, permissions, offset, device, inode, path.
            ours = line.ends_with(name.as_ref());
        }
    }
    kb
}

/// Whether the open `file` is on tmpfs (`None` if the file system cannot be asked).
pub(super) fn on_tmpfs(file: &std::fs::File) -> Option<bool> {
    let fs = nix::sys::statfs::fstatfs(file).ok()?.filesystem_type();
    Some(fs == nix::sys::statfs::TMPFS_MAGIC)
}

impl Region {
    /// Whether the region's file is on tmpfs, in memory only. On a disk file system
    /// the kernel writes its pages back to the disk, session keys included, and gives the
    /// table no huge pages. `None` if the file system could not be asked.
    pub fn in_memory(&self) -> Option<bool> {
        self.in_memory
    }

    /// The byte range of `slice` within the mapping, if it lies there (an empty slice has none).
    fn offsets<T>(&self, slice: &[T]) -> Option<Range<usize>> {
        let start = (slice.as_ptr() as usize).checked_sub(self.ptr.as_ptr() as usize)?;
        let end = start + std::mem::size_of_val(slice);
        (end <= self.len && end > start).then_some(start..end)
    }

    /// How many pages of 2 MiB chunk `c` the file has in memory (0 if the kernel cannot say).
    fn resident_pages(&self, c: usize) -> usize {
        let mut vec = vec![0u8; HUGE_PAGE / super::page_size()];
        // SAFETY: `c * HUGE_PAGE .. (c + 1) * HUGE_PAGE` lies inside the mapping (the
        // caller's filter), page-aligned because the mapping is; `vec` has one byte per page
        // of it. mincore only reports, it changes nothing.
        let r = unsafe {
            libc::mincore(
                self.ptr.as_ptr().add(c * HUGE_PAGE).cast(),
                HUGE_PAGE,
                vec.as_mut_ptr(),
            )
        };
        if r != 0 {
            return 0;
        }
        vec.iter().filter(|&&b| b & 1 != 0).count()
    }

    /// Asks the kernel to hold 2 MiB chunk `c` of the file in one huge page.
    fn collapse(&self, c: usize) -> io::Result<()> {
        // SAFETY: as in `resident_pages`, a 2 MiB-aligned range inside the mapping. The
        // collapse keeps the contents: the kernel unmaps the small pages from every process,
        // copies them into the huge page and maps that instead, while an access in between
        // waits for it; so readers and the writer see the same bytes throughout.
        let r = unsafe {
            libc::madvise(
                self.ptr.as_ptr().add(c * HUGE_PAGE).cast(),
                HUGE_PAGE,
                libc::MADV_COLLAPSE,
            )
        };
        if r == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Layout;
    use allowedips::workload::{inside, provider_v4, Rng};
    use allowedips::{AllowedIps, PeerId, Prefix, Reader, Reference};
    use std::path::{Path, PathBuf};
    use std::sync::Arc;

    /// A region file removed when the test ends, failed or not.
    struct Temp(PathBuf);

    impl Drop for Temp {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn create(dir: &Path, tag: &str, prefixes: usize) -> (Temp, Arc<Region>, Arc<Region>) {
        // Tests run in parallel threads of one process, several probing: a name per call.
        static CALL: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = CALL.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = dir.join(format!("wgxdp-huge-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let layout = Layout {
            sessions: 4,
            peers: 4,
            prefixes,
            workers: 1,
        };
        let writer = Arc::new(Region::create(&path, layout).unwrap());
        let temp = Temp(path);
        let worker = Arc::new(Region::attach(&temp.0).unwrap());
        (temp, writer, worker)
    }

    /// `/dev/shm` if this system can give a file there huge pages on request; else why not.
    /// Not tmpfs, a kernel before 6.1 or without transparent huge pages, or shmem huge pages
    /// denied system-wide are reasons to skip; anything else that stops a collapse of a
    /// region's aligned chunk fails the test.
    fn huge_pages_on_tmpfs() -> Result<&'static Path, String> {
        let dir = Path::new("/dev/shm");
        let fs = nix::sys::statfs::statfs(dir).map_err(|e| format!("/dev/shm: {e}"))?;
        if fs.filesystem_type() != nix::sys::statfs::TMPFS_MAGIC {
            return Err("/dev/shm is not tmpfs here; huge pages for files need it".into());
        }
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
        let mut v = release
            .split(|c: char| !c.is_ascii_digit())
            .map(|n| n.parse::<u32>());
        if let (Some(Ok(major)), Some(Ok(minor))) = (v.next(), v.next()) {
            if (major, minor) < (6, 1) {
                return Err(format!(
                    "kernel {}: MADV_COLLAPSE came in 6.1",
                    release.trim()
                ));
            }
        }
        let shmem = "/sys/kernel/mm/transparent_hugepage/shmem_enabled";
        match std::fs::read_to_string(shmem) {
            Err(_) => return Err("this kernel has no transparent huge pages".into()),
            Ok(s) if s.contains("[deny]") => return Err(format!("{shmem} is deny")),
            Ok(_) => {}
        }
        let (_file, region, _) = create(dir, "probe", 100);
        let chunk = region.layout.table_parts().0.v4[0].dir / HUGE_PAGE;
        // Pages in it (an empty directory reads as zeros either way): a chunk of holes only
        // is nothing to collapse.
        let words = allowedips::Memory::table(&*region).v4[0].dir;
        for word in words.iter().take(HUGE_PAGE / 8).step_by(512) {
            word.store(0, std::sync::atomic::Ordering::Relaxed);
        }
        // A busy machine may have no free huge page at a given moment, or a page in use.
        for _ in 0..5 {
            match region.collapse(chunk) {
                Ok(()) => return Ok(dir),
                Err(e) if matches!(e.raw_os_error(), Some(libc::ENOMEM | libc::EAGAIN)) => {
                    std::thread::sleep(std::time::Duration::from_millis(200));
                }
                Err(e) => panic!("this system has huge pages for tmpfs, yet: {e}"),
            }
        }
        Err("no free huge page for a while (ENOMEM or EAGAIN)".into())
    }

    /// Random lookups through `reader` agree with the naive reference.
    fn agree(reader: &mut Reader, reference: &Reference, prefixes: &[(Prefix, PeerId)]) {
        let mut rng = Rng::new(7);
        let addrs: Vec<u32> = (0..4096)
            .map(|i| {
                let ip = if i % 4 == 0 {
                    std::net::IpAddr::V4((rng.next_u64() as u32).into())
                } else {
                    inside(
                        prefixes[rng.below(prefixes.len() as u64) as usize].0,
                        &mut rng,
                    )
                };
                match ip {
                    std::net::IpAddr::V4(a) => u32::from(a),
                    std::net::IpAddr::V6(_) => unreachable!(),
                }
            })
            .collect();
        let mut out = vec![None; 256];
        let snap = reader.pin();
        for chunk in addrs.chunks(256) {
            snap.lookup_v4_batch(chunk, &mut out);
            for (a, got) in chunk.iter().zip(&out) {
                assert_eq!(*got, reference.lookup_v4(*a), "lookup of {a:#x}");
            }
        }
    }

    /// Every process maps the region on a huge page boundary and leaves none of its
    /// reservation around the mapping; the table's arrays start and end on one (any file
    /// system: the layout and the mapping do not depend on it).
    #[test]
    fn the_mapping_and_the_tables_arrays_lie_on_huge_page_boundaries() {
        let (file, writer, worker) = create(&std::env::temp_dir(), "aligned", 40_000);
        let (parts, end) = writer.layout.table_parts();
        assert_eq!(parts.v4[0].dir % HUGE_PAGE, 0);
        assert!(parts.readers + allowedips::MAX_READERS * 64 <= parts.v4[0].dir);
        assert_eq!(
            end % HUGE_PAGE,
            0,
            "nothing after the table shares its last chunk"
        );
        assert_eq!(writer.layout.prefix_log_offset(), end);
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        let ranges: Vec<(usize, usize, &str)> = maps
            .lines()
            .filter_map(|l| {
                let mut f = l.split_whitespace();
                let (a, b) = f.next()?.split_once('-')?;
                let a = usize::from_str_radix(a, 16).ok()?;
                let b = usize::from_str_radix(b, 16).ok()?;
                Some((a, b, f.next()?))
            })
            .collect();
        for region in [&writer, &worker] {
            let start = region.ptr.as_ptr() as usize;
            assert_eq!(start % HUGE_PAGE, 0);
            let end = start + region.len.next_multiple_of(super::super::page_size());
            assert!(
                ranges.iter().any(|&(a, b, _)| a == start && b == end),
                "{maps}"
            );
            let slack = ranges
                .iter()
                .find(|&&(a, b, perms)| perms == "---p" && (b == start || a == end));
            assert!(
                slack.is_none(),
                "reservation left next to the region: {slack:?}"
            );
        }
        drop(file);
    }

    #[test]
    fn a_dense_table_goes_into_huge_pages_that_the_workers_map_and_read_the_same() {
        let dir = match huge_pages_on_tmpfs() {
            Ok(dir) => dir,
            Err(why) => return testbed::note_skip(&why),
        };
        // 30,000 prefixes in random places touch nearly every page of the 8 MB directory.
        let prefixes = provider_v4(3_000, 9);
        let (file, writer, worker) = create(dir, "dense", 40_000);
        assert_eq!(writer.in_memory(), Some(true));
        let table = AllowedIps::attach(writer.clone(), prefixes.iter().copied()).unwrap();
        let mut reference = Reference::new();
        for &(p, peer) in &prefixes {
            reference.insert(p, peer);
        }
        let mut reader = Reader::attach(worker).unwrap();
        agree(&mut reader, &reference, &prefixes);

        let mut huge = HugeBacking::default();
        // A busy machine may have no free huge page at a given moment (ENOMEM) or a page in
        // use (EAGAIN): those chunks wait for the next round.
        let mut report = huge.follow(&writer, &table.in_use());
        for _ in 0..3 {
            if report.failed == 0 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
            report = huge.follow(&writer, &table.in_use());
        }
        assert!(report.refused.is_none(), "{report:?}");
        assert!(
            report.backed >= 4,
            "the directory's 4 chunks at least: {report:?}"
        );
        // Both mappings: the writer's, where control asked, and the worker's, whose small
        // entries the kernel dropped, once its lookups fault the chunks back in.
        agree(&mut reader, &reference, &prefixes);
        let kb = mapped_huge_kb(&file.0);
        assert_eq!(kb.len(), 2, "two mappings of the region: {kb:?}");
        assert!(
            kb.iter().all(|&k| k >= 4 * 2048),
            "each maps the directory with huge page entries: {kb:?}"
        );
        // Asking again finds them in place.
        let again = huge.follow(&writer, &table.in_use());
        assert_eq!(again.backed, report.backed, "{again:?}");
        assert!(again.refused.is_none());
    }

    /// Bytes of memory the file holds (tmpfs counts its pages in the file's blocks).
    fn held(path: &Path) -> u64 {
        use std::os::unix::fs::MetadataExt as _;
        std::fs::metadata(path).unwrap().blocks() * 512
    }

    /// Control keeps its region mapped after the file is removed (a test's region, or a
    /// `down` racing a step): the file system is the one it was mapped from.
    #[test]
    fn a_removed_regions_file_system_is_still_known() {
        let dir = Path::new("/dev/shm");
        let tmpfs = nix::sys::statfs::statfs(dir)
            .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC);
        let (file, writer, worker) = create(dir, "removed", 100);
        writer.remove().unwrap();
        assert!(!file.0.exists());
        assert_eq!(writer.in_memory(), Some(tmpfs));
        assert_eq!(worker.in_memory(), Some(tmpfs));
    }

    #[test]
    fn chunks_mostly_unused_stay_in_small_pages() {
        let dir = match huge_pages_on_tmpfs() {
            Ok(dir) => dir,
            Err(why) => return testbed::note_skip(&why),
        };
        // A few peers' prefixes: the bulk build writes both directories whole (16 MB,
        // resident anyway), the few nodes, leaves and singletons touch a page or two each.
        let (file, writer, _worker) = create(dir, "sparse", 1_000);
        let prefixes = provider_v4(10, 3);
        let table = AllowedIps::attach(writer.clone(), prefixes.iter().copied()).unwrap();
        let before = held(&file.0);
        let report = HugeBacking::default().follow(&writer, &table.in_use());
        assert!(report.refused.is_none(), "{report:?}");
        assert!(report.sparse >= 1, "the arena's first chunk: {report:?}");
        // A chunk is collapsed only when at least half of it is in memory already.
        let grown = held(&file.0).saturating_sub(before);
        assert!(
            grown <= (report.backed * HUGE_PAGE / 2) as u64,
            "{grown} bytes more for {report:?}"
        );
        let kb: u64 = mapped_huge_kb(&file.0).iter().sum();
        assert_eq!(kb, (report.backed * HUGE_PAGE / 1024) as u64, "{report:?}");
    }

    /// A round asked for a few chunks at a time ends as the whole round at once does.
    #[test]
    fn a_round_in_steps_does_what_a_whole_one_does() {
        let dir = match huge_pages_on_tmpfs() {
            Ok(dir) => dir,
            Err(why) => return testbed::note_skip(&why),
        };
        let (_file, writer, _worker) = create(dir, "steps", 1_000);
        let prefixes = provider_v4(10, 3);
        let table = AllowedIps::attach(writer.clone(), prefixes.iter().copied()).unwrap();
        let mut huge = HugeBacking::default();
        huge.start(&writer, &table.in_use());
        let mut steps = 0;
        let stepped = loop {
            steps += 1;
            assert!(huge.busy());
            if let Some(r) = huge.step(&writer, 2) {
                break r;
            }
        };
        assert!(!huge.busy());
        let whole = huge.follow(&writer, &table.in_use());
        assert_eq!(
            (stepped.backed, stepped.sparse),
            (whole.backed, whole.sparse)
        );
        let chunks = stepped.backed + stepped.sparse + stepped.failed;
        assert_eq!(steps, chunks.div_ceil(2), "two chunks a step");
        assert!(
            chunks >= 9,
            "both directories and the arena's first chunks: {stepped:?}"
        );
    }

    #[test]
    fn a_file_system_without_huge_pages_is_refused_once_and_the_table_works_on() {
        // The temporary directory when it is not tmpfs (ext4 on this project's machines).
        let dir = std::env::temp_dir();
        let fs = nix::sys::statfs::statfs(&dir).unwrap().filesystem_type();
        if fs == nix::sys::statfs::TMPFS_MAGIC {
            let why = format!(
                "{} is tmpfs here; no disk file system to try",
                dir.display()
            );
            return testbed::note_skip(&why);
        }
        let prefixes = provider_v4(3_000, 9);
        let (_file, writer, worker) = create(&dir, "disk", 40_000);
        assert_eq!(writer.in_memory(), Some(false), "control warns about it");
        let table = AllowedIps::attach(writer.clone(), prefixes.iter().copied()).unwrap();
        let mut huge = HugeBacking::default();
        let report = huge.follow(&writer, &table.in_use());
        assert!(report.refused.is_some(), "{report:?}");
        assert!(huge.refused());
        let later = huge.follow(&writer, &table.in_use());
        assert!(later.refused.is_none() && later.backed == 0 && later.sparse == 0);
        let mut reference = Reference::new();
        for &(p, peer) in &prefixes {
            reference.insert(p, peer);
        }
        agree(&mut Reader::attach(worker).unwrap(), &reference, &prefixes);
    }
}
