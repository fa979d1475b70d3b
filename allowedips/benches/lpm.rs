//! Allowed-IPs at provider scale: 100k peers, each with one /32 (or /128) and 8..=10 routed
//! prefixes (about 1M prefixes per family), IPv4 and IPv6 separately.
//!
//! Side by side in one run: this crate's table (`poptrie`, read through a pinned [`Reader`] in
//! batches of 256 as a worker would), the hash-map-per-length reference (`reference`),
//! `ip_network_table` 0.2 (a tree-bitmap, `ip_network_table`), and for IPv4 DIR-24-8
//! (`dir24_8`, the rejected candidate). Groups: lookups with random addresses inside stored
//! prefixes, uniformly random addresses, sequential addresses; bulk build; incremental updates
//! published while a reader thread runs. Sizes and the paced 10k-updates/s run are printed to
//! stderr (they are not timings criterion can take).
//!
//! Run: `cargo bench -p allowedips --bench lpm`; `LPM_PEERS=10000` for a quick run.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use allowedips::dir24_8::Dir24_8;
use allowedips::workload::{provider_v4, provider_v6, random_inside, Rng};
use allowedips::{AllowedIps, PeerId, Prefix, Reference};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use ip_network::{IpNetwork, Ipv4Network, Ipv6Network};
use ip_network_table::IpNetworkTable;

/// Heap bytes in use, counted by a pass-through allocator: exact sizes for every contender
/// (RSS deltas are not, once freed memory gets reused).
struct Counting;

static HEAP: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so `System`'s
// guarantees hold; the counter only observes sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        HEAP.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged; the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        HEAP.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        HEAP.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` came from this allocator, i.e. from `System`, with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        HEAP.fetch_add(new_size, Ordering::Relaxed);
        HEAP.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: as for `dealloc` and `alloc`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn heap() -> usize {
    HEAP.load(Ordering::Relaxed)
}

const QUERIES: usize = 1 << 16;
const BATCH: usize = 256;

