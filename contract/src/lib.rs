//! The contract between the control process and the data path (design §2).
//!
//! Both sides depend on this crate and not on each other: control does not link the data
//! path's AF_XDP, BPF or netlink code, and the data path does not link control's. What they
//! share is here, and only here:
//!
//! - the shared region ([`Region`], laid out by [`layout`]): sessions, peers, the
//!   receiver-index table ([`index`]), the allowed-IPs table (the `allowedips` crate's,
//!   which lives in the region) and the prefix log ([`prefix_log`]), the workers' counters;
//! - the seqlock every multi-word record is published with ([`seqlock`]);
//! - the event rings from the workers to control ([`ring`]) and the one typed event they
//!   carry ([`event::WorkerEvent`]);
//! - the shared replay window of a session ([`replay`]);
//! - why a worker dropped a packet ([`DropReason`]);
//! - the clock every timestamp in the region is read from ([`clock`]).
//!
//! Control creates the region (a file, mode 0600) and is its only writer of configuration:
//! sessions (keys, indices, peer, birth), peers (endpoint), and the allowed-IPs table. Workers
//! map it and read those lock-free, and write only atomics they own: sending counters,
//! activity times, byte counters, and their event rings to control.
//!
//! Everything in the region is position-independent (offsets and slot numbers, never
//! pointers) and made of `#[repr(C)]` atomics, so two processes can map it at different
//! addresses and no access is ever a data race. Readers of multi-word records use the seqlock
//! in each record; a torn read is detected and retried, never used. All `unsafe` of the region
//! is in [`region`]: mapping the file and viewing it as the typed layout.

pub mod clock;
pub mod drop;
pub mod event;
pub mod index;
pub mod layout;
pub mod prefix_log;
pub mod region;
pub mod replay;
pub mod ring;
pub mod seqlock;

pub use drop::DropReason;
pub use event::WorkerEvent;
pub use layout::{Layout, PeerRecord, PeerSlot, SessionRecord, SessionSlot, NO_SLOT};
pub use region::{Region, ShmError, Status};
pub use ring::Ring;
