//! A wireguard-go peer running in a namespace, configured with the stock `wg` tool.
//!
//! Facts about wireguard-go 0.0.20220316 (Debian 12) this relies on:
//! - `-f` keeps it in the foreground, so the guard owns the process itself (`ip netns exec`
//!   execs, the child's pid is wireguard-go's).
//! - On a kernel with WireGuard support it prints a "Running wireguard-go is not required"
//!   banner (then runs anyway); `WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1` silences it.
//! - Its UAPI socket is `/var/run/wireguard/<ifname>.sock`, one directory for all namespaces,
//!   so the interface name is unique on the machine (see `names::wg_ifname`). The socket shows
//!   up 10-50 ms after start; `wg` talks to it from any namespace.
//! - SIGTERM shuts it down cleanly and removes the socket; after SIGKILL the socket stays
//!   (wireguard-go itself replaces a stale socket at its next start).
//! - Until `wg set ... listen-port` it listens on a random port.

use crate::addr::IfAddr;
use crate::cmd::{self, ip_n, netns_exec, stdout_text};
use crate::error::{Error, Result};
use crate::names;
use crate::netns::{stop_child, Netns};
use crate::veth::add_addrs;
use crate::wg::{WgDump, WgKeypair, WgPeerStatus};
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt as _;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// Where wireguard-go (and every userspace WireGuard) puts its UAPI sockets.
pub const UAPI_DIR: &str = "/var/run/wireguard";

const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);
const STOP_GRACE: Duration = Duration::from_secs(2);
/// Lines of wireguard-go's log printed when a test panics with the guard alive.
const LOG_TAIL_ON_PANIC: usize = 60;

/// A peer as `wg set <if> peer ...` takes it.
#[derive(Clone, Default)]
pub struct WgPeer {
    /// Base64, as `wg` prints it.
    pub public_key: String,
    /// Base64. Secret: `Debug` shows only whether it is set.
    pub preshared_key: Option<String>,
    pub allowed_ips: Vec<IfAddr>,
    pub endpoint: Option<SocketAddr>,
    pub persistent_keepalive: Option<u16>,
}

impl WgPeer {
    pub fn new(public_key: impl Into<String>) -> WgPeer {
        WgPeer {
            public_key: public_key.into(),
            ..WgPeer::default()
        }
    }
}

impl fmt::Debug for WgPeer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WgPeer")
            .field("public_key", &self.public_key)
            .field(
                "preshared_key",
                &self.preshared_key.as_ref().map(|_| "(redacted)"),
            )
            .field("allowed_ips", &self.allowed_ips)
            .field("endpoint", &self.endpoint)
            .field("persistent_keepalive", &self.persistent_keepalive)
            .finish()
    }
}

/// How to bring up a wireguard-go interface.
#[derive(Debug, Clone)]
pub struct WgConfig {
    /// `None`: generate one with `wg genkey`.
    pub keypair: Option<WgKeypair>,
    /// Default [`crate::plan::WG_PORT`]; each namespace has its own port space. 0: a random
    /// port, which [`WireguardGo::listen_port`] then reports.
    pub listen_port: u16,
    /// Addresses on the tunnel interface (which also route their subnets into the tunnel).
    pub addrs: Vec<IfAddr>,
    pub peers: Vec<WgPeer>,
    /// Default: wireguard-go's 1420.
    pub mtu: Option<u32>,
}

impl Default for WgConfig {
    fn default() -> Self {
        WgConfig {
            keypair: None,
            listen_port: crate::addr::plan::WG_PORT,
            addrs: Vec::new(),
            peers: Vec::new(),
            mtu: None,
        }
    }
}

/// A running, configured wireguard-go. Drop stops it (SIGTERM, then SIGKILL), removes its
/// UAPI socket and log, and prints the log's tail if the thread is panicking.
pub struct WireguardGo {
    netns: String,
    ifname: String,
    keypair: WgKeypair,
    listen_port: u16,
    child: Child,
    log_path: PathBuf,
}

impl fmt::Debug for WireguardGo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WireguardGo")
            .field("netns", &self.netns)
            .field("ifname", &self.ifname)
            .field("public_key", &self.keypair.public_key())
            .field("listen_port", &self.listen_port)
            .field("pid", &self.child.id())
            .finish()
    }
}

