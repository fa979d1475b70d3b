//! Cryptokey routing at provider scale: the allowed-IPs table of the data path.
//!
//! Every packet does one longest-prefix match: outbound to pick the peer by destination,
//! inbound to check that the inner source belongs to the peer that sent it (whitepaper §2). This
//! crate keeps the kernel's semantics (`drivers/net/wireguard/allowedips.c`): a prefix belongs to
//! exactly one peer and inserting it for another moves it, host bits are cleared, one prefix or
//! all of a peer's prefixes can be removed, and a peer's prefixes list in canonical order.
//!
//! # Structure
//!
//! A poptrie-style multibit trie per address family (`fib.rs`): a 2^16-slot directory on the
//! top bits, then nodes of 64 children with a bitmap of internal children and a run-length
//! compressed leaf array, both indexed by popcount; plus path-compressed "singleton" leaves for
//! regions holding a single longer prefix (a peer's /32 or /128). It was chosen by measurement
//! against DIR-24-8 ([`dir24_8`]): see `bench/RESULTS.md`.
//!
//! # Concurrency
//!
//! One writer ([`AllowedIps`], the control process) and any number of readers ([`Reader`], the
//! workers, up to [`MAX_READERS`]). The writer never modifies words a reader can reach: it
//! path-copies the changed part of one directory slot into free blocks and publishes it with one
//! atomic store (`update.rs`), so a lookup sees the table before or after an update, never a
//! mix. Replaced blocks return to the free lists after a grace period (epoch-based reclamation,
//! `epoch.rs`); a reader's pin is one swap and a fence, and nothing a reader does waits for the
//! writer. When the arena runs out of room, the writer rebuilds a larger one and swaps it in
//! whole through [`arc_swap`], which frees the old one when its last reader lets go.
//!
//! # Shared memory
//!
//! The arena is position-independent: the directory, nodes, leaf runs and singletons are flat
//! arrays of 64- and 32-bit words that refer to each other by index, and the epoch and reader
//! slots are plain words too. In the two-process design (design.md §2) they become sections of
//! the region control creates; the `ArcSwap` of a whole arena becomes an "active arena" word
//! choosing between two such sections. The writer-side map and allocator stay in control.

#![forbid(unsafe_code)]

mod build;
pub mod dir24_8;
mod epoch;
mod fib;
mod key;
pub mod reference;
mod table;
mod update;
pub mod workload;

pub use epoch::MAX_READERS;
pub use key::Key;
pub use proto::allowedips::Prefix;
pub use reference::Reference;
pub use table::{AllowedIps, Error, PeerId, Reader, Snapshot, Stats, MAX_PEER_ID};
pub use update::ArenaStats;

#[cfg(test)]
mod tests;
