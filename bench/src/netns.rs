//! Sockets opened inside named network namespaces (`ip netns add NAME`): a socket stays in
//! the namespace it was created in, so one process can be a generator on the WAN side and a
//! sink on the LAN side at once.

use nix::sched::{setns, CloneFlags};
use std::fs::File;
use std::io;

/// Runs `f` on a new thread that has joined network namespace `name` (or the current one if
/// `name` is `None`), and returns what it returns.
pub fn run_in<T: Send + 'static>(
    name: Option<&str>,
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    let path = name.map(|n| format!("/var/run/netns/{n}"));
    std::thread::spawn(move || {
        if let Some(path) = path {
            let ns =
                File::open(&path).map_err(|e| io::Error::new(e.kind(), format!("{path}: {e}")))?;
            setns(ns, CloneFlags::CLONE_NEWNET)
                .map_err(|e| io::Error::other(format!("setns {path}: {e}")))?;
        }
        f()
    })
    .join()
    .map_err(|_| io::Error::other("namespace thread panicked"))?
}
