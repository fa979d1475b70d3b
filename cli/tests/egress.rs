//! The egress node from the guides (issue 13): the fixture wg-quick-server.conf (only its
//! interface names, keys and addresses changed) run by `wgxdp up`, with two full-tunnel clients
//! shaped like openbsd-phone.conf (AllowedIPs = 0.0.0.0/0, ::/0, DNS = the gateway), one
//! wireguard-go and one boringtun. Through the operator's PostUp MASQUERADE they reach an
//! "internet" host that has no route to the tunnel; they reach the gateway itself (ping, DNS);
//! they reach each other; a client's packet to 127.0.0.0/8 is dropped and counted; a capture
//! on the LAN sees none of the internet-bound traffic; TCP completes behind a path that drops
//! ICMP (the MSS clamp); two clients on the same inside port reach one host at once. On a
//! gateway with two interfaces and on a one-armed one. Established flows, pings included, are
//! carried by the data path (flow offload). The IPv6 tests add what the guides add for IPv6:
//! an IPv6 Address and an ip6tables MASQUERADE (NAT66); the clients ping and download through
//! it, and the data path carries those flows too.
//!
//!   client A (wireguard-go) --\                          /-- srv (the LAN: two-armed only)
//!   client B (boringtun) ------ br0 --- wan [gw] lan ---
//!   inet (198.18.0.250) ------/   the WAN: clients and the internet
//!
//! Needs root, namespaces, wireguard-go, boringtun-cli (testbed/test installs it into
//! target/tools), iptables, conntrack, tcpdump and python3.

mod common;
#[path = "egress/setup.rs"]
mod setup;

use common::*;
use setup::*;
use std::time::Duration;
use testbed::Netns;

/// A 2 MB download from `server` (its TCP service on `port`, IPv6 if `v6`, reached at `host`)
/// to `client`, which must complete. On wgxdp, once conntrack has the connection established
/// the workers carry it: the segments (about 1,450) come back translated by them, not by the
/// kernel, and the client's ACKs go out translated by them.
fn download_is_carried(
    g: &Gateway,
    server: &Netns,
    client: &Netns,
    host: &str,
    port: u32,
    v6: bool,
) {
    let before = offloaded(g);
    tcp_server(server, port, 1, "c.sendall(b'x' * 2000000)", v6);
    let got = tcp_client(client, host, port, DOWNLOAD);
    assert_eq!(
        got.trim(),
        "2000000",
        "the download from {host} completed\n{}",
        g.show()
    );
    if g.kind == Kind::Wgxdp {
        let now = offloaded(g);
        let (out, back) = (now.0 - before.0, now.1 - before.1);
        assert!(
            back >= 1000 && out >= 100,
            "the download from {host} was offloaded: {out} out, {back} in\n{}",
            g.show()
        );
    }
}

