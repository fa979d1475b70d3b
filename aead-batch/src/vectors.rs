//! RFC 8439 test vectors: §2.3.2 (block), §2.4.2 (stream), §2.5.2 (Poly1305), §2.6.2 (Poly1305
//! key), §2.8.2 (AEAD), Appendix A.1 (block), A.2 (stream), A.3 (Poly1305), A.4 (key
//! generation), A.5 (AEAD decryption). Each is checked on the portable code and, where it fits
//! the kernels' interface (keystream blocks with any nonce), on every SIMD level.

use crate::chacha::{self, key_words};
use crate::poly1305::Poly1305;
use crate::portable;
use crate::sched::{Kernels, Stage};

fn h(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    hex::decode(s).expect("hex")
}

fn arr<const N: usize>(s: &str) -> [u8; N] {
    h(s).try_into().expect("length")
}

fn tail(counter: u32, nonce: &[u8; 12]) -> [u32; 4] {
    let n = |i: usize| u32::from_le_bytes([nonce[i], nonce[i + 1], nonce[i + 2], nonce[i + 3]]);
    [counter, n(0), n(4), n(8)]
}

/// (key, counter, nonce, keystream) for single blocks: §2.3.2 and A.1 #1-#5.
/// Key, block counter, nonce, then the expected bytes (and for a stream, the plaintext first).
type BlockVector = ([u8; 32], u32, [u8; 12], Vec<u8>);
type StreamVector = ([u8; 32], u32, [u8; 12], Vec<u8>, Vec<u8>);

fn block_vectors() -> Vec<BlockVector> {
    let k_seq = arr("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");
    let zero = [0u8; 32];
    let mut one = [0u8; 32];
    one[31] = 1;
    let mut ff = [0u8; 32];
    ff[1] = 0xff;
    let mut n2 = [0u8; 12];
    n2[11] = 2;
    vec![
        (
            k_seq,
            1,
            arr("000000090000004a00000000"),
            h(
                "10f1e7e4d13b5915500fdd1fa32071c4c7d1f4c733c068030422aa9ac3d46c4e
               d2826446079faa0914c2d705d98b02a2b5129cd1de164eb9cbd083e8a2503c4e",
            ),
        ),
        (
            zero,
            0,
            [0; 12],
            h(
                "76b8e0ada0f13d90405d6ae55386bd28bdd219b8a08ded1aa836efcc8b770dc7
               da41597c5157488d7724e03fb8d84a376a43b8f41518a11cc387b669b2ee6586",
            ),
        ),
        (
            zero,
            1,
            [0; 12],
            h(
                "9f07e7be5551387a98ba977c732d080dcb0f29a048e3656912c6533e32ee7aed
               29b721769ce64e43d57133b074d839d531ed1f28510afb45ace10a1f4b794d6f",
            ),
        ),
        (
            one,
            1,
            [0; 12],
            h(
                "3aeb5224ecf849929b9d828db1ced4dd832025e8018b8160b82284f3c949aa5a
               8eca00bbb4a73bdad192b5c42f73f2fd4e273644c8b36125a64addeb006c13a0",
            ),
        ),
        (
            ff,
            2,
            [0; 12],
            h(
                "72d54dfbf12ec44b362692df94137f328fea8da73990265ec1bbbea1ae9af0ca
               13b25aa26cb4a648cb9b9d1be65b2c0924a66c54d545ec1b7374f4872e99f096",
            ),
        ),
        (
            zero,
            0,
            n2,
            h(
                "c2c64d378cd536374ae204b9ef933fcd1a8b2288b3dfa49672ab765b54ee27c7
               8a970e0e955c14f3a88e741b97c286f75f8fc299e8148362fa198a39531bed6d",
            ),
        ),
    ]
}

/// Runs `blocks` (key, counter, nonce) through a kernel, `K::LANES` at a time, or through its
/// narrow kernel `K::NARROW` at a time.
fn kernel_blocks<K: Kernels>(blocks: &[([u8; 32], u32, [u8; 12])], narrow: bool) -> Vec<[u8; 64]> {
    let lanes = if narrow { K::NARROW } else { K::LANES };
    let mut out = vec![[0u8; 64]; blocks.len()];
    for (bs, os) in blocks.chunks(lanes).zip(out.chunks_mut(lanes)) {
        let mut stage = Stage::for_test();
        let mut dummy = [0u8; 64];
        for i in 0..K::LANES {
            if let (Some((key, ctr, nonce)), Some(_)) = (bs.get(i), os.get(i)) {
                stage.key[i] = key.as_ptr();
                let t = tail(*ctr, nonce);
                for (row, w) in stage.tail.iter_mut().zip(t) {
                    row[i] = w;
                }
                stage.len[i] = 64;
            } else {
                stage.dst[i] = dummy.as_mut_ptr();
            }
        }
        for (i, o) in os.iter_mut().enumerate() {
            stage.dst[i] = o.as_mut_ptr();
        }
        // SAFETY: the level was detected by the caller; keys and destinations live on.
        unsafe {
            if narrow {
                K::chacha_narrow(&stage)
            } else {
                K::chacha(&stage)
            }
        };
    }
    out
}

