//! Real handshakes as N peers over one UDP socket: one [`Device`] per generated identity
//! (a `Device` is one local interface), each with the gateway as its only peer. Responses
//! and cookie replies are routed back to the device that owns their receiver index.
//!
//! Initiations go out in windows, so that the gateway is not pushed into its under-load
//! cookie mode by the generator's own burst; peers left without a session are retried with
//! the devices' clock moved past REKEY_TIMEOUT (the core is sans-IO: time is ours to give).

use crate::peers;
use crate::pool::Session;
use proto::device::{Device, PeerConfig, Received};
use proto::keys::PublicKey;
use proto::peer::PeerId;
use proto::time::{Instant, Now};
use rand_core::OsRng;
use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Initiations in flight at once: below wgxdp's under-load threshold (a backlog of 64
/// handshake datagrams, `control::daemon::HANDSHAKE_BATCH`; the kernel's is 512), since all
/// generated peers share one source address and under load the gateway limits handshakes per
/// source address (20/s in the kernel).
const WINDOW: usize = 32;
/// How long a window waits for its responses.
const WINDOW_WAIT: Duration = Duration::from_millis(1500);
const ATTEMPTS: u32 = 5;
/// Past REKEY_TIMEOUT (5 s), so a device may initiate again.
const RETRY_SKEW: Duration = Duration::from_secs(6);

/// Message types and their receiver-index fields (whitepaper §5.4.3-5.4.7).
mod field {
    use std::ops::Range;
    pub const INITIATION_SENDER: Range<usize> = 4..8;
    pub const RESPONSE_RECEIVER: Range<usize> = 8..12;
    pub const COOKIE_RECEIVER: Range<usize> = 4..8;
}

/// Each device's clock: real time plus that device's skew (moved forward to retry at once).
struct Clock {
    base: std::time::Instant,
}

impl Clock {
    fn now(&self, skew: Duration) -> Now {
        let mono = self.base.elapsed() + skew;
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            + skew;
        Now::new(
            Instant::from_nanos(u64::try_from(mono.as_nanos()).unwrap_or(u64::MAX) + 1),
            unix,
        )
    }
}

fn index_at(buf: &[u8], r: std::ops::Range<usize>) -> Option<u32> {
    Some(u32::from_le_bytes(buf.get(r)?.try_into().ok()?))
}

/// Sends what `d` (device of peer `i`) has queued, noting the sender index of initiations.
fn flush(
    d: &mut Device<OsRng>,
    now: Now,
    sock: &UdpSocket,
    owner: &mut HashMap<u32, usize>,
    i: usize,
) -> io::Result<()> {
    let mut buf = [0u8; 2048];
    while let Some(t) = d.poll_transmit(now, &mut buf) {
        if buf[0] == 1 {
            if let Some(index) = index_at(&buf[..t.len], field::INITIATION_SENDER) {
                owner.insert(index, i);
            }
        }
        sock.send_to(&buf[..t.len], t.dst)?;
    }
    Ok(())
}

/// Handshakes as peers `0..count` of `seed` with the gateway at `gateway` over `sock`
/// (connected or not); returns one session per peer, in peer order, with `inner_port` as
/// the source port of the inner packets.
pub fn establish(
    sock: &UdpSocket,
    gateway: SocketAddr,
    gateway_key: &PublicKey,
    seed: u64,
    count: usize,
    inner_port: u16,
) -> io::Result<Vec<Session>> {
    let clock = Clock {
        base: std::time::Instant::now(),
    };
    let mut skew = vec![Duration::ZERO; count];
    let mut devices: Vec<(Device<OsRng>, PeerId)> = Vec::with_capacity(count);
    for i in 0..count {
        let mut d = Device::new(peers::private_key(seed, i), OsRng);
        let id = d
            .add_peer(
                clock.now(Duration::ZERO),
                *gateway_key,
                PeerConfig {
                    endpoint: Some(gateway),
                    ..PeerConfig::default()
                },
            )
            .map_err(|e| io::Error::other(format!("peer {i}: {e}")))?;
        devices.push((d, id));
    }
    let mut owner: HashMap<u32, usize> = HashMap::new();
    let mut done = vec![false; count];
    let mut buf = [0u8; 2048];
    sock.set_read_timeout(Some(Duration::from_millis(20)))?;
    for attempt in 0..ATTEMPTS {
        let pending: Vec<usize> = (0..count).filter(|&i| !done[i]).collect();
        if pending.is_empty() {
            break;
        }
        if attempt > 0 {
            eprintln!(
                "handshake: {} of {count} peers without a session, retrying",
                pending.len()
            );
            for &i in &pending {
                skew[i] += RETRY_SKEW;
            }
        }
        for window in pending.chunks(WINDOW) {
            for &i in window {
                let (d, id) = &mut devices[i];
                d.initiate_handshake(clock.now(skew[i]), *id);
                flush(d, clock.now(skew[i]), sock, &mut owner, i)?;
            }
            let deadline = std::time::Instant::now() + WINDOW_WAIT;
            while std::time::Instant::now() < deadline && window.iter().any(|&i| !done[i]) {
                let (n, src) = match sock.recv_from(&mut buf) {
                    Ok(r) => r,
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                        ) =>
                    {
                        continue
                    }
                    Err(e) => return Err(e),
                };
                let index = match buf[0] {
                    2 => index_at(&buf[..n], field::RESPONSE_RECEIVER),
                    3 => index_at(&buf[..n], field::COOKIE_RECEIVER),
                    _ => None,
                };
                let Some(&i) = index.and_then(|x| owner.get(&x)) else {
                    continue;
                };
                let (d, id) = &mut devices[i];
                match d.handle_datagram(clock.now(skew[i]), src, &mut buf[..n], false) {
                    Ok(Received::Response { .. }) => done[i] = true,
                    Ok(Received::CookieReply { .. }) => {
                        // The gateway is under load: retry at once, now with the cookie's mac2.
                        skew[i] += RETRY_SKEW;
                        d.initiate_handshake(clock.now(skew[i]), *id);
                    }
                    _ => {}
                }
                flush(d, clock.now(skew[i]), sock, &mut owner, i)?;
            }
        }
    }
    let mut sessions = Vec::with_capacity(count);
    for (i, (d, id)) in devices.iter().enumerate() {
        let kp = d
            .peer(*id)
            .and_then(|p| p.keypairs().current())
            .ok_or_else(|| {
                io::Error::other(format!("peer {i}: no session after {ATTEMPTS} attempts"))
            })?;
        sessions.push(Session {
            key: *kp.sending_key(),
            receiver: kp.remote_index(),
            next_counter: kp.sending_counter(),
            local_index: kp.local_index(),
            rx_key: *kp.receiving_key(),
            src: SocketAddrV4::new(peers::tunnel_addr(i), inner_port),
        });
    }
    Ok(sessions)
}
