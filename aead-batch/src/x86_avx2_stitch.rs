//! AVX2 ChaCha20-Poly1305 for bursts of packets: one packet per lane, Poly1305 stitched into
//! the ChaCha20 rounds.
//!
//! Why: on the AVX2 level the 8-lane ChaCha20 kernel keeps the vector ports busy while the
//! integer multipliers idle, and the radix-2^26 vector Poly1305 then runs as a second pass on
//! the same vector ports; at 1420 bytes that lost to ring (0.63-0.78x), whose single-packet
//! assembly interleaves a vector ChaCha20 with an integer Poly1305. Here the same is done
//! across packets: each of the 8 lanes carries one packet from its first keystream block to
//! its last, then takes the next queued one (longest first). During a call's double rounds
//! the integer side absorbs one 64-byte chunk of each lane's packet in radix 2^64 (64x64-bit
//! `mulx`). The lanes are eight independent Poly1305 chains, so neither port set waits for
//! the other and the chains' latency overlaps.
//!
//! Lanes idle once the queue is empty; [`worth_it`] turns away sets of packets (IMIX's few
//! long ones among short ones) that would leave too many idle, and those go where they did
//! before.
//!
//! Sealing absorbs the chunk the previous call encrypted; opening absorbs the chunk of this
//! call's block before decrypting it. The length block of a text that ends on a whole chunk
//! is absorbed in the rounds too, and a sealed packet's last chunk in the call after its last
//! block (its successor's key block, which absorbs nothing), so that little of Poly1305 is
//! left outside the rounds; that is what makes the lanes pay for 64-byte packets, whose
//! Poly1305 is half their work. An opened packet whose tag fails has its text zeroed (ring's
//! rule), not its ciphertext restored: see [`open`].

use crate::chacha::{BLOCK_LEN, SIGMA};
use crate::sched::{tag_matches, wipe};
use crate::x86_avx2::{double_round, rotations, transpose8};
use crate::TAG_LEN;
use core::arch::x86_64::*;

/// Packets in flight: one per 32-bit lane.
pub(crate) const LANES: usize = 8;

/// Whether the CPU has what the group kernels use: AVX2, and BMI2 for `mulx` (a 64x64-bit
/// multiply that leaves the flags alone, so the compiler need not shuffle `rax`/`rdx`).
pub(crate) fn supported() -> bool {
    is_x86_feature_detected!("avx2") && is_x86_feature_detected!("bmi2")
}

/// One packet of a group.
type Job = crate::sched::GroupJob;

/// A Poly1305 accumulator in radix 2^64 (h = h0 + h1 2^64 + h2 2^128, h2 a few bits), with
/// `r` clamped and `s1 = 5 r1 / 4` (r1 is a multiple of 4), as in OpenSSL's scalar code, and
/// the one-time key's `s` for the tag (kept here, so the key block itself need not outlive
/// the call that made it).
#[derive(Default)]
struct Poly64 {
    h: [u64; 3],
    r0: u64,
    r1: u64,
    s1: u64,
    s: [u64; 2],
}

fn le64(p: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&p[..8]);
    u64::from_le_bytes(w)
}

impl Poly64 {
    /// The accumulator for the one-time key at the start of `key` (RFC 8439 §2.5: `r`
    /// clamped): the key itself, or the keystream block that begins with it.
    fn new<const N: usize>(key: &[u8; N]) -> Self {
        const { assert!(N >= 32) };
        let r0 = le64(&key[0..8]) & 0x0fff_fffc_0fff_ffff;
        let r1 = le64(&key[8..16]) & 0x0fff_fffc_0fff_fffc;
        Self {
            h: [0; 3],
            r0,
            r1,
            s1: r1 + (r1 >> 2),
            s: [le64(&key[16..24]), le64(&key[24..32])],
        }
    }

