//! An in-memory link for the worker's unit tests: frames come from a heap arena, received
//! frames are queued by the test, transmitted ones are copied out and their frames released.
//! It counts every frame so that a test can check none was lost or released twice.

use super::{Link, Side};
use crate::frame::{Frame, Pool};
use std::collections::VecDeque;
use std::net::IpAddr;

/// A packet that left the fake link: its side and bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub side: Side,
    pub bytes: Vec<u8>,
}

#[derive(Debug)]
pub struct FakeLink<'a> {
    pool: Pool<'a>,
    lan: bool,
    /// Whether it has a local side (the gateway's own interface); see [`FakeLink::with_local`].
    local: bool,
    rx_wan: VecDeque<Frame<'a>>,
    rx_lan: VecDeque<Frame<'a>>,
    rx_local: VecDeque<Frame<'a>>,
    /// Frames transmitted, in order.
    pub sent: Vec<Sent>,
    /// Packets handed to the kernel path, with their destinations.
    pub to_kernel: Vec<(Vec<u8>, IpAddr)>,
    /// Whether the kernel path accepts packets (false: as when `sendto` fails).
    pub kernel_accepts: bool,
    /// How many frames a send queues at most (the TX ring's room), per call.
    pub tx_room: usize,
    /// Headroom in front of a received packet, as the kernel leaves it.
    pub headroom: usize,
}

impl<'a> FakeLink<'a> {
    /// A link over `arena` cut into `frame_size` chunks; `lan`: whether it has a LAN side.
    pub fn new(arena: &'a mut [u8], frame_size: usize, lan: bool) -> Self {
        Self {
            pool: Pool::from_arena(arena, frame_size),
            lan,
            local: false,
            rx_wan: VecDeque::new(),
            rx_lan: VecDeque::new(),
            rx_local: VecDeque::new(),
            sent: Vec::new(),
            to_kernel: Vec::new(),
            kernel_accepts: true,
            tx_room: usize::MAX,
            headroom: 256,
        }
    }

    /// The same link with a local side (the gateway's own interface).
    pub fn with_local(mut self) -> Self {
        self.local = true;
        self
    }

    /// Queues `bytes` (an Ethernet frame) for the worker to receive on `side`. False if the
    /// pool is empty or the frame does not fit.
    pub fn inject(&mut self, side: Side, bytes: &[u8]) -> bool {
        let Some(mut f) = self.pool.alloc() else {
            return false;
        };
        let at = self.headroom;
        if !f.set_packet(at, bytes.len()) {
            self.pool.release(f);
            return false;
        }
        f.chunk_mut()[at..at + bytes.len()].copy_from_slice(bytes);
        match side {
            Side::Wan => self.rx_wan.push_back(f),
            Side::Lan => self.rx_lan.push_back(f),
            Side::Local => self.rx_local.push_back(f),
        }
        true
    }

    /// Frames not in the pool: held by the worker or queued for it. Zero once the worker is
    /// idle, unless it stages packets.
    pub fn outstanding(&self) -> usize {
        self.pool.capacity()
            - self.pool.free_count()
            - self.rx_wan.len()
            - self.rx_lan.len()
            - self.rx_local.len()
    }

    /// Chunks released while already free (must stay zero).
    pub fn duplicates(&self) -> u64 {
        self.pool.duplicates()
    }

    /// Takes what was transmitted on `side` so far.
    pub fn take_sent(&mut self, side: Side) -> Vec<Vec<u8>> {
        let (mine, rest): (Vec<Sent>, Vec<Sent>) = std::mem::take(&mut self.sent)
            .into_iter()
            .partition(|s| s.side == side);
        self.sent = rest;
        mine.into_iter().map(|s| s.bytes).collect()
    }
}

impl<'a> Link<'a> for FakeLink<'a> {
    fn has_lan(&self) -> bool {
        self.lan
    }

    fn has_local(&self) -> bool {
        self.local
    }

    fn service(&mut self) {}

    fn recv(&mut self, side: Side, out: &mut Vec<Frame<'a>>, max: usize) -> usize {
        let q = match side {
            Side::Wan => &mut self.rx_wan,
            Side::Lan => &mut self.rx_lan,
            Side::Local if self.local => &mut self.rx_local,
            Side::Local => return 0,
        };
        let n = q.len().min(max);
        out.extend(q.drain(..n));
        n
    }

    fn send(&mut self, side: Side, frames: &mut Vec<Frame<'a>>) -> usize {
        let n = frames.len().min(self.tx_room);
        for f in frames.drain(..n) {
            // What a real link puts on the wire: the local side takes the IP packet alone.
            let skip = if side == Side::Local {
                crate::packet::ETH_LEN
            } else {
                0
            };
            self.sent.push(Sent {
                side,
                bytes: f.packet().get(skip..).unwrap_or_default().to_vec(),
            });
            self.pool.release(f);
        }
        n
    }

    fn alloc(&mut self) -> Option<Frame<'a>> {
        self.pool.alloc()
    }

    fn release(&mut self, frame: Frame<'a>) {
        self.pool.release(frame);
    }

    fn send_via_kernel(&mut self, frame: Frame<'a>, _side: Side, dst: IpAddr) -> bool {
        if self.kernel_accepts {
            self.to_kernel.push((frame.packet().to_vec(), dst));
        }
        self.pool.release(frame);
        self.kernel_accepts
    }

    fn wait(&mut self, _timeout_ms: i32, _bell: Option<std::os::fd::BorrowedFd<'_>>) {}
}
