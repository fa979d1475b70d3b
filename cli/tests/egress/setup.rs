//! The egress tests' set-up (cli/tests/egress.rs): the gateway from the fixture, its two
//! full-tunnel clients, the internet host, and the helpers the checks share.

use super::common::*;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use testbed::{IfAddr, Netns, Topology, WgConfig, WgKeypair, WgPeer, WireguardGo};

pub(crate) const PORT: u16 = 23456;
/// The gateway's tunnel address (the fixture's 10.0.0.1) and its clients' (10.0.0.2, .3).
pub(crate) const GW_TUN: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 1);
pub(crate) const A_TUN: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 2);
pub(crate) const B_TUN: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 3);
/// The internet host, on the WAN segment, with no route to 198.19.0.0/16.
pub(crate) const INET: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 250);
/// The gateway's WAN address (what NAT makes the clients' source).
pub(crate) const GW_WAN: &str = "198.18.0.1";
/// IPv6: the tunnel (the gateway ::1, the clients ::2 and ::3), the internet host on the WAN
/// segment (2001:2::/64, no route to the tunnel), and the gateway's WAN address there.
pub(crate) const GW_TUN6: &str = "2001:2:0:19::1";
pub(crate) const A_TUN6: &str = "2001:2:0:19::2";
pub(crate) const B_TUN6: &str = "2001:2:0:19::3";
pub(crate) const INET6: &str = "2001:2::fa";
pub(crate) const GW_WAN6: &str = "2001:2::1";

pub(crate) fn boringtun() -> Option<PathBuf> {
    let local = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/tools/bin/boringtun-cli");
    if local.exists() {
        return Some(local);
    }
    testbed::find_tool("boringtun-cli")
}

pub(crate) fn require_egress() -> bool {
    if !require() || !testbed::require_tools(&["iptables", "conntrack", "tcpdump", "python3"]) {
        return false;
    }
    if boringtun().is_none() {
        testbed::skip_or_fail("boringtun-cli is not installed (testbed/test installs it)");
        return false;
    }
    true
}

/// The fixture with its names, keys and addresses changed (nothing else).
pub(crate) fn gateway_conf(gw: &WgKeypair, a: &str, b: &str, internet_if: &str) -> String {
    let fixture = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../control/src/config/fixtures/wg-quick-server.conf"
    ))
    .unwrap();
    let text = fixture
        .replace("10.0.0.1/32", &format!("{GW_TUN}/32"))
        .replace("10.0.0.2/32", &format!("{A_TUN}/32"))
        .replace("10.0.0.3/32", &format!("{B_TUN}/32"))
        .replace("192.168.4.0/24", "198.18.4.0/24")
        .replace("-o eth0", &format!("-o {internet_if}"))
        .replace(
            "qNoBKylRuEUtBuTANIS6rSZoCqG8cFYzEWeS7fx63Vk=",
            gw.private_key(),
        )
        .replace("Bj7G2pqXZRjrcBTwOWDrkjcy3PzhhJd3cX8QvBTaRDI=", a)
        .replace("5SAd89dXTesrxFZpNaRvwL/M11WjuevHJH/7Cv5LI3c=", b);
    assert!(
        !text.contains("10.0.0.") && !text.contains("eth0"),
        "{text}"
    );
    text
}

/// What the guides add to the file for IPv6: an address, the clients' IPv6 addresses, and
/// the same forwarding and MASQUERADE rules with ip6tables.
pub(crate) fn with_ipv6(conf: &str, internet_if: &str) -> String {
    let rules = |verb: &str| {
        format!(
            "ip6tables {verb} FORWARD -i %i -j ACCEPT; ip6tables {verb} FORWARD -o %i -j ACCEPT; \
             ip6tables -t nat {verb} POSTROUTING -o {internet_if} -j MASQUERADE"
        )
    };
    let text = conf
        .replace(
            &format!("Address = {GW_TUN}/32"),
            &format!(
                "Address = {GW_TUN}/32, {GW_TUN6}/64\nPostUp = {}\nPreDown = {}",
                rules("-A"),
                rules("-D")
            ),
        )
        .replace(&format!("{A_TUN}/32"), &format!("{A_TUN}/32, {A_TUN6}/128"))
        .replace(&format!("{B_TUN}/32"), &format!("{B_TUN}/32, {B_TUN6}/128"));
    assert!(text.contains(A_TUN6) && text.contains(B_TUN6) && text.contains("ip6tables -t nat"));
    text
}

