//! A control process on loopback for the tests: configured peers, `set=1` requests, and
//! handshakes from a proto `Device` playing a peer.

#![allow(dead_code, reason = "each test binary uses a different part of it")]

use contract::layout::{PeerRecord, SessionRecord};
use contract::prefix_log::PrefixChange;
use control::daemon::{Control, ControlOptions};
use control::uapi::set::parse;
use control::uapi::{format_get, Errno};
use proto::device::{Device, PeerConfig};
use proto::keys::{PrivateKey, PublicKey};
use proto::time::{Instant, Now};
use rand_core::OsRng;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::UdpSocket;
use std::path::PathBuf;
use std::time::Duration;

pub struct Gw {
    pub control: Control,
    pub region: PathBuf,
    pub key: PrivateKey,
    pub options: ControlOptions,
    /// The prefixes as the data-path process learns them from the prefix log.
    pub logged: RefCell<BTreeMap<String, u32>>,
}

impl Drop for Gw {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.region);
    }
}

pub fn hex(k: &PublicKey) -> String {
    hex::encode(k.as_bytes())
}

pub fn key() -> PublicKey {
    PrivateKey::generate(&mut OsRng).public_key()
}

/// Options for a control process on loopback with the configuration `text`: one worker's
/// rings, room for 16 peers, no UAPI socket, a fresh region file named after `tag`.
pub fn options(tag: &str, text: &str) -> ControlOptions {
    let region = std::env::temp_dir().join(format!("wgxdp-cfg-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_file(&region);
    ControlOptions {
        config: control::config::parse("test.conf", text).unwrap(),
        region,
        workers: 1,
        max_peers: 16,
        max_sessions: 64,
        max_prefixes: 64,
        auth_log: None,
        auth_log_max_bytes: control::authlog::DEFAULT_MAX_BYTES,
        metrics: None,
        interface_name: None,
    }
}

/// A gateway with `peers` configured peers (10.0.0.N/32 each) and room for `max_peers`.
pub fn gateway(tag: &str, peers: &[PublicKey], max_peers: usize) -> Gw {
    gateway_with(tag, peers, max_peers, None, None)
}

/// [`gateway`] with an authentication log file and a metrics endpoint.
pub fn gateway_with(
    tag: &str,
    peers: &[PublicKey],
    max_peers: usize,
    auth_log: Option<PathBuf>,
    metrics: Option<std::net::SocketAddr>,
) -> Gw {
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
    let options = ControlOptions {
        max_peers,
        auth_log,
        metrics,
        ..options(tag, &text)
    };
    let control = Control::new(&options).unwrap();
    Gw {
        control,
        region: options.region.clone(),
        key,
        options,
        logged: RefCell::default(),
    }
}

impl Gw {
    /// A new control process on the same region and configuration file (the old one is
    /// gone, as after `kill -9`; what it changed live is not in the file).
    pub fn restart(&mut self) {
        let options = ControlOptions {
            metrics: None,
            ..self.options.clone()
        };
        self.control = Control::new(&options).unwrap();
    }

    pub fn set(&mut self, body: &str) -> Result<(), Errno> {
        let req = parse(body).map_err(|e| e.errno)?;
        self.control.apply(&req).map_err(|e| e.errno)
    }

    pub fn get(&self) -> String {
        format_get(&self.control.view())
    }

    /// One scrape of the metrics endpoint (the gateway must have one), answered while the
    /// control loop steps: the whole HTTP answer.
    pub fn scrape(&mut self) -> String {
        use std::io::{Read as _, Write as _};
        let addr = self.control.metrics_addr().unwrap();
        let client = std::thread::spawn(move || {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            let mut page = String::new();
            s.read_to_string(&mut page).unwrap();
            page
        });
        while !client.is_finished() {
            self.control.step();
        }
        client.join().unwrap()
    }

    /// Allowed IPs of `peer` as `get=1` lists them.
    pub fn allowed(&self, peer: &PublicKey) -> Vec<String> {
        let v = self.control.view();
        v.peers
            .iter()
            .find(|p| p.public_key == *peer.as_bytes())
            .map(|p| p.allowed_ips.clone())
            .unwrap_or_default()
    }

    /// The prefixes as (prefix, slot), as the data-path process knows them: the changes in
    /// the region's prefix log applied (here, as the data path does) to what came before.
    pub fn region_prefixes(&self) -> Vec<(String, u32)> {
        let mut logged = self.logged.borrow_mut();
        self.control
            .region()
            .prefix_log()
            .drain(usize::MAX, |c| match c {
                PrefixChange::Reset => logged.clear(),
                PrefixChange::Set { addr, len, peer } => {
                    logged.insert(format!("{addr}/{len}"), peer);
                }
                PrefixChange::Remove { addr, len } => {
                    logged.remove(&format!("{addr}/{len}"));
                }
            });
        logged.iter().map(|(p, s)| (p.clone(), *s)).collect()
    }

    /// The slot the workers' table (in the region) routes `addr` to.
    pub fn route(&self, addr: &str) -> Option<u32> {
        let mut r = allowedips::Reader::attach(self.control.region().clone()).unwrap();
        r.lookup(addr.parse().unwrap())
    }

    /// The slot whose valid record carries `peer`'s key tag.
    pub fn slot_of(&self, peer: &PublicKey) -> Option<u32> {
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

    /// The data path applies the logged changes.
    pub fn data_path_catches_up(&self) {
        self.region_prefixes();
    }
}

/// Runs a handshake from a proto `Device` acting as `peer` on loopback; returns the slot once
/// the gateway has published a new session (one whose index was not live before).
pub fn handshake(gw: &mut Gw, peer: &PrivateKey) -> u32 {
    let live_before = live_sessions(gw);
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
        if let Some((slot, _)) = live_sessions(gw)
            .into_iter()
            .find(|s| !live_before.contains(s))
        {
            return slot;
        }
    }
    panic!("no session published");
}

/// The region's valid sessions as (slot, receiver index).
pub fn live_sessions(gw: &Gw) -> Vec<(u32, u32)> {
    gw.control
        .region()
        .sessions()
        .iter()
        .enumerate()
        .filter_map(|(i, s)| {
            let r = SessionRecord::decode(&s.record.read()?);
            r.is_valid().then_some((i as u32, r.local_index))
        })
        .collect()
}
