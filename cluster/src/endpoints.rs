//! Each peer's endpoint, shared among the gateways of a cluster, so that a gateway can start
//! the handshake with a peer that fails over to it (docs/scale-out.md, "Failing over"):
//!
//! ```text
//! PREFIX endpoints/ PUBLIC-KEY-IN-BASE64  ->  IP:PORT
//! ```
//!
//! The gateway a peer is on (a handshake within [`ACTIVE`]) writes the endpoint it sees when it
//! changes; every gateway hands it to its control process as a hint,
//! `wgxdp_failover_endpoint=IP:PORT` on the peer in a UAPI `set=1` (a wgxdp extension, with
//! `update_only`). A hint is not the peer's endpoint: nothing is sent to the peer because of it,
//! only a single handshake initiation if the peer's data for another gateway's session arrives
//! from there (control/src/daemon/failover.rs). No key is stored: an endpoint tells nobody
//! anything they can use to impersonate a peer.
//!
//! Two threads of `wgxdp sync`: one reads the gateway (`get=1`, every [`EVERY`]) and writes
//! what changed, the other watches the prefix and hands the hints over.

use crate::etcd::{Etcd, EtcdError, Event};
use control::InterfaceName;
use proto::keys::PublicKey;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where the endpoints are, under a cluster's prefix.
pub const ENDPOINTS: &str = "endpoints/";
/// A peer whose last handshake on this gateway is this recent is on it (REJECT_AFTER_TIME:
/// its session may still be in use).
pub const ACTIVE: Duration = Duration::from_secs(180);
/// How often the gateway's peers are read for endpoints to write.
pub const EVERY: Duration = Duration::from_millis(500);
/// Largest value accepted ("[IPv6%scope]:port" is far shorter).
const MAX_VALUE: usize = 64;

/// The prefix of the endpoint keys of the cluster at `prefix` (which ends in `/`).
pub fn endpoints_prefix(prefix: &str) -> String {
    format!("{prefix}{ENDPOINTS}")
}

/// What `get=1` says of each peer (by public key, hex) that matters here.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Seen {
    pub endpoint: Option<SocketAddr>,
    /// Unix seconds; 0 if never.
    pub last_handshake: u64,
}

/// Reads a `get=1` answer.
pub fn parse_get(get: &str) -> HashMap<String, Seen> {
    let mut peers = HashMap::new();
    let mut current: Option<(String, Seen)> = None;
    for (k, v) in get.lines().filter_map(|l| l.split_once('=')) {
        match k {
            "public_key" => {
                if let Some((key, s)) = current.take() {
                    peers.insert(key, s);
                }
                current = Some((v.to_string(), Seen::default()));
            }
            "endpoint" => {
                if let Some((_, s)) = current.as_mut() {
                    s.endpoint = v.parse().ok();
                }
            }
            "last_handshake_time_sec" => {
                if let Some((_, s)) = current.as_mut() {
                    s.last_handshake = v.parse().unwrap_or(0);
                }
            }
            _ => {}
        }
    }
    if let Some((key, s)) = current {
        peers.insert(key, s);
    }
    peers
}

/// Whether a peer seen so is on this gateway at `now` (Unix seconds).
pub fn is_active(s: &Seen, now: u64) -> bool {
    s.last_handshake != 0 && now.saturating_sub(s.last_handshake) < ACTIVE.as_secs()
}

/// The endpoints to write: those of the peers on this gateway that differ from what was
/// written (`written`, by hex key).
pub fn to_write(
    seen: &HashMap<String, Seen>,
    written: &HashMap<String, SocketAddr>,
    now: u64,
) -> Vec<(String, SocketAddr)> {
    let mut out: Vec<_> = seen
        .iter()
        .filter(|(_, s)| is_active(s, now))
        .filter_map(|(k, s)| {
            let e = s.endpoint?;
            (written.get(k) != Some(&e)).then(|| (k.clone(), e))
        })
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

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Starts both threads for gateway `name`; they run as long as the process.
pub fn spawn(name: InterfaceName, endpoints: Vec<String>, prefix: &str) -> std::io::Result<()> {
    let prefix = endpoints_prefix(prefix);
    {
        let (name, etcd, prefix) = (name.clone(), Etcd::new(endpoints.clone()), prefix.clone());
        std::thread::Builder::new()
            .name("wgxdp-endpoints-out".into())
            .spawn(move || write_loop(&name, &etcd, &prefix))?;
    }
    let etcd = Etcd::new(endpoints);
    std::thread::Builder::new()
        .name("wgxdp-endpoints-in".into())
        .spawn(move || apply_loop(&name, &etcd, &prefix))?;
    Ok(())
}

/// Reads the gateway and writes the endpoints of the peers on it that changed.
fn write_loop(name: &InterfaceName, etcd: &Etcd, prefix: &str) {
    let mut written = HashMap::new();
    loop {
        std::thread::sleep(EVERY);
        let Ok(get) = control::uapi::request(name, "get=1\n\n") else {
            continue;
        };
        let now = now_unix();
        let seen = parse_get(&get);
        let changed = to_write(&seen, &written, now);
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
        written.retain(|k, _| seen.get(k).is_some_and(|s| is_active(s, now)));
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

    fn get(now: u64) -> String {
        format!(
            "private_key=x\nlisten_port=1\npublic_key={A}\nendpoint=198.18.0.10:40000\n\
             last_handshake_time_sec={}\nlast_handshake_time_nsec=0\n\
             public_key={B}\nendpoint=[2001:2::11]:40001\nlast_handshake_time_sec={}\nerrno=0\n",
            now - 10,
            now - 200
        )
    }

    #[test]
    fn only_peers_on_this_gateway_are_written_and_only_when_changed() {
        let now = 1_000_000;
        let seen = parse_get(&get(now));
        assert_eq!(seen[A].endpoint, Some("198.18.0.10:40000".parse().unwrap()));
        assert_eq!(seen[B].last_handshake, now - 200);
        let mut written = HashMap::new();
        let out = to_write(&seen, &written, now);
        assert_eq!(out, [(A.to_string(), "198.18.0.10:40000".parse().unwrap())]);
        written.extend(out);
        assert!(to_write(&seen, &written, now).is_empty(), "unchanged");
        written.insert(A.into(), "198.18.0.10:1".parse().unwrap());
        assert_eq!(to_write(&seen, &written, now).len(), 1, "roamed");
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
