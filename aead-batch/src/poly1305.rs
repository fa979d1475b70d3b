//! Portable Poly1305 (RFC 8439 §2.5) in radix 2^44 (three limbs of 44, 44 and 42 bits, as in
//! poly1305-donna-64). The AVX-512 IFMA kernel keeps its lanes in the same radix, so it shares
//! the key clamping and the final reduction below.

use zeroize::Zeroize;

pub(crate) const M44: u64 = (1 << 44) - 1;
pub(crate) const M42: u64 = (1 << 42) - 1;
/// 2^128 in limb 2 (2^88 * 2^40): the bit every full 16-byte block carries (RFC 8439 §2.5.1).
pub(crate) const HIBIT: u64 = 1 << 40;

fn le64(b: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[..8]);
    u64::from_le_bytes(w)
}

/// `r` from the first half of the one-time key, clamped (RFC 8439 §2.5.1), as radix-2^44 limbs.
pub(crate) fn clamp_r(key: &[u8; 32]) -> [u64; 3] {
    let t0 = le64(&key[0..8]);
    let t1 = le64(&key[8..16]);
    [
        t0 & 0xffc_0fff_ffff,
        ((t0 >> 44) | (t1 << 20)) & 0xfff_ffc0_ffff,
        (t1 >> 24) & 0x00f_ffff_fc0f,
    ]
}

/// `s`, the second half of the one-time key, as two little-endian words.
pub(crate) fn s_words(key: &[u8; 32]) -> [u64; 2] {
    [le64(&key[16..24]), le64(&key[24..32])]
}

/// A 16-byte block as radix-2^44 limbs, without the 2^128 bit.
#[inline(always)]
pub(crate) fn block_limbs(lo: u64, hi: u64) -> [u64; 3] {
    [lo & M44, ((lo >> 44) | (hi << 20)) & M44, hi >> 24]
}

/// Reduces `h` fully mod 2^130 - 5, adds `s` mod 2^128 and returns the tag (RFC 8439 §2.5.1).
/// `h` may be partially reduced (limbs a little over their width), as the kernels leave it.
pub(crate) fn finish(h: [u64; 3], s: [u64; 2]) -> [u8; 16] {
    finish_limbs(h, 44, s)
}

/// The final reduction for `N` limbs of `bits` bits (the top one holding the rest of 130
/// bits), each perhaps a little over its width: [`finish`] in radix 2^44 and [`finish26`] in
/// radix 2^26 are this one computation, the limb loops unrolled for their `N`.
#[inline(always)]
fn finish_limbs<const N: usize>(mut h: [u64; N], bits: u32, s: [u64; 2]) -> [u8; 16] {
    let top = 130 - bits * (N as u32 - 1);
    let width = |i: usize| if i == N - 1 { top } else { bits };
    let mask = |w: u32| (1u64 << w) - 1;
    // Carry twice round the limbs (2^130 = 5 mod p), then once into limb 1: h < 2^130 + 2^bits,
    // limb 1 perhaps one carry over its width.
    for _ in 0..2 {
        for i in 0..N {
            let c = h[i] >> width(i);
            h[i] &= mask(width(i));
            if i + 1 < N {
                h[i + 1] += c;
            } else {
                h[0] += c * 5;
            }
        }
    }
    let c = h[0] >> bits;
    h[0] &= mask(bits);
    h[1] += c;
    // g = h + 5 - 2^130; pick g if it did not go negative, in constant time.
    let mut g = [0u64; N];
    let mut c = 5;
    for i in 0..N - 1 {
        g[i] = h[i] + c;
        c = g[i] >> bits;
        g[i] &= mask(bits);
    }
    g[N - 1] = (h[N - 1] + c).wrapping_sub(1 << top);
    // All ones when g >= 0.
    let pick_g = (g[N - 1] >> 63).wrapping_sub(1);
    // h mod 2^128 (limbs may overlap by a carry: add, not or), plus s.
    let h = (0..N).fold(0u128, |acc, i| {
        let l = (h[i] & !pick_g) | (g[i] & pick_g & mask(width(i)));
        acc.wrapping_add(u128::from(l) << (bits * i as u32))
    });
    h.wrapping_add(u128::from(s[0]) | (u128::from(s[1]) << 64))
        .to_le_bytes()
}

pub(crate) const M26: u64 = (1 << 26) - 1;