fn egress(one_armed: bool, kind: Kind) {
    let Some(Setup {
        g,
        a_host,
        b_host,
        inet,
        srv,
        a,
        _sock,
    }) = setup(one_armed, kind, false)
    else {
        return;
    };
    let clients = [(&a_host.ns, A_TUN), (&b_host.ns, B_TUN)];

    // The internet: each client pings the host, which has no route back to the tunnel, and
    // a TCP service there sees the gateway's address: the operator's MASQUERADE did it.
    for (ns, _) in clients {
        assert!(
            ping(ns, &INET.to_string()),
            "client -> internet\n{}",
            g.show()
        );
    }
    let tcp_port = 30000 + std::process::id() % 10000;
    tcp_server(&inet.ns, tcp_port, 2, "c.sendall(a[0].encode())", false);
    for (ns, _) in clients {
        let seen = tcp_client(
            ns,
            &INET.to_string(),
            tcp_port,
            "print(s.recv(100).decode())\n",
        );
        assert_eq!(
            seen.trim(),
            GW_WAN,
            "the internet host sees the gateway (NAT)"
        );
    }

    // The operator's filter rules decide too: a FORWARD rule naming the interface stops a
    // client's pings to the internet host (they arrive on the interface, as with kernel
    // WireGuard), and they pass again once it is gone.
    let rule = [
        "FORWARD",
        "-i",
        g.name.as_str(),
        "-d",
        "198.18.0.250",
        "-p",
        "icmp",
        "-j",
        "DROP",
    ];
    ok(g.gw.exec([&["iptables", "-I"][..], &rule].concat()));
    assert!(
        !ping(&a_host.ns, &INET.to_string()),
        "a FORWARD rule naming the interface applies\n{}",
        g.show()
    );
    ok(g.gw.exec([&["iptables", "-D"][..], &rule].concat()));
    assert!(ping(&a_host.ns, &INET.to_string()), "{}", g.show());
    if kind == Kind::Wgxdp {
        pings_are_offloaded(&g, &b_host.ns, &INET.to_string());
    }

    // The gateway itself at its tunnel address: ping, and a resolver bound to it.
    let dns_port = 53;
    g.gw
        .spawn([
            "python3",
            "-c",
            &format!(
                "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.bind(('{GW_TUN}', {dns_port}))\ns.settimeout(60)\n\
                 for _ in range(4):\n    q, a = s.recvfrom(512)\n    \
                 end = q.index(b'\\0', 12) + 5\n    \
                 r = q[:2] + b'\\x81\\x80' + q[4:6] + b'\\x00\\x01\\x00\\x00\\x00\\x00' + q[12:end] + \
                 b'\\xc0\\x0c\\x00\\x01\\x00\\x01\\x00\\x00\\x00\\x3c\\x00\\x04' + bytes([198, 18, 0, 250])\n    \
                 s.sendto(r, a)\n"
            ),
        ])
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    for (ns, _) in clients {
        assert!(
            ping(ns, &GW_TUN.to_string()),
            "client -> gateway\n{}\n{}\n{}\n{}",
            g.show(),
            ok(g.gw.ip(["-o", "address"])),
            ok(g.gw.ip(["route"])),
            ok(ns.ip(["route"]))
        );
        let answer = python(
            ns,
            &format!(
                "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.settimeout(5)\n\
                 q = b'\\x12\\x34\\x01\\x00\\x00\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x06egress\\x04test\\x00\\x00\\x01\\x00\\x01'\n\
                 s.sendto(q, ('{GW_TUN}', {dns_port}))\nr = s.recv(512)\nprint('.'.join(str(b) for b in r[-4:]))\n"
            ),
        );
        assert_eq!(
            answer.trim(),
            INET.to_string(),
            "a DNS answer from the gateway"
        );
    }

    // Client to client, through the gateway.
    assert!(ping(&a_host.ns, &B_TUN.to_string()), "A -> B\n{}", g.show());
    assert!(ping(&b_host.ns, &A_TUN.to_string()), "B -> A\n{}", g.show());

    // A client's packet to the loopback range is dropped and counted (the client's kernel
    // is told to route it into the tunnel).
    let before = g.counter("martian");
    ok(a_host
        .ns
        .exec(["sysctl", "-qw", "net.ipv4.conf.all.route_localnet=1"]));
    let _ = a_host.ns.ip([
        "route",
        "del",
        "local",
        "127.0.0.0/8",
        "dev",
        "lo",
        "table",
        "local",
    ]);
    ok(a_host
        .ns
        .ip(["route", "add", "127.0.0.2/32", "dev", a.ifname()]));
    let _ = a_host
        .ns
        .ping("127.0.0.2".parse().unwrap(), 3, Duration::from_secs(4));
    if kind == Kind::Wgxdp {
        let martians = g.counter("martian") - before;
        assert!(martians >= 3, "martians counted: {martians}\n{}", g.show());
    }

    // A capture on the LAN sees none of the internet-bound traffic while it flows.
    if !one_armed {
        let cap = g.gw.spawn([
            "timeout",
            "6",
            "tcpdump",
            "-i",
            &g.lan_if,
            "-n",
            "-w",
            g.dir.join("lan.pcap").to_str().unwrap(),
            &format!("host {INET}"),
        ]);
        cap.unwrap();
        std::thread::sleep(Duration::from_millis(800));
        ok(a_host
            .ns
            .exec(["ping", "-q", "-c", "50", "-i", "0.02", &INET.to_string()]));
        std::thread::sleep(Duration::from_secs(6));
        let pcap = std::fs::read(g.dir.join("lan.pcap")).unwrap_or_default();
        // A pcap file with no packets is its 24-byte global header.
        assert_eq!(
            pcap.len(),
            24,
            "the LAN saw internet-bound packets ({} bytes of capture)",
            pcap.len()
        );
    }

    // TCP through NAT to a host that drops ICMP (a PMTU black hole), from a client whose own
    // tunnel MTU (1500) is above the gateway's (1420): only a clamped MSS keeps the
    // segments small enough.
    let clamped_before = g.counter("MSS clamped");
    ok(inet
        .ns
        .exec(["iptables", "-A", "INPUT", "-p", "icmp", "-j", "DROP"]));
    download_is_carried(
        &g,
        &inet.ns,
        &a_host.ns,
        &INET.to_string(),
        tcp_port + 1,
        false,
    );
    if kind == Kind::Wgxdp {
        assert!(
            g.counter("MSS clamped") > clamped_before,
            "the SYN's MSS was clamped\n{}",
            g.show()
        );
    }

    // Two clients on the same inside port, to the same outside host and port, at once.
    let udp_port = tcp_port + 2;
    inet.ns
        .spawn([
            "python3",
            "-c",
            &format!(
                "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.bind(('0.0.0.0', {udp_port}))\ns.settimeout(30)\n\
                 for _ in range(2):\n    d, a = s.recvfrom(100)\n    s.sendto(d + b' via ' + str(a[1]).encode(), a)\n"
            ),
        ])
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let same_port = |who: &str| {
        format!(
            "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.bind(('0.0.0.0', 40000))\ns.settimeout(10)\n\
             s.sendto(b'{who}', ('{INET}', {udp_port}))\nprint(s.recv(100).decode())\n"
        )
    };
    let (qa, qb) = (same_port("a"), same_port("b"));
    let (ra, rb) = std::thread::scope(|s| {
        let ha = s.spawn(|| python(&a_host.ns, &qa));
        let hb = s.spawn(|| python(&b_host.ns, &qb));
        (ha.join().unwrap(), hb.join().unwrap())
    });
    assert!(
        ra.starts_with("a via ") && rb.starts_with("b via "),
        "{ra} / {rb}"
    );
    assert_ne!(
        ra.trim_start_matches("a"),
        rb.trim_start_matches("b"),
        "two outside ports"
    );

    // Connection tracking flushed under a running exchange (`conntrack -F`, or a firewall
    // reload that flushes): the data path lets go of the flows it carried, the kernel takes
    // the next packets (a new entry, a new translation) and every request is answered; the
    // flow is then carried by the data path again. An answer already on its way back when
    // the entries go has no translation to meet and is lost, with the kernel alone too (seen
    // once in CI with wireguard-go as the gateway): the client asks again after a second, as
    // an application would. The echo says how often it has seen each request, so a lost
    // answer (allowed once) is told from a lost request (never allowed from wgxdp's data
    // path); the client stops at the first request it cannot get answered.
    let echo_port = tcp_port + 3;
    let echo = [
        "import socket".to_string(),
        "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)".into(),
        format!("s.bind(('0.0.0.0', {echo_port}))"),
        "s.settimeout(30)".into(),
        "seen = {}".into(),
        "for _ in range(210):".into(),
        "    d, a = s.recvfrom(100)".into(),
        "    seen[d] = seen.get(d, 0) + 1".into(),
        "    s.sendto(d + b' ' + str(seen[d]).encode(), a)".into(),
    ]
    .join("\n");
    inet.ns.spawn(["python3", "-c", &echo]).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let exchange = [
        "import socket, time".to_string(),
        "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)".into(),
        "s.settimeout(1)".into(),
        "n = answers_lost = requests_lost = 0".into(),
        "for i in range(200):".into(),
        "    want = str(i).encode()".into(),
        "    for attempt in range(3):".into(),
        format!("        s.sendto(want, ('{INET}', {echo_port}))"),
        "        try:".into(),
        "            while True:".into(),
        "                d, seen = s.recv(100).split()".into(),
        "                if d == want:".into(),
        "                    break".into(),
        "        except socket.timeout:".into(),
        "            continue".into(),
        "        n += 1".into(),
        "        answers_lost += int(seen) - 1".into(),
        "        requests_lost += attempt + 1 - int(seen)".into(),
        "        break".into(),
        "    if n <= i or answers_lost + requests_lost > 1:".into(),
        "        break".into(),
        "    time.sleep(0.05)".into(),
        "print(n, answers_lost, requests_lost)".into(),
    ]
    .join("\n");
    let offloaded_flows = || g.counter("offloaded flows");
    // 10 s of exchange: `wgxdp show` (the counter) takes a second of it to sample rates.
    let answered = std::thread::scope(|s| {
        let h = s.spawn(|| python(&a_host.ns, &exchange));
        std::thread::sleep(Duration::from_millis(1500));
        if kind == Kind::Wgxdp {
            assert!(
                offloaded_flows() >= 1,
                "the exchange is offloaded\n{}",
                g.show()
            );
        }
        ok(g.gw.exec(["conntrack", "-F"]));
        // The kernel has the flow again: its packets reached it after the flush (had the
        // data path kept carrying them on the flushed entry, it would not).
        std::thread::sleep(Duration::from_millis(1000));
        let listed = ok(g.gw.exec([
            "conntrack",
            "-L",
            "-p",
            "udp",
            "--dport",
            &echo_port.to_string(),
        ]));
        assert!(
            listed.contains(&format!("src={A_TUN}")),
            "the kernel tracks the flow again after the flush: {listed:?}"
        );
        h.join().unwrap()
    });
    let counts: Vec<i64> = answered
        .split_whitespace()
        .map(|c| c.parse().expect("a count"))
        .collect();
    let [answered, answers_lost, requests_lost] = counts[..] else {
        panic!("three counts: {counts:?}");
    };
    assert_eq!(answered, 200, "every request answered\n{}", g.show());
    assert!(
        answers_lost + requests_lost <= 1,
        "{answers_lost} answers and {requests_lost} requests lost\n{}",
        g.show()
    );
    if kind == Kind::Wgxdp {
        assert_eq!(requests_lost, 0, "a request lost\n{}", g.show());
        assert!(
            g.counter("resyncs") == 0 && g.counter("refused") == 0,
            "{}",
            g.show()
        );
    }
    // The guides' other NAT, towards the LAN (so that LAN hosts need no route back): a
    // client's connection to a LAN host then leaves with the gateway's LAN address, every
    // packet of it (the workers send LAN traffic through the kernel once they know); a LAN
    // host's own flow to a client still works untranslated (the kernel sees it from its first
    // packet); and established flows are carried by the workers again.
    if !one_armed {
        let masquerade = |verb: &str| {
            ok(g.gw.exec([
                "iptables",
                "-t",
                "nat",
                verb,
                "POSTROUTING",
                "-o",
                &g.lan_if,
                "-j",
                "MASQUERADE",
            ]))
        };
        masquerade("-A");
        let srv_port = tcp_port + 4;
        tcp_server(&srv.ns, srv_port, 1, "c.sendall(a[0].encode())", false);
        let seen = tcp_client(
            &a_host.ns,
            LAN_V4,
            srv_port,
            "print(s.recv(100).decode())\n",
        );
        assert_eq!(
            seen.trim(),
            "198.18.1.1",
            "the LAN host sees the gateway's LAN address"
        );
        // The LAN host's own flow to a client: a UDP exchange, answered from the client's
        // address (the kernel, seeing only the answer, would have translated it).
        let lan_echo = srv_port + 2;
        a_host
            .ns
            .spawn([
                "python3",
                "-c",
                &format!(
                    "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.bind(('0.0.0.0', {lan_echo}))\ns.settimeout(30)\n\
                     d, a = s.recvfrom(100)\ns.sendto(d, a)\n"
                ),
            ])
            .unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let from = python(
            &srv.ns,
            &format!(
                "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.settimeout(5)\n\
                 s.sendto(b'hi', ('{A_TUN}', {lan_echo}))\nd, a = s.recvfrom(100)\nprint(a[0])\n"
            ),
        );
        assert_eq!(
            from.trim(),
            A_TUN.to_string(),
            "LAN host -> client\n{}",
            g.show()
        );
        download_is_carried(&g, &srv.ns, &a_host.ns, LAN_V4, srv_port + 1, false);
        if kind == Kind::Wgxdp {
            assert!(g.counter("lan_pass_via_kernel") >= 1, "{}", g.show());
        }
        masquerade("-D");
    }
    drop(a);
}

