//! The stitched lanes against the portable code, and their Poly1305 against the reference.

use super::*;
use crate::poly1305;
use rand::{Rng as _, SeedableRng as _};
use rand_chacha::ChaCha8Rng;

/// `seal` and `open` called directly on jobs of these text lengths (longest first), each with
/// its own key and counter from `seed`: sealed as the portable code seals; opened back with
/// the buffer bytes `forge` names flipped (packet, byte, bits), after which exactly those
/// packets fail and have their texts zeroed, and the others hold their plaintext.
fn seal_and_open_back(lens: &[usize], seed: u64, forge: &[(usize, usize, u8)]) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let items: Vec<([u8; 32], u64, Vec<u8>)> = lens
        .iter()
        .map(|&l| (rng.gen(), rng.gen(), (0..l).map(|_| rng.gen()).collect()))
        .collect();
    let mut bufs: Vec<Vec<u8>> = items
        .iter()
        .map(|(_, _, t)| [&t[..], &[0; TAG_LEN]].concat())
        .collect();
    let jobs = |bufs: &mut Vec<Vec<u8>>| -> Vec<Job> {
        items
            .iter()
            .zip(bufs.iter_mut())
            .map(|((k, c, t), b)| Job {
                key: k.as_ptr(),
                counter: *c,
                text: b.as_mut_ptr(),
                len: t.len(),
            })
            .collect()
    };
    // SAFETY: the callers checked AVX2 and BMI2; at most MAX_JOBS jobs, each key 32 bytes
    // and each buffer its own, text plus tag.
    unsafe { seal(&jobs(&mut bufs)) };
    for ((k, c, t), b) in items.iter().zip(&bufs) {
        let mut want = [&t[..], &[0; TAG_LEN]].concat();
        crate::portable::seal(k, *c, &mut want);
        assert_eq!(b, &want, "{} bytes", t.len());
    }
    for &(i, at, bits) in forge {
        bufs[i][at] ^= bits;
    }
    let mut ok = [false; MAX_JOBS];
    // SAFETY: as above.
    unsafe { open(&jobs(&mut bufs), &mut ok) };
    for (i, ((_, _, t), b)) in items.iter().zip(&bufs).enumerate() {
        if forge.iter().any(|f| f.0 == i) {
            assert!(!ok[i], "the forged packet {i} ({} bytes) fails", t.len());
            assert!(b[..t.len()].iter().all(|&x| x == 0), "and is zeroed");
        } else {
            assert!(ok[i], "{} bytes", t.len());
            assert_eq!(&b[..t.len()], &t[..], "{} bytes", t.len());
        }
    }
}

/// 16 jobs of staggered lengths (0, 1, 63, 64, 65 and up to 3000 bytes, some longer than
/// `sched::groups` opens here when ring is there), so lanes refill one at a time while the
/// others are mid-packet and idle at the end; one forged packet (1500 bytes) among them.
#[test]
fn staggered_lanes_match_the_portable_code() {
    if !supported() {
        eprintln!("skipped: this CPU lacks AVX2 or BMI2, so it has no stitched lanes");
        return;
    }
    // Longest first, as `sched::groups` passes them.
    let mut lens = [
        0, 1, 63, 64, 65, 128, 300, 777, 1420, 1500, 2000, 3000, 448, 449, 17, 1024,
    ];
    lens.sort_unstable_by(|a, b| b.cmp(a));
    // Index 2 is the 1500-byte packet.
    seal_and_open_back(&lens, 16, &[(2, 700, 1)]);
}

/// Jobs of these text lengths, longest first, as `sched::groups` passes them.
fn sorted(lens: &[usize]) -> Vec<Job> {
    let mut lens = lens.to_vec();
    lens.sort_unstable_by(|a, b| b.cmp(a));
    lens.into_iter()
        .map(|len| Job {
            key: core::ptr::null(),
            counter: 0,
            text: core::ptr::null_mut(),
            len,
        })
        .collect()
}