    /// h = (h + m + 2^128) * r, partially reduced mod 2^130 - 5.
    ///
    /// Bounds: r0, r1 < 2^60 and s1 < 2^61 (clamping); h2 <= 4 on entry (each block leaves
    /// at most 3 plus a carry), so h2 + 1 + carry <= 6 and every product and sum fits its u128
    /// or u64.
    #[inline(always)]
    fn block(&mut self, m0: u64, m1: u64) {
        let (r0, r1, s1) = (self.r0 as u128, self.r1 as u128, self.s1 as u128);
        let t = self.h[0] as u128 + m0 as u128;
        let h0 = t as u64 as u128;
        let t = self.h[1] as u128 + m1 as u128 + (t >> 64);
        let h1 = t as u64 as u128;
        let h2 = self.h[2] + 1 + (t >> 64) as u64;
        // 2^128 r1 = 2^130 (r1 / 4) = 5 r1 / 4 = s1 (mod p), and likewise at 2^192.
        let d0 = h0 * r0 + h1 * s1;
        // h2 * s1 < 7 * 2^61: one 64-bit multiply.
        let d1 = h0 * r1 + h1 * r0 + (h2 * self.s1) as u128 + (d0 >> 64);
        let d2 = h2 * self.r0 + (d1 >> 64) as u64;
        // Bits from 2^130 up wrap around times 5: (d2 >> 2) * 5 = (d2 & !3) + (d2 >> 2).
        let c = (d2 & !3) + (d2 >> 2);
        let t = d0 as u64 as u128 + c as u128;
        self.h[0] = t as u64;
        let t = d1 as u64 as u128 + (t >> 64);
        self.h[1] = t as u64;
        self.h[2] = (d2 & 3) + (t >> 64) as u64;
    }

    /// Absorbs the two 16-byte blocks at `p`.
    ///
    /// # Safety
    /// `p` points to 32 readable bytes.
    #[inline(always)]
    unsafe fn two(&mut self, p: *const u8) {
        // SAFETY: four words inside the 32 readable bytes.
        let m: [u64; 4] =
            core::array::from_fn(|i| unsafe { p.add(8 * i).cast::<u64>().read_unaligned() });
        let mut h = Self { ..*self };
        h.block(m[0], m[1]);
        h.block(m[2], m[3]);
        *self = h;
    }

    /// Absorbs `text` zero-padded to 16 bytes.
    fn padded(&mut self, text: &[u8]) {
        let mut blocks = text.chunks_exact(16);
        for b in &mut blocks {
            self.block(le64(&b[..8]), le64(&b[8..]));
        }
        let rest = blocks.remainder();
        if !rest.is_empty() {
            let mut pad = [0u8; 16];
            pad[..rest.len()].copy_from_slice(rest);
            self.block(le64(&pad[..8]), le64(&pad[8..]));
        }
    }

    /// Absorbs the length block (no AAD, `total` bytes of text) and returns the tag.
    fn finish(mut self, total: usize) -> [u8; 16] {
        self.block(0, total as u64);
        self.emit()
    }

    /// The tag once every block, the length block included, is in: h fully reduced mod
    /// p = 2^130 - 5, plus `s`, mod 2^128 (RFC 8439 §2.5.1). Wipes the state.
    ///
    /// After [`Self::block`], h2 <= 4, so h < 5 * 2^128 < 2p and one conditional subtraction
    /// of p reduces it: h >= p exactly when h + 5 reaches 2^130, and then h - p is h + 5 with
    /// bit 130 cleared, which the final mod 2^128 drops anyway. The choice is a mask, not a
    /// branch.
    fn emit(&mut self) -> [u8; 16] {
        let [h0, h1, h2] = self.h;
        let t = h0 as u128 + 5;
        let g0 = t as u64;
        let t = h1 as u128 + (t >> 64);
        let g1 = t as u64;
        let g2 = h2 + (t >> 64) as u64;
        // g2 <= 5: bit 2 is the "h >= p" bit.
        let ge_p = 0u64.wrapping_sub(g2 >> 2);
        let f0 = (h0 & !ge_p) | (g0 & ge_p);
        let f1 = (h1 & !ge_p) | (g1 & ge_p);
        let [s0, s1] = self.s;
        let t = f0 as u128 + s0 as u128;
        let t1 = f1.wrapping_add(s1).wrapping_add((t >> 64) as u64);
        let mut tag = [0u8; 16];
        tag[..8].copy_from_slice(&(t as u64).to_le_bytes());
        tag[8..].copy_from_slice(&t1.to_le_bytes());
        self.wipe();
        tag
    }