/// A client's full-tunnel routes: everything the test reaches goes into the tunnel (the
/// gateway's endpoint stays on the WAN segment's connected route, as wg-quick's fwmark rule
/// keeps it outside).
pub(crate) fn full_tunnel_routes(ns: &Netns, dev: &str, v6: bool) {
    ok(ns.ip(["route", "add", "198.19.0.0/24", "dev", dev]));
    ok(ns.ip(["route", "add", &format!("{INET}/32"), "dev", dev]));
    ok(ns.ip(["route", "add", "198.18.1.0/24", "dev", dev]));
    if v6 {
        // The internet host is on the client's own segment: into the tunnel all the same.
        ok(ns.ip(["-6", "route", "add", &format!("{INET6}/128"), "dev", dev]));
        ok(ns.ip(["-6", "route", "add", "2001:2:0:19::/64", "dev", dev]));
    }
}

pub(crate) struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Who runs the gateway: wgxdp, or (the check of the test) wireguard-go brought up by
/// wg-quick itself, from the same file.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Wgxdp,
    WgQuick,
}

pub(crate) struct Gateway {
    pub(crate) gw: Netns,
    pub(crate) name: String,
    pub(crate) kind: Kind,
    pub(crate) dir: PathBuf,
    pub(crate) lan_if: String,
    _keep: Vec<Netns>,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let conf = self.dir.join(format!("{}.conf", self.name));
        let _ = match self.kind {
            Kind::Wgxdp => self.gw.exec([BIN, "down", &self.name]),
            Kind::WgQuick => self
                .gw
                .exec(["wg-quick", "down", conf.to_str().unwrap_or("")]),
        };
        let _ = std::fs::remove_dir_all(&self.dir);
        remove_logs(&self.name);
    }
}

impl Gateway {
    pub(crate) fn show(&self) -> String {
        match self.kind {
            Kind::Wgxdp => ok(self.gw.exec([BIN, "show", &self.name])),
            Kind::WgQuick => ok(self.gw.exec(["wg", "show", &self.name])),
        }
    }

    /// A counter of `wgxdp show` (a drop reason, or "MSS clamped"), summed over workers.
    pub(crate) fn counter(&self, name: &str) -> u64 {
        show_counter(&self.show(), name)
    }
}

/// A TCP server in `ns` on `port` (IPv4, or IPv6 if `v6`) that accepts `accepts` connections
/// and runs `each` (Python, with the connection `c` and the peer's address `a`) for each one.
pub(crate) fn tcp_server(ns: &Netns, port: u32, accepts: u32, each: &str, v6: bool) {
    let body: String = each.lines().map(|l| format!("    {l}\n")).collect();
    let (family, any) = if v6 {
        ("AF_INET6", "::")
    } else {
        ("AF_INET", "0.0.0.0")
    };
    ns.spawn([
        "python3",
        "-c",
        &format!(
            "import socket\ns = socket.socket(socket.{family})\ns.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
             s.bind(('{any}', {port}))\ns.listen(4)\ns.settimeout(30)\n\
             for _ in range({accepts}):\n    c, a = s.accept()\n{body}    c.close()\n"
        ),
    ])
    .unwrap();
}

/// Connects from `ns` to `host`'s `port` (retrying while the server starts), then runs `then`
/// (Python, with the socket `s`); returns what it printed.
pub(crate) fn tcp_client(ns: &Netns, host: &str, port: u32, then: &str) -> String {
    python(
        ns,
        &format!(
            "import socket, time\nfor _ in range(50):\n    try:\n        s = socket.create_connection(('{host}', {port}), timeout=5)\n        break\n    except OSError:\n        time.sleep(0.1)\n{then}"
        ),
    )
}

/// The download of the MSS check: 2 MB from `host`'s `port`; returns the bytes received.
pub(crate) const DOWNLOAD: &str = "s.settimeout(20)\nn = 0\nwhile True:\n    d = s.recv(65536)\n    if not d: break\n    n += len(d)\nprint(n)\n";

