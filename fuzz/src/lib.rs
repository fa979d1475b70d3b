//! A fuzz target per parser (design §7.8): each module's `run` takes arbitrary bytes, feeds
//! them to one parser and asserts what must hold for any input — it never panics, what it
//! accepts its accessors can read without going out of bounds, and where there is an encoder,
//! what it parsed encodes and parses back to the same value.
//!
//! The properties are plain functions so that three callers share them: the libFuzzer entry
//! points in `targets/` (built by `fuzz/run` with coverage instrumentation), the corpus replay
//! test in `tests/corpus.rs` (every committed input, on every `cargo test`), and whoever
//! reproduces a crash from a file. A failed property panics, which is what both libFuzzer and
//! the test harness report.

pub mod aead;
pub mod config;
pub mod device;
pub mod frames;
pub mod messages;
pub mod packets;
pub mod records;
pub mod region;
pub mod seeds;
pub mod uapi;

/// A target's property check: panics on any input that breaks it.
pub type Target = fn(&[u8]);

/// Every target, by the name of its corpus folder and libFuzzer binary.
pub const TARGETS: &[(&str, Target)] = &[
    ("aead", aead::run),
    ("config", config::run),
    ("device", device::run),
    ("frames", frames::run),
    ("messages", messages::run),
    ("packets", packets::run),
    ("records", records::run),
    ("region", region::run),
    ("uapi", uapi::run),
];

/// Reads structured values off the front of a fuzz input; once the input runs out every read
/// yields zeros, so a short input is still a valid (if dull) script.
#[derive(Debug)]
pub(crate) struct Input<'a> {
    rest: &'a [u8],
}

impl<'a> Input<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Self { rest: data }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// Up to `n` bytes (fewer at the end of the input).
    pub(crate) fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (head, tail) = self.rest.split_at(n.min(self.rest.len()));
        self.rest = tail;
        head
    }

    pub(crate) fn u8(&mut self) -> u8 {
        self.array::<1>()[0]
    }

    pub(crate) fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.array())
    }

    pub(crate) fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.array())
    }

    pub(crate) fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        let b = self.bytes(N);
        out[..b.len()].copy_from_slice(b);
        out
    }

    /// Everything left.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        self.bytes(self.rest.len())
    }
}
