//! The XDP/AF_XDP data path: one pinned worker per queue that receives a batch, classifies,
//! opens or seals it, checks allowed IPs and transmits (see `../shared/design.md` §1–3).
//!
//! - [`xdp`] loads the steering programs, attaches them and keeps their maps (listen port,
//!   AF_XDP sockets, peer prefixes, local addresses) in step.
//! - [`worker`] is the batch core; it moves owned frames over a [`link::Link`]: AF_XDP
//!   ([`xsk`]) in production, with the gateway's own interface (wg0, a multi-queue TUN device,
//!   [`xsk::tun`]) as its local side; an in-memory fake in tests.
//! - [`daemon`] is the data-path process: it attaches everything, starts the workers on the
//!   shared region (the `contract` crate) and detaches on exit.
//! - [`neigh`] learns next hops from the kernel; [`kernel`] hands a packet to the kernel's
//!   stack when the next hop's MAC is not known yet.

pub mod daemon;
pub mod frame;
pub mod kernel;
pub mod link;
pub mod neigh;
pub mod offload;
pub mod packet;
pub mod prefixes;
pub mod socket_link;
pub mod worker;
pub mod xdp;
pub mod xsk;

/// Maps and sets the workers consult per packet. std's default hasher (SipHash-1-3) took
/// about 9% of a worker's time in a 64-byte profile; foldhash is several times cheaper and
/// seeded per process, which is enough here: the keys of these maps are put in by control
/// and the resolver (sessions, next hops), bounded in number, and a packet's own fields only
/// look up.
pub type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
/// See [`FastMap`].
pub type FastSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;

/// The data path's BPF ABI must fit the region's room for the XDP verdict counters.
const _: () = assert!(ebpf::abi::Verdict::COUNT <= contract::layout::XDP_VERDICT_SLOTS);