fn check_blocks<K: Kernels>() {
    let vs = block_vectors();
    // Every vector in every lane position: repeat the list so each lands in each lane.
    let mut blocks = Vec::new();
    let mut want = Vec::new();
    for _ in 0..K::LANES {
        for (k, c, n, ks) in &vs {
            blocks.push((*k, *c, *n));
            want.push(ks.clone());
        }
    }
    for narrow in [false, true] {
        if narrow && K::NARROW == 0 {
            continue;
        }
        let got = kernel_blocks::<K>(&blocks, narrow);
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(&g[..], &w[..], "block {i} narrow {narrow}");
        }
    }
}

#[test]
fn chacha20_block_vectors_portable() {
    for (k, c, n, ks) in block_vectors() {
        assert_eq!(&chacha::block(&key_words(&k), tail(c, &n))[..], &ks[..]);
    }
}

#[cfg(target_arch = "x86_64")]
#[test]
fn chacha20_block_vectors_avx2() {
    if crate::x86_avx2::supported() {
        check_blocks::<crate::x86_avx2::Avx2>();
    }
}

#[cfg(target_arch = "x86_64")]
#[test]
fn chacha20_block_vectors_avx512() {
    if crate::x86_avx512::supported() {
        check_blocks::<crate::x86_avx512::Avx512>();
    }
}

const SUNSCREEN: &[u8] = b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.";

