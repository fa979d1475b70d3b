//! The network-namespace guard: one private network stack per simulated host.
//!
//! Cleanup contract: dropping a [`Netns`] stops the processes it started, kills anything else
//! still inside, and deletes the namespace, which takes its interfaces (veth ends, TUN devices)
//! with it. `Drop` runs during unwinding, so a panicking test cleans up too. A process killed
//! outright (SIGKILL, or SIGINT/SIGTERM, which end a Rust test without unwinding) cannot run
//! `Drop`; the next [`Netns::new`] on the machine removes what such a process left (the owner
//! pid is in every name, see [`sweep_stale`]), and `testbed/test` checks for leaks at exit.
//!
//! A namespace may also outlive the process that made it: [`Netns::new_owned_by`] names it
//! after another process (a shell script that runs `testbed-topo`), [`Netns::release`] gives
//! up the guard, and [`delete_owned_by`] removes it later. It still counts as stale, and is
//! swept, once that owner is gone.

use crate::cmd::{self, ip, ip_n, netns_exec};
use crate::error::{Error, Result};
use crate::names;
use nix::sched::CloneFlags;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::ffi::OsStr;
use std::fs::File;
use std::mem::ManuallyDrop;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

/// Where `ip netns add` pins namespaces (bind mounts named after the namespace).
pub const NETNS_DIR: &str = "/var/run/netns";

/// How long a process gets to exit after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// How long the processes still inside a namespace being deleted (a gateway, a wireguard-go
/// the test or script did not stop itself) get between SIGTERM and SIGKILL: wireguard-go
/// removes its UAPI socket only on a clean exit. An empty namespace is not waited for.
const REMOVE_GRACE: Duration = Duration::from_millis(500);

/// A uniquely named network namespace, deleted on drop. `lo` is up.
#[derive(Debug)]
pub struct Netns {
    name: String,
    /// Background processes started by [`Netns::spawn`]; stopped first on drop.
    children: Mutex<Vec<Child>>,
}

impl Netns {
    /// Creates `wgx-<pid>-<n>-<label>`. The label only helps a person reading `ip netns list`.
    pub fn new(label: &str) -> Result<Netns> {
        Netns::create(names::netns(label))
    }

    /// Like [`Netns::new`], but owned by process `owner`: named `wgx-<owner>-<pid>.<n>-<label>`,
    /// so that [`sweep_stale`] (in any process) leaves it alone while `owner` lives, and
    /// `testbed/test`'s leak check blames `owner` if it outlives it. For namespaces this process
    /// makes for another one and then [`Netns::release`]s.
    pub fn new_owned_by(label: &str, owner: u32) -> Result<Netns> {
        Netns::create(names::netns_owned_by(owner, label))
    }

