//! What the criterion and the iai-callgrind benches share: the packets and both contenders.
#![allow(dead_code, reason = "each bench uses part of it")]

use aead_batch::{Dispatch, Packet, TAG_LEN};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305};

pub const PACKETS: usize = 64;
pub const PEERS: usize = 8;
pub const BATCHES: [usize; 4] = [1, 8, 32, 64];

/// Simple IMIX 7:4:1 of 40-, 576- and 1500-byte IP packets, as WireGuard plaintext padded to
/// 16 bytes (and 1500 capped at the 1420 MTU), interleaved.
pub const IMIX: [usize; 12] = [48, 576, 48, 48, 576, 48, 1420, 48, 576, 48, 48, 576];

#[derive(Clone, Copy)]
pub enum Sizes {
    Fixed(usize),
    Imix,
}

impl Sizes {
    pub fn len(self, i: usize) -> usize {
        match self {
            Sizes::Fixed(n) => n,
            Sizes::Imix => IMIX[i % IMIX.len()],
        }
    }
    pub fn name(self) -> String {
        match self {
            Sizes::Fixed(n) => format!("{n}B"),
            Sizes::Imix => "IMIX".into(),
        }
    }
    pub fn bytes(self) -> usize {
        (0..PACKETS).map(|i| self.len(i)).sum()
    }
}

pub fn keys() -> Vec<[u8; 32]> {
    (0..PEERS).map(|i| [i as u8 * 17 + 1; 32]).collect()
}

pub fn ring_keys(keys: &[[u8; 32]]) -> Vec<LessSafeKey> {
    keys.iter()
        .map(|k| LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, k).expect("key")))
        .collect()
}

pub fn nonce(counter: u64) -> Nonce {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&counter.to_le_bytes());
    Nonce::assume_unique_for_key(n)
}

/// Buffers `text || tag` for the 64 packets, sealed (for open) or not.
pub fn buffers(sizes: Sizes, sealed: bool, rk: &[LessSafeKey]) -> Vec<Vec<u8>> {
    (0..PACKETS)
        .map(|i| {
            let n = sizes.len(i);
            let mut b: Vec<u8> = (0..n + TAG_LEN).map(|j| (i * 7 + j) as u8).collect();
            if sealed {
                let tag = rk[i % PEERS]
                    .seal_in_place_separate_tag(nonce(i as u64), Aad::empty(), &mut b[..n])
                    .expect("seal");
                b[n..].copy_from_slice(tag.as_ref());
            }
            b
        })
        .collect()
}

pub fn ring_seal_all(rk: &[LessSafeKey], bufs: &mut [Vec<u8>]) {
    for (i, b) in bufs.iter_mut().enumerate() {
        let n = b.len() - TAG_LEN;
        let (text, tag_out) = b.split_at_mut(n);
        let tag = rk[i % PEERS]
            .seal_in_place_separate_tag(nonce(i as u64), Aad::empty(), text)
            .expect("seal");
        tag_out.copy_from_slice(tag.as_ref());
    }
}

pub fn ring_open_all(rk: &[LessSafeKey], bufs: &mut [Vec<u8>]) -> usize {
    let mut ok = 0;
    for (i, b) in bufs.iter_mut().enumerate() {
        ok += usize::from(
            rk[i % PEERS]
                .open_in_place(nonce(i as u64), Aad::empty(), b)
                .is_ok(),
        );
    }
    ok
}

pub fn batch_all(
    backend: impl Into<Dispatch>,
    keys: &[[u8; 32]],
    bufs: &mut [Vec<u8>],
    batch: usize,
    seal: bool,
) -> usize {
    let backend: Dispatch = backend.into();
    let mut it = bufs.iter_mut();
    let mut packets: [Packet<'_>; PACKETS] = core::array::from_fn(|i| {
        Packet::new(&keys[i % PEERS], i as u64, it.next().expect("64 buffers"))
    });
    let mut done = 0;
    for chunk in packets.chunks_mut(batch) {
        done += if seal {
            backend.seal(chunk)
        } else {
            backend.open(chunk)
        };
    }
    done
}

pub const ALL_SIZES: [Sizes; 6] = [
    Sizes::Fixed(64),
    Sizes::Fixed(128),
    Sizes::Fixed(256),
    Sizes::Fixed(512),
    Sizes::Fixed(1420),
    Sizes::Imix,
];
