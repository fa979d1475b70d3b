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
//! A poptrie-style multibit trie per address family (`fib.rs`; Asai and Ohara, SIGCOMM 2015): a
//! directory indexed by the top bits (20 bits for both families), then nodes of 64 children with
//! a bitmap of internal children and a run-length compressed leaf array, both indexed by
//! popcount; plus path-compressed "singleton" leaves for a region holding a single longer
//! prefix (a peer's /32 or /128, or a lone routed prefix; 16 bytes, IPv6 ones keeping only the
//! prefix bits the path above has not already matched), and path-compressed nodes that skip up
//! to four single-child levels (the bits from a directory slot down to a /64 pool of peers'
//! /128s). Each prefix is stored once, in the node whose stride holds its last bit; "nothing
//! here" inherits from above, so a change touches one node and the path above it.
//!
//! Lookups are meant to come in batches ([`Snapshot::lookup_v4_batch`]): up to 128 lookups
//! advance together one level per round, all lanes' loads of a round issued before any is
//! used, with selects instead of branches and finished lanes compacted away. At a million
//! prefixes the structure is larger than the caches, and that overlap of cache misses is what
//! makes it fast.
//!
//! Chosen by measurement against DIR-24-8 ([`dir24_8`]) on the provider workload (100k peers,
//! about 1M prefixes; `bench/RESULTS.md`): DIR-24-8 looks up IPv4 several times faster but
//! needs about 350 bytes per prefix (a 64 MiB first level and 1 KiB per /24 holding a host
//! route), has no IPv6 form and no cheap incremental update; the poptrie needs under 30 (IPv4)
//! and under 45 (IPv6) bytes per prefix, updates by path copying, and serves both families with
//! one code path. The trie's popcounts compile to a bit-twiddling sequence on the baseline
//! x86-64 target, so batch lookups are compiled again for CPUs with `popcnt` (and BMI) and
//! chosen at run time (the `multiversion` crate): about 9% fewer instructions per IPv4 lookup
//! and 10% per IPv6 one (`bench/RESULTS.md`). Single lookups ([`Snapshot::lookup`]) stay on
//! the baseline: a dispatch per call would cost about what it saves.
//!
//! # Concurrency
//!
//! One writer ([`AllowedIps`], the control process) and any number of readers ([`Reader`], the
//! workers, up to [`MAX_READERS`]). The writer never modifies words a reader can reach: it
//! path-copies the changed part of one directory slot into free blocks and publishes it with one
//! atomic store (`update.rs`), so a lookup sees the table before or after an update, never a
//! mix. (An update of a prefix no longer than the directory's bits changes the default of
//! every directory slot it covers, one atomic store each: each lookup still reads one slot and
//! so answers from the old or the new table. [`AllowedIps::remove_by_peer`] is one update per
//! prefix, as in the kernel.) Why not a seqlock: a reader would retry while the writer is
//! mid-update, i.e. wait for it. Why not a copy of the whole table per update: each update
//! would cost the table's size. Path copying publishes in O(depth) and keeps readers on plain
//! loads. Replaced blocks return to the free lists after a grace period (epoch-based
//! reclamation, `epoch.rs`); a reader's pin is one swap and a fence, and nothing a reader does
//! waits for the writer.
//!
//! # Memory
//!
//! The table lives in a [`Memory`] of fixed size ([`Capacity`], from a number of prefixes):
//! the process's heap ([`HeapMemory`]) or the region control shares with the data path
//! (`contract::Region`), where control writes and the workers read the same words. Everything
//! is position-independent (blocks refer to each other by index) and valid when zeroed (the
//! directory is stored complemented), so a fresh mapping is an empty table. Each family has
//! two sections: when the active one runs out of room, and to compact, the writer builds the
//! family into the other one and switches the family's `active` word; a reader picks the
//! section when it pins, and the writer reuses a section only after the readers that pinned
//! before the switch are done. A change that fits in neither is refused ([`Error::Full`]): the
//! table is bounded. A new writer (a restarted control) builds its table into the other
//! sections and switches the readers to it whole.

#![forbid(unsafe_code)]

mod build;
pub mod dir24_8;
mod epoch;
mod fib;
mod key;
mod memory;
pub mod reference;
mod table;
mod update;
pub mod workload;

pub use epoch::MAX_READERS;
pub use key::Key;
pub use memory::{
    reset_readers, Arrays, Capacity, Dims, HeapMemory, Memory, ReaderSlot, Shared, TableHeader,
    DIR_SLOTS,
};
pub use proto::allowedips::Prefix;
pub use reference::Reference;
pub use table::{
    AllowedIps, Error, PeerId, Reader, Snapshot, Stats, DEFAULT_CAPACITY, MAX_PEER_ID,
};
pub use update::ArenaStats;

#[cfg(test)]
mod tests;
