//! The gateway topology, written once for every user: the gateway tests (through this API),
//! the demo and the benchmark scripts (through `testbed-topo`, which prints it for the shell).
//!
//! ```text
//!  with a switch (the demo, the tests):            with a host (the benchmarks):
//!
//!  p0 ---\                                         gen --- wan [gw] lan --- srv
//!  p1 ---- br0 (sw) --- wan [gw] lan --- srv       198.18.0.2  .0.1 | .1.1  198.18.1.2
//!  ... --/  198.18.0.0/24      198.18.1.0/24
//!  (one-armed: srv on br0 too, the gateway's LAN address on `wan`, IPv4 only)
//! ```
//!
//! Addresses are the [`plan`]'s (benchmarking ranges only). The server routes the tunnel
//! subnets to the gateway; nothing else is routed, and the gateway forwards only what the
//! gateway under test (started by the caller, on `wan` and `lan`) forwards. Every namespace
//! is a [`Netns`] guard, so the whole topology goes when it is dropped, also when building it
//! fails half-way or the test panics.

use crate::addr::{plan, IfAddr};
use crate::error::{Error, Result};
use crate::netns::Netns;
use crate::veth::{VethEnd, VethPair};

/// The bridge in the switch's namespace.
const BRIDGE: &str = "br0";

/// What the gateway's WAN interface is cabled to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WanSide {
    /// A bridge in a namespace of its own: the gateway, the peers, hosts attached later
    /// ([`Switch::attach`]) and, one-armed, the server share one segment, as behind a switch.
    Switch,
    /// One host (`gen`, the plan's WAN "B" address) cabled straight to the gateway: a load
    /// generator that plays many peers from one address, with nothing in between that could
    /// set the rate instead of the gateway.
    Host,
}

/// A namespace with its one cable into the topology (its interface is `wan` or `lan`).
#[derive(Debug)]
pub struct Host {
    pub ns: Netns,
    pub iface: VethEnd,
}

/// The WAN segment's switch: a bridge that hosts join with one veth each.
#[derive(Debug)]
pub struct Switch {
    pub ns: Netns,
    pub bridge: String,
    owner: Option<u32>,
    host_queues: Option<u16>,
}

/// The built topology. Its parts may be moved out (a test keeps the peers' namespaces next to
/// their wireguard-go); each goes away when it is dropped.
#[derive(Debug)]
pub struct Topology {
    /// The gateway's namespace: `wan` and (two-armed) `lan`, no processes.
    pub gw: Netns,
    pub gw_wan: VethEnd,
    /// `None` when one-armed: the gateway's LAN address is on `wan` then.
    pub gw_lan: Option<VethEnd>,
    /// The server on the LAN side, with routes to the tunnel subnets via the gateway.
    pub srv: Host,
    /// With [`WanSide::Switch`].
    pub switch: Option<Switch>,
    /// With [`WanSide::Host`]: the load generator's host.
    pub generator: Option<Host>,
    /// Peer `i` has the plan's `wan_peer_v4(i)` (and `wan_peer_v6(i)`) on the switch.
    pub peers: Vec<Host>,
    /// Whether the segments have IPv6 addresses besides IPv4.
    pub ipv6: bool,
}

/// How to build a [`Topology`]; see [`Topology::builder`].
#[derive(Debug, Clone)]
pub struct TopologyBuilder {
    wan: WanSide,
    one_armed: bool,
    peers: usize,
    queues: Option<u16>,
    ipv6: bool,
    routes: Option<Vec<IfAddr>>,
    owner: Option<u32>,
}

impl Topology {
    /// Defaults: a switch, two-armed, no peers, IPv4 and IPv6, the kernel's default queues,
    /// the server routing the plan's tunnel subnets, owned by this process.
    pub fn builder() -> TopologyBuilder {
        TopologyBuilder {
            wan: WanSide::Switch,
            one_armed: false,
            peers: 0,
            queues: None,
            ipv6: true,
            routes: None,
            owner: None,
        }
    }

    /// Every namespace of the topology, the gateway's first.
    pub fn namespaces(&self) -> Vec<&str> {
        let mut names = vec![self.gw.name(), self.srv.ns.name()];
        names.extend(self.switch.as_ref().map(|s| s.ns.name()));
        names.extend(self.generator.as_ref().map(|g| g.ns.name()));
        names.extend(self.peers.iter().map(|p| p.ns.name()));
        names
    }

