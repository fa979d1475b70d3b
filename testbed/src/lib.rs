//! The testbed: real hosts simulated by network namespaces, cabled with veth pairs, with the
//! reference WireGuard implementations as peers. Integration tests of every crate use it.
//!
//! - [`Netns`]: a uniquely named namespace, deleted on drop (also when the test panics);
//!   [`Netns::run_in`] runs a closure inside it, e.g. to bind a `UdpSocket` there.
//! - [`VethPair`]: a cable between two namespaces, addressed from the [`plan`].
//! - [`Topology`]: the gateway's hosts (gateway, server, peers or a load generator) in one
//!   call; `testbed-topo` builds the same for shell scripts.
//! - [`WireguardGo`]: a wireguard-go peer in a namespace, configured with `wg`;
//!   [`WireguardGo::wg_show_dump`] tells whether a handshake happened.
//! - [`Privilege`], [`skip_or_fail`], [`require_netns`], [`require_wireguard_go`]: tests that
//!   need root skip visibly on a developer's machine and fail in CI
//!   (`WGXDP_REQUIRE_PRIVILEGED=1`).
//!
//! A test of our side against wireguard-go:
//!
//! ```no_run
//! use std::net::{SocketAddr, UdpSocket};
//! use std::time::Duration;
//! use testbed::{plan, Netns, VethPair, WgConfig, WgPeer, WireguardGo};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! if !testbed::require_wireguard_go() {
//!     return Ok(()); // skipped, and said so
//! }
//! let ours = Netns::new("ours")?;
//! let theirs = Netns::new("wggo")?;
//! let wan = VethPair::wan(&ours, &theirs)?;
//! // Bound inside `ours`; usable from this thread afterwards.
//! let sock = ours.run_in(|| UdpSocket::bind(SocketAddr::new(wan.a.v4().into(), 0)))?;
//!
//! let our_public_key = "...base64 from proto::keys...";
//! let peer = WireguardGo::start(
//!     &theirs,
//!     WgConfig {
//!         addrs: vec![plan::TUNNEL_B_V4, plan::TUNNEL_B_V6],
//!         peers: vec![WgPeer {
//!             allowed_ips: vec![plan::TUNNEL_A_V4.host(), plan::TUNNEL_A_V6.host()],
//!             endpoint: Some(sock.local_addr()?),
//!             ..WgPeer::new(our_public_key)
//!         }],
//!         ..WgConfig::default()
//!     },
//! )?;
//! let their_endpoint = SocketAddr::new(wan.b.v4().into(), peer.listen_port());
//! // ... our protocol core handshakes with `their_endpoint` over `sock` ...
//! theirs.ping(plan::TUNNEL_A_V4.ip, 1, Duration::from_secs(5))?;
//! let status = peer.wait_for_handshake(our_public_key, Duration::from_secs(5))?;
//! assert!(status.rx_bytes > 0);
//! # Ok(())
//! # }
//! ```

mod addr;
mod cmd;
mod error;
mod names;
mod netns;
mod privilege;
mod site;
mod topology;
mod veth;
pub mod wg;
mod wireguard_go;

pub use addr::{plan, IfAddr};
pub use cmd::find_tool;
pub use error::{Error, Result};
pub use names::{IFNAMSIZ_MAX, NETNS_PREFIX};
pub use netns::{delete_owned_by, run_in_netns, sweep_stale, Netns, NETNS_DIR};
pub use privilege::{
    note_skip, require_netns, require_tools, require_wireguard_go, skip_or_fail, Privilege,
    REQUIRE_ENV, SKIP_LOG_ENV, TUN_DEVICE,
};
pub use site::{Site, SiteToSite, LINK, SITE_A, SITE_B};
pub use topology::{Host, Switch, Topology, TopologyBuilder, WanSide};
pub use veth::{VethBuilder, VethEnd, VethPair};
pub use wg::{WgDump, WgKeypair, WgPeerStatus};
pub use wireguard_go::{WgConfig, WgPeer, WireguardGo, UAPI_DIR};
