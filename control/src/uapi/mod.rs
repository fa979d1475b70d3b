//! The cross-platform userspace API (the protocol wireguard-go serves), so that the stock `wg`
//! tool can read and configure the gateway: a stream Unix socket at
//! `/var/run/wireguard/<name>.sock`, created under umask 077.
//!
//! A thread accepts clients and reads their requests ([`crate::service`]); the control loop
//! takes each complete request with [`Uapi::poll`], answers it with the state it owns, and the
//! thread writes the answer. As in wireguard-go, one connection may carry several operations,
//! and every answer ends with `errno=N` and a blank line.

pub mod get;
pub mod set;

pub use get::{format_get, DeviceView, PeerView};
pub use set::{Errno, SetRequest, UapiError};

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;
use zeroize::Zeroizing;

pub const SOCKET_DIR: &str = "/var/run/wireguard";

/// Where gateway `name`'s socket is, as `wg` looks for it (a valid name keeps it inside
/// [`SOCKET_DIR`]).
pub fn socket_path(name: &crate::InterfaceName) -> PathBuf {
    Path::new(SOCKET_DIR).join(format!("{name}.sock"))
}
/// Sends one request to gateway `name`'s socket, as `wg` does; returns the body of a
/// successful answer (without its `errno=0`), or why there is none.
pub fn request(name: &crate::InterfaceName, request: &str) -> Result<Zeroizing<String>, String> {
    let path = socket_path(name);
    let mut s = UnixStream::connect(&path).map_err(|e| {
        format!(
            "{}: {e} (is the gateway {name} up? `wgxdp up ... --name {name}`)",
            path.display()
        )
    })?;
    s.write_all(request.as_bytes())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    // The server keeps a connection open for further requests (as wireguard-go does): the
    // answer ends at its `errno=` line, not at EOF.
    let _ = s.set_read_timeout(Some(REQUEST_TIMEOUT));
    let mut answer = Zeroizing::new(String::new());
    let mut reader = BufReader::new(s);
    loop {
        let before = answer.len();
        let n = reader
            .read_line(&mut answer)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if n == 0 || answer[before..].starts_with("errno=") {
            break;
        }
    }
    let Some(at) = answer.rfind("errno=") else {
        return Err(format!("{}: no errno in the answer", path.display()));
    };
    let errno = answer[at + 6..].trim();
    if errno != "0" {
        return Err(format!("the gateway refused the request (errno {errno})"));
    }
    Ok(Zeroizing::new(answer[..at].to_string()))
}

/// How long a client waits for an answer (a `set=1` of some hundred thousand peers included).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// Longest line: Go's `bufio.Scanner` limit, which wireguard-go answers with EIO.
const MAX_LINE: usize = 64 * 1024;
/// Largest `set=1` request: room for `wg setconf` of a few hundred thousand peers.
const MAX_SET: usize = 256 << 20;
/// A client that stops sending mid-request for this long is dropped.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

/// What a client asked for.
#[derive(Debug)]
pub enum Op {
    Get,
    Set(SetRequest),
}

/// One request, answered by sending the reply text (without the `errno` line) or an error.
#[derive(Debug)]
pub struct Request {
    pub op: Op,
    reply: mpsc::Sender<Result<String, UapiError>>,
}

impl Request {
    pub fn answer(self, r: Result<String, UapiError>) {
        let _ = self.reply.send(r);
    }
}

/// The listening socket and its thread; the socket file is removed on drop.
#[derive(Debug)]
pub struct Uapi {
    path: PathBuf,
    service: crate::service::Service<Request>,
}

