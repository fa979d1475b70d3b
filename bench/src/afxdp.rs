//! The generator's fast path: pre-sealed data messages wrapped in Ethernet/IPv4/UDP frames and
//! pushed through an AF_XDP socket (copy mode), skipping the UDP socket layer. On this machine
//! `sendmmsg` tops out near 0.3 M datagrams/s per core, below what the gateway can take, so a
//! measurement with it is the generator's; AF_XDP transmit goes several times further.
//!
//! Everything runs on the calling thread, which must already be in the generator's network
//! namespace ([`crate::netns::run_in`]): the interface, its MAC address and the gateway's
//! (from the neighbour table the handshakes filled) are looked up there.

use dataplane::frame::Pool;
use dataplane::xsk::{BindMode, Port, Umem, UmemSpec};
use std::net::Ipv4Addr;

/// Where frames go, as seen from the sending interface: the data path's outer-header route.
pub use dataplane::packet::Route as Path;

/// The MAC address of `ifname` in the calling thread's namespace.
pub fn mac_of(ifname: &str) -> Result<[u8; 6], String> {
    let addrs = nix::ifaddrs::getifaddrs().map_err(|e| format!("getifaddrs: {e}"))?;
    for a in addrs {
        if a.interface_name != ifname {
            continue;
        }
        if let Some(mac) = a
            .address
            .as_ref()
            .and_then(|s| s.as_link_addr())
            .and_then(|l| l.addr())
        {
            return Ok(mac);
        }
    }
    Err(format!("{ifname}: no link-layer address"))
}

/// The neighbour entry of `ip` in the calling thread's namespace (the ARP table).
pub fn neighbour_mac(ip: Ipv4Addr) -> Result<[u8; 6], String> {
    let text = std::fs::read_to_string("/proc/thread-self/net/arp")
        .map_err(|e| format!("/proc/thread-self/net/arp: {e}"))?;
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.first() == Some(&ip.to_string().as_str()) {
            let text = f.get(3).copied().unwrap_or("");
            let mac = dataplane::daemon::parse_mac(text)
                .ok_or_else(|| format!("ARP entry: unreadable MAC {text:?}"))?;
            if mac != [0; 6] {
                return Ok(mac);
            }
        }
    }
    Err(format!("no ARP entry for {ip}"))
}

/// Writes `payload` behind the Ethernet, IP and UDP headers for `path` (written by the data
/// path's own header writer, checksums complete); returns the frame's length, 0 if it does
/// not fit in `out`.
pub fn frame(path: &Path, payload: &[u8], out: &mut [u8]) -> usize {
    let at = dataplane::packet::udp_headers_len(path);
    let Some(room) = out.get_mut(at..at + payload.len()) else {
        return 0;
    };
    room.copy_from_slice(payload);
    match dataplane::packet::write_udp_headers(out, path, payload.len()) {
        Ok(()) => at + payload.len(),
        Err(_) => 0,
    }
}

/// An AF_XDP socket on queue 0 of an interface, with its own UMEM (see [`with_sender`]).
#[derive(Debug)]
pub struct Sender<'u> {
    pool: Pool<'u>,
    port: Port<'u>,
}

const BATCH: usize = 64;

/// Opens a sender on `ifname` and runs `f` with it; the UMEM lives for the call (the socket
/// and every frame borrow it).
pub fn with_sender<R>(ifname: &str, f: impl FnOnce(&mut Sender<'_>) -> R) -> Result<R, String> {
    let spec = UmemSpec::default();
    let umem = Umem::new(spec).map_err(|e| e.to_string())?;
    let port =
        Port::bind(&umem, ifname, 0, BindMode::Copy, spec.ring_size).map_err(|e| e.to_string())?;
    let pool = umem.pool().ok_or("UMEM pool already taken")?;
    let mut sender = Sender { pool, port };
    Ok(f(&mut sender))
}

impl Sender<'_> {
    /// Sends `count` frames, in order, as fast as the ring takes them, or until `stop()` says
    /// so; paced to `rate` frames/s if it is positive. `frame(k, buf)` writes frame `k` into
    /// `buf` (a whole UMEM frame) and returns its length. Returns how many left.
    pub fn send_all(
        &mut self,
        count: usize,
        frame: impl Fn(usize, &mut [u8]) -> usize,
        rate: f64,
        stop: impl Fn() -> bool,
    ) -> u64 {
        let start = std::time::Instant::now();
        let mut k = 0;
        let mut frames = Vec::with_capacity(BATCH);
        while k < count && !stop() {
            self.port.complete(&mut self.pool, 2 * BATCH as u32);
            while frames.len() < BATCH && k + frames.len() < count {
                let Some(mut f) = self.pool.alloc() else {
                    break;
                };
                let len = frame(k + frames.len(), f.chunk_mut());
                if len == 0 || !f.set_packet(0, len) {
                    // The frame writer could not build it: nothing to send.
                    self.pool.release(f);
                    break;
                }
                frames.push(f);
            }
            let queued = self.port.send(&mut frames);
            for f in frames.drain(..) {
                self.pool.release(f);
            }
            self.port.kick();
            k += queued;
            if rate > 0.0 {
                let due = start + std::time::Duration::from_secs_f64(k as f64 / rate);
                let now = std::time::Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                }
            }
        }
        // Let the last frames go before the caller counts.
        for _ in 0..100 {
            self.port.kick();
            if self.pool.free_count() == self.pool.capacity() {
                break;
            }
            self.port.complete(&mut self.pool, u32::MAX);
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        k as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_have_a_valid_ipv4_checksum() {
        let path = Path {
            src_mac: [2, 0, 0, 0, 0, 1],
            dst_mac: [2, 0, 0, 0, 0, 2],
            src: "198.18.0.2:40000".parse().unwrap(),
            dst: "198.18.0.1:51820".parse().unwrap(),
        };
        let mut f = [0u8; 2048];
        assert_eq!(frame(&path, &[7u8; 96], &mut f), 42 + 96);
        let sum: u32 = f[14..34]
            .chunks_exact(2)
            .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
            .sum();
        let folded = (sum & 0xffff) + (sum >> 16);
        assert_eq!(folded, 0xffff, "the header sums to all ones");
        assert_eq!(u16::from_be_bytes([f[16], f[17]]), 20 + 8 + 96);
        assert_eq!(u16::from_be_bytes([f[36], f[37]]), 51820);
        assert_eq!(&f[12..14], &[8, 0]);
    }
}
