//! The cross-platform userspace API (the protocol wireguard-go serves), so that the stock `wg`
//! tool can read the gateway: a stream Unix socket at `/var/run/wireguard/<name>.sock`,
//! created under umask 077.
//!
//! This first version answers `get=1` with the device and every peer in wireguard-go's
//! format (hex keys, `key=value` lines, `errno=0` and a blank line), which is what `wg show`,
//! `wg show dump` and `wg showconf` use. `set=1` is refused with `errno=-95` (EOPNOTSUPP) for
//! now: configuration changes arrive with the live-changes issue.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const SOCKET_DIR: &str = "/var/run/wireguard";
/// Requests longer than this are refused: a `get` is one line.
const MAX_REQUEST: usize = 1 << 16;

/// One peer as `get=1` reports it.
#[derive(Debug, Clone, Default)]
pub struct PeerView {
    pub public_key: [u8; 32],
    pub preshared_key: [u8; 32],
    pub endpoint: Option<std::net::SocketAddr>,
    pub last_handshake: Option<Duration>,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub persistent_keepalive: u64,
    pub allowed_ips: Vec<String>,
}

/// The device as `get=1` reports it.
#[derive(Debug, Clone, Default)]
pub struct DeviceView {
    pub private_key: [u8; 32],
    pub listen_port: u16,
    pub peers: Vec<PeerView>,
}

fn hex(b: &[u8; 32]) -> String {
    b.iter().fold(String::with_capacity(64), |mut s, x| {
        let _ = write!(s, "{x:02x}");
        s
    })
}

/// The `get=1` answer, exactly as wireguard-go formats it.
pub fn format_get(d: &DeviceView) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "private_key={}", hex(&d.private_key));
    let _ = writeln!(out, "listen_port={}", d.listen_port);
    for p in &d.peers {
        let _ = writeln!(out, "public_key={}", hex(&p.public_key));
        let _ = writeln!(out, "preshared_key={}", hex(&p.preshared_key));
        let _ = writeln!(out, "protocol_version=1");
        if let Some(e) = p.endpoint {
            let _ = writeln!(out, "endpoint={e}");
        }
        let hs = p.last_handshake.unwrap_or_default();
        let _ = writeln!(out, "last_handshake_time_sec={}", hs.as_secs());
        let _ = writeln!(out, "last_handshake_time_nsec={}", hs.subsec_nanos());
        let _ = writeln!(out, "tx_bytes={}", p.tx_bytes);
        let _ = writeln!(out, "rx_bytes={}", p.rx_bytes);
        let _ = writeln!(
            out,
            "persistent_keepalive_interval={}",
            p.persistent_keepalive
        );
        for a in &p.allowed_ips {
            let _ = writeln!(out, "allowed_ip={a}");
        }
    }
    out.push_str("errno=0\n\n");
    out
}

/// The listening socket; removed on drop.
#[derive(Debug)]
pub struct Uapi {
    listener: UnixListener,
    path: PathBuf,
}

impl Uapi {
    /// Binds `/var/run/wireguard/<name>.sock` (owner-only), replacing a stale one.
    pub fn bind(name: &str) -> std::io::Result<Self> {
        Self::bind_at(&Path::new(SOCKET_DIR).join(format!("{name}.sock")))
    }

    pub fn bind_at(path: &Path) -> std::io::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        if UnixStream::connect(path).is_ok() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                format!("{} is in use", path.display()),
            ));
        }
        let _ = std::fs::remove_file(path);
        let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
        let bound = UnixListener::bind(path);
        nix::sys::stat::umask(old);
        let listener = bound?;
        listener.set_nonblocking(true)?;
        Ok(Self {
            listener,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the socket file still exists (wireguard-go exits when it is removed).
    pub fn exists(&self) -> bool {
        self.path.exists()
    }

    /// Serves every waiting client; `view` is called only when a client asks.
    pub fn serve(&self, mut view: impl FnMut() -> DeviceView) {
        while let Ok((mut stream, _)) = self.listener.accept() {
            let _ = stream.set_nonblocking(false);
            let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
            let mut req = Vec::new();
            let mut buf = [0u8; 4096];
            while !req.ends_with(b"\n\n") && req.len() < MAX_REQUEST {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => req.extend_from_slice(&buf[..n]),
                }
            }
            let answer = if req.starts_with(b"get=1\n") {
                format_get(&view())
            } else if req.starts_with(b"set=1\n") {
                "errno=-95\n\n".to_string()
            } else {
                // An unknown operation: wireguard-go answers EINVAL.
                "errno=-22\n\n".to_string()
            };
            let _ = stream.write_all(answer.as_bytes());
        }
    }
}

impl Drop for Uapi {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_answer_has_wireguard_go_layout() {
        let d = DeviceView {
            private_key: [1; 32],
            listen_port: 51820,
            peers: vec![PeerView {
                public_key: [2; 32],
                endpoint: Some("198.18.0.2:40000".parse().unwrap()),
                last_handshake: Some(Duration::new(1_700_000_000, 5)),
                rx_bytes: 10,
                tx_bytes: 20,
                persistent_keepalive: 25,
                allowed_ips: vec!["10.0.0.2/32".into()],
                ..PeerView::default()
            }],
        };
        let s = format_get(&d);
        assert!(s.starts_with(&format!(
            "private_key={}\nlisten_port=51820\npublic_key={}\n",
            "01".repeat(32),
            "02".repeat(32)
        )));
        for line in [
            "protocol_version=1",
            "endpoint=198.18.0.2:40000",
            "last_handshake_time_sec=1700000000",
            "last_handshake_time_nsec=5",
            "tx_bytes=20",
            "rx_bytes=10",
            "persistent_keepalive_interval=25",
            "allowed_ip=10.0.0.2/32",
        ] {
            assert!(s.contains(&format!("{line}\n")), "{line}");
        }
        assert!(s.ends_with("errno=0\n\n"));
    }

    #[test]
    fn socket_is_owner_only_and_answers() {
        use std::os::unix::fs::PermissionsExt as _;
        let path = std::env::temp_dir().join(format!("wgxdp-uapi-{}.sock", std::process::id()));
        let u = Uapi::bind_at(&path).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o700,
            "umask 077"
        );
        let client = std::thread::spawn({
            let path = path.clone();
            move || {
                let mut out = Vec::new();
                for req in ["get=1\n\n", "set=1\nlisten_port=1\n\n", "bogus=1\n\n"] {
                    let mut s = UnixStream::connect(&path).unwrap();
                    s.write_all(req.as_bytes()).unwrap();
                    let mut a = String::new();
                    s.read_to_string(&mut a).unwrap();
                    out.push(a);
                }
                out
            }
        });
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !client.is_finished() && std::time::Instant::now() < deadline {
            u.serve(|| DeviceView {
                listen_port: 7,
                ..DeviceView::default()
            });
            std::thread::sleep(Duration::from_millis(5));
        }
        let answers = client.join().unwrap();
        assert!(answers[0].contains("listen_port=7\n") && answers[0].ends_with("errno=0\n\n"));
        assert_eq!(answers[1], "errno=-95\n\n");
        assert_eq!(answers[2], "errno=-22\n\n");
        assert!(Uapi::bind_at(&path).is_err(), "a live socket is not stolen");
        drop(u);
        assert!(!path.exists());
    }
}
