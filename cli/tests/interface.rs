//! The gateway as a host (issue 13, items 1 and 2): its own interface, named as wg-quick names
//! it and carrying the file's Address and MTU, reached by a wireguard-go client through the
//! tunnel (ping, a TCP service bound to the tunnel address) and carrying the gateway's own
//! traffic to the client; wg-quick's hooks in wg-quick's order, on both backends; a failing
//! hook that leaves nothing behind.
//!
//! Needs root, namespaces, wireguard-go, wg, iperf3 and python3: skipped with a message
//! elsewhere, a failure in CI.

mod common;

use common::*;
use std::path::PathBuf;
use std::time::Duration;

/// A file the hooks write to, removed whatever the test's outcome.
struct HookLog(PathBuf);

impl HookLog {
    fn new() -> Self {
        Self(std::env::temp_dir().join(format!("wgxdp-hooks-{}.log", tag())))
    }

    fn read(&self) -> String {
        std::fs::read_to_string(&self.0).unwrap_or_default()
    }
}

impl Drop for HookLog {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Hooks that record, for each phase, the interface name they were given and the state of
/// that interface when they ran.
fn recording_hooks(log: &HookLog) -> String {
    let l = log.0.display();
    let exists = |phase: &str| {
        format!(
            "{phase} = if ip link show dev %i >/dev/null 2>&1; then echo '{phase} %i exists' >> {l}; \
             else echo '{phase} %i absent' >> {l}; fi\n"
        )
    };
    // Not `ip ... | grep -q`: under wg-quick's pipefail, grep leaving early can fail `ip` with
    // SIGPIPE.
    format!(
        "{}PostUp = if [[ \"$(ip -o address show dev %i)\" == *'inet {GW_TUNNEL_V4}/24'* ]]; then \
         echo 'PostUp %i addressed' >> {l}; else echo 'PostUp %i bare' >> {l}; fi\n{}{}",
        exists("PreUp"),
        exists("PreDown"),
        exists("PostDown"),
    )
}

/// A client pings the gateway's tunnel addresses and reaches a TCP service bound to one; the
/// gateway pings the client (its own traffic, routed into its interface, sealed by a worker);
/// what the gateway sends to a tunnel address no peer owns is dropped and counted.
#[test]
fn the_gateway_is_a_host_on_its_own_tunnel() {
    if !require() || !testbed::require_tools(&["python3"]) {
        return;
    }
    let t = topo(1, &[]);
    let p = &t.peers[0];
    let link = ok(t.gw.ip(["-d", "link", "show", "dev", &t.name]));
    assert!(
        link.contains("mtu 1420") && link.contains(",UP") && link.contains("multi_queue"),
        "the data path's multi-queue TUN device, up with wg-quick's MTU: {link}"
    );
    let addrs = ok(t.gw.ip(["-o", "address", "show", "dev", &t.name]));
    assert!(
        addrs.contains(&format!("inet {GW_TUNNEL_V4}/24"))
            && addrs.contains(&format!("inet6 {GW_TUNNEL_V6}/64")),
        "{addrs}"
    );

    assert!(ping(&p.ns, GW_TUNNEL_V4), "client -> gateway\n{}", show(&t));
    assert!(
        ping(&p.ns, GW_TUNNEL_V6),
        "client -> gateway, IPv6\n{}",
        show(&t)
    );
    assert!(
        ping(&t.gw, &p.v4.to_string()),
        "gateway -> client\n{}",
        show(&t)
    );
    assert!(
        ping(&t.gw, &p.v6.to_string()),
        "gateway -> client, IPv6\n{}",
        show(&t)
    );
    // The kernel saw the client's packets arrive on the gateway's interface.
    let stats = ok(t.gw.ip(["-s", "-j", "link", "show", "dev", &t.name]));
    let rx = stats
        .split("\"rx\":{\"bytes\":")
        .nth(1)
        .and_then(|s| s.split("\"packets\":").nth(1))
        .and_then(|s| s.split([',', '}']).next())
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no rx packets in {stats}"));
    assert!(rx >= 4, "received on {}: {rx}", t.name);

    // A TCP service bound to the tunnel address answers the client, and sees its tunnel
    // address as the source.
    let port = 20000 + (std::process::id() % 10000);
    let server = format!(
        "import socket\n\
         s = socket.socket()\n\
         s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
         s.bind(('{GW_TUNNEL_V4}', {port}))\n\
         s.listen(1)\n\
         s.settimeout(20)\n\
         c, a = s.accept()\n\
         c.sendall(('hello ' + a[0]).encode())\n\
         c.close()\n"
    );
    t.gw.spawn(["python3", "-c", &server]).unwrap();
    let client = format!(
        "import socket, time\n\
         for _ in range(50):\n\
         \x20   try:\n\
         \x20       s = socket.create_connection(('{GW_TUNNEL_V4}', {port}), timeout=5)\n\
         \x20       break\n\
         \x20   except ConnectionRefusedError:\n\
         \x20       time.sleep(0.1)\n\
         print(s.recv(100).decode())\n"
    );
    let said = ok(p.ns.exec(["python3", "-c", &client]));
    assert_eq!(said.trim(), format!("hello {}", p.v4), "{}", show(&t));

    // Inside the tunnel's subnet but owned by no peer: routed into the interface by the
    // kernel, dropped by the worker.
    let before = drops(&t, "no_route");
    assert!(
        t.gw.ping("198.19.0.99".parse().unwrap(), 2, Duration::from_secs(3))
            .is_err(),
        "nobody answers"
    );
    let after = drops(&t, "no_route");
    assert!(after >= before + 2, "{before} -> {after}\n{}", show(&t));

    // The interface down: the kernel refuses the workers' writes (EIO), and each refused
    // packet is counted as a drop (tx_ring_full, as for any transmit queue that takes
    // nothing), not lost silently.
    let before = drops(&t, "tx_ring_full");
    ok(t.gw.ip(["link", "set", &t.name, "down"]));
    assert!(
        !ping(&p.ns, GW_TUNNEL_V4),
        "the gateway answered with its interface down"
    );
    let after = drops(&t, "tx_ring_full");
    assert!(after > before, "{before} -> {after}\n{}", show(&t));
}

/// The same both ways on a one-armed gateway, and with two workers (two queues of the
/// interface, one each).
#[test]
fn the_gateway_is_a_host_one_armed_and_with_two_workers() {
    if !require() {
        return;
    }
    for (shape, args) in [
        (Shape::OneArmed, &[][..]),
        (Shape::TwoArmed { queues: 2 }, &["--workers", "2"][..]),
    ] {
        let t = topo_with(2, args, shape);
        for (i, p) in t.peers.iter().enumerate() {
            assert!(
                ping(&p.ns, GW_TUNNEL_V4),
                "peer {i} -> gateway\n{}",
                show(&t)
            );
            assert!(
                ping(&p.ns, GW_TUNNEL_V6),
                "peer {i} -> gateway, IPv6\n{}",
                show(&t)
            );
            assert!(
                ping(&t.gw, &p.v4.to_string()),
                "gateway -> peer {i}\n{}",
                show(&t)
            );
        }
    }
}

/// Routes for the peers' AllowedIPs as wg-quick adds them: into main, except what the
/// address's subnet covers and a default route (left out, with a note); with `Table = N`,
/// all of them into table N; with `Table = off`, none.
#[test]
fn routes_follow_the_table_key() {
    if !require() {
        return;
    }
    let extra = testbed::WgKeypair::generate().unwrap();
    let peer = format!(
        "[Peer]\nPublicKey = {}\nAllowedIPs = 198.18.77.0/24, 0.0.0.0/0\n",
        extra.public_key()
    );
    for table in ["", "Table = 1234\n", "Table = off\n"] {
        let (t, up) = topo_full(
            1,
            &[],
            Shape::TwoArmed { queues: 1 },
            &format!("{table}{peer}"),
        );
        let stderr = String::from_utf8_lossy(&up.stderr);
        assert!(up.status.success(), "{table}: {stderr}");
        // A table with no route in it does not exist for `ip`: empty.
        let routes = |which: &str| {
            t.gw.ip(["-4", "route", "show", "table", which, "dev", &t.name])
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default()
        };
        let (main, numbered) = (routes("main"), routes("1234"));
        let all = format!("{table}main:\n{main}\ntable 1234:\n{numbered}\n{stderr}");
        match table {
            "" => {
                assert!(main.contains("198.18.77.0/24"), "{all}");
                assert!(!main.contains("198.19.0.10"), "covered by the /24: {all}");
                assert!(!main.contains("default"), "{all}");
                assert!(stderr.contains("not routing 0.0.0.0/0"), "{all}");
            }
            "Table = 1234\n" => {
                for r in ["198.18.77.0/24", "198.19.0.10", "default"] {
                    assert!(numbered.contains(r), "{r}: {all}");
                }
                assert!(!main.contains("198.18.77.0/24"), "{all}");
            }
            _ => assert!(
                !main.contains("198.18.77.0/24") && numbered.is_empty(),
                "{all}"
            ),
        }
    }
}

/// Firewall rules that name the interface (`iifname %i`, as the guides' PostUp rules do) see
/// the client's packets to the gateway: a counted rule for IPv4 echo requests, a drop for
/// IPv6 ones. PostDown removes the table.
#[test]
fn firewall_rules_naming_the_interface_apply_to_its_traffic() {
    if !require() || !testbed::require_tools(&["nft"]) {
        return;
    }
    let lines = "PostUp = nft add table inet wgxtest\n\
        PostUp = nft add chain inet wgxtest input '{ type filter hook input priority 0; }'\n\
        PostUp = nft add rule inet wgxtest input iifname %i icmp type echo-request counter\n\
        PostUp = nft add rule inet wgxtest input iifname %i icmpv6 type echo-request drop\n\
        PostDown = nft delete table inet wgxtest\n";
    let (t, up) = topo_full(1, &[], Shape::TwoArmed { queues: 1 }, lines);
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let p = &t.peers[0];
    assert!(ping(&p.ns, GW_TUNNEL_V4), "{}", show(&t));
    let table = ok(t.gw.exec(["nft", "list", "table", "inet", "wgxtest"]));
    let counted: u64 = table
        .split("counter packets ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no counter in {table}"));
    assert!(
        counted >= 2,
        "iifname {} counted {counted}\n{table}",
        t.name
    );
    assert!(
        p.ns.ping(GW_TUNNEL_V6.parse().unwrap(), 2, Duration::from_secs(3))
            .is_err(),
        "dropped by the rule naming {}",
        t.name
    );
    ok(t.gw.exec([BIN, "down", &t.name]));
    let tables = ok(t.gw.exec(["nft", "list", "tables"]));
    assert!(!tables.contains("wgxtest"), "PostDown ran: {tables}");
}

