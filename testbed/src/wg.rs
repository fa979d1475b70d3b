//! The stock `wg` tool: key generation, and `wg show <if> dump` parsed into types so that
//! tests can assert on a peer's handshake, traffic and endpoint.

use crate::addr::IfAddr;
use crate::cmd::{self, stdout_text};
use crate::error::{Error, Result};
use std::fmt;
use std::io::Write as _;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

/// `wg genkey`: a fresh private key in base64.
pub fn genkey() -> Result<String> {
    Ok(stdout_text(&cmd::run(Command::new("wg").arg("genkey"))?))
}

/// `wg genpsk`: a fresh pre-shared key in base64.
pub fn genpsk() -> Result<String> {
    Ok(stdout_text(&cmd::run(Command::new("wg").arg("genpsk"))?))
}

/// `wg pubkey`: the public key of a base64 private key.
pub fn pubkey(private_key: &str) -> Result<String> {
    let mut cmd = Command::new("wg");
    cmd.arg("pubkey")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let spawn_err = |source| Error::Spawn {
        cmd: "wg pubkey".to_owned(),
        source,
    };
    let mut child = cmd.spawn().map_err(spawn_err)?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(format!("{private_key}\n").as_bytes())
            .map_err(spawn_err)?;
    }
    let output = child.wait_with_output().map_err(spawn_err)?;
    Ok(stdout_text(&cmd::check(&cmd, output)?))
}

/// A key pair made by the reference tools, independent of our own `proto::keys`.
#[derive(Clone)]
pub struct WgKeypair {
    private: String,
    public: String,
}

impl WgKeypair {
    pub fn generate() -> Result<WgKeypair> {
        WgKeypair::from_private(genkey()?)
    }

    pub fn from_private(private: String) -> Result<WgKeypair> {
        let public = pubkey(&private)?;
        Ok(WgKeypair { private, public })
    }

    /// Base64, as `wg` prints it. Secret: never log it.
    pub fn private_key(&self) -> &str {
        &self.private
    }

    /// Base64, as `wg` prints it.
    pub fn public_key(&self) -> &str {
        &self.public
    }
}

impl fmt::Debug for WgKeypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WgKeypair")
            .field("private", &"(redacted)")
            .field("public", &self.public)
            .finish()
    }
}

/// The interface line of `wg show <if> dump`. The private key is not kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WgDump {
    /// `None` before a private key is set.
    pub public_key: Option<String>,
    pub listen_port: u16,
    pub fwmark: Option<u32>,
    pub peers: Vec<WgPeerStatus>,
}

/// One peer line of `wg show <if> dump`. The pre-shared key is not kept, only whether one is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WgPeerStatus {
    pub public_key: String,
    pub has_preshared_key: bool,
    pub endpoint: Option<SocketAddr>,
    pub allowed_ips: Vec<IfAddr>,
    /// `None` until the first handshake completed.
    pub latest_handshake: Option<SystemTime>,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub persistent_keepalive: Option<u16>,
}

impl WgDump {
    /// Parses the dump of one interface (`wg show <if> dump`, tab-separated): the interface
    /// line, then one line per peer.
    pub fn parse(text: &str) -> Result<WgDump> {
        let mut lines = text.lines().filter(|l| !l.trim().is_empty());
        let iface = lines.next().ok_or_else(|| parse_err("empty dump"))?;
        let f: Vec<&str> = iface.split('\t').collect();
        let [_private, public, port, fwmark] = f[..] else {
            return Err(parse_err(format!("interface line has {} fields", f.len())));
        };
        Ok(WgDump {
            public_key: none_or(public).map(str::to_owned),
            listen_port: number(port, "listen port")?,
            fwmark: match fwmark {
                "off" => None,
                mark => Some(match mark.strip_prefix("0x") {
                    Some(hex) => u32::from_str_radix(hex, 16)
                        .map_err(|_| parse_err(format!("fwmark {mark:?}")))?,
                    None => number(mark, "fwmark")?,
                }),
            },
            peers: lines.map(parse_peer).collect::<Result<_>>()?,
        })
    }

    pub fn peer(&self, public_key: &str) -> Option<&WgPeerStatus> {
        self.peers.iter().find(|p| p.public_key == public_key)
    }
}