/// The tails' corner cases, by construction: 192 bytes on lane 0 and 128 on lanes 1-7, then
/// an empty packet. Lanes 1-7 end together with tails (their last chunk and length block go
/// into the next call); lane 1 takes the empty packet in that call, so a tail is finished
/// just before its successor's tag on the same lane, while lanes 2-7 idle with theirs; lane 0
/// ends last, alone, and its tail is finished after the loop. Opened back with the empty
/// packet and a 128-byte one (whose tag opening takes in the rounds) forged.
#[test]
fn tails_beside_idle_lanes_an_empty_successor_and_the_last_call() {
    if !supported() {
        eprintln!("skipped: this CPU lacks AVX2 or BMI2, so it has no stitched lanes");
        return;
    }
    let lens = [192, 128, 128, 128, 128, 128, 128, 128, 0];
    seal_and_open_back(&lens, 192, &[(3, 100, 0x80), (8, 0, 1)]);
}

#[test]
fn lanes_are_worth_it_only_when_they_stay_busy() {
    // A burst at one size: every lane busy to the end.
    assert!(worth_it(&sorted(&[1420; 16])));
    assert!(worth_it(&sorted(&[256; 8])));
    assert!(worth_it(&sorted(&[64; 64])));
    // Twelve: four lanes take a second packet while four idle, 3/4 of the lane-calls.
    assert!(worth_it(&sorted(&[1420; 12])));
    assert!(!worth_it(&sorted(&[1420; 11])));
    assert!(!worth_it(&sorted(&[64; 11])));
    // Sizes that differ in bytes but not in blocks (22 each) count as one size.
    assert!(worth_it(&sorted(&[
        1408, 1400, 1390, 1380, 1370, 1360, 1350, 1345
    ])));
    // IMIX's long packets of a chunk: two of 1420 bytes, five of 576.
    assert!(!worth_it(&sorted(&[1420, 1420, 576, 576, 576, 576, 576])));
    // One packet: seven lanes idle. None: nothing to do.
    assert!(!worth_it(&sorted(&[9000])));
    assert!(!worth_it(&[]));
    // Refilling evens out mixed lengths when there are enough of them.
    let mixed = [
        1420, 1420, 1420, 1420, 700, 700, 700, 700, 700, 700, 700, 700,
    ];
    assert!(worth_it(&sorted(&mixed)));
}

/// The closed form for a burst of one size against the simulated schedule: any number of
/// jobs up to a window, lengths that differ in bytes but take the same calls.
#[test]
fn one_size_shortcut_matches_the_simulated_schedule() {
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    for n in 1..=MAX_JOBS {
        for blocks in [0usize, 1, 2, 7, 23, 140] {
            let lo = if blocks == 0 {
                0
            } else {
                (blocks - 1) * BLOCK_LEN + 1
            };
            let lens: Vec<usize> = (0..n)
                .map(|_| rng.gen_range(lo..=blocks * BLOCK_LEN))
                .collect();
            let jobs = sorted(&lens);
            assert_eq!(
                lane_use(&jobs),
                simulate(&jobs),
                "{n} jobs of {blocks} blocks"
            );
        }
    }
}

/// `h` (radix 2^64, under 2^131) fully reduced mod 2^130 - 5.
fn reduced(h: [u64; 3]) -> [u64; 3] {
    let [mut h0, mut h1, mut h2] = h;
    for _ in 0..2 {
        let c = (h2 >> 2) * 5;
        h2 &= 3;
        let t = h0 as u128 + c as u128;
        h0 = t as u64;
        let t = h1 as u128 + (t >> 64);
        h1 = t as u64;
        h2 += (t >> 64) as u64;
    }
    // p = 2^130 - 5 = (3, 2^64 - 1, 2^64 - 5) in limbs.
    let ge_p = h2 > 3 || (h2 == 3 && h1 == u64::MAX && h0 >= u64::MAX - 4);
    if ge_p {
        let t = h0 as u128 + 5;
        h0 = t as u64;
        let t = h1 as u128 + (t >> 64);
        h1 = t as u64;
        h2 = (h2 + (t >> 64) as u64) & 3;
    }
    [h0, h1, h2]
}

