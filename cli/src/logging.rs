//! Logs: every `wgxdp` process logs through `tracing`, with levels and structured fields
//! (`peer`, `worker`, `interface`...; never a key).
//!
//! Where a process's log goes:
//! - `--log-file PATH` (what `up` gives the processes it starts): that file, rotated to
//!   `PATH.1` whenever it passes [`MAX_LOG_BYTES`], so that a chatty process cannot fill the
//!   disk; a gateway keeps at most twice that per process.
//! - stderr otherwise, and also when stderr is the journal (under systemd, whose
//!   `JOURNAL_STREAM` names the stream it connected to stderr). There each line starts with
//!   its syslog priority (`<3>` error ... `<7>` debug), which journald reads as the entry's
//!   priority (`SyslogLevelPrefix=`, on by default), and has no timestamp (the journal has
//!   one). We write the journal through stderr rather than its native socket (the
//!   tracing-journald crate): one dependency less, nothing lost if the socket is not mounted
//!   in a sandbox, and `journalctl -u wgxdp@wg0 -p warning` works as it does for any daemon;
//!   structured fields stay in the message as `key=value`, which `journalctl -g` finds.
//!
//! The filter is `--log-level` (any `RUST_LOG` directive, e.g. `debug` or
//! `info,dataplane=debug`), else `RUST_LOG`, else `info` for the gateway's processes and
//! `warn` for the commands a person runs (whose output is their stdout and stderr, not a
//! log). The `log` crate's records (aya's BPF loader logs through it) are bridged into the
//! same subscriber.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::{self, FormatEvent, FormatFields};
use tracing_subscriber::fmt::FmtContext;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::EnvFilter;

/// Where the gateway's processes log (`up` starts them with `--log-file` here), one
/// directory per gateway. Not under the run directory: `down` removes that, and a log is
/// most wanted after something went down.
pub const LOG_ROOT: &str = "/var/log/wgxdp";

/// A log file is rotated (to `.1`, replacing the previous one) when it passes this size.
pub const MAX_LOG_BYTES: u64 = 8 << 20;

/// The log directory of gateway `name` (a checked interface name: one path component).
pub fn log_dir(name: &str) -> PathBuf {
    Path::new(LOG_ROOT).join(name)
}

/// Checks a `--log-level` value as the filter will read it (clap's value parser).
pub fn parse_filter(s: &str) -> Result<String, String> {
    EnvFilter::try_new(s).map(|_| s.to_string()).map_err(|e| {
        format!("{s:?} is not a log filter ({e}); e.g. info, debug, warn,dataplane=debug")
    })
}

/// Installs the subscriber of this process. `daemon`: one of the gateway's processes (its
/// default level is `info`, else `warn`).
pub fn init(level: Option<&str>, file: Option<&Path>, daemon: bool) -> Result<(), String> {
    let filter = match level {
        Some(l) => EnvFilter::try_new(l).map_err(|e| format!("--log-level {l}: {e}"))?,
        None => EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| EnvFilter::new(if daemon { "info" } else { "warn" })),
    };
    let file_layer = match file {
        Some(p) => Some(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(Mutex::new(
                    RotatingFile::open(p, MAX_LOG_BYTES)
                        .map_err(|e| format!("--log-file {}: {e}", p.display()))?,
                )),
        ),
        None => None,
    };
    let journal = stderr_is_journal();
    let journal_layer = journal.then(|| journal_layer(io::stderr));
    let stderr_layer = (file.is_none() && !journal).then(|| {
        tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_writer(io::stderr)
    });
    // `init` also installs the `log` bridge (tracing-subscriber's tracing-log feature).
    tracing_subscriber::registry()
        .with(filter)
        .with(file_layer)
        .with(journal_layer)
        .with(stderr_layer)
        .try_init()
        .map_err(|e| format!("installing the logger: {e}"))
}

/// Whether stderr is the stream systemd connected to the journal: `JOURNAL_STREAM` is
/// "DEVICE:INODE" of that stream (systemd.exec(5)); a child whose stderr was redirected
/// inherits the variable but not the stream, hence the comparison.
pub fn stderr_is_journal() -> bool {
    let Ok(v) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Ok(st) = nix::sys::stat::fstat(std::os::fd::AsFd::as_fd(&std::io::stderr())) else {
        return false;
    };
    v.split_once(':')
        .and_then(|(dev, ino)| Some((dev.parse::<u64>().ok()?, ino.parse::<u64>().ok()?)))
        .is_some_and(|(dev, ino)| dev == st.st_dev && ino == st.st_ino)
}

/// The layer that writes for journald, to `w`: no colours (journalctl adds its own).
fn journal_layer<S, W>(w: W) -> impl tracing_subscriber::Layer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + 'static,
{
    tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .event_format(JournalFormat)
        .with_writer(w)
}

/// One line per event for journald: `<PRIORITY>target: message key=value...`.
struct JournalFormat;

impl<S, N> FormatEvent<S, N> for JournalFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut w: format::Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let meta = event.metadata();
        write!(w, "<{}>{}: ", syslog_priority(*meta.level()), meta.target())?;
        ctx.field_format().format_fields(w.by_ref(), event)?;
        writeln!(w)
    }
}

/// syslog(3)'s priorities, as journald reads them from a `<N>` prefix.
fn syslog_priority(level: Level) -> u8 {
    match level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        Level::DEBUG | Level::TRACE => 7,
    }
}

