//! AVX-512 kernels: ChaCha20 on 16 lanes (one 64-byte block per 32-bit lane, each lane its own
//! key, nonce and counter) and Poly1305 on 8 packets per IFMA register (radix 2^44), two
//! registers interleaved to hide the multiply latency.
//!
//! Requires AVX-512 F, BW (byte-masked loads and stores for partial blocks), VL and IFMA.

use crate::chacha::SIGMA;
use crate::poly1305::{self, HIBIT, M42, M44};
use crate::sched::{Kernels, PolyJob, Stage};
use core::arch::x86_64::*;

pub(crate) fn supported() -> bool {
    is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512vl")
        && is_x86_feature_detected!("avx512ifma")
}

/// The AVX-512 level; only reachable through `Backend::avx512`, which checked `supported`.
pub(crate) enum Avx512 {}

impl Kernels for Avx512 {
    const LANES: usize = 16;

    unsafe fn chacha(stage: &Stage) {
        // SAFETY: forwarded contract of `Kernels::chacha`.
        unsafe { chacha16(stage) }
    }

    const NARROW: usize = 4;

    unsafe fn chacha_narrow(stage: &Stage) {
        // SAFETY: forwarded contract of `Kernels::chacha_narrow`.
        unsafe { chacha4(stage) }
    }