/// One block through `Poly64::block` against the portable radix-2^44 `mul_mod`, both fully
/// reduced: random states and blocks, the extremes, and a state whose last carry (into h2)
/// only a crafted r reaches (r = 1: (2^128 - 1) + 3 * 2^128 + 2^128 wraps twice).
#[test]
fn one_block_matches_the_portable_multiply_even_at_the_last_carry() {
    let mut rng = ChaCha8Rng::seed_from_u64(130);
    let mut unit = [0u8; 32];
    unit[0] = 1;
    let mut cases = vec![([u64::MAX, u64::MAX, 3], (0, 0), unit)];
    for _ in 0..20_000 {
        let pick = |rng: &mut ChaCha8Rng| match rng.gen_range(0..4) {
            0 => u64::MAX,
            1 => 0,
            _ => rng.gen(),
        };
        let h = [pick(&mut rng), pick(&mut rng), rng.gen_range(0..=4)];
        let m = (pick(&mut rng), pick(&mut rng));
        let mut key: [u8; 32] = rng.gen();
        if rng.gen_range(0..4) == 0 {
            key[..16].fill(0xff);
        }
        cases.push((h, m, key));
    }
    for (h, (m0, m1), key) in cases {
        let mut p = Poly64::new(&key);
        p.h = h;
        p.block(m0, m1);
        // x = h + m + 2^128, then x * r in radix 2^44.
        let t = h[0] as u128 + m0 as u128;
        let x0 = t as u64;
        let t = h[1] as u128 + m1 as u128 + (t >> 64);
        let x1 = t as u64;
        let x2 = h[2] + 1 + (t >> 64) as u64;
        let x44 = [
            x0 & poly1305::M44,
            ((x0 >> 44) | (x1 << 20)) & poly1305::M44,
            (x1 >> 24) | (x2 << 40),
        ];
        let [a, b, c] = poly1305::mul_mod(x44, poly1305::clamp_r(&key));
        // a + b 2^44 + c 2^88 in radix 2^64; b may carry past its 44 bits.
        let lo = a as u128 + ((b as u128) << 44);
        let hi = (lo >> 64) + ((c as u128) << 24);
        let want = [lo as u64, hi as u64, (hi >> 64) as u64];
        assert_eq!(reduced(p.h), reduced(want), "h {h:x?} m {m0:x} {m1:x}");
    }
}

/// `emit`'s one conditional subtraction against full reduction, at the values where it
/// chooses: around p = 2^130 - 5, around 2^130, and up to the largest h a block leaves
/// (h2 = 4), with `s` that carries out of each word.
#[test]
fn emit_reduces_every_state_a_block_leaves() {
    const M: u64 = u64::MAX;
    let mut hs = vec![
        [0, 0, 0],
        [M - 5, M, 3], // p - 1
        [M - 4, M, 3], // p
        [M - 3, M, 3], // p + 1
        [M, M, 3],     // 2^130 - 1
        [0, 0, 4],     // 2^130
        [3, 0, 4],     // 2^130 + 3 = p + 8
        [M, M, 4],     // 5 * 2^128 - 1
        [M - 4, M, 2],
    ];
    let mut rng = ChaCha8Rng::seed_from_u64(1305);
    for _ in 0..10_000 {
        hs.push([rng.gen(), rng.gen(), rng.gen_range(0..=4)]);
    }
    for (i, h) in hs.into_iter().enumerate() {
        let mut key: [u8; 32] = rng.gen();
        if i % 3 == 0 {
            key[16..].fill(0xff);
        }
        let mut p = Poly64::new(&key);
        p.h = h;
        let [f0, f1, _] = reduced(h);
        let [s0, s1] = poly1305::s_words(&key);
        let want = ((f0 as u128 | (f1 as u128) << 64)
            .wrapping_add(s0 as u128 | (s1 as u128) << 64))
        .to_le_bytes();
        assert_eq!(p.emit(), want, "h {h:x?}");
        assert_eq!(p.h, [0; 3], "emit wipes the state");
        assert_eq!([p.r0, p.r1, p.s1, p.s[0], p.s[1]], [0; 5], "and the key");
    }
}

/// The radix-2^64 Poly1305 against the portable one, on random keys and texts and on the
/// values where carries and the final reduction are hardest: all-ones texts and keys whose
/// clamped r is the largest allowed.
#[test]
fn radix_64_poly1305_matches_the_portable_one() {
    let mut rng = ChaCha8Rng::seed_from_u64(64);
    for case in 0..2000 {
        let len = rng.gen_range(0..300);
        let mut key: [u8; 32] = rng.gen();
        let mut text: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
        if case % 4 == 0 {
            text.fill(0xff);
        }
        if case % 8 == 0 {
            key[..16].fill(0xff);
        }
        let mut p64 = Poly64::new(&key);
        p64.padded(&text);
        let got = p64.finish(len);
        let mut p = poly1305::Poly1305::new(&key);
        p.update_padded(&text);
        p.update_lengths(0, len as u64);
        assert_eq!(got, p.finish(), "case {case}, {len} bytes");
    }
}