/// (key, counter, nonce, plaintext, ciphertext): §2.4.2, A.2 #1-#3.
fn stream_vectors() -> Vec<StreamVector> {
    let mut one = [0u8; 32];
    one[31] = 1;
    let mut n2 = [0u8; 12];
    n2[11] = 2;
    let ietf = b"Any submission to the IETF intended by the Contributor for publication as all or part of an IETF Internet-Draft or RFC and any statement made within the context of an IETF activity is considered an \"IETF Contribution\". Such statements include oral statements in IETF sessions, as well as written and electronic communications made at any time or place, which are addressed to";
    let jabber = b"'Twas brillig, and the slithy toves\nDid gyre and gimble in the wabe:\nAll mimsy were the borogoves,\nAnd the mome raths outgrabe.";
    vec![
        (
            arr("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"),
            1,
            arr("000000000000004a00000000"),
            SUNSCREEN.to_vec(),
            h("6e2e359a2568f98041ba0728dd0d6981e97e7aec1d4360c20a27afccfd9fae0b
               f91b65c5524733ab8f593dabcd62b3571639d624e65152ab8f530c359f0861d8
               07ca0dbf500d6a6156a38e088a22b65e52bc514d16ccf806818ce91ab7793736
               5af90bbf74a35be6b40b8eedf2785e42874d"),
        ),
        ([0; 32], 0, [0; 12], vec![0; 64], h("76b8e0ada0f13d90405d6ae55386bd28bdd219b8a08ded1aa836efcc8b770dc7da41597c5157488d7724e03fb8d84a376a43b8f41518a11cc387b669b2ee6586")),
        (
            one,
            1,
            n2,
            ietf.to_vec(),
            h("a3fbf07df3fa2fde4f376ca23e82737041605d9f4f4f57bd8cff2c1d4b7955ec
               2a97948bd3722915c8f3d337f7d370050e9e96d647b7c39f56e031ca5eb6250d
               4042e02785ececfa4b4bb5e8ead0440e20b6e8db09d881a7c6132f420e527950
               42bdfa7773d8a9051447b3291ce1411c680465552aa6c405b7764d5e87bea85a
               d00f8449ed8f72d0d662ab052691ca66424bc86d2df80ea41f43abf937d3259d
               c4b2d0dfb48a6c9139ddd7f76966e928e635553ba76c5c879d7b35d49eb2e62b
               0871cdac638939e25e8a1e0ef9d5280fa8ca328b351c3c765989cbcf3daa8b6c
               cc3aaf9f3979c92b3720fc88dc95ed84a1be059c6499b9fda236e7e818b04b0b
               c39c1e876b193bfe5569753f88128cc08aaa9b63d1a16f80ef2554d7189c411f
               5869ca52c5b83fa36ff216b9c1d30062bebcfd2dc5bce0911934fda79a86f6e6
               98ced759c3ff9b6477338f3da4f9cd8514ea9982ccafb341b2384dd902f3d1ab
               7ac61dd29c6f21ba5b862f3730e37cfdc4fd806c22f221"),
        ),
        (
            arr("1c9240a5eb55d38af333888604f6b5f0473917c1402b80099dca5cbc207075c0"),
            42,
            n2,
            jabber.to_vec(),
            h("62e6347f95ed87a45ffae7426f27a1df5fb69110044c0d73118effa95b01e5cf
               166d3df2d721caf9b21e5fb14c616871fd84c54f9d65b283196c7fe4f60553eb
               f39c6402c42234e32a356b3e764312a61a5532055716ead6962568f87d3f3f77
               04c6a8d1bcd1bf4d50d6154b6da731b187b58dfd728afa36757a797ac188d1"),
        ),
    ]
}

#[test]
fn chacha20_stream_vectors_portable() {
    for (k, c, n, pt, ct) in stream_vectors() {
        let mut buf = pt.clone();
        chacha::xor_stream(&key_words(&k), tail(c, &n), &mut buf);
        assert_eq!(buf, ct);
    }
}

fn check_stream<K: Kernels>() {
    for (k, c, n, pt, ct) in stream_vectors() {
        let nblocks = pt.len().div_ceil(64);
        let blocks: Vec<_> = (0..nblocks as u32).map(|b| (k, c + b, n)).collect();
        for narrow in [false, true] {
            if narrow && K::NARROW == 0 {
                continue;
            }
            let ks = kernel_blocks::<K>(&blocks, narrow);
            let got: Vec<u8> = pt
                .iter()
                .zip(ks.iter().flatten())
                .map(|(p, k)| p ^ k)
                .collect();
            assert_eq!(got, ct, "narrow {narrow}");
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[test]
fn chacha20_stream_vectors_simd() {
    if crate::x86_avx2::supported() {
        check_stream::<crate::x86_avx2::Avx2>();
    }
    if crate::x86_avx512::supported() {
        check_stream::<crate::x86_avx512::Avx512>();
    }
}

#[test]
fn poly1305_vectors() {
    let rfc_key = arr("85d6be7857556d337f4452fe42d506a80103808afb0db2fd4abff6af4149f51b");
    // A.3 #3's key: r = 0, s = "36e5f6b5c5e06070f0efca96227a863e".
    let a3_k3 = arr("0000000000000000000000000000000036e5f6b5c5e06070f0efca96227a863e");
    let a3_k4 = arr("36e5f6b5c5e06070f0efca96227a863e00000000000000000000000000000000");
    let a3_k5 = arr("1c9240a5eb55d38af333888604f6b5f0473917c1402b80099dca5cbc207075c0");
    let mut two = [0u8; 32];
    two[0] = 2;
    let mut a3_6_key = [0u8; 32];
    a3_6_key[0] = 2;
    a3_6_key[16] = 0xff;
    a3_6_key[17..32].fill(0xff);
    let mut a3_8_key = [0u8; 32];
    a3_8_key[0] = 1;
    let ietf_intro = b"Any submission to the IETF intended by the Contributor for publication as all or part of an IETF Internet-Draft or RFC and any statement made within the context of an IETF activity is considered an \"IETF Contribution\". Such statements include oral statements in IETF sessions, as well as written and electronic communications made at any time or place, which are addressed to";
    let jabber = b"'Twas brillig, and the slithy toves\nDid gyre and gimble in the wabe:\nAll mimsy were the borogoves,\nAnd the mome raths outgrabe.";
    let cases: Vec<([u8; 32], Vec<u8>, &str)> = vec![
        (rfc_key, b"Cryptographic Forum Research Group".to_vec(), "a8061dc1305136c6c22b8baf0c0127a9"),
        ([0; 32], vec![0; 64], "00000000000000000000000000000000"),
        (a3_k3, ietf_intro.to_vec(), "36e5f6b5c5e06070f0efca96227a863e"),
        (a3_k4, ietf_intro.to_vec(), "f3477e7cd95417af89a6b8794c310cf0"),
        (a3_k5, jabber.to_vec(), "4541669a7eaaee61e708dc7cbcc5eb62"),
        (two, vec![0xff; 16], "03000000000000000000000000000000"),
        (a3_6_key, h("02000000000000000000000000000000"), "03000000000000000000000000000000"),
        (a3_8_key, h("ffffffffffffffffffffffffffffffff f0ffffffffffffffffffffffffffffff 11000000000000000000000000000000"), "05000000000000000000000000000000"),
        (a3_8_key, h("ffffffffffffffffffffffffffffffff fbfefefefefefefefefefefefefefefe 01010101010101010101010101010101"), "00000000000000000000000000000000"),
        (two, h("fdffffffffffffffffffffffffffffff"), "faffffffffffffffffffffffffffffff"),
        (arr("0100000000000000040000000000000000000000000000000000000000000000"), h("e33594d7505e43b90000000000000000 3394d7505e4379cd0100000000000000 00000000000000000000000000000000 01000000000000000000000000000000"), "14000000000000005500000000000000"),
        (arr("0100000000000000040000000000000000000000000000000000000000000000"), h("e33594d7505e43b90000000000000000 3394d7505e4379cd0100000000000000 00000000000000000000000000000000"), "13000000000000000000000000000000"),
    ];
    for (i, (k, m, tag)) in cases.iter().enumerate() {
        assert_eq!(hex::encode(Poly1305::mac(k, m)), *tag, "case {i}");
    }
}

#[test]
fn poly1305_key_generation_vectors() {
    // §2.6.2 and A.4 #1-#3: the first 32 bytes of block 0.
    let cases: [([u8; 32], [u8; 12], &str); 4] = [
        (
            arr("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"),
            arr("000000000001020304050607"),
            "8ad5a08b905f81cc815040274ab29471a833b637e3fd0da508dbb8e2fdd1a646",
        ),
        (
            [0; 32],
            [0; 12],
            "76b8e0ada0f13d90405d6ae55386bd28bdd219b8a08ded1aa836efcc8b770dc7",
        ),
        (
            {
                let mut k = [0u8; 32];
                k[31] = 1;
                k
            },
            arr("000000000000000000000002"),
            "ecfa254f845f647473d3cb140da9e87606cb33066c447b87bc2666dde3fbb739",
        ),
        (
            arr("1c9240a5eb55d38af333888604f6b5f0473917c1402b80099dca5cbc207075c0"),
            arr("000000000000000000000002"),
            "965e3bc6f9ec7ed9560808f4d229f94b137ff275ca9b3fcbdd59deaad23310ae",
        ),
    ];
    for (k, n, want) in cases {
        assert_eq!(
            hex::encode(&chacha::block(&key_words(&k), tail(0, &n))[..32]),
            want
        );
    }
}

#[test]
fn aead_vectors() {
    // §2.8.2
    let key = arr("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f");
    let nonce = arr("070000004041424344454647");
    let aad = h("50515253c0c1c2c3c4c5c6c7");
    let mut text = SUNSCREEN.to_vec();
    let tag = portable::seal_general(&key, &nonce, &aad, &mut text);
    assert_eq!(
        text,
        h(
            "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6
           3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36
           92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc
           3ff4def08e4b7a9de576d26586cec64b6116"
        )
    );
    assert_eq!(hex::encode(tag), "1ae10b594f09e26a7e902ecbd0600691");

    // A.5: decryption; sealing the plaintext must give the ciphertext and tag.
    let key = arr("1c9240a5eb55d38af333888604f6b5f0473917c1402b80099dca5cbc207075c0");
    let nonce = arr("000000000102030405060708");
    let aad = h("f33388860000000000004e91");
    let ct = h(
        "64a0861575861af460f062c79be643bd5e805cfd345cf389f108670ac76c8cb2
                4c6cfc18755d43eea09ee94e382d26b0bdb7b73c321b0100d4f03b7f355894cf
                332f830e710b97ce98c8a84abd0b948114ad176e008d33bd60f982b1ff37c855
                9797a06ef4f0ef61c186324e2b3506383606907b6a7c02b0f9f6157b53c867e4
                b9166c767b804d46a59b5216cde7a4e99040c5a40433225ee282a1b0a06c523e
                af4534d7f83fa1155b0047718cbc546a0d072b04b3564eea1b422273f548271a
                0bb2316053fa76991955ebd63159434ecebb4e466dae5a1073a6727627097a10
                49e617d91d361094fa68f0ff77987130305beaba2eda04df997b714d6c6f2c29
                a6ad5cb4022b02709b",
    );
    let mut pt = ct.clone();
    chacha::xor_stream(&key_words(&key), tail(1, &nonce), &mut pt);
    assert!(
        pt.starts_with(b"Internet-Drafts are draft documents valid for a maximum of six months")
    );
    let tag = portable::seal_general(&key, &nonce, &aad, &mut pt);
    assert_eq!(pt, ct);
    assert_eq!(hex::encode(tag), "eead9d67890cbb22392336fea1851f38");
}