    fn wipe(&mut self) {
        self.h = [0; 3];
        self.r0 = 0;
        self.r1 = 0;
        self.s1 = 0;
        self.s = [0; 2];
        core::hint::black_box(&mut *self);
    }
}

static ZERO_KEY: [u8; 32] = [0; 32];

/// What each lane's Poly1305 absorbs during a call, and where its keystream block goes.
struct Work {
    /// A whole 64-byte chunk of text (null: none this call).
    chunk: [*const u8; LANES],
    /// The length block, after the chunk (`None`: not this call). Taken when the chunk is the
    /// text's last, so that only the final reduction is left after the call.
    length: [Option<u64>; LANES],
    /// A whole 64-byte block of text that the keystream block is XORed into (null: the
    /// block goes to the lane's keystream buffer instead: a one-time key, a partial last
    /// block, or an idle lane). Done in the call, while the block is still in registers.
    xor: [*mut u8; LANES],
}

impl Work {
    fn new() -> Self {
        Self {
            chunk: [core::ptr::null(); LANES],
            length: [None; LANES],
            xor: [core::ptr::null_mut(); LANES],
        }
    }
}

/// One keystream block per lane from the state rows `init`, with `work` absorbed into `polys`
/// during the rounds. Lane `i`'s block is XORed into `work.xor[i]`, or written to `ks[i]`
/// where that is null.
///
/// # Safety
/// AVX2 and BMI2 are available; every non-null `work.chunk[i]` points to 64 readable bytes,
/// every non-null `work.xor[i]` to 64 readable and writable ones not otherwise borrowed and
/// overlapping no other lane's chunk or destination. A destination may be its own lane's
/// chunk (opening): the rounds read the chunk before the XOR writes it.
#[inline]
#[target_feature(enable = "avx2,bmi2")]
unsafe fn call(
    init: &[__m256i; 16],
    polys: &mut [Poly64; LANES],
    work: &Work,
    ks: &mut [[u8; BLOCK_LEN]; LANES],
) {
    let (r16, r8) = rotations();
    let mut v = *init;
    // Double round d < 8 absorbs two blocks of lanes 2(d % 4) and 2(d % 4) + 1: blocks 0-1 of
    // the chunk in rounds 0-3, blocks 2-3 in rounds 4-7. Two independent chains per round,
    // about as much integer work as the round's vector work, close enough together for the
    // core to run both at once; two blocks per visit keep a lane's state in registers.
    // Rounds 8 and 9 take the length blocks of lanes 0-3 and 4-7, after their chunks.
    for d in 0..10 {
        double_round(&mut v, r16, r8);
        if d < 8 {
            let (lane, at) = (2 * (d % 4), 32 * (d / 4));
            for (p, &w) in polys[lane..lane + 2]
                .iter_mut()
                .zip(&work.chunk[lane..lane + 2])
            {
                if !w.is_null() {
                    // SAFETY: non-null work points to 64 readable bytes (the caller's
                    // contract); `at + 32 <= 64`.
                    unsafe { p.two(w.add(at)) };
                }
            }
        } else {
            let lane = 4 * (d - 8);
            for (p, &n) in polys[lane..lane + 4]
                .iter_mut()
                .zip(&work.length[lane..lane + 4])
            {
                if let Some(n) = n {
                    p.block(0, n);
                }
            }
        }
    }
    for (w, x) in v.iter_mut().enumerate() {
        *x = _mm256_add_epi32(*x, init[w]);
    }
    let lo: [__m256i; 8] = core::array::from_fn(|i| v[i]);
    let hi: [__m256i; 8] = core::array::from_fn(|i| v[8 + i]);
    let (lo, hi) = (transpose8(&lo), transpose8(&hi));
    for (lane, (&dst, ks)) in work.xor.iter().zip(ks).enumerate() {
        // SAFETY: a non-null destination is 64 writable bytes (the contract); `ks` is 64.
        unsafe {
            if dst.is_null() {
                let p = ks.as_mut_ptr();
                _mm256_storeu_si256(p.cast(), lo[lane]);
                _mm256_storeu_si256(p.add(32).cast(), hi[lane]);
            } else {
                let (p0, p1) = (dst.cast::<__m256i>(), dst.add(32).cast::<__m256i>());
                _mm256_storeu_si256(p0, _mm256_xor_si256(_mm256_loadu_si256(p0), lo[lane]));
                _mm256_storeu_si256(p1, _mm256_xor_si256(_mm256_loadu_si256(p1), hi[lane]));
            }
        }
    }
}