/// PreUp, PostUp, PreDown, PostDown, each with `%i` replaced, in wg-quick's order: PreUp
/// before the interface exists, PostUp once its address is on it, PreDown while it still
/// exists, PostDown once it is gone. The file's MTU is the interface's and the worker's.
fn hooks_run_in_order(backend: &[&str]) {
    if !require() {
        return;
    }
    let log = HookLog::new();
    let lines = format!("MTU = 1380\n{}", recording_hooks(&log));
    let (t, up) = topo_full(1, backend, Shape::TwoArmed { queues: 1 }, &lines);
    let stderr = String::from_utf8_lossy(&up.stderr);
    assert!(up.status.success(), "{stderr}");
    let n = &t.name;
    // Echoed as wg-quick echoes what it runs.
    assert!(
        stderr.contains(&format!("[#] if ip link show dev {n} ")),
        "{stderr}"
    );
    assert_eq!(
        log.read(),
        format!("PreUp {n} absent\nPostUp {n} addressed\n"),
        "{stderr}"
    );
    let link = ok(t.gw.ip(["link", "show", "dev", n]));
    assert!(link.contains("mtu 1380"), "{link}");
    // The worker seals for the same MTU: a LAN host is told 1380 for a bigger packet.
    let peer = t.peers[0].v4.to_string();
    assert!(ping(&t.srv, &peer), "{}", show(&t));
    let out = t
        .srv
        .command([
            "ping", "-c", "1", "-W", "2", "-M", "do", "-s", "1372", &peer,
        ])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("mtu = 1380"), "{text}\n{}", show(&t));

    let down = t.gw.command([BIN, "down", n]).output().unwrap();
    assert!(
        down.status.success(),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
    assert_eq!(
        log.read(),
        format!(
            "PreUp {n} absent\nPostUp {n} addressed\nPreDown {n} exists\nPostDown {n} absent\n"
        )
    );
}