/// The guides' IPv6 additions (an IPv6 Address, ip6tables MASQUERADE): the clients reach an
/// IPv6 internet host with no route back through NAT66, the gateway itself and each other;
/// on wgxdp, the data path carries the established flows (a download, pings) itself.
fn egress_v6(one_armed: bool, kind: Kind) {
    let Some(Setup {
        g,
        a_host,
        b_host,
        inet,
        a,
        _sock,
        ..
    }) = setup(one_armed, kind, true)
    else {
        return;
    };
    let clients = [&a_host.ns, &b_host.ns];
    for ns in clients {
        assert!(ping(ns, INET6), "client -> internet (v6)\n{}", g.show());
        assert!(ping(ns, GW_TUN6), "client -> gateway (v6)\n{}", g.show());
    }
    assert!(ping(&a_host.ns, B_TUN6), "A -> B (v6)\n{}", g.show());
    let tcp_port = 31000 + std::process::id() % 10000;
    tcp_server(&inet.ns, tcp_port, 2, "c.sendall(a[0].encode())", true);
    for ns in clients {
        let seen = tcp_client(ns, INET6, tcp_port, "print(s.recv(100).decode())\n");
        assert_eq!(
            seen.trim(),
            GW_WAN6,
            "the internet host sees the gateway (NAT66)"
        );
    }
    download_is_carried(&g, &inet.ns, &a_host.ns, INET6, tcp_port + 1, true);
    if kind == Kind::Wgxdp {
        pings_are_offloaded(&g, &b_host.ns, INET6);
    }
    drop(a);
}

#[test]
fn egress_node_with_two_interfaces() {
    egress(false, Kind::Wgxdp);
}

#[test]
fn egress_node_one_armed() {
    egress(true, Kind::Wgxdp);
}

/// The check of the test: wireguard-go, brought up by wg-quick from the same file (hooks and
/// all), passes it too (one-armed, as the guides' servers are).
#[test]
fn the_egress_test_passes_with_wireguard_go_as_the_gateway() {
    egress(true, Kind::WgQuick);
}

#[test]
fn egress_node_ipv6_with_two_interfaces() {
    egress_v6(false, Kind::Wgxdp);
}

#[test]
fn egress_node_ipv6_one_armed() {
    egress_v6(true, Kind::Wgxdp);
}

/// The check of the IPv6 test: wireguard-go brought up by wg-quick from the same file.
#[test]
fn the_ipv6_egress_test_passes_with_wireguard_go_as_the_gateway() {
    egress_v6(true, Kind::WgQuick);
}
