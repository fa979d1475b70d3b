//! AVX2 kernels: ChaCha20 on 8 lanes (one 64-byte block per 32-bit lane, each lane its own key,
//! nonce and counter) and Poly1305 on 4 packets per register in radix 2^26 (`vpmuludq` is a
//! 32x32-bit multiply), two registers interleaved to hide the multiply latency.

use crate::chacha::SIGMA;
use crate::poly1305::{self, M26};
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
        if let ([job], [tag]) = (jobs, &mut *tags) {
            // One packet fills one lane of four: the scalar code is faster.
            // SAFETY: forwarded contract of `Kernels::poly`.
            *tag = unsafe { crate::sched::poly_scalar(job) };
            return;
        }
        for (j, t) in jobs.chunks(8).zip(tags.chunks_mut(8)) {
            // SAFETY: forwarded contract of `Kernels::poly`.
            unsafe { poly8(j, t) }
        }
    }

    // Zen 3, 2026-12-04 (bench/RESULTS.md): since sealed packets' last chunks and every
    // length block are absorbed inside the rounds, the lanes beat the lane-filling kernels
    // from 64 bytes up (1.1-1.3x at 64 and 128 bytes); below that they are even with them
    // (sealing 16 and 48 bytes 1.05x, opening 16 bytes 0.97x, 48 bytes 1.03x).
    const GROUP_FROM: usize = 0;
    const GROUP_MAX: usize = usize::MAX;
    // Zen 3, 2026-12-04 (bench/RESULTS.md): sealing 1420-1600-byte texts ran at 1.03-1.07x
    // ring, 1700 and 1800 bytes at 0.97-0.99x, 3000 at 0.95x, 9000 at 0.87x.
    const GROUP_SEAL_MAX: usize = 1600;
    // Zen 3, 2026-12-04 (bench/RESULTS.md): opening 768-byte texts ran at 1.13x ring, 1024
    // and 1420 bytes at 0.8-0.9x, where ring (the dispatch's next choice) runs at 0.96x.
    // Without ring the lanes open every length: 1420 bytes at 0.92x ring against the
    // lane-filling kernels' 0.72x.
    const GROUP_OPEN_MAX: usize = 1023;

    fn group_worth_it(jobs: &[crate::sched::GroupJob]) -> bool {
        crate::x86_avx2_stitch::worth_it(jobs)
    }

    fn groups_supported() -> bool {
        crate::x86_avx2_stitch::supported()
    }

    unsafe fn seal_group(jobs: &[crate::sched::GroupJob]) {
        // SAFETY: forwarded contract of `Kernels::seal_group`.
        unsafe { crate::x86_avx2_stitch::seal(jobs) }
    }

    unsafe fn open_group(jobs: &[crate::sched::GroupJob], ok: &mut [bool]) {
        // SAFETY: forwarded contract of `Kernels::open_group`.
        unsafe { crate::x86_avx2_stitch::open(jobs, ok) }
    }
}