    /// Gives up every guard (see [`Netns::release`]) and returns the namespaces' names: for a
    /// topology built for another process, which deletes it with
    /// [`crate::delete_owned_by`].
    pub fn release(self) -> Vec<String> {
        let mut names = vec![self.gw.release(), self.srv.ns.release()];
        names.extend(self.switch.map(|s| s.ns.release()));
        names.extend(self.generator.map(|g| g.ns.release()));
        names.extend(self.peers.into_iter().map(|p| p.ns.release()));
        names
    }
}

impl TopologyBuilder {
    pub fn wan(mut self, wan: WanSide) -> Self {
        self.wan = wan;
        self
    }

    /// No `lan` interface: the server sits on the WAN segment (needs the switch), and the
    /// LAN side is IPv4 only: the gateway's `wan` gets the plan's LAN IPv4 address besides
    /// its WAN ones, the server just its IPv4 address and route. (A second IPv6 prefix on a
    /// one-armed wgxdp's only interface cuts off its IPv6 peers; measured with
    /// `one_armed_gateway`, whose IPv6 peer then never reaches the server.)
    pub fn one_armed(mut self) -> Self {
        self.one_armed = true;
        self
    }

    /// `k` peer hosts on the switch (at most [`plan::MAX_WAN_PEERS`]).
    pub fn peers(mut self, k: usize) -> Self {
        self.peers = k;
        self
    }

    /// Receive and transmit queues on both ends of the gateway's cables (one AF_XDP worker
    /// per queue); every other cable then gets exactly one. Without this call every cable
    /// has the kernel's default (as many queues as possible CPUs, one of them in use).
    pub fn queues(mut self, n: u16) -> Self {
        self.queues = Some(n);
        self
    }

    /// IPv4 addresses only: the benchmarks send nothing else.
    pub fn ipv4_only(mut self) -> Self {
        self.ipv6 = false;
        self
    }

    /// The subnets the server routes via the gateway, instead of the plan's tunnel subnets
    /// (e.g. a /16 for a load generator's thousands of peers).
    pub fn routes(mut self, routes: &[IfAddr]) -> Self {
        self.routes = Some(routes.to_vec());
        self
    }

    /// Names the namespaces after process `owner` instead of this one (see
    /// [`Netns::new_owned_by`]).
    pub fn owner(mut self, pid: u32) -> Self {
        self.owner = Some(pid);
        self
    }

    pub fn create(self) -> Result<Topology> {
        let routes = self.check()?;
        let (wan_v4, wan_v6) = (plan::WAN_A_V4, plan::WAN_A_V6);
        let (lan_v4, lan_v6) = (plan::LAN_GW_V4, plan::LAN_GW_V6);
        let (srv_v4, srv_v6) = (plan::LAN_SRV_V4, plan::LAN_SRV_V6);
        let gw = self.netns("gw")?;
        let srv_ns = self.netns("srv")?;

        let mut gw_wan_addrs = self.addrs(wan_v4, wan_v6);
        if self.one_armed {
            gw_wan_addrs.push(lan_v4);
        }
        let (gw_wan, switch, generator) = match self.wan {
            WanSide::Switch => {
                let switch = Switch::create(self.netns("sw")?, self.owner, self.host_queues())?;
                let (gw_wan, port) = self
                    .gateway_cable(&gw, &switch.ns, "wan", "gw", &gw_wan_addrs, &[])?
                    .into_ends();
                switch.enslave(&port.ifname)?;
                (gw_wan, Some(switch), None)
            }
            WanSide::Host => {
                let gen = self.netns("gen")?;
                let gen_addrs = self.addrs(plan::WAN_B_V4, plan::WAN_B_V6);
                let (gw_wan, iface) = self
                    .gateway_cable(&gw, &gen, "wan", "wan", &gw_wan_addrs, &gen_addrs)?
                    .into_ends();
                (gw_wan, None, Some(Host { ns: gen, iface }))
            }
        };

        let (gw_lan, srv) = match &switch {
            Some(switch) if self.one_armed => {
                let srv = switch.attach_netns(srv_ns, "srv", &[srv_v4])?;
                (None, srv)
            }
            _ => {
                let lan_addrs = self.addrs(lan_v4, lan_v6);
                let srv_addrs = self.addrs(srv_v4, srv_v6);
                let (gw_lan, iface) = self
                    .gateway_cable(&gw, &srv_ns, "lan", "lan", &lan_addrs, &srv_addrs)?
                    .into_ends();
                (Some(gw_lan), Host { ns: srv_ns, iface })
            }
        };
        // One-armed, the server has no IPv6 address to route from.
        for route in routes.iter().filter(|r| !(self.one_armed && r.is_ipv6())) {
            let via = if route.is_ipv6() {
                lan_v6.ip
            } else {
                lan_v4.ip
            };
            let family = if route.is_ipv6() { "-6" } else { "-4" };
            srv.ns.ip([
                family,
                "route",
                "add",
                &route.to_string(),
                "via",
                &via.to_string(),
            ])?;
        }

        let mut peers = Vec::with_capacity(self.peers);
        if let Some(switch) = &switch {
            for i in 0..self.peers {
                let addrs = self.addrs(plan::wan_peer_v4(i), plan::wan_peer_v6(i));
                peers.push(switch.attach(&format!("p{i}"), &addrs)?);
            }
        }
        Ok(Topology {
            gw,
            gw_wan,
            gw_lan,
            srv,
            switch,
            generator,
            peers,
            ipv6: self.ipv6,
        })
    }

