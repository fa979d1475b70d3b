//! A quick paired timing of the AVX2 level against ring, for A/B runs of two builds on a noisy
//! machine: 64 packets of one size (or an IMIX-like mix) of 8 peers (`PEERS`), sealed or
//! opened by ring one at a time and by `aead_batch` in one batch, back to back, alternating
//! which goes first. Prints the median and quartiles of the per-round ratios and the ratio of
//! the two best rounds ("min ratio": the steadiest figure when neighbours come and go).
//!
//! ```text
//! cargo build --release -p aead-batch --example paired
//! target/release/examples/paired 1420 seal 1500    # size (0: mix), seal|open, rounds
//! KERNELS=1 target/release/examples/paired 1420 open   # the kernels alone, no ring
//! PEERS=1 target/release/examples/paired 1420 open     # one session: one tunnel's burst
//! ```
//!
//! Without `KERNELS`, it measures what the workers run (`Dispatch` with the AVX2 crossover).
//! The criterion bench (`benches/aead.rs`) is the reference for RESULTS tables; this is the
//! short loop for trying a change.

use aead_batch::{Backend, Dispatch, Packet};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305};
use std::time::Instant;

const PACKETS: usize = 64;

fn nonce(counter: u64) -> Nonce {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&counter.to_le_bytes());
    Nonce::assume_unique_for_key(n)
}

fn ring_seal(key: &LessSafeKey, counter: u64, buf: &mut [u8]) {
    let (text, tag) = buf.split_at_mut(buf.len() - 16);
    let t = key
        .seal_in_place_separate_tag(nonce(counter), Aad::empty(), text)
        .expect("seal");
    tag.copy_from_slice(t.as_ref());
}

fn quartiles(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    (v[n / 4], v[n / 2], v[3 * n / 4])
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let len: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1420);
    let seal = args.get(2).is_none_or(|s| s == "seal");
    let rounds: usize = args
        .get(3)
        .and_then(|s| s.parse().ok())
        .unwrap_or(3000)
        .max(4);
    let Some(avx2) = Backend::avx2() else {
        eprintln!("this CPU has no AVX2");
        std::process::exit(2);
    };
    let batch = if std::env::var_os("KERNELS").is_some() {
        Dispatch::from(avx2)
    } else {
        Dispatch::new(avx2, Dispatch::crossover(avx2))
    };
    // The peers' packets interleave (packet i is peer i % PEERS's).
    let peers: usize = std::env::var("PEERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8)
        .clamp(1, 64);
    // Distinct keys: 37 is odd, so i * 37 + 1 differs for every i below 256.
    let keys: Vec<[u8; 32]> = (0..peers as u8)
        .map(|i| [i.wrapping_mul(37).wrapping_add(1); 32])
        .collect();
    let ring_keys: Vec<LessSafeKey> = keys
        .iter()
        .map(|k| LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, k).expect("key")))
        .collect();
    // Size 0: 7 of 12 packets of 64 bytes, 4 of 576, 1 of 1420, interleaved.
    let lens: Vec<usize> = (0..PACKETS)
        .map(|i| match (len, i % 12) {
            (0, 0..=6) => 64,
            (0, 7..=10) => 576,
            (0, _) => 1420,
            (l, _) => l,
        })
        .collect();
    let mut bufs: Vec<Vec<u8>> = lens
        .iter()
        .map(|&l| (0..l + 16).map(|i| i as u8).collect())
        .collect();
    let mut sealed = bufs.clone();
    for (i, s) in sealed.iter_mut().enumerate() {
        ring_seal(&ring_keys[i % peers], i as u64, s);
    }
    let (mut ratios, mut best_ring, mut best_batch) = (Vec::new(), f64::MAX, f64::MAX);
    for r in 0..rounds {
        let (mut ring_s, mut batch_s) = (0.0, 0.0);
        for which in [r % 2, 1 - r % 2] {
            if !seal {
                for (b, s) in bufs.iter_mut().zip(&sealed) {
                    b.copy_from_slice(s);
                }
            }
            if which == 0 {
                let t = Instant::now();
                for (i, buf) in bufs.iter_mut().enumerate() {
                    let key = &ring_keys[i % peers];
                    if seal {
                        ring_seal(key, i as u64, buf);
                    } else {
                        key.open_in_place(nonce(i as u64), Aad::empty(), buf)
                            .expect("authentic");
                    }
                }
                ring_s = t.elapsed().as_secs_f64();
            } else {
                let mut ps: Vec<Packet<'_>> = bufs
                    .iter_mut()
                    .enumerate()
                    .map(|(i, buf)| Packet::new(&keys[i % peers], i as u64, buf))
                    .collect();
                // The list is built outside the timing, as the workers fill theirs while
                // they parse frames; ring's key values, which the dispatch sets up per run
                // of one session's packets, are inside it (ring alone gets them ready-made).
                let t = Instant::now();
                let n = if seal {
                    batch.seal(&mut ps)
                } else {
                    batch.open(&mut ps)
                };
                batch_s = t.elapsed().as_secs_f64();
                assert_eq!(n, PACKETS, "every packet sealed or authentic");
            }
        }
        ratios.push(ring_s / batch_s);
        best_ring = best_ring.min(ring_s);
        best_batch = best_batch.min(batch_s);
    }
    let (q1, median, q3) = quartiles(ratios);
    println!(
        "{} {len} B ({}): x ring median {median:.3} (quartiles {q1:.3}-{q3:.3}); best rounds: \
         batch {:.2} us, ring {:.2} us per {PACKETS}: min ratio {:.3}",
        if seal { "seal" } else { "open" },
        batch.name(),
        best_batch * 1e6,
        best_ring * 1e6,
        best_ring / best_batch
    );
}
