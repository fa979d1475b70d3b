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
pub mod service;
pub mod uapi;

pub use ifname::{InterfaceName, InvalidInterfaceName};
