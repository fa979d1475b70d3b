//! The gateway topology against the real kernel: who reaches whom, queues, and that nothing
//! outlives it, whether it is dropped, fails half-way or is handed to a script
//! (`testbed-topo`). Root only (skipped otherwise), except the checks of what cannot be built.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;
use testbed::{plan, Netns, Topology, WanSide, NETNS_DIR};

const TOPO: &str = env!("CARGO_BIN_EXE_testbed-topo");

fn ping(from: &Netns, to: IpAddr) {
    from.ping(to, 1, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("ping {to} from {}: {e}", from.name()));
}

fn exists(netns: &str) -> bool {
    Path::new(NETNS_DIR).join(netns).exists()
}

fn queues(ns: &Netns, ifname: &str) -> usize {
    let out = ns
        .exec(["ls", &format!("/sys/class/net/{ifname}/queues")])
        .unwrap();
    String::from_utf8_lossy(&out.stdout).matches("rx-").count()
}

/// A stand-in for the script that owns a released topology; on drop it deletes what it owns
/// (as the script's trap does), then ends.
struct Owner(Child);

impl Owner {
    fn start() -> Owner {
        Owner(Command::new("sleep").arg("600").spawn().unwrap())
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Owner {
    fn drop(&mut self) {
        let _ = testbed::delete_owned_by(self.pid());
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn switch_topology_joins_peers_gateway_and_server() {
    if !testbed::require_netns() {
        return;
    }
    let t = Topology::builder().peers(2).create().unwrap();
    let names: Vec<String> = t.namespaces().iter().map(|n| n.to_string()).collect();
    assert_eq!(names.len(), 5, "{names:?}");
    for name in &names {
        assert!(
            name.starts_with(&format!("wgx-{}-", std::process::id())),
            "{name}"
        );
    }
    assert_eq!(t.gw_wan.ifname, "wan");
    assert_eq!(t.gw_lan.as_ref().unwrap().ifname, "lan");
    for (i, peer) in t.peers.iter().enumerate() {
        assert_eq!(
            peer.iface.addrs,
            vec![plan::wan_peer_v4(i), plan::wan_peer_v6(i)]
        );
        ping(&peer.ns, plan::WAN_A_V4.ip);
        ping(&peer.ns, plan::WAN_A_V6.ip);
    }
    // Peers share the switch's segment.
    ping(&t.peers[0].ns, plan::wan_peer_v6(1).ip);
    ping(&t.srv.ns, plan::LAN_GW_V4.ip);
    ping(&t.srv.ns, plan::LAN_GW_V6.ip);
    let routes = t.srv.ns.ip(["-6", "route"]).unwrap();
    assert!(
        String::from_utf8_lossy(&routes.stdout).contains("2001:2:0:1::/64 via 2001:2:0:2::1"),
        "{routes:?}"
    );
    // Only the gateway under test forwards: even with a route to the LAN, a peer does not
    // reach the server through the gateway's bare namespace (forwarding is off there, and the
    // server routes only the tunnel subnets back).
    let p0 = &t.peers[0].ns;
    p0.ip(["route", "add", "198.18.1.0/24", "via", "198.18.0.1"])
        .unwrap();
    assert!(p0
        .ping(plan::LAN_SRV_V4.ip, 1, Duration::from_secs(1))
        .is_err());
    drop(t);
    for name in &names {
        assert!(!exists(name), "{name} outlived its topology");
    }
}

#[test]
fn host_topology_has_the_gateways_queues_and_ipv4_only() {
    if !testbed::require_netns() {
        return;
    }
    let t = Topology::builder()
        .wan(WanSide::Host)
        .queues(3)
        .ipv4_only()
        .routes(&["198.19.0.0/16".parse().unwrap()])
        .create()
        .unwrap();
    let gen = t.generator.as_ref().unwrap();
    assert!(t.switch.is_none() && t.peers.is_empty());
    assert_eq!(queues(&t.gw, "wan"), 3);
    assert_eq!(queues(&t.gw, "lan"), 3);
    assert_eq!(queues(&gen.ns, &gen.iface.ifname), 3);
    assert_eq!(queues(&t.srv.ns, &t.srv.iface.ifname), 3);
    assert_eq!(gen.iface.addrs, vec![plan::WAN_B_V4]);
    ping(&gen.ns, plan::WAN_A_V4.ip);
    ping(&t.srv.ns, plan::LAN_GW_V4.ip);
    let addrs = t.gw.ip(["-6", "addr", "show", "scope", "global"]).unwrap();
    assert!(addrs.stdout.is_empty(), "{addrs:?}");
    let routes = t.srv.ns.ip(["route"]).unwrap();
    assert!(
        String::from_utf8_lossy(&routes.stdout).contains("198.19.0.0/16 via 198.18.1.1"),
        "{routes:?}"
    );
}

#[test]
fn one_armed_puts_the_server_on_the_switch() {
    if !testbed::require_netns() {
        return;
    }
    let t = Topology::builder().one_armed().peers(1).create().unwrap();
    assert!(t.gw_lan.is_none());
    assert_eq!(
        t.gw_wan.addrs,
        vec![plan::WAN_A_V4, plan::WAN_A_V6, plan::LAN_GW_V4]
    );
    assert_eq!(t.srv.iface.addrs, vec![plan::LAN_SRV_V4]);
    ping(&t.srv.ns, plan::LAN_GW_V4.ip);
    ping(&t.peers[0].ns, plan::WAN_A_V4.ip);
    // A host attached later joins the same segment.
    let late = t
        .switch
        .as_ref()
        .unwrap()
        .attach("late", &["198.18.0.50/24".parse().unwrap()])
        .unwrap();
    ping(&late.ns, plan::WAN_A_V4.ip);
}

#[test]
fn what_cannot_be_built_is_refused_before_anything_is() {
    for builder in [
        Topology::builder().wan(WanSide::Host).one_armed(),
        Topology::builder().wan(WanSide::Host).peers(1),
        Topology::builder().peers(plan::MAX_WAN_PEERS + 1),
        Topology::builder().queues(0),
        Topology::builder()
            .ipv4_only()
            .routes(&[plan::TUNNEL_NET_V6]),
    ] {
        let err = builder.create().unwrap_err();
        assert!(matches!(err, testbed::Error::Topology(_)), "{err}");
    }
}

#[test]
fn a_topology_failing_half_way_leaves_nothing() {
    if !testbed::require_netns() {
        return;
    }
    let owner = Owner::start();
    // The second route is refused (it exists): by then every namespace had been made.
    let err = Topology::builder()
        .peers(1)
        .owner(owner.pid())
        .routes(&[plan::TUNNEL_NET_V4, plan::TUNNEL_NET_V4])
        .create()
        .unwrap_err();
    assert!(err.to_string().contains("route"), "{err}");
    assert_eq!(
        testbed::delete_owned_by(owner.pid()).unwrap(),
        Vec::<String>::new()
    );
}

#[test]
fn a_released_topology_lives_until_its_owner_deletes_it() {
    if !testbed::require_netns() {
        return;
    }
    let owner = Owner::start();
    let t = Topology::builder()
        .wan(WanSide::Host)
        .owner(owner.pid())
        .create()
        .unwrap();
    let mut names = t.release();
    for name in &names {
        assert!(exists(name), "{name} went with the guard");
        assert!(name.starts_with(&format!("wgx-{}-", owner.pid())), "{name}");
    }
    // The owner lives: not stale.
    testbed::sweep_stale();
    assert!(names.iter().all(|n| exists(n)));
    names.sort();
    assert_eq!(testbed::delete_owned_by(owner.pid()).unwrap(), names);
    assert!(!names.iter().any(|n| exists(n)));
}

#[test]
fn testbed_topo_prints_the_topology_and_deletes_it() {
    if !testbed::require_netns() {
        return;
    }
    let owner = Owner::start();
    let pid = owner.pid().to_string();
    let out = Command::new(TOPO)
        .args(["create", "--owner", &pid, "--peers", "2", "--queues", "2"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let vars: HashMap<&str, &str> = text.lines().filter_map(|l| l.split_once('=')).collect();
    assert_eq!(vars["gw_wan"], "wan");
    assert_eq!(vars["gw_lan"], "lan");
    assert_eq!(vars["gw_wan_v4"], "198.18.0.1");
    assert_eq!(vars["gw_wan_v6"], "2001:2::1");
    assert_eq!(vars["gw_lan_v4"], "198.18.1.1");
    assert_eq!(vars["srv_v4"], "198.18.1.2");
    assert_eq!(vars["peer_count"], "2");
    assert_eq!(vars["p1_v4"], "198.18.0.11");
    assert_eq!(vars["p1_v6"], "2001:2::11");
    let namespaces: Vec<&str> = vars["namespaces"].trim_matches('\'').split(' ').collect();
    assert_eq!(namespaces.len(), 5);
    assert_eq!(namespaces[0], vars["ns_gw"]);
    for name in &namespaces {
        assert!(exists(name), "{name}");
    }
    // The namespaces stay after the process exits, usable as printed.
    let peer = vars["ns_p0"];
    let status = Command::new("ip")
        .args(["netns", "exec", peer, "ping", "-c1", "-W5", "-q"])
        .arg(vars["gw_wan_v4"])
        .output()
        .unwrap();
    assert!(status.status.success(), "{status:?}");

    let out = Command::new(TOPO)
        .args(["delete", "--owner", &pid])
        .output()
        .unwrap();
    assert!(out.status.success() && out.stderr.is_empty(), "{out:?}");
    for name in &namespaces {
        assert!(!exists(name), "{name} survived delete");
    }
}

#[test]
fn testbed_topo_refuses_bad_arguments() {
    for args in [
        &["create"][..],
        &["create", "--owner", "1", "--wan", "bus"],
        &["create", "--owner", "1", "--peers"],
        &["create", "--owner", "1", "--route", "nonsense"],
        &["frobnicate", "--owner", "1"],
    ] {
        let out = Command::new(TOPO).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("usage:"),
            "{out:?}"
        );
    }
}
