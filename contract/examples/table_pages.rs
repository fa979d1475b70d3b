//! The workers' allowed-IPs lookups in small pages and in huge pages, side by side in one
//! process: the provider table of one family (`allowedips::workload`, the seeds and query set
//! of `allowedips/benches/lpm.rs`) built twice, each in a region of its own on tmpfs, one of
//! them then backed with huge pages as control does it (`contract::region::HugeBacking`).
//! Each region is read through a second mapping, as a worker maps it. Rounds alternate
//! between the two tables; each round times 5 x 65,536 random lookups in batches of 256 and
//! each line prints the best round of ten per table.
//!
//! ```text
//! cargo build --release -p contract --example table_pages
//! FAM=v4 target/release/examples/table_pages    # FAM=v4|v6, DIR (default /dev/shm)
//! ```

use allowedips::workload::{by_family, provider_v4, provider_v6, random_inside, Rng};
use allowedips::{AllowedIps, Reader};
use contract::region::{mapped_huge_kb, HugeBacking};
use contract::{Layout, Region};
use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

const QUERIES: usize = 1 << 16;
const BATCH: usize = 256;

/// A region with room for `prefixes`, removed again when the example ends.
struct Temp(PathBuf);

impl Drop for Temp {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn region(dir: &str, tag: &str, prefixes: usize) -> (Temp, Arc<Region>, Arc<Region>) {
    let path = PathBuf::from(format!(
        "{dir}/wgxdp-table-pages-{tag}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&path);
    let layout = Layout {
        sessions: 16,
        peers: 16,
        prefixes,
        workers: 1,
    };
    let temp = Temp(path);
    let writer = Arc::new(Region::create(&temp.0, layout).expect("create the region"));
    let worker = Arc::new(Region::attach(&temp.0).expect("map the region again"));
    (temp, writer, worker)
}

fn main() {
    let v4 = std::env::var("FAM").is_ok_and(|f| f == "v4");
    let dir = std::env::var("DIR").unwrap_or_else(|_| "/dev/shm".into());
    let prefixes = if v4 {
        provider_v4(100_000, 1)
    } else {
        provider_v6(100_000, 2)
    };
    let room = prefixes.len() + prefixes.len() / 4;
    let (small_file, small_w, small_r) = region(&dir, "small", room);
    let (huge_file, huge_w, huge_r) = region(&dir, "huge", room);
    let small = AllowedIps::attach(small_w, prefixes.iter().copied()).expect("build");
    let huge = AllowedIps::attach(huge_w.clone(), prefixes.iter().copied()).expect("build");
    let mut readers = [
        Reader::attach(small_r).expect("reader slot"),
        Reader::attach(huge_r).expect("reader slot"),
    ];

    let queries = random_inside(&prefixes, QUERIES, &mut Rng::new(42));
    let (q4, q6) = by_family(&queries);
    let mut out = vec![None; BATCH];
    let mut pass = |reader: &mut Reader| {
        let t = Instant::now();
        for _ in 0..5 {
            for i in 0..QUERIES / BATCH {
                let snap = reader.pin();
                let range = i * BATCH..(i + 1) * BATCH;
                if v4 {
                    snap.lookup_v4_batch(&q4[range], &mut out);
                } else {
                    snap.lookup_v6_batch(&q6[range], &mut out);
                }
                black_box(&out);
            }
        }
        5.0 * QUERIES as f64 / t.elapsed().as_secs_f64() / 1e6
    };
    // The workers' pages are in use before control asks, as in a running gateway.
    for r in readers.iter_mut() {
        pass(r);
    }
    let t = Instant::now();
    let report = HugeBacking::default().follow(&huge_w, &huge.in_use());
    eprintln!(
        "{}: {} chunks of 2 MiB in huge pages, {} sparse, {} failed, refused: {:?}, in {:?}; \
         the table's two mappings have {:?} kB in huge page entries (the other table's {:?} kB)",
        if v4 { "ipv4" } else { "ipv6" },
        report.backed,
        report.sparse,
        report.failed,
        report.refused,
        t.elapsed(),
        mapped_huge_kb(&huge_file.0),
        mapped_huge_kb(&small_file.0),
    );
    drop(small);
    for _ in 0..4 {
        let mut best = [0f64; 2];
        for round in 0..10 {
            for which in [round % 2, 1 - round % 2] {
                best[which] = best[which].max(pass(&mut readers[which]));
            }
        }
        println!(
            "{} small pages {:.1}  huge pages {:.1} M lookups/s  ratio {:.2}",
            if v4 { "ipv4" } else { "ipv6" },
            best[0],
            best[1],
            best[1] / best[0]
        );
    }
    eprintln!("after the lookups: {:?} kB", mapped_huge_kb(&huge_file.0));
    drop(huge);
}
