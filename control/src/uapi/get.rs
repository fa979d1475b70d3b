//! The `get=1` answer of the cross-platform userspace API, in wireguard-go's format: hex keys,
//! `key=value` lines, device first, then each peer, then `errno=0` and a blank line. It is what
//! `wg show`, `wg show dump` and `wg showconf` read.

use std::fmt::Write as _;
use std::time::Duration;

/// One peer as `get=1` reports it. The preshared key is wiped when the view is dropped and
/// never printed by `Debug`.
#[derive(Clone, Default)]
pub struct PeerView {
    pub public_key: [u8; 32],
    pub preshared_key: [u8; 32],
    pub endpoint: Option<std::net::SocketAddr>,
    pub last_handshake: Option<Duration>,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub persistent_keepalive: u64,
    pub allowed_ips: Vec<String>,
}

/// The device as `get=1` reports it. The private key is wiped when the view is dropped and
/// never printed by `Debug`.
#[derive(Clone, Default)]
pub struct DeviceView {
    pub private_key: [u8; 32],
    pub listen_port: u16,
    pub fwmark: u32,
    pub peers: Vec<PeerView>,
}

impl Drop for PeerView {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.preshared_key);
    }
}

impl Drop for DeviceView {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.private_key);
    }
}

impl std::fmt::Debug for PeerView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerView")
            .field("public_key", &hex::encode(self.public_key))
            .field("endpoint", &self.endpoint)
            .field("last_handshake", &self.last_handshake)
            .field("rx_bytes", &self.rx_bytes)
            .field("tx_bytes", &self.tx_bytes)
            .field("persistent_keepalive", &self.persistent_keepalive)
            .field("allowed_ips", &self.allowed_ips)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for DeviceView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceView")
            .field("listen_port", &self.listen_port)
            .field("fwmark", &self.fwmark)
            .field("peers", &self.peers)
            .finish_non_exhaustive()
    }
}

/// The `get=1` answer, exactly as wireguard-go formats it.
pub fn format_get(d: &DeviceView) -> String {
    let mut out = String::with_capacity(128 + d.peers.len() * 400);
    let _ = writeln!(out, "private_key={}", hex::encode(d.private_key));
    let _ = writeln!(out, "listen_port={}", d.listen_port);
    if d.fwmark != 0 {
        let _ = writeln!(out, "fwmark={}", d.fwmark);
    }
    for p in &d.peers {
        let _ = writeln!(out, "public_key={}", hex::encode(p.public_key));
        let _ = writeln!(out, "preshared_key={}", hex::encode(p.preshared_key));
        let _ = writeln!(out, "protocol_version=1");
        if let Some(e) = p.endpoint {
            let _ = writeln!(out, "endpoint={e}");
        }
        let hs = p.last_handshake.unwrap_or_default();
        let _ = writeln!(out, "last_handshake_time_sec={}", hs.as_secs());
        let _ = writeln!(out, "last_handshake_time_nsec={}", hs.subsec_nanos());
        let _ = writeln!(out, "tx_bytes={}", p.tx_bytes);
        let _ = writeln!(out, "rx_bytes={}", p.rx_bytes);
        let _ = writeln!(
            out,
            "persistent_keepalive_interval={}",
            p.persistent_keepalive
        );
        for a in &p.allowed_ips {
            let _ = writeln!(out, "allowed_ip={a}");
        }
    }
    out.push_str("errno=0\n\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_secrets() {
        let mut peer = PeerView::default();
        peer.preshared_key = [0xcd; 32];
        let mut v = DeviceView::default();
        v.private_key = [0xab; 32];
        v.peers.push(peer);
        let text = format!("{v:?}");
        assert!(!text.contains("abab") && !text.contains("cdcd") && !text.contains("171, 171"));
        assert!(!text.contains("205, 205"), "{text}");
    }

    #[test]
    fn get_answer_has_wireguard_go_layout() {
        let d = DeviceView {
            private_key: [1; 32],
            listen_port: 51820,
            fwmark: 0,
            peers: vec![PeerView {
                public_key: [2; 32],
                endpoint: Some("198.18.0.2:40000".parse().unwrap()),
                last_handshake: Some(Duration::new(1_700_000_000, 5)),
                rx_bytes: 10,
                tx_bytes: 20,
                persistent_keepalive: 25,
                allowed_ips: vec!["10.0.0.2/32".into()],
                ..PeerView::default()
            }],
        };
        let s = format_get(&d);
        assert!(s.starts_with(&format!(
            "private_key={}\nlisten_port=51820\npublic_key={}\n",
            "01".repeat(32),
            "02".repeat(32)
        )));
        for line in [
            "protocol_version=1",
            "endpoint=198.18.0.2:40000",
            "last_handshake_time_sec=1700000000",
            "last_handshake_time_nsec=5",
            "tx_bytes=20",
            "rx_bytes=10",
            "persistent_keepalive_interval=25",
            "allowed_ip=10.0.0.2/32",
        ] {
            assert!(s.contains(&format!("{line}\n")), "{line}");
        }
        assert!(s.ends_with("errno=0\n\n"));
    }
}
