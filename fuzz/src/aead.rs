//! The AEAD the workers seal and open with (`aead_batch`): every CPU level this machine has,
//! each with the ring crossover the input picks, on a batch the input describes. Lengths
//! reach past the stitched lanes' limits (1023 bytes opened, 1600 sealed), keys are shared
//! between packets or not, and a batch can hold more packets than a window (64), so that
//! the lanes, ring, and the lane-filling kernels each get part of it.
//!
//! Properties: each level seals every packet to the portable code's bytes; opened back with
//! the bits the input names flipped, exactly the untouched packets open, to their plaintext,
//! and a packet that fails releases nothing: its text is the ciphertext as received, or zeros
//! (the lanes' and ring's rule), and its tag is left as it was. The input's tail opened as a
//! received message fails the same way (or is too short for a tag).

use crate::Input;
use aead_batch::{Backend, Dispatch, Packet, Verdict, TAG_LEN};

/// Longest text the input can ask for: past every limit of the lanes.
const MAX_TEXT: u16 = 2048;
/// Most packets in a batch: more than a window.
const MAX_PACKETS: u8 = 70;
/// The ring crossovers the input chooses from (`usize::MAX`: never ring).
const RING_FROM: [usize; 4] = [0, 256, 1024, usize::MAX];

/// One packet of the batch.
struct Spec {
    key: usize,
    counter: u64,
    len: usize,
    /// The buffer bit to flip before opening (bit index over text and tag), if any.
    flip: Option<usize>,
}

pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let keys: [[u8; 32]; 3] = [input.array(), input.array(), input.array()];
    let choice = input.u8();
    let n = usize::from(input.u8() % MAX_PACKETS) + 1;
    let specs: Vec<Spec> = (0..n)
        .map(|_| {
            let key = usize::from(input.u8() % 3);
            let counter = u64::from(input.u16());
            let len = usize::from(input.u16() % MAX_TEXT);
            let flip = input.u16();
            Spec {
                key,
                counter,
                len,
                // Half the packets untouched; the others one bit anywhere in text and tag.
                flip: (flip & 1 == 1).then(|| usize::from(flip >> 1) % ((len + TAG_LEN) * 8)),
            }
        })
        .collect();
    let fill = input.rest();
    let plain: Vec<Vec<u8>> = specs
        .iter()
        .enumerate()
        .map(|(j, s)| {
            (0..s.len + TAG_LEN)
                .map(|i| match fill.len() {
                    0 => 0,
                    f => fill[(i + 7 * j) % f],
                })
                .collect()
        })
        .collect();

    let mut reference = plain.clone();
    let mut ps = packets(&keys, &specs, &mut reference);
    assert_eq!(
        Backend::portable().seal(&mut ps),
        n,
        "the portable code seals all"
    );
    drop(ps);

    for level in Backend::all() {
        let ring_from = match usize::from(choice) % (RING_FROM.len() + 1) {
            0 => Dispatch::crossover(level),
            i => RING_FROM[i - 1],
        };
        let d = Dispatch::new(level, ring_from);
        let mut bufs = plain.clone();
        let mut ps = packets(&keys, &specs, &mut bufs);
        assert_eq!(d.seal(&mut ps), n, "{}: every packet sealed", d.name());
        drop(ps);
        for (i, (got, want)) in bufs.iter().zip(&reference).enumerate() {
            assert!(got == want, "{}: packet {i} sealed differently", d.name());
        }

        for (buf, s) in bufs.iter_mut().zip(&specs) {
            if let Some(bit) = s.flip {
                buf[bit / 8] ^= 1 << (bit % 8);
            }
        }
        let received = bufs.clone();
        let mut ps = packets(&keys, &specs, &mut bufs);
        let authentic = specs.iter().filter(|s| s.flip.is_none()).count();
        assert_eq!(
            d.open(&mut ps),
            authentic,
            "{}: authentic packets",
            d.name()
        );
        for (i, (p, s)) in ps.iter().zip(&specs).enumerate() {
            let t = s.len;
            if s.flip.is_none() {
                assert_eq!(p.verdict(), Verdict::Ok, "{}: packet {i}", d.name());
                assert!(
                    p.buf()[..t] == plain[i][..t],
                    "{}: packet {i} opened",
                    d.name()
                );
            } else {
                assert_eq!(
                    p.verdict(),
                    Verdict::Auth,
                    "{}: forged packet {i}",
                    d.name()
                );
                released_nothing(p, &received[i], &d.name(), i);
            }
        }

        // The input's tail as a message under the first key.
        let mut msg = fill.to_vec();
        let mut one = [Packet::new(&keys[0], 0, &mut msg)];
        d.open(&mut one);
        let v = one[0].verdict();
        if fill.len() < TAG_LEN {
            assert_eq!(
                v,
                Verdict::TooShort,
                "{}: a message shorter than a tag",
                d.name()
            );
        } else {
            // Forging a tag for a key the input fixed is what this would take: a property
            // that fails only if the AEAD is broken.
            assert_eq!(v, Verdict::Auth, "{}: arbitrary bytes refused", d.name());
            released_nothing(&one[0], fill, &d.name(), 0);
        }
    }
}

/// A batch over `bufs`, each packet with its spec's key and counter.
fn packets<'a>(keys: &'a [[u8; 32]], specs: &[Spec], bufs: &'a mut [Vec<u8>]) -> Vec<Packet<'a>> {
    specs
        .iter()
        .zip(bufs.iter_mut())
        .map(|(s, buf)| Packet::new(&keys[s.key], s.counter, buf))
        .collect()
}

/// A packet that failed: its text as received or all zeros, its tag as received.
fn released_nothing(p: &Packet<'_>, received: &[u8], level: &str, i: usize) {
    let t = p.text_len();
    let (text, tag) = p.buf().split_at(t);
    assert!(
        text == &received[..t] || text.iter().all(|&b| b == 0),
        "{level}: packet {i} failed but its text changed"
    );
    assert!(tag == &received[t..], "{level}: packet {i}'s tag changed");
}
