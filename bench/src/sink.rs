//! The LAN-side sink: a UDP socket in the server's namespace that counts what the gateway
//! delivered and verifies each payload's [`Tag`] (ours, of a round, not seen twice).
//!
//! Its thread joins the namespace for good, so it can also read that namespace's UDP
//! receive-buffer drops (`/proc/thread-self/net/snmp`): those are the sink's losses, not the
//! gateway's.

use crate::inner::{Tag, HEADERS_LEN};
use crate::mmsg;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Counters, written by the sink thread, read by anyone.
#[derive(Debug, Default)]
pub struct Counts {
    /// Valid, first-seen packets.
    pub received: AtomicU64,
    /// Their inner IP bytes (UDP payload + IPv4 and UDP headers).
    pub bytes: AtomicU64,
    pub duplicates: AtomicU64,
    /// Not ours, or a sequence number outside the round.
    pub invalid: AtomicU64,
    /// The namespace's UDP RcvbufErrors since the sink started.
    pub rcvbuf_errors: AtomicU64,
}

#[derive(Debug)]
pub struct Sink {
    pub counts: Arc<Counts>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<io::Result<()>>>,
}

/// UDP RcvbufErrors of the calling thread's network namespace.
pub fn rcvbuf_errors() -> u64 {
    let snmp = std::fs::read_to_string("/proc/thread-self/net/snmp").unwrap_or_default();
    let mut lines = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let (Some(names), Some(values)) = (lines.next(), lines.next()) else {
        return 0;
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == "RcvbufErrors")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

impl Sink {
    /// Binds `addr` in namespace `netns` and counts on a thread of its own. `round_len` is
    /// how many packets a round holds (sequence numbers are below it).
    pub fn spawn(netns: Option<String>, addr: SocketAddr, round_len: usize) -> io::Result<Sink> {
        Self::spawn_answering(netns, addr, round_len, false)
    }

    /// [`Sink::spawn`]; with `answer`, the sink also answers the first datagram of each
    /// sender (up to [`ANSWERED_MAX`] of them) with one datagram of its own, as a real
    /// service would: connection tracking sees each flow answered (a NAT gateway's flows are
    /// then established, and a data path that offloads established flows takes them).
    pub fn spawn_answering(
        netns: Option<String>,
        addr: SocketAddr,
        round_len: usize,
        answer: bool,
    ) -> io::Result<Sink> {
        let counts = Arc::new(Counts::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<io::Result<()>>();
        let (c, s) = (counts.clone(), stop.clone());
        // The whole count runs inside the namespace, not only the bind: `rcvbuf_errors` reads
        // the calling thread's namespace's counters.
        let thread = std::thread::spawn(move || -> io::Result<()> {
            let ready_err = ready_tx.clone();
            let counted = crate::netns::run_in(netns.as_deref(), move || {
                let sock = UdpSocket::bind(addr)?;
                sock.set_read_timeout(Some(Duration::from_millis(50)))?;
                set_rcvbuf(&sock, 8 << 20);
                let _ = ready_tx.send(Ok(()));
                run(&sock, &c, &s, round_len, answer);
                Ok(())
            });
            // Not entering the namespace or not binding: before `Ok` was sent, so this is
            // what `spawn` reports.
            if let Err(e) = &counted {
                let _ = ready_err.send(Err(io::Error::new(e.kind(), e.to_string())));
            }
            counted
        });
        ready_rx
            .recv()
            .map_err(|_| io::Error::other("sink thread died"))??;
        Ok(Sink {
            counts,
            stop,
            thread: Some(thread),
        })
    }

    /// Stops the thread and returns the final counts.
    pub fn stop(mut self) -> Arc<Counts> {
        self.stop.store(true, Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.counts.clone()
    }
}

fn set_rcvbuf(sock: &UdpSocket, bytes: usize) {
    let _ = nix::sys::socket::setsockopt(sock, nix::sys::socket::sockopt::RcvBuf, &bytes);
}

/// Senders the sink answers at most (a bound on its set of senders seen).
pub const ANSWERED_MAX: usize = 1 << 16;

fn run(sock: &UdpSocket, c: &Counts, stop: &AtomicBool, round_len: usize, answer: bool) {
    let base_errors = rcvbuf_errors();
    let mut answered = std::collections::HashSet::new();
    let mut from = [std::net::SocketAddrV4::new(std::net::Ipv4Addr::UNSPECIFIED, 0); mmsg::BATCH];
    let mut seen = vec![0u64; round_len.div_ceil(64)];
    let mut round = None;
    let mut bufs = vec![vec![0u8; 2048]; mmsg::BATCH];
    let mut lens = [0usize; mmsg::BATCH];
    while !stop.load(Relaxed) {
        let n = match mmsg::recv_from(sock, &mut bufs, &mut lens, &mut from) {
            Ok(n) => n,
            Err(_) => {
                c.rcvbuf_errors
                    .store(rcvbuf_errors().saturating_sub(base_errors), Relaxed);
                continue;
            }
        };
        if answer {
            for f in &from[..n] {
                if answered.len() < ANSWERED_MAX && answered.insert(*f) {
                    let _ = sock.send_to(b"answer", f);
                }
            }
        }
        let (mut ok, mut bytes, mut dup, mut bad) = (0, 0, 0, 0);
        for k in 0..n {
            let payload = &bufs[k][..lens[k]];
            let Some(tag) = Tag::read(payload) else {
                bad += 1;
                continue;
            };
            let seq = usize::try_from(tag.seq).unwrap_or(usize::MAX);
            if seq >= round_len {
                bad += 1;
                continue;
            }
            if round != Some(tag.round) {
                round = Some(tag.round);
                seen.fill(0);
            }
            let (w, b) = (seq / 64, 1u64 << (seq % 64));
            if seen[w] & b != 0 {
                dup += 1;
                continue;
            }
            seen[w] |= b;
            ok += 1;
            bytes += (payload.len() + HEADERS_LEN) as u64;
        }
        c.received.fetch_add(ok, Relaxed);
        c.bytes.fetch_add(bytes, Relaxed);
        c.duplicates.fetch_add(dup, Relaxed);
        c.invalid.fetch_add(bad, Relaxed);
    }
    c.rcvbuf_errors
        .store(rcvbuf_errors().saturating_sub(base_errors), Relaxed);
}
