//! The socket backend's link: the worker's batch core over an ordinary UDP socket (the peers'
//! side) and a TUN device (the plaintext side), for machines where XDP or AF_XDP cannot run.
//! The same worker code opens, checks and seals as on AF_XDP; only the edges differ.
//!
//! The worker speaks Ethernet frames, so this link dresses what it receives: a datagram gets
//! Ethernet, IP and UDP headers naming its real source (the worker authenticates it and learns
//! the endpoint from them), a packet from the TUN device an Ethernet header. The kernel routes
//! both ways: a decrypted packet is written to the TUN device, a sealed message is sent from
//! the socket to the address in its headers (the worker hands both over through
//! [`Link::send_via_kernel`], since no next hop is ever known here).
//!
//! The TUN device is also the gateway's own interface ([`Side::Local`]): it is named as
//! wg-quick names it and carries the Address, so both sides are the same device here. A
//! packet for the local side is written to it like any other; nothing is read from the local
//! side, since every packet from the device already comes in as the LAN side's.
//!
//! Handshake messages share the socket with data: they are queued for the control process
//! running beside the worker ([`SocketLink::take_handshakes`]), which answers on the same
//! socket.

use crate::frame::{Frame, Pool};
use crate::link::{Link, Side};
use crate::packet::{self, Route, ETH_LEN, HEADROOM};
use proto::messages::MessageType;
use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd as _;

/// Handshake messages waiting for control at most (the kernel's handshake queue is 4096 deep;
/// control's own under-load rule starts at 512).
pub const MAX_QUEUED_HANDSHAKES: usize = 4096;
/// Room for the largest dressing a datagram gets (Ethernet, IPv6, UDP).
const DRESSING: usize = ETH_LEN + 40 + 8;

/// A handshake message for control, with its source.
pub type Handshake = (SocketAddr, Vec<u8>);

#[derive(Debug)]
pub struct SocketLink<'a> {
    pool: Pool<'a>,
    udp: UdpSocket,
    tun: tun_tap::Iface,
    listen_port: u16,
    handshakes: VecDeque<Handshake>,
    /// Handshake messages dropped because control had not taken the queued ones yet.
    pub handshakes_dropped: u64,
}

impl<'a> SocketLink<'a> {
    /// A link over `arena` (cut into `frame_size` chunks), the UDP socket `udp` (made
    /// non-blocking) bound to `listen_port`, and the TUN device `tun` (made non-blocking).
    pub fn new(
        arena: &'a mut [u8],
        frame_size: usize,
        udp: UdpSocket,
        tun: tun_tap::Iface,
        listen_port: u16,
    ) -> std::io::Result<Self> {
        udp.set_nonblocking(true)?;
        tun.set_non_blocking()?;
        Ok(Self {
            pool: Pool::from_arena(arena, frame_size),
            udp,
            tun,
            listen_port,
            handshakes: VecDeque::new(),
            handshakes_dropped: 0,
        })
    }

    /// Another socket (control moved to a new listen port).
    pub fn set_socket(&mut self, udp: UdpSocket, listen_port: u16) -> std::io::Result<()> {
        udp.set_nonblocking(true)?;
        self.udp = udp;
        self.listen_port = listen_port;
        Ok(())
    }

    /// The handshake messages received since the last call, oldest first.
    pub fn take_handshakes(&mut self) -> std::collections::vec_deque::Drain<'_, Handshake> {
        self.handshakes.drain(..)
    }

    pub fn queued_handshakes(&self) -> usize {
        self.handshakes.len()
    }

    /// A datagram from the socket as the worker wants it, or `None` when none is waiting.
    /// Handshake messages go to the queue and take no frame.
    fn recv_datagram(&mut self) -> Option<Option<Frame<'a>>> {
        let mut f = self.pool.alloc()?;
        let payload_at = HEADROOM + DRESSING;
        let (n, src) = match self.udp.recv_from(&mut f.chunk_mut()[payload_at..]) {
            Ok(r) => r,
            Err(_) => {
                self.pool.release(f);
                return None;
            }
        };
        let src = unmapped(src);
        let payload = &f.chunk()[payload_at..payload_at + n];
        if matches!(
            MessageType::of(payload),
            Some(MessageType::Initiation | MessageType::Response | MessageType::CookieReply)
        ) {
            if self.handshakes.len() < MAX_QUEUED_HANDSHAKES {
                self.handshakes.push_back((src, payload.to_vec()));
            } else {
                self.handshakes_dropped += 1;
            }
            self.pool.release(f);
            return Some(None);
        }
        let local: IpAddr = match src {
            SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
            SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
        };
        let route = Route {
            src,
            dst: SocketAddr::new(local, self.listen_port),
            src_mac: [0; 6],
            dst_mac: [0; 6],
        };
        let start = payload_at - packet::udp_headers_len(&route);
        let dressed = packet::write_udp_headers(&mut f.chunk_mut()[start..], &route, n);
        if dressed.is_err() || !f.set_packet(start, payload_at + n - start) {
            self.pool.release(f);
            return Some(None);
        }
        Some(Some(f))
    }

    /// A packet from the TUN device with an Ethernet header in front, or `None` when none is
    /// waiting.
    fn recv_plaintext(&mut self) -> Option<Frame<'a>> {
        let mut f = self.pool.alloc()?;
        let at = HEADROOM + ETH_LEN;
        let n = match self.tun.recv(&mut f.chunk_mut()[at..]) {
            Ok(n) if n > 0 => n,
            _ => {
                self.pool.release(f);
                return None;
            }
        };
        if !packet::dress_tun_packet(&mut f, n) {
            self.pool.release(f);
            return None;
        }
        Some(f)
    }

    /// Sends the UDP payload of the outer IP packet `ip` from the socket, to the address in
    /// its headers.
    fn send_datagram(&self, ip: &[u8]) -> bool {
        let Some((dst, payload)) = packet::udp_destination(ip) else {
            return false;
        };
        self.udp
            .send_to(&ip[payload.clone()], dst)
            .is_ok_and(|n| n == payload.len())
    }
}

