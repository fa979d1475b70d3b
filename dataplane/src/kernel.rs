//! Handing a packet to the kernel when the worker cannot finish it itself: the next hop's MAC
//! is not known yet. A raw IP socket sends the packet as it is; the kernel routes it, resolves
//! the neighbour (which the resolver then learns) and transmits it. A syscall per packet, but
//! only for the first packets towards a new next hop.

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::net::{IpAddr, SocketAddr};

#[derive(Debug)]
pub struct KernelPath {
    v4: Option<Socket>,
    v6: Option<Socket>,
}

/// IPPROTO_RAW: with it the packet carries its own IP header (IPv4 implies IP_HDRINCL).
const IPPROTO_RAW: i32 = 255;

impl KernelPath {
    /// Opens the raw sockets (needs CAP_NET_RAW); a family that cannot be opened is skipped.
    pub fn new() -> Self {
        let v4 = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(IPPROTO_RAW))).ok();
        let v6 = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::from(IPPROTO_RAW)))
            .ok()
            .filter(|s| s.set_header_included_v6(true).is_ok());
        Self { v4, v6 }
    }

    /// Sends the IP packet `packet` (its own header included) towards `dst`.
    pub fn send(&self, packet: &[u8], dst: IpAddr) -> bool {
        let (socket, addr) = match dst {
            IpAddr::V4(_) => (self.v4.as_ref(), SockAddr::from(SocketAddr::new(dst, 0))),
            IpAddr::V6(_) => (self.v6.as_ref(), SockAddr::from(SocketAddr::new(dst, 0))),
        };
        socket.is_some_and(|s| s.send_to(packet, &addr).is_ok_and(|n| n == packet.len()))
    }
}

impl Default for KernelPath {
    fn default() -> Self {
        Self::new()
    }
}