fn parse_peer(line: &str) -> Result<WgPeerStatus> {
    let f: Vec<&str> = line.split('\t').collect();
    let [public, psk, endpoint, allowed, handshake, rx, tx, keepalive] = f[..] else {
        return Err(parse_err(format!("peer line has {} fields", f.len())));
    };
    let handshake: u64 = number(handshake, "latest handshake")?;
    Ok(WgPeerStatus {
        public_key: public.to_owned(),
        has_preshared_key: none_or(psk).is_some(),
        endpoint: none_or(endpoint)
            .map(|e| e.parse().map_err(|_| parse_err(format!("endpoint {e:?}"))))
            .transpose()?,
        allowed_ips: none_or(allowed)
            .map(|list| list.split(',').map(str::parse).collect::<Result<_>>())
            .transpose()?
            .unwrap_or_default(),
        latest_handshake: (handshake != 0)
            .then(|| SystemTime::UNIX_EPOCH + Duration::from_secs(handshake)),
        rx_bytes: number(rx, "rx bytes")?,
        tx_bytes: number(tx, "tx bytes")?,
        persistent_keepalive: match keepalive {
            "off" => None,
            n => Some(number(n, "persistent keepalive")?),
        },
    })
}

fn none_or(field: &str) -> Option<&str> {
    (field != "(none)").then_some(field)
}

fn number<T: std::str::FromStr>(field: &str, what: &str) -> Result<T> {
    field
        .parse()
        .map_err(|_| parse_err(format!("{what} {field:?}")))
}

fn parse_err(detail: impl fmt::Display) -> Error {
    Error::Parse {
        what: "`wg show dump`",
        detail: detail.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Shapes as wg-tools 1.0.20210914 prints them (keys are random test keys).
    const FRESH: &str = "(none)\t(none)\t35364\toff\n";
    const CONFIGURED: &str = "\
SBmbqRJ1D4jcyh5Ct0BDr4cWPqBcWaEn1bA4TO2A6lE=\tL6JuQKb3JmtYcSRmTq3WquowgnimSvJpBCNuS1HTfV4=\t51820\t0x2a
B3SUsx3lu0tfwOHhSGjHJd6bpKaqzy9qDk2uI8gHfCs=\t(none)\t[2001:2::1]:40000\t198.19.0.1/32,2001:2:0:1::1/128\t1764210000\t1240\t2088\t25
pAp7+7qMLbxS3xrN9GeL8yUwOHP10sp0k1PD7egALV0=\tFsRiUDCE9AGJgWeT8w9lItEe2a0p7CRoUiZRm1xzxsQ=\t(none)\t(none)\t0\t0\t0\toff
";

    #[test]
    fn parses_fresh_interface() {
        let dump = WgDump::parse(FRESH).unwrap();
        assert_eq!(dump.public_key, None);
        assert_eq!(dump.listen_port, 35364);
        assert_eq!(dump.fwmark, None);
        assert!(dump.peers.is_empty());
    }

    #[test]
    fn parses_peers() {
        let dump = WgDump::parse(CONFIGURED).unwrap();
        assert_eq!(dump.listen_port, 51820);
        assert_eq!(dump.fwmark, Some(0x2a));
        let p = dump
            .peer("B3SUsx3lu0tfwOHhSGjHJd6bpKaqzy9qDk2uI8gHfCs=")
            .unwrap();
        assert!(!p.has_preshared_key);
        assert_eq!(p.endpoint, Some("[2001:2::1]:40000".parse().unwrap()));
        assert_eq!(
            p.allowed_ips,
            vec![
                "198.19.0.1/32".parse().unwrap(),
                "2001:2:0:1::1/128".parse().unwrap()
            ]
        );
        assert_eq!(
            p.latest_handshake,
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_210_000))
        );
        assert_eq!((p.rx_bytes, p.tx_bytes), (1240, 2088));
        assert_eq!(p.persistent_keepalive, Some(25));

        let idle = &dump.peers[1];
        assert!(idle.has_preshared_key);
        assert_eq!(idle.endpoint, None);
        assert!(idle.allowed_ips.is_empty());
        assert_eq!(idle.latest_handshake, None);
        assert_eq!(idle.persistent_keepalive, None);
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "a\tb\tc\n",
            "(none)\t(none)\tport\toff\n",
            "(none)\t(none)\t1\toff\nx\ty\n",
        ] {
            assert!(WgDump::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn keypair_debug_hides_private_key() {
        let kp = WgKeypair {
            private: "SECRETSECRET".to_owned(),
            public: "PUBLIC".to_owned(),
        };
        let shown = format!("{kp:?}");
        assert!(!shown.contains("SECRET"), "{shown}");
        assert!(shown.contains("PUBLIC"), "{shown}");
    }
}