/// A lane's packet: which job, the keystream block it is at (0: the one-time key), its data
/// blocks, and how many whole 64-byte chunks of it Poly1305 has absorbed.
#[derive(Clone, Copy)]
struct Slot {
    job: usize,
    /// The job's text and its length, copied here so the per-call loops index nothing.
    text: *mut u8,
    len: usize,
    block: usize,
    blocks: usize,
    absorbed: usize,
}

/// The lanes' packets, refilled from a queue as packets finish.
struct Lanes<'a> {
    jobs: &'a [Job],
    /// The next job to start. Jobs come longest first: the lanes start on the longest
    /// packets and drain on the shortest, so little of a lane idles at the end.
    next: usize,
    slot: [Option<Slot>; LANES],
    polys: [Poly64; LANES],
    /// State rows: the constants, the keys (transposed; re-done when a lane changes packet),
    /// the block counters and the nonces.
    init: [__m256i; 16],
    /// A lane changed packet (or went idle) since `init`'s per-lane rows were built.
    rows_stale: bool,
}

/// Most jobs one `seal` or `open` takes.
pub(crate) const MAX_JOBS: usize = crate::GROUP;

/// The share of lane-calls a run must use for the lanes to pay: a set of packets of mixed
/// lengths leaves lanes idle once their short packets end and nothing is queued (a few long
/// packets among many short ones), where the lane-filling kernels would give the long
/// packets every lane.
const MIN_USE: (usize, usize) = (3, 4);

/// Lane-calls a job takes: block 0 (the one-time key), then the data blocks.
fn calls(j: &Job) -> usize {
    j.len.div_ceil(BLOCK_LEN) + 1
}

/// The run's schedule as [`Lanes`] makes it, simulated: jobs (longest first) go in order to
/// the lane that frees first. Returns (lane-calls that do work, calls the run lasts).
fn simulate(jobs: &[Job]) -> (usize, usize) {
    let mut lane = [0usize; LANES];
    for j in jobs {
        let free = lane.iter_mut().min().expect("LANES > 0");
        *free += calls(j);
    }
    (lane.iter().sum(), lane.iter().copied().max().unwrap_or(0))
}

/// As [`simulate`], in closed form when every job takes as many calls (a burst of one size):
/// the lanes take rounds of 8, the last one partly idle.
fn lane_use(jobs: &[Job]) -> (usize, usize) {
    match (jobs.first(), jobs.last()) {
        (Some(first), Some(last)) if calls(first) == calls(last) => {
            let c = calls(first);
            (jobs.len() * c, jobs.len().div_ceil(LANES) * c)
        }
        _ => simulate(jobs),
    }
}

/// Whether the lanes keep busy enough on these jobs (longest first): at least [`MIN_USE`]
/// of the run's lane-calls do work.
pub(crate) fn worth_it(jobs: &[Job]) -> bool {
    debug_assert!(jobs.is_sorted_by(|a, b| a.len >= b.len));
    if jobs.is_empty() {
        return false;
    }
    let (used, span) = lane_use(jobs);
    used * MIN_USE.1 >= span * LANES * MIN_USE.0
}