/// The data path's (out, in) counts of packets of offloaded flows, summed over workers.
pub(crate) fn offloaded(g: &Gateway) -> (u64, u64) {
    (g.counter("offloaded out"), g.counter("offloaded in"))
}

/// Pings are flows too: once conntrack has seen an echo request answered, the data path
/// carries the rest of that ping's requests and replies (their identifier translated).
pub(crate) fn pings_are_offloaded(g: &Gateway, ns: &Netns, dst: &str) {
    let before = offloaded(g);
    ok(ns.exec(["ping", "-n", "-q", "-c", "50", "-i", "0.02", dst]));
    let after = offloaded(g);
    let (out, back) = (after.0 - before.0, after.1 - before.1);
    assert!(
        out >= 40 && back >= 40,
        "pings to {dst} carried by the data path: {out} out, {back} in\n{}",
        g.show()
    );
}

/// Runs `code` (Python) in `ns` and returns what it printed; fails the test if it fails.
pub(crate) fn python(ns: &Netns, code: &str) -> String {
    ok(ns.exec(["python3", "-c", code]))
}

/// The gateway, its two clients (A, wireguard-go; B, boringtun) and the internet host.
pub(crate) struct Setup {
    pub(crate) g: Gateway,
    pub(crate) a_host: testbed::Host,
    pub(crate) b_host: testbed::Host,
    pub(crate) inet: testbed::Host,
    /// The LAN's server (two-armed; on the WAN segment one-armed).
    pub(crate) srv: testbed::Host,
    pub(crate) a: WireguardGo,
    /// boringtun stops when its socket goes: removed after the test, whatever the outcome.
    pub(crate) _sock: RemoveOnDrop,
}

