//! Benchmarks and the gateway load generator (see `../shared/design.md` §6).
//!
//! The micro-benchmarks live with their crates (`aead-batch`, `allowedips`); this crate holds
//! the gateway benchmark's parts, used by `src/bin/wgxdp-loadgen.rs` and `bench/gateway`:
//!
//! - [`peers`]: N deterministic peer identities (keys from a seed, tunnel addresses) and the
//!   `[Peer]` stanzas the gateway under test is configured with;
//! - [`handshake`]: real Noise_IKpsk2 handshakes as those N peers over one UDP socket;
//! - [`inner`] and [`sizes`]: the inner IPv4/UDP packets (64, 512, 1420 bytes, IMIX) with a
//!   sequence number the sink verifies;
//! - [`pool`]: data messages sealed ahead of the timed window, counters increasing per session;
//! - [`mmsg`]: `sendmmsg`/`recvmmsg` batches (the crate's only `unsafe`);
//! - [`afxdp`]: the faster transmit path: the same messages in Ethernet frames through an
//!   AF_XDP socket (copy mode), for when `sendmmsg` and not the gateway would set the rate;
//! - [`netdev`]: interface packet counters, the sink's count when its socket cannot keep up;
//! - [`sink`]: the LAN-side receiver that counts and verifies;
//! - [`outbound`]: the other direction: plaintext from the LAN side to every peer, opened and
//!   counted by the generator;
//! - [`netns`]: opening a socket inside a named network namespace;
//! - [`ceiling`]: what the ceiling forwarders share (arguments, steering, re-addressing).
//!
//! Results are kept in `bench/RESULTS.md` with the command, date and machine of each run.

pub mod afxdp;
pub mod ceiling;
pub mod handshake;
pub mod inner;
pub mod mmsg;
pub mod netdev;
pub mod netns;
pub mod outbound;
pub mod peers;
pub mod pool;
pub mod sink;
pub mod sizes;
