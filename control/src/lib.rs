//! The control plane of wgxdp: everything that turns what an operator writes into the state
//! the data plane runs on, and nothing on the per-packet path.
//!
//! [`config`] reads and writes `wg(8)` / `wg-quick(8)` configuration files.

pub mod authlog;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod ifname;
pub mod metrics;
pub mod peers;
pub mod rng;
pub mod service;
pub mod uapi;

pub use ifname::{InterfaceName, InvalidInterfaceName};

/// How logs name a peer: the first 8 characters of its public key's base64, as short as a
/// person can still match against `wg show` (a public key; no log line ever holds a secret).
pub fn short_key(key: &proto::keys::PublicKey) -> String {
    let mut s = key.to_base64();
    s.truncate(8);
    s
}