/// The dual-stack socket reports IPv4 peers as IPv4-mapped IPv6 addresses.
fn unmapped(a: SocketAddr) -> SocketAddr {
    match a {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(v4.into(), v6.port()),
            None => a,
        },
        v4 => v4,
    }
}

impl<'a> Link<'a> for SocketLink<'a> {
    fn has_lan(&self) -> bool {
        true
    }

    fn has_local(&self) -> bool {
        true
    }

    fn service(&mut self) {}

    fn recv(&mut self, side: Side, out: &mut Vec<Frame<'a>>, max: usize) -> usize {
        let mut n = 0;
        // Handshakes count against the batch too, so that a flood of them cannot keep the
        // worker here.
        let mut tries = 0;
        while n < max && tries < max {
            tries += 1;
            let got = match side {
                Side::Wan => match self.recv_datagram() {
                    Some(Some(f)) => Some(f),
                    Some(None) => continue,
                    None => None,
                },
                Side::Lan => self.recv_plaintext(),
                // The same device as the LAN side: read once, there.
                Side::Local => None,
            };
            let Some(f) = got else { break };
            out.push(f);
            n += 1;
        }
        n
    }

    fn send(&mut self, side: Side, frames: &mut Vec<Frame<'a>>) -> usize {
        let mut sent = 0;
        for f in frames.drain(..) {
            let ok = match f.packet().get(ETH_LEN..) {
                Some(ip) => match side {
                    Side::Wan => self.send_datagram(ip),
                    Side::Lan | Side::Local => self.tun.send(ip).is_ok(),
                },
                None => false,
            };
            sent += usize::from(ok);
            self.pool.release(f);
        }
        sent
    }

    fn alloc(&mut self) -> Option<Frame<'a>> {
        self.pool.alloc()
    }

    fn release(&mut self, frame: Frame<'a>) {
        self.pool.release(frame);
    }

    fn send_via_kernel(&mut self, frame: Frame<'a>, side: Side, _dst: IpAddr) -> bool {
        let ok = match side {
            Side::Wan => self.send_datagram(frame.packet()),
            Side::Lan | Side::Local => self.tun.send(frame.packet()).is_ok(),
        };
        self.pool.release(frame);
        ok
    }

    fn wait(&mut self, timeout_ms: i32, bell: Option<std::os::fd::BorrowedFd<'_>>) {
        let mut fds = arrayvec::ArrayVec::<i32, 3>::new();
        fds.extend([self.udp.as_raw_fd(), self.tun.as_raw_fd()]);
        fds.extend(bell.map(|b| std::os::fd::AsRawFd::as_raw_fd(&b)));
        crate::xsk::wait_readable(&fds, timeout_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn udp_destination_finds_the_payload() {
        let route = Route {
            src: "198.18.0.1:51820".parse().unwrap(),
            dst: "198.18.0.10:40000".parse().unwrap(),
            src_mac: [0; 6],
            dst_mac: [0; 6],
        };
        let mut f = vec![0u8; 200];
        let at = packet::udp_headers_len(&route);
        f[at..at + 5].copy_from_slice(b"hello");
        packet::write_udp_headers(&mut f, &route, 5).unwrap();
        let ip = &f[ETH_LEN..at + 5];
        let (dst, payload) = packet::udp_destination(ip).unwrap();
        assert_eq!(dst, route.dst);
        assert_eq!(&ip[payload], b"hello");
        assert_eq!(packet::udp_destination(&ip[..10]), None, "truncated");
    }
}
