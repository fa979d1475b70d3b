//! A peer failing over from another gateway of a cluster: data for an unknown index, from
//! where the cluster last saw a peer (a `wgxdp_failover_endpoint` hint), makes control start a
//! handshake with that peer at once; from any other source, nothing happens; a peer's
//! handshake rate limit holds.

mod common;

use contract::{Region, WorkerEvent};
use proto::keys::PrivateKey;
use rand_core::OsRng;
use std::net::UdpSocket;
use std::time::Duration;

#[test]
fn data_for_an_unknown_index_from_a_peers_endpoint_starts_a_handshake() {
    let peer = PrivateKey::generate(&mut OsRng);
    let mut gw = common::gateway_with(
        "failover",
        &[peer.public_key()],
        4,
        None,
        Some("127.0.0.1:0".parse().unwrap()),
    );
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let endpoint = sock.local_addr().unwrap();
    // The cluster's hint (what `wgxdp sync` hands over): not the peer's endpoint here, so
    // nothing is sent to the peer because of it.
    gw.set(&format!(
        "public_key={}\nupdate_only=true\nwgxdp_failover_endpoint={endpoint}\n",
        common::hex(&peer.public_key())
    ))
    .unwrap();
    assert!(!gw.get().contains("endpoint="), "{}", gw.get());
    let region = Region::attach(&gw.region).unwrap();
    let initiations = |gw: &mut common::Gw| {
        gw.control.step();
        let mut buf = [0u8; 256];
        let mut n = 0;
        while let Ok((len, _)) = sock.recv_from(&mut buf) {
            // A handshake initiation: type 1, 148 bytes.
            assert_eq!((buf[0], len), (1, 148));
            n += 1;
        }
        n
    };
    // Another source: nothing is sent.
    let stranger = "127.0.0.1:9".parse().unwrap();
    assert!(region.push_event(0, &WorkerEvent::UnknownIndex { from: stranger }));
    assert_eq!(initiations(&mut gw), 0);
    // From the hinted address: one initiation, to it, which becomes the peer's endpoint.
    assert!(region.push_event(0, &WorkerEvent::UnknownIndex { from: endpoint }));
    assert_eq!(initiations(&mut gw), 1);
    assert!(gw.get().contains(&format!("endpoint={endpoint}")));
    // Again at once: the peer's rate limit (REKEY_TIMEOUT) holds.
    assert!(region.push_event(0, &WorkerEvent::UnknownIndex { from: endpoint }));
    assert_eq!(initiations(&mut gw), 0);
    // Counted, once.
    let page = gw.scrape();
    assert!(
        page.lines()
            .any(|l| l == "wgxdp_failover_handshakes_total 1"),
        "{page}"
    );
}
