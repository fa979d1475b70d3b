//! `set=1` requests applied to a running control process (what `wg set`, `setconf`,
//! `addconf` and `syncconf` send): peers added, changed and removed, allowed IPs with the
//! kernel's ownership rules, the region the workers read kept in step, and refused requests
//! that change nothing. Loopback only, no privilege needed.

mod common;

use common::*;
use contract::layout::{PeerRecord, SessionRecord};
use control::uapi::Errno;
use proto::keys::PrivateKey;
use rand_core::OsRng;
use std::net::UdpSocket;
use std::sync::atomic::Ordering;

#[test]
fn peers_and_allowed_ips_change_live_with_kernel_rules() {
    let (a, b, c) = (key(), key(), key());
    let mut gw = gateway("live", &[a, b], 8);
    assert_eq!(gw.allowed(&a), ["10.0.0.1/32"]);
    let (sa, sb) = (gw.slot_of(&a).unwrap(), gw.slot_of(&b).unwrap());

    // Add C with a preshared key, an endpoint and prefixes (host bits cleared).
    gw.set(&format!(
        "public_key={}\npreshared_key={}\nendpoint=198.18.0.9:51820\n\
         persistent_keepalive_interval=0\nallowed_ip=10.1.0.0/16\nallowed_ip=192.95.5.65/27\n\
         allowed_ip=2001:db8::/48\n",
        hex(&c),
        "11".repeat(32)
    ))
    .unwrap();
    assert_eq!(
        gw.allowed(&c),
        ["10.1.0.0/16", "192.95.5.64/27", "2001:db8::/48"]
    );
    let sc = gw.slot_of(&c).expect("C has a valid record");
    assert!(![sa, sb].contains(&sc));
    let text = gw.get();
    assert!(text.contains(&format!("preshared_key={}\n", "11".repeat(32))));
    assert!(text.contains("endpoint=198.18.0.9:51820\n"));
    assert!(gw
        .region_prefixes()
        .contains(&("10.1.0.0/16".to_string(), sc)));
    assert_eq!(
        gw.route("10.1.2.3"),
        Some(sc),
        "the workers' table routes it"
    );

    // Takeover: C claims A's /32; A no longer owns it anywhere.
    gw.set(&format!("public_key={}\nallowed_ip=10.0.0.1/32\n", hex(&c)))
        .unwrap();
    assert!(gw.allowed(&a).is_empty());
    assert!(gw
        .region_prefixes()
        .contains(&("10.0.0.1/32".to_string(), sc)));
    assert_eq!(gw.route("10.0.0.1"), Some(sc));

    // `-prefix` removes only what the peer owns.
    gw.set(&format!(
        "public_key={}\nallowed_ip=-10.1.0.0/16\n",
        hex(&b)
    ))
    .unwrap();
    assert!(gw.allowed(&c).contains(&"10.1.0.0/16".to_string()));
    gw.set(&format!(
        "public_key={}\nallowed_ip=-10.1.0.0/16\n",
        hex(&c)
    ))
    .unwrap();
    assert!(!gw.allowed(&c).contains(&"10.1.0.0/16".to_string()));

    // replace_allowed_ips then new ones.
    gw.set(&format!(
        "public_key={}\nreplace_allowed_ips=true\nallowed_ip=10.9.0.0/24\n",
        hex(&b)
    ))
    .unwrap();
    assert_eq!(gw.allowed(&b), ["10.9.0.0/24"]);

    // update_only for an unknown peer creates nothing; the interface's own key is ignored.
    let d = key();
    gw.set(&format!(
        "public_key={}\nupdate_only=true\nallowed_ip=10.8.0.0/24\npublic_key={}\nallowed_ip=10.7.0.0/24\n",
        hex(&d),
        hex(&gw.key.public_key())
    ))
    .unwrap();
    assert_eq!(gw.control.view().peers.len(), 3);

    // Remove A: its record goes invalid and its slot is not reused until the data path has
    // applied the list without it.
    gw.set(&format!("public_key={}\nremove=true\n", hex(&a)))
        .unwrap();
    assert_eq!(gw.slot_of(&a), None);
    let rec = PeerRecord::decode(
        &gw.control.region().peers()[sa as usize]
            .record
            .read()
            .unwrap(),
    );
    assert!(!rec.valid);
    assert_eq!(gw.control.view().peers.len(), 2);
    gw.set(&format!("public_key={}\nallowed_ip=10.0.0.5/32\n", hex(&d)))
        .unwrap();
    assert_ne!(
        gw.slot_of(&d),
        Some(sa),
        "not while the data path may route to it"
    );
}

