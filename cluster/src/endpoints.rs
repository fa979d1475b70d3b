//! Each peer's endpoint, shared among the gateways of a cluster, so that a gateway can start
//! the handshake with a peer that fails over to it (docs/scale-out.md, "Failing over"):
//!
//! ```text
//! PREFIX endpoints/ PUBLIC-KEY-IN-BASE64  ->  IP:PORT
//! ```
//!
//! The gateway a peer is on (it has a current session there) writes the endpoint it sees when it
//! changes; every gateway hands it to its control process as a hint,
//! `wgxdp_failover_endpoint=IP:PORT` on the peer in a UAPI `set=1` (a wgxdp extension, with
//! `update_only`). A hint is not the peer's endpoint: nothing is sent to the peer because of it,
//! only a single handshake initiation if the peer's data for another gateway's session arrives
//! from there (control/src/daemon/failover.rs). No key is stored: an endpoint tells nobody
//! anything they can use to impersonate a peer.
//!
//! Two threads of `wgxdp sync`: one reads which peers are on the gateway and where from the
//! key-free part of its shared region (every [`EVERY`]; no request to control, whose loop a
//! full `get=1` of every peer would hold up) and writes what changed; the other watches the
//! prefix and hands the hints over.

use crate::etcd::{Etcd, EtcdError, Event};
use contract::layout::{PeerRecord, NO_SLOT};
use control::InterfaceName;
use proto::keys::PublicKey;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Where the endpoints are, under a cluster's prefix.
pub const ENDPOINTS: &str = "endpoints/";
/// How often the gateway's peers are read for endpoints to write.
pub const EVERY: Duration = Duration::from_millis(500);
/// Largest value accepted ("[IPv6%scope]:port" is far shorter).
const MAX_VALUE: usize = 64;

/// The prefix of the endpoint keys of the cluster at `prefix` (which ends in `/`).
pub fn endpoints_prefix(prefix: &str) -> String {
    format!("{prefix}{ENDPOINTS}")
}

/// The peers' public keys (hex) by the tag the region names them with (the first eight
/// bytes, little-endian, as control writes it), from the records `wgxdp sync` applies.
#[derive(Debug, Clone, Default)]
pub struct Tags(Arc<Mutex<HashMap<u64, String>>>);

impl Tags {
    fn tag(hex_key: &str) -> Option<u64> {
        let b = hex::decode(hex_key.get(..16)?).ok()?;
        Some(u64::from_le_bytes(b.try_into().ok()?))
    }

    pub fn insert(&self, hex_key: &str) {
        if let (Some(t), Ok(mut m)) = (Self::tag(hex_key), self.0.lock()) {
            m.insert(t, hex_key.to_string());
        }
    }

    pub fn replace<'a>(&self, keys: impl Iterator<Item = &'a String>) {
        let map = keys
            .filter_map(|k| Some((Self::tag(k)?, k.clone())))
            .collect();
        if let Ok(mut m) = self.0.lock() {
            *m = map;
        }
    }

    fn get(&self, tag: u64) -> Option<String> {
        self.0.lock().ok()?.get(&tag).cloned()
    }
}

/// The peers on the gateway (a current session) and their endpoints, by public key (hex), as
/// the region's peer records say.
pub fn on_gateway(records: &[PeerRecord], tags: &Tags) -> HashMap<String, SocketAddr> {
    records
        .iter()
        .filter(|r| r.valid && r.current_session != NO_SLOT)
        .filter_map(|r| Some((tags.get(r.key_tag)?, r.endpoint?)))
        .collect()
}

/// The endpoints to write: those of the peers on the gateway (`here`) that differ from what
/// was written (`written`, by hex key).
pub fn to_write(
    here: &HashMap<String, SocketAddr>,
    written: &HashMap<String, SocketAddr>,
) -> Vec<(String, SocketAddr)> {
    let mut out: Vec<_> = here
        .iter()
        .filter(|(k, e)| written.get(*k) != Some(e))
        .map(|(k, e)| (k.clone(), *e))
        .collect();
    out.sort();
    out
}

/// The etcd key of a peer (hex public key) under `endpoints_prefix`.
pub fn key_of(endpoints_prefix: &str, hex_key: &str) -> Option<String> {
    let bytes: [u8; 32] = hex::decode(hex_key).ok()?.try_into().ok()?;
    Some(format!(
        "{endpoints_prefix}{}",
        PublicKey::from_bytes(bytes).to_base64()
    ))
}

