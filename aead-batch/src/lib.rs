//! Batch ChaCha20-Poly1305 (RFC 8439) for WireGuard data messages.
//!
//! The AF_XDP workers hand the cipher whole batches: packets of many peers (so many keys), each
//! with its own 64-bit counter nonce and length. Sealing or opening them one call at a time pays
//! the per-call overhead on every packet and leaves most of a SIMD register idle on small
//! packets. Here the SIMD lanes span packets instead (multi-buffer):
//!
//! - ChaCha20: every 64-byte keystream block of the batch (block 0 of each packet for its
//!   Poly1305 key, then its data blocks) goes into a list; the kernel runs 16 (AVX-512) or 8
//!   (AVX2) blocks at once, one per 32-bit lane, each lane with its own key, nonce and block
//!   counter. Small packets fill the lanes from many packets; a big packet fills them with its
//!   successive blocks.
//! - Poly1305: one packet per lane, 8 packets per AVX-512 IFMA register (radix 2^44) or 4 per
//!   AVX2 register (radix 2^26), two registers interleaved, packets sorted by length so the
//!   lanes of a register finish together.
//! - Few packets: a row-wise 4-block AVX-512 ChaCha20 kernel for up to 4 blocks (about a third
//!   of the 16-lane kernel's work); one or two packets' Poly1305 runs 8 blocks of the same
//!   packet per IFMA step (powers r^8..r^1) when long, on the scalar code when short.
//! - AVX2, in sets of packets that keep 8 lanes busy (a burst of one size, or enough mixed
//!   ones): one packet per lane from its first block to its last, with an integer Poly1305
//!   stitched into the vector ChaCha20 rounds (`x86_avx2_stitch`), as ring does within one
//!   packet. A call takes up to 64 packets, a worker's whole batch.
//!
//! The batch is worked through in chunks of [`CHUNK`] packets so that a chunk's data stays in L1
//! between the ChaCha20 and the Poly1305 pass.
//!
//! # Failure releases no plaintext
//! [`open_batch`] computes every tag over the ciphertext first and decrypts only the packets
//! whose tag matched (compared in constant time). A packet that fails authentication still
//! holds its ciphertext: no plaintext is released, nothing has to be re-encrypted or zeroed.
//! (A small chunk computes its keystream into a scratch buffer in the same pass as the Poly1305
//! keys, and XORs it into the authentic packets only; the scratch is wiped.)
//! The exception is the AVX2 stitched path, which decrypts during its one pass (the tag is
//! known only at the end) and zeroes the text of a packet whose tag fails, as ring does; so on
//! a CPU with AVX2, a failed packet holds either its ciphertext or zeroes, never plaintext.
//!
//! # Performance
//! On the AVX-512 level, from batches of 8 up, sealing and opening run at about 1.3x to 4.8x
//! ring's packets per second (one packet per call) from 64 to 1420 bytes. A batch of one is
//! faster than ring from about 512 bytes up and slower below, where ring's stitched
//! single-packet code has less fixed work per call. On the AVX2 level (Zen 3), what the
//! workers run ([`Dispatch`]: the stitched lanes, ring, the lane-filling kernels) seals and
//! opens batches of one size at about 2.2x ring at 64 bytes, 1.75x at 128, 1.5x at 256, 1.3x
//! at 512 and 1.07x sealing 1420 (opening texts over 1023 bytes and sealing texts over 1600 is
//! ring's); in that shared machine's slower spells, up to a fifth less against ring. Figures,
//! with the command and the machine, are in `bench/RESULTS.md`; the benches are
//! `benches/aead.rs` (criterion), `benches/iai.rs` (instruction counts) and
//! `examples/paired.rs` (alternating A/B runs against ring).
//!
//! # Constant time
//! No branch and no memory index depend on keys, plaintext, keystream or tags; they depend only
//! on lengths, counters and the public verdict (a forged packet is dropped anyway).
//!
//! # Dispatch
//! [`Backend::detect`] picks the best level the CPU has at run time (`is_x86_feature_detected!`);
//! [`Backend::portable`], [`Backend::avx2`] and [`Backend::avx512`] force one, which is how the
//! tests run every path on a CPU that supports it. A `Backend` can only be had for a level the
//! CPU supports, so the safe API cannot reach an unsupported instruction.

mod chacha;
mod dispatch;
mod poly1305;
mod portable;
#[cfg(target_arch = "x86_64")]
mod sched;
#[cfg(target_arch = "x86_64")]
mod x86_avx2;
#[cfg(target_arch = "x86_64")]
mod x86_avx2_stitch;
#[cfg(target_arch = "x86_64")]
mod x86_avx512;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod vectors;

