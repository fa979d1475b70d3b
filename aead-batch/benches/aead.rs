//! criterion: batch seal/open against ring one packet at a time, in the same run.
//!
//! Every measured iteration processes the same 64 packets (so figures compare across batch
//! sizes): ring seals or opens them one call at a time with keys prepared beforehand (its best
//! case); `aead_batch` in batches of 1, 8, 32 or 64. Packets belong to 8 peers (keys) in turn.
//! At the end a table of packets/s, Gbit/s (plaintext) and the ratio to ring is printed from
//! the medians criterion measured in this run, and written to
//! `target/criterion/aead-batch-summary.md`.
//!
//! criterion measures ring and each batch size one after the other, so on a shared machine a
//! neighbour's burst can land on one and not the other. The table therefore also has a paired
//! ratio: for every configuration criterion ran, `ROUNDS` rounds each time ring and the batch
//! on the same 64 packets back to back (alternating which goes first), and the median of the
//! per-round ratios is reported.
//!
//! `cargo bench -p aead-batch --bench aead`; `AEAD_BACKEND=avx2|avx512|portable` forces a
//! level, `AEAD_DISPATCH=1` measures what the workers run (`Dispatch`: ring from the level's
//! crossover up), `AEAD_QUICK=1` shortens the measurement (a smoke run, not for RESULTS.md).

mod common;

use aead_batch::{Backend, Dispatch};
use common::*;
use criterion::{BatchSize, Criterion, Throughput};
use ring::aead::LessSafeKey;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

fn backend() -> Dispatch {
    let level = match std::env::var("AEAD_BACKEND").as_deref() {
        Ok("portable") => Backend::portable(),
        Ok("avx2") => Backend::avx2().expect("CPU has AVX2"),
        Ok("avx512") => Backend::avx512().expect("CPU has the AVX-512 level"),
        _ => Backend::detect(),
    };
    // The workers' choice: ring for the sizes where it beats the level's kernels.
    if std::env::var_os("AEAD_DISPATCH").is_some() {
        Dispatch::new(level, Dispatch::crossover(level))
    } else {
        level.into()
    }
}

fn output_dir() -> PathBuf {
    std::env::var_os("CRITERION_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/criterion"))
}

fn main() {
    let start = SystemTime::now();
    let quick = std::env::var_os("AEAD_QUICK").is_some();
    let mut c = Criterion::default()
        .output_directory(&output_dir())
        .warm_up_time(Duration::from_millis(if quick { 200 } else { 1000 }))
        .measurement_time(Duration::from_millis(if quick { 500 } else { 3000 }))
        .sample_size(if quick { 10 } else { 50 })
        .configure_from_args();
    let backend = backend();
    let keys = keys();
    let rk = ring_keys(&keys);

    for op in ["seal", "open"] {
        let seal = op == "seal";
        for sizes in ALL_SIZES {
            let mut g = c.benchmark_group(format!("{op}_{}", sizes.name()));
            g.throughput(Throughput::Elements(PACKETS as u64));
            let pristine = buffers(sizes, !seal, &rk);
            if seal {
                let mut bufs = pristine.clone();
                g.bench_function("ring", |b| b.iter(|| ring_seal_all(&rk, &mut bufs)));
                for batch in BATCHES {
                    g.bench_function(format!("batch{batch}"), |b| {
                        b.iter(|| batch_all(backend, &keys, &mut bufs, batch, true))
                    });
                }
            } else {
                g.bench_function("ring", |b| {
                    b.iter_batched_ref(
                        || pristine.clone(),
                        |bufs| assert_eq!(ring_open_all(&rk, bufs), PACKETS),
                        BatchSize::PerIteration,
                    )
                });
                for batch in BATCHES {
                    g.bench_function(format!("batch{batch}"), |b| {
                        b.iter_batched_ref(
                            || pristine.clone(),
                            |bufs| {
                                assert_eq!(batch_all(backend, &keys, bufs, batch, false), PACKETS)
                            },
                            BatchSize::PerIteration,
                        )
                    });
                }
            }
            g.finish();
        }
    }
    c.final_summary();
    summary(backend, start, &keys, &rk, if quick { 100 } else { 2000 });
}

