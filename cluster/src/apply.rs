//! Turning peer records into UAPI `set=1` requests: the same path `wg set` and `wg syncconf`
//! take, so a change from etcd is applied exactly as a change from the stock tool would be.
//!
//! A full sync compares the records with what the gateway reports (`get=1`) and writes only
//! the differences: a peer whose record has not changed is not touched, so its session,
//! endpoint and counters carry on.

use control::config::{Endpoint, Peer};
use proto::allowedips::Prefix;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use zeroize::Zeroizing;

/// Peers per `set=1` request in a full sync: bounds each request's size (the gateway takes up
/// to 256 MiB) and keeps the control loop's pause per request short.
pub const PEERS_PER_REQUEST: usize = 1000;

/// A peer as the gateway reports it, reduced to what a record sets.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct DevicePeer {
    psk: Zeroizing<String>,
    allowed: BTreeSet<Prefix>,
    keepalive: u64,
    endpoint: Option<String>,
}

/// Reads a `get=1` answer: each peer by public key (hex).
pub fn parse_device(get: &str) -> BTreeMap<String, DevicePeer> {
    let mut peers = BTreeMap::new();
    let mut current: Option<(String, DevicePeer)> = None;
    for line in get.lines() {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        match k {
            "public_key" => {
                if let Some((key, p)) = current.take() {
                    peers.insert(key, p);
                }
                current = Some((v.to_string(), DevicePeer::default()));
            }
            _ => {
                let Some((_, p)) = current.as_mut() else {
                    continue;
                };
                match k {
                    "preshared_key" => p.psk = Zeroizing::new(v.to_string()),
                    "allowed_ip" => {
                        if let Some(prefix) = parse_prefix(v) {
                            p.allowed.insert(prefix);
                        }
                    }
                    "persistent_keepalive_interval" => p.keepalive = v.parse().unwrap_or(0),
                    "endpoint" => p.endpoint = Some(v.to_string()),
                    _ => {}
                }
            }
        }
    }
    if let Some((key, p)) = current {
        peers.insert(key, p);
    }
    peers
}

fn parse_prefix(s: &str) -> Option<Prefix> {
    let (a, l) = s.split_once('/')?;
    Prefix::new(a.parse().ok()?, l.parse().ok()?).ok()
}

const ZERO_KEY: &str = "0000000000000000000000000000000000000000000000000000000000000000";

fn record_psk(p: &Peer) -> Zeroizing<String> {
    Zeroizing::new(match &p.preshared_key {
        Some(k) => hex::encode(k.as_bytes()),
        None => ZERO_KEY.to_string(),
    })
}

fn record_allowed(p: &Peer) -> BTreeSet<Prefix> {
    p.allowed_ips
        .iter()
        .filter_map(|a| Prefix::new(a.addr(), a.prefix_len()).ok())
        .collect()
}

/// Whether the gateway's peer already is what the record says. A record without an endpoint
/// leaves the peer's (roaming) endpoint alone; one with a hostname is resolved only when set.
fn matches(record: &Peer, device: &DevicePeer) -> bool {
    let psk_device: &str = if device.psk.is_empty() {
        ZERO_KEY
    } else {
        device.psk.as_str()
    };
    let endpoint_ok = match &record.endpoint {
        None => true,
        Some(Endpoint::Addr(a)) => device.endpoint.as_deref() == Some(a.to_string().as_str()),
        Some(Endpoint::Host { .. }) => device.endpoint.is_some(),
    };
    *record_psk(record) == psk_device
        && record_allowed(record) == device.allowed
        && u64::from(record.persistent_keepalive.unwrap_or(0)) == device.keepalive
        && endpoint_ok
}

/// Appends the lines that make the gateway's peer what `p` says, replacing its allowed IPs.
pub fn write_peer(out: &mut Zeroizing<String>, p: &Peer) {
    let _ = writeln!(out, "public_key={}", hex::encode(p.public_key.as_bytes()));
    let _ = writeln!(out, "preshared_key={}", *record_psk(p));
    out.push_str("replace_allowed_ips=true\n");
    for a in &record_allowed(p) {
        let _ = writeln!(out, "allowed_ip={a}");
    }
    let _ = writeln!(
        out,
        "persistent_keepalive_interval={}",
        p.persistent_keepalive.unwrap_or(0)
    );
    match &p.endpoint {
        Some(Endpoint::Addr(a)) => {
            let _ = writeln!(out, "endpoint={a}");
        }
        Some(Endpoint::Host { host, port }) => {
            // Resolved now, as wg resolves a hostname when it sets it; a name that does not
            // resolve leaves the endpoint to the peer's first handshake.
            use std::net::ToSocketAddrs;
            if let Some(a) = (host.as_str(), *port)
                .to_socket_addrs()
                .ok()
                .and_then(|mut i| i.next())
            {
                let _ = writeln!(out, "endpoint={a}");
            }
        }
        None => {}
    }
}

pub fn write_remove(out: &mut Zeroizing<String>, public_key_hex: &str) {
    let _ = writeln!(out, "public_key={public_key_hex}\nremove=true");
}

