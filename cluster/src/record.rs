//! The peer records in etcd (documented in docs/cluster.md): one key per peer,
//!
//! ```text
//! PREFIX peers/ PUBLIC-KEY-IN-BASE64  ->  a wg-quick [Peer] section
//! ```
//!
//! for example `/wgxdp/prod/peers/xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=` holding
//!
//! ```text
//! [Peer]
//! PublicKey = xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=
//! PresharedKey = ...
//! AllowedIPs = 10.0.0.2/32, fd00::2/128
//! PersistentKeepalive = 25
//! ```
//!
//! The value is the section an operator already writes (and `wgxdp peer add` prints), parsed by
//! the same parser as the gateway's file; the key repeats the public key so that a delete,
//! which carries no value, still names the peer. No private key is ever stored.

use control::config::Peer;
use proto::keys::PublicKey;
use std::fmt;

/// Where the peers are, under a cluster's prefix.
pub const PEERS: &str = "peers/";
/// Largest record accepted: a peer with some thousands of allowed IPs.
pub const MAX_RECORD: usize = 256 * 1024;

/// The key that holds `peer`'s record under `prefix` (which ends in `/`).
pub fn peer_key(prefix: &str, peer: &PublicKey) -> String {
    format!("{prefix}{PEERS}{}", peer.to_base64())
}

/// The prefix under which all peer records of the cluster at `prefix` are.
pub fn peers_prefix(prefix: &str) -> String {
    format!("{prefix}{PEERS}")
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordError {
    /// The key is not `PREFIX peers/ BASE64-PUBLIC-KEY`.
    Key(String),
    TooLarge(usize),
    /// The value is not one valid `[Peer]` section; the parser's message, naming the line.
    Value(String),
    /// The section's PublicKey is not the one its key names.
    Mismatch,
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordError::Key(e) => write!(f, "not a peer key: {e}"),
            RecordError::TooLarge(n) => write!(f, "record of {n} bytes (at most {MAX_RECORD})"),
            RecordError::Value(e) => write!(f, "{e}"),
            RecordError::Mismatch => f.write_str("its PublicKey is not the one in its key"),
        }
    }
}

/// The public key a peer key names.
pub fn key_peer(peers_prefix: &str, key: &[u8]) -> Result<PublicKey, RecordError> {
    let text = std::str::from_utf8(key).map_err(|_| RecordError::Key("not UTF-8".into()))?;
    let b64 = text
        .strip_prefix(peers_prefix)
        .ok_or_else(|| RecordError::Key(format!("outside {peers_prefix}")))?;
    PublicKey::from_base64(b64).map_err(|e| RecordError::Key(format!("{b64}: {e}")))
}

/// Reads one record: the value must be exactly one `[Peer]` section, for the key's peer.
pub fn parse_record(peers_prefix: &str, key: &[u8], value: &[u8]) -> Result<Peer, RecordError> {
    let named = key_peer(peers_prefix, key)?;
    if value.len() > MAX_RECORD {
        return Err(RecordError::TooLarge(value.len()));
    }
    let text = std::str::from_utf8(value).map_err(|_| RecordError::Value("not UTF-8".into()))?;
    let source = String::from_utf8_lossy(key);
    let mut config =
        control::config::parse(&source, text).map_err(|e| RecordError::Value(e.to_string()))?;
    if config.interface != control::config::Interface::default() {
        return Err(RecordError::Value(format!(
            "{source}: an [Interface] section has no place in a peer record"
        )));
    }
    if config.peers.len() != 1 {
        return Err(RecordError::Value(format!(
            "{source}: {} [Peer] sections, expected one",
            config.peers.len()
        )));
    }
    let peer = config.peers.remove(0);
    if peer.public_key != named {
        return Err(RecordError::Mismatch);
    }
    Ok(peer)
}

/// The record text of `peer` (its pre-shared key included: a secret).
pub fn record_text(peer: &Peer) -> String {
    peer.to_wg_quick_section()
}

#[cfg(test)]
mod tests {
    use super::*;
    use control::config::IpPrefix;
    use proto::keys::{PresharedKey, PrivateKey};

    fn key(n: u8) -> PublicKey {
        PrivateKey::from_bytes([n; 32]).public_key()
    }

    fn peer(n: u8) -> Peer {
        Peer {
            public_key: key(n),
            preshared_key: Some(PresharedKey::from_bytes([n; 32])),
            allowed_ips: vec![
                IpPrefix::host(format!("10.0.0.{n}").parse().unwrap()),
                "fd00::/64".parse().unwrap(),
            ],
            endpoint: None,
            persistent_keepalive: Some(25),
        }
    }

    #[test]
    fn a_record_reads_back_as_the_peer_it_was_written_from() {
        let p = peer(7);
        let k = peer_key("/wgxdp/prod/", &p.public_key);
        assert!(k.starts_with("/wgxdp/prod/peers/"));
        let back = parse_record(
            "/wgxdp/prod/peers/",
            k.as_bytes(),
            record_text(&p).as_bytes(),
        );
        assert_eq!(back, Ok(p));
    }

    #[test]
    fn bad_records_are_refused_with_a_reason() {
        let pp = "/c/peers/";
        let p = peer(1);
        let k = peer_key("/c/", &p.public_key);
        let text = record_text(&p);
        let cases: Vec<(Vec<u8>, Vec<u8>, &str)> = vec![
            (
                b"/c/peers/notakey".to_vec(),
                text.clone().into(),
                "not a peer key",
            ),
            (b"/other/x".to_vec(), text.clone().into(), "outside"),
            (
                peer_key("/c/", &key(2)).into(),
                text.clone().into(),
                "its PublicKey",
            ),
            (
                k.clone().into(),
                b"[Peer]\nPublicKey = nope\n".to_vec(),
                ":2: PublicKey",
            ),
            (
                k.clone().into(),
                format!("{text}\n{}", record_text(&peer(3))).into(),
                "2 [Peer]",
            ),
            (
                k.clone().into(),
                format!("[Interface]\nListenPort = 1\n{text}").into(),
                "[Interface]",
            ),
            (k.clone().into(), vec![b'#'; MAX_RECORD + 1], "bytes"),
            (k.clone().into(), vec![0xff, 0xfe], "UTF-8"),
        ];
        for (key, value, says) in cases {
            let e = parse_record(pp, &key, &value).expect_err(says).to_string();
            assert!(e.contains(says), "{e:?} should say {says:?}");
        }
    }
}
