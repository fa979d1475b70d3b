//! The `set=1` operation of the cross-platform userspace API: parsing a request into typed
//! changes, with wireguard-go's errno for each way a request can be wrong.
//!
//! The whole request is parsed before anything is applied, so a request with any bad line
//! changes nothing (wireguard-go applies line by line and keeps what came before the error).
//! Keys and values are those wireguard-go accepts: device keys first, then one `public_key=`
//! line per peer followed by that peer's keys.

use proto::allowedips::Prefix;
use proto::keys::{PresharedKey, PrivateKey, PublicKey};
use std::net::SocketAddr;

/// A negative errno as the reply's `errno=` line carries it, with what went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UapiError {
    pub errno: Errno,
    pub message: String,
}

/// The errno values wireguard-go answers with (`ipc/uapi.go`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Errno {
    /// EIO: reading the request failed (a line longer than 64 KiB, as Go's scanner).
    Io,
    /// EPROTO: a line without `=`, or a request that ended before its blank line.
    Protocol,
    /// EINVAL: an unknown key or a bad value.
    Invalid,
    /// EADDRINUSE: the new listen port (or fwmark) could not be set.
    PortInUse,
    /// ENOSPC: more peers or allowed IPs than the gateway was started for (`--max-peers`).
    NoSpace,
}

impl Errno {
    pub fn code(self) -> i32 {
        match self {
            Self::Io => -5,
            Self::Protocol => -71,
            Self::Invalid => -22,
            Self::PortInUse => -98,
            Self::NoSpace => -28,
        }
    }
}

impl std::fmt::Display for UapiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "errno {}: {}", self.errno.code(), self.message)
    }
}

pub(crate) fn error(errno: Errno, message: impl Into<String>) -> UapiError {
    UapiError {
        errno,
        message: message.into(),
    }
}

/// A device-level change, in request order.
#[derive(Debug, Clone)]
pub enum DeviceOp {
    PrivateKey(PrivateKey),
    ListenPort(u16),
    Fwmark(u32),
    ReplacePeers,
}

/// A change to one peer, in request order.
#[derive(Debug, Clone)]
pub enum PeerOp {
    /// Change the peer only if it exists; never create it.
    UpdateOnly,
    Remove,
    PresharedKey(PresharedKey),
    Endpoint(SocketAddr),
    /// `wgxdp_failover_endpoint=IP:PORT` (a wgxdp extension, written by `wgxdp sync`): where
    /// the peer is, as the gateway of the cluster it is on sees it. Not the peer's endpoint
    /// here (nothing is sent to it because of this line): only where to start a handshake if
    /// the peer's data for another gateway's session arrives here from that address.
    FailoverEndpoint(SocketAddr),
    /// Seconds; 0 turns it off.
    PersistentKeepalive(u16),
    ReplaceAllowedIps,
    AllowedIp(Prefix),
    /// `allowed_ip=-PREFIX`: remove it if this peer owns it.
    RemoveAllowedIp(Prefix),
}

#[derive(Debug, Clone)]
pub struct PeerChange {
    pub public_key: PublicKey,
    pub ops: Vec<PeerOp>,
}

/// What a peer's lines amount to, with wireguard-go's rules (`handlePublicKeyLine`,
/// `update_only`, `remove`): one place for every backend and for the room check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// The interface's own key, or `update_only` for a peer that does not exist: nothing.
    Ignore,
    /// `remove`: the peer goes if it exists (the other lines do not matter).
    Remove,
    /// Apply the lines, creating the peer first if `create`.
    Apply { create: bool },
}

impl PeerChange {
    /// What to do with this change, given the interface's public key and whether the peer
    /// exists now.
    pub fn disposition(&self, own: &PublicKey, exists: bool) -> Disposition {
        if self.public_key == *own {
            Disposition::Ignore
        } else if self.removes() {
            Disposition::Remove
        } else if exists {
            Disposition::Apply { create: false }
        } else if self.update_only() {
            Disposition::Ignore
        } else {
            Disposition::Apply { create: true }
        }
    }

    pub fn removes(&self) -> bool {
        self.ops.iter().any(|o| matches!(o, PeerOp::Remove))
    }

    pub fn update_only(&self) -> bool {
        self.ops.iter().any(|o| matches!(o, PeerOp::UpdateOnly))
    }
}

/// A parsed `set=1` request.
#[derive(Debug, Clone, Default)]
pub struct SetRequest {
    pub device: Vec<DeviceOp>,
    pub peers: Vec<PeerChange>,
}

fn hex_key(key: &str, value: &str) -> Result<[u8; 32], UapiError> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(value, &mut out)
        .map_err(|_| error(Errno::Invalid, format!("{key}: not a 64-digit hex key")))?;
    Ok(out)
}

fn flag(key: &str, value: &str) -> Result<(), UapiError> {
    if value == "true" {
        Ok(())
    } else {
        Err(error(
            Errno::Invalid,
            format!("{key}: only \"true\" is valid, got {value:?}"),
        ))
    }
}

