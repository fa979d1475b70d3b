//! The resolver learns next hops and MACs from the kernel's tables over netlink, inside a
//! namespace: on-link destinations, a destination behind a gateway, IPv4 and IPv6.

use dataplane::neigh;
use std::net::IpAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[test]
fn learns_macs_of_on_link_hosts_and_gateways() {
    if !testbed::require_netns() {
        return;
    }
    let a = testbed::Netns::new("nba").unwrap();
    let b = testbed::Netns::new("nbb").unwrap();
    let wan = testbed::VethPair::wan(&a, &b).unwrap();
    let b_mac_text = String::from_utf8(
        b.ip(["-br", "link", "show", "dev", &wan.b.ifname])
            .unwrap()
            .stdout,
    )
    .unwrap();
    let b_mac: Vec<u8> = b_mac_text
        .split_whitespace()
        .nth(2)
        .unwrap()
        .split(':')
        .map(|h| u8::from_str_radix(h, 16).unwrap())
        .collect();
    // A route via b's address for a far network.
    a.ip([
        "route",
        "add",
        "198.19.113.0/24",
        "via",
        &wan.b.v4().to_string(),
    ])
    .unwrap();
    // Populate the neighbour tables the way traffic would.
    a.ping(wan.b.v4().into(), 1, Duration::from_secs(3))
        .unwrap();
    a.ping(wan.b.v6().into(), 1, Duration::from_secs(3))
        .unwrap();

    // The interface the routes leave by, in a's namespace.
    let shown = String::from_utf8(
        a.ip(["-o", "link", "show", "dev", &wan.a.ifname])
            .unwrap()
            .stdout,
    )
    .unwrap();
    let oif: u32 = shown.split(':').next().unwrap().trim().parse().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let (n, handle) = a.run_in(|| neigh::spawn(stop.clone())).unwrap();
    let far: IpAddr = "198.19.113.7".parse().unwrap();
    let targets: [IpAddr; 3] = [wan.b.v4().into(), wan.b.v6().into(), far];
    for t in targets {
        n.request(t);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let snap = n.load();
        if targets.iter().all(|t| snap.lookup(*t, oif).is_some()) {
            for t in targets {
                assert_eq!(snap.lookup(t, oif).unwrap().to_vec(), b_mac, "{t}");
                assert_eq!(
                    snap.lookup(t, oif + 1000),
                    None,
                    "only out of the route's interface"
                );
            }
            assert_eq!(
                snap.next_hop[&far],
                neigh::Hop {
                    via: IpAddr::from(wan.b.v4()),
                    oif
                }
            );
            break;
        }
        assert!(Instant::now() < deadline, "not learned: {snap:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    handle.join().unwrap();
}

/// Waits until `pred` holds of the published snapshot; returns how long that took.
fn until(n: &neigh::Neighbours, what: &str, pred: impl Fn(&neigh::Snapshot) -> bool) -> Duration {
    let t = Instant::now();
    while !pred(&n.load()) {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "{what}: never seen ({:?})",
            **n.load()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    t.elapsed()
}

/// The resolver follows the kernel's events rather than polling its tables: a route moved to
/// another gateway, a neighbour's new MAC and a new address of the host are in the snapshot
/// within a second, every time (polling routes every 5 s, as before, misses that bound most
/// of the time).
#[test]
fn follows_route_neighbour_and_address_changes_as_they_happen() {
    if !testbed::require_netns() {
        return;
    }
    let a = testbed::Netns::new("nea").unwrap();
    let b = testbed::Netns::new("neb").unwrap();
    let wan = testbed::VethPair::wan(&a, &b).unwrap();
    let dev = wan.a.ifname.clone();
    let shown =
        String::from_utf8(a.ip(["-o", "link", "show", "dev", &dev]).unwrap().stdout).unwrap();
    let oif: u32 = shown.split(':').next().unwrap().trim().parse().unwrap();
    // Two routers on the link, known by static entries (their MACs are the test's to change).
    let routers = ["198.18.99.1", "198.18.99.2"];
    let mac = |n: u8| format!("02:00:00:00:99:{n:02x}");
    for (i, r) in routers.iter().enumerate() {
        let ok = a
            .ip([
                "neigh",
                "replace",
                r,
                "lladdr",
                &mac(i as u8 + 1),
                "dev",
                &dev,
                "nud",
                "permanent",
            ])
            .unwrap();
        assert!(ok.status.success(), "{ok:?}");
    }
    let via = |r: &str| {
        let ok = a
            .ip([
                "route",
                "replace",
                "198.19.50.0/24",
                "via",
                r,
                "dev",
                &dev,
                "onlink",
            ])
            .unwrap();
        assert!(ok.status.success(), "{ok:?}");
    };
    via(routers[0]);
    let stop = Arc::new(AtomicBool::new(false));
    let (n, handle) = a.run_in(|| neigh::spawn(stop.clone())).unwrap();
    let far: IpAddr = "198.19.50.7".parse().unwrap();
    n.request(far);
    let is = |m: u8| move |s: &neigh::Snapshot| s.lookup(far, oif) == Some([2, 0, 0, 0, 0x99, m]);
    until(&n, "first resolution", is(1));
    for (round, (r, m)) in [(routers[1], 2), (routers[0], 1), (routers[1], 2)]
        .into_iter()
        .enumerate()
    {
        via(r);
        let took = until(&n, "the route's new gateway", is(m));
        assert!(took < Duration::from_secs(1), "round {round}: {took:?}");
    }
    // The router's MAC changes (a replaced box).
    let ok = a
        .ip([
            "neigh",
            "replace",
            routers[1],
            "lladdr",
            &mac(7),
            "dev",
            &dev,
            "nud",
            "permanent",
        ])
        .unwrap();
    assert!(ok.status.success());
    let took = until(&n, "the neighbour's new MAC", is(7));
    assert!(took < Duration::from_secs(1), "{took:?}");
    // An address added to the host.
    let added: IpAddr = "198.18.77.1".parse().unwrap();
    assert!(a
        .ip(["address", "add", "198.18.77.1/32", "dev", &dev])
        .unwrap()
        .status
        .success());
    let took = until(&n, "the new local address", |s| s.is_local(added));
    assert!(took < Duration::from_secs(1), "{took:?}");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    handle.join().unwrap();
}