/// `r` clamped, as five radix-2^26 limbs (for the AVX2 kernel's 32x32-bit multiplies).
pub(crate) fn clamp_r26(key: &[u8; 32]) -> [u64; 5] {
    let w = |i: usize| {
        u64::from(u32::from_le_bytes([
            key[i],
            key[i + 1],
            key[i + 2],
            key[i + 3],
        ]))
    };
    [
        w(0) & 0x3ff_ffff,
        (w(3) >> 2) & 0x3ff_ff03,
        (w(6) >> 4) & 0x3ff_c0ff,
        (w(9) >> 6) & 0x3f0_3fff,
        (w(12) >> 8) & 0x00f_ffff,
    ]
}

/// The tag from a partially reduced radix-2^26 accumulator (limbs of up to ~32 bits) and `s`,
/// without going through radix 2^44 (`finish` after `from_radix26` cost the AVX2 kernel
/// about 130 instructions per packet, a tenth of a 64-byte seal).
pub(crate) fn finish26(h: [u64; 5], s: [u64; 2]) -> [u8; 16] {
    finish_limbs(h, 26, s)
}

/// A partially reduced radix-2^26 accumulator (limbs of up to ~32 bits) as radix-2^44 limbs,
/// for [`finish`]: the reference [`finish26`] is tested against.
#[cfg(test)]
pub(crate) fn from_radix26(h: [u64; 5]) -> [u64; 3] {
    let [mut h0, mut h1, mut h2, mut h3, mut h4] = h;
    let mut c;
    c = h0 >> 26;
    h0 &= M26;
    h1 += c;
    c = h1 >> 26;
    h1 &= M26;
    h2 += c;
    c = h2 >> 26;
    h2 &= M26;
    h3 += c;
    c = h3 >> 26;
    h3 &= M26;
    h4 += c;
    c = h4 >> 26;
    h4 &= M26;
    h0 += c * 5;
    c = h0 >> 26;
    h0 &= M26;
    h1 += c;
    // h < 2^130 + small now. The limbs below h4 fit in 105 bits; h4 lands at 2^104 and so
    // only in the top limb (2^88 * 2^16).
    let low = u128::from(h0) + (u128::from(h1) << 26) + (u128::from(h2) << 52);
    let low = low + (u128::from(h3) << 78);
    [
        (low as u64) & M44,
        ((low >> 44) as u64) & M44,
        ((low >> 88) as u64) + (h4 << 16),
    ]
}

/// `h * r mod 2^130 - 5`, partially reduced: limbs 0 and 1 below 2^44 (+ a small carry), limb 2
/// below 2^42. `h` limbs below 2^50, `r` limbs below 2^44 (limb 2 below 2^42).
#[inline(always)]
pub(crate) fn mul_mod(h: [u64; 3], r: [u64; 3]) -> [u64; 3] {
    let [h0, h1, h2] = h;
    let [r0, r1, r2] = r;
    let (s1, s2) = (r1 * 20, r2 * 20);
    let mul = |a: u64, b: u64| u128::from(a) * u128::from(b);
    let d0 = mul(h0, r0) + mul(h1, s2) + mul(h2, s1);
    let mut d1 = mul(h0, r1) + mul(h1, r0) + mul(h2, s2);
    let mut d2 = mul(h0, r2) + mul(h1, r1) + mul(h2, r0);
    let mut h0 = (d0 as u64) & M44;
    d1 += d0 >> 44;
    let mut h1 = (d1 as u64) & M44;
    d2 += d1 >> 44;
    let h2 = (d2 as u64) & M42;
    h0 += ((d2 >> 42) as u64) * 5;
    h1 += h0 >> 44;
    h0 &= M44;
    [h0, h1, h2]
}

/// One Poly1305 computation.
pub(crate) struct Poly1305 {
    r: [u64; 3],
    s: [u64; 2],
    h: [u64; 3],
}

impl Drop for Poly1305 {
    fn drop(&mut self) {
        self.r.zeroize();
        self.s.zeroize();
        self.h.zeroize();
    }
}

impl Poly1305 {
    pub(crate) fn new(key: &[u8; 32]) -> Self {
        Self {
            r: clamp_r(key),
            s: s_words(key),
            h: [0; 3],
        }
    }

    /// Absorbs one 16-byte block given as limbs (with its 2^128 bit if it has one).
    #[inline(always)]
    fn absorb(&mut self, m: [u64; 3]) {
        let h = [self.h[0] + m[0], self.h[1] + m[1], self.h[2] + m[2]];
        self.h = mul_mod(h, self.r);
    }