fn number<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, UapiError> {
    value
        .parse()
        .map_err(|_| error(Errno::Invalid, format!("{key}: bad number {value:?}")))
}

fn prefix(value: &str) -> Result<Prefix, UapiError> {
    let bad = || error(Errno::Invalid, format!("allowed_ip: bad prefix {value:?}"));
    let (addr, len) = value.split_once('/').ok_or_else(bad)?;
    let addr = addr.parse().map_err(|_| bad())?;
    // Go's netip.ParsePrefix takes no leading zeros or signs in the length.
    if len.is_empty() || len.len() > 3 || !len.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let len = len.parse().map_err(|_| bad())?;
    Prefix::new(addr, len).map_err(|_| bad())
}

/// Parses the lines of a `set=1` request (without the `set=1` line and the blank line that
/// ends it).
pub fn parse(body: &str) -> Result<SetRequest, UapiError> {
    let mut req = SetRequest::default();
    for line in body.lines() {
        let Some((key, value)) = line.split_once('=') else {
            return Err(error(
                Errno::Protocol,
                format!(
                    "line without '=': {:?}",
                    line.chars().take(40).collect::<String>()
                ),
            ));
        };
        if key == "public_key" {
            req.peers.push(PeerChange {
                public_key: PublicKey::from_bytes(hex_key(key, value)?),
                ops: Vec::new(),
            });
            continue;
        }
        match req.peers.last_mut() {
            None => req.device.push(device_line(key, value)?),
            Some(peer) => {
                if let Some(op) = peer_line(key, value)? {
                    peer.ops.push(op);
                }
            }
        }
    }
    Ok(req)
}

fn device_line(key: &str, value: &str) -> Result<DeviceOp, UapiError> {
    Ok(match key {
        "private_key" => {
            let k = hex_key(key, value)?;
            if k == [0; 32] {
                // wireguard-go takes all zeros as "no private key"; a gateway without one
                // cannot answer anybody, so it is refused rather than half supported.
                return Err(error(
                    Errno::Invalid,
                    "private_key: removing the private key (`wg setconf` of a file without \
                     PrivateKey) is not supported",
                ));
            }
            DeviceOp::PrivateKey(PrivateKey::from_bytes(k))
        }
        "listen_port" => DeviceOp::ListenPort(number(key, value)?),
        "fwmark" => DeviceOp::Fwmark(number(key, value)?),
        "replace_peers" => {
            flag(key, value)?;
            DeviceOp::ReplacePeers
        }
        _ => {
            return Err(error(
                Errno::Invalid,
                format!("invalid UAPI device key: {key:?}"),
            ))
        }
    })
}

