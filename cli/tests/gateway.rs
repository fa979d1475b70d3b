//! The product end to end: wireguard-go peers on a WAN segment, `wgxdp up` as the gateway in
//! its own namespace (XDP native on veth, AF_XDP copy mode), a server on the LAN side. Ping and
//! iperf3 through it from two peers, one over IPv4 and one over IPv6 outer, IPv4 and IPv6
//! inner; spoofed inner sources and unowned destinations; rekeying under load; control killed
//! and restarted under load; start-up failures that must leave nothing behind.
//!
//! Needs root, namespaces, wireguard-go, wg, iperf3: skipped with a message elsewhere, a
//! failure in CI.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;
use testbed::{IfAddr, Netns, WgConfig, WgPeer, WireguardGo};

const BIN: &str = env!("CARGO_BIN_EXE_wgxdp");
const LAN_V4: &str = "198.18.1.2";
const LAN_V6: &str = "2001:2:0:2::2";

fn ok(o: testbed::Result<Output>) -> String {
    let o = o.unwrap_or_else(|e| panic!("{e}"));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn tag() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{}{}",
        std::process::id() % 100_000,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

struct Peer {
    ns: Netns,
    wg: WireguardGo,
    v4: IpAddr,
    v6: IpAddr,
}

struct Topo {
    name: String,
    gw: Netns,
    _sw: Netns,
    srv: Netns,
    peers: Vec<Peer>,
    wan_if: String,
    lan_if: String,
    dir: PathBuf,
    conf: PathBuf,
}

impl Drop for Topo {
    fn drop(&mut self) {
        let _ = self.gw.exec([BIN, "down", &self.name]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn require() -> bool {
    testbed::require_wireguard_go() && testbed::require_tools(&["iperf3"])
}

/// A veth from `a` to `b`; both ends up.
fn veth(a: &Netns, an: &str, b: &Netns, bn: &str) {
    veth_queues(a, an, b, bn, 1);
}

/// A veth with `n` queues per end.
fn veth_queues(a: &Netns, an: &str, b: &Netns, bn: &str, n: u16) {
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

fn addr(ns: &Netns, ifname: &str, a: &str) {
    if a.contains(':') {
        ok(ns.ip(["addr", "add", a, "dev", ifname, "nodad"]));
    } else {
        ok(ns.ip(["addr", "add", a, "dev", ifname]));
    }
}

/// Builds the topology with `k` peers and starts the gateway.
fn topo(k: usize, extra_up_args: &[&str]) -> Topo {
    topo_with(k, extra_up_args, Shape::TwoArmed { queues: 1 })
}

#[derive(Clone, Copy)]
enum Shape {
    /// WAN and LAN interfaces, each with this many queues.
    TwoArmed { queues: u16 },
    /// The server sits on the WAN segment; the gateway has one interface.
    OneArmed,
}

fn topo_with(k: usize, extra_up_args: &[&str], shape: Shape) -> Topo {
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
        "[Interface]\nPrivateKey = {}\nListenPort = 51820\n",
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

fn ping(ns: &Netns, dst: &str) -> bool {
    ns.ping(dst.parse().unwrap(), 2, Duration::from_secs(8))
        .is_ok()
}

fn show(t: &Topo) -> String {
    ok(t.gw.exec([BIN, "show", &t.name]))
}

/// The counter `name` in `wgxdp show`'s drops line (0 if absent).
fn drops(t: &Topo, name: &str) -> u64 {
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
fn iperf(t: &Topo, client: &Netns, dst: &str, secs: u32, reverse: bool) -> f64 {
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
    let json = ok(client.exec(&args));
    let key = "\"sum_received\"";
    let at = json
        .find(key)
        .unwrap_or_else(|| panic!("no iperf3 result: {json}"));
    let bps_at = json[at..].find("\"bits_per_second\":").unwrap() + at + 18;
    let end = json[bps_at..].find([',', '\n']).unwrap() + bps_at;
    json[bps_at..end].trim().parse::<f64>().unwrap() / 1e6
}

#[test]
fn ping_and_iperf3_from_two_peers_v4_and_v6() {
    if !require() {
        return;
    }
    let t = topo(2, &[]);
    for (i, p) in t.peers.iter().enumerate() {
        assert!(
            ping(&p.ns, LAN_V4),
            "peer {i} pings the server over IPv4 inner\n{}",
            show(&t)
        );
        assert!(
            ping(&p.ns, LAN_V6),
            "peer {i} pings the server over IPv6 inner\n{}",
            show(&t)
        );
        // And the server reaches the peer's tunnel addresses (LAN -> peer direction first).
        assert!(ping(&t.srv, &p.v4.to_string()), "server pings peer {i}");
        assert!(
            ping(&t.srv, &p.v6.to_string()),
            "server pings peer {i} over IPv6"
        );
    }
    for (i, p) in t.peers.iter().enumerate() {
        let up = iperf(&t, &p.ns, LAN_V4, 2, false);
        let down = iperf(&t, &p.ns, LAN_V6, 2, true);
        eprintln!("peer {i}: {up:.0} Mbit/s to the server (v4 inner), {down:.0} Mbit/s from it (v6 inner)");
        assert!(
            up > 10.0 && down > 10.0,
            "peer {i}: {up} / {down}\n{}",
            show(&t)
        );
    }
    let dump = t.peers[1].wg.wg_show_dump().unwrap();
    let ep = dump.peers[0].endpoint.unwrap();
    assert!(ep.is_ipv6(), "peer 1 talks to the gateway over IPv6: {ep}");
}

#[test]
fn spoofed_inner_source_is_dropped_and_unowned_destinations_go_nowhere() {
    if !require() {
        return;
    }
    let t = topo(2, &[]);
    assert!(ping(&t.peers[0].ns, LAN_V4));
    // Peer 0 claims peer 1's tunnel address as its source: authentic, but not its own.
    let p0 = &t.peers[0];
    let spoof = t.peers[1].v4.to_string();
    ok(p0
        .ns
        .ip(["addr", "add", &format!("{spoof}/32"), "dev", p0.wg.ifname()]));
    let before = drops(&t, "source_not_allowed");
    assert!(
        p0.ns
            .exec(["ping", "-c", "3", "-i", "0.2", "-W", "1", "-I", &spoof, LAN_V4])
            .is_err(),
        "spoofed ping got through"
    );
    let after = drops(&t, "source_not_allowed");
    assert!(
        after >= before + 3,
        "counted: {before} -> {after}\n{}",
        show(&t)
    );

    // A destination inside the tunnel range that no peer owns: no peer receives anything.
    let rx_before: Vec<u64> = t
        .peers
        .iter()
        .map(|p| p.wg.wg_show_dump().unwrap().peers[0].rx_bytes)
        .collect();
    assert!(t
        .srv
        .exec(["ping", "-c", "3", "-i", "0.2", "-W", "1", "198.19.0.99"])
        .is_err());
    std::thread::sleep(Duration::from_millis(300));
    let rx_after: Vec<u64> = t
        .peers
        .iter()
        .map(|p| p.wg.wg_show_dump().unwrap().peers[0].rx_bytes)
        .collect();
    // Keepalives are 32 bytes of payload; a forwarded ping would be 128.
    for (b, a) in rx_before.iter().zip(&rx_after) {
        assert!(
            a - b < 128,
            "a peer received traffic for an address it does not own: {b} -> {a}"
        );
    }
}

#[test]
fn rekey_while_iperf3_runs() {
    if !require() {
        return;
    }
    // Our protocol clock runs 20x: a rekey every ~6 s of real time.
    let t = topo(1, &["--time-scale", "20"]);
    let p = &t.peers[0];
    assert!(ping(&p.ns, LAN_V4));
    let first = p.wg.wg_show_dump().unwrap().peers[0].latest_handshake;
    let mbps = iperf(&t, &p.ns, LAN_V4, 14, false);
    let later = p.wg.wg_show_dump().unwrap().peers[0].latest_handshake;
    assert!(
        later > first,
        "a new handshake happened during the transfer: {first:?} -> {later:?}"
    );
    assert!(
        mbps > 10.0,
        "the session carried on: {mbps} Mbit/s\n{}",
        show(&t)
    );
    let sessions = show(&t).matches("session ").count();
    assert!(sessions >= 2, "new keypairs were installed\n{}", show(&t));
}

fn pid_of(t: &Topo, which: &str) -> i32 {
    std::fs::read_to_string(format!("/run/wgxdp/{}/{which}.pid", t.name))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn kill_control_under_load_then_restart() {
    if !require() {
        return;
    }
    let t = topo(1, &[]);
    let p = &t.peers[0];
    assert!(ping(&p.ns, LAN_V4));
    let control = pid_of(&t, "control");
    std::thread::scope(|s| {
        let load = s.spawn(|| iperf(&t, &p.ns, LAN_V4, 4, false));
        std::thread::sleep(Duration::from_millis(1000));
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(control),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        let mbps = load.join().unwrap();
        assert!(
            mbps > 10.0,
            "traffic continued without control: {mbps} Mbit/s"
        );
    });
    assert!(
        ping(&p.ns, LAN_V4),
        "still forwarding on the existing session"
    );
    // A new control process attaches to the same region.
    let before_restart = p.wg.wg_show_dump().unwrap().peers[0].latest_handshake;
    let region = format!("/run/wgxdp/{}/region", t.name);
    let log = std::fs::File::create(t.dir.join("control2.log")).unwrap();
    let mut c2 =
        t.gw.command([
            BIN,
            "control",
            "--region",
            &region,
            t.conf.to_str().unwrap(),
        ])
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    std::fs::write(
        format!("/run/wgxdp/{}/control.pid", t.name),
        c2.id().to_string(),
    )
    .unwrap();
    // It replaces the sessions it inherited (whose keys it never had) with new handshakes of
    // its own.
    std::thread::sleep(Duration::from_millis(1500));
    let renewed = p.wg.wg_show_dump().unwrap().peers[0].latest_handshake;
    assert!(
        renewed > before_restart,
        "the restarted control initiated: {before_restart:?} -> {renewed:?}"
    );
    assert!(
        ping(&p.ns, LAN_V4),
        "traffic on the new session\n{}",
        show(&t)
    );
    // Make the peer start over: its next packet needs a new handshake, which only the new
    // control process can answer.
    let before = p.wg.wg_show_dump().unwrap().peers[0].latest_handshake;
    let gw_pub = p.wg.wg_show_dump().unwrap().peers[0].public_key.clone();
    let peer_conf = WgPeer {
        allowed_ips: vec![
            "198.18.1.0/24".parse().unwrap(),
            "2001:2:0:2::/64".parse().unwrap(),
        ],
        endpoint: Some("198.18.0.1:51820".parse().unwrap()),
        ..WgPeer::new(gw_pub.clone())
    };
    p.wg.remove_peer(&gw_pub).unwrap();
    p.wg.set_peer(&peer_conf).unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    assert!(
        ping(&p.ns, LAN_V4),
        "new handshake with the restarted control\n{}",
        show(&t)
    );
    let after = p.wg.wg_show_dump().unwrap().peers[0].latest_handshake;
    assert!(
        after.is_some() && after != before,
        "{before:?} -> {after:?}"
    );
    let _ = c2.kill();
    let _ = c2.wait();
}

fn xdp_attached(ns: &Netns, ifname: &str) -> bool {
    ok(ns.ip(["-d", "link", "show", "dev", ifname])).contains("prog/xdp")
}

#[test]
fn failed_starts_leave_nothing_behind() {
    if !require() {
        return;
    }
    let t = topo(1, &[]);
    ok(t.gw.exec([BIN, "down", &t.name]));
    assert!(
        !xdp_attached(&t.gw, &t.wan_if) && !xdp_attached(&t.gw, &t.lan_if),
        "down detached XDP"
    );
    assert!(!std::path::Path::new(&format!("/run/wgxdp/{}", t.name)).exists());

    let fail = |args: &[&str]| -> String {
        let out = t.gw.command(args).output().unwrap();
        assert!(!out.status.success(), "{args:?} succeeded");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let conf = t.conf.to_str().unwrap();
    let bad = t.dir.join("bad.conf");
    std::fs::write(&bad, "[Interface]\nPrivateKey = nope\n").unwrap();
    let msg = fail(&[
        BIN,
        "up",
        bad.to_str().unwrap(),
        "--wan",
        &t.wan_if,
        "--name",
        "wgxdpbad1",
    ]);
    assert!(
        msg.contains("bad.conf:2") && msg.contains("PrivateKey"),
        "{msg}"
    );
    let msg = fail(&[BIN, "up", conf, "--wan", "nosuchif0", "--name", "wgxdpbad2"]);
    assert!(
        msg.contains("nosuchif0") && msg.contains("does not exist"),
        "{msg}"
    );
    // Without privilege (as nobody).
    let out =
        t.gw.command([
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            BIN,
            "up",
            conf,
            "--wan",
            &t.wan_if,
            "--name",
            "wgxdpbad3",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let msg = String::from_utf8_lossy(&out.stderr);
    assert!(msg.contains("needs root"), "{msg}");
    for n in ["wgxdpbad1", "wgxdpbad2", "wgxdpbad3"] {
        assert!(
            !std::path::Path::new(&format!("/run/wgxdp/{n}")).exists(),
            "{n} left a run directory"
        );
    }
    assert!(
        !xdp_attached(&t.gw, &t.wan_if) && !xdp_attached(&t.gw, &t.lan_if),
        "nothing attached"
    );
}

#[test]
fn one_armed_gateway() {
    if !require() {
        return;
    }
    let t = topo_with(2, &[], Shape::OneArmed);
    for (i, p) in t.peers.iter().enumerate() {
        assert!(ping(&p.ns, LAN_V4), "peer {i}\n{}", show(&t));
        assert!(ping(&t.srv, &p.v4.to_string()), "server pings peer {i}");
    }
    let mbps = iperf(&t, &t.peers[0].ns, LAN_V4, 2, false);
    assert!(mbps > 10.0, "{mbps} Mbit/s\n{}", show(&t));
}

#[test]
fn two_workers_on_two_queues() {
    if !require() {
        return;
    }
    let t = topo_with(2, &["--workers", "2"], Shape::TwoArmed { queues: 2 });
    for (i, p) in t.peers.iter().enumerate() {
        assert!(ping(&p.ns, LAN_V4), "peer {i}\n{}", show(&t));
    }
    let up = iperf(&t, &t.peers[0].ns, LAN_V4, 2, false);
    let down = iperf(&t, &t.peers[1].ns, LAN_V4, 2, true);
    let s = show(&t);
    assert!(up > 10.0 && down > 10.0, "{up} / {down}\n{s}");
    assert!(
        s.contains("worker 0:") && s.contains("worker 1:"),
        "both workers run\n{s}"
    );
    let log = std::fs::read_to_string(format!("/run/wgxdp/{}/dataplane.log", t.name)).unwrap();
    assert!(log.contains("2 worker(s)"), "{log}");
}

#[test]
fn fallback_backend_carries_traffic_without_xdp() {
    if !require() {
        return;
    }
    let t = topo(1, &["--backend", "fallback"]);
    assert!(!xdp_attached(&t.gw, &t.wan_if), "no XDP in fallback mode");
    let p = &t.peers[0];
    assert!(ping(&p.ns, LAN_V4), "ping through the fallback backend");
    assert!(ping(&t.srv, &p.v4.to_string()), "server pings the peer");
    let mbps = iperf(&t, &p.ns, LAN_V4, 2, false);
    assert!(mbps > 10.0, "{mbps} Mbit/s");
}

/// A LAN host sending a packet too big for the tunnel with DF set learns the tunnel MTU from
/// the gateway (ICMP "fragmentation needed"), as it would from a kernel WireGuard router.
#[test]
fn oversized_lan_packets_get_fragmentation_needed() {
    if !require() {
        return;
    }
    let t = topo(1, &[]);
    let peer = t.peers[0].v4.to_string();
    assert!(ping(&t.srv, &peer));
    let out = t
        .srv
        .command([
            "ping", "-c", "1", "-W", "2", "-M", "do", "-s", "1472", &peer,
        ])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{text}");

    assert!(
        text.contains("mtu = 1420"),
        "the sender was told the tunnel MTU:\n{text}\n{}",
        show(&t)
    );
    let route = ok(t.srv.ip(["route", "get", &peer]));
    assert!(
        route.contains("mtu 1420"),
        "the path MTU is cached: {route}"
    );
    // 1392 bytes of ICMP payload + 28 of headers = 1420: fits.
    assert!(t
        .srv
        .exec(["ping", "-c", "1", "-W", "3", "-M", "do", "-s", "1392", &peer])
        .is_ok());
    assert!(drops(&t, "too_big") >= 1, "{}", show(&t));
}

/// The stock `wg` reads the gateway through its UAPI socket: peers, latest handshakes,
/// transfer counters from the workers, endpoints, allowed IPs; `wg showconf` too.
#[test]
fn stock_wg_shows_the_gateway() {
    if !require() {
        return;
    }
    let t = topo(2, &[]);
    for p in &t.peers {
        assert!(ping(&p.ns, LAN_V4));
    }
    let dump = testbed::WgDump::parse(&ok(t.gw.exec(["wg", "show", &t.name, "dump"]))).unwrap();
    assert_eq!(dump.listen_port, 51820);
    assert_eq!(dump.peers.len(), 2);
    for p in &t.peers {
        let s = dump
            .peer(p.wg.public_key())
            .unwrap_or_else(|| panic!("peer missing: {dump:?}"));
        assert!(s.latest_handshake.is_some(), "{s:?}");
        assert!(
            s.rx_bytes > 500 && s.tx_bytes > 300,
            "workers' counters included: {s:?}"
        );
        assert!(s.endpoint.is_some());
        assert_eq!(s.allowed_ips.len(), 2);
    }
    let human = ok(t.gw.exec(["wg", "show", &t.name]));
    assert!(
        human.contains("latest handshake") && human.contains("transfer"),
        "{human}"
    );
    let conf = ok(t.gw.exec(["wg", "showconf", &t.name]));
    assert!(
        conf.contains("ListenPort = 51820") && conf.contains(t.peers[1].wg.public_key()),
        "{conf}"
    );
    // Writes are refused for now, and say so.
    let set =
        t.gw.command(["wg", "set", &t.name, "listen-port", "51821"])
            .output()
            .unwrap();
    assert!(!set.status.success());
}
