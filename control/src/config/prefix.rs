//! IP prefixes as `AllowedIPs` and `Address` spell them: `10.0.0.0/24`, `fd00::1/64`, or a
//! bare address meaning a single host.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// An address and a prefix length no longer than the address. The address is kept as written:
/// bits past the prefix length are not cleared (see [`IpPrefix::has_host_bits`]), because an
/// interface `Address` needs them and `AllowedIPs` semantics belong to the routing table.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IpPrefix {
    addr: IpAddr,
    len: u8,
}

/// Why a prefix was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PrefixError {
    #[error("not an IPv4 or IPv6 address")]
    Address,
    #[error("prefix length must be a number 0-{max}")]
    Length { max: u8 },
}

impl IpPrefix {
    pub fn new(addr: IpAddr, len: u8) -> Result<Self, PrefixError> {
        let max = Self::max_len(addr);
        if len > max {
            return Err(PrefixError::Length { max });
        }
        Ok(Self { addr, len })
    }

    /// The prefix covering exactly `addr`: /32 or /128.
    pub fn host(addr: IpAddr) -> Self {
        Self {
            addr,
            len: Self::max_len(addr),
        }
    }

    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    pub fn prefix_len(&self) -> u8 {
        self.len
    }

    pub fn max_len(addr: IpAddr) -> u8 {
        match addr {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        }
    }

    /// Whether any bit past the prefix length is set, e.g. `10.0.0.1/24`.
    pub fn has_host_bits(&self) -> bool {
        let len = u32::from(self.len);
        match self.addr {
            IpAddr::V4(a) => u32::from(a) & u32::MAX.checked_shr(len).unwrap_or(0) != 0,
            IpAddr::V6(a) => u128::from(a) & u128::MAX.checked_shr(len).unwrap_or(0) != 0,
        }
    }
}

impl FromStr for IpPrefix {
    type Err = PrefixError;

    /// Follows `wg`'s `parse_allowedips`: the family is chosen by the presence of a colon, the
    /// length is decimal digits only (so no sign, no spaces), and a bare address is a host.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, len) = match s.split_once('/') {
            Some((addr, len)) => (addr, Some(len)),
            None => (s, None),
        };
        let addr = if addr.contains(':') {
            addr.parse::<Ipv6Addr>().map(IpAddr::V6)
        } else {
            addr.parse::<Ipv4Addr>().map(IpAddr::V4)
        }
        .map_err(|_| PrefixError::Address)?;
        let Some(len) = len else {
            return Ok(Self::host(addr));
        };
        let max = Self::max_len(addr);
        if len.is_empty() || !len.bytes().all(|b| b.is_ascii_digit()) {
            return Err(PrefixError::Length { max });
        }
        // A digit string too long for u8 is out of range like any other.
        let len = len.parse::<u8>().map_err(|_| PrefixError::Length { max })?;
        Self::new(addr, len)
    }
}

impl fmt::Display for IpPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

// The derived form (`IpPrefix { addr: V4(10.0.0.0), len: 8 }`) buries the prefix in noise.
impl fmt::Debug for IpPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<IpPrefix, PrefixError> {
        s.parse()
    }

    #[test]
    fn accepts_what_wg_accepts() {
        for (input, shown) in [
            ("10.0.0.0/24", "10.0.0.0/24"),
            ("0.0.0.0/0", "0.0.0.0/0"),
            ("::/0", "::/0"),
            ("10.0.0.2", "10.0.0.2/32"),
            ("fdc1:d89e:b128:6a04::961", "fdc1:d89e:b128:6a04::961/128"),
            ("FDC1:D89E::1/64", "fdc1:d89e::1/64"),
            ("10.0.0.1/024", "10.0.0.1/24"),
            ("::ffff:10.0.0.1/128", "::ffff:10.0.0.1/128"),
        ] {
            assert_eq!(p(input).unwrap().to_string(), shown, "{input}");
        }
    }

    #[test]
    fn refuses_bad_addresses_and_lengths() {
        use PrefixError::*;
        for (input, err) in [
            ("", Address),
            ("/24", Address),
            ("10.0.0/24", Address),
            ("10.0.0.256/24", Address),
            ("010.0.0.1/32", Address),
            ("10.0.0.1:/32", Address),
            ("fd00::1::2/64", Address),
            ("example.com/32", Address),
            ("+10.0.0.0/8", Address),
            ("10.0.0.0/33", Length { max: 32 }),
            ("10.0.0.0/", Length { max: 32 }),
            ("10.0.0.0/+8", Length { max: 32 }),
            ("10.0.0.0/8/8", Length { max: 32 }),
            ("10.0.0.0/ 8", Length { max: 32 }),
            ("10.0.0.0/99999999999999999999", Length { max: 32 }),
            ("fd00::/129", Length { max: 128 }),
        ] {
            assert_eq!(p(input), Err(err), "{input}");
        }
    }

    #[test]
    fn host_bits() {
        for (input, set) in [
            ("10.0.0.0/24", false),
            ("10.0.0.1/24", true),
            ("10.0.0.1/32", false),
            ("0.0.0.0/0", false),
            ("0.0.0.1/0", true),
            ("128.0.0.0/1", false),
            ("fd00::/64", false),
            ("fd00::1/64", true),
            ("fd00::1/128", false),
            ("::1/0", true),
        ] {
            assert_eq!(p(input).unwrap().has_host_bits(), set, "{input}");
        }
    }

    #[test]
    fn new_checks_length() {
        let v4 = IpAddr::V4(Ipv4Addr::LOCALHOST);
        assert!(IpPrefix::new(v4, 32).is_ok());
        assert_eq!(IpPrefix::new(v4, 33), Err(PrefixError::Length { max: 32 }));
        assert_eq!(IpPrefix::host(v4).prefix_len(), 32);
    }
}
