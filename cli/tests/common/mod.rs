//! The end-to-end topology shared by the gateway tests: wireguard-go peers on a WAN
//! segment, `wgxdp up` as the gateway in its own namespace, a server on the LAN side.

#![allow(dead_code, reason = "each test binary uses a different part of it")]

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;
use testbed::{IfAddr, Netns, WgConfig, WgPeer, WireguardGo};

pub const BIN: &str = env!("CARGO_BIN_EXE_wgxdp");
pub const LAN_V4: &str = "198.18.1.2";
pub const LAN_V6: &str = "2001:2:0:2::2";

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
    pub wg: WireguardGo,
    pub v4: IpAddr,
    pub v6: IpAddr,
}

pub struct Topo {
    pub name: String,
    pub gw: Netns,
    pub _sw: Netns,
    pub srv: Netns,
    pub peers: Vec<Peer>,
    pub wan_if: String,
    pub lan_if: String,
    pub dir: PathBuf,
    pub conf: PathBuf,
}

impl Drop for Topo {
    fn drop(&mut self) {
        let _ = self.gw.exec([BIN, "down", &self.name]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn require() -> bool {
    testbed::require_wireguard_go() && testbed::require_tools(&["iperf3"])
}

/// A veth from `a` to `b`; both ends up.
pub fn veth(a: &Netns, an: &str, b: &Netns, bn: &str) {
    veth_queues(a, an, b, bn, 1);
}

/// A veth with `n` queues per end.
pub fn veth_queues(a: &Netns, an: &str, b: &Netns, bn: &str, n: u16) {
    let n = n.to_string();
    let out = std::process::Command::new("ip")
        .args([
            "link",
            "add",
            an,
            "netns",
            a.name(),
            "numtxqueues",
            &n,
            "numrxqueues",
            &n,
            "type",
            "veth",
        ])
        .args([
            "peer",
            "name",
            bn,
            "netns",
            b.name(),
            "numtxqueues",
            &n,
            "numrxqueues",
            &n,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    ok(a.ip(["link", "set", an, "up"]));
    ok(b.ip(["link", "set", bn, "up"]));
}

pub fn addr(ns: &Netns, ifname: &str, a: &str) {
    if a.contains(':') {
        ok(ns.ip(["addr", "add", a, "dev", ifname, "nodad"]));
    } else {
        ok(ns.ip(["addr", "add", a, "dev", ifname]));
    }
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
    let t = tag();
    let gw = Netns::new("gw").unwrap();
    let sw = Netns::new("sw").unwrap();
    let srv = Netns::new("srv").unwrap();
    let (wan_if, lan_if) = (format!("gw{t}w"), format!("gw{t}l"));
    let br = "br0";
    ok(sw.ip(["link", "add", br, "type", "bridge"]));
    ok(sw.ip(["link", "set", br, "up"]));
    let queues = match shape {
        Shape::TwoArmed { queues } => queues,
        Shape::OneArmed => 1,
    };
    veth_queues(&gw, &wan_if, &sw, &format!("sw{t}g"), queues);
    ok(sw.ip(["link", "set", &format!("sw{t}g"), "master", br]));
    addr(&gw, &wan_if, "198.18.0.1/24");
    addr(&gw, &wan_if, "2001:2::1/64");
    let sl = format!("sv{t}l");
    match shape {
        Shape::TwoArmed { .. } => {
            veth_queues(&gw, &lan_if, &srv, &sl, queues);
            addr(&gw, &lan_if, "198.18.1.1/24");
            addr(&gw, &lan_if, "2001:2:0:2::1/64");
            addr(&srv, &sl, "198.18.1.2/24");
            addr(&srv, &sl, "2001:2:0:2::2/64");
            ok(srv.ip(["route", "add", "198.19.0.0/24", "via", "198.18.1.1"]));
            ok(srv.ip([
                "-6",
                "route",
                "add",
                "2001:2:0:1::/64",
                "via",
                "2001:2:0:2::1",
            ]));
        }
        Shape::OneArmed => {
            // The server is a host on the gateway's only segment.
            veth(&srv, &sl, &sw, &format!("sw{t}s"));
            ok(sw.ip(["link", "set", &format!("sw{t}s"), "master", br]));
            addr(&gw, &wan_if, "198.18.1.1/24");
            addr(&srv, &sl, "198.18.1.2/24");
            ok(srv.ip(["route", "add", "198.19.0.0/24", "via", "198.18.1.1"]));
        }
    }

    let dir = std::env::temp_dir().join(format!("wgxdp-gw-{t}"));
    std::fs::create_dir_all(&dir).unwrap();
    let gw_keys = testbed::WgKeypair::generate().unwrap();
    let mut conf = format!(
        "[Interface]\nPrivateKey = {}\nListenPort = 51820\nAddress = 198.19.0.1/24, 2001:2:0:1::1/64\n",
        gw_keys.private_key()
    );
    let mut peers = Vec::new();
    for i in 0..k {
        let ns = Netns::new(&format!("p{i}")).unwrap();
        let pw = format!("p{t}x{i}");
        veth(&ns, &pw, &sw, &format!("sw{t}p{i}"));
        ok(sw.ip(["link", "set", &format!("sw{t}p{i}"), "master", br]));
        addr(&ns, &pw, &format!("198.18.0.{}/24", 10 + i));
        addr(&ns, &pw, &format!("2001:2::{:x}/64", 0x10 + i));
        let v4: IpAddr = format!("198.19.0.{}", 10 + i).parse().unwrap();
        let v6: IpAddr = format!("2001:2:0:1::{:x}", 0x10 + i).parse().unwrap();
        // Even peers reach the gateway over IPv4, odd ones over IPv6.
        let endpoint = if i % 2 == 0 {
            "198.18.0.1:51820"
        } else {
            "[2001:2::1]:51820"
        };
        let wg = WireguardGo::start(
            &ns,
            WgConfig {
                addrs: vec![IfAddr::new(v4, 32), IfAddr::new(v6, 128)],
                peers: vec![WgPeer {
                    allowed_ips: vec![
                        "198.18.1.0/24".parse().unwrap(),
                        "2001:2:0:2::/64".parse().unwrap(),
                    ],
                    endpoint: Some(endpoint.parse().unwrap()),
                    persistent_keepalive: Some(25),
                    ..WgPeer::new(gw_keys.public_key())
                }],
                ..WgConfig::default()
            },
        )
        .unwrap();
        ok(ns.ip(["route", "add", "198.18.1.0/24", "dev", wg.ifname()]));
        ok(ns.ip(["-6", "route", "add", "2001:2:0:2::/64", "dev", wg.ifname()]));
        conf.push_str(&format!(
            "\n[Peer]\nPublicKey = {}\nAllowedIPs = {v4}/32, {v6}/128\n",
            wg.public_key()
        ));
        peers.push(Peer { ns, wg, v4, v6 });
    }
    let conf_path = dir.join(format!("gw{t}.conf"));
    std::fs::write(&conf_path, conf).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&conf_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let name = format!("gw{t}");
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
    let up = ok(gw.exec(args));
    assert!(
        up.contains("native on") || up.contains("fallback backend"),
        "{up}"
    );
    Topo {
        name,
        gw,
        _sw: sw,
        srv,
        peers,
        wan_if,
        lan_if,
        dir,
        conf: conf_path,
    }
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
    let s = show(t);
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