fn peer_line(key: &str, value: &str) -> Result<Option<PeerOp>, UapiError> {
    Ok(Some(match key {
        "update_only" => {
            flag(key, value)?;
            PeerOp::UpdateOnly
        }
        "remove" => {
            flag(key, value)?;
            PeerOp::Remove
        }
        "preshared_key" => PeerOp::PresharedKey(PresharedKey::from_bytes(hex_key(key, value)?)),
        "endpoint" => PeerOp::Endpoint(value.parse().map_err(|_| {
            error(
                Errno::Invalid,
                format!("endpoint: bad address {value:?} (IP:port or [IPv6]:port)"),
            )
        })?),
        "wgxdp_failover_endpoint" => PeerOp::FailoverEndpoint(value.parse().map_err(|_| {
            error(
                Errno::Invalid,
                format!("wgxdp_failover_endpoint: bad address {value:?}"),
            )
        })?),
        "persistent_keepalive_interval" => PeerOp::PersistentKeepalive(number(key, value)?),
        "replace_allowed_ips" => {
            flag(key, value)?;
            PeerOp::ReplaceAllowedIps
        }
        "allowed_ip" => match value.strip_prefix('-') {
            Some(v) => PeerOp::RemoveAllowedIp(prefix(v)?),
            None => PeerOp::AllowedIp(prefix(value)?),
        },
        "protocol_version" => {
            if value != "1" {
                return Err(error(
                    Errno::Invalid,
                    format!("invalid protocol version: {value:?}"),
                ));
            }
            return Ok(None);
        }
        _ => {
            return Err(error(
                Errno::Invalid,
                format!("invalid UAPI peer key: {key:?}"),
            ))
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "e84b5a6d2717c1003a13b431570353dbaca9146cf150c5f8575680feba52027a";
    const K2: &str = "58402e695ba1772b1cc9309755f043251ea77fdcf10fbe63989ceb7e19321376";

    #[test]
    fn a_full_request_parses_in_order() {
        let body = format!(
            "private_key={K1}\nlisten_port=51820\nfwmark=7\nreplace_peers=true\n\
             public_key={K2}\npreshared_key={K1}\nprotocol_version=1\n\
             endpoint=[2001:db8::1]:51820\npersistent_keepalive_interval=25\n\
             replace_allowed_ips=true\nallowed_ip=192.95.5.65/27\nallowed_ip=-10.0.0.0/8\n\
             allowed_ip=::/0\npublic_key={K1}\nremove=true\npublic_key={K1}\nupdate_only=true\n"
        );
        let r = parse(&body).unwrap();
        assert!(matches!(
            r.device[..],
            [
                DeviceOp::PrivateKey(_),
                DeviceOp::ListenPort(51820),
                DeviceOp::Fwmark(7),
                DeviceOp::ReplacePeers
            ]
        ));
        assert_eq!(r.peers.len(), 3);
        let p = &r.peers[0];
        assert_eq!(p.public_key.as_bytes(), &hex_key("k", K2).unwrap());
        assert!(matches!(
            p.ops[..],
            [
                PeerOp::PresharedKey(_),
                PeerOp::Endpoint(_),
                PeerOp::PersistentKeepalive(25),
                PeerOp::ReplaceAllowedIps,
                PeerOp::AllowedIp(_),
                PeerOp::RemoveAllowedIp(_),
                PeerOp::AllowedIp(_),
            ]
        ));
        match &p.ops[4] {
            PeerOp::AllowedIp(a) => assert_eq!(a.to_string(), "192.95.5.64/27"),
            o => panic!("{o:?}"),
        }
        assert!(r.peers[1].removes() && !r.peers[1].update_only());
        assert!(r.peers[2].update_only());
    }

    #[test]
    fn every_bad_line_has_wireguard_go_errno() {
        let cases: &[(&str, Errno)] = &[
            ("listen_port", Errno::Protocol),
            ("bogus_key=1", Errno::Invalid),
            ("private_key=00", Errno::Invalid),
            (&format!("private_key={}", "zz".repeat(32)), Errno::Invalid),
            (&format!("private_key={}", "00".repeat(32)), Errno::Invalid),
            ("listen_port=65536", Errno::Invalid),
            ("listen_port=-1", Errno::Invalid),
            ("fwmark=x", Errno::Invalid),
            ("replace_peers=false", Errno::Invalid),
            ("public_key=abc", Errno::Invalid),
            (&format!("public_key={K1}\nlisten_port=1"), Errno::Invalid),
            (
                &format!("public_key={K1}\nendpoint=1.2.3.4"),
                Errno::Invalid,
            ),
            (&format!("public_key={K1}\nendpoint=host:1"), Errno::Invalid),
            (
                &format!("public_key={K1}\nallowed_ip=10.0.0.0/33"),
                Errno::Invalid,
            ),
            (
                &format!("public_key={K1}\nallowed_ip=10.0.0.0"),
                Errno::Invalid,
            ),
            (
                &format!("public_key={K1}\nallowed_ip=10.0.0.0/+8"),
                Errno::Invalid,
            ),
            (
                &format!("public_key={K1}\nprotocol_version=2"),
                Errno::Invalid,
            ),
            (
                &format!("public_key={K1}\npersistent_keepalive_interval=65536"),
                Errno::Invalid,
            ),
            (&format!("public_key={K1}\nremove=yes"), Errno::Invalid),
            (&format!("public_key={K1}\nallowed_ip"), Errno::Protocol),
        ];
        for (body, errno) in cases {
            let e = parse(body).unwrap_err();
            assert_eq!(e.errno, *errno, "{body:?}: {e}");
        }
    }

    #[test]
    fn dispositions_follow_wireguard_go() {
        let own = PublicKey::from_bytes(hex_key("k", K1).unwrap());
        let r = parse(&format!(
            "public_key={K2}\npublic_key={K2}\nremove=true\npublic_key={K2}\nupdate_only=true\npublic_key={K1}\n"
        ))
        .unwrap();
        let d = |i: usize, exists| r.peers[i].disposition(&own, exists);
        assert_eq!(d(0, false), Disposition::Apply { create: true });
        assert_eq!(d(0, true), Disposition::Apply { create: false });
        assert_eq!(d(1, true), Disposition::Remove);
        assert_eq!(d(1, false), Disposition::Remove);
        assert_eq!(
            d(2, false),
            Disposition::Ignore,
            "update_only never creates"
        );
        assert_eq!(d(2, true), Disposition::Apply { create: false });
        assert_eq!(d(3, true), Disposition::Ignore, "the interface's own key");
    }

    #[test]
    fn upper_case_hex_is_a_key_too() {
        let r = parse(&format!("public_key={}\n", K1.to_uppercase())).unwrap();
        assert_eq!(r.peers[0].public_key.as_bytes(), &hex_key("k", K1).unwrap());
    }

    proptest::proptest! {
        #[test]
        fn never_panics(body in "(?s).{0,400}") {
            let _ = parse(&body);
        }
    }
}
