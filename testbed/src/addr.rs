//! Interface addresses (`198.18.0.1/24`) and the testbed's address plan.
//!
//! The plan uses only ranges reserved for benchmarking, 198.18.0.0/15 (RFC 2544) and
//! 2001:2::/48 (RFC 5180): nothing a test sends can mean a real host, and every address lives
//! on an interface inside a namespace the test created. Namespaces are private, so every test
//! may use the same plan without colliding with another.

use crate::error::{Error, Result};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// An address with its prefix length, as `ip addr add` and `wg allowed-ips` take it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IfAddr {
    pub ip: IpAddr,
    pub prefix_len: u8,
}

impl IfAddr {
    /// Panics (at compile time in a `const`) if the prefix is longer than the address.
    pub const fn new(ip: IpAddr, prefix_len: u8) -> Self {
        let max = match ip {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        assert!(prefix_len <= max, "prefix longer than the address");
        IfAddr { ip, prefix_len }
    }

    pub const fn v4(ip: Ipv4Addr, prefix_len: u8) -> Self {
        IfAddr::new(IpAddr::V4(ip), prefix_len)
    }

    pub const fn v6(ip: Ipv6Addr, prefix_len: u8) -> Self {
        IfAddr::new(IpAddr::V6(ip), prefix_len)
    }

    /// The same address as a host route (/32 or /128), the usual allowed-ips of one peer.
    pub const fn host(self) -> Self {
        match self.ip {
            IpAddr::V4(_) => IfAddr::new(self.ip, 32),
            IpAddr::V6(_) => IfAddr::new(self.ip, 128),
        }
    }

    pub const fn is_ipv6(&self) -> bool {
        self.ip.is_ipv6()
    }
}

impl fmt::Display for IfAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.ip, self.prefix_len)
    }
}

impl FromStr for IfAddr {
    type Err = Error;

    /// `addr/len`; a bare address is a host route.
    fn from_str(s: &str) -> Result<Self> {
        let bad = |detail: &str| Error::Parse {
            what: "interface address",
            detail: format!("{s:?}: {detail}"),
        };
        let (ip, len) = match s.split_once('/') {
            Some((ip, len)) => (ip, Some(len)),
            None => (s, None),
        };
        let ip: IpAddr = ip.parse().map_err(|_| bad("not an IP address"))?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let prefix_len = match len {
            None => max,
            Some(len) => len.parse().map_err(|_| bad("prefix is not a number"))?,
        };
        if prefix_len > max {
            return Err(bad("prefix longer than the address"));
        }
        Ok(IfAddr { ip, prefix_len })
    }
}

/// The standard addresses. "A" is the side under test (our gateway or protocol core), "B" its
/// peer (wireguard-go, boringtun); WAN carries the encrypted UDP, TUNNEL the inner addresses.
pub mod plan {
    use super::IfAddr;
    use std::net::{Ipv4Addr, Ipv6Addr};

