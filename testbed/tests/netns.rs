//! Self-tests of the namespace harness against the real kernel. Root only: without it they
//! skip with a `SKIPPED:` line, and fail when `WGXDP_REQUIRE_PRIVILEGED=1` (CI).

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::Path;
use std::time::Duration;
use testbed::{plan, Netns, VethPair};

fn exists(pid: u32) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
}

#[test]
fn veth_carries_ping_over_ipv4_and_ipv6() {
    if !testbed::require_netns() {
        return;
    }
    let a = Netns::new("ping-a").unwrap();
    let b = Netns::new("ping-b").unwrap();
    let wan = VethPair::wan(&a, &b).unwrap();
    for (from, to) in [
        (&a, IpAddr::from(wan.b.v4())),
        (&a, IpAddr::from(wan.b.v6())),
        (&b, IpAddr::from(wan.a.v4())),
        (&b, IpAddr::from(wan.a.v6())),
    ] {
        from.ping(to, 1, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("ping {to} from {}: {e}", from.name()));
    }
}

#[test]
fn namespaces_are_isolated() {
    if !testbed::require_netns() {
        return;
    }
    let a = Netns::new("iso-a").unwrap();
    let b = Netns::new("iso-b").unwrap();
    let c = Netns::new("iso-c").unwrap();
    let _ab = VethPair::wan(&a, &b).unwrap();
    assert_ne!(a.name(), b.name());
    // c has only lo: the plan's addresses (which a and b both use) are unreachable from it.
    let err = c
        .ping(plan::WAN_B_V4.ip, 1, Duration::from_secs(1))
        .unwrap_err();
    assert!(err.to_string().contains("Network is unreachable"), "{err}");
}

#[test]
fn run_in_binds_sockets_inside_the_namespace() {
    if !testbed::require_netns() {
        return;
    }
    let a = Netns::new("udp-a").unwrap();
    let b = Netns::new("udp-b").unwrap();
    let wan = VethPair::wan(&a, &b).unwrap();
    for (a_ip, b_ip) in [
        (IpAddr::from(wan.a.v4()), IpAddr::from(wan.b.v4())),
        (IpAddr::from(wan.a.v6()), IpAddr::from(wan.b.v6())),
    ] {
        // The addresses exist only inside the namespaces: binding proves we were in them.
        let sa = a
            .run_in(|| UdpSocket::bind(SocketAddr::new(a_ip, 0)))
            .unwrap();
        let sb = b
            .run_in(|| UdpSocket::bind(SocketAddr::new(b_ip, 0)))
            .unwrap();
        // Used from the test's own thread, which never left the root namespace.
        sb.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        sa.send_to(b"over the veth", sb.local_addr().unwrap())
            .unwrap();
        let mut buf = [0u8; 64];
        let (n, from) = sb.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"over the veth");
        assert_eq!(from, sa.local_addr().unwrap());
    }
    assert!(
        UdpSocket::bind(SocketAddr::new(plan::WAN_A_V4.ip, 0)).is_err(),
        "the root namespace must not have the plan's addresses"
    );
}

#[test]
fn run_in_propagates_panics() {
    if !testbed::require_netns() {
        return;
    }
    let a = Netns::new("panic-run-in").unwrap();
    let caught = std::panic::catch_unwind(|| a.run_in(|| panic!("inside the namespace")));
    let payload = caught.unwrap_err();
    assert_eq!(
        payload.downcast_ref::<&str>(),
        Some(&"inside the namespace")
    );
}

#[test]
fn exec_error_carries_stderr() {
    if !testbed::require_netns() {
        return;
    }
    let a = Netns::new("exec").unwrap();
    let out = a.exec(["ip", "-o", "link", "show", "lo"]).unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("UP"));
    let err = a.exec(["sh", "-c", "echo nope >&2; exit 7"]).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("nope") && msg.contains("exit status: 7"),
        "{msg}"
    );
}

#[test]
fn everything_is_removed_when_the_test_panics() {
    if !testbed::require_netns() {
        return;
    }
    let mut seen = None;
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let a = Netns::new("panic-a").unwrap();
        let b = Netns::new("panic-b").unwrap();
        let wan = VethPair::wan(&a, &b).unwrap();
        let child = a.spawn(["sleep", "600"]).unwrap();
        // A daemon the guard did not start itself: found through `ip netns pids`.
        a.exec(["sh", "-c", "sleep 600 >/dev/null 2>&1 & echo $!"])
            .map(|out| {
                let daemon: u32 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
                seen = Some((a.path(), b.path(), wan.a.ifname.clone(), child, daemon));
            })
            .unwrap();
        panic!("test failure inside the guards");
    }));
    assert!(result.is_err());
    let (a_path, b_path, _veth, child, daemon) = seen.unwrap();
    assert!(!a_path.exists(), "{} still exists", a_path.display());
    assert!(!b_path.exists(), "{} still exists", b_path.display());
    assert!(!exists(child), "spawned process {child} survived");
    // The daemon was ended (SIGTERM, SIGKILL if it lingered); its new parent (init) reaps it
    // shortly after.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while exists(daemon) && std::time::Instant::now() < deadline {
        let zombie = std::fs::read_to_string(format!("/proc/{daemon}/stat"))
            .map(|s| s.contains(") Z "))
            .unwrap_or(true);
        if zombie {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let alive = std::fs::read_to_string(format!("/proc/{daemon}/stat"))
        .map(|s| !s.contains(") Z "))
        .unwrap_or(false);
    assert!(!alive, "daemon {daemon} started through exec survived");
}

#[test]
fn multi_queue_veth() {
    if !testbed::require_netns() {
        return;
    }
    let a = Netns::new("mq-a").unwrap();
    let b = Netns::new("mq-b").unwrap();
    let wan = VethPair::builder(&a, &b)
        .names("wan0", "wan1")
        .queues(4)
        .a_addrs(&[plan::WAN_A_V4])
        .b_addrs(&[plan::WAN_B_V4])
        .create()
        .unwrap();
    assert_eq!(
        (wan.a.ifname.as_str(), wan.b.ifname.as_str()),
        ("wan0", "wan1")
    );
    let rx_queues = a
        .exec(["ls", &format!("/sys/class/net/{}/queues", wan.a.ifname)])
        .unwrap();
    let listing = String::from_utf8_lossy(&rx_queues.stdout).into_owned();
    assert_eq!(listing.matches("rx-").count(), 4, "{listing}");
    a.ping(plan::WAN_B_V4.ip, 1, Duration::from_secs(5))
        .unwrap();
}