impl WireguardGo {
    /// Starts `wireguard-go -f` in `netns`, waits for its UAPI socket, sets key, port and
    /// peers with `wg set`, then addresses, MTU and link up with `ip`. Check
    /// [`crate::require_wireguard_go`] first so that a machine without it skips the test.
    pub fn start(netns: &Netns, config: WgConfig) -> Result<WireguardGo> {
        let keypair = match config.keypair {
            Some(kp) => kp,
            None => WgKeypair::generate()?,
        };
        let ifname = free_ifname()?;
        let log_path = std::env::temp_dir().join(format!("{ifname}.wireguard-go.log"));
        let log = File::create(&log_path).map_err(|source| Error::Io {
            what: "create",
            path: log_path.clone(),
            source,
        })?;
        let log_err = log.try_clone().map_err(|source| Error::Io {
            what: "dup",
            path: log_path.clone(),
            source,
        })?;
        let mut cmd = netns_exec(netns.name(), ["wireguard-go", "-f", &ifname]);
        cmd.env("WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD", "1")
            .env("LOG_LEVEL", "debug")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        let child = cmd.spawn().map_err(|source| Error::Spawn {
            cmd: cmd::describe(&cmd),
            source,
        })?;
        // From here on Drop stops the process, whatever fails next.
        let mut wg = WireguardGo {
            netns: netns.name().to_owned(),
            ifname,
            keypair,
            listen_port: config.listen_port,
            child,
            log_path,
        };
        wg.wait_for_uapi()?;

        let key_file = SecretFile::new(wg.keypair.private_key())?;
        wg.wg_set(&[
            "private-key".as_ref(),
            key_file.path().as_os_str(),
            "listen-port".as_ref(),
            config.listen_port.to_string().as_ref(),
        ])?;
        drop(key_file);
        if wg.listen_port == 0 {
            wg.listen_port = wg.wg_show_dump()?.listen_port;
        }
        for peer in &config.peers {
            wg.set_peer(peer)?;
        }
        if let Some(mtu) = config.mtu {
            ip_n(
                &wg.netns,
                ["link", "set", &wg.ifname, "mtu", &mtu.to_string()],
            )?;
        }
        // Up before addresses, as for veths (see `VethBuilder::create`).
        ip_n(&wg.netns, ["link", "set", &wg.ifname, "up"])?;
        add_addrs(&wg.netns, &wg.ifname, &config.addrs)?;
        Ok(wg)
    }

    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    pub fn netns(&self) -> &str {
        &self.netns
    }

    pub fn keypair(&self) -> &WgKeypair {
        &self.keypair
    }

    /// This interface's public key, for the other side's peer entry.
    pub fn public_key(&self) -> &str {
        self.keypair.public_key()
    }

