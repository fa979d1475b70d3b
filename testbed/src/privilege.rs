//! What this process may do (root, network namespaces, TUN), and the one policy for tests that
//! need more than it has: skip visibly on a developer's machine, fail in CI.
//!
//! `testbed/test` exports `WGXDP_REQUIRE_PRIVILEGED=1` when `CI=true`, so a CI machine that
//! lost a capability or a package turns privileged tests red instead of quietly green.

use crate::cmd::find_tool;
use nix::sched::CloneFlags;
use std::io::Write as _;
use std::panic::Location;
use std::sync::OnceLock;

/// Set to `1` to make [`skip_or_fail`] panic instead of skipping.
pub const REQUIRE_ENV: &str = "WGXDP_REQUIRE_PRIVILEGED";
/// If set, [`skip_or_fail`] also appends its line to this file, so that a runner which hides
/// the output of passing tests (nextest does by default) can still list every skip at the end.
pub const SKIP_LOG_ENV: &str = "WGXDP_SKIP_LOG";

/// The TUN clone device wireguard-go (and later the fallback backend) opens.
pub const TUN_DEVICE: &str = "/dev/net/tun";

/// The result of probing this process's capabilities, once per process.
#[derive(Debug)]
pub struct Privilege {
    root: bool,
    netns_problem: Option<String>,
    tun_problem: Option<String>,
}

impl Privilege {
    /// Probes once (euid, a throwaway `unshare(CLONE_NEWNET)` on a scratch thread, opening
    /// `/dev/net/tun`) and caches the answer for the process.
    pub fn check() -> &'static Privilege {
        static CHECKED: OnceLock<Privilege> = OnceLock::new();
        CHECKED.get_or_init(Privilege::probe)
    }

    fn probe() -> Privilege {
        let euid = nix::unistd::geteuid();
        let root = euid.is_root();
        let netns_problem = if !root {
            Some(format!(
                "needs root for network namespaces (euid is {euid}); run `sudo ./testbed/test`"
            ))
        } else if find_tool("ip").is_none() {
            Some("`ip` (iproute2) is not installed; `./testbed/test` installs it".to_owned())
        } else {
            // Root in a container may still lack CAP_SYS_ADMIN. unshare(CLONE_NEWNET) affects
            // only the calling thread, so a scratch thread tries it and takes the namespace
            // with it when it exits.
            std::thread::spawn(|| nix::sched::unshare(CloneFlags::CLONE_NEWNET))
                .join()
                .map_err(|_| "probe thread panicked".to_owned())
                .and_then(|r| r.map_err(|e| e.to_string()))
                .err()
                .map(|e| format!("cannot create a network namespace: unshare(CLONE_NEWNET): {e}"))
        };
        let tun_problem = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(TUN_DEVICE)
            .err()
            .map(|e| format!("cannot open {TUN_DEVICE}: {e}"));
        Privilege {
            root,
            netns_problem,
            tun_problem,
        }
    }

    pub fn is_root(&self) -> bool {
        self.root
    }

    /// Root, `ip` present, and a network namespace could be created.
    pub fn can_create_netns(&self) -> bool {
        self.netns_problem.is_none()
    }

    /// Why namespace tests cannot run here, if they cannot.
    pub fn netns_problem(&self) -> Option<&str> {
        self.netns_problem.as_deref()
    }

    /// Why a TUN device cannot be opened here, if it cannot.
    pub fn tun_problem(&self) -> Option<&str> {
        self.tun_problem.as_deref()
    }
}

/// What the caller's test cannot do without: skips it visibly (a `SKIPPED:` line on stderr and
/// in `$WGXDP_SKIP_LOG`), or panics with `reason` when `WGXDP_REQUIRE_PRIVILEGED=1`. The test
/// returns early after this.
#[track_caller]
pub fn skip_or_fail(reason: &str) {
    let required = std::env::var_os(REQUIRE_ENV).is_some_and(|v| v == "1");
    record_skip(&skip_line(required, reason, Location::caller()));
}

/// A part of a test that this machine's kernel cannot do (not a missing privilege or tool,
/// which [`skip_or_fail`] handles): listed as skipped, also in CI, and never a failure.
#[track_caller]
pub fn note_skip(reason: &str) {
    record_skip(&skip_line(false, reason, Location::caller()));
}

fn record_skip(line: &str) {
    eprintln!("{line}");
    if let Some(path) = std::env::var_os(SKIP_LOG_ENV) {
        // One short O_APPEND write per line: parallel test processes do not interleave.
        let _ = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut f| f.write_all(format!("{line}\n").as_bytes()));
    }
}

/// The skip line, or a panic when skipping is not allowed. Separate from the environment so
/// it can be tested without mutating process-global state.
fn skip_line(required: bool, reason: &str, at: &Location<'_>) -> String {
    let thread = std::thread::current();
    // libtest names each test's thread after the test; "main" carries no information.
    let test = thread.name().filter(|n| *n != "main").unwrap_or("test");
    assert!(
        !required,
        "{test} ({at}): {reason} [{REQUIRE_ENV}=1: privileged tests must run here, not skip]"
    );
    format!("SKIPPED: {test} ({at}): {reason}")
}

/// `true` if the test may create namespaces and `ping` in them (the harness's basic tools,
/// `ip` and `ping`, are installed); otherwise [`skip_or_fail`] and `false`.
#[track_caller]
pub fn require_netns() -> bool {
    match Privilege::check().netns_problem() {
        None => require_tools(&["ping"]),
        Some(reason) => {
            skip_or_fail(reason);
            false
        }
    }
}

/// `true` if the named tools are all installed; otherwise [`skip_or_fail`] and `false`.
#[track_caller]
pub fn require_tools(tools: &[&str]) -> bool {
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|t| find_tool(t).is_none())
        .collect();
    if missing.is_empty() {
        return true;
    }
    skip_or_fail(&format!(
        "not installed: {}; `./testbed/test` installs them",
        missing.join(", ")
    ));
    false
}

/// `true` if the test may run wireguard-go peers: namespaces, `/dev/net/tun`, `wireguard-go`
/// and `wg`; otherwise [`skip_or_fail`] and `false`.
#[track_caller]
pub fn require_wireguard_go() -> bool {
    if !require_netns() || !require_tools(&["wireguard-go", "wg"]) {
        return false;
    }
    match Privilege::check().tun_problem() {
        None => true,
        Some(reason) => {
            skip_or_fail(reason);
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skipping_names_reason_and_location() {
        let line = skip_line(false, "no root", Location::caller());
        assert!(line.starts_with("SKIPPED: "), "{line}");
        assert!(line.contains("no root"), "{line}");
        assert!(line.contains("privilege.rs"), "{line}");
    }

    #[test]
    #[should_panic(expected = "no root")]
    fn required_turns_skip_into_failure() {
        skip_line(true, "no root", Location::caller());
    }

    #[test]
    fn probe_is_consistent() {
        let p = Privilege::check();
        if !p.is_root() {
            assert!(!p.can_create_netns());
        }
        assert_eq!(p.can_create_netns(), p.netns_problem().is_none());
    }
}