pub use dispatch::Dispatch;
use proto::messages::{field, Data};

/// Length of the Poly1305 tag that ends every sealed payload.
pub const TAG_LEN: usize = 16;

/// Packets per internal chunk: the ChaCha20 pass and the Poly1305 pass of a chunk run back to
/// back, so a chunk of full-size packets (16 x 1.5 KB) stays in L1.
pub const CHUNK: usize = 16;

/// Most packets one group kernel call takes: a worker's whole batch. The lanes stream each
/// packet chunk by chunk, so they need no L1-sized chunk; the more packets a call has, the
/// fewer of its lanes idle at the end, and the fewer sealed packets finish their Poly1305
/// outside the rounds (see `x86_avx2_stitch::run`).
pub(crate) const GROUP: usize = 64;

/// What became of one packet in the last batch call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Not processed yet.
    Pending,
    /// Sealed, or opened and authentic: the buffer holds ciphertext || tag, or plaintext.
    Ok,
    /// Failed authentication: no plaintext was released. The buffer is unchanged (still
    /// ciphertext), except on the AVX2 level's stitched lanes and ring's path (see
    /// [`Dispatch`]), which zero the text and leave the tag.
    Auth,
    /// The buffer is shorter than a tag.
    TooShort,
    /// The text is longer than ChaCha20's 32-bit block counter covers (256 GiB).
    TooLong,
}

/// Longest text one nonce can encrypt: 2^32 - 1 blocks after the Poly1305 key block.
const MAX_TEXT: u64 = (u32::MAX as u64) * 64;

/// Resets every verdict of a chunk to `Pending`, or to why the packet cannot be processed.
fn check_lengths(chunk: &mut [Packet<'_>]) {
    for p in chunk.iter_mut() {
        p.verdict = if p.buf.len() < TAG_LEN {
            Verdict::TooShort
        } else if (p.buf.len() - TAG_LEN) as u64 > MAX_TEXT {
            Verdict::TooLong
        } else {
            Verdict::Pending
        };
    }
}

/// One packet of a batch: its key, its 64-bit counter (the WireGuard nonce is 4 zero bytes
/// followed by the counter, little-endian) and its payload buffer, `text || tag`: the last
/// [`TAG_LEN`] bytes are the tag (written by sealing, checked by opening), everything before it
/// is plaintext or ciphertext, any length. In a WireGuard data message that is everything after
/// the 16-byte header (see [`Packet::from_message`]).
pub struct Packet<'a> {
    key: &'a [u8; 32],
    counter: u64,
    buf: &'a mut [u8],
    verdict: Verdict,
}

impl core::fmt::Debug for Packet<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // Never the key, never the contents.
        f.debug_struct("Packet")
            .field("counter", &self.counter)
            .field("len", &self.buf.len())
            .field("verdict", &self.verdict)
            .finish_non_exhaustive()
    }
}

impl<'a> Packet<'a> {
    /// A packet whose payload (`text || tag`) is `buf`.
    pub fn new(key: &'a [u8; 32], counter: u64, buf: &'a mut [u8]) -> Self {
        Self {
            key,
            counter,
            buf,
            verdict: Verdict::Pending,
        }
    }

    /// The payload of a whole WireGuard data message (header, ciphertext, tag), with the counter
    /// taken from its header. `None` if `msg` is not a data message of at least header + tag.
    pub fn from_message(key: &'a [u8; 32], msg: &'a mut [u8]) -> Option<Self> {
        let counter = Data::new_checked(&*msg).ok()?.counter();
        Some(Self::new(key, counter, &mut msg[field::data::PAYLOAD]))
    }

    pub fn counter(&self) -> u64 {
        self.counter
    }

    /// The outcome of the last [`seal_batch`] or [`open_batch`] that saw this packet.
    pub fn verdict(&self) -> Verdict {
        self.verdict
    }

    /// Length of the plaintext/ciphertext part (the payload without its tag).
    pub fn text_len(&self) -> usize {
        self.buf.len().saturating_sub(TAG_LEN)
    }

    /// The payload buffer.
    pub fn buf(&self) -> &[u8] {
        self.buf
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Portable,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

/// An implementation level the running CPU supports (the only way to get one is to ask for a
/// level and have the CPU confirm it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backend(Level);

impl Backend {
    /// The best level this CPU supports.
    pub fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if let Some(b) = Self::avx512() {
                return b;
            }
            if let Some(b) = Self::avx2() {
                return b;
            }
        }
        Self::portable()
    }

    /// Scalar code, any CPU.
    pub fn portable() -> Self {
        Self(Level::Portable)
    }

