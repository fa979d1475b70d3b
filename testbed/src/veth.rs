//! A veth pair: a cable between two namespaces.

use crate::addr::{plan, IfAddr};
use crate::cmd::ip_n;
use crate::error::Result;
use crate::names;
use crate::netns::Netns;
use std::net::{Ipv4Addr, Ipv6Addr};

/// One end of a veth pair: which namespace it is in, its name there, its addresses.
#[derive(Debug, Clone)]
pub struct VethEnd {
    pub netns: String,
    pub ifname: String,
    pub addrs: Vec<IfAddr>,
}

impl VethEnd {
    /// The first IPv4 address of this end. Panics if it has none (a mistake in the test).
    pub fn v4(&self) -> Ipv4Addr {
        self.addrs
            .iter()
            .find_map(|a| match a.ip {
                std::net::IpAddr::V4(ip) => Some(ip),
                std::net::IpAddr::V6(_) => None,
            })
            .unwrap_or_else(|| panic!("{} in {} has no IPv4 address", self.ifname, self.netns))
    }

    /// The first IPv6 address of this end. Panics if it has none (a mistake in the test).
    pub fn v6(&self) -> Ipv6Addr {
        self.addrs
            .iter()
            .find_map(|a| match a.ip {
                std::net::IpAddr::V6(ip) => Some(ip),
                std::net::IpAddr::V4(_) => None,
            })
            .unwrap_or_else(|| panic!("{} in {} has no IPv6 address", self.ifname, self.netns))
    }
}

/// A veth pair between namespace A (end `a`) and namespace B (end `b`), both ends up and
/// addressed. Dropping it deletes the pair; deleting either namespace does too.
#[derive(Debug)]
pub struct VethPair {
    pub a: VethEnd,
    pub b: VethEnd,
}

/// Options for [`VethPair`]; see [`VethPair::builder`].
#[derive(Debug)]
pub struct VethBuilder<'a> {
    a: &'a Netns,
    b: &'a Netns,
    names: Option<(String, String)>,
    a_addrs: Vec<IfAddr>,
    b_addrs: Vec<IfAddr>,
    queues: Option<u16>,
}

impl VethPair {
    /// A pair with the given addresses on each end.
    pub fn new(a: &Netns, a_addrs: &[IfAddr], b: &Netns, b_addrs: &[IfAddr]) -> Result<VethPair> {
        VethPair::builder(a, b)
            .a_addrs(a_addrs)
            .b_addrs(b_addrs)
            .create()
    }

    /// The standard WAN segment of [`plan`]: A has 198.18.0.1/24 and 2001:2::1/64, B has .2
    /// and ::2.
    pub fn wan(a: &Netns, b: &Netns) -> Result<VethPair> {
        VethPair::new(
            a,
            &[plan::WAN_A_V4, plan::WAN_A_V6],
            b,
            &[plan::WAN_B_V4, plan::WAN_B_V6],
        )
    }

    /// The two ends, giving up the guard: the pair then lives as long as both namespaces
    /// (deleting either deletes it), which is what a whole topology of namespaces wants.
    pub fn into_ends(self) -> (VethEnd, VethEnd) {
        let mut this = std::mem::ManuallyDrop::new(self);
        // Nothing is left behind: both ends are moved out, replaced by empty values.
        let take = |end: &mut VethEnd| VethEnd {
            netns: std::mem::take(&mut end.netns),
            ifname: std::mem::take(&mut end.ifname),
            addrs: std::mem::take(&mut end.addrs),
        };
        (take(&mut this.a), take(&mut this.b))
    }

    pub fn builder<'a>(a: &'a Netns, b: &'a Netns) -> VethBuilder<'a> {
        VethBuilder {
            a,
            b,
            names: None,
            a_addrs: Vec::new(),
            b_addrs: Vec::new(),
            queues: None,
        }
    }
}

impl VethBuilder<'_> {
    /// Interface names of the two ends (default `veth<n>a`/`veth<n>b`, unique per process).
    /// Each must be unique within its namespace and at most 15 bytes.
    pub fn names(mut self, a: &str, b: &str) -> Self {
        self.names = Some((a.to_owned(), b.to_owned()));
        self
    }

    pub fn a_addrs(mut self, addrs: &[IfAddr]) -> Self {
        self.a_addrs.extend_from_slice(addrs);
        self
    }

    pub fn b_addrs(mut self, addrs: &[IfAddr]) -> Self {
        self.b_addrs.extend_from_slice(addrs);
        self
    }

    /// Receive and transmit queues per end (default: the kernel's, one). An AF_XDP socket
    /// serves one queue, so multi-worker tests need several.
    pub fn queues(mut self, n: u16) -> Self {
        self.queues = Some(n);
        self
    }

    pub fn create(self) -> Result<VethPair> {
        let (a_if, b_if) = self.names.unwrap_or_else(names::veth_pair);
        let queue_args = |args: &mut Vec<String>| {
            if let Some(n) = self.queues {
                let n = n.to_string();
                args.extend(["numtxqueues".into(), n.clone(), "numrxqueues".into(), n]);
            }
        };
        // Created inside A with the peer placed straight into B: the names never exist in
        // the root namespace, where parallel tests would collide.
        let mut args: Vec<String> = vec!["link".into(), "add".into(), a_if.clone()];
        queue_args(&mut args);
        args.extend(
            [
                "type",
                "veth",
                "peer",
                "name",
                &b_if,
                "netns",
                self.b.name(),
            ]
            .map(Into::into),
        );
        queue_args(&mut args);
        self.a.ip(&args)?;
        let pair = VethPair {
            a: VethEnd {
                netns: self.a.name().to_owned(),
                ifname: a_if,
                addrs: self.a_addrs,
            },
            b: VethEnd {
                netns: self.b.name().to_owned(),
                ifname: b_if,
                addrs: self.b_addrs,
            },
        };
        // From here on Drop deletes the pair if configuring it fails.
        //
        // Links up first, addresses second. Measured on 6.18: IPv6 addresses added while the
        // link was down are not answered for the first ~0.5 s after link-up (the peer drops
        // the first neighbour solicitations), so the first IPv6 packet waited a full 1 s
        // retransmission; in this order it goes out at once. IPv4 does not care.
        for end in [&pair.a, &pair.b] {
            ip_n(&end.netns, ["link", "set", &end.ifname, "up"])?;
        }
        for end in [&pair.a, &pair.b] {
            add_addrs(&end.netns, &end.ifname, &end.addrs)?;
        }
        Ok(pair)
    }
}

/// `ip addr add` each address; IPv6 ones with `nodad`, so they are usable at once instead of
/// after a second of duplicate address detection.
pub(crate) fn add_addrs(netns: &str, ifname: &str, addrs: &[IfAddr]) -> Result<()> {
    for addr in addrs {
        let text = addr.to_string();
        let mut args = vec!["addr", "add", text.as_str(), "dev", ifname];
        if addr.is_ipv6() {
            args.push("nodad");
        }
        ip_n(netns, args)?;
    }
    Ok(())
}

impl Drop for VethPair {
    fn drop(&mut self) {
        // Fails harmlessly if a namespace (and with it the pair) is already gone.
        let _ = ip_n(&self.a.netns, ["link", "del", &self.a.ifname]);
    }
}
