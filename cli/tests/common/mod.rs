//! The end-to-end set-up shared by the gateway tests: on testbed's gateway topology
//! (wireguard-go peers on a switched WAN segment, the gateway's namespace, a server on the LAN
//! side), the peers' WireGuard and `wgxdp up` as the gateway.

#![allow(dead_code, reason = "each test binary uses a different part of it")]

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;
use testbed::{plan, IfAddr, Netns, Switch, Topology, WgConfig, WgPeer, WireguardGo};

pub const BIN: &str = env!("CARGO_BIN_EXE_wgxdp");
pub const LAN_V4: &str = "198.18.1.2";
pub const LAN_V6: &str = "2001:2:0:2::2";
/// The gateway's own tunnel addresses (its Address, on its interface named as the gateway).
pub const GW_TUNNEL_V4: &str = "198.19.0.1";
pub const GW_TUNNEL_V6: &str = "2001:2:0:1::1";

pub fn ok(o: testbed::Result<Output>) -> String {
    let o = o.unwrap_or_else(|e| panic!("{e}"));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn tag() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{}{}",
        std::process::id() % 100_000,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

pub struct Peer {
    pub ns: Netns,
    /// Its interface on the WAN segment.
    pub wan_if: String,
    pub wg: WireguardGo,
    pub v4: IpAddr,
    pub v6: IpAddr,
}

pub struct Topo {
    pub name: String,
    pub gw: Netns,
    /// The WAN segment's switch: more hosts join it with [`Switch::attach`].
    pub sw: Switch,
    pub srv: Netns,
    pub peers: Vec<Peer>,
    pub wan_if: String,
    /// Empty when one-armed.
    pub lan_if: String,
    pub dir: PathBuf,
    pub conf: PathBuf,
}

impl Drop for Topo {
    fn drop(&mut self) {
        let _ = self.gw.exec([BIN, "down", &self.name]);
        let _ = std::fs::remove_dir_all(&self.dir);
        remove_logs(&self.name);
    }
}

/// Where gateway `name` logs (its processes' logs and the auth log; `down` keeps them).
pub fn log_dir(name: &str) -> String {
    format!("/var/log/wgxdp/{name}")
}

/// The logs a test's gateway left: what an operator keeps, a test removes.
pub fn remove_logs(name: &str) {
    let _ = std::fs::remove_dir_all(log_dir(name));
}

pub fn require() -> bool {
    testbed::require_wireguard_go() && testbed::require_tools(&["iperf3"])
}

/// Builds the topology with `k` peers and starts the gateway.
pub fn topo(k: usize, extra_up_args: &[&str]) -> Topo {
    topo_with(k, extra_up_args, Shape::TwoArmed { queues: 1 })
}

#[derive(Clone, Copy)]
pub enum Shape {
    /// WAN and LAN interfaces, each with this many queues.
    TwoArmed { queues: u16 },
    /// The server sits on the WAN segment; the gateway has one interface.
    OneArmed,
}

pub fn topo_with(k: usize, extra_up_args: &[&str], shape: Shape) -> Topo {
    let (topo, up) = topo_full(k, extra_up_args, shape, "");
    let out = String::from_utf8_lossy(&up.stdout);
    assert!(
        up.status.success(),
        "wgxdp up: {out}\n{}",
        String::from_utf8_lossy(&up.stderr)
    );
    assert!(
        out.contains("native on") || out.contains("fallback backend"),
        "{out}"
    );
    topo
}

/// The topology with `k` peers and `interface_lines` added to the gateway's [Interface], and
/// what `wgxdp up` said (it may have failed: the topology is cleaned up either way).
pub fn topo_full(
    k: usize,
    extra_up_args: &[&str],
    shape: Shape,
    interface_lines: &str,
) -> (Topo, Output) {
    let t = tag();
    let builder = Topology::builder().peers(k);
    let builder = match shape {
        Shape::TwoArmed { queues } => builder.queues(queues),
        Shape::OneArmed => builder.one_armed().queues(1),
    };
    // Taken apart: each peer's namespace goes next to its wireguard-go.
    let Topology {
        gw,
        gw_wan,
        gw_lan,
        srv,
        switch,
        peers: hosts,
        ..
    } = builder.create().unwrap();
    let sw = switch.expect("the gateway tests' WAN segment is a switch");

    let dir = std::env::temp_dir().join(format!("wgxdp-gw-{t}"));
    std::fs::create_dir_all(&dir).unwrap();
    let gw_keys = testbed::WgKeypair::generate().unwrap();
    let mut conf = format!(
        "[Interface]\nPrivateKey = {}\nListenPort = 51820\nAddress = {GW_TUNNEL_V4}/24, {GW_TUNNEL_V6}/64\n{interface_lines}",
        gw_keys.private_key()
    );
    let mut peers = Vec::new();
    for (i, host) in hosts.into_iter().enumerate() {
        let (ns, wan_if) = (host.ns, host.iface.ifname);
        let v4: IpAddr = format!("198.19.0.{}", 10 + i).parse().unwrap();
        let v6: IpAddr = format!("2001:2:0:1::{:x}", 0x10 + i).parse().unwrap();
        // Even peers reach the gateway over IPv4, odd ones over IPv6.
        let endpoint = if i % 2 == 0 {
            plan::WAN_A_V4.ip
        } else {
            plan::WAN_A_V6.ip
        };
        let wg = WireguardGo::start(
            &ns,
            WgConfig {
                addrs: vec![IfAddr::new(v4, 32), IfAddr::new(v6, 128)],
                peers: vec![WgPeer {
                    // The LAN, and the gateway itself at its tunnel addresses.
                    allowed_ips: vec![
                        "198.18.1.0/24".parse().unwrap(),
                        "2001:2:0:2::/64".parse().unwrap(),
                        format!("{GW_TUNNEL_V4}/32").parse().unwrap(),
                        format!("{GW_TUNNEL_V6}/128").parse().unwrap(),
                    ],
                    endpoint: Some(SocketAddr::new(endpoint, plan::WG_PORT)),
                    persistent_keepalive: Some(25),
                    ..WgPeer::new(gw_keys.public_key())
                }],
                ..WgConfig::default()
            },
        )
        .unwrap();
        ok(ns.ip(["route", "add", "198.18.1.0/24", "dev", wg.ifname()]));
        ok(ns.ip(["-6", "route", "add", "2001:2:0:2::/64", "dev", wg.ifname()]));
        ok(ns.ip(["route", "add", GW_TUNNEL_V4, "dev", wg.ifname()]));
        ok(ns.ip(["-6", "route", "add", GW_TUNNEL_V6, "dev", wg.ifname()]));
        conf.push_str(&format!(
            "\n[Peer]\nPublicKey = {}\nAllowedIPs = {v4}/32, {v6}/128\n",
            wg.public_key()
        ));
        peers.push(Peer {
            ns,
            wan_if,
            wg,
            v4,
            v6,
        });
    }
    let conf_path = dir.join(format!("gw{t}.conf"));
    std::fs::write(&conf_path, conf).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&conf_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let name = format!("gw{t}");
    let wan_if = gw_wan.ifname;
    let lan_if = gw_lan.map(|lan| lan.ifname).unwrap_or_default();
    let mut args = vec![
        BIN,
        "up",
        conf_path.to_str().unwrap(),
        "--wan",
        &wan_if,
        "--name",
        &name,
    ];
    if let Shape::TwoArmed { .. } = shape {
        args.extend(["--lan", lan_if.as_str()]);
    }
    args.extend_from_slice(extra_up_args);
    let up = gw.command(args).output().unwrap();
    let topo = Topo {
        name,
        gw,
        sw,
        srv: srv.ns,
        peers,
        wan_if,
        lan_if,
        dir,
        conf: conf_path,
    };
    (topo, up)
}

pub fn ping(ns: &Netns, dst: &str) -> bool {
    ns.ping(dst.parse().unwrap(), 2, Duration::from_secs(8))
        .is_ok()
}

pub fn show(t: &Topo) -> String {
    ok(t.gw.exec([BIN, "show", &t.name]))
}

/// The counter `name` in `wgxdp show`'s drops line (0 if absent).
pub fn drops(t: &Topo, name: &str) -> u64 {
    show_counter(&show(t), name)
}

/// A counter in `wgxdp show`'s output (a drop reason, or a worker counter such as
/// "MSS clamped"), summed over the workers; 0 if absent.
pub fn show_counter(s: &str, name: &str) -> u64 {
    s.split([',', ':', '\n'])
        .filter_map(|f| {
            f.trim()
                .strip_prefix(name)
                .map(|n| n.trim().parse::<u64>().unwrap_or(0))
        })
        .sum()
}

/// Runs iperf3 for `secs` from `client` to the server; returns the receiver's Mbit/s.
pub fn iperf(t: &Topo, client: &Netns, dst: &str, secs: u32, reverse: bool) -> f64 {
    iperf_with(t, client, dst, secs, reverse, &[])
}

/// [`iperf`] with more iperf3 client arguments (e.g. `-b 100M` to cap the rate).
pub fn iperf_with(
    t: &Topo,
    client: &Netns,
    dst: &str,
    secs: u32,
    reverse: bool,
    extra: &[&str],
) -> f64 {
    let port = 5201 + (std::process::id() % 1000) as u16;
    t.srv
        .spawn(["iperf3", "-s", "-1", "-p", &port.to_string()])
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let mut args = vec![
        "iperf3".to_string(),
        "-c".into(),
        dst.into(),
        "-p".into(),
        port.to_string(),
        "-t".into(),
        secs.to_string(),
        "-J".into(),
    ];
    if reverse {
        args.push("-R".into());
    }
    args.extend(extra.iter().map(|a| a.to_string()));
    let json = ok(client.exec(&args));
    let key = "\"sum_received\"";
    let at = json
        .find(key)
        .unwrap_or_else(|| panic!("no iperf3 result: {json}"));
    let bps_at = json[at..].find("\"bits_per_second\":").unwrap() + at + 18;
    let end = json[bps_at..].find([',', '\n']).unwrap() + bps_at;
    json[bps_at..end].trim().parse::<f64>().unwrap() / 1e6
}
