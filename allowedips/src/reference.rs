//! An obviously correct longest-prefix match for differential tests and benchmarks: one hash
//! map per prefix length, probed from the longest length present down to the shortest.
//!
//! It is itself checked against `proto::allowedips::AllowedIps` (the linear table) in the
//! tests; it is fast enough for millions of queries over a million prefixes, which the linear
//! table is not.

use std::collections::HashMap;
use std::net::IpAddr;

use proto::allowedips::Prefix;

use crate::key::Key;
use crate::PeerId;

/// One family: a map per length and the lengths in use, longest first.
#[derive(Debug, Clone)]
struct ByLength<K> {
    maps: Vec<HashMap<K, PeerId>>,
    present: Vec<u8>,
}

impl<K: Key> ByLength<K> {
    fn new() -> Self {
        Self {
            maps: vec![HashMap::new(); K::BITS as usize + 1],
            present: Vec::new(),
        }
    }

    fn refresh(&mut self) {
        self.present = (0..=K::BITS as u8)
            .rev()
            .filter(|&l| !self.maps[usize::from(l)].is_empty())
            .collect();
    }

    fn insert(&mut self, key: K, len: u8, peer: PeerId) -> Option<PeerId> {
        let old = self.maps[usize::from(len)].insert(key, peer);
        if old.is_none() {
            self.refresh();
        }
        old
    }

    fn remove(&mut self, key: K, len: u8, peer: PeerId) -> bool {
        let map = &mut self.maps[usize::from(len)];
        if map.get(&key) != Some(&peer) {
            return false;
        }
        map.remove(&key);
        self.refresh();
        true
    }

    fn lookup(&self, addr: K) -> Option<PeerId> {
        self.present
            .iter()
            .find_map(|&l| self.maps[usize::from(l)].get(&addr.mask(l)).copied())
    }
}

/// The reference table (kernel semantics, as [`crate::AllowedIps`]).
#[derive(Debug, Clone)]
pub struct Reference {
    v4: ByLength<u32>,
    v6: ByLength<u128>,
}

impl Default for Reference {
    fn default() -> Self {
        Self {
            v4: ByLength::new(),
            v6: ByLength::new(),
        }
    }
}

impl Reference {
    pub fn new() -> Self {
        Self::default()
    }

    /// Assigns `prefix` to `peer`; returns the previous owner.
    pub fn insert(&mut self, prefix: Prefix, peer: PeerId) -> Option<PeerId> {
        match prefix.addr() {
            IpAddr::V4(a) => self.v4.insert(u32::from(a), prefix.len(), peer),
            IpAddr::V6(a) => self.v6.insert(u128::from(a), prefix.len(), peer),
        }
    }

    /// Removes `prefix` if `peer` owns it.
    pub fn remove(&mut self, prefix: Prefix, peer: PeerId) -> bool {
        match prefix.addr() {
            IpAddr::V4(a) => self.v4.remove(u32::from(a), prefix.len(), peer),
            IpAddr::V6(a) => self.v6.remove(u128::from(a), prefix.len(), peer),
        }
    }

    pub fn lookup(&self, ip: IpAddr) -> Option<PeerId> {
        match ip {
            IpAddr::V4(a) => self.lookup_v4(u32::from(a)),
            IpAddr::V6(a) => self.lookup_v6(u128::from(a)),
        }
    }

    pub fn lookup_v4(&self, addr: u32) -> Option<PeerId> {
        self.v4.lookup(addr)
    }

    pub fn lookup_v6(&self, addr: u128) -> Option<PeerId> {
        self.v6.lookup(addr)
    }
}
