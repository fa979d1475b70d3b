//! Differential tests against ring (one packet at a time) on every level this CPU has, forced,
//! not only the one `Backend::detect` picks.

use crate::{Backend, Packet, Verdict, TAG_LEN};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305};

fn ring_key(k: &[u8; 32]) -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, k).expect("key"))
}

/// ring's sealing of `text`: ciphertext || tag.
fn ring_seal(key: &[u8; 32], counter: u64, text: &[u8]) -> Vec<u8> {
    let mut buf = text.to_vec();
    let tag = ring_key(key)
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(proto::crypto::aead_nonce(counter)),
            Aad::empty(),
            &mut buf,
        )
        .expect("seal");
    buf.extend_from_slice(tag.as_ref());
    buf
}

/// A random batch: (key, counter, plaintext); keys repeat sometimes, as peers do.
fn batch(rng: &mut ChaCha8Rng, n: usize, max_len: usize) -> Vec<([u8; 32], u64, Vec<u8>)> {
    let keys: Vec<[u8; 32]> = (0..1 + n / 3).map(|_| rng.gen()).collect();
    (0..n)
        .map(|_| {
            let len = match rng.gen_range(0..4) {
                0 => rng.gen_range(0..=max_len.min(80)),
                _ => rng.gen_range(0..=max_len),
            };
            let text: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
            let counter = match rng.gen_range(0..3) {
                0 => rng.gen_range(0..4),
                1 => u64::MAX - rng.gen_range(0..4),
                _ => rng.gen(),
            };
            (keys[rng.gen_range(0..keys.len())], counter, text)
        })
        .collect()
}

/// Seals the batch with `b`, checks it against ring byte for byte, opens it again with `b` and
/// checks the plaintext came back.
fn roundtrip(b: Backend, items: &[([u8; 32], u64, Vec<u8>)]) {
    let mut bufs: Vec<Vec<u8>> = items
        .iter()
        .map(|(_, _, t)| {
            let mut v = t.clone();
            v.resize(t.len() + TAG_LEN, 0xa5);
            v
        })
        .collect();
    let mut packets: Vec<Packet<'_>> = items
        .iter()
        .zip(bufs.iter_mut())
        .map(|((k, c, _), buf)| Packet::new(k, *c, buf))
        .collect();
    assert_eq!(b.seal(&mut packets), items.len(), "{}", b.name());
    assert!(packets.iter().all(|p| p.verdict() == Verdict::Ok));
    drop(packets);
    for (i, ((k, c, t), buf)) in items.iter().zip(&bufs).enumerate() {
        assert_eq!(
            *buf,
            ring_seal(k, *c, t),
            "{}: packet {i} of {}, len {}",
            b.name(),
            items.len(),
            t.len()
        );
    }
    let mut packets: Vec<Packet<'_>> = items
        .iter()
        .zip(bufs.iter_mut())
        .map(|((k, c, _), buf)| Packet::new(k, *c, buf))
        .collect();
    assert_eq!(b.open(&mut packets), items.len(), "{}", b.name());
    drop(packets);
    for ((_, _, t), buf) in items.iter().zip(&bufs) {
        assert_eq!(&buf[..t.len()], &t[..], "{}", b.name());
    }
}

#[test]
fn every_level_is_available_where_the_cpu_has_it() {
    let names: Vec<_> = Backend::all().into_iter().map(Backend::name).collect();
    assert_eq!(names[0], "portable");
    #[cfg(target_arch = "x86_64")]
    {
        assert_eq!(
            names.contains(&"avx2"),
            std::arch::is_x86_feature_detected!("avx2")
        );
        let avx512 = std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vl")
            && std::arch::is_x86_feature_detected!("avx512ifma");
        assert_eq!(names.contains(&"avx512"), avx512);
    }
    assert_eq!(Backend::detect(), *Backend::all().last().expect("one"));
}

#[test]
fn every_length_up_to_600_in_one_batch_matches_ring() {
    // Every length 0..=600 (so every partial block and lane position), one packet each, in
    // batches of 64, mixed keys.
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let items: Vec<_> = (0..=600usize)
        .map(|len| {
            let text: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
            (rng.gen::<[u8; 32]>(), rng.gen::<u64>(), text)
        })
        .collect();
    for b in Backend::all() {
        for chunk in items.chunks(64) {
            roundtrip(b, chunk);
        }
    }
}

#[test]
fn batch_sizes_1_to_64_with_mixed_lengths_match_ring() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    for b in Backend::all() {
        for n in 1..=64 {
            let items = batch(&mut rng, n, 1500);
            roundtrip(b, &items);
        }
    }
}

