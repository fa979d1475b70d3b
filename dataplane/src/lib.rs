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

/// The data path's BPF ABI must fit the region's room for the XDP verdict counters.
const _: () = assert!(ebpf::abi::Verdict::COUNT <= contract::layout::XDP_VERDICT_SLOTS);
