//! The generator's peer identities: keys derived from a seed, so the gateway's configuration
//! (written by `wgxdp-loadgen peers`) and the generator agree without sharing files, and one
//! tunnel address per peer in 198.19.0.0/16 (RFC 2544 benchmarking range).

use proto::keys::{PrivateKey, PublicKey};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use std::fmt::Write as _;
use std::net::Ipv4Addr;

/// Most peers one generator plays: one /16 of tunnel addresses, less network and broadcast.
pub const MAX_PEERS: usize = 65_534;

/// Private key of peer `i` for `seed` (not secret: this is a benchmark's throwaway identity).
pub fn private_key(seed: u64, i: usize) -> PrivateKey {
    let mut s = [0u8; 32];
    s[..8].copy_from_slice(&seed.to_le_bytes());
    s[8..16].copy_from_slice(&(i as u64).to_le_bytes());
    s[16..].copy_from_slice(b"wgxdp-loadgen-pe");
    PrivateKey::generate(&mut ChaCha20Rng::from_seed(s))
}

pub fn public_key(seed: u64, i: usize) -> PublicKey {
    private_key(seed, i).public_key()
}

/// Peer `i`'s tunnel address: 198.19.0.1 + i. The gateway's AllowedIPs for the peer is this /32.
pub fn tunnel_addr(i: usize) -> Ipv4Addr {
    assert!(i < MAX_PEERS, "at most {MAX_PEERS} peers");
    let host = u32::try_from(i + 1).unwrap_or(u32::MAX);
    Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 19, 0, 0)) | host)
}

/// The `[Peer]` stanzas for `count` peers, to append to the gateway's wg-quick file.
pub fn config_stanzas(seed: u64, count: usize) -> String {
    let mut out = String::new();
    for i in 0..count {
        let _ = write!(
            out,
            "\n[Peer]\nPublicKey = {}\nAllowedIPs = {}/32\n",
            public_key(seed, i).to_base64(),
            tunnel_addr(i)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_deterministic_and_distinct() {
        assert_eq!(public_key(1, 0), public_key(1, 0));
        assert_ne!(public_key(1, 0), public_key(1, 1));
        assert_ne!(public_key(1, 0), public_key(2, 0));
    }

    #[test]
    fn tunnel_addresses() {
        assert_eq!(tunnel_addr(0), Ipv4Addr::new(198, 19, 0, 1));
        assert_eq!(tunnel_addr(255), Ipv4Addr::new(198, 19, 1, 0));
        assert_eq!(tunnel_addr(MAX_PEERS - 1), Ipv4Addr::new(198, 19, 255, 254));
    }

    #[test]
    fn stanzas() {
        let s = config_stanzas(7, 2);
        assert_eq!(s.matches("[Peer]").count(), 2);
        assert!(s.contains("AllowedIPs = 198.19.0.2/32"));
    }
}