/// The peer (hex public key) and endpoint an etcd key and value name; `None` if either is not
/// one (ignored: nothing else under the prefix is ours to apply).
pub fn parse_entry(
    endpoints_prefix: &str,
    key: &[u8],
    value: &[u8],
) -> Option<(String, SocketAddr)> {
    let b64 = std::str::from_utf8(key)
        .ok()?
        .strip_prefix(endpoints_prefix)?;
    let peer = PublicKey::from_base64(b64).ok()?;
    if value.len() > MAX_VALUE {
        return None;
    }
    let endpoint = std::str::from_utf8(value).ok()?.trim().parse().ok()?;
    Some((hex::encode(peer.as_bytes()), endpoint))
}

/// The `set=1` request that hands over each of `entries`' endpoints as a failover hint (to
/// peers that exist only); `None` if there is nothing to hand over.
pub fn set_request(entries: &[(String, SocketAddr)]) -> Option<String> {
    if entries.is_empty() {
        return None;
    }
    let mut r = String::from("set=1\n");
    for (k, e) in entries {
        r.push_str(&format!(
            "public_key={k}\nupdate_only=true\nwgxdp_failover_endpoint={e}\n"
        ));
    }
    r.push('\n');
    Some(r)
}

/// Starts both threads for gateway `name`, whose region is at `region`; they run as long as
/// the process.
pub fn spawn(
    name: InterfaceName,
    endpoints: Vec<String>,
    prefix: &str,
    region: PathBuf,
    tags: Tags,
) -> std::io::Result<()> {
    let prefix = endpoints_prefix(prefix);
    {
        let (etcd, prefix) = (Etcd::new(endpoints.clone()), prefix.clone());
        std::thread::Builder::new()
            .name("wgxdp-endpoints-out".into())
            .spawn(move || write_loop(&region, &tags, &etcd, &prefix))?;
    }
    let etcd = Etcd::new(endpoints);
    std::thread::Builder::new()
        .name("wgxdp-endpoints-in".into())
        .spawn(move || apply_loop(&name, &etcd, &prefix))?;
    Ok(())
}

/// Reads which peers are on the gateway and writes the endpoints that changed.
fn write_loop(region: &std::path::Path, tags: &Tags, etcd: &Etcd, prefix: &str) {
    let mut written = HashMap::new();
    let mut attach_logged = false;
    loop {
        std::thread::sleep(EVERY);
        // Mapped afresh each time (a restarted gateway may have put a new region in place).
        let s = match contract::Status::attach(region) {
            Ok(s) => s,
            Err(e) => {
                if !attach_logged {
                    tracing::info!("endpoint sharing waits for {}: {e}", region.display());
                    attach_logged = true;
                }
                continue;
            }
        };
        let records: Vec<PeerRecord> = s
            .peers()
            .iter()
            .filter_map(|p| p.record.read().map(|w| PeerRecord::decode(&w)))
            .collect();
        let here = on_gateway(&records, tags);
        let changed = to_write(&here, &written);
        let kvs: Vec<(Vec<u8>, String)> = changed
            .iter()
            .filter_map(|(k, e)| Some((key_of(prefix, k)?.into_bytes(), e.to_string())))
            .collect();
        // One transaction per 128 changes, not a round trip each.
        match etcd.put_all(&kvs) {
            Ok(_) => written.extend(changed),
            Err(err) => tracing::debug!("writing endpoints: {err}"),
        }
        // Peers that left the gateway are forgotten, so that their next visit is written.
        written.retain(|k, _| here.contains_key(k));
    }
}

