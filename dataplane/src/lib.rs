//! The XDP/AF_XDP data path: one pinned worker per queue that receives a batch, classifies,
//! opens or seals it, checks allowed IPs and transmits (see `../shared/design.md` §1–3).
//!
//! Not built yet: it lands with the data-path issue. Until then this crate only fixes its place
//! in the workspace; the protocol pieces it will use (message views, keypairs, the replay
//! window, padding and the reference seal/open) are in `proto`.