impl<'a> Lanes<'a> {
    #[target_feature(enable = "avx2")]
    fn new(jobs: &'a [Job]) -> Self {
        debug_assert!(jobs.is_sorted_by(|a, b| a.len >= b.len));
        let mut init = [_mm256_setzero_si256(); 16];
        for (i, &c) in SIGMA.iter().enumerate() {
            init[i] = _mm256_set1_epi32(c as i32);
        }
        let mut l = Self {
            jobs,
            next: 0,
            slot: [None; LANES],
            polys: Default::default(),
            init,
            rows_stale: true,
        };
        for lane in 0..LANES {
            l.refill(lane);
        }
        l
    }

    /// Gives `lane` the next queued packet, or leaves it idle.
    fn refill(&mut self, lane: usize) {
        self.slot[lane] = (self.next < self.jobs.len()).then(|| {
            let job = self.next;
            self.next += 1;
            let j = &self.jobs[job];
            Slot {
                job,
                text: j.text,
                len: j.len,
                block: 0,
                blocks: j.len.div_ceil(BLOCK_LEN),
                absorbed: 0,
            }
        });
        self.rows_stale = true;
    }

    /// Sets every per-lane row for the next call, after a lane changed packet (or went idle).
    /// Between such changes only the block counters move, which the loop does itself.
    ///
    /// # Safety
    /// Every job's key points to 32 readable bytes.
    #[target_feature(enable = "avx2")]
    unsafe fn rows(&mut self) {
        self.rows_stale = false;
        let mut block = [0u32; LANES];
        let mut lo = [0u32; LANES];
        let mut hi = [0u32; LANES];
        let mut key = [ZERO_KEY.as_ptr(); LANES];
        for (i, s) in self.slot.iter().enumerate() {
            if let Some(s) = s {
                let j = &self.jobs[s.job];
                // `check_lengths` keeps texts under 2^32 blocks.
                block[i] = s.block as u32;
                lo[i] = j.counter as u32;
                hi[i] = (j.counter >> 32) as u32;
                key[i] = j.key;
            }
        }
        // SAFETY: the arrays are 32 readable bytes each; the keys per the contract.
        unsafe {
            let keys: [__m256i; 8] = core::array::from_fn(|i| _mm256_loadu_si256(key[i].cast()));
            self.init[4..12].copy_from_slice(&transpose8(&keys));
            self.init[12] = _mm256_loadu_si256(block.as_ptr().cast());
            self.init[14] = _mm256_loadu_si256(lo.as_ptr().cast());
            self.init[15] = _mm256_loadu_si256(hi.as_ptr().cast());
        }
    }
}

impl Drop for Lanes<'_> {
    fn drop(&mut self) {
        // The transposed session keys. SAFETY: all-zero bytes are a valid `__m256i`, and the
        // 16 elements are this array's own.
        unsafe { core::ptr::write_bytes(self.init.as_mut_ptr(), 0, self.init.len()) };
        core::hint::black_box(&mut self.init);
        for p in &mut self.polys {
            p.wipe();
        }
    }
}

/// Seals `jobs` in place and writes their tags.
///
/// # Safety
/// AVX2 and BMI2 are available ([`supported`]); `jobs.len() <= MAX_JOBS`; every job's key
/// points to 32 readable bytes and its text to `len + TAG_LEN` writable bytes not otherwise
/// borrowed, distinct from every other job's. The jobs come longest first (the order the
/// lanes' schedule and [`worth_it`] assume; debug builds check it); any order gives correct
/// results.
#[target_feature(enable = "avx2,bmi2")]
pub(crate) unsafe fn seal(jobs: &[Job]) {
    // SAFETY: forwarded contract; `run` writes the tags and ignores `ok` when sealing.
    unsafe { run::<true>(jobs, &mut []) }
}

/// Opens `jobs`: sets `ok[i]` and leaves packet `i` decrypted in place if its tag matched;
/// zeroes the text of a packet whose tag did not match (as ring does), so none of its
/// plaintext is released.
///
/// Decrypting during the pass (the tag is known only at its end) spares a second pass over
/// a keystream kept aside, and zeroing costs a forged packet no more than a genuine one.
///
/// # Safety
/// As [`seal`]; the tag follows each text; `ok.len() >= jobs.len()`.
#[target_feature(enable = "avx2,bmi2")]
pub(crate) unsafe fn open(jobs: &[Job], ok: &mut [bool]) {
    // SAFETY: forwarded contract.
    unsafe { run::<false>(jobs, ok) }
}