/// The requests that make the gateway's peer set `records` (by public key, hex), given its
/// `get=1` answer. Peers in `keep` (whose records could not be read) are left as they are.
pub fn full_sync(
    records: &BTreeMap<String, Peer>,
    keep: &BTreeSet<String>,
    get: &str,
) -> (Vec<Zeroizing<String>>, SyncCounts) {
    let device = parse_device(get);
    let mut counts = SyncCounts::default();
    let mut requests = Vec::new();
    let mut current = Zeroizing::new(String::from("set=1\n"));
    let mut in_current = 0;
    let mut flush = |current: &mut Zeroizing<String>, in_current: &mut usize, force: bool| {
        if *in_current > 0 && (force || *in_current >= PEERS_PER_REQUEST) {
            current.push('\n');
            requests.push(std::mem::replace(
                current,
                Zeroizing::new(String::from("set=1\n")),
            ));
            *in_current = 0;
        }
    };
    for key in device.keys() {
        if !records.contains_key(key) && !keep.contains(key) {
            write_remove(&mut current, key);
            counts.removed += 1;
            in_current += 1;
            flush(&mut current, &mut in_current, false);
        }
    }
    for (key, record) in records {
        match device.get(key) {
            Some(d) if matches(record, d) => counts.unchanged += 1,
            found => {
                write_peer(&mut current, record);
                if found.is_some() {
                    counts.updated += 1;
                } else {
                    counts.added += 1;
                }
                in_current += 1;
                flush(&mut current, &mut in_current, false);
            }
        }
    }
    flush(&mut current, &mut in_current, true);
    (requests, counts)
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SyncCounts {
    pub added: usize,
    pub updated: usize,
    pub removed: usize,
    pub unchanged: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use control::config::IpPrefix;
    use proto::keys::{PresharedKey, PrivateKey};

    fn peer(n: u8) -> Peer {
        Peer {
            public_key: PrivateKey::from_bytes([n; 32]).public_key(),
            preshared_key: n
                .is_multiple_of(2)
                .then(|| PresharedKey::from_bytes([n; 32])),
            allowed_ips: vec![IpPrefix::host(format!("10.0.0.{n}").parse().unwrap())],
            endpoint: None,
            persistent_keepalive: n.is_multiple_of(3).then_some(25),
        }
    }

    fn hexkey(p: &Peer) -> String {
        hex::encode(p.public_key.as_bytes())
    }

    /// What the gateway would answer to `get=1` after applying `peers` (as our UAPI prints).
    fn get_of(peers: &[Peer]) -> String {
        let mut s = String::from("private_key=00\nlisten_port=51820\n");
        for p in peers {
            s += &format!(
                "public_key={}\npreshared_key={}\nendpoint=198.18.0.9:4000\nlast_handshake_time_sec=0\nallowed_ip={}\npersistent_keepalive_interval={}\n",
                hexkey(p),
                *record_psk(p),
                p.allowed_ips[0],
                p.persistent_keepalive.unwrap_or(0)
            );
        }
        s + "errno=0\n"
    }

    fn records(peers: &[Peer]) -> BTreeMap<String, Peer> {
        peers.iter().map(|p| (hexkey(p), p.clone())).collect()
    }

    #[test]
    fn an_unchanged_set_writes_nothing() {
        let peers: Vec<Peer> = (1..=6).map(peer).collect();
        let (reqs, c) = full_sync(&records(&peers), &BTreeSet::new(), &get_of(&peers));
        assert!(reqs.is_empty(), "{:?}", reqs.len());
        assert_eq!(
            c,
            SyncCounts {
                unchanged: 6,
                ..SyncCounts::default()
            }
        );
    }

    #[test]
    fn differences_are_added_updated_and_removed() {
        let device: Vec<Peer> = (1..=4).map(peer).collect();
        let mut want: Vec<Peer> = (2..=5).map(peer).collect();
        want[0].allowed_ips.push("10.9.0.0/16".parse().unwrap()); // peer 2: updated
        let mut keep = BTreeSet::new();
        keep.insert(hexkey(&peer(4))); // peer 4: unreadable record, left alone
        want.retain(|p| p.public_key != peer(4).public_key);
        let (reqs, c) = full_sync(&records(&want), &keep, &get_of(&device));
        assert_eq!(
            c,
            SyncCounts {
                added: 1,
                updated: 1,
                removed: 1,
                unchanged: 1
            }
        );
        assert_eq!(reqs.len(), 1);
        let r = reqs[0].as_str();
        assert!(r.starts_with("set=1\n") && r.ends_with("\n\n"));
        assert!(r.contains(&format!("public_key={}\nremove=true\n", hexkey(&peer(1)))));
        assert!(r.contains("allowed_ip=10.9.0.0/16\n"));
        assert!(r.contains(&hexkey(&peer(5))));
        assert!(!r.contains(&hexkey(&peer(3))) && !r.contains(&hexkey(&peer(4))));
    }

    #[test]
    fn large_sets_are_split_into_bounded_requests() {
        let many: Vec<Peer> = (0..2500u32)
            .map(|i| Peer {
                public_key: PrivateKey::from_bytes({
                    let mut b = [1u8; 32];
                    b[1..5].copy_from_slice(&i.to_le_bytes());
                    b
                })
                .public_key(),
                preshared_key: None,
                allowed_ips: vec![],
                endpoint: None,
                persistent_keepalive: None,
            })
            .collect();
        let (reqs, c) = full_sync(&records(&many), &BTreeSet::new(), "errno=0\n");
        assert_eq!(c.added, 2500);
        assert_eq!(reqs.len(), 3);
        let per: Vec<usize> = reqs
            .iter()
            .map(|r| r.matches("public_key=").count())
            .collect();
        assert_eq!(per, [1000, 1000, 500]);
    }

    #[test]
    fn a_device_peer_without_psk_matches_a_record_without_one() {
        let p = peer(3);
        let get =
            get_of(std::slice::from_ref(&p)).replace(&format!("preshared_key={ZERO_KEY}\n"), "");
        let (reqs, c) = full_sync(&records(&[p]), &BTreeSet::new(), &get);
        assert!(reqs.is_empty());
        assert_eq!(c.unchanged, 1);
    }
}
