//! Backing the allowed-IPs table with huge pages, where the region's file system can.
//!
//! Random lookups in a provider-sized table (100,000 peers, about 1M prefixes) walk 40-60 MB
//! of the region, three or four dependent reads per lookup, each a TLB miss with 4 KiB pages,
//! and in a VM each miss walks two sets of page tables. With the same table in 2 MiB pages
//! the same process looked up IPv4 addresses 1.0-1.6x as fast, IPv6 1.05-1.15x
//! (bench/RESULTS.md, "allowedips in huge pages").
//!
//! The region is a file. On tmpfs (where `/run` is on most systems) the kernel puts a 2 MiB
//! range of a file in one huge page when asked (`MADV_COLLAPSE`, Linux 6.1), whatever the
//! mount's `huge=` option and the system's shmem setting, unless that is `deny`. Control
//! asks for each 2 MiB chunk of the memory the readers walk ([`allowedips::AllowedIps::in_use`])
//! once at least half of its pages are in use anyway (`mincore`): a small or sparse table
//! (a few peers' prefixes scatter over the 8 MB directory) is not made resident whole. Every
//! process maps the region 2 MiB-aligned (`map`), so the kernel maps such a chunk with one
//! entry in each worker's page tables too, and replaces the workers' small entries itself
//! when it collapses the chunk.
//!
//! Where the file system keeps no huge pages for files (ext4, btrfs; kernels before 6.1),
//! the first request fails with `EINVAL`: that is reported once and control stops asking.
//! Nothing else changes: the table works the same in small pages.

use super::Region;
use std::io;
use std::ops::Range;

/// The huge page size the table is backed with (x86-64 and arm64 with 4 KiB pages).
pub const HUGE: usize = 2 << 20;

/// Control's requests for huge pages under the table: what the kernel refused, so that it
/// is asked no more.
#[derive(Debug, Default)]
pub struct HugeBacking {
    refused: bool,
}

/// What one [`HugeBacking::follow`] did.
#[derive(Debug, Default)]
pub struct HugeReport {
    /// Chunks of 2 MiB now in huge pages (already before, or by this call).
    pub backed: usize,
    /// Chunks left in small pages because fewer than half of their pages are in use.
    pub sparse: usize,
    /// Chunks the kernel could not back this time (no free huge page, pages busy): asked
    /// again on the next call.
    pub failed: usize,
    /// Why the kernel refused, on the call where it first did (every later call does nothing).
    pub refused: Option<io::Error>,
}

impl HugeBacking {
    /// Whether the kernel refused huge pages for this region's file.
    pub fn refused(&self) -> bool {
        self.refused
    }

