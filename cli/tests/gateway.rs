//! The product end to end: wireguard-go peers on a WAN segment, `wgxdp up` as the gateway in
//! its own namespace (XDP native on veth, AF_XDP copy mode), a server on the LAN side. Ping and
//! iperf3 through it from two peers, one over IPv4 and one over IPv6 outer, IPv4 and IPv6
//! inner; spoofed inner sources and unowned destinations; rekeying under load; control killed
//! and restarted under load; start-up failures that must leave nothing behind.
//!
//! Needs root, namespaces, wireguard-go, wg, iperf3: skipped with a message elsewhere, a
//! failure in CI.

mod common;

use common::*;
use std::time::Duration;
use testbed::{Netns, WgPeer};

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
    assert!(
        msg.contains("missing: CAP_NET_ADMIN") && msg.contains("as root"),
        "{msg}"
    );
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
    let log = std::fs::read_to_string(format!("{}/dataplane.log", log_dir(&t.name))).unwrap();
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
    // The same worker and region as with XDP: `wgxdp show` sees its counters and sessions.
    let shown = show(&t);
    assert!(
        shown.contains("worker 0:") && shown.contains("session ") && shown.contains("peer slot"),
        "{shown}"
    );
    // The stock `wg` reads and configures it too; routes follow the allowed IPs.
    let dump = testbed::WgDump::parse(&ok(t.gw.exec(["wg", "show", &t.name, "dump"]))).unwrap();
    let s = dump
        .peer(p.wg.public_key())
        .expect("the peer in wg show dump");
    assert!(s.latest_handshake.is_some() && s.rx_bytes > 0, "{s:?}");
    let extra = testbed::WgKeypair::generate().unwrap();
    let key = extra.public_key();
    ok(t.gw.exec([
        "wg",
        "set",
        &t.name,
        "peer",
        key,
        "allowed-ips",
        "10.99.0.0/24",
    ]));
    let routes = ok(t.gw.ip(["route", "show", "10.99.0.0/24"]));
    // The TUN device is the gateway's own interface, named as wg-quick names it.
    assert!(
        routes.contains(&format!("10.99.0.0/24 dev {}", t.name)),
        "{routes}"
    );
    let dump = testbed::WgDump::parse(&ok(t.gw.exec(["wg", "show", &t.name, "dump"]))).unwrap();
    assert!(dump.peer(key).is_some(), "{dump:?}");
    ok(t.gw.exec(["wg", "set", &t.name, "peer", key, "remove"]));
    assert!(ok(t.gw.ip(["route", "show", "10.99.0.0/24"]))
        .trim()
        .is_empty());
    assert!(ping(&p.ns, LAN_V4), "the other peer is unaffected");
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

/// A LAN packet for a peer with no session waits for the handshake it causes and then goes
/// out (the kernel's staged packets), instead of being lost: one single ping from the server
/// to a peer whose sessions were just removed is answered.
#[test]
fn the_packet_that_starts_a_handshake_is_sent_when_it_completes() {
    if !require() {
        return;
    }
    let t = topo(1, &[]);
    let p = &t.peers[0];
    assert!(ping(&p.ns, LAN_V4));
    // Remove the peer (its sessions go) and add it back with its endpoint: no session now.
    let key = p.wg.public_key().to_string();
    let wg = |args: &[&str]| {
        let mut argv = vec!["wg", "set", t.name.as_str(), "peer", key.as_str()];
        argv.extend_from_slice(args);
        ok(t.gw.exec(&argv));
    };
    wg(&["remove"]);
    wg(&[
        "endpoint",
        "198.18.0.10:51820",
        "allowed-ips",
        &format!("{}/32,{}/128", p.v4, p.v6),
    ]);
    let o = t
        .srv
        .command(["ping", "-n", "-c", "1", "-W", "5", &p.v4.to_string()])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "the first packet is delivered once the handshake completes\n{}\n{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        show(&t),
        std::fs::read_to_string(format!("{}/auth.log", log_dir(&t.name))).unwrap_or_default()
    );
}

/// Received-frame totals of each worker, from `wgxdp show`.
fn worker_rx(t: &Topo) -> Vec<u64> {
    show(t)
        .lines()
        .filter(|l| l.trim_start().starts_with("worker "))
        .filter_map(|l| {
            let at = l.find("totals rx wan ")? + "totals rx wan ".len();
            l[at..].split_whitespace().next()?.parse().ok()
        })
        .collect()
}