/// Transposes 8 rows of 8 words: `out[c]` word `r` is `rows[r]` word `c`.
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn transpose8(rows: &[__m256i; 8]) -> [__m256i; 8] {
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

/// The byte shuffles that rotate each 32-bit word left by 16 and by 8, for [`double_round`].
///
/// `black_box` hides the constants from LLVM, which would otherwise turn the 16-bit rotation
/// into a `vpshuflw`/`vpshufhw` pair: two shuffle-port uops where `vpshufb` is one, on the
/// two ports that the shifts of the 12- and 7-bit rotations also need.
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn rotations() -> (__m256i, __m256i) {
    let r16 = _mm256_setr_epi8(
        2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13, 2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9,
        14, 15, 12, 13,
    );
    let r8 = _mm256_setr_epi8(
        3, 0, 1, 2, 7, 4, 5, 6, 11, 8, 9, 10, 15, 12, 13, 14, 3, 0, 1, 2, 7, 4, 5, 6, 11, 8, 9, 10,
        15, 12, 13, 14,
    );
    (core::hint::black_box(r16), core::hint::black_box(r8))
}

/// One ChaCha20 double round (a column round, then a diagonal round) on 8 lanes.
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn double_round(v: &mut [__m256i; 16], r16: __m256i, r8: __m256i) {
    quarter(v, 0, 4, 8, 12, r16, r8);
    quarter(v, 1, 5, 9, 13, r16, r8);
    quarter(v, 2, 6, 10, 14, r16, r8);
    quarter(v, 3, 7, 11, 15, r16, r8);
    quarter(v, 0, 5, 10, 15, r16, r8);
    quarter(v, 1, 6, 11, 12, r16, r8);
    quarter(v, 2, 7, 8, 13, r16, r8);
    quarter(v, 3, 4, 9, 14, r16, r8);
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
    let (r16, r8) = rotations();
    let mut v = init;
    for _ in 0..10 {
        double_round(&mut v, r16, r8);
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
            crate::sched::wipe(&mut ks);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Poly1305

/// One register of 4 packets' Poly1305 state and inputs (radix 2^26 limbs per 64-bit lane).
struct Lanes {
    h: [__m256i; 5],
    r: [__m256i; 5],
    /// 5 * r1..r4 (index 0 unused): limb products past 2^130 wrap around times 5.
    s: [__m256i; 5],
    /// Offset of the lane's next 16-byte block from the gather base.
    off: __m256i,
    len: __m256i,
    /// Steps of the lane: its data blocks then the length block; 0 for a lane without a job.
    steps: __m256i,
}

#[inline]
#[target_feature(enable = "avx2")]
fn load4(a: &[u64; 4]) -> __m256i {
    // SAFETY: `a` is 32 readable bytes.
    unsafe { _mm256_loadu_si256(a.as_ptr().cast()) }
}

/// # Safety
/// Every job's key points to 32 readable bytes.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn lanes(jobs: &[PolyJob], base: *const u8) -> (Lanes, usize) {
    let mut r = [[0u64; 4]; 5];
    let mut off = [0u64; 4];
    let mut len = [0u64; 4];
    let mut steps = [0u64; 4];
    let mut most = 0;
    for (l, j) in jobs.iter().enumerate() {
        // SAFETY: the caller guarantees the key.
        let key: &[u8; 32] = unsafe { &*j.key.cast() };
        for (limb, v) in r.iter_mut().zip(poly1305::clamp_r26(key)) {
            limb[l] = v;
        }
        off[l] = (j.msg as u64).wrapping_sub(base as u64);
        len[l] = j.len as u64;
        let n = j.len.div_ceil(16) + 1;
        steps[l] = n as u64;
        most = most.max(n);
    }
    let r: [__m256i; 5] = core::array::from_fn(|i| load4(&r[i]));
    let s = core::array::from_fn(|i| _mm256_add_epi64(r[i], _mm256_slli_epi64::<2>(r[i])));
    let l = Lanes {
        h: [_mm256_setzero_si256(); 5],
        r,
        s,
        off: load4(&off),
        len: load4(&len),
        steps: load4(&steps),
    };
    (l, most)
}

/// Bytes-to-keep mask for one 64-bit half: all ones if `bits - rem8 <= 0`, none if it is 64 or
/// more, else the low `rem8 - (bits - 64)` bits.
#[inline]
#[target_feature(enable = "avx2")]
fn keep(bits: i64, rem8: __m256i) -> __m256i {
    let count = _mm256_sub_epi64(_mm256_set1_epi64x(bits), rem8);
    let negative = _mm256_cmpgt_epi64(_mm256_setzero_si256(), count);
    // Counts of 64 and more shift everything out.
    _mm256_srlv_epi64(_mm256_set1_epi64x(-1), _mm256_andnot_si256(negative, count))
}

/// Absorbs block `k` of every active lane: a data block (zero-padded past the text) while
/// `k + 1 < steps`, the length block `0 || len` at `k + 1 == steps`, nothing after.
///
/// # Safety
/// For every lane with `k + 1 < steps`, `base + off` points to 16 readable bytes.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn step(l: &mut Lanes, k: u64, base: *const u8) {
    let kv = _mm256_set1_epi64x(k as i64);
    let active = _mm256_cmpgt_epi64(l.steps, kv);
    let data = _mm256_cmpgt_epi64(l.steps, _mm256_set1_epi64x(k as i64 + 1));
    let zero = _mm256_setzero_si256();
    // SAFETY: only lanes in `data` are read, at 16 bytes the caller guarantees.
    let (lo, hi) = unsafe {
        (
            _mm256_mask_i64gather_epi64::<1>(zero, base.cast(), l.off, data),
            _mm256_mask_i64gather_epi64::<1>(
                zero,
                base.cast(),
                _mm256_add_epi64(l.off, _mm256_set1_epi64x(8)),
                data,
            ),
        )
    };
    let rem8 = _mm256_slli_epi64::<3>(_mm256_sub_epi64(l.len, _mm256_slli_epi64::<4>(kv)));
    let lo = _mm256_and_si256(lo, keep(64, rem8));
    let hi = _mm256_and_si256(hi, keep(128, rem8));
    // The length block: 0 (no AAD) || text length.
    let hi = _mm256_blendv_epi8(hi, l.len, _mm256_andnot_si256(data, active));

    let m26 = _mm256_set1_epi64x(M26 as i64);
    let m = [
        _mm256_and_si256(lo, m26),
        _mm256_and_si256(_mm256_srli_epi64::<26>(lo), m26),
        _mm256_and_si256(
            _mm256_or_si256(_mm256_srli_epi64::<52>(lo), _mm256_slli_epi64::<12>(hi)),
            m26,
        ),
        _mm256_and_si256(_mm256_srli_epi64::<14>(hi), m26),
        _mm256_or_si256(_mm256_srli_epi64::<40>(hi), _mm256_set1_epi64x(1 << 24)),
    ];
    let h: [__m256i; 5] = core::array::from_fn(|i| _mm256_add_epi64(l.h[i], m[i]));
    let (r, s) = (&l.r, &l.s);
    let mul = _mm256_mul_epu32;
    let add = _mm256_add_epi64;
    // d_i = sum over j of h_j * r_(i-j), with r_(i-j) for j > i wrapping to 5 * r_(i-j+5).
    let d: [__m256i; 5] = core::array::from_fn(|i| {
        let mut acc = mul(h[0], r[i]);
        for (j, &hj) in h.iter().enumerate().skip(1) {
            let f = if j <= i { r[i - j] } else { s[i + 5 - j] };
            acc = add(acc, mul(hj, f));
        }
        acc
    });
    let mut c = _mm256_srli_epi64::<26>(d[0]);
    let mut n = [_mm256_and_si256(d[0], m26); 5];
    for i in 1..5 {
        let t = add(d[i], c);
        c = _mm256_srli_epi64::<26>(t);
        n[i] = _mm256_and_si256(t, m26);
    }
    n[0] = add(n[0], add(c, _mm256_slli_epi64::<2>(c)));
    n[1] = add(n[1], _mm256_srli_epi64::<26>(n[0]));
    n[0] = _mm256_and_si256(n[0], m26);

    for (old, new) in l.h.iter_mut().zip(n) {
        *old = _mm256_blendv_epi8(*old, new, active);
    }
    l.off = _mm256_add_epi64(l.off, _mm256_set1_epi64x(16));
}

/// # Safety
/// Every job's key points to 32 readable bytes.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn finish(l: &Lanes, jobs: &[PolyJob], tags: &mut [[u8; 16]]) {
    let mut h = [[0u64; 4]; 5];
    for (a, v) in h.iter_mut().zip(l.h) {
        // SAFETY: `a` is 32 writable bytes.
        unsafe { _mm256_storeu_si256(a.as_mut_ptr().cast(), v) };
    }
    for (i, (j, t)) in jobs.iter().zip(tags.iter_mut()).enumerate() {
        // SAFETY: the caller guarantees the key.
        let key: &[u8; 32] = unsafe { &*j.key.cast() };
        *t = poly1305::finish26(
            [h[0][i], h[1][i], h[2][i], h[3][i], h[4][i]],
            poly1305::s_words(key),
        );
    }
}