/// Brings the egress node up from the fixture (with the guides' IPv6 additions if `v6`) and
/// its clients, full tunnel.
pub(crate) fn setup(one_armed: bool, kind: Kind, v6: bool) -> Option<Setup> {
    if !require_egress() || (v6 && !testbed::require_tools(&["ip6tables"])) {
        return None;
    }
    let t = tag();
    let builder = Topology::builder().peers(2).queues(1);
    let builder = if v6 { builder } else { builder.ipv4_only() };
    let builder = if one_armed {
        builder.one_armed()
    } else {
        builder
    };
    let Topology {
        gw,
        gw_lan,
        srv,
        switch,
        peers: hosts,
        ..
    } = builder.create().unwrap();
    let sw = switch.unwrap();
    let mut inet_addrs = vec![IfAddr::v4(INET, 24)];
    if v6 {
        inet_addrs.push(IfAddr::v6(INET6.parse().unwrap(), 64));
    }
    let inet = sw.attach("inet", &inet_addrs).unwrap();
    let lan_if = gw_lan.map(|l| l.ifname).unwrap_or_default();
    let dir = std::env::temp_dir().join(format!("wgxdp-egress-{t}"));
    std::fs::create_dir_all(&dir).unwrap();
    let name = format!("eg{t}");

    // The clients' keys first: the gateway's file names them.
    let gw_keys = WgKeypair::generate().unwrap();
    let (a_keys, b_keys) = (
        WgKeypair::generate().unwrap(),
        WgKeypair::generate().unwrap(),
    );
    let conf = dir.join(format!("{name}.conf"));
    let text = gateway_conf(&gw_keys, a_keys.public_key(), b_keys.public_key(), "wan");
    let text = if v6 { with_ipv6(&text, "wan") } else { text };
    std::fs::write(&conf, text).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = match kind {
        Kind::Wgxdp => {
            let mut up = vec![
                BIN,
                "up",
                conf.to_str().unwrap(),
                "--wan",
                "wan",
                "--name",
                &name,
            ];
            if !one_armed {
                up.extend(["--lan", lan_if.as_str()]);
            }
            gw.command(&up).output().unwrap()
        }
        Kind::WgQuick => {
            // What the guides have the operator do besides the file: forwarding on, and (for
            // the MSS check) the clamp that kernel setups add by hand.
            ok(gw.exec(["sysctl", "-qw", "net.ipv4.ip_forward=1"]));
            if v6 {
                ok(gw.exec(["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"]));
            }
            ok(gw.exec([
                "iptables",
                "-t",
                "mangle",
                "-A",
                "FORWARD",
                "-p",
                "tcp",
                "--tcp-flags",
                "SYN,RST",
                "SYN",
                "-j",
                "TCPMSS",
                "--set-mss",
                "1380",
            ]));
            gw.command([
                "env",
                "WG_QUICK_USERSPACE_IMPLEMENTATION=wireguard-go",
                "WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1",
                "wg-quick",
                "up",
                conf.to_str().unwrap(),
            ])
            .output()
            .unwrap()
        }
    };
    let mut hosts = hosts.into_iter();
    let (a_host, b_host) = (hosts.next().unwrap(), hosts.next().unwrap());
    let g = Gateway {
        gw,
        name,
        kind,
        dir,
        lan_if,
        _keep: vec![sw.ns],
    };
    assert!(
        out.status.success(),
        "wgxdp up: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if kind == Kind::Wgxdp {
        // Forwarding is on, and router advertisements are still taken on the uplink.
        let sysctl = |k: &str| ok(g.gw.exec(["sysctl", "-n", k])).trim().to_string();
        assert_eq!(sysctl("net.ipv4.ip_forward"), "1");
        assert_eq!(sysctl("net.ipv6.conf.all.forwarding"), "1");
        assert_eq!(sysctl("net.ipv6.conf.wan.accept_ra"), "2");
    }
    let endpoint = std::net::SocketAddr::new(GW_WAN.parse().unwrap(), PORT);

    // Client A: wireguard-go, a tunnel MTU above the gateway's (the MSS check below).
    let a = WireguardGo::start(
        &a_host.ns,
        WgConfig {
            keypair: Some(a_keys),
            listen_port: 0,
            addrs: if v6 {
                vec![
                    IfAddr::v4(A_TUN, 32),
                    IfAddr::v6(A_TUN6.parse().unwrap(), 128),
                ]
            } else {
                vec![IfAddr::v4(A_TUN, 32)]
            },
            peers: vec![WgPeer {
                allowed_ips: vec!["0.0.0.0/0".parse().unwrap(), "::/0".parse().unwrap()],
                endpoint: Some(endpoint),
                persistent_keepalive: Some(25),
                ..WgPeer::new(gw_keys.public_key())
            }],
            mtu: Some(1500),
        },
    )
    .unwrap();
    full_tunnel_routes(&a_host.ns, a.ifname(), v6);

    // Client B: boringtun, configured through its UAPI socket with `wg setconf`.
    let bt = boringtun().unwrap();
    let b_dev = format!("bt{t}");
    b_host
        .ns
        .spawn([
            bt.to_str().unwrap(),
            "-f",
            "--disable-drop-privileges",
            "--disable-connected-udp",
            &b_dev,
        ])
        .unwrap();
    let sock = PathBuf::from(format!("/var/run/wireguard/{b_dev}.sock"));
    for _ in 0..100 {
        if sock.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let b_conf = g.dir.join("b.conf");
    std::fs::write(
        &b_conf,
        format!(
            "[Interface]\nPrivateKey = {}\n\n[Peer]\nPublicKey = {}\nAllowedIPs = 0.0.0.0/0, ::/0\nEndpoint = {endpoint}\nPersistentKeepalive = 25\n",
            b_keys.private_key(),
            gw_keys.public_key()
        ),
    )
    .unwrap();
    ok(b_host
        .ns
        .exec(["wg", "setconf", &b_dev, b_conf.to_str().unwrap()]));
    ok(b_host
        .ns
        .ip(["address", "add", &format!("{B_TUN}/32"), "dev", &b_dev]));
    if v6 {
        ok(b_host.ns.ip([
            "-6",
            "address",
            "add",
            &format!("{B_TUN6}/128"),
            "dev",
            &b_dev,
            "nodad",
        ]));
    }
    ok(b_host.ns.ip(["link", "set", &b_dev, "mtu", "1420", "up"]));
    full_tunnel_routes(&b_host.ns, &b_dev, v6);
    Some(Setup {
        g,
        a_host,
        b_host,
        inet,
        srv,
        a,
        _sock: RemoveOnDrop(sock),
    })
}
