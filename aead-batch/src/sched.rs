//! Multi-buffer scheduling shared by the SIMD backends: which keystream block goes into which
//! lane, and which packet's Poly1305 into which lane. The kernels (`x86_avx2`, `x86_avx512`)
//! only see raw pointers prepared here from the packets' `&mut` buffers.

use crate::chacha::{wireguard_tail, BLOCK_LEN};
use crate::{Packet, Verdict, CHUNK, GROUP, TAG_LEN};
use subtle::ConstantTimeEq as _;

/// Most lanes any kernel has (AVX-512: 16 x 32 bits).
pub(crate) const MAX_LANES: usize = 16;

/// Up to `MAX_LANES` ChaCha20 blocks to compute and XOR into memory, one per lane.
///
/// Lane `i` XORs the first `len[i]` bytes of the block with key `key[i]` and state words
/// 12..16 `tail[0..4][i]` into `dst[i]`. Unused lanes have `len == 0`, the zero key and point
/// into `dummy`; kernels must not write through a lane with `len == 0`.
pub(crate) struct Stage {
    pub(crate) key: [*const u8; MAX_LANES],
    pub(crate) dst: [*mut u8; MAX_LANES],
    pub(crate) len: [u32; MAX_LANES],
    pub(crate) tail: [[u32; MAX_LANES]; 4],
    n: usize,
}

static ZERO_KEY: [u8; 32] = [0; 32];

impl Stage {
    fn new() -> Self {
        Self {
            key: [ZERO_KEY.as_ptr(); MAX_LANES],
            dst: [core::ptr::null_mut(); MAX_LANES],
            len: [0; MAX_LANES],
            tail: [[0; MAX_LANES]; 4],
            n: 0,
        }
    }
}

/// One packet's Poly1305 for the AEAD construction without AAD: the text zero-padded to 16
/// bytes, then the length block `0 || len` (RFC 8439 §2.8).
#[derive(Clone, Copy)]
pub(crate) struct PolyJob {
    /// `round_up(len, 16)` bytes readable from here (the tag that follows the text makes up
    /// the difference); bytes past `len` are ignored.
    pub(crate) msg: *const u8,
    pub(crate) len: usize,
    /// The 32-byte one-time key.
    pub(crate) key: *const u8,
}

/// A SIMD level's kernels.
pub(crate) trait Kernels {
    /// ChaCha20 lanes per kernel call.
    const LANES: usize;

    /// Runs the first `LANES` lanes of `stage`.
    ///
    /// # Safety
    /// The CPU supports the level; for every lane, `key` points to 32 readable bytes and `dst`
    /// to `len` bytes writable and not otherwise borrowed.
    unsafe fn chacha(stage: &Stage);

    /// Lanes that a narrower kernel handles more cheaply than `chacha` (0: none).
    const NARROW: usize = 0;

    /// Runs the first `NARROW` lanes of `stage` (the rest have `len == 0`).
    ///
    /// # Safety
    /// As `chacha`.
    unsafe fn chacha_narrow(stage: &Stage) {
        // SAFETY: forwarded.
        unsafe { Self::chacha(stage) }
    }

    /// Computes the tag of each job into `tags[i]`; `jobs.len() <= tags.len() <= CHUNK`.
    /// Jobs come sorted by length, so neighbouring lanes finish together.
    ///
    /// # Safety
    /// The CPU supports the level; every job's pointers are valid as `PolyJob` states.
    unsafe fn poly(jobs: &[PolyJob], tags: &mut [[u8; 16]]);

    /// Texts from this length up to [`Kernels::GROUP_SEAL_MAX`] (sealing) or
    /// [`Kernels::GROUP_OPEN_MAX`] (opening) go to the group kernels, on a CPU where
    /// [`Kernels::groups_supported`] holds; up to [`Kernels::GROUP_MAX`] for a caller
    /// without ring.
    const GROUP_FROM: usize = usize::MAX;

    /// The longest text the group kernels take at all.
    const GROUP_MAX: usize = 0;

    /// The longest text the group kernels seal where ring takes the longer ones (ring's
    /// fixed cost per packet shrinks against its per-byte rate as texts grow); by default
    /// [`Kernels::GROUP_MAX`].
    const GROUP_SEAL_MAX: usize = usize::MAX;

