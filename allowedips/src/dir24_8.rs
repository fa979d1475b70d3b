//! DIR-24-8 (Gupta, Lin, McKeown, "Routing lookups in hardware at memory access speeds",
//! INFOCOM 1998) for IPv4: the rejected candidate, kept so the benchmark can show why.
//!
//! A 2^24-entry table on the top 24 bits, and a 256-entry group for every /24 that holds a
//! longer prefix. At most two memory reads per lookup, but 64 MiB before the first group and
//! 1 KiB per /24 with a host route: over the 64-bytes-per-prefix budget at 1M prefixes, with no
//! IPv6 counterpart and no cheap incremental update. Bulk build only, single-threaded use.

use std::net::IpAddr;

use proto::allowedips::Prefix;

use crate::PeerId;

const NONE: u32 = u32::MAX;
const GROUP: u32 = 1 << 31;

/// The DIR-24-8 table (IPv4 only).
#[derive(Debug, Clone)]
pub struct Dir24_8 {
    tbl24: Vec<u32>,
    tbl8: Vec<u32>,
}

impl Dir24_8 {
    /// Builds from the IPv4 prefixes among `prefixes` (a prefix listed twice goes to its last
    /// peer); IPv6 prefixes are ignored.
    pub fn build(prefixes: &[(Prefix, PeerId)]) -> Self {
        let mut v4: Vec<(u8, u32, PeerId)> = Vec::with_capacity(prefixes.len());
        for &(p, peer) in prefixes {
            if let IpAddr::V4(a) = p.addr() {
                v4.push((p.len(), u32::from(a), peer));
            }
        }
        // Stable: among duplicates the later one is painted last and wins.
        v4.sort_by_key(|e| e.0);
        let mut tbl24 = vec![NONE; 1 << 24];
        let mut tbl8: Vec<u32> = Vec::new();
        for (len, key, peer) in v4 {
            if len <= 24 {
                let start = (key >> 8) as usize;
                tbl24[start..start + (1usize << (24 - len))].fill(peer);
                continue;
            }
            let slot = (key >> 8) as usize;
            let e = tbl24[slot];
            let group = if e != NONE && e & GROUP != 0 {
                (e & !GROUP) as usize
            } else {
                let g = tbl8.len() / 256;
                tbl8.extend(std::iter::repeat_n(e, 256));
                tbl24[slot] = GROUP | g as u32;
                g
            };
            let start = group * 256 + (key & 0xff) as usize;
            tbl8[start..start + (1usize << (32 - len))].fill(peer);
        }
        Self { tbl24, tbl8 }
    }

    #[inline]
    pub fn lookup(&self, addr: u32) -> Option<PeerId> {
        let e = self.tbl24[(addr >> 8) as usize];
        let v = if e < GROUP || e == NONE {
            e
        } else {
            self.tbl8[((e & !GROUP) as usize) * 256 + (addr & 0xff) as usize]
        };
        (v != NONE).then_some(v)
    }

    pub fn bytes(&self) -> usize {
        (self.tbl24.len() + self.tbl8.len()) * 4
    }
}