    /// Refuses what cannot be built, before anything is; returns the server's routes.
    fn check(&self) -> Result<Vec<IfAddr>> {
        let invalid = |detail: &str| Err(Error::Topology(detail.to_owned()));
        if self.wan == WanSide::Host && self.one_armed {
            return invalid("one-armed needs the switch: the server shares the WAN segment");
        }
        if self.wan == WanSide::Host && self.peers > 0 {
            return invalid("peer hosts join the switch; a generator host plays its peers");
        }
        if self.peers > plan::MAX_WAN_PEERS {
            return invalid(&format!(
                "{} peers: the WAN segment has room for {}",
                self.peers,
                plan::MAX_WAN_PEERS
            ));
        }
        if self.queues == Some(0) {
            return invalid("a veth has at least one queue");
        }
        let routes = self
            .routes
            .clone()
            .unwrap_or_else(|| self.addrs(plan::TUNNEL_NET_V4, plan::TUNNEL_NET_V6));
        if !self.ipv6 && routes.iter().any(IfAddr::is_ipv6) {
            return invalid("an IPv6 route, but the segments have IPv4 addresses only");
        }
        Ok(routes)
    }

    fn netns(&self, label: &str) -> Result<Netns> {
        match self.owner {
            Some(owner) => Netns::new_owned_by(label, owner),
            None => Netns::new(label),
        }
    }

    /// `[v4]`, or `[v4, v6]` with IPv6.
    fn addrs(&self, v4: IfAddr, v6: IfAddr) -> Vec<IfAddr> {
        if self.ipv6 {
            vec![v4, v6]
        } else {
            vec![v4]
        }
    }

    /// Queues of the cables that are not the gateway's.
    fn host_queues(&self) -> Option<u16> {
        self.queues.map(|_| 1)
    }

    fn gateway_cable(
        &self,
        gw: &Netns,
        other: &Netns,
        gw_if: &str,
        other_if: &str,
        gw_addrs: &[IfAddr],
        other_addrs: &[IfAddr],
    ) -> Result<VethPair> {
        let mut cable = VethPair::builder(gw, other)
            .names(gw_if, other_if)
            .a_addrs(gw_addrs)
            .b_addrs(other_addrs);
        if let Some(n) = self.queues {
            cable = cable.queues(n);
        }
        cable.create()
    }
}

impl Switch {
    fn create(ns: Netns, owner: Option<u32>, host_queues: Option<u16>) -> Result<Switch> {
        ns.ip(["link", "add", BRIDGE, "type", "bridge"])?;
        ns.ip(["link", "set", BRIDGE, "up"])?;
        Ok(Switch {
            ns,
            bridge: BRIDGE.to_owned(),
            owner,
            host_queues,
        })
    }

    /// A new host on the segment, in a namespace named after `label` (owned as the
    /// topology's are), with `addrs` on its interface `wan`. `label` also names the switch
    /// port, so it must be unique among the switch's hosts (`gw`, `srv` and `p<i>` are
    /// taken).
    pub fn attach(&self, label: &str, addrs: &[IfAddr]) -> Result<Host> {
        let ns = match self.owner {
            Some(owner) => Netns::new_owned_by(label, owner)?,
            None => Netns::new(label)?,
        };
        self.attach_netns(ns, label, addrs)
    }

    fn attach_netns(&self, ns: Netns, label: &str, addrs: &[IfAddr]) -> Result<Host> {
        let port: String = label.chars().take(crate::IFNAMSIZ_MAX).collect();
        let mut cable = VethPair::builder(&ns, &self.ns)
            .names("wan", &port)
            .a_addrs(addrs);
        if let Some(n) = self.host_queues {
            cable = cable.queues(n);
        }
        let (iface, port) = cable.create()?.into_ends();
        self.enslave(&port.ifname)?;
        Ok(Host { ns, iface })
    }

    fn enslave(&self, port: &str) -> Result<()> {
        self.ns.ip(["link", "set", port, "master", &self.bridge])?;
        Ok(())
    }
}