    fn create(name: String) -> Result<Netns> {
        static SWEEP: Once = Once::new();
        SWEEP.call_once(sweep_stale);

        cmd::run(ip().args(["netns", "add", &name]))?;
        // From here on Drop owns the namespace, whatever fails next.
        let ns = Netns {
            name,
            children: Mutex::new(Vec::new()),
        };
        ns.ip(["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Gives up the guard and returns the name: the namespace outlives this value (and this
    /// process), and deleting it becomes the job of whoever owns it ([`delete_owned_by`]).
    /// Processes started with [`Netns::spawn`] keep running inside.
    pub fn release(self) -> String {
        self.disarm().0
    }

    /// What dropping does (stop our processes, kill the rest, delete the namespace), but
    /// failing to delete it is an error instead of a line on stderr.
    pub fn delete(self) -> Result<()> {
        let (name, children) = self.disarm();
        stop_children(children);
        remove(&name)
    }

    /// Takes the name and the children out and leaves nothing for `Drop` to do. What stays
    /// behind in the `ManuallyDrop` is an empty `Vec` in a `Mutex`: nothing allocated.
    fn disarm(self) -> (String, Vec<Child>) {
        let mut this = ManuallyDrop::new(self);
        let children = std::mem::take(
            this.children
                .get_mut()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        );
        (std::mem::take(&mut this.name), children)
    }

    /// The namespace's pin file, which `setns(2)` opens.
    pub fn path(&self) -> PathBuf {
        Path::new(NETNS_DIR).join(&self.name)
    }

    /// `ip -n <ns> <args>`: configure links, addresses and routes of this namespace.
    pub fn ip<I, S>(&self, args: I) -> Result<Output>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        ip_n(&self.name, args)
    }

    /// A `Command` running `argv` inside the namespace (`ip netns exec <ns> argv...`), for
    /// callers who want to set the environment, or look at a failing exit status themselves.
    pub fn command<I, S>(&self, argv: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        netns_exec(&self.name, argv)
    }

    /// Runs `argv` inside the namespace to completion. A non-zero exit is an error carrying
    /// the command line, the status, stderr and stdout.
    pub fn exec<I, S>(&self, argv: I) -> Result<Output>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        cmd::run(&mut self.command(argv))
    }

    /// Starts `argv` inside the namespace in the background (stdio to /dev/null) and returns
    /// its pid. The guard owns it: SIGTERM on drop, SIGKILL if it lingers.
    pub fn spawn<I, S>(&self, argv: I) -> Result<u32>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = self.command(argv);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd.spawn().map_err(|source| Error::Spawn {
            cmd: cmd::describe(&cmd),
            source,
        })?;
        let pid = child.id();
        self.children
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(child);
        Ok(pid)
    }

    /// `ping` from inside the namespace until `count` replies arrived, for at most `deadline`
    /// (iputils: with both `-c` and `-w`, fewer replies than `count` is a failure). Probes go
    /// out every 200 ms, so a first probe lost to ARP/ND or a handshake is retried quickly.
    pub fn ping(&self, dst: IpAddr, count: u32, deadline: Duration) -> Result<Output> {
        let secs = deadline.as_secs().max(1).to_string();
        self.exec([
            "ping",
            "-n",
            "-q",
            "-i",
            "0.2",
            "-c",
            &count.to_string(),
            "-w",
            &secs,
            &dst.to_string(),
        ])
    }

    /// Pids of every process whose network namespace is this one.
    pub fn pids(&self) -> Result<Vec<i32>> {
        pids_in(&self.name)
    }

    /// Runs `f` on a new thread that has entered this namespace (setns(2) with CLONE_NEWNET)
    /// and returns its result; a panic in `f` propagates. Sockets `f` creates stay in this
    /// namespace for their whole life, wherever they are used afterwards, so this is how a test
    /// binds an ordinary `std::net::UdpSocket` "on host A" and then drives it from its own
    /// thread. Panics if the namespace cannot be entered; see [`Netns::try_run_in`].
    pub fn run_in<F, R>(&self, f: F) -> R
    where
        F: FnOnce() -> R + Send,
        R: Send,
    {
        match self.try_run_in(f) {
            Ok(r) => r,
            Err(e) => panic!("{e}"),
        }
    }

    /// [`Netns::run_in`], reporting a failure to enter the namespace as an error.
    pub fn try_run_in<F, R>(&self, f: F) -> Result<R>
    where
        F: FnOnce() -> R + Send,
        R: Send,
    {
        run_in_netns(&self.name, f)
    }
}

/// [`Netns::try_run_in`] for a namespace known by name only, one this process does not own
/// (the load generator gets its namespaces from the script that made them): runs `f` on a
/// new thread that has entered `/var/run/netns/<netns>`. A panic in `f` propagates.
pub fn run_in_netns<F, R>(netns: &str, f: F) -> Result<R>
where
    F: FnOnce() -> R + Send,
    R: Send,
{
    let path = Path::new(NETNS_DIR).join(netns);
    let pin = File::open(&path).map_err(|source| Error::Io {
        what: "open network namespace",
        path,
        source,
    })?;
    // Named after the caller's thread so that skip lines and panics name the test.
    let thread_name = std::thread::current()
        .name()
        .map_or_else(|| netns.to_owned(), |n| format!("{n}@{netns}"));
    std::thread::scope(|scope| {
        let handle = std::thread::Builder::new()
            .name(thread_name)
            .spawn_scoped(scope, move || {
                // CLONE_NEWNET may be set per thread; the rest of the process stays put.
                nix::sched::setns(&pin, CloneFlags::CLONE_NEWNET).map_err(|source| {
                    Error::Setns {
                        netns: netns.to_owned(),
                        source,
                    }
                })?;
                Ok(f())
            })
            .map_err(|source| Error::Io {
                what: "spawn thread for",
                path: PathBuf::from(netns),
                source,
            })?;
        handle
            .join()
            .unwrap_or_else(|payload| std::panic::resume_unwind(payload))
    })
}