    /// The longest text the group kernels open where ring takes the longer ones (opening may
    /// stop paying against ring earlier than sealing: ring's single-packet open is faster than
    /// its seal). Without ring, they open up to [`Kernels::GROUP_MAX`].
    const GROUP_OPEN_MAX: usize = 0;

    /// Whether these jobs (longest first) keep the group kernels' lanes busy enough to beat
    /// the lane-filling kernels.
    fn group_worth_it(_jobs: &[GroupJob]) -> bool {
        true
    }

    /// Whether this level has group kernels this CPU can run (checked per window; the
    /// detection is cached).
    fn groups_supported() -> bool {
        false
    }

    /// Seals a group of packets (texts in the group range) in place, tags included.
    ///
    /// # Safety
    /// The CPU supports the level and `groups_supported`; `jobs.len() <= GROUP`; every job's
    /// key is 32 readable bytes and its text `len + TAG_LEN` writable bytes not otherwise
    /// borrowed. (The jobs come longest first, as the lanes' schedule assumes; that is not a
    /// safety condition.)
    unsafe fn seal_group(_jobs: &[GroupJob]) {}

    /// Opens a group: `ok[i]` says whether job `i` was authentic (then it is decrypted in
    /// place; otherwise no plaintext of it is left: the kernels may zero its text).
    ///
    /// # Safety
    /// As `seal_group`.
    unsafe fn open_group(_jobs: &[GroupJob], _ok: &mut [bool]) {}
}

/// One packet of a group kernel's call.
#[derive(Clone, Copy)]
pub(crate) struct GroupJob {
    /// The 32-byte session key.
    pub(crate) key: *const u8,
    pub(crate) counter: u64,
    /// `len` bytes of text, then the 16-byte tag.
    pub(crate) text: *mut u8,
    pub(crate) len: usize,
}

/// The longest text the group kernels take (see [`groups`]): their own limit where ring takes
/// the longer texts, up to the text ring starts at where it starts later.
fn group_most<K: Kernels>(seal: bool, ring_from: usize) -> usize {
    if seal {
        K::GROUP_SEAL_MAX
    } else {
        K::GROUP_OPEN_MAX
    }
    .max(ring_from.saturating_sub(1))
    .min(K::GROUP_MAX)
}