/// An append-only log file that moves itself to `PATH.1` once it passes `max` bytes, so that
/// the file and its predecessor together never hold much more than twice that.
#[derive(Debug)]
pub struct RotatingFile {
    path: PathBuf,
    file: File,
    len: u64,
    max: u64,
}

impl RotatingFile {
    pub fn open(path: &Path, max: u64) -> io::Result<Self> {
        let file = append(path)?;
        let len = file.metadata()?.len();
        Ok(Self {
            path: path.to_path_buf(),
            file,
            len,
            max,
        })
    }

    fn rotate(&mut self) -> io::Result<()> {
        std::fs::rename(&self.path, rotated(&self.path))?;
        self.file = append(&self.path)?;
        self.len = 0;
        Ok(())
    }
}

impl Write for RotatingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // Rotated before a write that would cross the limit, so a line is never split
        // between the two files. A failed rotation keeps writing where it was: a log
        // too long beats a log lost.
        if self.len > 0 && self.len + buf.len() as u64 > self.max {
            let _ = self.rotate();
        }
        let n = self.file.write(buf)?;
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// Logs name peers and their addresses: readable by root and the log group (adm), as
/// Debian keeps /var/log.
pub fn append(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(path)
}

/// The log directory of a gateway, made if missing (mode 0750, as its files are 0640).
pub fn make_dir(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o750)
        .create(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))
}

fn rotated(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".1");
    PathBuf::from(p)
}

/// Starts the log `name` of a gateway anew for a new `up`: the previous run's file becomes
/// `NAME.1` (replacing the one before), and an empty file is returned, for the process's
/// stderr (a panic's message lands there too).
pub fn fresh(dir: &Path, name: &str) -> Result<File, String> {
    make_dir(dir)?;
    let path = dir.join(name);
    if path.metadata().is_ok_and(|m| m.len() > 0) {
        std::fs::rename(&path, rotated(&path)).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    append(&path).map_err(|e| format!("{}: {e}", path.display()))
}

/// The message of a line the file layer wrote ("TIME LEVEL target: message"), for quoting
/// a process's last words to the user; any other line as it is.
pub fn message_of(line: &str) -> &str {
    let line = line.trim();
    for level in [" ERROR ", " WARN ", " INFO ", " DEBUG ", " TRACE "] {
        if let Some((_, rest)) = line.split_once(level) {
            let rest = rest.trim_start();
            return rest.split_once(": ").map_or(rest, |(_, m)| m);
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("wgxdp-log-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_log_file_is_rotated_within_its_bound() {
        let d = scratch("rotate");
        let path = d.join("control.log");
        let mut f = RotatingFile::open(&path, 1000).unwrap();
        let line = [b'x'; 99];
        for _ in 0..100 {
            f.write_all(&line).unwrap();
            f.write_all(b"\n").unwrap();
        }
        let len = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
        let (now, before) = (len(&path), len(&rotated(&path)));
        std::fs::remove_dir_all(&d).unwrap();
        // 10 000 bytes written; what is kept is bounded by twice the limit.
        assert!(now <= 1000 && before <= 1000, "{now} + {before}");
        assert!(now > 0 && before > 900, "both files hold the newest lines");
    }

    #[test]
    fn a_new_run_keeps_the_previous_log_once() {
        let d = scratch("fresh");
        for run in ["first", "second", "third"] {
            let mut f = fresh(&d, "dataplane.log").unwrap();
            writeln!(f, "{run}").unwrap();
        }
        let read = |n: &str| std::fs::read_to_string(d.join(n)).unwrap_or_default();
        let (now, before) = (read("dataplane.log"), read("dataplane.log.1"));
        let files = std::fs::read_dir(&d).unwrap().count();
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(d.join("dataplane.log"))
            .unwrap()
            .permissions()
            .mode();
        std::fs::remove_dir_all(&d).unwrap();
        assert_eq!(
            (now.as_str(), before.as_str(), files),
            ("third\n", "second\n", 2)
        );
        assert_eq!(mode & 0o777, 0o640, "not for every user to read");
    }

    #[test]
    fn the_message_of_a_logged_line() {
        assert_eq!(
            message_of("2026-12-03T10:00:00.000001Z ERROR wgxdp: the data path: XDP on tunw: no"),
            "the data path: XDP on tunw: no"
        );
        assert_eq!(
            message_of("2026-12-03T10:00:00Z  WARN control::daemon: gone peer=abc"),
            "gone peer=abc"
        );
        assert_eq!(message_of("  a plain line "), "a plain line");
    }

    #[test]
    fn journal_lines_carry_the_priority_and_no_colours() {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Buf(Arc<Mutex<Vec<u8>>>);
        impl Write for Buf {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let out = buf.clone();
        let subscriber = tracing_subscriber::registry().with(journal_layer(move || out.clone()));
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(target: "wgxdp", peer = "AbCdEfGh", worker = 2, "control exited");
            tracing::error!(target: "wgxdp", "gone");
            tracing::info!(target: "wgxdp", "up");
        });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert_eq!(
            text,
            "<4>wgxdp: control exited peer=\"AbCdEfGh\" worker=2\n<3>wgxdp: gone\n<6>wgxdp: up\n"
        );
    }

    #[test]
    fn log_filters_are_checked() {
        assert!(parse_filter("debug").is_ok());
        assert!(parse_filter("info,dataplane=debug").is_ok());
        let e = parse_filter("dataplane=loud").unwrap_err();
        assert!(e.contains("dataplane=loud"), "{e}");
    }
}
