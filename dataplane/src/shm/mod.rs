//! The region shared by the control process and the workers (design §2).
//!
//! Control creates it (a file, mode 0600) and is its only writer of configuration: sessions
//! (keys, indices, peer, birth), peers (endpoint), and the allowed-IPs list. Workers map it and
//! read those lock-free, and write only atomics they own: sending counters, activity times,
//! byte counters, learned endpoints, and their event rings to control.
//!
//! Everything in the region is position-independent (offsets and slot numbers, never
//! pointers) and made of `#[repr(C)]` atomics, so two processes can map it at different
//! addresses and no access is ever a data race. Readers of multi-word records use the seqlock
//! in each record ([`seqlock`]); a torn read is detected and retried, never used.
//!
//! All `unsafe` of the region is in [`region`]: mapping the file and viewing it as the typed
//! layout below.

pub mod layout;
pub mod region;
pub mod replay;
pub mod ring;
pub mod seqlock;

pub use layout::{Layout, PeerSlot, SessionRecord, SessionSlot};
pub use region::{Region, ShmError};
pub use ring::Ring;
