//! The commands on a cluster's peer records in etcd (docs/cluster.md): `wgxdp sync`, `wgxdp
//! peers export|import|remove`, and the write behind `wgxdp peer add --etcd`.

use cluster::etcd::{parse_url, Etcd};
use cluster::record;
use control::config::Peer;
use std::io::Read;
use std::net::SocketAddr;
use zeroize::Zeroizing;

fn open(url: &str) -> Result<(Etcd, String), String> {
    let (endpoints, prefix) = parse_url(url)?;
    Ok((Etcd::new(endpoints), prefix))
}

/// `wgxdp sync NAME --etcd URL [--metrics ADDR]`.
pub fn sync(name: &str, url: &str, metrics: Option<SocketAddr>) -> Result<(), String> {
    let name = crate::gateway::interface_name(name)?;
    let (endpoints, prefix) = parse_url(url)?;
    let region = crate::gateway::run_dir(&name).join("region");
    cluster::sync::run(cluster::sync::Options {
        name,
        endpoints,
        prefix,
        metrics,
        region,
    })
}

/// Every valid record under the cluster's prefix (unreadable ones are reported on stderr).
pub fn records(etcd: &Etcd, prefix: &str) -> Result<Vec<Peer>, String> {
    let peers_prefix = record::peers_prefix(prefix);
    let snap = etcd
        .range_prefix(peers_prefix.as_bytes())
        .map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(snap.kvs.len());
    for kv in &snap.kvs {
        match record::parse_record(&peers_prefix, &kv.key, &kv.value) {
            Ok(p) => out.push(p),
            Err(e) => eprintln!(
                "wgxdp: warning: {} ignored: {e}",
                String::from_utf8_lossy(&kv.key)
            ),
        }
    }
    Ok(out)
}

/// Writes `peer`'s record.
pub fn put(url: &str, peer: &Peer) -> Result<(), String> {
    let (etcd, prefix) = open(url)?;
    put_with(&etcd, &prefix, peer)
}

fn put_with(etcd: &Etcd, prefix: &str, peer: &Peer) -> Result<(), String> {
    let key = record::peer_key(prefix, &peer.public_key);
    let value = Zeroizing::new(record::record_text(peer));
    etcd.put(key.as_bytes(), value.as_bytes())
        .map(drop)
        .map_err(|e| format!("{key}: {e}"))
}

/// The allowed IPs every record holds (for `peer add --etcd` to pick a free address).
pub fn taken(url: &str) -> Result<Vec<proto::allowedips::Prefix>, String> {
    let (etcd, prefix) = open(url)?;
    Ok(records(&etcd, &prefix)?
        .iter()
        .flat_map(|p| p.allowed_ips.iter())
        .filter_map(|a| proto::allowedips::Prefix::new(a.addr(), a.prefix_len()).ok())
        .collect())
}

pub fn export(url: &str) -> Result<(), String> {
    let (etcd, prefix) = open(url)?;
    let peers = records(&etcd, &prefix)?;
    let mut out = Zeroizing::new(String::new());
    for (i, p) in peers.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&record::record_text(p));
    }
    print!("{}", *out);
    eprintln!("wgxdp: {} peer(s) under {prefix}", peers.len());
    Ok(())
}

pub fn import(file: &str, url: &str) -> Result<(), String> {
    let config = if file == "-" {
        let mut text = Zeroizing::new(String::new());
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| format!("stdin: {e}"))?;
        control::config::parse(control::config::STDIN_NAME, &text).map_err(|e| e.to_string())?
    } else {
        control::config::load(file).map_err(|e| e.to_string())?.0
    };
    let (etcd, prefix) = open(url)?;
    // The records hold pre-shared keys: wiped when dropped.
    let kvs: Vec<(Vec<u8>, Zeroizing<Vec<u8>>)> = config
        .peers
        .iter()
        .map(|p| {
            (
                record::peer_key(&prefix, &p.public_key).into_bytes(),
                Zeroizing::new(record::record_text(p).into_bytes()),
            )
        })
        .collect();
    etcd.put_all(&kvs).map_err(|e| e.to_string())?;
    eprintln!(
        "wgxdp: {} peer(s) written under {}",
        config.peers.len(),
        record::peers_prefix(&prefix)
    );
    Ok(())
}

pub fn remove(public_key: &str, url: &str) -> Result<(), String> {
    let key = proto::keys::PublicKey::from_base64(public_key.trim())
        .map_err(|e| format!("{public_key}: {e}"))?;
    let (etcd, prefix) = open(url)?;
    let k = record::peer_key(&prefix, &key);
    match etcd.delete(k.as_bytes()).map_err(|e| e.to_string())? {
        true => Ok(()),
        false => Err(format!("no record {k}")),
    }
}
