//! The outbound direction (LAN -> gateway -> peers): a sender on the LAN side sends plaintext
//! UDP to every peer's tunnel address, round-robin; the gateway seals it; the generator's
//! socket receives the data messages and [`Receiver`] opens each one with the session's
//! receiving key (ring, [`proto::data::open`]) and verifies the inner packet's [`Tag`].

use crate::inner::{Tag, HEADERS_LEN, TAG_LEN};
use crate::mmsg;
use crate::pool::Session;
use crate::sizes::Size;
use proto::data;
use proto::messages::DATA_HEADER_LEN;
use std::collections::HashMap;
use std::io;
use std::net::{SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Receiver index field of a data message.
const RECEIVER: std::ops::Range<usize> = 4..8;
const TYPE_DATA: u8 = 4;

/// Sends one keepalive per session: a responder may not send on a session until the
/// initiator's first data message confirms it (whitepaper §5.4.4, §6.1).
pub fn confirm(sock: &UdpSocket, sessions: &mut [Session]) -> io::Result<()> {
    let mut buf = [0u8; proto::messages::DATA_OVERHEAD];
    for s in sessions {
        let n = data::seal(&s.key, s.receiver, s.next_counter, &mut buf, 0)
            .map_err(|e| io::Error::other(e.to_string()))?;
        s.next_counter += 1;
        sock.send(&buf[..n])?;
    }
    Ok(())
}

/// What the sender did.
#[derive(Debug, Clone, Copy)]
pub struct Sent {
    pub packets: u64,
    pub elapsed: Duration,
    pub errors: u64,
}

/// Sends UDP payloads making inner packets of `size` to `dsts` (round-robin) on `sock` for
/// `budget`; payload `k` carries tag `(0, k)`.
pub fn send(sock: &UdpSocket, dsts: &[SocketAddrV4], size: Size, budget: Duration) -> Sent {
    let mut bufs: Vec<Vec<u8>> = (0..mmsg::BATCH)
        .map(|_| vec![0u8; usize::from(crate::sizes::MAX) - HEADERS_LEN])
        .collect();
    let start = Instant::now();
    let (mut k, mut errors) = (0u64, 0u64);
    while start.elapsed() < budget {
        for (j, b) in bufs.iter_mut().enumerate() {
            let seq = k + j as u64;
            let len = usize::from(size.nth(seq as usize)) - HEADERS_LEN;
            b.truncate(len.max(TAG_LEN));
            b.resize(len, 0);
            Tag { round: 0, seq }.write(b);
        }
        let msgs: Vec<(&[u8], SocketAddrV4)> = bufs
            .iter()
            .enumerate()
            .map(|(j, b)| (b.as_slice(), dsts[(k as usize + j) % dsts.len()]))
            .collect();
        match mmsg::send_to(sock, &msgs) {
            Ok(n) => {
                // Unsent payloads are rebuilt with the next sequence numbers.
                k += n as u64;
            }
            Err(_) => errors += 1,
        }
    }
    Sent {
        packets: k,
        elapsed: start.elapsed(),
        errors,
    }
}

/// Counters of the receiving (generator) side.
#[derive(Debug, Default)]
pub struct Counts {
    /// Authentic data messages whose inner packet carried a first-seen tag.
    pub received: AtomicU64,
    /// Their inner IP bytes.
    pub bytes: AtomicU64,
    pub auth_failures: AtomicU64,
    pub unknown_index: AtomicU64,
    pub duplicates: AtomicU64,
    /// Authentic but not one of our packets (keepalives excluded).
    pub invalid: AtomicU64,
    pub keepalives: AtomicU64,
}

/// Opens and counts what arrives on `sock` until `stop`.
pub fn receive(sock: &UdpSocket, sessions: &[Session], c: &Counts, stop: &AtomicBool) {
    let keys: HashMap<u32, [u8; 32]> = sessions.iter().map(|s| (s.local_index, s.rx_key)).collect();
    let _ = sock.set_read_timeout(Some(Duration::from_millis(50)));
    let mut seen: Vec<u64> = Vec::new();
    let mut bufs = vec![vec![0u8; 2048]; mmsg::BATCH];
    let mut lens = [0usize; mmsg::BATCH];
    while !stop.load(Relaxed) {
        let Ok(n) = mmsg::recv(sock, &mut bufs, &mut lens) else {
            continue;
        };
        for k in 0..n {
            let msg = &mut bufs[k][..lens[k]];
            if msg.first() != Some(&TYPE_DATA) || msg.len() < RECEIVER.end {
                continue; // handshake traffic (a rekey) is not ours to count
            }
            let index = u32::from_le_bytes(msg[RECEIVER].try_into().unwrap_or_default());
            let Some(key) = keys.get(&index) else {
                c.unknown_index.fetch_add(1, Relaxed);
                continue;
            };
            let Ok(len) = data::open(key, msg) else {
                c.auth_failures.fetch_add(1, Relaxed);
                continue;
            };
            if len == 0 {
                c.keepalives.fetch_add(1, Relaxed);
                continue;
            }
            let plain = &msg[DATA_HEADER_LEN..DATA_HEADER_LEN + len];
            let inner = proto::wire::inner_packet_len(plain).unwrap_or(0);
            match plain.get(HEADERS_LEN..inner).and_then(Tag::read) {
                Some(tag) if first_seen(&mut seen, tag.seq) => {
                    c.received.fetch_add(1, Relaxed);
                    c.bytes.fetch_add(inner as u64, Relaxed);
                }
                Some(_) => {
                    c.duplicates.fetch_add(1, Relaxed);
                }
                None => {
                    c.invalid.fetch_add(1, Relaxed);
                }
            }
        }
    }
}

/// Marks `seq` in a growing bitmap; false if it was already there.
fn first_seen(seen: &mut Vec<u64>, seq: u64) -> bool {
    let (w, b) = ((seq / 64) as usize, 1u64 << (seq % 64));
    if w >= seen.len() {
        seen.resize((w + 1).next_power_of_two(), 0);
    }
    let fresh = seen[w] & b == 0;
    seen[w] |= b;
    fresh
}

/// Runs [`receive`] on a thread; returns its stop flag and counters.
pub fn spawn_receiver(
    sock: UdpSocket,
    sessions: Vec<Session>,
) -> (Arc<AtomicBool>, Arc<Counts>, std::thread::JoinHandle<()>) {
    let stop = Arc::new(AtomicBool::new(false));
    let counts = Arc::new(Counts::default());
    let (s, c) = (stop.clone(), counts.clone());
    let t = std::thread::spawn(move || receive(&sock, &sessions, &c, &s));
    (stop, counts, t)
}