impl Drop for Netns {
    fn drop(&mut self) {
        stop_children(std::mem::take(
            self.children
                .get_mut()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        ));
        // Whatever else is inside (a daemon started through `exec`, a guard leaked with
        // mem::forget) would keep the namespace and its interfaces alive after `ip netns del`.
        if let Err(e) = remove(&self.name) {
            // Drop cannot fail, and panicking while unwinding would abort: report and go on.
            eprintln!("testbed: cleaning up namespace {}: {e}", self.name);
        }
    }
}

fn stop_children(children: Vec<Child>) {
    for mut child in children {
        stop_child(&mut child, STOP_GRACE);
    }
}

/// SIGTERM, up to `grace` for a clean exit, then SIGKILL; always reaps.
pub(crate) fn stop_child(child: &mut Child, grace: Duration) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    if let Ok(pid) = i32::try_from(child.id()) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
    }
    let start = Instant::now();
    while start.elapsed() < grace {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn pids_in(netns: &str) -> Result<Vec<i32>> {
    let out = cmd::run(ip().args(["netns", "pids", netns]))?;
    Ok(cmd::stdout_text(&out)
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect())
}

/// Ends every process left in the namespace (SIGTERM, [`REMOVE_GRACE`], SIGKILL), then
/// deletes it. Failing to list the processes does not stop the deletion.
fn remove(netns: &str) -> Result<()> {
    let signal_all = |signal| {
        let pids = pids_in(netns).unwrap_or_default();
        for &pid in &pids {
            let _ = kill(Pid::from_raw(pid), signal);
        }
        !pids.is_empty()
    };
    if signal_all(Signal::SIGTERM) {
        let start = Instant::now();
        while start.elapsed() < REMOVE_GRACE && !pids_in(netns).unwrap_or_default().is_empty() {
            std::thread::sleep(Duration::from_millis(20));
        }
        signal_all(Signal::SIGKILL);
    }
    cmd::run(ip().args(["netns", "del", netns]))?;
    Ok(())
}

/// Deletes every namespace of `owner` (see [`Netns::new_owned_by`]), as [`Netns::delete`]
/// does, and returns their names. Tries them all; the first failure is the error.
pub fn delete_owned_by(owner: u32) -> Result<Vec<String>> {
    let entries = match std::fs::read_dir(NETNS_DIR) {
        Ok(entries) => entries,
        // No namespace was ever pinned on this machine: nothing of `owner`'s either.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(Error::Io {
                what: "list",
                path: PathBuf::from(NETNS_DIR),
                source,
            })
        }
    };
    let mut names: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| names::netns_owner(name) == Some(owner))
        .collect();
    names.sort();
    let mut first_error = None;
    for name in &names {
        if let Err(e) = remove(name) {
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(names), Err)
}

/// Deletes testbed namespaces whose owner process (the pid in the name) no longer exists:
/// leftovers of a test process killed without unwinding. Namespaces of live processes, this
/// one's or a parallel test's, are left alone. Runs once per process, before its first
/// namespace.
pub fn sweep_stale() {
    let Ok(entries) = std::fs::read_dir(NETNS_DIR) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(owner) = names::netns_owner(&name) else {
            continue;
        };
        if Path::new("/proc").join(owner.to_string()).exists() {
            continue;
        }
        // Two processes may sweep the same leftover at once; the loser's error is harmless.
        if remove(&name).is_ok() {
            eprintln!("testbed: removed stale namespace {name} (process {owner} is gone)");
        }
    }
}
