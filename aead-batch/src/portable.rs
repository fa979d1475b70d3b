//! The portable backend: one packet at a time with the scalar ChaCha20 and Poly1305. It is the
//! fallback on CPUs without a SIMD level and the reference the SIMD backends are tested against.

use crate::chacha::{self, key_words, wireguard_tail};
use crate::poly1305::Poly1305;
use crate::TAG_LEN;
use subtle::ConstantTimeEq;
use zeroize::Zeroize;

/// The Poly1305 one-time key: the first 32 bytes of block 0 (RFC 8439 §2.6).
fn poly_key(key: &[u32; 8], tail: [u32; 4]) -> [u8; 32] {
    let mut block = chacha::block(key, tail);
    let mut pk = [0u8; 32];
    pk.copy_from_slice(&block[..32]);
    block.zeroize();
    pk
}

fn tag_of(poly_key: &[u8; 32], aad: &[u8], text: &[u8]) -> [u8; 16] {
    let mut p = Poly1305::new(poly_key);
    p.update_padded(aad);
    p.update_padded(text);
    p.update_lengths(aad.len() as u64, text.len() as u64);
    p.finish()
}

/// Seals `buf` = plaintext || tag room in place (RFC 8439 §2.8, WireGuard nonce, no AAD).
/// `buf` must hold at least the tag.
pub(crate) fn seal(key: &[u8; 32], counter: u64, buf: &mut [u8]) {
    let mut kw = key_words(key);
    let mut pk = poly_key(&kw, wireguard_tail(0, counter));
    let (text, tag) = buf.split_at_mut(buf.len() - TAG_LEN);
    chacha::xor_stream(&kw, wireguard_tail(1, counter), text);
    tag.copy_from_slice(&tag_of(&pk, &[], text));
    pk.zeroize();
    kw.zeroize();
}

/// Opens `buf` = ciphertext || tag in place. The tag is checked (in constant time) before
/// anything is decrypted, so a forged packet is left exactly as it came.
pub(crate) fn open(key: &[u8; 32], counter: u64, buf: &mut [u8]) -> bool {
    let mut kw = key_words(key);
    let mut pk = poly_key(&kw, wireguard_tail(0, counter));
    let (text, tag) = buf.split_at_mut(buf.len() - TAG_LEN);
    let ok = bool::from(tag_of(&pk, &[], text).ct_eq(tag));
    if ok {
        chacha::xor_stream(&kw, wireguard_tail(1, counter), text);
    }
    pk.zeroize();
    kw.zeroize();
    ok
}

/// The general AEAD of RFC 8439 §2.8 (any 96-bit nonce, with AAD), for the RFC's vectors.
#[cfg(test)]
pub(crate) fn seal_general(
    key: &[u8; 32],
    nonce: &[u8; 12],
    aad: &[u8],
    text: &mut [u8],
) -> [u8; 16] {
    let kw = key_words(key);
    let n = |i: usize| u32::from_le_bytes([nonce[i], nonce[i + 1], nonce[i + 2], nonce[i + 3]]);
    let pk = poly_key(&kw, [0, n(0), n(4), n(8)]);
    chacha::xor_stream(&kw, [1, n(0), n(4), n(8)], text);
    tag_of(&pk, aad, text)
}
