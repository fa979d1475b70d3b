//! `wgxdp up --foreground`: the gateway's processes supervised by the `up` that started
//! them, for systemd (`contrib/systemd/wgxdp@.service`, Type=notify).
//!
//! - Control may die (a bug, the OOM killer, an operator's kill): the data path keeps
//!   forwarding on the sessions it has, and a new control is started and attaches to the
//!   same region (design §2). Restarts back off from 1 s to 30 s while control keeps dying,
//!   so a control that cannot start costs little; after a minute of running, the next
//!   restart is immediate again.
//! - The data path (or the fallback backend, which is control and worker in one) is the
//!   gateway: when it ends, the gateway is taken down and `up` exits non-zero, so that
//!   systemd's `Restart=on-failure` starts it all anew. When it ended because of `wgxdp down`
//!   (the run directory is gone), `up` exits 0 and systemd leaves it down.
//! - SIGTERM or SIGINT (`systemctl stop`): the gateway is taken down as `wgxdp down` does,
//!   with PreDown, SaveConfig and PostDown. The unit uses KillMode=mixed, so that only this
//!   process gets the signal and the order of `down` holds.
//!
//! Readiness and stopping are told to systemd over `NOTIFY_SOCKET` (sd_notify(3)'s
//! protocol: one datagram of `KEY=VALUE` lines), written here rather than with a crate.

use control::InterfaceName;
use std::path::Path;
use std::process::Child;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tracing::{error, info, warn};

const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A control that ran this long is taken to have been healthy: its next restart is prompt.
const HEALTHY: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(100);

/// Starts control anew (with the arguments it was first started with).
pub type SpawnControl<'a> = &'a dyn Fn() -> Result<Child, String>;

/// A started gateway, as `up` hands it over.
pub struct Gateway<'a> {
    pub name: &'a InterfaceName,
    /// Its run directory: gone once `wgxdp down` took it down.
    pub dir: &'a Path,
    /// The process whose end is the gateway's: the data path, or the fallback backend.
    pub main: Child,
    pub main_what: &'static str,
    /// Control and how to start it again (the XDP path; the fallback runs control inside).
    pub control: Option<(Child, SpawnControl<'a>)>,
}

impl std::fmt::Debug for Gateway<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("name", &self.name)
            .field("main", &self.main.id())
            .finish_non_exhaustive()
    }
}

/// Supervises the gateway until it goes down (see the module's comment).
pub fn run(mut g: Gateway<'_>, stop: &AtomicBool) -> Result<(), String> {
    let iface = g.name.as_str();
    notify(&format!("READY=1\nSTATUS={} up ({})", iface, g.main_what));
    let mut backoff = FIRST_BACKOFF;
    let mut control_since = Instant::now();
    let mut restart_at: Option<Instant> = None;
    loop {
        if stop.load(Ordering::Relaxed) {
            notify("STOPPING=1");
            info!(
                interface = %iface,
                "stopping on a signal: taking the gateway down"
            );
            return crate::gateway::down(&[iface.to_string()]);
        }
        if let Ok(Some(status)) = g.main.try_wait() {
            if !g.dir.exists() {
                info!(interface = %iface, "the gateway was taken down (wgxdp down)");
                return Ok(());
            }
            error!(interface = %iface, %status, "the {} exited; taking the gateway down", g.main_what);
            notify("STOPPING=1");
            if let Err(e) = crate::gateway::down(&[iface.to_string()]) {
                warn!(interface = %iface, "taking the gateway down: {e}");
            }
            return Err(format!("the {} exited ({status})", g.main_what));
        }
        if let Some((control, spawn)) = &mut g.control {
            if restart_at.is_none() {
                if let Ok(Some(status)) = control.try_wait() {
                    if control_since.elapsed() >= HEALTHY {
                        backoff = FIRST_BACKOFF;
                    }
                    warn!(
                        interface = %iface,
                        %status,
                        restart_in_s = backoff.as_secs(),
                        "control exited; the data path forwards on the sessions it has"
                    );
                    restart_at = Some(Instant::now() + backoff);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
            // Not after `wgxdp down` began (the run directory goes first): nothing to attach to.
            if restart_at.is_some_and(|t| Instant::now() >= t) && g.dir.join("region").exists() {
                restart_at = None;
                control_since = Instant::now();
                match spawn() {
                    Ok(c) => {
                        info!(interface = %iface, pid = c.id(), "control restarted");
                        *control = c;
                    }
                    Err(e) => {
                        error!(interface = %iface, "restarting control: {e}");
                        restart_at = Some(Instant::now() + backoff);
                    }
                }
            }
        }
        std::thread::sleep(POLL);
    }
}

/// Tells systemd `state` (sd_notify(3)), if it asked (`NOTIFY_SOCKET`); a failure only
/// costs systemd's view of our state, so it is logged and otherwise ignored.
pub fn notify(state: &str) {
    use std::os::linux::net::SocketAddrExt as _;
    use std::os::unix::ffi::OsStrExt as _;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let sent = UnixDatagram::unbound().and_then(|s| {
        let bytes = path.as_bytes();
        // "@name" is a socket in the abstract namespace.
        let addr = match bytes.strip_prefix(b"@") {
            Some(abs) => SocketAddr::from_abstract_name(abs)?,
            None => SocketAddr::from_pathname(&path)?,
        };
        s.send_to_addr(state.as_bytes(), &addr)
    });
    if let Err(e) = sent {
        warn!("telling systemd {state:?}: {e}");
    }
}

/// Whether process `pid` runs (a zombie, dead but not reaped by its parent, does not).
pub fn pid_alive(pid: i32) -> bool {
    if nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_err() {
        return false;
    }
    // /proc/PID/stat: "pid (comm) S ...", the state after the last ')'.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|st| {
            st.rsplit_once(')')
                .and_then(|(_, rest)| rest.trim_start().chars().next())
        })
        .is_none_or(|state| state != 'Z' && state != 'X')
}

pub fn read_pid(dir: &Path, name: &str) -> Option<i32> {
    std::fs::read_to_string(dir.join(name))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// SIGTERM, then SIGKILL after 5 s.
pub fn stop_pid(pid: i32) {
    let p = nix::unistd::Pid::from_raw(pid);
    let _ = nix::sys::signal::kill(p, nix::sys::signal::Signal::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(5);
    while pid_alive(pid) && Instant::now() < deadline {
        // Reap it if it is our child; otherwise just wait for it to go.
        let _ = nix::sys::wait::waitpid(p, Some(nix::sys::wait::WaitPidFlag::WNOHANG));
        std::thread::sleep(Duration::from_millis(20));
    }
    if pid_alive(pid) {
        let _ = nix::sys::signal::kill(p, nix::sys::signal::Signal::SIGKILL);
    }
}

/// The last lines of a file (a process's log).
pub fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(10)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_reaches_the_notify_socket() {
        let dir = std::env::temp_dir().join(format!("wgxdp-notify-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify");
        let sock = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        // Process-wide, but no other test of this binary reads NOTIFY_SOCKET.
        std::env::set_var("NOTIFY_SOCKET", &path);
        notify("READY=1");
        std::env::remove_var("NOTIFY_SOCKET");
        let mut buf = [0u8; 64];
        let n = sock.recv(&mut buf);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(&buf[..n.unwrap()], b"READY=1");
    }
}
