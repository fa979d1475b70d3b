//! The sans-IO WireGuard protocol core shared by the control process and the data path.
//!
//! Nothing here performs I/O, reads a clock or draws global randomness: time arrives as a
//! [`time::Now`] argument, randomness from an injected [`rand_core::CryptoRngCore`], and every
//! output is written into a buffer the caller owns. That makes the whole protocol testable on a
//! fake clock (see `device/simulation_tests.rs`) and lets the same code run in the control process and
//! in the workers. The module list follows the whitepaper's vocabulary.
#![forbid(unsafe_code)]

pub mod allowedips;
pub mod constants;
pub mod cookie;
pub mod crypto;
pub mod data;
pub mod device;
pub mod keypair;
pub mod keys;
pub mod messages;
pub mod noise;
pub mod peer;
pub mod ratelimiter;
pub mod replay;
pub mod time;
pub mod timers;
pub mod timestamp;
pub mod wire;

#[cfg(test)]
mod testutil;
