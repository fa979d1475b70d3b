//! The XDP/AF_XDP data path: one pinned worker per queue that receives a batch, classifies,
//! opens or seals it, checks allowed IPs and transmits (see `../shared/design.md` §1–3).
//!
//! Built so far: [`xdp`], which loads the steering programs, attaches them and keeps their
//! maps (listen port, AF_XDP sockets, peer prefixes, local addresses) in step. The workers
//! come next.

pub mod daemon;
pub mod drop;
pub mod kernel;
pub mod neigh;
pub mod packet;
pub mod shm;
pub mod worker;
pub mod xdp;
pub mod xsk;