    pub const WAN_A_V4: IfAddr = IfAddr::v4(Ipv4Addr::new(198, 18, 0, 1), 24);
    pub const WAN_B_V4: IfAddr = IfAddr::v4(Ipv4Addr::new(198, 18, 0, 2), 24);
    pub const WAN_A_V6: IfAddr = IfAddr::v6(Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 1), 64);
    pub const WAN_B_V6: IfAddr = IfAddr::v6(Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 2), 64);

    pub const TUNNEL_A_V4: IfAddr = IfAddr::v4(Ipv4Addr::new(198, 19, 0, 1), 24);
    pub const TUNNEL_B_V4: IfAddr = IfAddr::v4(Ipv4Addr::new(198, 19, 0, 2), 24);
    pub const TUNNEL_A_V6: IfAddr = IfAddr::v6(Ipv6Addr::new(0x2001, 2, 0, 1, 0, 0, 0, 1), 64);
    pub const TUNNEL_B_V6: IfAddr = IfAddr::v6(Ipv6Addr::new(0x2001, 2, 0, 1, 0, 0, 0, 2), 64);

    /// WireGuard's customary port. Each namespace has its own port space.
    pub const WG_PORT: u16 = 51820;

    // The gateway topology (`crate::Topology`). Its WAN segment is the one above: the
    // gateway is A (.1, ::1), a load generator cabled straight to it is B (.2, ::2), peers on
    // the switch are .10 + i and ::10 + i (hex). The LAN segment is 198.18.1.0/24 and
    // 2001:2:0:2::/64, the gateway .1 and the server .2. The tunnel addresses (TUNNEL_*, the
    // peers' inner addresses) are what the server routes to the gateway.

    pub const LAN_GW_V4: IfAddr = IfAddr::v4(Ipv4Addr::new(198, 18, 1, 1), 24);
    pub const LAN_SRV_V4: IfAddr = IfAddr::v4(Ipv4Addr::new(198, 18, 1, 2), 24);
    pub const LAN_GW_V6: IfAddr = IfAddr::v6(Ipv6Addr::new(0x2001, 2, 0, 2, 0, 0, 0, 1), 64);
    pub const LAN_SRV_V6: IfAddr = IfAddr::v6(Ipv6Addr::new(0x2001, 2, 0, 2, 0, 0, 0, 2), 64);

    /// The tunnel subnets, as routes (the server's, towards the gateway).
    pub const TUNNEL_NET_V4: IfAddr = IfAddr::v4(Ipv4Addr::new(198, 19, 0, 0), 24);
    pub const TUNNEL_NET_V6: IfAddr = IfAddr::v6(Ipv6Addr::new(0x2001, 2, 0, 1, 0, 0, 0, 0), 64);

    /// How many peers fit on the WAN segment after the first peer address (.10 to .254).
    pub const MAX_WAN_PEERS: usize = 245;
    const FIRST_WAN_PEER: u8 = 10;

    /// Peer `i`'s IPv4 address on the WAN segment, `198.18.0.(10 + i)/24`. Panics beyond
    /// [`MAX_WAN_PEERS`].
    pub fn wan_peer_v4(i: usize) -> IfAddr {
        IfAddr::v4(Ipv4Addr::new(198, 18, 0, wan_peer_host(i)), 24)
    }

    /// Peer `i`'s IPv6 address on the WAN segment, `2001:2::(0x10 + i)/64`.
    pub fn wan_peer_v6(i: usize) -> IfAddr {
        let host = u16::from(wan_peer_host(i)) - u16::from(FIRST_WAN_PEER) + 0x10;
        IfAddr::v6(Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, host), 64)
    }

    fn wan_peer_host(i: usize) -> u8 {
        u8::try_from(i)
            .ok()
            .filter(|_| i < MAX_WAN_PEERS)
            .map(|i| FIRST_WAN_PEER + i)
            .unwrap_or_else(|| panic!("peer {i}: at most {MAX_WAN_PEERS} on the WAN segment"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        for s in ["198.18.0.1/24", "2001:2::1/64", "0.0.0.0/0", "::/0"] {
            assert_eq!(s.parse::<IfAddr>().unwrap().to_string(), s);
        }
        assert_eq!("198.19.0.1".parse::<IfAddr>().unwrap().prefix_len, 32);
        assert_eq!("2001:2::1".parse::<IfAddr>().unwrap().prefix_len, 128);
    }

    #[test]
    fn rejects_malformed() {
        for s in [
            "",
            "198.18.0.1/33",
            "2001:2::1/129",
            "host/24",
            "1.2.3.4/x",
            "1.2.3.4/",
        ] {
            assert!(s.parse::<IfAddr>().is_err(), "{s:?} accepted");
        }
    }

    #[test]
    fn wan_peer_addresses() {
        assert_eq!(plan::wan_peer_v4(0).to_string(), "198.18.0.10/24");
        assert_eq!(plan::wan_peer_v6(0).to_string(), "2001:2::10/64");
        assert_eq!(plan::wan_peer_v6(10).to_string(), "2001:2::1a/64");
        let last = plan::MAX_WAN_PEERS - 1;
        assert_eq!(plan::wan_peer_v4(last).to_string(), "198.18.0.254/24");
        assert_eq!(plan::wan_peer_v6(last).to_string(), "2001:2::104/64");
    }

    #[test]
    #[should_panic(expected = "at most 245")]
    fn too_many_wan_peers() {
        plan::wan_peer_v4(plan::MAX_WAN_PEERS);
    }

    #[test]
    fn host_routes() {
        assert_eq!(plan::TUNNEL_A_V4.host().to_string(), "198.19.0.1/32");
        assert_eq!(plan::TUNNEL_A_V6.host().to_string(), "2001:2:0:1::1/128");
    }
}
