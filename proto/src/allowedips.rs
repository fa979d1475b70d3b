//! Cryptokey routing (whitepaper §2): which peer owns which prefixes.
//!
//! This is the straightforward table with the kernel's semantics: a prefix belongs to exactly
//! one peer (inserting it for another peer moves it), host bits are cleared on insert
//! (192.95.5.65/27 is 192.95.5.64/27), lookups pick the longest matching prefix. It is linear
//! in the number of prefixes: good for the control process, the fallback backend and as the
//! naive reference that the data path's compact lock-free structure is tested against.

use std::net::IpAddr;

/// An IP prefix with host bits cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Prefix {
    addr: IpAddr,
    len: u8,
}

/// A prefix length beyond the address family's width.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("prefix length {len} is too long for {family}")]
pub struct PrefixLenError {
    pub len: u8,
    pub family: &'static str,
}

fn mask_bits(bits: u128, len: u8, width: u8) -> u128 {
    if len == 0 {
        return 0;
    }
    let keep = u128::MAX << (u32::from(width - len));
    let family_mask = if width == 128 {
        u128::MAX
    } else {
        (1u128 << width) - 1
    };
    bits & keep & family_mask
}

fn to_bits(addr: IpAddr) -> (u128, u8) {
    match addr {
        IpAddr::V4(a) => (u128::from(u32::from(a)), 32),
        IpAddr::V6(a) => (u128::from(a), 128),
    }
}

fn from_bits(bits: u128, v4: bool) -> IpAddr {
    if v4 {
        IpAddr::V4(u32::try_from(bits).unwrap_or(0).into())
    } else {
        IpAddr::V6(bits.into())
    }
}

impl Prefix {
    /// The prefix `addr/len` with host bits cleared.
    pub fn new(addr: IpAddr, len: u8) -> Result<Self, PrefixLenError> {
        let (bits, width) = to_bits(addr);
        if len > width {
            return Err(PrefixLenError {
                len,
                family: if width == 32 { "IPv4" } else { "IPv6" },
            });
        }
        Ok(Self {
            addr: from_bits(mask_bits(bits, len, width), width == 32),
            len,
        })
    }

    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    pub fn len(&self) -> u8 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let (bits, width) = to_bits(ip);
        let (mine, my_width) = to_bits(self.addr);
        width == my_width && mask_bits(bits, self.len, width) == mine
    }
}

impl std::fmt::Display for Prefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// The allowed-IPs table, generic over the peer handle.
#[derive(Debug, Clone)]
pub struct AllowedIps<P> {
    entries: Vec<(Prefix, P)>,
}

impl<P> Default for AllowedIps<P> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
        }
    }
}

impl<P: Copy + Eq> AllowedIps<P> {
    /// Assigns `prefix` to `peer`, taking it over from any other peer.
    pub fn insert(&mut self, prefix: Prefix, peer: P) {
        match self.entries.iter_mut().find(|(p, _)| *p == prefix) {
            Some(entry) => entry.1 = peer,
            None => self.entries.push((prefix, peer)),
        }
    }

    /// Removes `prefix` if `peer` owns it (wg's `allowed-ips -prefix`); returns whether it did.
    pub fn remove(&mut self, prefix: Prefix, peer: P) -> bool {
        let before = self.entries.len();
        self.entries
            .retain(|(p, owner)| !(*p == prefix && *owner == peer));
        before != self.entries.len()
    }

    pub fn remove_by_peer(&mut self, peer: P) {
        self.entries.retain(|(_, owner)| *owner != peer);
    }

    /// The peer owning the longest prefix that contains `ip`.
    pub fn lookup(&self, ip: IpAddr) -> Option<P> {
        self.entries
            .iter()
            .filter(|(p, _)| p.contains(ip))
            .max_by_key(|(p, _)| p.len)
            .map(|(_, peer)| *peer)
    }

    /// A peer's prefixes in canonical order (IPv4 first, then by address and length).
    pub fn prefixes_of(&self, peer: P) -> Vec<Prefix> {
        let mut v: Vec<Prefix> = self
            .entries
            .iter()
            .filter(|(_, o)| *o == peer)
            .map(|(p, _)| *p)
            .collect();
        v.sort_by_key(|p| (p.addr.is_ipv6(), p.addr, p.len));
        v
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Prefix {
        let (a, l) = s.split_once('/').unwrap();
        Prefix::new(a.parse().unwrap(), l.parse().unwrap()).unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn host_bits_are_normalised() {
        assert_eq!(p("192.95.5.65/27").to_string(), "192.95.5.64/27");
        assert_eq!(p("2001:db8::1:2/64").to_string(), "2001:db8::/64");
        assert_eq!(p("10.1.2.3/0").to_string(), "0.0.0.0/0");
        assert_eq!(p("::1/128").to_string(), "::1/128");
        assert!(Prefix::new(ip("1.2.3.4"), 33).is_err());
        assert!(Prefix::new(ip("::"), 129).is_err());
    }

    #[test]
    fn longest_prefix_wins_and_families_stay_apart() {
        let mut t = AllowedIps::default();
        t.insert(p("0.0.0.0/0"), 1);
        t.insert(p("10.0.0.0/8"), 2);
        t.insert(p("10.1.0.0/16"), 3);
        t.insert(p("::/0"), 4);
        assert_eq!(t.lookup(ip("10.1.2.3")), Some(3));
        assert_eq!(t.lookup(ip("10.2.2.3")), Some(2));
        assert_eq!(t.lookup(ip("8.8.8.8")), Some(1));
        assert_eq!(t.lookup(ip("2001:db8::1")), Some(4));
        t.remove_by_peer(4);
        assert_eq!(t.lookup(ip("2001:db8::1")), None);
    }

    #[test]
    fn takeover_and_removal() {
        let mut t = AllowedIps::default();
        t.insert(p("10.0.0.0/24"), 1);
        t.insert(p("10.0.0.7/24"), 2); // same prefix after normalisation: moves to peer 2
        assert_eq!(t.len(), 1);
        assert_eq!(t.lookup(ip("10.0.0.9")), Some(2));
        assert!(!t.remove(p("10.0.0.0/24"), 1), "peer 1 no longer owns it");
        assert!(t.remove(p("10.0.0.0/24"), 2));
        assert!(t.is_empty());
    }

    #[test]
    fn listing_is_canonical() {
        let mut t = AllowedIps::default();
        for s in ["fd00::/8", "10.0.0.2/32", "10.0.0.0/24", "192.168.0.1/32"] {
            t.insert(p(s), 1);
        }
        t.insert(p("172.16.0.0/12"), 2);
        let list: Vec<String> = t.prefixes_of(1).iter().map(|p| p.to_string()).collect();
        assert_eq!(
            list,
            ["10.0.0.0/24", "10.0.0.2/32", "192.168.0.1/32", "fd00::/8"]
        );
    }
}