/// A captured data message replayed from other source ports lands on both workers' queues;
/// the session's one replay window refuses every copy whichever worker checks it, and the
/// peer's endpoint does not move to the replayer's port. (With a window per worker, the first
/// copy on the other worker got through and took the endpoint with it.)
#[test]
fn replays_are_refused_on_every_queue() {
    if !require() || !testbed::require_tools(&["python3"]) {
        return;
    }
    let t = topo_with(1, &["--workers", "2"], Shape::TwoArmed { queues: 2 });
    let p = &t.peers[0];
    assert!(ping(&p.ns, LAN_V4), "{}", show(&t));
    let pif = p.wan_if.clone();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/scripts/replay.py");
    let copies = 32;
    let replayer =
        p.ns.command(["python3", script, &pif, &copies.to_string(), "51820"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let before = worker_rx(&t);
    let replay_drops = drops(&t, "replay");
    assert!(
        ping(&p.ns, LAN_V4),
        "a data message to capture\n{}\n{}",
        show(&t),
        ok(t.gw.exec(["wg", "show", &t.name, "dump"]))
    );
    let out = replayer.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "replayer failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let ports = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(ports.split_whitespace().count(), copies, "{ports}");
    std::thread::sleep(Duration::from_millis(500));
    let after = worker_rx(&t);
    let s = show(&t);
    assert_eq!(before.len(), 2, "{s}");
    assert!(
        after[0] > before[0] && after[1] > before[1],
        "the copies reached both workers: {before:?} -> {after:?}\n{s}"
    );
    assert_eq!(
        drops(&t, "replay") - replay_drops,
        copies as u64,
        "every copy refused as a replay\n{s}"
    );
    let dump = testbed::WgDump::parse(&ok(t.gw.exec(["wg", "show", &t.name, "dump"]))).unwrap();
    let ep = dump.peer(p.wg.public_key()).unwrap().endpoint.unwrap();
    assert!(
        !ports.split_whitespace().any(|x| x == ep.port().to_string()),
        "the endpoint moved to a replayer's port: {ep}"
    );
}

/// Packets the workers hand to the kernel leave the frame pool intact. 198.18.1.255 lies
/// inside what the peer routes into the tunnel and is the LAN's broadcast address at the
/// gateway: its next hop is never known, so each one goes to the kernel through the gateway's
/// own interface (which drops a directed broadcast). Before frames were owned, each hand-over
/// that failed put the frame on the free list twice: two packets then landed in one chunk,
/// batches holding a chunk twice were refused whole (counted as malformed), and plaintext
/// could be sealed over. (A refused hand-over releasing its frame once is the worker's unit
/// test `a_kernel_path_failure_releases_the_frame_once`.)
#[test]
fn hand_overs_to_the_kernel_leave_the_frame_pool_intact() {
    if !require() {
        return;
    }
    let t = topo(1, &[]);
    let p = &t.peers[0];
    assert!(ping(&p.ns, LAN_V4));
    let _ = p.ns.exec([
        "ping",
        "-b",
        "-q",
        "-c",
        "400",
        "-i",
        "0.002",
        "-W",
        "1",
        "198.18.1.255",
    ]);
    let stats = ok(t.gw.ip(["-s", "-j", "link", "show", "dev", &t.name]));
    let handed = stats
        .split("\"rx\":{\"bytes\":")
        .nth(1)
        .and_then(|s| s.split("\"packets\":").nth(1))
        .and_then(|s| s.split([',', '}']).next())
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0);
    assert!(
        handed >= 300,
        "the broadcasts went to the kernel through {}: {handed}\n{}",
        t.name,
        show(&t)
    );
    // The same worker then carries traffic with nothing refused or lost.
    let out =
        ok(p.ns.exec(["ping", "-q", "-c", "300", "-i", "0.003", "-W", "2", LAN_V4]));
    assert!(out.contains(" 0% packet loss"), "{out}\n{}", show(&t));
    let mbps = iperf(&t, &p.ns, LAN_V4, 3, false);
    assert!(mbps > 10.0, "{mbps} Mbit/s\n{}", show(&t));
    assert_eq!(drops(&t, "malformed"), 0, "no batch refused\n{}", show(&t));
}

/// SIGTERM, which systemd sends, leaves the system as `wgxdp down` does: XDP detached, the
/// run directory (with the region and its keys) gone, control stopped, and the same name can
/// come up again. Once to the data path alone, once to both processes (systemd's stop).
#[test]
fn sigterm_leaves_the_system_as_down_does() {
    if !require() {
        return;
    }
    let t = topo(1, &[]);
    let dir = std::path::PathBuf::from(format!("/run/wgxdp/{}", t.name));
    // A fresh gateway knows no session: the peer handshakes again once its own timers give
    // up on the old one (KEEPALIVE_TIMEOUT + REKEY_TIMEOUT), so allow for that.
    let reaches = || {
        let deadline = std::time::Instant::now() + Duration::from_secs(40);
        while std::time::Instant::now() < deadline {
            if ping(&t.peers[0].ns, LAN_V4) {
                return true;
            }
        }
        false
    };
    for both in [false, true] {
        assert!(reaches(), "traffic flows before the signal");
        let (dp, control) = (pid_of(&t, "dataplane"), pid_of(&t, "control"));
        let term = |pid: i32| {
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            )
            .unwrap();
        };
        term(dp);
        if both {
            term(control);
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while dir.exists() || std::path::Path::new(&format!("/proc/{dp}")).exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "still there after SIGTERM: run dir {}, data path alive {}",
                dir.exists(),
                std::path::Path::new(&format!("/proc/{dp}")).exists()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(!xdp_attached(&t.gw, &t.wan_if), "XDP detached from the WAN");
        assert!(!xdp_attached(&t.gw, &t.lan_if), "XDP detached from the LAN");
        let gone = std::time::Instant::now() + Duration::from_secs(5);
        while std::path::Path::new(&format!("/proc/{control}/status")).exists()
            && !std::fs::read_to_string(format!("/proc/{control}/status"))
                .unwrap_or_default()
                .contains("zombie")
        {
            assert!(std::time::Instant::now() < gone, "control stopped");
            std::thread::sleep(Duration::from_millis(50));
        }
        // The same name comes up again, and carries traffic.
        let up = ok(t.gw.exec([
            BIN,
            "up",
            t.conf.to_str().unwrap(),
            "--wan",
            &t.wan_if,
            "--lan",
            &t.lan_if,
            "--name",
            &t.name,
        ]));
        assert!(up.contains("is up"), "{up}");
    }
    assert!(reaches(), "the gateway that came up again carries traffic");
}

/// iperf3's UDP stream result, the first after `from`: (datagrams, lost, out of order).
fn udp_result(json: &str, from: &str) -> (u64, u64, u64) {
    let at = json
        .find(from)
        .and_then(|f| json[f..].find("\"udp\"").map(|u| u + f))
        .unwrap_or_else(|| panic!("no UDP result after {from} in iperf3's: {json}"));
    let field = |name: &str| -> u64 {
        let key = format!("\"{name}\":");
        let i = json[at..]
            .find(&key)
            .unwrap_or_else(|| panic!("no {name} after {from}: {json}"))
            + at
            + key.len();
        let end = json[i..].find([',', '\n', '}']).unwrap() + i;
        json[i..end].trim().parse().unwrap()
    };
    (
        field("packets"),
        field("lost_packets"),
        field("out_of_order"),
    )
}

/// One tunnel across cores: a single peer's stream (iperf3's sequence-numbered UDP datagrams,
/// one outer flow, so one queue) through a gateway with two workers, both ways. The worker
/// that receives it hands part of each busy round's crypto to the other one (counted), and
/// the gateway introduces no reordering: iperf3 counts every datagram that arrives after a
/// later one. wireguard-go, the peer, keeps its own order (its per-peer queues).
#[test]
fn one_tunnel_across_two_workers_stays_in_order() {
    if !require() {
        return;
    }
    let t = topo_with(1, &["--workers", "2"], Shape::TwoArmed { queues: 2 });
    let p = &t.peers[0];
    assert!(ping(&p.ns, LAN_V4), "{}", show(&t));
    let port = (5201 + (std::process::id() % 1000) as u16).to_string();
    for reverse in [false, true] {
        let before = show(&t);
        let handed_before = show_counter(&before, "crypto handed");
        let helped_before = show_counter(&before, "crypto helped");
        t.srv
            .spawn(["iperf3", "-s", "-1", "-J", "-p", &port])
            .unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let mut args = vec![
            "iperf3",
            "-c",
            LAN_V4,
            "-p",
            &port,
            "-u",
            "-b",
            "0",
            "-l",
            "1300",
            "-t",
            "4",
            "-J",
            "--get-server-output",
        ];
        if reverse {
            args.push("-R");
        }
        let json = ok(p.ns.exec(&args));
        // The receiver's counts: the client's own with -R, else the server's (iperf3 3.12
        // passes the receiver's loss to the client, but not its out-of-order count).
        let from = if reverse {
            "\"end\""
        } else {
            "\"server_output_json\""
        };
        let (packets, lost, out_of_order) = udp_result(&json, from);
        assert!(
            packets > 10_000,
            "a real stream: {packets} datagrams ({lost} lost)"
        );
        let dir = if reverse { "outbound" } else { "inbound" };
        let s = show(&t);
        let handed = show_counter(&s, "crypto handed") - handed_before;
        let helped = show_counter(&s, "crypto helped") - helped_before;
        eprintln!("{dir}: {packets} datagrams, {lost} lost, {handed} handed to the other worker, {helped} done by it");
        assert!(
            helped > 0,
            "{dir}: the other worker did none of the crypto\n{s}"
        );
        assert_eq!(
            out_of_order, 0,
            "{dir}: datagrams out of order of {packets}\n{s}"
        );
    }
    let s = show(&t);
    let (handed, helped) = (
        show_counter(&s, "crypto handed"),
        show_counter(&s, "crypto helped"),
    );
    assert!(
        handed > 0 && helped > 0,
        "the other worker did part of the tunnel's crypto: {handed} handed, {helped} helped\n{s}"
    );
    let log = std::fs::read_to_string(format!("{}/dataplane.log", log_dir(&t.name))).unwrap();
    assert!(log.contains("crypto shared across workers"), "{log}");
}