/// Seals or opens, in one call of `K`'s group kernels, the window's packets (at most
/// [`GROUP`]) they take, if they keep its lanes busy enough. Sets their verdicts; the rest
/// stay pending.
///
/// `ring_from`: the text length from which the caller seals and opens with ring. The group
/// kernels stop sealing at [`Kernels::GROUP_SEAL_MAX`] and opening at
/// [`Kernels::GROUP_OPEN_MAX`] because ring is faster there; texts that would not go to ring
/// (a caller without it) they still take faster than the lane-filling kernels.
pub(crate) fn groups<K: Kernels>(window: &mut [Packet<'_>], seal: bool, ring_from: usize) {
    // One bit per packet of a window (below).
    const _: () = assert!(GROUP <= 64);
    debug_assert!(window.len() <= GROUP);
    if !K::groups_supported() {
        return;
    }
    let most = group_most::<K>(seal, ring_from);
    // The packets the group kernels take, as bits (a window is at most 64): a window of
    // ring's sizes returns here, before the job arrays below are zeroed (4.6 KB).
    let mut mask = 0u64;
    for (i, p) in window.iter().enumerate() {
        let fits = p.verdict == Verdict::Pending && (K::GROUP_FROM..=most).contains(&p.text_len());
        mask |= u64::from(fits) << i;
    }
    if mask == 0 {
        return;
    }
    const NONE: GroupJob = GroupJob {
        key: core::ptr::null(),
        counter: 0,
        text: core::ptr::null_mut(),
        len: 0,
    };
    // The jobs and where each sits in the window: the mask's set bits, lowest first.
    let mut picked = [(NONE, 0usize); GROUP];
    let mut n = 0;
    while mask != 0 {
        let i = mask.trailing_zeros() as usize;
        mask &= mask - 1;
        if let Some(p) = window.get_mut(i) {
            let job = GroupJob {
                key: p.key.as_ptr(),
                counter: p.counter,
                len: p.text_len(),
                text: p.buf.as_mut_ptr(),
            };
            picked[n] = (job, i);
            n += 1;
        }
    }
    // Longest first, as the kernels fill their lanes; a burst of one size is sorted already.
    // Lengths are public: sorting by them leaks nothing.
    let picked = &mut picked[..n];
    if !picked.is_sorted_by(|a, b| a.0.len >= b.0.len) {
        picked.sort_unstable_by_key(|(j, _)| core::cmp::Reverse(j.len));
    }
    let mut jobs = [NONE; GROUP];
    for (j, (job, _)) in jobs.iter_mut().zip(picked.iter()) {
        *j = *job;
    }
    if !K::group_worth_it(&jobs[..n]) {
        return;
    }
    // Sealing marks every job; opening marks each job it finds authentic.
    let mut ok = [seal; GROUP];
    // SAFETY: `K` exists only for a supported level and `groups_supported` held; each job is
    // a distinct packet of the window (distinct, exclusively borrowed buffers), text plus tag,
    // with its key; `n <= GROUP`.
    unsafe {
        if seal {
            K::seal_group(&jobs[..n]);
        } else {
            K::open_group(&jobs[..n], &mut ok);
        }
    }
    for (&(_, i), &ok) in picked.iter().zip(&ok) {
        window[i].verdict = if ok { Verdict::Ok } else { Verdict::Auth };
    }
}

/// One job's tag with the portable Poly1305.
///
/// # Safety
/// The job's pointers are valid as `PolyJob` states.
pub(crate) unsafe fn poly_scalar(job: &PolyJob) -> [u8; 16] {
    // SAFETY: `PolyJob` guarantees the key and `len` readable bytes of text.
    let (key, text) = unsafe {
        (
            &*job.key.cast::<[u8; 32]>(),
            core::slice::from_raw_parts(job.msg, job.len),
        )
    };
    let mut p = crate::poly1305::Poly1305::new(key);
    p.update_padded(text);
    p.update_lengths(0, job.len as u64);
    p.finish()
}

/// Pushes lanes into a stage and runs the kernel whenever it is full.
struct Feeder<K: Kernels> {
    stage: Stage,
    dummy: [u8; BLOCK_LEN],
    _k: core::marker::PhantomData<K>,
}

impl<K: Kernels> Feeder<K> {
    fn new() -> Self {
        Self {
            stage: Stage::new(),
            dummy: [0; BLOCK_LEN],
            _k: core::marker::PhantomData,
        }
    }

    /// Queues the keystream block `tail` of `key`, XORed into `len` bytes at `dst`.
    ///
    /// # Safety
    /// As [`Kernels::chacha`] for this lane, until the next `flush` returns; `K`'s level is
    /// supported.
    #[inline(always)]
    unsafe fn push(&mut self, key: *const u8, dst: *mut u8, len: usize, tail: [u32; 4]) {
        let s = &mut self.stage;
        let i = s.n;
        s.key[i] = key;
        s.dst[i] = dst;
        s.len[i] = len as u32;
        for (row, w) in s.tail.iter_mut().zip(tail) {
            row[i] = w;
        }
        s.n += 1;
        if s.n == K::LANES {
            // SAFETY: every lane was pushed under this function's contract.
            unsafe { K::chacha(s) };
            s.n = 0;
        }
    }

    /// Runs the lanes still queued, the rest padded with harmless lanes.
    ///
    /// # Safety
    /// As `push` for the queued lanes.
    unsafe fn flush(&mut self) {
        let s = &mut self.stage;
        if s.n == 0 {
            return;
        }
        let dummy = self.dummy.as_mut_ptr();
        for i in s.n..K::LANES {
            s.key[i] = ZERO_KEY.as_ptr();
            s.dst[i] = dummy;
            s.len[i] = 0;
        }
        // SAFETY: queued lanes per the contract; padding lanes write nothing.
        unsafe {
            if s.n <= K::NARROW {
                K::chacha_narrow(s)
            } else {
                K::chacha(s)
            }
        };
        s.n = 0;
    }
}

/// Zeroes key material once it is no longer needed. A plain `fill` (a few vector stores, where
/// `zeroize`'s per-byte volatile writes would cost hundreds of stores per chunk) followed by
/// `black_box`, which keeps the compiler from dropping the stores as dead.
pub(crate) fn wipe<T: AsMut<[u8]> + ?Sized>(secret: &mut T) {
    let bytes = secret.as_mut();
    bytes.fill(0);
    core::hint::black_box(bytes);
}

/// Queues the data blocks of one packet (keystream blocks 1..).
///
/// # Safety
/// `text` points to `len` writable bytes not otherwise borrowed until the feeder is flushed.
#[inline(always)]
unsafe fn push_text<K: Kernels>(
    f: &mut Feeder<K>,
    key: *const u8,
    counter: u64,
    text: *mut u8,
    len: usize,
) {
    let mut off = 0;
    let mut block = 1u32;
    while off < len {
        let n = (len - off).min(BLOCK_LEN);
        // SAFETY: `off + n <= len`, inside the text; the caller's contract covers the rest.
        unsafe { f.push(key, text.add(off), n, wireguard_tail(block, counter)) };
        off += n;
        block += 1;
    }
}

/// Computes the tags of the pending packets of a chunk into `tags` (indexed as the chunk).
///
/// # Safety
/// `K`'s level is supported; `base[i]` is packet `i`'s buffer; `poly_keys[i]` is its key.
unsafe fn tags_of<K: Kernels>(
    chunk: &[Packet<'_>],
    base: &[*mut u8; CHUNK],
    poly_keys: &[[u8; 32]; CHUNK],
    tags: &mut [[u8; 16]; CHUNK],
) {
    let mut jobs = [PolyJob {
        msg: core::ptr::null(),
        len: 0,
        key: core::ptr::null(),
    }; CHUNK];
    let mut order = [0usize; CHUNK];
    let mut n = 0;
    for (i, p) in chunk.iter().enumerate() {
        if p.verdict == Verdict::Pending {
            order[n] = i;
            n += 1;
        }
    }
    // Sort by length (lengths are public) so a vector's lanes finish together.
    order[..n].sort_unstable_by_key(|&i| chunk[i].buf.len());
    for (j, &i) in order[..n].iter().enumerate() {
        jobs[j] = PolyJob {
            msg: base[i],
            len: chunk[i].buf.len() - TAG_LEN,
            key: poly_keys[i].as_ptr(),
        };
    }
    let mut sorted_tags = [[0u8; 16]; CHUNK];
    // SAFETY: each job reads its packet's text rounded up to 16 bytes, which the tag that
    // follows covers, and its poly key; the caller guarantees the level.
    unsafe { K::poly(&jobs[..n], &mut sorted_tags[..n]) };
    for (j, &i) in order[..n].iter().enumerate() {
        tags[i] = sorted_tags[j];
    }
}

/// Seals the pending packets of a chunk (at most [`CHUNK`]).
pub(crate) fn seal_chunk<K: Kernels>(chunk: &mut [Packet<'_>]) {
    debug_assert!(chunk.len() <= CHUNK);
    let mut base = [core::ptr::null_mut(); CHUNK];
    for (b, p) in base.iter_mut().zip(chunk.iter_mut()) {
        *b = p.buf.as_mut_ptr();
    }
    let mut poly_keys = [[0u8; 32]; CHUNK];
    let mut tags = [[0u8; 16]; CHUNK];
    let mut f = Feeder::<K>::new();
    for (i, p) in chunk.iter().enumerate() {
        if p.verdict != Verdict::Pending {
            continue;
        }
        let key = p.key.as_ptr();
        // SAFETY: `K` was constructed only after its level was detected (see `Backend`); the
        // poly key slot and the packet's text are distinct, exclusively borrowed memory that
        // outlives the flush below.
        unsafe {
            f.push(
                key,
                poly_keys[i].as_mut_ptr(),
                32,
                wireguard_tail(0, p.counter),
            );
            push_text(&mut f, key, p.counter, base[i], p.buf.len() - TAG_LEN);
        }
    }
    // SAFETY: as above.
    unsafe {
        f.flush();
        tags_of::<K>(chunk, &base, &poly_keys, &mut tags);
    }
    for (i, p) in chunk.iter_mut().enumerate() {
        if p.verdict == Verdict::Pending {
            let n = p.buf.len() - TAG_LEN;
            p.buf[n..].copy_from_slice(&tags[i]);
            p.verdict = Verdict::Ok;
        }
    }
    wipe(poly_keys.as_flattened_mut());
}

/// Keystream blocks that a small open computes in one pass into a scratch buffer.
const SCRATCH_BLOCKS: usize = 32;

/// Opens the pending packets of a chunk: tags first, then decrypts only the authentic ones.
///
/// A small chunk (at most [`SCRATCH_BLOCKS`] keystream blocks, where that saves a kernel call)
/// gets all its keystream in one kernel pass into a scratch buffer, which is XORed into the authentic packets after the tags
/// are checked; a bigger one runs block 0 of every packet first and the data blocks of the
/// authentic packets after, so that forged packets cost no decryption.
pub(crate) fn open_chunk<K: Kernels>(chunk: &mut [Packet<'_>]) {
    debug_assert!(chunk.len() <= CHUNK);
    let mut base = [core::ptr::null_mut(); CHUNK];
    for (b, p) in base.iter_mut().zip(chunk.iter_mut()) {
        *b = p.buf.as_mut_ptr();
    }
    let mut poly_keys = [[0u8; 32]; CHUNK];
    let mut tags = [[0u8; 16]; CHUNK];
    let mut f = Feeder::<K>::new();
    let (mut keys, mut data) = (0, 0);
    for p in chunk.iter().filter(|p| p.verdict == Verdict::Pending) {
        keys += 1;
        data += (p.buf.len() - TAG_LEN).div_ceil(BLOCK_LEN);
    }
    // One pass only where it saves a kernel call (it costs a copy through the scratch).
    let small = keys + data <= SCRATCH_BLOCKS
        && (keys + data).div_ceil(K::LANES) < keys.div_ceil(K::LANES) + data.div_ceil(K::LANES);
    let mut scratch = [0u8; SCRATCH_BLOCKS * BLOCK_LEN];
    // Where each packet's keystream starts in `scratch` (small chunks only).
    let mut at = [0usize; CHUNK];
    let mut used = 0;
    for (i, p) in chunk.iter().enumerate() {
        if p.verdict != Verdict::Pending {
            continue;
        }
        // SAFETY: as in `seal_chunk`; scratch slots are disjoint, inside `scratch` (the chunk
        // has at most SCRATCH_BLOCKS blocks) and outlive the flush.
        unsafe {
            f.push(
                p.key.as_ptr(),
                poly_keys[i].as_mut_ptr(),
                32,
                wireguard_tail(0, p.counter),
            );
            if small {
                let n = p.buf.len() - TAG_LEN;
                at[i] = used;
                push_text(
                    &mut f,
                    p.key.as_ptr(),
                    p.counter,
                    scratch.as_mut_ptr().add(used),
                    n,
                );
                used += n.div_ceil(BLOCK_LEN) * BLOCK_LEN;
            }
        }
    }
    // SAFETY: as in `seal_chunk`.
    unsafe {
        f.flush();
        tags_of::<K>(chunk, &base, &poly_keys, &mut tags);
    }
    for (i, p) in chunk.iter_mut().enumerate() {
        if p.verdict != Verdict::Pending {
            continue;
        }
        let n = p.buf.len() - TAG_LEN;
        if !tag_matches(&tags[i], &p.buf[n..]) {
            p.verdict = Verdict::Auth;
            continue;
        }
        p.verdict = Verdict::Ok;
        if small {
            for (d, k) in p.buf[..n].iter_mut().zip(&scratch[at[i]..at[i] + n]) {
                *d ^= k;
            }
        } else {
            // SAFETY: as in `seal_chunk`.
            unsafe { push_text(&mut f, p.key.as_ptr(), p.counter, base[i], n) };
        }
    }
    // SAFETY: as in `seal_chunk`.
    unsafe { f.flush() };
    wipe(&mut scratch[..used]);
    wipe(poly_keys.as_flattened_mut());
    wipe(tags.as_flattened_mut());
}

#[cfg(test)]
impl Stage {
    /// An empty stage for kernel-level tests.
    pub(crate) fn for_test() -> Self {
        Self::new()
    }
}

/// Whether a received tag equals the computed one, in constant time (see [`equal_words`]:
/// subtle's comparison of the two 16-byte slices, byte by byte behind optimisation barriers,
/// was 5% of a worker's time at 64-byte packets).
pub(crate) fn tag_matches(computed: &[u8; TAG_LEN], received: &[u8]) -> bool {
    <&[u8; TAG_LEN]>::try_from(received).is_ok_and(|received| equal_words(computed, received))
}

/// Whether two secrets of `N` bytes (a multiple of 8) are equal, in constant time: their
/// 64-bit words XORed and ORed, then one constant-time comparison with zero.
pub(crate) fn equal_words<const N: usize>(a: &[u8; N], b: &[u8; N]) -> bool {
    let mut diff = 0u64;
    for (a, b) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        let word = |w: &[u8]| u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
        diff |= word(a) ^ word(b);
    }
    bool::from(diff.ct_eq(&0))
}

#[cfg(test)]
mod tag_tests {
    use super::*;

    #[test]
    fn a_tag_matches_only_itself() {
        let t: [u8; TAG_LEN] = std::array::from_fn(|i| i as u8 * 17);
        assert!(tag_matches(&t, &t));
        for i in 0..TAG_LEN {
            for bit in 0..8 {
                let mut other = t;
                other[i] ^= 1 << bit;
                assert!(!tag_matches(&t, &other), "byte {i} bit {bit}");
            }
        }
        assert!(!tag_matches(&t, &t[..15]), "short");
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod group_tests {
    use super::*;
    use crate::x86_avx2::Avx2;

    /// Where the AVX2 lanes stop: at their own limits while ring takes the longer texts (the
    /// workers' crossover, 256 bytes, or all of them), just below ring where ring starts
    /// later, and nowhere without ring.
    #[test]
    fn the_lanes_leave_long_texts_to_ring_only_where_ring_is_there() {
        for (seal, ring_from, want) in [
            (true, 256, 1600),
            (false, 256, 1023),
            (true, 0, 1600),
            (false, 0, 1023),
            (true, 2001, 2000),
            (false, 2001, 2000),
            (true, usize::MAX, usize::MAX - 1),
            (false, usize::MAX, usize::MAX - 1),
        ] {
            assert_eq!(
                group_most::<Avx2>(seal, ring_from),
                want,
                "{seal} {ring_from}"
            );
        }
    }
}

/// [`groups`] itself, with kernels that only record what they were given: which packets of a
/// window reach the group kernels, in which order, and what becomes of their verdicts.
#[cfg(test)]
mod mock_group_tests {
    use super::*;
    use std::cell::RefCell;

    thread_local! {
        /// (counter, text length) of each job of the last group call.
        static CALLED: RefCell<Vec<(u64, usize)>> = const { RefCell::new(Vec::new()) };
    }

    /// Group kernels for texts of 10..=100 bytes (sealing up to 80, opening up to 50 where
    /// ring takes the rest), worth a call from two jobs. Sealing writes the counter's low
    /// byte over the text; opening finds even counters authentic.
    struct Mock;

    impl Kernels for Mock {
        const LANES: usize = 8;
        const GROUP_FROM: usize = 10;
        const GROUP_MAX: usize = 100;
        const GROUP_SEAL_MAX: usize = 80;
        const GROUP_OPEN_MAX: usize = 50;

        unsafe fn chacha(_stage: &Stage) {
            unreachable!("groups calls only the group kernels")
        }

        unsafe fn poly(_jobs: &[PolyJob], _tags: &mut [[u8; 16]]) {
            unreachable!("groups calls only the group kernels")
        }

        fn group_worth_it(jobs: &[GroupJob]) -> bool {
            jobs.len() >= 2
        }

        fn groups_supported() -> bool {
            true
        }

        unsafe fn seal_group(jobs: &[GroupJob]) {
            record(jobs);
            for j in jobs {
                // SAFETY: the contract gives `len + TAG_LEN` writable bytes at `text`.
                unsafe { core::ptr::write_bytes(j.text, j.counter as u8, j.len) };
            }
        }

        unsafe fn open_group(jobs: &[GroupJob], ok: &mut [bool]) {
            record(jobs);
            for (j, ok) in jobs.iter().zip(ok) {
                *ok = j.counter % 2 == 0;
            }
        }
    }

    fn record(jobs: &[GroupJob]) {
        CALLED.with_borrow_mut(|c| *c = jobs.iter().map(|j| (j.counter, j.len)).collect());
    }

    /// Runs `groups` on packets of these text lengths (counter = position), the ones listed
    /// in `done` already decided; returns the jobs called and the verdicts after.
    fn run(lens: &[usize], done: &[usize], seal: bool, ring_from: usize) -> Calls {
        let key = [7u8; 32];
        let mut bufs: Vec<Vec<u8>> = lens.iter().map(|&l| vec![0xEE; l + TAG_LEN]).collect();
        let mut window: Vec<Packet<'_>> = bufs
            .iter_mut()
            .enumerate()
            .map(|(i, b)| Packet::new(&key, i as u64, b))
            .collect();
        for &i in done {
            window[i].verdict = Verdict::Auth;
        }
        CALLED.with_borrow_mut(Vec::clear);
        groups::<Mock>(&mut window, seal, ring_from);
        let verdicts = window.iter().map(|p| p.verdict).collect();
        drop(window);
        Calls {
            jobs: CALLED.with_borrow(Clone::clone),
            verdicts,
            texts: bufs,
        }
    }

    struct Calls {
        jobs: Vec<(u64, usize)>,
        verdicts: Vec<Verdict>,
        texts: Vec<Vec<u8>>,
    }

    #[test]
    fn sealing_takes_the_pending_texts_in_range_longest_first_and_marks_just_them() {
        //          0  1   2   3   4   5    6   7   8
        let lens = [5, 10, 80, 81, 40, 100, 10, 60, 30];
        let c = run(&lens, &[8], true, 32);
        // 0 is too short, 3 and 5 are ring's, 8 was decided; ties keep no particular order.
        let mut want = [(2, 80), (7, 60), (4, 40), (1, 10), (6, 10)];
        assert_eq!(c.jobs[..3], want[..3], "longest first");
        want[3..].sort_unstable();
        let mut tail = c.jobs[3..].to_vec();
        tail.sort_unstable();
        assert_eq!(tail, want[3..]);
        for (i, v) in c.verdicts.iter().enumerate() {
            let picked = want.iter().any(|&(j, _)| j == i as u64);
            let expected = match (picked, i) {
                (true, _) => Verdict::Ok,
                (false, 8) => Verdict::Auth,
                (false, _) => Verdict::Pending,
            };
            assert_eq!(*v, expected, "packet {i}");
            // The kernels wrote each job's own packet, and no other.
            let written = c.texts[i][..lens[i]].iter().all(|&b| b == i as u8);
            assert_eq!(written, picked && lens[i] > 0, "packet {i}'s text");
            assert!(
                c.texts[i][lens[i]..].iter().all(|&b| b == 0xEE),
                "packet {i}'s tag"
            );
        }
    }

    #[test]
    fn opening_stops_at_its_own_limit_and_marks_the_forged_packets_auth() {
        let lens = [50, 51, 20, 12, 9];
        let c = run(&lens, &[], false, 32);
        assert_eq!(c.jobs, [(0, 50), (2, 20), (3, 12)]);
        use Verdict::{Auth, Ok, Pending};
        assert_eq!(c.verdicts, [Ok, Pending, Ok, Auth, Pending]);
    }

    #[test]
    fn where_ring_starts_later_or_never_the_group_kernels_take_texts_up_to_it() {
        let c = run(&[100, 101, 90], &[], true, usize::MAX);
        assert_eq!(c.jobs, [(0, 100), (2, 90)]);
        let c = run(&[100, 61, 60, 51], &[], false, 61);
        assert_eq!(c.jobs, [(2, 60), (3, 51)], "opening below ring's 61");
        // Ring from 70: sealing still goes to 80, the lanes' own limit.
        let c = run(&[100, 80, 75, 70], &[], true, 70);
        assert_eq!(c.jobs, [(1, 80), (2, 75), (3, 70)]);
    }

    /// A full window: its last packets are the mask's last bits.
    #[test]
    fn the_last_packets_of_a_full_window_are_picked_too() {
        let mut lens = [5usize; GROUP];
        lens[GROUP - 2] = 20;
        lens[GROUP - 1] = 30;
        let c = run(&lens, &[], true, 32);
        assert_eq!(c.jobs, [(GROUP as u64 - 1, 30), (GROUP as u64 - 2, 20)]);
        assert_eq!(c.verdicts[GROUP - 2..], [Verdict::Ok, Verdict::Ok]);
        assert!(c.verdicts[..GROUP - 2]
            .iter()
            .all(|&v| v == Verdict::Pending));
    }

    #[test]
    fn a_window_that_would_not_keep_the_lanes_busy_is_left_alone() {
        let c = run(&[40, 5, 200], &[], true, 32);
        assert!(c.jobs.is_empty(), "one job is not worth a call");
        assert!(c.verdicts.iter().all(|&v| v == Verdict::Pending));
        assert!(c.texts.iter().all(|t| t.iter().all(|&b| b == 0xEE)));
    }
}
