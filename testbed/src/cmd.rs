//! Running the stock tools (`ip`, `wg`, `ping`) with errors that carry the command line and
//! its stderr, and finding them even where `PATH` lacks the sbin directories.

use crate::error::{Error, Result};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

/// Directories searched after `PATH`: `ip` lives in `/usr/sbin` on Debian, which a non-login
/// root shell (or `sudo` with a reset environment) may not have on its `PATH`.
const SBIN_FALLBACK: [&str; 2] = ["/usr/sbin", "/sbin"];

/// Finds an executable by name on `PATH`, then in the sbin directories.
pub fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(SBIN_FALLBACK.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// A `Command` for iproute2's `ip`, resolved once per process.
pub(crate) fn ip() -> Command {
    static IP: OnceLock<PathBuf> = OnceLock::new();
    Command::new(IP.get_or_init(|| find_tool("ip").unwrap_or_else(|| PathBuf::from("ip"))))
}

/// `ip -n <netns> <args>`: configures a namespace without entering it (no process inside).
pub(crate) fn ip_n<I, S>(netns: &str, args: I) -> Result<Output>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    run(ip().arg("-n").arg(netns).args(args))
}

/// `ip netns exec <netns> <argv...>` as a `Command` the caller may still adjust.
pub(crate) fn netns_exec<I, S>(netns: &str, argv: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = ip();
    cmd.args(["netns", "exec", netns]).args(argv);
    cmd
}

/// The command line as a person would type it, for error messages.
pub(crate) fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|s| s.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs to completion with stdin closed; a non-zero exit becomes [`Error::Command`].
pub(crate) fn run(cmd: &mut Command) -> Result<Output> {
    let output = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|source| Error::Spawn {
            cmd: describe(cmd),
            source,
        })?;
    check(cmd, output)
}

pub(crate) fn check(cmd: &Command, output: Output) -> Result<Output> {
    if output.status.success() {
        Ok(output)
    } else {
        Err(Error::Command {
            cmd: describe(cmd),
            status: output.status,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            stdout: String::from_utf8_lossy(&output.stdout).trim().to_owned(),
        })
    }
}

/// Stdout as text without the trailing newline.
pub(crate) fn stdout_text(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout)
        .trim_end()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failing_command_reports_command_line_and_stderr() {
        let err = run(Command::new("sh").args(["-c", "echo oops >&2; exit 3"])).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("sh -c echo oops >&2; exit 3"), "{msg}");
        assert!(msg.contains("oops"), "{msg}");
        assert!(msg.contains("exit status: 3"), "{msg}");
    }

    #[test]
    fn missing_binary_is_a_spawn_error() {
        let err = run(&mut Command::new("/nonexistent/wgx-tool")).unwrap_err();
        assert!(matches!(err, Error::Spawn { .. }), "{err}");
    }

    #[test]
    fn finds_sh() {
        assert!(find_tool("sh").is_some());
        assert!(find_tool("wgx-no-such-tool").is_none());
    }
}
