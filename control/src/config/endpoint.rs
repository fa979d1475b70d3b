//! Peer endpoints: `192.0.2.1:51820`, `[2001:db8::1]:51820`, `vpn.example.net:51820`.
//!
//! Split as `wg`'s `parse_endpoint` splits them (a leading `[` runs to the matching `]`,
//! otherwise the port follows the last colon), but never resolved: a hostname stays a
//! hostname until the configuration is applied, so parsing needs no network and a
//! re-resolution later sees the name, not a stale address.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::str::FromStr;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Addr(SocketAddr),
    /// A DNS name, or an IPv6 address with a named zone (`fe80::1%eth0`), which only the
    /// system resolver can turn into an address.
    Host {
        host: String,
        port: u16,
    },
}

/// Why an endpoint was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    #[error("no `]` matching the `[`")]
    UnmatchedBracket,
    #[error("no port; expected host:port or [IPv6]:port")]
    MissingPort,
    #[error("port must be a number 1-65535")]
    BadPort,
    #[error("host is neither an IP address nor a hostname")]
    BadHost,
}

impl Endpoint {
    pub fn port(&self) -> u16 {
        match self {
            Endpoint::Addr(a) => a.port(),
            Endpoint::Host { port, .. } => *port,
        }
    }
}

impl FromStr for Endpoint {
    type Err = EndpointError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (host, after) = rest
                .split_once(']')
                .ok_or(EndpointError::UnmatchedBracket)?;
            let port = after.strip_prefix(':').ok_or(EndpointError::MissingPort)?;
            (host, port)
        } else {
            // The last colon, as `wg` splits: an unbracketed `fd00::1:51820` is fd00::1 port
            // 51820. Ambiguous to a human, but it is what `wg` has always done.
            s.rsplit_once(':').ok_or(EndpointError::MissingPort)?
        };
        if port.is_empty() {
            return Err(EndpointError::MissingPort);
        }
        let port = parse_port(port)?;
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(Endpoint::Addr(SocketAddr::new(ip, port)));
        }
        if let Some((ip, zone)) = host.split_once('%') {
            let ip = ip.parse::<Ipv6Addr>().map_err(|_| EndpointError::BadHost)?;
            if let Ok(scope) = zone.parse::<u32>() {
                return Ok(Endpoint::Addr(SocketAddr::V6(SocketAddrV6::new(
                    ip, port, 0, scope,
                ))));
            }
            if !is_interface_name(zone) {
                return Err(EndpointError::BadHost);
            }
        } else if !is_hostname(host) {
            return Err(EndpointError::BadHost);
        }
        Ok(Endpoint::Host {
            host: host.to_owned(),
            port,
        })
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Addr(a) => write!(f, "{a}"),
            Endpoint::Host { host, port } if host.contains(':') => write!(f, "[{host}]:{port}"),
            Endpoint::Host { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

/// Decimal digits only (`wg` would also take service names; a gateway config should not
/// depend on `/etc/services`), and not 0, which no datagram can be sent to.
fn parse_port(s: &str) -> Result<u16, EndpointError> {
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(EndpointError::BadPort);
    }
    match s.parse::<u16>() {
        Ok(0) | Err(_) => Err(EndpointError::BadPort),
        Ok(port) => Ok(port),
    }
}

/// Letters, digits, `-`, `_` and `.`, as resolvers accept; length per RFC 1035 §2.3.4.
fn is_hostname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && !s.starts_with(['.', '-'])
        && !s.contains("..")
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Linux interface names: at most 15 bytes (IFNAMSIZ - 1), no `/` or whitespace.
fn is_interface_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 15
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(s: &str) -> Result<Endpoint, EndpointError> {
        s.parse()
    }

    fn host(h: &str, port: u16) -> Endpoint {
        Endpoint::Host {
            host: h.into(),
            port,
        }
    }

    #[test]
    fn addresses_and_hostnames() {
        let addr = |s: &str| Endpoint::Addr(s.parse().unwrap());
        for (input, want) in [
            ("124.112.22.23:53", addr("124.112.22.23:53")),
            ("[2001:db8::1]:51820", addr("[2001:db8::1]:51820")),
            ("2001:db8::1:51820", addr("[2001:db8::1]:51820")),
            ("[fe80::1%3]:51820", addr("[fe80::1%3]:51820")),
            ("[192.0.2.1]:1", addr("192.0.2.1:1")),
            ("maeve.example.net:55867", host("maeve.example.net", 55867)),
            ("localhost:65535", host("localhost", 65535)),
            ("vpn.example.net.:51820", host("vpn.example.net.", 51820)),
            ("[fe80::1%eth0]:51820", host("fe80::1%eth0", 51820)),
        ] {
            assert_eq!(e(input), Ok(want), "{input}");
        }
    }

    #[test]
    fn refusals() {
        use EndpointError::*;
        for (input, err) in [
            ("", MissingPort),
            ("example.net", MissingPort),
            ("example.net:", MissingPort),
            ("[2001:db8::1]", MissingPort),
            ("[2001:db8::1]51820", MissingPort),
            ("[2001:db8::1:51820", UnmatchedBracket),
            ("example.net:0", BadPort),
            ("example.net:65536", BadPort),
            ("example.net:+1", BadPort),
            ("example.net:domain", BadPort),
            (":51820", BadHost),
            ("exa mple.net:1", BadHost),
            ("-bad.example:1", BadHost),
            ("a..b:1", BadHost),
            ("2001:db8::zz:1", BadHost),
            ("[fe80::1%]:1", BadHost),
            ("[fe80::1%a/b]:1", BadHost),
            ("[nothex%eth0]:1", BadHost),
        ] {
            assert_eq!(e(input), Err(err), "{input}");
        }
    }

    #[test]
    fn display_round_trips() {
        for input in [
            "124.112.22.23:53",
            "[2001:db8::1]:51820",
            "[fe80::1%3]:51820",
            "maeve.example.net:55867",
            "[fe80::1%eth0]:51820",
        ] {
            let parsed = e(input).unwrap();
            assert_eq!(parsed.to_string(), input);
            assert_eq!(e(&parsed.to_string()), Ok(parsed));
        }
    }
}
