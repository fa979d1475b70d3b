//! Random-lookup probe: builds the provider table of one family (`allowedips::workload`, the
//! same seeds and query set as `benches/lpm.rs`) and times batches of 256 random lookups
//! through a pinned reader, best of five passes. Small enough to run under callgrind, where
//! instruction counts are the stable metric on a shared machine:
//!
//! ```text
//! cargo build --release -p allowedips --example probe
//! FAM=v6 ITERS=1 valgrind --tool=callgrind --toggle-collect='*lookup_v6_batch*' \
//!     target/release/examples/probe
//! ```
//!
//! `FAM=v4|v6` (default v6), `SET=random|uniform|sequential` (default random; the
//! benchmark's query sets), `ITERS` passes over the
//! 65,536 queries per timing (default 200), `LPM_PEERS` (default 100,000). One timing covers
//! 5 x `ITERS` x 65,536 lookups; under callgrind divide the collected instructions by that.

use std::hint::black_box;
use std::net::IpAddr;
use std::time::Instant;

use allowedips::workload::{inside, provider_v4, provider_v6, Rng};
use allowedips::AllowedIps;

const QUERIES: usize = 1 << 16;
const BATCH: usize = 256;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let v4 = std::env::var("FAM").is_ok_and(|f| f == "v4");
    let set = std::env::var("SET").unwrap_or_else(|_| "random".into());
    let iters = env("ITERS", 200);
    let peers = env("LPM_PEERS", 100_000) as u32;
    let prefixes = if v4 {
        provider_v4(peers, 1)
    } else {
        provider_v6(peers, 2)
    };
    let t = Instant::now();
    let table = AllowedIps::from_prefixes(prefixes.iter().copied()).expect("peer ids fit");
    let stats = table.stats();
    let (arena, n) = if v4 {
        (stats.v4, stats.v4_prefixes)
    } else {
        (stats.v6, stats.v6_prefixes)
    };
    eprintln!(
        "built in {:?}: {arena:?}, {:.1} B/prefix",
        t.elapsed(),
        arena.bytes as f64 / n as f64
    );
    let mut rng = Rng::new(42);
    // As in the benchmark: sweep the IPv4 tunnel pool, or up from the start of a stored /48.
    let start = allowedips::workload::sequential_start(&prefixes, v4);
    let queries: Vec<IpAddr> = (0..QUERIES as u128)
        .map(|i| match (set.as_str(), v4) {
            ("uniform", true) => IpAddr::V4((rng.next_u64() as u32).into()),
            ("uniform", false) => IpAddr::V6(rng.u128().into()),
            ("sequential", true) => IpAddr::V4(((start + i) as u32).into()),
            ("sequential", false) => IpAddr::V6((start + i).into()),
            _ => {
                let pick = prefixes[rng.below(prefixes.len() as u64) as usize].0;
                inside(pick, &mut rng)
            }
        })
        .collect();
    let (q4, q6) = allowedips::workload::by_family(&queries);
    let mut reader = table.reader().expect("reader slot");
    let mut out = vec![None; BATCH];
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        for _ in 0..iters {
            let mut hits = 0usize;
            for i in 0..QUERIES / BATCH {
                let snap = reader.pin();
                let range = i * BATCH..(i + 1) * BATCH;
                if v4 {
                    snap.lookup_v4_batch(&q4[range], &mut out);
                } else {
                    snap.lookup_v6_batch(&q6[range], &mut out);
                }
                hits += out.iter().flatten().count();
            }
            black_box(hits);
        }
        best = best.min(t.elapsed().as_secs_f64() / (iters * QUERIES) as f64);
    }
    println!(
        "{} {}: {:.1} M lookups/s (best of 5)",
        if v4 { "ipv4" } else { "ipv6" },
        set,
        1e-6 / best
    );
}
