//! The one error type of the testbed. Every variant carries enough context (the command line,
//! its stderr, the file) that a failing test's message says what to look at without a rerun.

use std::path::PathBuf;
use std::process::ExitStatus;

/// Result alias for everything in this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A command could not be started at all (missing binary, no permission).
    #[error("could not run `{cmd}`: {source}")]
    Spawn {
        cmd: String,
        #[source]
        source: std::io::Error,
    },
    /// A command ran and exited unsuccessfully.
    #[error("`{cmd}` failed ({status}): {stderr}{stdout}", stdout = stdout_suffix(.stdout))]
    Command {
        cmd: String,
        status: ExitStatus,
        stderr: String,
        stdout: String,
    },
    /// A file-system or socket operation failed.
    #[error("{what} {path}: {source}", path = .path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Something we wait for (a UAPI socket, a handshake) did not happen in time.
    #[error("timed out after {waited_ms} ms waiting for {what}")]
    Timeout { what: String, waited_ms: u128 },
    /// A process we started exited before it was ready.
    #[error("{what} exited early ({status}); its log:\n{log}")]
    EarlyExit {
        what: String,
        status: ExitStatus,
        log: String,
    },
    /// Output of a tool, or an argument, did not have the expected form.
    #[error("cannot parse {what}: {detail}")]
    Parse { what: &'static str, detail: String },
    /// A topology was asked for that cannot be built (one-armed without a switch, ...).
    #[error("invalid topology: {0}")]
    Topology(String),
    /// Entering a network namespace with setns(2) failed.
    #[error("cannot enter network namespace {netns}: {source}")]
    Setns {
        netns: String,
        #[source]
        source: nix::Error,
    },
}

fn stdout_suffix(stdout: &str) -> String {
    if stdout.trim().is_empty() {
        String::new()
    } else {
        format!(" (stdout: {})", stdout.trim())
    }
}