    pub fn listen_port(&self) -> u16 {
        self.listen_port
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn uapi_socket(&self) -> PathBuf {
        uapi_socket(&self.ifname)
    }

    /// Adds the peer, or updates it: its allowed IPs are replaced by `peer.allowed_ips`.
    pub fn set_peer(&self, peer: &WgPeer) -> Result<()> {
        let mut args: Vec<String> = vec!["peer".into(), peer.public_key.clone()];
        let psk_file = match &peer.preshared_key {
            Some(psk) => {
                let file = SecretFile::new(psk)?;
                args.extend(["preshared-key".into(), file.path().display().to_string()]);
                Some(file)
            }
            None => None,
        };
        if let Some(endpoint) = peer.endpoint {
            args.extend(["endpoint".into(), endpoint.to_string()]);
        }
        if let Some(keepalive) = peer.persistent_keepalive {
            args.extend(["persistent-keepalive".into(), keepalive.to_string()]);
        }
        let allowed: Vec<String> = peer.allowed_ips.iter().map(IfAddr::to_string).collect();
        // An empty value clears the list, which is what an empty `allowed_ips` means.
        args.extend(["allowed-ips".into(), allowed.join(",")]);
        self.wg_set(&args)?;
        drop(psk_file);
        Ok(())
    }

    pub fn remove_peer(&self, public_key: &str) -> Result<()> {
        self.wg_set(&["peer", public_key, "remove"])
    }

    /// `wg show <if> dump`, parsed.
    pub fn wg_show_dump(&self) -> Result<WgDump> {
        let out = cmd::run(&mut netns_exec(
            &self.netns,
            ["wg", "show", &self.ifname, "dump"],
        ))?;
        WgDump::parse(&stdout_text(&out))
    }

    /// Polls the dump until `peer` has completed a handshake, and returns its status then.
    pub fn wait_for_handshake(&self, peer: &str, timeout: Duration) -> Result<WgPeerStatus> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.wg_show_dump()?.peer(peer) {
                if status.latest_handshake.is_some() {
                    return Ok(status.clone());
                }
            }
            if start.elapsed() >= timeout {
                return Err(Error::Timeout {
                    what: format!("a handshake with {peer} on {}", self.ifname),
                    waited_ms: start.elapsed().as_millis(),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// wireguard-go's log so far (debug level): handshakes sent and received, and why packets
    /// were dropped. Worth printing when an interop test fails.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    fn wg_set<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Result<()> {
        let mut cmd = netns_exec(&self.netns, ["wg", "set", &self.ifname]);
        cmd.args(args);
        cmd::run(&mut cmd)?;
        Ok(())
    }

    /// Ready when the socket accepts a connection, not merely exists: a stale file from a
    /// killed run would otherwise look ready.
    fn wait_for_uapi(&mut self) -> Result<()> {
        let socket = self.uapi_socket();
        let start = Instant::now();
        loop {
            if UnixStream::connect(&socket).is_ok() {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(Error::EarlyExit {
                    what: format!("wireguard-go for {}", self.ifname),
                    status,
                    log: self.log(),
                });
            }
            if start.elapsed() >= STARTUP_TIMEOUT {
                return Err(Error::Timeout {
                    what: format!("{} (log: {})", socket.display(), self.log().trim()),
                    waited_ms: start.elapsed().as_millis(),
                });
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for WireguardGo {
    fn drop(&mut self) {
        stop_child(&mut self.child, STOP_GRACE);
        // Only left behind if SIGKILL was needed.
        let _ = std::fs::remove_file(self.uapi_socket());
        if std::thread::panicking() {
            let log = self.log();
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(LOG_TAIL_ON_PANIC)..];
            eprintln!(
                "--- wireguard-go {} in {} (last {} lines of its log) ---\n{}\n---",
                self.ifname,
                self.netns,
                tail.len(),
                tail.join("\n")
            );
        }
        let _ = std::fs::remove_file(&self.log_path);
    }
}

fn uapi_socket(ifname: &str) -> PathBuf {
    Path::new(UAPI_DIR).join(format!("{ifname}.sock"))
}

/// The next interface name whose UAPI socket is not in use by a live wireguard-go. A socket
/// file nobody answers on is a leftover of a killed run and is removed.
fn free_ifname() -> Result<String> {
    for _ in 0..16 {
        let ifname = names::wg_ifname();
        let socket = uapi_socket(&ifname);
        if !socket.exists() {
            return Ok(ifname);
        }
        if UnixStream::connect(&socket).is_err() {
            let _ = std::fs::remove_file(&socket);
            return Ok(ifname);
        }
    }
    Err(Error::Io {
        what: "no free interface name: every candidate socket is live in",
        path: PathBuf::from(UAPI_DIR),
        source: std::io::ErrorKind::AddrInUse.into(),
    })
}

/// A key in a mode-0600 file for `wg set ... private-key <file>`, removed on drop. `wg` reads
/// keys only from files, and a file keeps them out of `ps` output.
struct SecretFile(PathBuf);

impl SecretFile {
    fn new(key: &str) -> Result<SecretFile> {
        let path =
            std::env::temp_dir().join(format!("wgx-key-{}-{}", std::process::id(), names::next()));
        let io_err = |source| Error::Io {
            what: "write key file",
            path: path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(io_err)?;
        let file_guard = SecretFile(path.clone());
        file.write_all(key.as_bytes()).map_err(io_err)?;
        Ok(file_guard)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for SecretFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
