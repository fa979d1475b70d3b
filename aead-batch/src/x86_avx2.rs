//! AVX2 kernels: ChaCha20 on 8 lanes (one 64-byte block per 32-bit lane, each lane its own key,
//! nonce and counter). Poly1305 runs on the portable code here for now.

use crate::chacha::SIGMA;
use crate::poly1305::Poly1305;
use crate::sched::{Kernels, PolyJob, Stage};
use core::arch::x86_64::*;

pub(crate) fn supported() -> bool {
    is_x86_feature_detected!("avx2")
}

/// The AVX2 level; only reachable through `Backend::avx2`, which checked `supported`.
pub(crate) enum Avx2 {}

impl Kernels for Avx2 {
    const LANES: usize = 8;

    unsafe fn chacha(stage: &Stage) {
        // SAFETY: forwarded contract of `Kernels::chacha`.
        unsafe { chacha8(stage) }
    }

    unsafe fn poly(jobs: &[PolyJob], tags: &mut [[u8; 16]]) {
        for (j, t) in jobs.iter().zip(tags.iter_mut()) {
            // SAFETY: `PolyJob` guarantees the key and `len` readable bytes of text.
            let (key, text) = unsafe {
                (
                    &*j.key.cast::<[u8; 32]>(),
                    core::slice::from_raw_parts(j.msg, j.len),
                )
            };
            let mut p = Poly1305::new(key);
            p.update_padded(text);
            p.update_lengths(0, j.len as u64);
            *t = p.finish();
        }
    }
}

/// Transposes 8 rows of 8 words: `out[c]` word `r` is `rows[r]` word `c`.
#[inline]
#[target_feature(enable = "avx2")]
fn transpose8(rows: &[__m256i; 8]) -> [__m256i; 8] {
    let t: [__m256i; 8] = core::array::from_fn(|i| {
        let (a, b) = (rows[(i / 2) * 2], rows[(i / 2) * 2 + 1]);
        if i % 2 == 0 {
            _mm256_unpacklo_epi32(a, b)
        } else {
            _mm256_unpackhi_epi32(a, b)
        }
    });
    // u[4h + j], 128-bit lane l: column 4l + j of rows 4h..4h+4.
    let mut u = [_mm256_setzero_si256(); 8];
    for h in 0..2 {
        let (t0, t1, t2, t3) = (t[4 * h], t[4 * h + 1], t[4 * h + 2], t[4 * h + 3]);
        u[4 * h] = _mm256_unpacklo_epi64(t0, t2);
        u[4 * h + 1] = _mm256_unpackhi_epi64(t0, t2);
        u[4 * h + 2] = _mm256_unpacklo_epi64(t1, t3);
        u[4 * h + 3] = _mm256_unpackhi_epi64(t1, t3);
    }
    let mut out = [_mm256_setzero_si256(); 8];
    for j in 0..4 {
        out[j] = _mm256_permute2x128_si256::<0x20>(u[j], u[4 + j]);
        out[4 + j] = _mm256_permute2x128_si256::<0x31>(u[j], u[4 + j]);
    }
    out
}

#[inline]
#[target_feature(enable = "avx2")]
fn rol<const L: i32, const R: i32>(x: __m256i) -> __m256i {
    _mm256_or_si256(_mm256_slli_epi32::<L>(x), _mm256_srli_epi32::<R>(x))
}

#[inline]
#[target_feature(enable = "avx2")]
fn quarter(
    v: &mut [__m256i; 16],
    a: usize,
    b: usize,
    c: usize,
    d: usize,
    r16: __m256i,
    r8: __m256i,
) {
    v[a] = _mm256_add_epi32(v[a], v[b]);
    v[d] = _mm256_shuffle_epi8(_mm256_xor_si256(v[d], v[a]), r16);
    v[c] = _mm256_add_epi32(v[c], v[d]);
    v[b] = rol::<12, 20>(_mm256_xor_si256(v[b], v[c]));
    v[a] = _mm256_add_epi32(v[a], v[b]);
    v[d] = _mm256_shuffle_epi8(_mm256_xor_si256(v[d], v[a]), r8);
    v[c] = _mm256_add_epi32(v[c], v[d]);
    v[b] = rol::<7, 25>(_mm256_xor_si256(v[b], v[c]));
}

