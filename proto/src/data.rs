//! Transport data messages, one at a time: the reference seal/open (whitepaper §5.4.6).
//!
//! This is the single-packet path built on ring's ChaCha20-Poly1305. The control process and
//! the fallback backend use it directly, and the data path's batch SIMD implementation is
//! tested against it byte for byte. Buffers are laid out as the message will be on the wire:
//! `[16-byte header][plaintext, zero-padded][16-byte tag]`, so sealing and opening happen in
//! place without a copy.

use crate::constants::MESSAGE_PADDING_MULTIPLE;
use crate::crypto::{aead_nonce, TAG_LEN};
use crate::messages::{field, Data, DATA_HEADER_LEN, DATA_OVERHEAD};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305};

/// Authentication of a data message failed; the buffer still holds ciphertext.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DataError {
    #[error("data message failed authentication")]
    Auth,
    #[error("buffer too small for the message")]
    BufferTooSmall,
}

/// Length of `len` plaintext bytes once padded (the kernel's `calculate_skb_padding`): up to a
/// multiple of 16, but never past the MTU, so a full-size packet is not made bigger than the
/// link allows. A packet larger than the MTU (which should not happen) is padded as if its
/// length were taken modulo the MTU, exactly like the kernel, so the padding stays below 16.
pub fn padded_len(len: usize, mtu: usize) -> usize {
    let align = |n: usize| n.div_ceil(MESSAGE_PADDING_MULTIPLE) * MESSAGE_PADDING_MULTIPLE;
    if mtu == 0 {
        return align(len);
    }
    let last_unit = if len > mtu { len % mtu } else { len };
    let padded = mtu.min(align(last_unit));
    len + (padded - last_unit)
}

fn key(raw: &[u8; 32]) -> LessSafeKey {
    // ChaCha20-Poly1305 keys are 32 bytes, which is all `UnboundKey::new` checks.
    LessSafeKey::new(
        UnboundKey::new(&CHACHA20_POLY1305, raw)
            .unwrap_or_else(|_| unreachable!("32-byte key for ChaCha20-Poly1305")),
    )
}

/// Seals a data message in place. `buf` holds the header room, `padded_len` bytes of padded
/// plaintext at `16..`, and room for the tag; returns the message length.
pub fn seal(
    key_bytes: &[u8; 32],
    receiver: u32,
    counter: u64,
    buf: &mut [u8],
    padded_len: usize,
) -> Result<usize, DataError> {
    let total = DATA_OVERHEAD + padded_len;
    if buf.len() < total {
        return Err(DataError::BufferTooSmall);
    }
    let msg = &mut buf[..total];
    let mut view =
        Data::new_init(&mut *msg, receiver, counter).map_err(|_| DataError::BufferTooSmall)?;
    let payload = view.payload_mut();
    let (plain, tag_out) = payload.split_at_mut(padded_len);
    let tag = key(key_bytes)
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(aead_nonce(counter)),
            Aad::empty(),
            plain,
        )
        .map_err(|_| DataError::BufferTooSmall)?;
    tag_out.copy_from_slice(tag.as_ref());
    Ok(total)
}

/// Opens a checked data message in place; on success the padded plaintext is
/// `msg[16..16 + returned]`. On failure nothing was released.
pub fn open(key_bytes: &[u8; 32], msg: &mut [u8]) -> Result<usize, DataError> {
    let counter = Data::new_checked(&*msg)
        .map_err(|_| DataError::Auth)?
        .counter();
    let payload = &mut msg[field::data::PAYLOAD];
    let plain_len = payload.len() - TAG_LEN;
    key(key_bytes)
        .open_in_place(
            Nonce::assume_unique_for_key(aead_nonce(counter)),
            Aad::empty(),
            payload,
        )
        .map_err(|_| DataError::Auth)?;
    Ok(plain_len)
}

/// Offset of the plaintext inside a data message buffer.
pub const PLAINTEXT_OFFSET: usize = DATA_HEADER_LEN;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn padding_matches_the_kernel() {
        // (len, mtu, padded)
        let cases = [
            (0, 1420, 0),
            (1, 1420, 16),
            (16, 1420, 16),
            (17, 1420, 32),
            (1419, 1420, 1420), // clamped to the MTU, not 1424
            (1420, 1420, 1420),
            (1415, 1420, 1420),
            (1400, 1420, 1408),
            (1421, 1420, 1421 + 15), // over the MTU: 1 % 1420 -> padded to 16
            (5, 0, 16),              // no MTU known
        ];
        for (len, mtu, want) in cases {
            assert_eq!(padded_len(len, mtu), want, "len {len} mtu {mtu}");
        }
    }

    #[test]
    fn keepalive_is_32_bytes() {
        let mut buf = [0u8; 32];
        assert_eq!(seal(&[1; 32], 9, 0, &mut buf, 0), Ok(32));
        assert_eq!(open(&[1; 32], &mut buf), Ok(0));
    }

    #[test]
    fn sealed_layout_and_tamper() {
        let k = [7u8; 32];
        let mut buf = vec![0u8; 16 + 32 + 16];
        buf[16..16 + 5].copy_from_slice(b"hello");
        let n = seal(&k, 0x11223344, 3, &mut buf, 32).unwrap();
        assert_eq!(n, 64);
        assert_eq!(
            &buf[..16],
            &[4, 0, 0, 0, 0x44, 0x33, 0x22, 0x11, 3, 0, 0, 0, 0, 0, 0, 0]
        );
        for bit in [16 * 8, 40 * 8 + 3, 63 * 8 + 7, 9 * 8] {
            let mut t = buf.clone();
            t[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(open(&k, &mut t), Err(DataError::Auth), "bit {bit}");
        }
        assert_eq!(open(&k, &mut buf), Ok(32));
        assert_eq!(&buf[16..21], b"hello");
        assert_eq!(
            seal(&k, 0, 0, &mut [0u8; 40], 16),
            Err(DataError::BufferTooSmall)
        );
    }

    proptest! {
        #[test]
        fn seal_then_open_is_identity(
            key in any::<[u8; 32]>(),
            counter in any::<u64>(),
            plain in proptest::collection::vec(any::<u8>(), 0..2000),
        ) {
            let padded = padded_len(plain.len(), 0);
            let mut buf = vec![0u8; DATA_OVERHEAD + padded];
            buf[16..16 + plain.len()].copy_from_slice(&plain);
            let n = seal(&key, 1, counter, &mut buf, padded).unwrap();
            prop_assert_eq!(n, buf.len());
            prop_assert_eq!(open(&key, &mut buf), Ok(padded));
            prop_assert_eq!(&buf[16..16 + plain.len()], &plain[..]);
            prop_assert!(buf[16 + plain.len()..16 + padded].iter().all(|&b| b == 0));
        }

        #[test]
        fn open_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
            let mut b = bytes;
            let _ = open(&[0; 32], &mut b);
        }
    }
}