/// Hands over the endpoints the gateways wrote: all of them at start (and after a broken
/// watch), then each change.
fn apply_loop(name: &InterfaceName, etcd: &Etcd, prefix: &str) {
    let apply = |entries: &[(String, SocketAddr)]| {
        if let Some(r) = set_request(entries) {
            if let Err(e) = control::uapi::request(name, &r) {
                tracing::debug!("setting shared endpoints: {e}");
            }
        }
    };
    loop {
        let snap = match etcd.range_prefix(prefix.as_bytes()) {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!("reading shared endpoints: {e}");
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
        };
        let all: Vec<_> = snap
            .kvs
            .iter()
            .filter_map(|kv| parse_entry(prefix, &kv.key, &kv.value))
            .collect();
        for chunk in all.chunks(crate::apply::PEERS_PER_REQUEST) {
            apply(chunk);
        }
        // Watched from there; a quiet watch is reopened where it was, a broken or compacted
        // one ends in a full read again (rare).
        let mut revision = snap.revision;
        loop {
            let Ok(mut watch) = etcd.watch(prefix.as_bytes(), revision + 1) else {
                std::thread::sleep(Duration::from_secs(1));
                break;
            };
            let quiet = loop {
                match watch.recv() {
                    Ok((_, events)) => {
                        for e in &events {
                            revision = revision.max(match e {
                                Event::Put(kv) => kv.mod_revision,
                                Event::Delete { mod_revision, .. } => *mod_revision,
                            });
                        }
                        let entries: Vec<_> = events
                            .iter()
                            .filter_map(|e| match e {
                                Event::Put(kv) => parse_entry(prefix, &kv.key, &kv.value),
                                Event::Delete { .. } => None,
                            })
                            .collect();
                        apply(&entries);
                    }
                    Err(EtcdError::Idle) => break true,
                    Err(_) => break false,
                }
            };
            if !quiet {
                // Broken (or compacted): read everything again, not at once in a loop.
                std::thread::sleep(Duration::from_secs(1));
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "0101010101010101010101010101010101010101010101010101010101010101";
    const B: &str = "0202020202020202020202020202020202020202020202020202020202020202";

    fn record(key: &str, endpoint: &str, session: u32) -> PeerRecord {
        let b = hex::decode(&key[..16]).unwrap();
        PeerRecord {
            valid: true,
            endpoint: Some(endpoint.parse().unwrap()),
            current_session: session,
            key_tag: u64::from_le_bytes(b.try_into().unwrap()),
        }
    }

    #[test]
    fn only_peers_on_this_gateway_are_written_and_only_when_changed() {
        let tags = Tags::default();
        tags.replace([A.to_string(), B.to_string()].iter());
        // A has a current session here; B has none; C is no peer the records know.
        let c = "0303030303030303030303030303030303030303030303030303030303030303";
        let records = [
            record(A, "198.18.0.10:40000", 3),
            record(B, "[2001:2::11]:40001", NO_SLOT),
            record(c, "198.18.0.12:1", 4),
            PeerRecord::default(),
        ];
        let here = on_gateway(&records, &tags);
        assert_eq!(here.len(), 1);
        let mut written = HashMap::new();
        let out = to_write(&here, &written);
        assert_eq!(out, [(A.to_string(), "198.18.0.10:40000".parse().unwrap())]);
        written.extend(out);
        assert!(to_write(&here, &written).is_empty(), "unchanged");
        written.insert(A.into(), "198.18.0.10:1".parse().unwrap());
        assert_eq!(to_write(&here, &written).len(), 1, "roamed");
        // A peer added later is named once its record is known.
        tags.insert(c);
        assert_eq!(on_gateway(&records, &tags).len(), 2);
    }

    #[test]
    fn entries_round_trip_and_garbage_is_ignored() {
        let p = endpoints_prefix("/wgxdp/t/");
        let key = key_of(&p, A).unwrap();
        assert!(key.starts_with("/wgxdp/t/endpoints/"));
        let e: SocketAddr = "[2001:2::11]:40001".parse().unwrap();
        assert_eq!(
            parse_entry(&p, key.as_bytes(), e.to_string().as_bytes()),
            Some((A.to_string(), e))
        );
        assert_eq!(parse_entry(&p, key.as_bytes(), b"not an endpoint"), None);
        assert_eq!(parse_entry(&p, key.as_bytes(), &[b'1'; 100]), None);
        assert_eq!(parse_entry(&p, b"/wgxdp/t/peers/x", b"1.2.3.4:5"), None);
        assert_eq!(key_of(&p, "zz"), None);
    }

    #[test]
    fn endpoints_are_handed_over_as_hints_never_as_endpoints() {
        let e: SocketAddr = "198.18.0.10:40000".parse().unwrap();
        let r = set_request(&[(A.to_string(), e), (B.to_string(), e)]).unwrap();
        assert_eq!(
            r,
            format!(
                "set=1\npublic_key={A}\nupdate_only=true\nwgxdp_failover_endpoint={e}\n\
                 public_key={B}\nupdate_only=true\nwgxdp_failover_endpoint={e}\n\n"
            )
        );
        assert!(!r.contains("\nendpoint="));
        // The gateway's own parser takes it.
        assert_eq!(
            control::uapi::set::parse(r["set=1\n".len()..].trim_end())
                .unwrap()
                .peers
                .len(),
            2
        );
        assert_eq!(set_request(&[]), None);
    }
}
