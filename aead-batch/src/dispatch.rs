//! What the workers seal and open with: per packet size, the faster of this CPU level's batch
//! kernels and ring one packet at a time.
//!
//! The batch kernels win where their lanes span packets: small packets, and every size on the
//! AVX-512 level. On the AVX2 level ring's stitched single-packet assembly is faster from
//! some size up (its ChaCha20 and Poly1305 interleave within one packet, which 8-lane
//! ChaCha20 and 4-lane radix-2^26 Poly1305 across packets do not beat there). The AVX2
//! level's stitched lanes (`x86_avx2_stitch`) beat both on sets of packets that keep their 8
//! lanes busy, up to a size (sealing 1600 bytes, opening 1023: ring's fixed cost per packet
//! shrinks against its per-byte rate as texts grow). So per window of up to 64 packets
//! [`Dispatch`] gives the stitched lanes the packets where they pay, then per chunk sends
//! each remaining packet to the faster of ring and the batch kernels, by its text length,
//! with the crossovers measured by `benches/aead.rs` (figures in bench/RESULTS.md).
//!
//! All give the same bytes (RFC 8439 with WireGuard's nonce). One difference: a packet that
//! fails authentication on ring's path or the stitched lanes has its text zeroed (ring's
//! rule) instead of left as it was; either way no plaintext is released, and the workers drop
//! the packet.

use crate::sched::equal_words;
use crate::{check_lengths, Backend, Level, Packet, Verdict, CHUNK, GROUP, TAG_LEN};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305};

/// The per-size choice between a level's batch kernels and ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dispatch {
    batch: Backend,
    /// Texts this long and longer go to ring.
    ring_from: usize,
}

/// Never ring.
const NEVER: usize = usize::MAX;

impl Dispatch {
    /// The best level this CPU has, with its measured crossover.
    pub fn detect() -> Self {
        let batch = Backend::detect();
        Self::new(batch, Self::crossover(batch))
    }

    /// `batch` below `ring_from` bytes of text, ring from there on (`usize::MAX`: never).
    pub fn new(batch: Backend, ring_from: usize) -> Self {
        Self { batch, ring_from }
    }

    /// The text length from which ring beats `batch`'s kernels in batches (the workers'
    /// case), from `cargo bench -p aead-batch --bench aead` with the level forced
    /// (`AEAD_BACKEND`), bench/RESULTS.md "Dispatch". The AVX-512 kernels beat ring at every
    /// size (1.4-2.5x sealing, 1.1-2.2x opening, on the same machine).
    pub fn crossover(batch: Backend) -> usize {
        match batch.0 {
            #[cfg(target_arch = "x86_64")]
            Level::Avx512 => NEVER,
            // Intel Ice Lake, 2026-12-03: ahead of ring at 64 B (1.26-1.42x sealing), even at
            // 128 B, behind it from 256 B (0.80-0.82x) to 1420 B (0.62-0.69x). (On Zen 3,
            // issue 14's figures: ahead up to 256 B, behind from 512 B.)
            #[cfg(target_arch = "x86_64")]
            Level::Avx2 => 256,
            // The scalar code is 0.56-0.6x ring at every size (issue 14's figures).
            Level::Portable => 0,
        }
    }

    /// The batch kernels' level.
    pub fn backend(self) -> Backend {
        self.batch
    }

    /// "avx2", or "avx2 + ring from 512 B".
    pub fn name(self) -> String {
        match self.ring_from {
            NEVER => self.batch.name().to_string(),
            0 => "ring".to_string(),
            n => format!("{} + ring from {n} B", self.batch.name()),
        }
    }

    /// Text lengths from which ring is used.
    pub fn ring_from(self) -> usize {
        self.ring_from
    }