/// Median over `rounds` of (ring time / batch time), the two timed back to back each round.
fn paired_ratio(
    backend: Dispatch,
    keys: &[[u8; 32]],
    rk: &[LessSafeKey],
    sizes: Sizes,
    seal: bool,
    batch: usize,
    rounds: usize,
) -> f64 {
    let pristine = buffers(sizes, !seal, rk);
    let (mut a, mut b) = (pristine.clone(), pristine.clone());
    let mut ratios = Vec::with_capacity(rounds);
    for round in 0..rounds + rounds / 10 {
        if !seal {
            for (x, p) in a
                .iter_mut()
                .chain(b.iter_mut())
                .zip(pristine.iter().cycle())
            {
                x.copy_from_slice(p);
            }
        }
        let mut ring = || {
            let t = Instant::now();
            if seal {
                ring_seal_all(rk, &mut a);
            } else {
                assert_eq!(ring_open_all(rk, &mut a), PACKETS);
            }
            t.elapsed().as_secs_f64()
        };
        let mut ours = || {
            let t = Instant::now();
            assert_eq!(batch_all(backend, keys, &mut b, batch, seal), PACKETS);
            t.elapsed().as_secs_f64()
        };
        let (r, o) = if round % 2 == 0 {
            let r = ring();
            (r, ours())
        } else {
            let o = ours();
            (ring(), o)
        };
        // The first tenth warms caches and clocks.
        if round >= rounds / 10 {
            ratios.push(r / o);
        }
    }
    ratios.sort_by(f64::total_cmp);
    ratios[ratios.len() / 2]
}

/// The median of one benchmark of this run (ns per iteration of 64 packets), if it ran.
fn median_ns(group: &str, id: &str, since: SystemTime) -> Option<f64> {
    let path = output_dir().join(group).join(id).join("new/estimates.json");
    let meta = std::fs::metadata(&path).ok()?;
    if meta.modified().ok()? < since {
        return None; // from an earlier run
    }
    let json = std::fs::read_to_string(&path).ok()?;
    let rest = &json[json.find("\"median\"")?..];
    let rest = &rest[rest.find("\"point_estimate\":")? + "\"point_estimate\":".len()..];
    let end = rest.find([',', '}'])?;
    rest[..end].trim().parse().ok()
}

fn summary(
    backend: Dispatch,
    since: SystemTime,
    keys: &[[u8; 32]],
    rk: &[LessSafeKey],
    rounds: usize,
) {
    let mut out = format!(
        "backend {}; {PACKETS} packets per iteration, {PEERS} peers; criterion medians of this \
         run; paired: median of {rounds} back-to-back rounds\n\n\
         | op | size | ring Mpps | ring Gbit/s | batch | Mpps | Gbit/s | x ring | x ring, paired |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n",
        backend.name()
    );
    for op in ["seal", "open"] {
        for sizes in ALL_SIZES {
            let group = format!("{op}_{}", sizes.name());
            let Some(ring) = median_ns(&group, "ring", since) else {
                continue;
            };
            let mpps = |ns: f64| PACKETS as f64 / ns * 1e3;
            let gbps = |ns: f64| sizes.bytes() as f64 * 8.0 / ns;
            for batch in BATCHES {
                let Some(ns) = median_ns(&group, &format!("batch{batch}"), since) else {
                    continue;
                };
                let paired = paired_ratio(backend, keys, rk, sizes, op == "seal", batch, rounds);
                out += &format!(
                    "| {op} | {} | {:.2} | {:.2} | {batch} | {:.2} | {:.2} | {:.2} | {paired:.2} |\n",
                    sizes.name(),
                    mpps(ring),
                    gbps(ring),
                    mpps(ns),
                    gbps(ns),
                    ring / ns
                );
            }
        }
    }
    println!("\n{out}");
    let path = output_dir().join("aead-batch-summary.md");
    if std::fs::write(&path, &out).is_ok() {
        println!("written to {}", path.display());
    }
}