#[test]
fn refused_requests_change_nothing() {
    let (a, b) = (key(), key());
    let mut gw = gateway("refused", &[a], 2);
    let before = gw.get();
    // Room for 2 peers: adding three more is refused as a whole.
    let many: String = (0..3)
        .map(|_| format!("public_key={}\nallowed_ip=10.5.0.0/24\n", hex(&key())))
        .collect();
    assert_eq!(gw.set(&many), Err(Errno::NoSpace));
    // A listen port in use: EADDRINUSE, and the peer in the same request is not added.
    let taken = UdpSocket::bind("[::]:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    assert_eq!(
        gw.set(&format!(
            "listen_port={port}\npublic_key={}\nallowed_ip=10.6.0.0/24\n",
            hex(&b)
        )),
        Err(Errno::PortInUse)
    );
    // A bad line anywhere: nothing before it applied either.
    assert_eq!(
        gw.set(&format!(
            "public_key={}\nallowed_ip=10.6.0.0/24\nallowed_ip=10.6.0.0/99\n",
            hex(&b)
        )),
        Err(Errno::Invalid)
    );
    assert_eq!(gw.get(), before);
}

#[test]
fn replace_peers_listen_port_and_fwmark() {
    let (a, b) = (key(), key());
    let mut gw = gateway("replace", &[a], 8);
    let free = UdpSocket::bind("[::]:0").unwrap();
    let port = free.local_addr().unwrap().port();
    drop(free);
    gw.set(&format!(
        "listen_port={port}\nfwmark=51820\nreplace_peers=true\npublic_key={}\nallowed_ip=10.2.0.0/16\n",
        hex(&b)
    ))
    .unwrap();
    let v = gw.control.view();
    assert_eq!(v.listen_port, port);
    assert_eq!(gw.control.local_addr().unwrap().port(), port);
    assert_eq!(
        gw.control
            .region()
            .header()
            .listen_port
            .load(Ordering::Relaxed),
        u64::from(port),
        "the data path follows the port"
    );
    assert!(gw.get().contains("fwmark=51820\n"));
    assert_eq!(v.peers.len(), 1);
    assert_eq!(v.peers[0].public_key, *b.as_bytes());
    assert_eq!(gw.slot_of(&a), None);
}

#[test]
fn a_removed_or_rekeyed_peer_loses_its_sessions_at_once() {
    let a = PrivateKey::generate(&mut OsRng);
    let mut gw = gateway("sessions", &[a.public_key()], 4);
    let slot = handshake(&mut gw, &a);
    let rec = |gw: &Gw| {
        SessionRecord::decode(
            &gw.control.region().sessions()[slot as usize]
                .record
                .read()
                .unwrap(),
        )
    };
    assert_eq!(rec(&gw).peer, gw.slot_of(&a.public_key()).unwrap());
    // `wg set wg0 peer A remove`: the keys are wiped before the reply.
    gw.set(&format!(
        "public_key={}\nremove=true\n",
        hex(&a.public_key())
    ))
    .unwrap();
    let r = rec(&gw);
    assert!(!r.is_valid() && r.send_key == [0; 32] && r.recv_key == [0; 32]);

    // Added again, it handshakes; a new interface key then retires that session too.
    gw.set(&format!(
        "public_key={}\nallowed_ip=10.0.0.1/32\n",
        hex(&a.public_key())
    ))
    .unwrap();
    gw.data_path_catches_up();
    let slot2 = handshake(&mut gw, &a);
    let new_key = PrivateKey::generate(&mut OsRng);
    let hexkey: String = new_key
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    gw.set(&format!("private_key={hexkey}\n")).unwrap();
    let r = SessionRecord::decode(
        &gw.control.region().sessions()[slot2 as usize]
            .record
            .read()
            .unwrap(),
    );
    assert!(!r.is_valid());
    assert!(gw.get().starts_with(&format!("private_key={hexkey}\n")));
}

#[test]
fn a_restarted_control_keeps_configured_peers_in_their_slots_and_drops_live_ones() {
    let (a, b, c) = (key(), key(), key());
    let mut gw = gateway("restart", &[a, b], 8);
    // A live change: C added, B removed (the file still has B and not C).
    gw.set(&format!(
        "public_key={}\nallowed_ip=10.3.0.0/16\npublic_key={}\nremove=true\n",
        hex(&c),
        hex(&b)
    ))
    .unwrap();
    let (sa, sc) = (gw.slot_of(&a).unwrap(), gw.slot_of(&c).unwrap());
    gw.data_path_catches_up();
    gw.restart();
    assert_eq!(gw.slot_of(&a), Some(sa), "a configured peer keeps its slot");
    assert_eq!(gw.slot_of(&c), None, "a live-added peer is not in the file");
    let rec = PeerRecord::decode(
        &gw.control.region().peers()[sc as usize]
            .record
            .read()
            .unwrap(),
    );
    assert!(!rec.valid, "its slot is invalid");
    let sb = gw.slot_of(&b).expect("B is back from the file");
    assert_ne!(
        sb, sc,
        "not in C's slot while the data path may still route to it"
    );
    let owners: Vec<u32> = gw.region_prefixes().iter().map(|(_, s)| *s).collect();
    assert!(!owners.contains(&sc), "C's prefixes are gone");
    assert_eq!(gw.route("10.3.0.1"), None, "from the workers' table too");
    assert_eq!(gw.route("10.0.0.1"), Some(sa));
}
