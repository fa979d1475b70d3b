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
