//! The seam between the worker's batch core and the wire.
//!
//! A [`Link`] moves owned [`Frame`]s: it receives Ethernet frames from the WAN side (peers),
//! the LAN side (plaintext) and the local side (the gateway's own interface, wg0), transmits
//! frames the worker finished, and hands a packet to the kernel's stack when the worker cannot
//! send it itself. The worker never sees a socket, a
//! ring or a clock. Implementations: AF_XDP ([`crate::xsk::XskLink`]), and an in-memory fake
//! ([`fake::FakeLink`]) for the worker's unit tests.

use crate::frame::Frame;
use std::net::IpAddr;

/// Which side of the gateway a frame comes from or goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The peers' side: WireGuard datagrams.
    Wan,
    /// The plaintext side. One-armed links have none: both kinds share the WAN side.
    Lan,
    /// The gateway's own kernel interface (a TUN device named as wg-quick names it, wg0):
    /// decrypted packets for the gateway's own addresses go to it, so that the kernel sees
    /// them arrive on wg0 (firewall rules naming `-i wg0` apply), and what the kernel routes
    /// into it (its own traffic, its services' replies) comes back from it to be sealed. Its
    /// frames carry an Ethernet header with zero MACs both ways, which the link adds on
    /// receive and strips on send, so that the worker parses them as LAN frames. Links without
    /// one ([`Link::has_local`] false) receive nothing from it.
    Local,
}

pub trait Link<'a> {
    /// Whether the link has a LAN side of its own (false: one-armed).
    fn has_lan(&self) -> bool;

    /// Whether the link has a local side (the gateway's own interface).
    fn has_local(&self) -> bool;

    /// Start of a round: takes back frames whose transmission completed and gives free ones
    /// to the receive side.
    fn service(&mut self);

    /// Appends up to `max` received frames from `side` to `out`; returns how many.
    fn recv(&mut self, side: Side, out: &mut Vec<Frame<'a>>, max: usize) -> usize;

    /// Queues frames for transmission on `side`, from the front of `frames`; those queued are
    /// removed (the link owns them now), the rest stay the caller's. Returns how many.
    fn send(&mut self, side: Side, frames: &mut Vec<Frame<'a>>) -> usize;

    /// A free frame for a packet the worker writes itself (an ICMP error).
    fn alloc(&mut self) -> Option<Frame<'a>>;

    /// Takes back a frame the worker is done with.
    fn release(&mut self, frame: Frame<'a>);

    /// Hands the IP packet in `frame` (its packet range: no Ethernet header) bound for `dst`
    /// on `side` to the kernel, which routes it. The frame is consumed whatever the outcome;
    /// false if the kernel refused it.
    fn send_via_kernel(&mut self, frame: Frame<'a>, side: Side, dst: IpAddr) -> bool;

    /// Idle: waits until a frame may be received, or `bell` becomes readable (another
    /// worker has work for this one), at most `timeout_ms`.
    fn wait(&mut self, timeout_ms: i32, bell: Option<std::os::fd::BorrowedFd<'_>>);
}

pub mod fake;