#[test]
fn bursts_of_one_size_in_whole_and_split_windows_match_ring() {
    // A worker's burst: every packet one size, 64 to a window (and a window of 66 split 64 +
    // 2). On AVX2 these take the stitched lanes, where a sealed packet ending on a whole
    // 64-byte chunk leaves its last chunk and length block to the next call, and the last
    // eight of a window finish outside the rounds.
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for len in [16, 64, 100, 128, 512, 576, 1420] {
        for n in [8, 64, 66] {
            let items: Vec<_> = (0..n)
                .map(|_| {
                    let text: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
                    (rng.gen::<[u8; 32]>(), rng.gen::<u64>(), text)
                })
                .collect();
            for b in Backend::all() {
                roundtrip(b, &items);
            }
        }
    }
}

#[test]
fn lone_and_paired_packets_of_every_shape_match_ring() {
    // One or two packets per batch take the single-packet paths (wide or scalar Poly1305,
    // narrow ChaCha20): lengths around the group boundaries, odd ones, and jumbo.
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let lens = [
        0, 1, 64, 127, 128, 255, 256, 257, 271, 383, 384, 385, 511, 512, 1023, 1420, 1421, 9216,
    ];
    for b in Backend::all() {
        for &len in &lens {
            let text: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
            roundtrip(b, &[(rng.gen(), rng.gen(), text.clone())]);
            let other: Vec<u8> = (0..rng.gen_range(0..2000)).map(|_| rng.gen()).collect();
            roundtrip(
                b,
                &[(rng.gen(), rng.gen(), text), (rng.gen(), rng.gen(), other)],
            );
        }
    }
}

#[test]
fn jumbo_lengths_up_to_9216_match_ring() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for b in Backend::all() {
        let mut items = batch(&mut rng, 20, 9216);
        items.push(([7; 32], 9, vec![1; 9216]));
        items.push(([8; 32], 10, vec![2; 9215]));
        roundtrip(b, &items);
    }
}

#[test]
fn same_key_and_counter_everywhere() {
    // One peer, a burst of full-size packets: the lanes all share the key.
    let items: Vec<_> = (0..40u64)
        .map(|c| ([3u8; 32], c, vec![c as u8; 1420]))
        .collect();
    for b in Backend::all() {
        roundtrip(b, &items);
    }
}

/// Seals one packet with ring, flips each bit of ciphertext and tag in turn inside a batch of
/// untouched packets, and checks only the flipped one fails and keeps its ciphertext.
fn flips(b: Backend, len: usize) {
    let key = [0x42u8; 32];
    let sealed = ring_seal(&key, 77, &vec![0x5a; len]);
    let good = ring_seal(&[9; 32], 5, &[1, 2, 3]);
    let mut bit = 0;
    while bit < sealed.len() * 8 {
        let mut bad = sealed.clone();
        bad[bit / 8] ^= 1 << (bit % 8);
        let mut g1 = good.clone();
        let mut g2 = good.clone();
        let kg = [9u8; 32];
        let mut ps = [
            Packet::new(&kg, 5, &mut g1),
            Packet::new(&key, 77, &mut bad),
            Packet::new(&kg, 5, &mut g2),
        ];
        assert_eq!(b.open(&mut ps), 2, "{} len {len} bit {bit}", b.name());
        assert_eq!(ps[1].verdict(), Verdict::Auth);
        let mut want = sealed.clone();
        want[bit / 8] ^= 1 << (bit % 8);
        assert_eq!(ps[1].buf(), &want[..], "no plaintext released");
        // Every bit for short packets; a stride (still covering every byte and the tag) for
        // longer ones, to stay fast.
        bit += if len <= 64 || bit >= len * 8 { 1 } else { 9 };
    }
}

#[test]
fn every_flipped_bit_fails() {
    for b in Backend::all() {
        // 2100 bytes is over the one-pass scratch, so both open paths are covered.
        for len in [0, 1, 15, 16, 17, 63, 64, 65, 200, 2100] {
            flips(b, len);
        }
    }
}