#[test]
fn hooks_run_in_wg_quicks_order_on_xdp() {
    hooks_run_in_order(&[]);
}

#[test]
fn hooks_run_in_wg_quicks_order_on_the_fallback_backend() {
    hooks_run_in_order(&["--backend", "fallback"]);
}

/// Whether anything of gateway `name` is left in `t`'s gateway namespace or on the host.
fn leftovers(t: &Topo, name: &str) -> Vec<String> {
    let mut left = Vec::new();
    if t.gw.ip(["link", "show", "dev", name]).is_ok() {
        left.push(format!("interface {name}"));
    }
    if std::path::Path::new(&format!("/run/wgxdp/{name}")).exists() {
        left.push("run directory".into());
    }
    if std::path::Path::new(&format!("/var/run/wireguard/{name}.sock")).exists() {
        left.push("UAPI socket".into());
    }
    for ifname in [&t.wan_if, &t.lan_if] {
        if ok(t.gw.ip(["-d", "link", "show", "dev", ifname])).contains("prog/xdp") {
            left.push(format!("XDP on {ifname}"));
        }
    }
    let procs = t.gw.pids().unwrap_or_default();
    if !procs.is_empty() {
        left.push(format!("processes {procs:?}"));
    }
    left
}

/// A failing PostUp fails `up`, which takes down what it set up (wg-quick's trap): processes,
/// interface, XDP, run directory and UAPI socket. A failing PreUp stops it before anything.
fn a_failing_up_hook_leaves_nothing(backend: &[&str]) {
    if !require() {
        return;
    }
    let log = HookLog::new();
    let l = log.0.display();
    let lines =
        format!("PostUp = echo 'PostUp %i' >> {l}\nPostUp = false\nPostUp = echo never >> {l}\n");
    let (t, up) = topo_full(1, backend, Shape::TwoArmed { queues: 1 }, &lines);
    let stderr = String::from_utf8_lossy(&up.stderr);
    assert!(!up.status.success(), "up succeeded: {stderr}");
    assert!(stderr.contains("PostUp `false` failed"), "{stderr}");
    assert_eq!(
        log.read(),
        format!("PostUp {}\n", t.name),
        "ran up to the failure"
    );
    let left = leftovers(&t, &t.name);
    assert!(left.is_empty(), "left behind: {left:?}");

    // PreUp fails: nothing is started; the same name then comes up.
    std::fs::write(
        &t.conf,
        std::fs::read_to_string(&t.conf)
            .unwrap()
            .replace("PostUp = false\n", "PreUp = exit 7\n"),
    )
    .unwrap();
    let mut args = vec![
        BIN,
        "up",
        t.conf.to_str().unwrap(),
        "--wan",
        &t.wan_if,
        "--lan",
        &t.lan_if,
        "--name",
        &t.name,
    ];
    args.extend_from_slice(backend);
    let out = t.gw.command(&args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("PreUp `exit 7` failed"),
        "{stderr}"
    );
    assert_eq!(
        log.read(),
        format!("PostUp {}\n", t.name),
        "no PostUp after a failed PreUp"
    );
    let left = leftovers(&t, &t.name);
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn a_failing_up_hook_leaves_nothing_on_xdp() {
    a_failing_up_hook_leaves_nothing(&[]);
}

#[test]
fn a_failing_up_hook_leaves_nothing_on_the_fallback_backend() {
    a_failing_up_hook_leaves_nothing(&["--backend", "fallback"]);
}

/// SaveConfig = true: `down` writes the running state back to the file, as wg-quick does: a
/// peer added live is in it, under the file's wg-quick keys, readable by root alone, and the
/// file brings the same gateway up again.
#[test]
fn save_config_writes_live_changes_back() {
    if !require() {
        return;
    }
    let lines = "SaveConfig = true\nPostUp = true # kept verbatim\n";
    let (t, up) = topo_full(1, &[], Shape::TwoArmed { queues: 1 }, lines);
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let added = testbed::WgKeypair::generate().unwrap();
    ok(t.gw.exec([
        "wg",
        "set",
        &t.name,
        "peer",
        added.public_key(),
        "allowed-ips",
        "198.19.0.50/32",
    ]));
    let down = t.gw.command([BIN, "down", &t.name]).output().unwrap();
    assert!(
        down.status.success(),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
    let saved = std::fs::read_to_string(&t.conf).unwrap();
    for line in [
        format!("Address = {GW_TUNNEL_V4}/24"),
        format!("Address = {GW_TUNNEL_V6}/64"),
        "SaveConfig = true".into(),
        "PostUp = true # kept verbatim".into(),
        "ListenPort = 51820".into(),
        format!("PublicKey = {}", t.peers[0].wg.public_key()),
        format!(
            "PublicKey = {}\nAllowedIPs = 198.19.0.50/32",
            added.public_key()
        ),
    ] {
        assert!(saved.contains(&line), "{line:?} missing:\n{saved}");
    }
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&t.conf).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let again =
        t.gw.command([
            BIN,
            "up",
            t.conf.to_str().unwrap(),
            "--wan",
            &t.wan_if,
            "--lan",
            &t.lan_if,
            "--name",
            &t.name,
        ])
        .output()
        .unwrap();
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let peers = ok(t.gw.exec(["wg", "show", &t.name, "peers"]));
    assert!(
        peers.contains(added.public_key()),
        "the saved peer is back: {peers}"
    );

    // Control killed: no live state left to save; `down` still goes, the file stays.
    let control: i32 = std::fs::read_to_string(format!("/run/wgxdp/{}/control.pid", t.name))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(control),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let before = std::fs::read_to_string(&t.conf).unwrap();
    let down = t.gw.command([BIN, "down", &t.name]).output().unwrap();
    let stderr = String::from_utf8_lossy(&down.stderr);
    assert!(down.status.success(), "{stderr}");
    assert!(stderr.contains("is left as it was"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&t.conf).unwrap(), before);
    let left = leftovers(&t, &t.name);
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// DNS needs resolvconf, as with wg-quick: where it is missing, `up` refuses the file before
/// anything starts (wg-quick fails the same way, after creating the interface). Where it is
/// installed, applying it would change the host's resolver (namespaces share /etc), so the
/// test checks only the refusal.
#[test]
fn dns_without_resolvconf_is_refused_before_anything_starts() {
    if !require() {
        return;
    }
    if testbed::find_tool("resolvconf").is_some() {
        eprintln!("resolvconf is installed: nothing to refuse here");
        return;
    }
    let log = HookLog::new();
    let lines = format!(
        "DNS = {GW_TUNNEL_V4}, example.net\nPreUp = echo ran >> {}\n",
        log.0.display()
    );
    let (t, up) = topo_full(1, &[], Shape::TwoArmed { queues: 1 }, &lines);
    let stderr = String::from_utf8_lossy(&up.stderr);
    assert!(!up.status.success(), "{stderr}");
    assert!(
        stderr.contains("needs resolvconf") && stderr.contains(GW_TUNNEL_V4),
        "{stderr}"
    );
    assert_eq!(log.read(), "", "refused before PreUp");
    let left = leftovers(&t, &t.name);
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// An MTU the workers' frames cannot hold is refused before anything starts.
#[test]
fn an_mtu_the_frames_cannot_hold_is_refused() {
    if !require() {
        return;
    }
    let (t, up) = topo_full(1, &[], Shape::TwoArmed { queues: 1 }, "MTU = 1800\n");
    let stderr = String::from_utf8_lossy(&up.stderr);
    assert!(!up.status.success(), "{stderr}");
    assert!(
        stderr.contains("MTU = 1800") && stderr.contains("1760"),
        "{stderr}"
    );
    let left = leftovers(&t, &t.name);
    assert!(left.is_empty(), "left behind: {left:?}");
}