/// Whether a text of `len` bytes ends on a whole chunk: then its last chunk and the length
/// block can both be absorbed in one call's rounds (the partial last chunk of other lengths
/// is absorbed outside them, zero-padded).
fn ends_whole(len: usize) -> bool {
    len > 0 && len.is_multiple_of(BLOCK_LEN)
}

/// The lanes' loop. Sealing absorbs, during a call, the chunk its lane encrypted the call
/// before; opening absorbs the chunk of this call's block, before the block is decrypted (the
/// partial last chunk, which the rounds do not take, just before its XOR).
///
/// A sealed packet that ends on a whole chunk leaves its last chunk and length block to the
/// call after its last block (its "tail"): that call is its successor's block 0, which
/// absorbs nothing, so the lane's integer side is free for them. The tail's Poly1305 state
/// (with its one-time key's `s`) stays in the lane's `polys` until the tag is taken, before the
/// successor's key block replaces it. Tails left when no packet needs a call are finished
/// outside the rounds.
///
/// # Safety
/// As [`seal`] / [`open`].
#[target_feature(enable = "avx2,bmi2")]
unsafe fn run<const SEAL: bool>(jobs: &[Job], ok: &mut [bool]) {
    debug_assert!(jobs.len() <= MAX_JOBS);
    let mut l = Lanes::new(jobs);
    let mut tail: [Option<Slot>; LANES] = [None; LANES];
    // Keystream blocks the call does not XOR itself: one-time keys, partial last blocks.
    // Wiped at the end: nothing in between can panic or return early.
    let mut ks = [[0u8; BLOCK_LEN]; LANES];
    while l.slot.iter().any(Option::is_some) {
        let mut work = Work::new();
        for (lane, t) in tail.iter().enumerate() {
            if let Some(t) = t {
                // SAFETY: the tail's last chunk lies inside its text.
                work.chunk[lane] = unsafe { t.text.add(t.absorbed * BLOCK_LEN) };
                work.length[lane] = Some(t.len as u64);
                continue;
            }
            let Some(s) = &mut l.slot[lane] else { continue };
            // The chunk to absorb: sealing, the one encrypted by the last call; opening, this
            // call's. Only whole chunks, in order.
            let c = s.absorbed;
            let ready = if SEAL {
                c + 2 <= s.block
            } else {
                c + 1 == s.block
            };
            if ready && (c + 1) * BLOCK_LEN <= s.len {
                // SAFETY: the chunk lies inside the text.
                work.chunk[lane] = unsafe { s.text.add(c * BLOCK_LEN) };
                s.absorbed += 1;
                if !SEAL && s.absorbed * BLOCK_LEN == s.len {
                    work.length[lane] = Some(s.len as u64);
                }
            }
            // A whole block of text is XORed in the call.
            if s.block > 0 && s.block * BLOCK_LEN <= s.len {
                // SAFETY: the block lies inside the text.
                work.xor[lane] = unsafe { s.text.add((s.block - 1) * BLOCK_LEN) };
            }
        }
        if l.rows_stale {
            // SAFETY: the keys per the contract.
            unsafe { l.rows() };
        } else {
            // Every lane at its next block: only the counters move.
            l.init[12] = _mm256_add_epi32(l.init[12], _mm256_set1_epi32(1));
        }
        // SAFETY: every chunk pointer names a whole chunk of text: encrypted already when
        // sealing, still ciphertext when opening (its block is the lane's XOR destination,
        // which the call writes after the rounds have read it); every XOR destination is a
        // whole block of its lane's own text, and sealing's chunks are blocks of earlier calls.
        unsafe { call(&l.init, &mut l.polys, &work, &mut ks) };
        for lane in 0..LANES {
            if let Some(t) = tail[lane].take() {
                // SAFETY: a sealed slot of this run.
                unsafe { t.write_tag(l.polys[lane].emit()) };
            }
            let Some(s) = &mut l.slot[lane] else { continue };
            if s.block == 0 {
                l.polys[lane] = Poly64::new(&ks[lane]);
            } else if work.xor[lane].is_null() {
                // The partial last block.
                let at = (s.block - 1) * BLOCK_LEN;
                // SAFETY: `at < s.len`, and the rest of the text is ours.
                let text = unsafe { core::slice::from_raw_parts_mut(s.text.add(at), s.len - at) };
                if !SEAL {
                    l.polys[lane].padded(text);
                }
                for (b, k) in text.iter_mut().zip(&ks[lane]) {
                    *b ^= k;
                }
            }
            s.block += 1;
            if s.block <= s.blocks {
                continue;
            }
            let s = *s;
            if SEAL && ends_whole(s.len) {
                tail[lane] = Some(s);
            } else {
                // SAFETY: as `finish`'s contract, from the slot of this call.
                unsafe { l.finish::<SEAL>(lane, s, ok) };
            }
            l.refill(lane);
        }
    }
    // Nothing needs another call: the tails' last chunks outside the rounds, a block pair of
    // every tail in turn (their chains are independent, so they overlap), then the tags.
    for at in [0, 32] {
        for (p, t) in l.polys.iter_mut().zip(&tail) {
            if let Some(t) = t {
                // SAFETY: the tail's last chunk is 64 bytes inside its text; `at + 32 <= 64`.
                unsafe { p.two(t.text.add(t.absorbed * BLOCK_LEN + at)) };
            }
        }
    }
    for (lane, t) in tail.iter().enumerate() {
        if let Some(t) = t {
            let tag = core::mem::take(&mut l.polys[lane]).finish(t.len);
            // SAFETY: a sealed slot of this run.
            unsafe { t.write_tag(tag) };
        }
    }
    wipe(ks.as_flattened_mut());
}