    /// The clamped `r` (radix-2^44 limbs).
    pub(crate) fn r(&self) -> [u64; 3] {
        self.r
    }

    /// Continues from an accumulator computed elsewhere (limbs below 2^50).
    pub(crate) fn set_h(&mut self, h: [u64; 3]) {
        self.h = h;
    }

    /// Absorbs `data` zero-padded to a multiple of 16 bytes, as the AEAD construction does
    /// (RFC 8439 §2.8).
    pub(crate) fn update_padded(&mut self, data: &[u8]) {
        let mut chunks = data.chunks_exact(16);
        for b in &mut chunks {
            let mut m = block_limbs(le64(&b[..8]), le64(&b[8..]));
            m[2] |= HIBIT;
            self.absorb(m);
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut b = [0u8; 16];
            b[..rest.len()].copy_from_slice(rest);
            let mut m = block_limbs(le64(&b[..8]), le64(&b[8..]));
            m[2] |= HIBIT;
            self.absorb(m);
        }
    }

    /// Absorbs the AEAD length block: `aad_len || text_len`, both 64-bit little-endian.
    pub(crate) fn update_lengths(&mut self, aad_len: u64, text_len: u64) {
        let mut m = block_limbs(aad_len, text_len);
        m[2] |= HIBIT;
        self.absorb(m);
    }

    pub(crate) fn finish(self) -> [u8; 16] {
        finish(self.h, self.s)
    }

    /// The plain Poly1305 MAC of RFC 8439 §2.5: a final partial block gets a 1 byte after its
    /// data instead of the 2^128 bit.
    #[cfg(test)]
    pub(crate) fn mac(key: &[u8; 32], msg: &[u8]) -> [u8; 16] {
        let mut p = Self::new(key);
        let mut chunks = msg.chunks_exact(16);
        for b in &mut chunks {
            let mut m = block_limbs(le64(&b[..8]), le64(&b[8..]));
            m[2] |= HIBIT;
            p.absorb(m);
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut b = [0u8; 16];
            b[..rest.len()].copy_from_slice(rest);
            b[rest.len()] = 1;
            p.absorb(block_limbs(le64(&b[..8]), le64(&b[8..])));
        }
        p.finish()
    }
}

#[cfg(test)]
mod finish26_tests {
    use super::*;
    use rand::{Rng as _, SeedableRng as _};
    use rand_chacha::ChaCha8Rng;

    /// `finish26` against `finish(from_radix26(..))`: random limbs up to 32 bits (what the
    /// AVX2 kernel leaves), and the values around p = 2^130 - 5 where the final subtraction
    /// decides, with carries pending in every limb.
    #[test]
    fn the_direct_final_reduction_matches_the_one_through_radix_44() {
        let mut rng = ChaCha8Rng::seed_from_u64(26);
        // p - 1, p, p + 1 and 2^130 - 1 as fully carried limbs; then the same with a carry
        // moved down into a lower limb (limb i - 1 holding 2^26 more, limb i one less).
        // p = 2^130 - 5 is (2^26 - 5, M26, M26, M26, M26); p + delta for delta >= 5 carries
        // all the way: (delta - 5, 0, 0, 0, 2^26), a limb over its width as the kernel may
        // leave it.
        let p_limbs = |delta: i64| -> [u64; 5] {
            if delta >= 5 {
                [(delta - 5) as u64, 0, 0, 0, 1 << 26]
            } else {
                [((1i64 << 26) - 5 + delta) as u64, M26, M26, M26, M26]
            }
        };
        let mut cases: Vec<[u64; 5]> = Vec::new();
        for d in [-6, -5, -1, 0, 1, 2, 4, 5] {
            let h = p_limbs(d);
            cases.push(h);
            for i in 1..5 {
                if h[i] > 0 {
                    let mut m = h;
                    m[i] -= 1;
                    m[i - 1] += 1 << 26;
                    cases.push(m);
                }
            }
        }
        cases.push([u32::MAX as u64; 5]);
        cases.push([0; 5]);
        for _ in 0..100_000 {
            cases.push(core::array::from_fn(|_| match rng.gen_range(0..4) {
                0 => M26,
                1 => rng.gen_range(0..=u32::MAX as u64),
                _ => rng.gen_range(0..=M26),
            }));
        }
        for h in cases {
            let s = [rng.gen(), rng.gen()];
            assert_eq!(finish26(h, s), finish(from_radix26(h), s), "{h:x?}");
        }
    }
}
