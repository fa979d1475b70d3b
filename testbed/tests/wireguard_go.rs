//! Self-tests of the wireguard-go harness. Root only, plus wireguard-go, wg and /dev/net/tun:
//! otherwise they skip (and fail under `WGXDP_REQUIRE_PRIVILEGED=1`).

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::{Duration, SystemTime};
use testbed::{plan, wg, Netns, VethPair, WgConfig, WgKeypair, WgPeer, WireguardGo};

#[test]
fn reports_the_configured_peer_and_port() {
    if !testbed::require_wireguard_go() {
        return;
    }
    let ns = Netns::new("wgo-config").unwrap();
    let own = WgKeypair::from_private(wg::genkey().unwrap()).unwrap();
    let peer_key = wg::pubkey(&wg::genkey().unwrap()).unwrap();
    let endpoint: SocketAddr = "[2001:2::1]:40000".parse().unwrap();
    let wgo = WireguardGo::start(
        &ns,
        WgConfig {
            keypair: Some(own.clone()),
            listen_port: 51999,
            addrs: vec![plan::TUNNEL_B_V4],
            peers: vec![WgPeer {
                preshared_key: Some(wg::genpsk().unwrap()),
                allowed_ips: vec![plan::TUNNEL_A_V4.host(), plan::TUNNEL_A_V6.host()],
                endpoint: Some(endpoint),
                persistent_keepalive: Some(25),
                ..WgPeer::new(peer_key.clone())
            }],
            ..WgConfig::default()
        },
    )
    .unwrap();
    assert!(wgo.uapi_socket().exists());

    let dump = wgo.wg_show_dump().unwrap();
    assert_eq!(dump.public_key.as_deref(), Some(own.public_key()));
    assert_eq!(dump.listen_port, 51999);
    assert_eq!(dump.peers.len(), 1);
    let peer = dump.peer(&peer_key).unwrap();
    assert!(peer.has_preshared_key);
    assert_eq!(peer.endpoint, Some(endpoint));
    assert_eq!(
        peer.allowed_ips,
        vec![plan::TUNNEL_A_V4.host(), plan::TUNNEL_A_V6.host()]
    );
    assert_eq!(peer.persistent_keepalive, Some(25));
    assert_eq!(peer.latest_handshake, None);

    // The interface is up with its address, inside the namespace only.
    let addrs = ns
        .exec(["ip", "-o", "addr", "show", "dev", wgo.ifname()])
        .unwrap();
    assert!(String::from_utf8_lossy(&addrs.stdout).contains("198.19.0.2/24"));
    // wireguard-go listens on the port inside the namespace (UDP, v4 and v6).
    let ss = ns.exec(["cat", "/proc/net/udp6", "/proc/net/udp"]).unwrap();
    let port_hex = format!(":{:04X} ", 51999);
    assert!(String::from_utf8_lossy(&ss.stdout).contains(&port_hex));

    wgo.remove_peer(&peer_key).unwrap();
    assert!(wgo.wg_show_dump().unwrap().peers.is_empty());
}

#[test]
fn drop_stops_the_process_and_removes_the_socket() {
    if !testbed::require_wireguard_go() {
        return;
    }
    let ns = Netns::new("wgo-drop").unwrap();
    let wgo = WireguardGo::start(
        &ns,
        WgConfig {
            listen_port: 0,
            ..WgConfig::default()
        },
    )
    .unwrap();
    assert_ne!(wgo.listen_port(), 0, "the random port is reported");
    assert_eq!(wgo.wg_show_dump().unwrap().listen_port, wgo.listen_port());
    let (pid, socket, ifname) = (wgo.pid(), wgo.uapi_socket(), wgo.ifname().to_owned());
    drop(wgo);
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "pid {pid} survived"
    );
    assert!(!socket.exists(), "{} left behind", socket.display());
    assert!(
        ns.ip(["link", "show", &ifname]).is_err(),
        "{ifname} left behind"
    );
}

/// Two wireguard-go peers handshake over the IPv6 WAN and carry IPv4 and IPv6 inside: proves
/// the harness (addresses, endpoints, allowed IPs, dump parsing) end to end, the same way the
/// interop tests use it with our side in place of one of them.
#[test]
fn two_peers_handshake_and_carry_traffic() {
    if !testbed::require_wireguard_go() {
        return;
    }
    let a = Netns::new("wgo-a").unwrap();
    let b = Netns::new("wgo-b").unwrap();
    let wan = VethPair::wan(&a, &b).unwrap();
    let a_keys = WgKeypair::generate().unwrap();
    let b_keys = WgKeypair::generate().unwrap();

    let wgo_a = WireguardGo::start(
        &a,
        WgConfig {
            keypair: Some(a_keys.clone()),
            addrs: vec![plan::TUNNEL_A_V4, plan::TUNNEL_A_V6],
            peers: vec![WgPeer {
                allowed_ips: vec![plan::TUNNEL_B_V4.host(), plan::TUNNEL_B_V6.host()],
                endpoint: Some(SocketAddr::new(wan.b.v6().into(), plan::WG_PORT)),
                ..WgPeer::new(b_keys.public_key())
            }],
            ..WgConfig::default()
        },
    )
    .unwrap();
    let wgo_b = WireguardGo::start(
        &b,
        WgConfig {
            keypair: Some(b_keys.clone()),
            addrs: vec![plan::TUNNEL_B_V4, plan::TUNNEL_B_V6],
            peers: vec![WgPeer {
                allowed_ips: vec![plan::TUNNEL_A_V4.host(), plan::TUNNEL_A_V6.host()],
                ..WgPeer::new(a_keys.public_key())
            }],
            ..WgConfig::default()
        },
    )
    .unwrap();

    let before = SystemTime::now() - Duration::from_secs(2);
    a.ping(plan::TUNNEL_B_V4.ip, 3, Duration::from_secs(10))
        .unwrap();
    a.ping(plan::TUNNEL_B_V6.ip, 3, Duration::from_secs(10))
        .unwrap();

    let at_b = wgo_b
        .wait_for_handshake(a_keys.public_key(), Duration::from_secs(5))
        .unwrap();
    assert!(at_b.latest_handshake.unwrap() >= before);
    // B learned A's endpoint from the authenticated handshake.
    assert_eq!(
        at_b.endpoint,
        Some(SocketAddr::new(IpAddr::from(wan.a.v6()), plan::WG_PORT))
    );
    assert!(at_b.rx_bytes > 0 && at_b.tx_bytes > 0, "{at_b:?}");
    let at_a = wgo_a
        .wait_for_handshake(b_keys.public_key(), Duration::from_secs(5))
        .unwrap();
    assert!(at_a.rx_bytes > 0 && at_a.tx_bytes > 0, "{at_a:?}");
    assert!(
        wgo_a.log().contains("Received handshake response"),
        "{}",
        wgo_a.log()
    );
}