/// Packets that the AVX2 level's stitched lanes take (a set of long ones that keeps 8 lanes
/// busy; lengths with a whole last chunk, a partial one, one byte): a bit flipped in one of them,
/// in its first chunk, a middle one, its last partial chunk or its tag, fails only that one,
/// and leaves it without plaintext: zeroed on the stitched path (which decrypts as it goes),
/// its ciphertext elsewhere. The others open.
#[test]
fn a_forged_packet_among_the_lanes_fails_alone_and_releases_nothing() {
    let lens = [1000, 960, 1023, 1001, 900, 896, 1010, 999];
    let items: Vec<([u8; 32], u64, Vec<u8>)> = lens
        .iter()
        .enumerate()
        .map(|(i, &l)| ([i as u8 + 1; 32], 1000 + i as u64, vec![0x5a ^ i as u8; l]))
        .collect();
    let sealed: Vec<Vec<u8>> = items.iter().map(|(k, c, t)| ring_seal(k, *c, t)).collect();
    #[cfg(target_arch = "x86_64")]
    let stitched = crate::x86_avx2_stitch::supported();
    #[cfg(not(target_arch = "x86_64"))]
    let stitched = false;
    for b in Backend::all() {
        for (victim, byte) in [(0, 0), (3, 500), (2, 1020), (6, 1003), (7, 999 + 15)] {
            let mut bufs = sealed.clone();
            bufs[victim][byte] ^= 0x10;
            let forged = bufs[victim].clone();
            let mut ps: Vec<_> = items
                .iter()
                .zip(bufs.iter_mut())
                .map(|((k, c, _), buf)| Packet::new(k, *c, buf))
                .collect();
            let what = format!("{} packet {victim} byte {byte}", b.name());
            assert_eq!(b.open(&mut ps), lens.len() - 1, "{what}");
            for (i, p) in ps.iter().enumerate() {
                if i != victim {
                    assert_eq!(p.verdict(), Verdict::Ok, "{what}: {i}");
                    assert_eq!(&p.buf()[..p.text_len()], &items[i].2[..], "{what}: {i}");
                    continue;
                }
                assert_eq!(p.verdict(), Verdict::Auth, "{what}");
                let text = &p.buf()[..p.text_len()];
                if Backend::avx2() == Some(b) && stitched {
                    assert!(text.iter().all(|&x| x == 0), "{what}: zeroed");
                } else {
                    assert_eq!(text, &forged[..forged.len() - TAG_LEN], "{what}: kept");
                }
            }
        }
    }
}

#[test]
fn wrong_key_or_counter_fails() {
    for b in Backend::all() {
        let sealed = ring_seal(&[1; 32], 1, &[0; 100]);
        let (mut x, mut y) = (sealed.clone(), sealed.clone());
        let (k1, k2) = ([1u8; 32], [2u8; 32]);
        let mut ps = [Packet::new(&k2, 1, &mut x), Packet::new(&k1, 2, &mut y)];
        assert_eq!(b.open(&mut ps), 0);
        assert_eq!(x, sealed);
        assert_eq!(y, sealed);
    }
}

#[test]
fn short_buffers_are_reported_not_processed() {
    for b in Backend::all() {
        let k = [0u8; 32];
        let mut short = [0u8; 15];
        let mut ok = [0u8; 16];
        let mut ps = [Packet::new(&k, 0, &mut short), Packet::new(&k, 0, &mut ok)];
        assert_eq!(b.seal(&mut ps), 1);
        assert_eq!(ps[0].verdict(), Verdict::TooShort);
        assert_eq!(ps[1].verdict(), Verdict::Ok);
        assert_eq!(b.open(&mut ps), 1);
        assert_eq!(short, [0; 15]);
    }
}

#[test]
fn from_message_uses_the_header_counter() {
    let key = [4u8; 32];
    let mut msg = vec![0u8; 16 + 32 + 16];
    msg[16..21].copy_from_slice(b"hello");
    proto::data::seal(&key, 0x1122, 99, &mut msg, 32).expect("seal");
    for b in Backend::all() {
        let mut m = msg.clone();
        let mut ps = [Packet::from_message(&key, &mut m).expect("data message")];
        assert_eq!(ps[0].counter(), 99);
        assert_eq!(b.open(&mut ps), 1);
        assert_eq!(&m[16..21], b"hello");
        // And sealing it again in place gives proto's message back.
        let mut ps = [Packet::from_message(&key, &mut m).expect("data message")];
        assert_eq!(b.seal(&mut ps), 1);
        assert_eq!(m, msg);
    }
    assert!(Packet::from_message(&key, &mut [0u8; 31]).is_none());
}

#[test]
fn debug_shows_no_key_or_data() {
    let key = [0xabu8; 32];
    let mut buf = [0xcdu8; 20];
    let s = format!("{:?}", Packet::new(&key, 3, &mut buf));
    assert!(
        !s.contains("171") && !s.contains("ab") && !s.contains("205"),
        "{s}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn random_batches_match_ring(seed in any::<u64>(), n in 1usize..=64, max_len in 0usize..=2000) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let items = batch(&mut rng, n, max_len);
        for b in Backend::all() {
            roundtrip(b, &items);
        }
    }
}
