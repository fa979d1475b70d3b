//! Portable ChaCha20 (RFC 8439 §2.1-2.4): the reference the SIMD kernels are tested against and
//! the fallback where no SIMD level is available.

/// "expand 32-byte k" (RFC 8439 §2.3).
pub(crate) const SIGMA: [u32; 4] = [0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574];

/// Bytes in one ChaCha20 block.
pub(crate) const BLOCK_LEN: usize = 64;

/// Words 12..16 of the state: block counter and the three nonce words (RFC 8439 §2.3).
/// WireGuard's nonce is 4 zero bytes then the 64-bit little-endian message counter, so its
/// words are `[block, 0, counter as u32, (counter >> 32) as u32]`.
pub(crate) fn wireguard_tail(block: u32, counter: u64) -> [u32; 4] {
    [block, 0, counter as u32, (counter >> 32) as u32]
}

#[inline(always)]
fn quarter_round(s: &mut [u32; 16], a: usize, b: usize, c: usize, d: usize) {
    s[a] = s[a].wrapping_add(s[b]);
    s[d] = (s[d] ^ s[a]).rotate_left(16);
    s[c] = s[c].wrapping_add(s[d]);
    s[b] = (s[b] ^ s[c]).rotate_left(12);
    s[a] = s[a].wrapping_add(s[b]);
    s[d] = (s[d] ^ s[a]).rotate_left(8);
    s[c] = s[c].wrapping_add(s[d]);
    s[b] = (s[b] ^ s[c]).rotate_left(7);
}

/// The key as eight little-endian words.
pub(crate) fn key_words(key: &[u8; 32]) -> [u32; 8] {
    core::array::from_fn(|i| {
        u32::from_le_bytes([key[4 * i], key[4 * i + 1], key[4 * i + 2], key[4 * i + 3]])
    })
}

/// The ChaCha20 block function (RFC 8439 §2.3): 64 bytes of keystream.
pub(crate) fn block(key: &[u32; 8], tail: [u32; 4]) -> [u8; BLOCK_LEN] {
    let mut init = [0u32; 16];
    init[..4].copy_from_slice(&SIGMA);
    init[4..12].copy_from_slice(key);
    init[12..].copy_from_slice(&tail);
    let mut s = init;
    for _ in 0..10 {
        quarter_round(&mut s, 0, 4, 8, 12);
        quarter_round(&mut s, 1, 5, 9, 13);
        quarter_round(&mut s, 2, 6, 10, 14);
        quarter_round(&mut s, 3, 7, 11, 15);
        quarter_round(&mut s, 0, 5, 10, 15);
        quarter_round(&mut s, 1, 6, 11, 12);
        quarter_round(&mut s, 2, 7, 8, 13);
        quarter_round(&mut s, 3, 4, 9, 14);
    }
    let mut out = [0u8; BLOCK_LEN];
    for (i, chunk) in out.chunks_exact_mut(4).enumerate() {
        chunk.copy_from_slice(&s[i].wrapping_add(init[i]).to_le_bytes());
    }
    out
}

/// XORs the keystream starting at block `tail[0]` into `data` (RFC 8439 §2.4).
pub(crate) fn xor_stream(key: &[u32; 8], mut tail: [u32; 4], data: &mut [u8]) {
    for chunk in data.chunks_mut(BLOCK_LEN) {
        let ks = block(key, tail);
        for (d, k) in chunk.iter_mut().zip(ks.iter()) {
            *d ^= k;
        }
        tail[0] = tail[0].wrapping_add(1);
    }
}
