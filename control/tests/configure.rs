//! `set=1` requests applied to a running control process (what `wg set`, `setconf`,
//! `addconf` and `syncconf` send): peers added, changed and removed, allowed IPs with the
//! kernel's ownership rules, the region the workers read kept in step, and refused requests
//! that change nothing. Loopback only, no privilege needed.

use control::daemon::{Control, ControlOptions};
use control::uapi::set::parse;
use control::uapi::{format_get, Errno};
use dataplane::shm::layout::{decode_prefix, PeerRecord, SessionRecord};
use proto::device::{Device, PeerConfig};
use proto::keys::{PrivateKey, PublicKey};
use proto::time::{Instant, Now};
use rand_core::OsRng;
use std::net::UdpSocket;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

struct Gw {
    control: Control,
    region: PathBuf,
    key: PrivateKey,
}

impl Drop for Gw {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.region);
    }
}

fn hex(k: &PublicKey) -> String {
    k.as_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

fn key() -> PublicKey {
    PrivateKey::generate(&mut OsRng).public_key()
}

/// A gateway with `peers` configured peers (10.0.0.N/32 each) and room for `max_peers`.
fn gateway(tag: &str, peers: &[PublicKey], max_peers: usize) -> Gw {
    let key = PrivateKey::generate(&mut OsRng);
    let mut text = format!(
        "[Interface]\nPrivateKey = {}\nListenPort = 0\n",
        key.to_base64()
    );
    for (i, p) in peers.iter().enumerate() {
        text.push_str(&format!(
            "\n[Peer]\nPublicKey = {}\nAllowedIPs = 10.0.0.{}/32\n",
            p.to_base64(),
            i + 1
        ));
    }
    let config = control::config::parse("test.conf", &text).unwrap();
    let region = std::env::temp_dir().join(format!("wgxdp-cfg-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_file(&region);
    let control = Control::new(&ControlOptions {
        config,
        region: region.clone(),
        workers: 1,
        max_peers,
        max_sessions: 64,
        max_prefixes: 64,
        time_scale: 1,
        interface_name: None,
    })
    .unwrap();
    Gw {
        control,
        region,
        key,
    }
}

impl Gw {
    fn set(&mut self, body: &str) -> Result<(), Errno> {
        let req = parse(body).map_err(|e| e.errno)?;
        self.control.apply(&req).map_err(|e| e.errno)
    }

    fn get(&self) -> String {
        format_get(&self.control.view())
    }

    /// Allowed IPs of `peer` as `get=1` lists them.
    fn allowed(&self, peer: &PublicKey) -> Vec<String> {
        let v = self.control.view();
        v.peers
            .iter()
            .find(|p| p.public_key == *peer.as_bytes())
            .map(|p| p.allowed_ips.clone())
            .unwrap_or_default()
    }

    /// The region's prefix list as (prefix, slot).
    fn region_prefixes(&self) -> Vec<(String, u32)> {
        let mut buf = Vec::new();
        self.control.region().read_prefixes(&mut buf).unwrap();
        let mut v: Vec<_> = buf
            .iter()
            .filter_map(decode_prefix)
            .map(|(a, l, s)| (format!("{a}/{l}"), s))
            .collect();
        v.sort();
        v
    }

    /// The slot whose valid record carries `peer`'s key tag.
    fn slot_of(&self, peer: &PublicKey) -> Option<u32> {
        let b = peer.as_bytes();
        let tag = u64::from_le_bytes(b[..8].try_into().unwrap());
        self.control
            .region()
            .peers()
            .iter()
            .position(|p| {
                let r = PeerRecord::decode(&p.record.read().unwrap());
                r.valid && r.key_tag == tag
            })
            .map(|i| i as u32)
    }

    /// The data path reports it holds the latest list.
    fn data_path_catches_up(&self) {
        let r = self.control.region();
        r.header()
            .prefixes_applied
            .store(r.prefixes_version(), Ordering::Release);
    }
}

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

    // Takeover: C claims A's /32; A no longer owns it anywhere.
    gw.set(&format!("public_key={}\nallowed_ip=10.0.0.1/32\n", hex(&c)))
        .unwrap();
    assert!(gw.allowed(&a).is_empty());
    assert!(gw
        .region_prefixes()
        .contains(&("10.0.0.1/32".to_string(), sc)));

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

/// Runs a handshake from a proto `Device` acting as `peer` on loopback; returns once the
/// gateway has published a session for it.
fn handshake(gw: &mut Gw, peer: &PrivateKey) -> u32 {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let port = gw.control.local_addr().unwrap().port();
    let start = std::time::Instant::now();
    let now = || {
        Now::new(
            Instant::from_nanos(start.elapsed().as_nanos() as u64 + 1),
            Duration::from_secs(1_700_000_000) + start.elapsed(),
        )
    };
    let mut dev = Device::new(peer.clone(), OsRng);
    let id = dev
        .add_peer(
            now(),
            gw.key.public_key(),
            PeerConfig {
                endpoint: Some(format!("127.0.0.1:{port}").parse().unwrap()),
                ..PeerConfig::default()
            },
        )
        .unwrap();
    dev.initiate_handshake(now(), id);
    let mut buf = [0u8; 2048];
    for _ in 0..50 {
        while let Some(t) = dev.poll_transmit(now(), &mut buf) {
            sock.send_to(&buf[..t.len], t.dst).unwrap();
        }
        gw.control.step();
        if let Ok((n, from)) = sock.recv_from(&mut buf) {
            let _ = dev.handle_datagram(now(), from, &mut buf[..n], false);
        }
        let live = gw.control.region().sessions().iter().position(|s| {
            s.record
                .read()
                .is_some_and(|w| SessionRecord::decode(&w).is_valid())
        });
        if let Some(slot) = live {
            return slot as u32;
        }
    }
    panic!("no session published");
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
