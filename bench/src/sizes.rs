//! Inner packet sizes: fixed, or IMIX. Sizes are of the inner IP packet (what the peer's TUN
//! would carry), not of the encrypted datagram.

use std::fmt;
use std::str::FromStr;

/// The IMIX used here: the classic 7:4:1 mix (Simple IMIX) scaled to a WireGuard tunnel's
/// inner packets: 7 × 64, 4 × 576, 1 × 1420 bytes (1420 = the default tunnel MTU, in place
/// of 1500). Mean 347.7 bytes.
pub const IMIX: [u16; 12] = [64, 576, 64, 64, 1420, 64, 576, 64, 576, 64, 576, 64];

/// Smallest inner packet: IPv4 + UDP headers + the sink's 16-byte tag ([`crate::inner`]).
pub const MIN: u16 = 44;
/// Largest: the default WireGuard MTU.
pub const MAX: u16 = 1420;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    Fixed(u16),
    Imix,
}

impl Size {
    /// Inner length of the `k`-th packet.
    pub fn nth(self, k: usize) -> u16 {
        match self {
            Size::Fixed(n) => n,
            Size::Imix => IMIX[k % IMIX.len()],
        }
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Size::Fixed(n) => write!(f, "{n}"),
            Size::Imix => f.write_str("imix"),
        }
    }
}

impl FromStr for Size {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.eq_ignore_ascii_case("imix") {
            return Ok(Size::Imix);
        }
        let n: u16 = s
            .parse()
            .map_err(|_| format!("size {s:?}: a number or imix"))?;
        if !(MIN..=MAX).contains(&n) {
            return Err(format!("size {n}: between {MIN} and {MAX} bytes"));
        }
        Ok(Size::Fixed(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imix_is_7_4_1() {
        let count = |n| IMIX.iter().filter(|&&s| s == n).count();
        assert_eq!((count(64), count(576), count(1420)), (7, 4, 1));
        let mean: u32 = IMIX.iter().map(|&s| u32::from(s)).sum::<u32>() / 12;
        assert_eq!(mean, 347);
    }

    #[test]
    fn parse() {
        assert_eq!("IMIX".parse(), Ok(Size::Imix));
        assert_eq!("64".parse(), Ok(Size::Fixed(64)));
        assert!("40".parse::<Size>().is_err());
        assert!("1500".parse::<Size>().is_err());
    }
}