    /// Seals every packet in place (as [`crate::seal_batch`]); returns how many were sealed.
    pub fn seal(self, packets: &mut [Packet<'_>]) -> usize {
        self.each_chunk(packets, true, ring_seal, Backend::seal_pending)
    }

    /// Opens every packet in place (as [`crate::open_batch`], but see the module's note on
    /// failed packets); returns how many were authentic.
    pub fn open(self, packets: &mut [Packet<'_>]) -> usize {
        self.each_chunk(packets, false, ring_open, Backend::open_pending)
    }

    /// Per window of [`GROUP`] packets, the level's group kernels where they pay; then
    /// per chunk, ring for the long packets left and the batch kernels for the rest. Returns
    /// how many came out `Ok`.
    fn each_chunk<'a>(
        self,
        packets: &mut [Packet<'a>],
        seal: bool,
        ring: fn(&LessSafeKey, &mut Packet<'a>),
        batch: fn(Backend, &mut [Packet<'a>]),
    ) -> usize {
        let mut keys = RingKey::default();
        for window in packets.chunks_mut(GROUP) {
            check_lengths(window);
            self.batch.groups_pending(window, seal, self.ring_from);
            for chunk in window.chunks_mut(CHUNK) {
                for p in chunk.iter_mut().filter(|p| self.for_ring(p)) {
                    // A key ring refuses (none of 32 bytes is) leaves it to the batch.
                    if let Some(key) = keys.of(p.key) {
                        ring(key, p);
                    }
                }
                // A chunk that ring or the group kernels took whole costs the batch kernels
                // nothing (their set-up zeroes and wipes some 2 KB per chunk: 1% of ring's
                // time at 1420 bytes).
                if chunk.iter().any(|p| p.verdict == Verdict::Pending) {
                    batch(self.batch, chunk);
                }
            }
        }
        packets.iter().filter(|p| p.verdict == Verdict::Ok).count()
    }

    fn for_ring(self, p: &Packet<'_>) -> bool {
        p.verdict == Verdict::Pending && p.text_len() >= self.ring_from
    }
}

/// ring's key value for the packets of one call, made anew only for a packet whose session
/// key differs from the one it was made from: a burst of one session (one tunnel's traffic, as
/// iperf3 sends it) sets ring's key up once, not per packet (about 2% of ring's time for a
/// 1420-byte packet). ring copies the key into its value, which lives on this call's stack
/// and is dropped at its end, as the per-packet values were.
#[derive(Default)]
struct RingKey<'a> {
    made: Option<(&'a [u8; 32], LessSafeKey)>,
}

impl<'a> RingKey<'a> {
    fn of(&mut self, key: &'a [u8; 32]) -> Option<&LessSafeKey> {
        // Which packets share a session is no secret (their receiver index says it), the
        // keys' bytes are: compared in constant time.
        if !self.made.as_ref().is_some_and(|(k, _)| equal_words(k, key)) {
            let value = LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, key).ok()?);
            self.made = Some((key, value));
            #[cfg(test)]
            tests::MADE.with(|n| n.set(n.get() + 1));
        }
        self.made.as_ref().map(|(_, v)| v)
    }
}

/// WireGuard's nonce for `p`: 4 zero bytes, the counter little-endian.
fn nonce(p: &Packet<'_>) -> Nonce {
    let mut nonce = [0u8; 12];
    nonce[4..].copy_from_slice(&p.counter.to_le_bytes());
    Nonce::assume_unique_for_key(nonce)
}

/// Seals `p` with ring.
fn ring_seal(key: &LessSafeKey, p: &mut Packet<'_>) {
    let nonce = nonce(p);
    let (text, tag) = p.buf.split_at_mut(p.buf.len() - TAG_LEN);
    if let Ok(t) = key.seal_in_place_separate_tag(nonce, Aad::empty(), text) {
        tag.copy_from_slice(t.as_ref());
        p.verdict = Verdict::Ok;
    }
}

/// Opens `p` with ring.
fn ring_open(key: &LessSafeKey, p: &mut Packet<'_>) {
    let nonce = nonce(p);
    p.verdict = match key.open_in_place(nonce, Aad::empty(), p.buf) {
        Ok(_) => Verdict::Ok,
        Err(_) => Verdict::Auth,
    };
}

/// A level's kernels alone, at every size.
impl From<Backend> for Dispatch {
    fn from(batch: Backend) -> Self {
        Self::new(batch, NEVER)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng as _, SeedableRng as _};
    use rand_chacha::ChaCha8Rng;
    use std::cell::Cell;

    thread_local! {
        /// ring key values `RingKey` made on this thread.
        pub(super) static MADE: Cell<usize> = const { Cell::new(0) };
    }

    /// Every crossover on every level, packets on both sides of it in one batch: the same
    /// bytes as the kernels alone, opened back, and a forged packet refused on either side.
    #[test]
    fn mixed_batches_match_the_kernels_and_open_back() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let lens = [0usize, 1, 63, 64, 255, 256, 511, 512, 513, 1420, 9000];
        for b in Backend::all() {
            for ring_from in [0, 256, 512, NEVER] {
                let d = Dispatch::new(b, ring_from);
                let items: Vec<([u8; 32], u64, Vec<u8>)> = lens
                    .iter()
                    .map(|&l| {
                        let text: Vec<u8> = (0..l + TAG_LEN).map(|_| rng.gen()).collect();
                        (rng.gen(), rng.gen(), text)
                    })
                    .collect();
                let mut sealed: Vec<Vec<u8>> = items.iter().map(|i| i.2.clone()).collect();
                let mut reference = sealed.clone();
                let mut ps: Vec<_> = items
                    .iter()
                    .zip(sealed.iter_mut())
                    .map(|(i, buf)| Packet::new(&i.0, i.1, buf))
                    .collect();
                assert_eq!(d.seal(&mut ps), lens.len());
                let mut rs: Vec<_> = items
                    .iter()
                    .zip(reference.iter_mut())
                    .map(|(i, buf)| Packet::new(&i.0, i.1, buf))
                    .collect();
                b.seal(&mut rs);
                drop((ps, rs));
                assert_eq!(sealed, reference, "{} from {ring_from}", b.name());

                // One bit flipped in every other packet: those fail, the rest open.
                for (i, s) in sealed.iter_mut().enumerate() {
                    if i % 2 == 1 {
                        s[0] ^= 1;
                    }
                }
                let mut ps: Vec<_> = items
                    .iter()
                    .zip(sealed.iter_mut())
                    .map(|(i, buf)| Packet::new(&i.0, i.1, buf))
                    .collect();
                assert_eq!(d.open(&mut ps), lens.len().div_ceil(2));
                for (i, p) in ps.iter().enumerate() {
                    let want = if i % 2 == 1 {
                        Verdict::Auth
                    } else {
                        Verdict::Ok
                    };
                    assert_eq!(p.verdict(), want, "{} from {ring_from}: {i}", b.name());
                    if i % 2 == 0 {
                        let text = &items[i].2;
                        assert_eq!(&p.buf()[..p.text_len()], &text[..text.len() - TAG_LEN]);
                    }
                }
            }
        }
    }

    /// A batch of packets over `bufs`, with these keys and counters.
    fn packets<'a>(keys: &'a [([u8; 32], u64)], bufs: &'a mut [Vec<u8>]) -> Vec<Packet<'a>> {
        keys.iter()
            .zip(bufs.iter_mut())
            .map(|(k, buf)| Packet::new(&k.0, k.1, buf))
            .collect()
    }

    /// What the workers run (each level with its own crossover) on batches larger than a
    /// chunk and a window: bursts of one size and mixed lengths, some buffers too short for a
    /// tag, every fifth packet forged. On AVX2 a window's packets go partly to the stitched
    /// lanes and partly to ring and the kernels, chunk by chunk; every packet must come out
    /// as the portable code seals it, and open back with its own verdict.
    #[test]
    fn batches_of_many_windows_match_the_portable_code_on_every_level() {
        let mut rng = ChaCha8Rng::seed_from_u64(64);
        for b in Backend::all() {
            let d = Dispatch::new(b, Dispatch::crossover(b));
            for n in [17usize, 64, 100, 130] {
                let burst = [0usize, 16, 64, 128, 300, 1420][rng.gen_range(0..6)];
                let lens: Vec<Option<usize>> = (0..n)
                    .map(|i| match (i % 13, rng.gen_range(0..3)) {
                        (12, _) => None,
                        (_, 0) => Some(rng.gen_range(0..1500)),
                        _ => Some(burst),
                    })
                    .collect();
                let keys: Vec<([u8; 32], u64)> = (0..n).map(|_| (rng.gen(), rng.gen())).collect();
                let plain: Vec<Vec<u8>> = lens
                    .iter()
                    .map(|l| match l {
                        Some(l) => (0..l + TAG_LEN).map(|_| rng.gen()).collect(),
                        None => vec![7; rng.gen_range(0..TAG_LEN)],
                    })
                    .collect();
                let mut bufs = plain.clone();
                let mut ps = packets(&keys, &mut bufs);
                let whole = lens.iter().filter(|l| l.is_some()).count();
                assert_eq!(d.seal(&mut ps), whole, "{}: {n}", d.name());
                drop(ps);
                for (i, ((k, buf), l)) in keys.iter().zip(&bufs).zip(&lens).enumerate() {
                    let mut want = plain[i].clone();
                    if l.is_some() {
                        crate::portable::seal(&k.0, k.1, &mut want);
                    }
                    assert_eq!(buf, &want, "{}: packet {i} of {n}, {l:?} bytes", d.name());
                }
                let forged = |i: usize| i % 5 == 3 && lens[i].is_some();
                for (i, buf) in bufs.iter_mut().enumerate() {
                    if forged(i) {
                        let at = rng.gen_range(0..buf.len());
                        buf[at] ^= 1 << rng.gen_range(0..8);
                    }
                }
                let mut ps = packets(&keys, &mut bufs);
                let authentic = (0..n).filter(|&i| lens[i].is_some() && !forged(i)).count();
                assert_eq!(d.open(&mut ps), authentic, "{}: {n}", d.name());
                for (i, p) in ps.iter().enumerate() {
                    let want = match lens[i] {
                        None => Verdict::TooShort,
                        Some(_) if forged(i) => Verdict::Auth,
                        Some(_) => Verdict::Ok,
                    };
                    assert_eq!(p.verdict(), want, "{}: packet {i} of {n}", d.name());
                    if want == Verdict::Ok {
                        let t = p.text_len();
                        assert_eq!(&p.buf()[..t], &plain[i][..t], "{}: packet {i}", d.name());
                    }
                }
            }
        }
    }

    /// The key comparison behind ring's reused key value: equal keys only, whichever byte
    /// differs.
    #[test]
    fn equal_keys_are_told_by_every_byte() {
        let a: [u8; 32] = core::array::from_fn(|i| i as u8 * 7 + 1);
        assert!(equal_words(&a, &a.clone()));
        for i in 0..32 {
            for bit in [0x01, 0x80] {
                let mut b = a;
                b[i] ^= bit;
                assert!(!equal_words(&a, &b), "byte {i} bit {bit:#x}");
            }
        }
    }

    /// A run of one session's packets, then another session's, then the first again, all on
    /// ring's path: each sealed under its own key (ring's key value is made anew at each
    /// change of key, and only then).
    #[test]
    fn ring_key_values_follow_each_change_of_session() {
        let keys = [[1u8; 32], [2u8; 32]];
        let order = [0, 0, 0, 1, 1, 0, 1, 0, 0];
        let text: Vec<u8> = (0..1500u32).map(|i| i as u8).collect();
        let mut bufs: Vec<Vec<u8>> = order
            .iter()
            .map(|_| [text.as_slice(), &[0u8; TAG_LEN]].concat())
            .collect();
        let mut ps: Vec<Packet<'_>> = bufs
            .iter_mut()
            .zip(order)
            .enumerate()
            .map(|(i, (b, k))| Packet::new(&keys[k], i as u64, b))
            .collect();
        MADE.with(|n| n.set(0));
        assert_eq!(
            Dispatch::new(Backend::portable(), 0).seal(&mut ps),
            order.len()
        );
        assert_eq!(
            MADE.with(Cell::get),
            5,
            "one per run of one key: 0 0 0|1 1|0|1|0 0"
        );
        drop(ps);
        for (i, (b, k)) in bufs.iter().zip(order).enumerate() {
            let mut want = [text.as_slice(), &[0u8; TAG_LEN]].concat();
            crate::portable::seal(&keys[k], i as u64, &mut want);
            assert_eq!(*b, want, "packet {i}");
        }
    }

    #[test]
    fn detect_uses_the_best_level_and_its_crossover() {
        let d = Dispatch::detect();
        assert_eq!(d.backend(), Backend::detect());
        assert_eq!(d.ring_from(), Dispatch::crossover(Backend::detect()));
        assert_eq!(Dispatch::crossover(Backend::portable()), 0);
    }
}