    unsafe fn poly(jobs: &[PolyJob], tags: &mut [[u8; 16]]) {
        if jobs.len() <= 2 {
            // One or two packets would fill one or two lanes of eight: a long one runs 8 of
            // its own blocks at a time instead, a short one on the scalar code, whose
            // dependency chain is shorter than a vector's.
            for (job, tag) in jobs.iter().zip(tags.iter_mut()) {
                // SAFETY: forwarded contract of `Kernels::poly`.
                *tag = unsafe {
                    if job.len >= WIDE_MIN {
                        poly_wide(job)
                    } else {
                        crate::sched::poly_scalar(job)
                    }
                };
            }
            return;
        }
        for (j, t) in jobs.chunks(16).zip(tags.chunks_mut(16)) {
            // SAFETY: forwarded contract of `Kernels::poly`.
            unsafe { poly16(j, t) }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// ChaCha20

/// Indices for `_mm512_permutex2var_epi32` that transpose 16 keys (two per register, as loaded)
/// into 8 registers of one key word each, in three levels of 8 permutes; see `load_keys`.
const fn key_transpose_idx(level: usize, second: bool) -> [i32; 16] {
    let mut idx = [0i32; 16];
    let mut lane = 0;
    while lane < 16 {
        let v = match level {
            // lane = w'*4 + q, q in 0..4 rows of the pair; words w' (+4 for `second`).
            1 => {
                let (w, q) = (lane / 4 + if second { 4 } else { 0 }, lane % 4);
                if q < 2 {
                    q * 8 + w
                } else {
                    16 + (q - 2) * 8 + w
                }
            }
            // lane = w''*8 + q, q in 0..8 rows; from level-1 lanes w'*4 + (q%4).
            2 => {
                let (w, q) = (lane / 8 + if second { 2 } else { 0 }, lane % 8);
                if q < 4 {
                    w * 4 + q
                } else {
                    16 + w * 4 + (q - 4)
                }
            }
            // lane = row 0..16; from level-2 lanes w''*8 + (row%8).
            _ => {
                let w = if second { 1 } else { 0 };
                if lane < 8 {
                    w * 8 + lane
                } else {
                    16 + w * 8 + (lane - 8)
                }
            }
        };
        idx[lane] = v as i32;
        lane += 1;
    }
    idx
}

const KT1A: [i32; 16] = key_transpose_idx(1, false);
const KT1B: [i32; 16] = key_transpose_idx(1, true);
const KT2A: [i32; 16] = key_transpose_idx(2, false);
const KT2B: [i32; 16] = key_transpose_idx(2, true);
const KT3A: [i32; 16] = key_transpose_idx(3, false);
const KT3B: [i32; 16] = key_transpose_idx(3, true);

#[inline]
#[target_feature(enable = "avx512f")]
fn idx(i: &[i32; 16]) -> __m512i {
    // Built from values, so no pointer is read.
    _mm512_setr_epi32(
        i[0], i[1], i[2], i[3], i[4], i[5], i[6], i[7], i[8], i[9], i[10], i[11], i[12], i[13],
        i[14], i[15],
    )
}

/// The 8 key words of 16 lanes: `out[w]` lane `i` is word `w` of lane `i`'s key.
///
/// # Safety
/// Every `stage.key[i]` points to 32 readable bytes.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn load_keys(stage: &Stage) -> [__m512i; 8] {
    // z[j] = keys of lanes 2j and 2j+1: lane 2j's words at 0..8, lane 2j+1's at 8..16.
    let z: [__m512i; 8] = core::array::from_fn(|j| {
        // SAFETY: the caller guarantees 32 readable bytes behind each key pointer.
        let (a, b) = unsafe {
            (
                _mm256_loadu_si256(stage.key[2 * j].cast()),
                _mm256_loadu_si256(stage.key[2 * j + 1].cast()),
            )
        };
        _mm512_inserti64x4::<1>(_mm512_castsi256_si512(a), b)
    });
    let (i1a, i1b, i2a, i2b, i3a, i3b) = (
        idx(&KT1A),
        idx(&KT1B),
        idx(&KT2A),
        idx(&KT2B),
        idx(&KT3A),
        idx(&KT3B),
    );
    // Level 1: four rows each, words 0..4 (a) and 4..8 (b).
    let l1a: [__m512i; 4] =
        core::array::from_fn(|m| _mm512_permutex2var_epi32(z[2 * m], i1a, z[2 * m + 1]));
    let l1b: [__m512i; 4] =
        core::array::from_fn(|m| _mm512_permutex2var_epi32(z[2 * m], i1b, z[2 * m + 1]));
    // Level 2: eight rows each, two words: [w0w1 rows 0..8, w0w1 rows 8..16, w4w5.., w4w5..]
    // and the same for w2w3 / w6w7.
    let l2a = [
        _mm512_permutex2var_epi32(l1a[0], i2a, l1a[1]),
        _mm512_permutex2var_epi32(l1a[2], i2a, l1a[3]),
        _mm512_permutex2var_epi32(l1b[0], i2a, l1b[1]),
        _mm512_permutex2var_epi32(l1b[2], i2a, l1b[3]),
    ];
    let l2b = [
        _mm512_permutex2var_epi32(l1a[0], i2b, l1a[1]),
        _mm512_permutex2var_epi32(l1a[2], i2b, l1a[3]),
        _mm512_permutex2var_epi32(l1b[0], i2b, l1b[1]),
        _mm512_permutex2var_epi32(l1b[2], i2b, l1b[3]),
    ];
    [
        _mm512_permutex2var_epi32(l2a[0], i3a, l2a[1]),
        _mm512_permutex2var_epi32(l2a[0], i3b, l2a[1]),
        _mm512_permutex2var_epi32(l2b[0], i3a, l2b[1]),
        _mm512_permutex2var_epi32(l2b[0], i3b, l2b[1]),
        _mm512_permutex2var_epi32(l2a[2], i3a, l2a[3]),
        _mm512_permutex2var_epi32(l2a[2], i3b, l2a[3]),
        _mm512_permutex2var_epi32(l2b[2], i3a, l2b[3]),
        _mm512_permutex2var_epi32(l2b[2], i3b, l2b[3]),
    ]
}

#[inline]
#[target_feature(enable = "avx512f")]
fn quarter(v: &mut [__m512i; 16], a: usize, b: usize, c: usize, d: usize) {
    v[a] = _mm512_add_epi32(v[a], v[b]);
    v[d] = _mm512_rol_epi32::<16>(_mm512_xor_si512(v[d], v[a]));
    v[c] = _mm512_add_epi32(v[c], v[d]);
    v[b] = _mm512_rol_epi32::<12>(_mm512_xor_si512(v[b], v[c]));
    v[a] = _mm512_add_epi32(v[a], v[b]);
    v[d] = _mm512_rol_epi32::<8>(_mm512_xor_si512(v[d], v[a]));
    v[c] = _mm512_add_epi32(v[c], v[d]);
    v[b] = _mm512_rol_epi32::<7>(_mm512_xor_si512(v[b], v[c]));
}

/// 16 ChaCha20 blocks, lane `i` of `v[w]` being word `w` of block `i`.
#[inline]
#[target_feature(enable = "avx512f")]
fn rounds(init: &[__m512i; 16]) -> [__m512i; 16] {
    let mut v = *init;
    for _ in 0..10 {
        quarter(&mut v, 0, 4, 8, 12);
        quarter(&mut v, 1, 5, 9, 13);
        quarter(&mut v, 2, 6, 10, 14);
        quarter(&mut v, 3, 7, 11, 15);
        quarter(&mut v, 0, 5, 10, 15);
        quarter(&mut v, 1, 6, 11, 12);
        quarter(&mut v, 2, 7, 8, 13);
        quarter(&mut v, 3, 4, 9, 14);
    }
    core::array::from_fn(|w| _mm512_add_epi32(v[w], init[w]))
}

/// Transposes 16 words x 16 blocks into 16 blocks: `out[i]` is block `i`'s 64 bytes.
#[inline]
#[target_feature(enable = "avx512f")]
fn transpose16(v: &[__m512i; 16]) -> [__m512i; 16] {
    // x[g][b], 128-bit lane l: words 4g..4g+4 of block 4l+b.
    let mut x = [[_mm512_setzero_si512(); 4]; 4];
    for g in 0..4 {
        let (a, b, c, d) = (v[4 * g], v[4 * g + 1], v[4 * g + 2], v[4 * g + 3]);
        let ab_lo = _mm512_unpacklo_epi32(a, b);
        let ab_hi = _mm512_unpackhi_epi32(a, b);
        let cd_lo = _mm512_unpacklo_epi32(c, d);
        let cd_hi = _mm512_unpackhi_epi32(c, d);
        x[g][0] = _mm512_unpacklo_epi64(ab_lo, cd_lo);
        x[g][1] = _mm512_unpackhi_epi64(ab_lo, cd_lo);
        x[g][2] = _mm512_unpacklo_epi64(ab_hi, cd_hi);
        x[g][3] = _mm512_unpackhi_epi64(ab_hi, cd_hi);
    }
    let mut out = [_mm512_setzero_si512(); 16];
    for b in 0..4 {
        // 4x4 transpose of 128-bit lanes: out block 4l+b = [x[0][b].l, .., x[3][b].l].
        let p0 = _mm512_shuffle_i32x4::<0x44>(x[0][b], x[1][b]);
        let p1 = _mm512_shuffle_i32x4::<0xee>(x[0][b], x[1][b]);
        let p2 = _mm512_shuffle_i32x4::<0x44>(x[2][b], x[3][b]);
        let p3 = _mm512_shuffle_i32x4::<0xee>(x[2][b], x[3][b]);
        out[b] = _mm512_shuffle_i32x4::<0x88>(p0, p2);
        out[4 + b] = _mm512_shuffle_i32x4::<0xdd>(p0, p2);
        out[8 + b] = _mm512_shuffle_i32x4::<0x88>(p1, p3);
        out[12 + b] = _mm512_shuffle_i32x4::<0xdd>(p1, p3);
    }
    out
}

/// # Safety
/// As `Kernels::chacha`, for 16 lanes, on a CPU with AVX-512 F and BW.
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn chacha16(stage: &Stage) {
    let mut init = [_mm512_setzero_si512(); 16];
    for (i, &c) in SIGMA.iter().enumerate() {
        init[i] = _mm512_set1_epi32(c as i32);
    }
    // SAFETY: the caller guarantees readable keys.
    let keys = unsafe { load_keys(stage) };
    init[4..12].copy_from_slice(&keys);
    for (r, row) in stage.tail.iter().enumerate() {
        // SAFETY: `row` is an array of 16 u32, 64 readable bytes.
        init[12 + r] = unsafe { _mm512_loadu_si512(row.as_ptr().cast()) };
    }
    let blocks = transpose16(&rounds(&init));
    // SAFETY: forwarded contract (lanes 0..16).
    unsafe { xor_out(stage, &blocks) };
}

/// Up to 4 ChaCha20 blocks the row-wise way: each 128-bit lane holds one block, and register
/// `r` holds row `r` (words 4r..4r+4) of all four, so a double round is 2 x 4 column steps
/// plus lane rotations: about a third of the work of the 16-lane kernel, for few blocks.
///
/// # Safety
/// As `Kernels::chacha` for lanes 0..4, on a CPU with AVX-512 F and BW.
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn chacha4(stage: &Stage) {
    let sigma = _mm_setr_epi32(
        SIGMA[0] as i32,
        SIGMA[1] as i32,
        SIGMA[2] as i32,
        SIGMA[3] as i32,
    );
    let a0 = _mm512_broadcast_i32x4(sigma);
    // SAFETY: the caller guarantees 32 readable bytes behind each key pointer.
    let (b0, c0) = unsafe {
        let half = |i: usize, off: usize| _mm_loadu_si128(stage.key[i].add(off).cast());
        let rows = |off: usize| {
            let v = _mm512_castsi128_si512(half(0, off));
            let v = _mm512_inserti32x4::<1>(v, half(1, off));
            let v = _mm512_inserti32x4::<2>(v, half(2, off));
            _mm512_inserti32x4::<3>(v, half(3, off))
        };
        (rows(0), rows(16))
    };
    // Row 3 of lane i: tail[0..4][i], a 4x4 transpose of the tails' first four lanes.
    // SAFETY: each tail row is 16 u32, so its first 16 bytes are readable.
    let t: [__m128i; 4] =
        core::array::from_fn(|r| unsafe { _mm_loadu_si128(stage.tail[r].as_ptr().cast()) });
    let t01l = _mm_unpacklo_epi32(t[0], t[1]);
    let t01h = _mm_unpackhi_epi32(t[0], t[1]);
    let t23l = _mm_unpacklo_epi32(t[2], t[3]);
    let t23h = _mm_unpackhi_epi32(t[2], t[3]);
    let d0 = _mm512_castsi128_si512(_mm_unpacklo_epi64(t01l, t23l));
    let d0 = _mm512_inserti32x4::<1>(d0, _mm_unpackhi_epi64(t01l, t23l));
    let d0 = _mm512_inserti32x4::<2>(d0, _mm_unpacklo_epi64(t01h, t23h));
    let d0 = _mm512_inserti32x4::<3>(d0, _mm_unpackhi_epi64(t01h, t23h));

    let (mut a, mut b, mut c, mut d) = (a0, b0, c0, d0);
    for _ in 0..10 {
        for diagonal in [false, true] {
            a = _mm512_add_epi32(a, b);
            d = _mm512_rol_epi32::<16>(_mm512_xor_si512(d, a));
            c = _mm512_add_epi32(c, d);
            b = _mm512_rol_epi32::<12>(_mm512_xor_si512(b, c));
            a = _mm512_add_epi32(a, b);
            d = _mm512_rol_epi32::<8>(_mm512_xor_si512(d, a));
            c = _mm512_add_epi32(c, d);
            b = _mm512_rol_epi32::<7>(_mm512_xor_si512(b, c));
            if diagonal {
                // Back to columns.
                b = _mm512_shuffle_epi32::<0x93>(b);
                c = _mm512_shuffle_epi32::<0x4e>(c);
                d = _mm512_shuffle_epi32::<0x39>(d);
            } else {
                // Diagonals into columns: rotate rows 1, 2, 3 left by 1, 2, 3 words.
                b = _mm512_shuffle_epi32::<0x39>(b);
                c = _mm512_shuffle_epi32::<0x4e>(c);
                d = _mm512_shuffle_epi32::<0x93>(d);
            }
        }
    }
    let (a, b, c, d) = (
        _mm512_add_epi32(a, a0),
        _mm512_add_epi32(b, b0),
        _mm512_add_epi32(c, c0),
        _mm512_add_epi32(d, d0),
    );
    // Block i = lane i of a, b, c, d: a 4x4 transpose of 128-bit lanes.
    let p0 = _mm512_shuffle_i32x4::<0x44>(a, b);
    let p1 = _mm512_shuffle_i32x4::<0xee>(a, b);
    let p2 = _mm512_shuffle_i32x4::<0x44>(c, d);
    let p3 = _mm512_shuffle_i32x4::<0xee>(c, d);
    let blocks = [
        _mm512_shuffle_i32x4::<0x88>(p0, p2),
        _mm512_shuffle_i32x4::<0xdd>(p0, p2),
        _mm512_shuffle_i32x4::<0x88>(p1, p3),
        _mm512_shuffle_i32x4::<0xdd>(p1, p3),
    ];
    // SAFETY: forwarded contract (lanes 0..4).
    unsafe { xor_out(stage, &blocks) };
}

/// XORs keystream block `i` into lane `i`'s `len` bytes at `dst`.
///
/// # Safety
/// `len[i]` writable bytes at `dst[i]` for every `i < blocks.len()`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn xor_out(stage: &Stage, blocks: &[__m512i]) {
    for (i, ks) in blocks.iter().enumerate() {
        let len = stage.len[i];
        let mask: __mmask64 = if len == 0 {
            0
        } else {
            u64::MAX >> (64 - len.min(64))
        };
        let dst = stage.dst[i];
        // SAFETY: the caller guarantees `len` writable bytes at `dst`; the mask covers exactly
        // those bytes, and masked-off bytes are neither read nor written (nor can they fault).
        unsafe {
            let d = _mm512_maskz_loadu_epi8(mask, dst as *const i8);
            _mm512_mask_storeu_epi8(dst as *mut i8, mask, _mm512_xor_si512(d, *ks));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Poly1305

/// One register of 8 packets' Poly1305 state and inputs (radix 2^44 limbs per 64-bit lane).
struct Lanes {
    h: [__m512i; 3],
    r: [__m512i; 3],
    /// 20 * r1, 20 * r2: limb products that wrap past 2^130 (2^132 = 4 * 2^130 = 20 mod p).
    s1: __m512i,
    s2: __m512i,
    /// Offset of the lane's next 16-byte block from the gather base.
    off: __m512i,
    /// Text length.
    len: __m512i,
    /// Steps of the lane: its data blocks then the length block; 0 for a lane without a job.
    steps: __m512i,
}

/// Loads 8 u64 from an array.
#[inline]
#[target_feature(enable = "avx512f")]
fn load8(a: &[u64; 8]) -> __m512i {
    // SAFETY: `a` is 64 readable bytes.
    unsafe { _mm512_loadu_si512(a.as_ptr().cast()) }
}

/// Per-lane setup from up to 8 jobs; also returns the most steps any lane takes.
///
/// # Safety
/// Every job's key points to 32 readable bytes.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn lanes(jobs: &[PolyJob], base: *const u8) -> (Lanes, usize) {
    let mut r = [[0u64; 8]; 3];
    let mut off = [0u64; 8];
    let mut len = [0u64; 8];
    let mut steps = [0u64; 8];
    let mut most = 0;
    for (l, j) in jobs.iter().enumerate() {
        // SAFETY: the caller guarantees the key.
        let key: &[u8; 32] = unsafe { &*j.key.cast() };
        for (limb, v) in r.iter_mut().zip(poly1305::clamp_r(key)) {
            limb[l] = v;
        }
        off[l] = (j.msg as u64).wrapping_sub(base as u64);
        len[l] = j.len as u64;
        let n = j.len.div_ceil(16) + 1;
        steps[l] = n as u64;
        most = most.max(n);
    }
    let r = [load8(&r[0]), load8(&r[1]), load8(&r[2])];
    let times20 =
        |x: __m512i| _mm512_add_epi64(_mm512_slli_epi64::<4>(x), _mm512_slli_epi64::<2>(x));
    let l = Lanes {
        h: [_mm512_setzero_si512(); 3],
        s1: times20(r[1]),
        s2: times20(r[2]),
        r,
        off: load8(&off),
        len: load8(&len),
        steps: load8(&steps),
    };
    (l, most)
}

/// `h * r mod 2^130 - 5` per lane with IFMA, partially reduced (see `poly1305::mul_mod`): all
/// limbs of `h`, `r` and `s1 = 20 r1`, `s2 = 20 r2` below 2^52.
#[inline]
#[target_feature(enable = "avx512f,avx512ifma")]
fn mul_mod(h: [__m512i; 3], r: [__m512i; 3], s1: __m512i, s2: __m512i) -> [__m512i; 3] {
    let [h0, h1, h2] = h;
    let [r0, r1, r2] = r;
    let zero = _mm512_setzero_si512();
    let m44 = _mm512_set1_epi64(M44 as i64);

    // d = h * r as low and high 52-bit halves of each limb product (IFMA), all inputs < 2^52.
    let lo3 = |a0, b0, a1, b1, a2, b2| {
        let t = _mm512_madd52lo_epu64(zero, a0, b0);
        let t = _mm512_madd52lo_epu64(t, a1, b1);
        _mm512_madd52lo_epu64(t, a2, b2)
    };
    let hi3 = |a0, b0, a1, b1, a2, b2| {
        let t = _mm512_madd52hi_epu64(zero, a0, b0);
        let t = _mm512_madd52hi_epu64(t, a1, b1);
        _mm512_madd52hi_epu64(t, a2, b2)
    };
    let d0l = lo3(h0, r0, h1, s2, h2, s1);
    let d0h = hi3(h0, r0, h1, s2, h2, s1);
    let d1l = lo3(h0, r1, h1, r0, h2, s2);
    let d1h = hi3(h0, r1, h1, r0, h2, s2);
    let d2l = lo3(h0, r2, h1, r1, h2, r0);
    let d2h = hi3(h0, r2, h1, r1, h2, r0);

    // Carry into radix 2^44: a high half weighs 2^52 = 2^44 * 2^8 over its low half.
    let m42 = _mm512_set1_epi64(M42 as i64);
    let mut c = _mm512_add_epi64(_mm512_srli_epi64::<44>(d0l), _mm512_slli_epi64::<8>(d0h));
    let n0 = _mm512_and_si512(d0l, m44);
    let d1 = _mm512_add_epi64(d1l, c);
    c = _mm512_add_epi64(_mm512_srli_epi64::<44>(d1), _mm512_slli_epi64::<8>(d1h));
    let n1 = _mm512_and_si512(d1, m44);
    let d2 = _mm512_add_epi64(d2l, c);
    // Limb 2 is 42 bits wide: its high half weighs 2^10 over the carry; past 2^130 times 5.
    c = _mm512_add_epi64(_mm512_srli_epi64::<42>(d2), _mm512_slli_epi64::<10>(d2h));
    let n2 = _mm512_and_si512(d2, m42);
    let n0 = _mm512_add_epi64(n0, _mm512_add_epi64(c, _mm512_slli_epi64::<2>(c)));
    let n1 = _mm512_add_epi64(n1, _mm512_srli_epi64::<44>(n0));
    let n0 = _mm512_and_si512(n0, m44);

    [n0, n1, n2]
}

/// Absorbs block `k` of every active lane: a data block (zero-padded past the text) while
/// `k + 1 < steps`, the length block `0 || len` at `k + 1 == steps`, nothing after.
///
/// # Safety
/// For every lane with `k + 1 < steps`, `base + off` points to 16 readable bytes.
#[inline]
#[target_feature(enable = "avx512f,avx512ifma")]
unsafe fn step(l: &mut Lanes, k: u64, base: *const u8) {
    let kv = _mm512_set1_epi64(k as i64);
    let k1 = _mm512_set1_epi64(k as i64 + 1);
    let active = _mm512_cmplt_epu64_mask(kv, l.steps);
    let data = _mm512_cmplt_epu64_mask(k1, l.steps);
    let zero = _mm512_setzero_si512();
    // SAFETY: only lanes in `data` are read, at 16 bytes the caller guarantees.
    let (lo, hi) = unsafe {
        (
            _mm512_mask_i64gather_epi64::<1>(zero, data, l.off, base.cast()),
            _mm512_mask_i64gather_epi64::<1>(
                zero,
                data,
                _mm512_add_epi64(l.off, _mm512_set1_epi64(8)),
                base.cast(),
            ),
        )
    };
    // Keep only the bytes before the end of the text: rem = len - 16k bytes remain.
    let rem8 = _mm512_slli_epi64::<3>(_mm512_sub_epi64(l.len, _mm512_slli_epi64::<4>(kv)));
    let ones = _mm512_set1_epi64(-1);
    let keep = |bits: i64| {
        let count = _mm512_max_epi64(zero, _mm512_sub_epi64(_mm512_set1_epi64(bits), rem8));
        _mm512_srlv_epi64(ones, count) // counts of 64 and more give 0
    };
    let lo = _mm512_and_si512(lo, keep(64));
    let hi = _mm512_and_si512(hi, keep(128));
    // The length block: 0 (no AAD) || text length.
    let hi = _mm512_mask_mov_epi64(hi, active & !data, l.len);

    let m44 = _mm512_set1_epi64(M44 as i64);
    let m0 = _mm512_and_si512(lo, m44);
    let m1 = _mm512_and_si512(
        _mm512_or_si512(_mm512_srli_epi64::<44>(lo), _mm512_slli_epi64::<20>(hi)),
        m44,
    );
    let m2 = _mm512_or_si512(_mm512_srli_epi64::<24>(hi), _mm512_set1_epi64(HIBIT as i64));
    let h = [
        _mm512_add_epi64(l.h[0], m0),
        _mm512_add_epi64(l.h[1], m1),
        _mm512_add_epi64(l.h[2], m2),
    ];
    let [n0, n1, n2] = mul_mod(h, l.r, l.s1, l.s2);

    l.h = [
        _mm512_mask_mov_epi64(l.h[0], active, n0),
        _mm512_mask_mov_epi64(l.h[1], active, n1),
        _mm512_mask_mov_epi64(l.h[2], active, n2),
    ];
    l.off = _mm512_add_epi64(l.off, _mm512_set1_epi64(16));
}

/// The tags of one register's jobs.
///
/// # Safety
/// Every job's key points to 32 readable bytes.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn finish(l: &Lanes, jobs: &[PolyJob], tags: &mut [[u8; 16]]) {
    let mut h = [[0u64; 8]; 3];
    for (a, v) in h.iter_mut().zip(l.h) {
        // SAFETY: `a` is 64 writable bytes.
        unsafe { _mm512_storeu_si512(a.as_mut_ptr().cast(), v) };
    }
    for (i, (j, t)) in jobs.iter().zip(tags.iter_mut()).enumerate() {
        // SAFETY: the caller guarantees the key.
        let key: &[u8; 32] = unsafe { &*j.key.cast() };
        *t = poly1305::finish([h[0][i], h[1][i], h[2][i]], poly1305::s_words(key));
    }
}

/// Shortest text worth `poly_wide`: two groups of 8 blocks.
const WIDE_MIN: usize = 256;

/// Poly1305 of one long job with its own blocks in the lanes: 8 full blocks per step, each lane
/// multiplied by r^8 between groups and lane j by r^(8-j) after the last group, so the lanes
/// sum to the accumulator of those blocks (block b of N ends up times r^(N-b+1), RFC 8439
/// §2.5.1). The remaining blocks and the length block run on the scalar code.
///
/// # Safety
/// As `Kernels::poly` for `job`, on a CPU with AVX-512 F and IFMA.
#[target_feature(enable = "avx512f,avx512ifma")]
unsafe fn poly_wide(job: &PolyJob) -> [u8; 16] {
    // SAFETY: the caller guarantees the key.
    let key: &[u8; 32] = unsafe { &*job.key.cast() };
    let mut p = poly1305::Poly1305::new(key);
    let r = p.r();
    let mut pow = [r; 8]; // pow[i] = r^(i+1)
    for i in 1..8 {
        pow[i] = poly1305::mul_mod(pow[i - 1], r);
    }
    let mut between = [[0u64; 8]; 3];
    let mut last = [[0u64; 8]; 3];
    for k in 0..3 {
        for j in 0..8 {
            between[k][j] = pow[7][k];
            last[k][j] = pow[7 - j][k];
        }
    }
    let times20 =
        |x: __m512i| _mm512_add_epi64(_mm512_slli_epi64::<4>(x), _mm512_slli_epi64::<2>(x));
    let rb = [load8(&between[0]), load8(&between[1]), load8(&between[2])];
    let rl = [load8(&last[0]), load8(&last[1]), load8(&last[2])];
    let (sb1, sb2, sl1, sl2) = (
        times20(rb[1]),
        times20(rb[2]),
        times20(rl[1]),
        times20(rl[2]),
    );
    let even = _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14);
    let odd = _mm512_setr_epi64(1, 3, 5, 7, 9, 11, 13, 15);
    let m44 = _mm512_set1_epi64(M44 as i64);
    let hibit = _mm512_set1_epi64(HIBIT as i64);
    let groups = job.len / 128;
    let mut h = [_mm512_setzero_si512(); 3];
    for g in 0..groups {
        // SAFETY: group g is 128 bytes inside the text (g < len / 128).
        let (a, b) = unsafe {
            let at = job.msg.add(128 * g);
            (
                _mm512_loadu_si512(at.cast()),
                _mm512_loadu_si512(at.add(64).cast()),
            )
        };
        let lo = _mm512_permutex2var_epi64(a, even, b);
        let hi = _mm512_permutex2var_epi64(a, odd, b);
        let m = [
            _mm512_and_si512(lo, m44),
            _mm512_and_si512(
                _mm512_or_si512(_mm512_srli_epi64::<44>(lo), _mm512_slli_epi64::<20>(hi)),
                m44,
            ),
            _mm512_or_si512(_mm512_srli_epi64::<24>(hi), hibit),
        ];
        let hm = [
            _mm512_add_epi64(h[0], m[0]),
            _mm512_add_epi64(h[1], m[1]),
            _mm512_add_epi64(h[2], m[2]),
        ];
        h = if g + 1 < groups {
            mul_mod(hm, rb, sb1, sb2)
        } else {
            mul_mod(hm, rl, sl1, sl2)
        };
    }
    let mut lanes = [[0u64; 8]; 3];
    for (a, v) in lanes.iter_mut().zip(h) {
        // SAFETY: `a` is 64 writable bytes.
        unsafe { _mm512_storeu_si512(a.as_mut_ptr().cast(), v) };
    }
    // Each lane's limbs are below 2^45, so the sums stay below 2^48.
    p.set_h(lanes.map(|l| l.iter().sum()));
    let done = groups * 128;
    // SAFETY: the rest of the text, inside it.
    let rest = unsafe { core::slice::from_raw_parts(job.msg.add(done), job.len - done) };
    p.update_padded(rest);
    p.update_lengths(0, job.len as u64);
    p.finish()
}

/// Tags of up to 16 jobs (sorted by length): two registers of 8, interleaved while both have
/// blocks left.
///
/// # Safety
/// As `Kernels::poly`, on a CPU with AVX-512 F and IFMA.
#[target_feature(enable = "avx512f,avx512ifma")]
unsafe fn poly16(jobs: &[PolyJob], tags: &mut [[u8; 16]]) {
    let Some(first) = jobs.first() else {
        return;
    };
    let base = first.msg;
    let (ja, jb) = jobs.split_at(jobs.len().min(8));
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
