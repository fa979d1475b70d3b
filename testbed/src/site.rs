//! The whitepaper's topology: two sites joined by one link, a tunnel end at each, as in
//! WireGuard's performance comparison (two hosts and a gigabit link between them).
//!
//! ```text
//!   a ---------- [ga] ====== (link) ====== [gb] ---------- b
//!   198.18.1.2   .1.1 | 198.18.0.1     .0.2 | .2.1   198.18.2.2
//!       site A          the link (WAN)          site B
//! ```
//!
//! The link is a bridge in a namespace of its own (`link`, ports `port-a` and `port-b`), so that it can
//! be shaped where every implementation's packets pass a queueing discipline: a tunnel end
//! that transmits with AF_XDP (wgxdp) bypasses its own interface's qdisc, and its XDP program
//! takes what it receives before any ingress qdisc, so shaping at the ends would shape the
//! others and not it.
//!
//! The hosts route the other site's subnet to their tunnel end; the tunnel ends route nothing
//! until the implementation under test (started by the caller on `wan` and `lan` in `ga` and
//! `gb`) does. Every namespace is a [`Netns`] guard, as in [`crate::Topology`].

use crate::addr::IfAddr;
use crate::error::Result;
use crate::netns::Netns;
use crate::veth::{VethEnd, VethPair};
use std::net::Ipv4Addr;

/// Site A's subnet, site B's, and the link's.
pub const SITE_A: IfAddr = IfAddr::v4(Ipv4Addr::new(198, 18, 1, 0), 24);
pub const SITE_B: IfAddr = IfAddr::v4(Ipv4Addr::new(198, 18, 2, 0), 24);
pub const LINK: IfAddr = IfAddr::v4(Ipv4Addr::new(198, 18, 0, 0), 24);

/// One site: its host and its tunnel end, with their cable.
#[derive(Debug)]
pub struct Site {
    /// The host (`a` or `b`), its interface `lan`.
    pub host: Netns,
    pub host_if: VethEnd,
    /// The tunnel end (`ga` or `gb`): `lan` to the host, `wan` on the link.
    pub gw: Netns,
    pub gw_lan: VethEnd,
    pub gw_wan: VethEnd,
}

/// Both sites and the link between their tunnel ends.
#[derive(Debug)]
pub struct SiteToSite {
    pub a: Site,
    pub b: Site,
    /// The link: a bridge `wgbr` whose ports `port-a` and `port-b` face the tunnel ends (shape their
    /// egress to shape the link).
    pub link: Netns,
}

fn at(net: IfAddr, host: u8) -> IfAddr {
    match net.ip {
        std::net::IpAddr::V4(v4) => {
            let o = v4.octets();
            IfAddr::v4(Ipv4Addr::new(o[0], o[1], o[2], host), net.prefix_len)
        }
        std::net::IpAddr::V6(_) => net,
    }
}

impl SiteToSite {
    /// Builds it; namespaces are named after `owner` when given (see [`Netns::new_owned_by`]).
    pub fn create(owner: Option<u32>) -> Result<SiteToSite> {
        let netns = |label: &str| match owner {
            Some(o) => Netns::new_owned_by(label, o),
            None => Netns::new(label),
        };
        let (a, ga, gb, b) = (netns("a")?, netns("ga")?, netns("gb")?, netns("b")?);
        let cable = |x: &Netns, y: &Netns, names: (&str, &str), addrs: (IfAddr, IfAddr)| {
            VethPair::builder(x, y)
                .names(names.0, names.1)
                .a_addrs(&[addrs.0])
                .b_addrs(&[addrs.1])
                .create()
                .map(VethPair::into_ends)
        };
        let (a_if, ga_lan) = cable(&a, &ga, ("lan", "lan"), (at(SITE_A, 2), at(SITE_A, 1)))?;
        let link = netns("link")?;
        let port = |gw: &Netns, name: &str, addr: IfAddr| {
            VethPair::builder(gw, &link)
                .names("wan", name)
                .a_addrs(&[addr])
                .create()
                .map(VethPair::into_ends)
        };
        let (ga_wan, _) = port(&ga, "port-a", at(LINK, 1))?;
        let (gb_wan, _) = port(&gb, "port-b", at(LINK, 2))?;
        link.ip(["link", "add", "name", "wgbr", "type", "bridge"])?;
        for p in ["port-a", "port-b"] {
            link.ip(["link", "set", "dev", p, "master", "wgbr"])?;
        }
        link.ip(["link", "set", "dev", "wgbr", "up"])?;
        let (gb_lan, b_if) = cable(&gb, &b, ("lan", "lan"), (at(SITE_B, 1), at(SITE_B, 2)))?;
        for (host, other, via) in [(&a, SITE_B, at(SITE_A, 1)), (&b, SITE_A, at(SITE_B, 1))] {
            host.ip([
                "route",
                "add",
                &other.to_string(),
                "via",
                &via.ip.to_string(),
            ])?;
        }
        for gw in [&ga, &gb] {
            gw.exec(["sysctl", "-qw", "net.ipv4.ip_forward=1"])?;
        }
        Ok(SiteToSite {
            a: Site {
                host: a,
                host_if: a_if,
                gw: ga,
                gw_lan: ga_lan,
                gw_wan: ga_wan,
            },
            b: Site {
                host: b,
                host_if: b_if,
                gw: gb,
                gw_lan: gb_lan,
                gw_wan: gb_wan,
            },
            link,
        })
    }

    /// Gives up the guards: the namespaces outlive this value (the script deletes them).
    pub fn release(self) -> Vec<String> {
        [self.a.host, self.a.gw, self.link, self.b.gw, self.b.host]
            .into_iter()
            .map(Netns::release)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sites_reach_their_tunnel_ends_and_not_each_other() {
        if !crate::require_netns() {
            return;
        }
        let s = SiteToSite::create(None).unwrap();
        let deadline = std::time::Duration::from_secs(2);
        assert!(s
            .a
            .host
            .ping(at(SITE_A, 1).ip, 1, deadline)
            .unwrap()
            .status
            .success());
        assert!(s
            .b
            .host
            .ping(at(SITE_B, 1).ip, 1, deadline)
            .unwrap()
            .status
            .success());
        assert!(s
            .a
            .gw
            .ping(at(LINK, 2).ip, 1, deadline)
            .unwrap()
            .status
            .success());
        // Nothing routes between the sites until a tunnel does.
        let ping =
            s.a.host
                .ping(at(SITE_B, 2).ip, 1, std::time::Duration::from_millis(500));
        assert!(ping.is_err(), "site B answered with no tunnel: {ping:?}");
    }
}
