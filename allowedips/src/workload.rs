//! Deterministic workloads for tests and benchmarks: a provider-scale table (one host route per
//! peer plus up to ten routed prefixes) and query streams. No dependencies: SplitMix64.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proto::allowedips::Prefix;

use crate::PeerId;

/// SplitMix64 (Steele, Lea, Flood 2014): small, fast, good enough for workloads.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0; the bias is negligible for the sizes used here).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    pub fn u128(&mut self) -> u128 {
        u128::from(self.next_u64()) << 64 | u128::from(self.next_u64())
    }
}

fn v4(bits: u32, len: u8) -> Prefix {
    Prefix::new(IpAddr::V4(Ipv4Addr::from(bits)), len).unwrap_or_else(|_| unreachable!())
}

fn v6(bits: u128, len: u8) -> Prefix {
    Prefix::new(IpAddr::V6(Ipv6Addr::from(bits)), len).unwrap_or_else(|_| unreachable!())
}

/// Length of a routed IPv4 prefix behind a peer: mostly /24, the rest spread over /16../32.
fn v4_len(rng: &mut Rng) -> u8 {
    match rng.below(10) {
        0..=3 => 24,
        4..=6 => 16 + rng.below(8) as u8,
        _ => 25 + rng.below(8) as u8,
    }
}

/// Length of a routed IPv6 prefix: mostly /48, /56, /64 delegations, some /32../128.
fn v6_len(rng: &mut Rng) -> u8 {
    match rng.below(20) {
        0..=5 => 48,
        6..=11 => 56,
        12..=17 => 64,
        18 => 32 + rng.below(16) as u8,
        _ => 65 + rng.below(64) as u8,
    }
}

/// The IPv4 provider table: peer `i` owns 10.0.0.0 + 1 + i as a /32 (the tunnel address pool)
/// and 8..=10 random routed prefixes in 1.0.0.0 - 223.255.255.255 (9 on average: about
/// 1M prefixes for 100k peers; collisions move a prefix to the later peer, as the kernel does).
pub fn provider_v4(peers: u32, seed: u64) -> Vec<(Prefix, PeerId)> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(peers as usize * 10);
    for peer in 0..peers {
        out.push((v4(0x0A00_0001 + peer, 32), peer));
        for _ in 0..8 + rng.below(3) {
            let addr = 0x0100_0000 + rng.below(0xDF00_0000) as u32;
            out.push((v4(addr, v4_len(&mut rng)), peer));
        }
    }
    out
}

/// The IPv6 provider table: peer `i` owns a /128 with a random interface id in
/// fd00:0:0:1::/64 and 8..=10 random routed prefixes in 2000::/3.
pub fn provider_v6(peers: u32, seed: u64) -> Vec<(Prefix, PeerId)> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(peers as usize * 10);
    let pool: u128 = 0xfd00_0000_0000_0001 << 64;
    for peer in 0..peers {
        out.push((v6(pool | u128::from(rng.next_u64()), 128), peer));
        for _ in 0..8 + rng.below(3) {
            let addr = (0x2000u128 << 112) | (rng.u128() >> 3);
            out.push((v6(addr, v6_len(&mut rng)), peer));
        }
    }
    out
}

/// A random address inside `prefix` (host bits random).
pub fn inside(prefix: Prefix, rng: &mut Rng) -> IpAddr {
    match prefix.addr() {
        IpAddr::V4(a) => {
            let host = u32::MAX.checked_shr(u32::from(prefix.len())).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(
                u32::from(a) | (rng.next_u64() as u32 & host),
            ))
        }
        IpAddr::V6(a) => {
            let host = u128::MAX.checked_shr(u32::from(prefix.len())).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(a) | (rng.u128() & host)))
        }
    }
}

/// `n` random addresses, each inside a stored prefix picked uniformly from `prefixes` (the
/// benchmark's *random* query set, with the benchmark's seed 42).
pub fn random_inside(prefixes: &[(Prefix, PeerId)], n: usize, rng: &mut Rng) -> Vec<IpAddr> {
    (0..n)
        .map(|_| inside(prefixes[rng.below(prefixes.len() as u64) as usize].0, rng))
        .collect()
}

/// The addresses as the batch lookups take them: IPv4 as `u32`, IPv6 as `u128` (0 where an
/// address is of the other family).
pub fn by_family(addrs: &[IpAddr]) -> (Vec<u32>, Vec<u128>) {
    let v4 = addrs
        .iter()
        .map(|a| match a {
            IpAddr::V4(a) => u32::from(*a),
            IpAddr::V6(_) => 0,
        })
        .collect();
    let v6 = addrs
        .iter()
        .map(|a| match a {
            IpAddr::V6(a) => u128::from(*a),
            IpAddr::V4(_) => 0,
        })
        .collect();
    (v4, v6)
}

/// Where the *sequential* query set starts: the IPv4 tunnel pool (every peer's /32 in turn),
/// or the first stored IPv6 /48.
pub fn sequential_start(prefixes: &[(Prefix, PeerId)], v4: bool) -> u128 {
    if v4 {
        return 0x0A00_0000;
    }
    prefixes
        .iter()
        .find(|(p, _)| p.len() == 48)
        .map_or(0, |(p, _)| match p.addr() {
            IpAddr::V6(a) => u128::from(a),
            IpAddr::V4(_) => 0,
        })
}