impl Slot {
    /// Writes a sealed packet's tag after its text.
    ///
    /// # Safety
    /// The slot is a job's of [`seal`]: `len + TAG_LEN` writable bytes at `text`, ours.
    unsafe fn write_tag(&self, tag: [u8; TAG_LEN]) {
        // SAFETY: the tag's 16 bytes follow the text (the contract).
        unsafe { core::ptr::copy_nonoverlapping(tag.as_ptr(), self.text.add(self.len), TAG_LEN) };
    }
}

impl Lanes<'_> {
    /// The rest of a packet's Poly1305 outside the rounds (sealing: the chunks not absorbed
    /// yet; opening: the length block, unless the last call took it) and its tag: written
    /// when sealing, checked when opening (a forged packet's text is zeroed).
    ///
    /// # Safety
    /// `s` is `lane`'s packet, every block of it encrypted or decrypted, its Poly1305 state
    /// in `lane`'s `polys`; `ok` as [`run`]'s.
    unsafe fn finish<const SEAL: bool>(&mut self, lane: usize, s: Slot, ok: &mut [bool]) {
        // SAFETY: text and tag are `len + TAG_LEN` bytes, exclusively ours.
        let buf = unsafe { core::slice::from_raw_parts_mut(s.text, s.len + TAG_LEN) };
        let (text, tag) = buf.split_at_mut(s.len);
        let mut poly = core::mem::take(&mut self.polys[lane]);
        if SEAL {
            poly.padded(&text[s.absorbed * BLOCK_LEN..]);
            tag.copy_from_slice(&poly.finish(s.len));
            return;
        }
        // Every whole chunk was absorbed in its call, the partial one before its XOR; the
        // length block too if the text ends on a whole chunk.
        let mut computed = if ends_whole(s.len) {
            poly.emit()
        } else {
            poly.finish(s.len)
        };
        ok[s.job] = tag_matches(&computed, tag);
        // For a forged packet this is the valid tag of its ciphertext.
        wipe(&mut computed);
        if !ok[s.job] {
            wipe(text);
        }
    }
}

#[cfg(test)]
mod tests;