fn peers() -> u32 {
    std::env::var("LPM_PEERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000)
}

fn network(p: Prefix) -> IpNetwork {
    match p.addr() {
        IpAddr::V4(a) => IpNetwork::V4(Ipv4Network::new(a, p.len()).expect("normalised")),
        IpAddr::V6(a) => IpNetwork::V6(Ipv6Network::new(a, p.len()).expect("normalised")),
    }
}

fn build_ipnt(prefixes: &[(Prefix, PeerId)]) -> IpNetworkTable<PeerId> {
    let mut t = IpNetworkTable::new();
    for &(p, peer) in prefixes {
        t.insert(network(p), peer);
    }
    t
}

fn build_reference(prefixes: &[(Prefix, PeerId)]) -> Reference {
    let mut r = Reference::new();
    for &(p, peer) in prefixes {
        r.insert(p, peer);
    }
    r
}

/// One family's contenders and query sets.
struct Family {
    name: &'static str,
    prefixes: Vec<(Prefix, PeerId)>,
    ours: AllowedIps,
    reference: Reference,
    ipnt: IpNetworkTable<PeerId>,
    dir24: Option<Dir24_8>,
    random: Vec<IpAddr>,
    uniform: Vec<IpAddr>,
    sequential: Vec<IpAddr>,
}

fn family(name: &'static str, prefixes: Vec<(Prefix, PeerId)>, v4: bool) -> Family {
    let h0 = heap();
    let ipnt = build_ipnt(&prefixes);
    let h1 = heap();
    let t = Instant::now();
    let ours = AllowedIps::from_prefixes(prefixes.iter().copied()).expect("peer ids fit");
    let ours_time = t.elapsed();
    let h2 = heap();
    let dir24 = v4.then(|| Dir24_8::build(&prefixes));
    let h3 = heap();
    let distinct = build_reference(&prefixes);
    let h4 = heap();
    let stats = ours.stats();
    let (n, arena) = if v4 {
        (stats.v4_prefixes, stats.v4)
    } else {
        (stats.v6_prefixes, stats.v6)
    };
    let per = |bytes: usize| bytes as f64 / n as f64;
    eprintln!(
        "{name}: {} peers, {n} distinct prefixes ({} listed); bytes per prefix: poptrie arena \
         (what workers read) {:.1} ({} B: live {} nodes x32 B, {} leaf runs x4 B, {} singleton units x16 B, \
         plus directory and free space); poptrie with control-side maps {:.1}; ip_network_table \
         {:.1}; dir24_8 {}; reference {:.1}. Poptrie bulk build {:?}",
        peers(),
        prefixes.len(),
        per(arena.bytes),
        arena.bytes,
        arena.nodes,
        arena.leaves,
        arena.singles,
        per(h2 - h1),
        per(h1 - h0),
        dir24
            .as_ref()
            .map_or("-".to_string(), |_| format!("{:.1}", per(h3 - h2))),
        per(h4 - h3),
        ours_time,
    );
    let mut rng = Rng::new(42);
    let random = random_inside(&prefixes, QUERIES, &mut rng);
    let uniform: Vec<IpAddr> = (0..QUERIES)
        .map(|_| {
            if v4 {
                IpAddr::V4(Ipv4Addr::from(rng.next_u64() as u32))
            } else {
                IpAddr::V6(Ipv6Addr::from(rng.u128()))
            }
        })
        .collect();
    // IPv4: sweep the tunnel pool (every peer's /32 in turn). IPv6: sweep up from the start of a
    // stored /48.
    let start = allowedips::workload::sequential_start(&prefixes, v4);
    let sequential: Vec<IpAddr> = (0..QUERIES as u128)
        .map(|i| {
            if v4 {
                IpAddr::V4(Ipv4Addr::from((start + i) as u32))
            } else {
                IpAddr::V6(Ipv6Addr::from(start + i))
            }
        })
        .collect();
    // Everyone agrees on every query before anything is timed.
    for q in [&random, &uniform, &sequential].into_iter().flatten() {
        let want = distinct.lookup(*q);
        assert_eq!(ours.lookup(*q), want, "{q}");
        assert_eq!(ipnt.longest_match(*q).map(|(_, v)| *v), want, "{q}");
        if let (Some(d), &IpAddr::V4(a)) = (&dir24, q) {
            assert_eq!(d.lookup(u32::from(a)), want, "{q}");
        }
    }
    Family {
        name,
        prefixes,
        ours,
        reference: distinct,
        ipnt,
        dir24,
        random,
        uniform,
        sequential,
    }
}

fn as_v4(q: &[IpAddr]) -> Vec<u32> {
    q.iter()
        .map(|a| match a {
            IpAddr::V4(a) => u32::from(*a),
            IpAddr::V6(_) => 0,
        })
        .collect()
}

fn as_v6(q: &[IpAddr]) -> Vec<u128> {
    q.iter()
        .map(|a| match a {
            IpAddr::V6(a) => u128::from(*a),
            IpAddr::V4(_) => 0,
        })
        .collect()
}

fn lookups(c: &mut Criterion, f: &Family) {
    let v4 = f.name == "ipv4";
    for (set, queries) in [
        ("random", &f.random),
        ("uniform", &f.uniform),
        ("sequential", &f.sequential),
    ] {
        let mut g = c.benchmark_group(format!("{}_lookup_{set}", f.name));
        g.throughput(Throughput::Elements(QUERIES as u64));
        let mut reader = f.ours.reader().expect("reader slot");
        let mut out = vec![None; BATCH];
        if v4 {
            let qs = as_v4(queries);
            g.bench_function("poptrie", |b| {
                b.iter(|| {
                    let mut hits = 0usize;
                    for chunk in qs.chunks(BATCH) {
                        let snap = reader.pin();
                        snap.lookup_v4_batch(chunk, &mut out);
                        hits += out.iter().flatten().count();
                    }
                    black_box(hits)
                })
            });
            if let Some(d) = &f.dir24 {
                g.bench_function("dir24_8", |b| {
                    b.iter(|| qs.iter().filter_map(|&a| d.lookup(a)).count())
                });
            }
            g.bench_function("reference", |b| {
                b.iter(|| qs.iter().filter_map(|&a| f.reference.lookup_v4(a)).count())
            });
        } else {
            let qs = as_v6(queries);
            g.bench_function("poptrie", |b| {
                b.iter(|| {
                    let mut hits = 0usize;
                    for chunk in qs.chunks(BATCH) {
                        let snap = reader.pin();
                        snap.lookup_v6_batch(chunk, &mut out);
                        hits += out.iter().flatten().count();
                    }
                    black_box(hits)
                })
            });
            g.bench_function("reference", |b| {
                b.iter(|| qs.iter().filter_map(|&a| f.reference.lookup_v6(a)).count())
            });
        }
        g.bench_function("ip_network_table", |b| {
            b.iter(|| {
                queries
                    .iter()
                    .filter_map(|&a| f.ipnt.longest_match(a))
                    .count()
            })
        });
        g.finish();
    }
}

fn builds(c: &mut Criterion, f: &Family) {
    let mut g = c.benchmark_group(format!("{}_bulk_build", f.name));
    g.sample_size(10);
    g.throughput(Throughput::Elements(f.prefixes.len() as u64));
    g.bench_function("poptrie", |b| {
        b.iter(|| AllowedIps::from_prefixes(f.prefixes.iter().copied()))
    });
    if f.dir24.is_some() {
        g.bench_function("dir24_8", |b| b.iter(|| Dir24_8::build(&f.prefixes)));
    }
    g.bench_function("reference", |b| b.iter(|| build_reference(&f.prefixes)));
    g.bench_function("ip_network_table", |b| b.iter(|| build_ipnt(&f.prefixes)));
    g.finish();
}

/// Prefixes to add and remove again: new routed prefixes for random peers.
fn churn(v4: bool, n: usize) -> Vec<(Prefix, PeerId)> {
    let mut rng = Rng::new(7);
    let p = peers();
    (0..n)
        .map(|_| {
            let peer = rng.below(u64::from(p)) as PeerId;
            let prefix = if v4 {
                let len = 20 + rng.below(13) as u8;
                Prefix::new(IpAddr::V4(Ipv4Addr::from(rng.next_u64() as u32)), len)
            } else {
                let len = 40 + rng.below(89) as u8;
                Prefix::new(IpAddr::V6(Ipv6Addr::from(rng.u128())), len)
            };
            (prefix.expect("valid length"), peer)
        })
        .collect()
}

/// A reader thread doing batches of lookups until told to stop; reports lookups, batches and
/// the longest batch.
struct Background {
    stop: Arc<AtomicBool>,
    handle: thread::JoinHandle<(u64, Vec<u32>)>,
    lookups: Arc<AtomicU64>,
}

fn background_reader(f: &Family) -> Background {
    let mut reader = f.ours.reader().expect("reader slot");
    let v4 = f.name == "ipv4";
    let (q4, q6) = (as_v4(&f.random), as_v6(&f.random));
    let stop = Arc::new(AtomicBool::new(false));
    let lookups = Arc::new(AtomicU64::new(0));
    let (s, l) = (Arc::clone(&stop), Arc::clone(&lookups));
    let handle = thread::spawn(move || {
        let mut out = vec![None; BATCH];
        let mut n = 0u64;
        let mut times: Vec<u32> = Vec::with_capacity(1 << 22);
        while !s.load(Ordering::Relaxed) {
            for i in 0..QUERIES / BATCH {
                let t = Instant::now();
                {
                    let snap = reader.pin();
                    if v4 {
                        snap.lookup_v4_batch(&q4[i * BATCH..(i + 1) * BATCH], &mut out);
                    } else {
                        snap.lookup_v6_batch(&q6[i * BATCH..(i + 1) * BATCH], &mut out);
                    }
                }
                times.push(t.elapsed().as_nanos().min(u128::from(u32::MAX)) as u32);
                black_box(&out);
                n += BATCH as u64;
            }
            l.store(n, Ordering::Relaxed);
        }
        (n, times)
    });
    Background {
        stop,
        handle,
        lookups,
    }
}

impl Background {
    fn finish(self) -> (u64, Vec<u32>) {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().expect("reader thread")
    }
}

fn updates(c: &mut Criterion, f: &mut Family) {
    let v4 = f.name == "ipv4";
    let changes = churn(v4, 1 << 16);
    let mut g = c.benchmark_group(format!("{}_update_with_reader", f.name));
    g.throughput(Throughput::Elements(1));
    let bg = background_reader(f);
    let mut i = 0usize;
    let ours = &mut f.ours;
    g.bench_function("poptrie_insert_or_remove", |b| {
        b.iter_batched(
            || {
                i = (i + 1) % (2 * changes.len());
                i
            },
            |i| {
                let (prefix, peer) = changes[i / 2];
                if i % 2 == 0 {
                    black_box(ours.insert(prefix, peer).ok());
                } else {
                    black_box(ours.remove(prefix, peer).expect("room"));
                }
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
    let (n, times) = bg.finish();
    eprintln!(
        "{}: background reader during the update benchmark: {n} lookups; {}",
        f.name,
        percentiles(times)
    );
    // Leave the table as it was.
    for &(prefix, peer) in &changes {
        ours.remove(prefix, peer).expect("room");
    }
    paced(f, &changes);
}

/// Batch-time distribution of a reader, in microseconds.
fn percentiles(mut ns: Vec<u32>) -> String {
    ns.sort_unstable();
    let at = |q: f64| {
        let i = ((ns.len() as f64 * q) as usize).min(ns.len().saturating_sub(1));
        f64::from(ns.get(i).copied().unwrap_or(0)) / 1e3
    };
    format!(
        "{} batches of {BATCH}: p50 {:.1} us, p99 {:.1} us, p99.9 {:.1} us, max {:.1} us, {} over 1 ms",
        ns.len(),
        at(0.5),
        at(0.99),
        at(0.999),
        at(1.0),
        ns.iter().filter(|&&t| t > 1_000_000).count()
    )
}

/// Publishes 10k updates per second for two seconds while a reader runs; reports the reader's
/// throughput with and without updates and its longest batch.
fn paced(f: &mut Family, changes: &[(Prefix, PeerId)]) {
    const RATE: u32 = 10_000;
    const SECONDS: u32 = 2;
    let run = |f: &mut Family, publish: bool| {
        let bg = background_reader(f);
        thread::sleep(Duration::from_millis(100));
        let l0 = bg.lookups.load(Ordering::Relaxed);
        let t0 = Instant::now();
        let mut published = 0u32;
        let mut lag = Duration::ZERO;
        for k in 0..RATE * SECONDS {
            let due = t0 + Duration::from_secs(1) * k / RATE;
            let now = Instant::now();
            if due > now {
                thread::sleep(due - now);
            } else {
                lag = lag.max(now - due);
            }
            if publish {
                let (prefix, peer) = changes[(k / 2) as usize % changes.len()];
                if k % 2 == 0 {
                    black_box(f.ours.insert(prefix, peer).ok());
                } else {
                    black_box(f.ours.remove(prefix, peer).expect("room"));
                }
                published += 1;
            }
        }
        let elapsed = t0.elapsed();
        let l1 = bg.lookups.load(Ordering::Relaxed);
        let (_, times) = bg.finish();
        (
            published,
            elapsed,
            (l1 - l0) as f64 / elapsed.as_secs_f64(),
            percentiles(times),
            lag,
        )
    };
    let (_, _, idle_rate, idle_batches, _) = run(f, false);
    let (published, elapsed, busy_rate, batches, lag) = run(f, true);
    eprintln!(
        "{}: paced {RATE}/s: published {published} updates in {elapsed:?} ({:.0}/s, writer \
         behind schedule at most {lag:?}); reader {:.1} M lookups/s (without updates {:.1} M/s); \
         with updates {batches}; without updates {idle_batches}",
        f.name,
        f64::from(published) / elapsed.as_secs_f64(),
        busy_rate / 1e6,
        idle_rate / 1e6,
    );
}

fn all(c: &mut Criterion) {
    let only = std::env::var("LPM_FAMILY").unwrap_or_default();
    for v4 in [true, false] {
        let name = if v4 { "ipv4" } else { "ipv6" };
        if !only.is_empty() && only != name {
            continue;
        }
        let prefixes = if v4 {
            provider_v4(peers(), 1)
        } else {
            provider_v6(peers(), 2)
        };
        let mut f = family(name, prefixes, v4);
        lookups(c, &f);
        builds(c, &f);
        updates(c, &mut f);
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = all
}
criterion_main!(benches);