    /// AVX2: 8-lane ChaCha20 across packets, 4-lane Poly1305 across packets.
    pub fn avx2() -> Option<Self> {
        #[cfg(target_arch = "x86_64")]
        if x86_avx2::supported() {
            return Some(Self(Level::Avx2));
        }
        None
    }

    /// AVX-512 (F, BW, VL, IFMA): 16-lane ChaCha20 across packets, 8-lane radix-2^44 Poly1305.
    pub fn avx512() -> Option<Self> {
        #[cfg(target_arch = "x86_64")]
        if x86_avx512::supported() {
            return Some(Self(Level::Avx512));
        }
        None
    }

    /// Every level this CPU supports, portable first.
    pub fn all() -> Vec<Self> {
        [Some(Self::portable()), Self::avx2(), Self::avx512()]
            .into_iter()
            .flatten()
            .collect()
    }

    pub fn name(self) -> &'static str {
        match self.0 {
            Level::Portable => "portable",
            #[cfg(target_arch = "x86_64")]
            Level::Avx2 => "avx2",
            #[cfg(target_arch = "x86_64")]
            Level::Avx512 => "avx512",
        }
    }

    /// Seals every packet in place (see [`seal_batch`]); returns how many were sealed.
    pub fn seal(self, packets: &mut [Packet<'_>]) -> usize {
        Dispatch::from(self).seal(packets)
    }

    /// Seals or opens the window's pending packets (at most [`GROUP`]) that this level's
    /// group kernels take (where they pay; see `sched::groups`, and there for `ring_from`).
    fn groups_pending(self, window: &mut [Packet<'_>], seal: bool, ring_from: usize) {
        #[cfg(not(target_arch = "x86_64"))]
        let _ = ring_from;
        match self.0 {
            Level::Portable => {}
            #[cfg(target_arch = "x86_64")]
            Level::Avx2 => sched::groups::<x86_avx2::Avx2>(window, seal, ring_from),
            #[cfg(target_arch = "x86_64")]
            Level::Avx512 => sched::groups::<x86_avx512::Avx512>(window, seal, ring_from),
        }
    }

    /// Seals the packets of `chunk` (at most [`CHUNK`]) whose verdict is `Pending`.
    fn seal_pending(self, chunk: &mut [Packet<'_>]) {
        match self.0 {
            Level::Portable => {
                for p in chunk.iter_mut().filter(|p| p.verdict == Verdict::Pending) {
                    portable::seal(p.key, p.counter, p.buf);
                    p.verdict = Verdict::Ok;
                }
            }
            #[cfg(target_arch = "x86_64")]
            Level::Avx2 => sched::seal_chunk::<x86_avx2::Avx2>(chunk),
            #[cfg(target_arch = "x86_64")]
            Level::Avx512 => sched::seal_chunk::<x86_avx512::Avx512>(chunk),
        }
    }

    /// Opens every packet in place (see [`open_batch`]); returns how many were authentic.
    pub fn open(self, packets: &mut [Packet<'_>]) -> usize {
        Dispatch::from(self).open(packets)
    }

    /// Opens the packets of `chunk` (at most [`CHUNK`]) whose verdict is `Pending`.
    fn open_pending(self, chunk: &mut [Packet<'_>]) {
        match self.0 {
            Level::Portable => {
                for p in chunk.iter_mut().filter(|p| p.verdict == Verdict::Pending) {
                    p.verdict = if portable::open(p.key, p.counter, p.buf) {
                        Verdict::Ok
                    } else {
                        Verdict::Auth
                    };
                }
            }
            #[cfg(target_arch = "x86_64")]
            Level::Avx2 => sched::open_chunk::<x86_avx2::Avx2>(chunk),
            #[cfg(target_arch = "x86_64")]
            Level::Avx512 => sched::open_chunk::<x86_avx512::Avx512>(chunk),
        }
    }
}

/// Seals every packet in place with the best level this CPU has: the plaintext becomes
/// ciphertext and the last [`TAG_LEN`] bytes of each buffer receive the tag. Packets whose
/// buffer is shorter than a tag are skipped with [`Verdict::TooShort`]. Returns how many
/// packets were sealed.
pub fn seal_batch(packets: &mut [Packet<'_>]) -> usize {
    Backend::detect().seal(packets)
}

/// Opens every packet in place with the best level this CPU has. Each packet's verdict says
/// whether it was authentic ([`Verdict::Ok`], its buffer now holds the plaintext followed by
/// the unchanged tag) or not ([`Verdict::Auth`]: its buffer holds no plaintext, see there).
/// Returns how many were authentic.
pub fn open_batch(packets: &mut [Packet<'_>]) -> usize {
    Backend::detect().open(packets)
}