/// Tags of up to 8 jobs (sorted by length): two registers of 4, interleaved while both have
/// blocks left.
///
/// # Safety
/// As `Kernels::poly`, on a CPU with AVX2.
#[target_feature(enable = "avx2")]
unsafe fn poly8(jobs: &[PolyJob], tags: &mut [[u8; 16]]) {
    let Some(first) = jobs.first() else {
        return;
    };
    let base = first.msg;
    let (ja, jb) = jobs.split_at(jobs.len().min(4));
    let (ta, tb) = tags.split_at_mut(ja.len());
    // SAFETY (all blocks below): the jobs' keys and messages are valid per `PolyJob`; `step`
    // reads block k of a lane only while k + 1 < steps, i.e. inside round_up(len, 16).
    unsafe {
        let (mut a, na) = lanes(ja, base);
        if jb.is_empty() {
            for k in 0..na {
                step(&mut a, k as u64, base);
            }
            finish(&a, ja, ta);
            return;
        }
        let (mut b, nb) = lanes(jb, base);
        let both = na.min(nb);
        for k in 0..both {
            step(&mut a, k as u64, base);
            step(&mut b, k as u64, base);
        }
        for k in both..na {
            step(&mut a, k as u64, base);
        }
        for k in both..nb {
            step(&mut b, k as u64, base);
        }
        finish(&a, ja, ta);
        finish(&b, jb, tb);
    }
}