impl Uapi {
    /// Binds `/var/run/wireguard/<name>.sock` (owner-only), replacing a stale one.
    pub fn bind(name: &crate::InterfaceName) -> std::io::Result<Self> {
        Self::bind_at(&socket_path(name))
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
        let service = crate::service::Service::spawn(
            "wgxdp-uapi",
            move || listener.accept().ok().map(|(stream, _)| stream),
            |stream: UnixStream, tx, stop| {
                let _ = stream.set_nonblocking(false);
                let _ = stream.set_read_timeout(Some(CLIENT_TIMEOUT));
                serve_client(stream, tx, stop);
            },
        )?;
        Ok(Self {
            path: path.to_path_buf(),
            service,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the socket file still exists (wireguard-go exits when it is removed).
    pub fn exists(&self) -> bool {
        self.path.exists()
    }

    /// The next complete request, if one is waiting.
    pub fn poll(&self) -> Option<Request> {
        self.service.poll()
    }
}

impl Drop for Uapi {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Reads one line into `line` (without its newline). `Ok(false)`: the client closed before
/// a complete line.
fn read_line(r: &mut impl BufRead, line: &mut Vec<u8>) -> Result<bool, UapiError> {
    line.clear();
    let n = r
        .by_ref()
        .take(MAX_LINE as u64 + 1)
        .read_until(b'\n', line)
        .map_err(|e| set::error(Errno::Io, format!("reading the request: {e}")))?;
    if line.last() == Some(&b'\n') {
        line.pop();
        return Ok(true);
    }
    if n > MAX_LINE {
        return Err(set::error(Errno::Io, "line longer than 64 KiB"));
    }
    Ok(false)
}

/// Serves the operations of one connection, one after the other.
fn serve_client(stream: UnixStream, tx: &mpsc::Sender<Request>, stop: &AtomicBool) {
    let Ok(write_half) = stream.try_clone() else {
        return;
    };
    let mut out = std::io::BufWriter::new(write_half);
    let mut r = BufReader::new(stream);
    let mut line = Zeroizing::new(Vec::new());
    while !stop.load(Ordering::Relaxed) {
        match read_line(&mut r, &mut line) {
            Ok(true) => {}
            Ok(false) | Err(_) => return,
        }
        let (op, close) = match line.as_slice() {
            b"get=1" => match read_line(&mut r, &mut line) {
                Ok(true) if line.is_empty() => (Ok(Op::Get), false),
                Ok(true) => (
                    Err(set::error(Errno::Invalid, "trailing data after get=1")),
                    true,
                ),
                _ => return,
            },
            b"set=1" => match read_set(&mut r) {
                Ok(req) => (Ok(Op::Set(req)), false),
                // After a bad line the rest of the request cannot be told from the next
                // operation: answer and close.
                Err(e) => (Err(e), true),
            },
            _ => (Err(set::error(Errno::Invalid, "unknown operation")), true),
        };
        let answer = match op {
            Ok(op) => {
                let (reply, rx) = mpsc::channel();
                if tx.send(Request { op, reply }).is_err() {
                    return;
                }
                match rx.recv() {
                    Ok(a) => a,
                    Err(_) => return,
                }
            }
            Err(e) => Err(e),
        };
        let text = match answer {
            Ok(body) => format!("{body}errno=0\n\n"),
            Err(e) => {
                tracing::warn!("UAPI request refused: {e}");
                format!("errno={}\n\n", e.errno.code())
            }
        };
        if out
            .write_all(text.as_bytes())
            .and_then(|()| out.flush())
            .is_err()
            || close
        {
            return;
        }
    }
}

/// Reads a `set=1` body up to its blank line and parses it. The text holds keys: it is
/// zeroed when dropped. Public for the fuzz target (`fuzz/src/uapi.rs`): it is the first code
/// to see a client's bytes.
pub fn read_set(r: &mut impl BufRead) -> Result<SetRequest, UapiError> {
    let mut body = Zeroizing::new(String::new());
    let mut line = Zeroizing::new(Vec::new());
    loop {
        if !read_line(r, &mut line)? {
            return Err(set::error(
                Errno::Protocol,
                "request ended before its blank line",
            ));
        }
        if line.is_empty() {
            break;
        }
        if body.len() + line.len() >= MAX_SET {
            return Err(set::error(Errno::Io, "request larger than 256 MiB"));
        }
        let text = std::str::from_utf8(&line)
            .map_err(|_| set::error(Errno::Invalid, "request is not UTF-8"))?;
        body.push_str(text);
        body.push('\n');
    }
    set::parse(&body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exchange(path: &Path, req: &[u8]) -> String {
        let mut s = UnixStream::connect(path).unwrap();
        s.write_all(req).unwrap();
        let _ = s.shutdown(std::net::Shutdown::Write);
        let mut a = String::new();
        s.read_to_string(&mut a).unwrap();
        a
    }

    /// A client that connects and says nothing (or trickles) holds up only itself: another
    /// client is answered at once, and idle connections beyond the cap are closed, not
    /// queued.
    #[test]
    fn a_silent_client_blocks_no_one() {
        let path =
            std::env::temp_dir().join(format!("wgxdp-uapi-idle-{}.sock", std::process::id()));
        let u = Uapi::bind_at(&path).unwrap();
        let idle: Vec<UnixStream> = (0..crate::service::MAX_CLIENTS - 1)
            .map(|_| UnixStream::connect(&path).unwrap())
            .collect();
        std::thread::sleep(Duration::from_millis(100));
        let started = std::time::Instant::now();
        let client = std::thread::spawn({
            let path = path.clone();
            move || exchange(&path, b"get=1\n\n")
        });
        let mut answered = 0;
        while !client.is_finished() {
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "the get waited behind the silent clients"
            );
            if let Some(r) = u.poll() {
                r.answer(Ok("listen_port=1\n".into()));
                answered += 1;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(client.join().unwrap(), "listen_port=1\nerrno=0\n\n");
        assert_eq!(answered, 1);
        assert!(started.elapsed() < Duration::from_secs(1));
        // The cap is full now (the idle ones and nobody else): one more is closed unread.
        let mut extra = UnixStream::connect(&path).unwrap();
        extra
            .set_read_timeout(Some(Duration::from_secs(3)))
            .unwrap();
        let _ = extra.write_all(b"get=1\n\n");
        // Only the idle clients hold slots once the get is answered: the extra one gets in.
        let mut a = String::new();
        let reader = std::thread::spawn(move || {
            let _ = extra.read_to_string(&mut a);
            a
        });
        while !reader.is_finished() {
            if let Some(r) = u.poll() {
                r.answer(Ok(String::new()));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(reader.join().unwrap(), "errno=0\n\n");
        let more: Vec<UnixStream> = (0..2)
            .map(|_| UnixStream::connect(&path).unwrap())
            .collect();
        std::thread::sleep(Duration::from_millis(100));
        let mut last = more.into_iter().last().unwrap();
        last.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(
            last.read(&mut buf).unwrap_or(usize::MAX),
            0,
            "past the cap a connection is closed at once"
        );
        drop(idle);
        drop(u);
    }

    #[test]
    fn socket_is_owner_only_and_answers_each_operation() {
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
                let long = format!("set=1\nfwmark={}\n\n", "1".repeat(MAX_LINE + 10));
                [
                    exchange(&path, b"get=1\n\n"),
                    exchange(&path, b"set=1\nlisten_port=1\n\nget=1\n\n"),
                    exchange(&path, b"bogus=1\n\n"),
                    exchange(&path, b"set=1\nlisten_port=1\n"),
                    exchange(&path, b"set=1\nnonsense\n\n"),
                    exchange(&path, b"set=1\nlisten_port=x\n\n"),
                    exchange(&path, long.as_bytes()),
                    exchange(&path, b"get=1\nx\n"),
                ]
            }
        });
        let mut sets = 0;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !client.is_finished() && std::time::Instant::now() < deadline {
            while let Some(req) = u.poll() {
                match &req.op {
                    Op::Get => req.answer(Ok("listen_port=7\n".into())),
                    Op::Set(s) => {
                        assert_eq!(s.device.len(), 1);
                        sets += 1;
                        req.answer(Ok(String::new()));
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let a = client.join().unwrap();
        assert_eq!(a[0], "listen_port=7\nerrno=0\n\n");
        assert_eq!(
            a[1], "errno=0\n\nlisten_port=7\nerrno=0\n\n",
            "two operations"
        );
        assert_eq!(a[2], "errno=-22\n\n");
        assert_eq!(a[3], "errno=-71\n\n", "truncated: EPROTO, nothing applied");
        assert_eq!(a[4], "errno=-71\n\n", "a line without '='");
        assert_eq!(a[5], "errno=-22\n\n");
        assert_eq!(a[6], "errno=-5\n\n", "a line over 64 KiB: EIO");
        assert_eq!(a[7], "errno=-22\n\n");
        assert_eq!(sets, 1, "only the one good set reached the control loop");
        assert!(Uapi::bind_at(&path).is_err(), "a live socket is not stolen");
        drop(u);
        assert!(!path.exists());
    }
}
