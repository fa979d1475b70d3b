//! iai-callgrind: instructions for sealing/opening 64 packets, ring one at a time ("batch 0"
//! below) against `aead_batch` in batches of 1, 8, 32 and 64; divide by 64 for per packet.
//!
//! Run `bench/setup-iai` first (valgrind and the matching iai-callgrind-runner), then
//! `cargo bench -p aead-batch --bench iai`. Valgrind does not emulate AVX-512 and hides it from
//! CPUID, so under callgrind `Backend::detect` picks AVX2 (and ring its AVX2/SSE code): these
//! counts are for the AVX2 level. `AEAD_BACKEND=portable` counts the portable code.

mod common;

use aead_batch::Backend;
use common::*;
use iai_callgrind::{library_benchmark, library_benchmark_group, main};
use ring::aead::LessSafeKey;
use std::hint::black_box;

struct Input {
    keys: Vec<[u8; 32]>,
    rk: Vec<LessSafeKey>,
    bufs: Vec<Vec<u8>>,
    /// 0: ring, one packet per call.
    batch: usize,
    backend: Backend,
}

fn backend() -> Backend {
    match std::env::var("AEAD_BACKEND").as_deref() {
        Ok("portable") => Backend::portable(),
        _ => Backend::detect(),
    }
}

fn setup(size: usize, batch: usize, sealed: bool) -> Input {
    let sizes = if size == 0 {
        Sizes::Imix
    } else {
        Sizes::Fixed(size)
    };
    let keys = keys();
    let rk = ring_keys(&keys);
    let bufs = buffers(sizes, sealed, &rk);
    Input {
        keys,
        rk,
        bufs,
        batch,
        backend: backend(),
    }
}

fn setup_seal(size: usize, batch: usize) -> Input {
    setup(size, batch, false)
}

fn setup_open(size: usize, batch: usize) -> Input {
    setup(size, batch, true)
}

// Sizes are in bytes of plaintext, 0 meaning IMIX; the second number is the batch size, 0
// meaning ring.
#[library_benchmark]
#[benches::b64(args = [(64, 0), (64, 1), (64, 8), (64, 32), (64, 64)], setup = setup_seal)]
#[benches::b128(args = [(128, 0), (128, 1), (128, 8), (128, 32), (128, 64)], setup = setup_seal)]
#[benches::b256(args = [(256, 0), (256, 1), (256, 8), (256, 32), (256, 64)], setup = setup_seal)]
#[benches::b512(args = [(512, 0), (512, 1), (512, 8), (512, 32), (512, 64)], setup = setup_seal)]
#[benches::b1420(args = [(1420, 0), (1420, 1), (1420, 8), (1420, 32), (1420, 64)], setup = setup_seal)]
#[benches::imix(args = [(0, 0), (0, 1), (0, 8), (0, 32), (0, 64)], setup = setup_seal)]
fn seal(mut input: Input) -> usize {
    if input.batch == 0 {
        ring_seal_all(&input.rk, &mut input.bufs);
        black_box(input.bufs.len())
    } else {
        black_box(batch_all(
            input.backend,
            &input.keys,
            &mut input.bufs,
            input.batch,
            true,
        ))
    }
}

#[library_benchmark]
#[benches::b64(args = [(64, 0), (64, 1), (64, 8), (64, 32), (64, 64)], setup = setup_open)]
#[benches::b128(args = [(128, 0), (128, 1), (128, 8), (128, 32), (128, 64)], setup = setup_open)]
#[benches::b256(args = [(256, 0), (256, 1), (256, 8), (256, 32), (256, 64)], setup = setup_open)]
#[benches::b512(args = [(512, 0), (512, 1), (512, 8), (512, 32), (512, 64)], setup = setup_open)]
#[benches::b1420(args = [(1420, 0), (1420, 1), (1420, 8), (1420, 32), (1420, 64)], setup = setup_open)]
#[benches::imix(args = [(0, 0), (0, 1), (0, 8), (0, 32), (0, 64)], setup = setup_open)]
fn open(mut input: Input) -> usize {
    let n = if input.batch == 0 {
        ring_open_all(&input.rk, &mut input.bufs)
    } else {
        batch_all(
            input.backend,
            &input.keys,
            &mut input.bufs,
            input.batch,
            false,
        )
    };
    assert_eq!(n, PACKETS);
    black_box(n)
}

library_benchmark_group!(name = aead; benchmarks = seal, open);
main!(library_benchmark_groups = aead);