/// # Safety
/// As `Kernels::chacha`, for 8 lanes, on a CPU with AVX2.
#[target_feature(enable = "avx2")]
unsafe fn chacha8(stage: &Stage) {
    let mut init = [_mm256_setzero_si256(); 16];
    for (i, &c) in SIGMA.iter().enumerate() {
        init[i] = _mm256_set1_epi32(c as i32);
    }
    let keys: [__m256i; 8] = core::array::from_fn(|i| {
        // SAFETY: the caller guarantees 32 readable bytes behind each key pointer.
        unsafe { _mm256_loadu_si256(stage.key[i].cast()) }
    });
    init[4..12].copy_from_slice(&transpose8(&keys));
    for (r, row) in stage.tail.iter().enumerate() {
        // SAFETY: `row` has 16 u32, the first 8 are 32 readable bytes.
        init[12 + r] = unsafe { _mm256_loadu_si256(row.as_ptr().cast()) };
    }
    // Byte shuffles that rotate each 32-bit word left by 16 and by 8.
    let r16 = _mm256_setr_epi8(
        2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13, 2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9,
        14, 15, 12, 13,
    );
    let r8 = _mm256_setr_epi8(
        3, 0, 1, 2, 7, 4, 5, 6, 11, 8, 9, 10, 15, 12, 13, 14, 3, 0, 1, 2, 7, 4, 5, 6, 11, 8, 9, 10,
        15, 12, 13, 14,
    );
    let mut v = init;
    for _ in 0..10 {
        quarter(&mut v, 0, 4, 8, 12, r16, r8);
        quarter(&mut v, 1, 5, 9, 13, r16, r8);
        quarter(&mut v, 2, 6, 10, 14, r16, r8);
        quarter(&mut v, 3, 7, 11, 15, r16, r8);
        quarter(&mut v, 0, 5, 10, 15, r16, r8);
        quarter(&mut v, 1, 6, 11, 12, r16, r8);
        quarter(&mut v, 2, 7, 8, 13, r16, r8);
        quarter(&mut v, 3, 4, 9, 14, r16, r8);
    }
    for (w, x) in v.iter_mut().enumerate() {
        *x = _mm256_add_epi32(*x, init[w]);
    }
    let lo: [__m256i; 8] = core::array::from_fn(|i| v[i]);
    let hi: [__m256i; 8] = core::array::from_fn(|i| v[8 + i]);
    // Block i: words 0..8 in lo[i], 8..16 in hi[i].
    let (lo, hi) = (transpose8(&lo), transpose8(&hi));
    for i in 0..8 {
        let len = stage.len[i] as usize;
        let dst = stage.dst[i];
        if len == 64 {
            // SAFETY: the caller guarantees 64 writable bytes at `dst`.
            unsafe {
                let p0 = dst.cast::<__m256i>();
                let p1 = dst.add(32).cast::<__m256i>();
                _mm256_storeu_si256(p0, _mm256_xor_si256(_mm256_loadu_si256(p0), lo[i]));
                _mm256_storeu_si256(p1, _mm256_xor_si256(_mm256_loadu_si256(p1), hi[i]));
            }
        } else if len > 0 {
            let mut ks = [0u8; 64];
            // SAFETY: `ks` is 64 writable bytes.
            unsafe {
                _mm256_storeu_si256(ks.as_mut_ptr().cast(), lo[i]);
                _mm256_storeu_si256(ks.as_mut_ptr().add(32).cast(), hi[i]);
            }
            // SAFETY: the caller guarantees `len` writable bytes at `dst`, not otherwise
            // borrowed.
            let d = unsafe { core::slice::from_raw_parts_mut(dst, len) };
            for (b, k) in d.iter_mut().zip(ks.iter()) {
                *b ^= k;
            }
            // Keystream is key material: do not leave it on the stack.
            zeroize::Zeroize::zeroize(&mut ks);
        }
    }
}