    /// Asks for huge pages under every dense 2 MiB chunk of `region` that holds part of
    /// `parts` (slices of the region's table, as [`allowedips::AllowedIps::in_use`] gives
    /// them). A chunk already in a huge page costs one cheap call; a new one costs copying its
    /// pages once (about a millisecond), so the caller decides how often to follow a changing
    /// table.
    pub fn follow(&mut self, region: &Region, parts: &[allowedips::Arrays<'_>]) -> HugeReport {
        let mut report = HugeReport::default();
        if self.refused {
            return report;
        }
        let mut chunks: Vec<usize> = parts
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
            .flat_map(|r| r.start / HUGE..r.end.div_ceil(HUGE))
            // The file's last partial chunk cannot be one huge page.
            .filter(|c| (c + 1) * HUGE <= region.len)
            .collect();
        chunks.sort_unstable();
        chunks.dedup();
        for c in chunks {
            if region.resident_pages(c) * 2 < HUGE / super::page_size() {
                report.sparse += 1;
                continue;
            }
            match region.collapse(c) {
                Ok(()) => report.backed += 1,
                Err(e) => match e.raw_os_error() {
                    Some(libc::EAGAIN | libc::ENOMEM | libc::EBUSY) => report.failed += 1,
                    _ => {
                        self.refused = true;
                        report.refused = Some(e);
                        return report;
                    }
                },
            }
        }
        report
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

impl Region {
    /// Whether the region's file is on tmpfs, in memory only. On a disk file system
    /// the kernel writes its pages back to the disk, session keys included, and gives the
    /// table no huge pages. `None` if the file system cannot be asked.
    pub fn in_memory(&self) -> Option<bool> {
        use nix::sys::statfs::{statfs, TMPFS_MAGIC};
        let fs = statfs(self.path()).ok()?.filesystem_type();
        Some(fs == TMPFS_MAGIC)
    }

    /// The byte range of `slice` within the mapping, if it lies there (an empty slice has none).
    fn offsets<T>(&self, slice: &[T]) -> Option<Range<usize>> {
        let start = (slice.as_ptr() as usize).checked_sub(self.ptr.as_ptr() as usize)?;
        let end = start + std::mem::size_of_val(slice);
        (end <= self.len && end > start).then_some(start..end)
    }

    /// How many pages of 2 MiB chunk `c` the file has in memory (0 if the kernel cannot say).
    fn resident_pages(&self, c: usize) -> usize {
        let mut vec = vec![0u8; HUGE / super::page_size()];
        // SAFETY: `c * HUGE .. (c + 1) * HUGE` lies inside the mapping (the caller's filter),
        // page-aligned because the mapping is; `vec` has one byte per page of it. mincore
        // only reports, it changes nothing.
        let r = unsafe {
            libc::mincore(
                self.ptr.as_ptr().add(c * HUGE).cast(),
                HUGE,
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
                self.ptr.as_ptr().add(c * HUGE).cast(),
                HUGE,
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
        let path = dir.join(format!("wgxdp-huge-{tag}-{}", std::process::id()));
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

    /// `/dev/shm` if it is tmpfs (as it is on every systemd machine), else `None`.
    fn tmpfs() -> Option<&'static Path> {
        let dir = Path::new("/dev/shm");
        let st = nix::sys::statfs::statfs(dir).ok()?;
        (st.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC).then_some(dir)
    }

    /// Whether the running kernel is 6.1 or later.
    fn collapse_in_kernel() -> bool {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
        let mut v = release
            .split(|c: char| !c.is_ascii_digit())
            .map(|n| n.parse::<u32>());
        match (v.next(), v.next()) {
            (Some(Ok(major)), Some(Ok(minor))) => (major, minor) >= (6, 1),
            _ => panic!("unreadable kernel release {release:?}"),
        }
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

    #[test]
    fn a_dense_table_goes_into_huge_pages_that_the_workers_map_and_read_the_same() {
        let Some(dir) = tmpfs() else {
            eprintln!("SKIP: /dev/shm is not tmpfs here; huge pages for files need it");
            return;
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
        let report = huge.follow(&writer, &table.in_use());
        if let (Some(e), false) = (&report.refused, collapse_in_kernel()) {
            eprintln!("SKIP: this kernel is older than 6.1, which brought MADV_COLLAPSE ({e})");
            return;
        }
        assert!(
            report.backed >= 4,
            "the directory's 4 chunks at least: {report:?}"
        );
        assert_eq!(report.failed, 0, "{report:?}");
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

    #[test]
    fn chunks_mostly_unused_stay_in_small_pages() {
        let Some(dir) = tmpfs() else {
            eprintln!("SKIP: /dev/shm is not tmpfs here; huge pages for files need it");
            return;
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
            grown <= (report.backed * HUGE / 2) as u64,
            "{grown} bytes more for {report:?}"
        );
        let kb: u64 = mapped_huge_kb(&file.0).iter().sum();
        assert_eq!(kb, (report.backed * HUGE / 1024) as u64, "{report:?}");
    }

    #[test]
    fn a_file_system_without_huge_pages_is_refused_once_and_the_table_works_on() {
        // The temporary directory when it is not tmpfs (ext4 on this project's machines).
        let dir = std::env::temp_dir();
        let fs = nix::sys::statfs::statfs(&dir).unwrap().filesystem_type();
        if fs == nix::sys::statfs::TMPFS_MAGIC {
            eprintln!(
                "SKIP: {} is tmpfs here; no disk file system to try",
                dir.display()
            );
            return;
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
