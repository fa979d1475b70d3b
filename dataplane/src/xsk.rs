//! AF_XDP sockets over one UMEM per worker, on xdpilone (the kernel's four rings, no libxdp).
//!
//! Every `unsafe` block of the socket layer is in this module. The ownership rule that makes
//! the UMEM sound: a chunk belongs to exactly one party at a time, and the types say which.
//! The process holds a chunk as an owned [`Frame`] (which carries the chunk's slice); the
//! kernel holds it from the moment it is given through a fill or TX ring (the `Frame` is
//! consumed) until an RX or completion ring names it again (a new `Frame` is made). A bitmap
//! per UMEM records which chunks the kernel holds: a `Frame` is made only for a chunk whose
//! bit is set, so no two frames of one chunk can exist, even if a ring named an address twice.
//!
//! Why xdpilone over xsk-rs: it builds without libxdp/libbpf (no C at build time), and it
//! models one UMEM shared by sockets on different devices, each with its own fill and
//! completion rings, which is exactly a worker's WAN + LAN pair (design §8).

pub mod tun;

use crate::frame::{Frame, Pool};
use crate::kernel::KernelPath;
use crate::link::{Link, Side};
use std::cell::Cell;
use std::ffi::CString;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::ptr::NonNull;
use xdpilone::xdp::XdpDesc;
use xdpilone::{DeviceQueue, IfInfo, RingRx, RingTx, Socket, SocketConfig, UmemConfig, User};

#[derive(Debug, thiserror::Error)]
pub enum XskError {
    #[error("mapping {bytes} bytes of UMEM: {source}")]
    Mmap {
        bytes: usize,
        source: std::io::Error,
    },
    #[error("{what} on {interface} queue {queue}: {errno}")]
    Socket {
        what: &'static str,
        interface: String,
        queue: u32,
        errno: String,
    },
    #[error("UMEM: {0}")]
    Umem(String),
}

/// Ring and frame sizes. Frames are 2048 bytes: a 1500-byte MTU frame plus headroom fits,
/// and two frames share a page.
#[derive(Debug, Clone, Copy)]
pub struct UmemSpec {
    pub frames: u32,
    pub frame_size: u32,
    pub ring_size: u32,
}

impl Default for UmemSpec {
    fn default() -> Self {
        Self {
            frames: 4096,
            frame_size: 2048,
            ring_size: 2048,
        }
    }
}

/// Anonymous page-aligned memory, unmapped on drop.
#[derive(Debug)]
struct Area {
    ptr: NonNull<u8>,
    len: usize,
}

impl Area {
    fn new(len: usize) -> Result<Self, XskError> {
        // SAFETY: an anonymous private mapping with no address hint has no preconditions; the
        // result is checked against MAP_FAILED before use.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(XskError::Mmap {
                bytes: len,
                source: std::io::Error::last_os_error(),
            });
        }
        let ptr = NonNull::new(ptr.cast::<u8>())
            .ok_or_else(|| XskError::Umem("mmap returned a null mapping".into()))?;
        Ok(Self { ptr, len })
    }
}

impl Drop for Area {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly the mapping made in `new`, unmapped once, here. The
        // UMEM registered on it is dropped before the area (field order in `Umem`), and no
        // frame outlives the `Umem` (frames borrow it).
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}

/// A worker's UMEM: the registered packet memory, and which of its chunks the kernel holds.
/// Frames borrow it, so it outlives every frame and every socket on it.
#[derive(Debug)]
pub struct Umem {
    // Dropped first: the kernel registration must go before the memory.
    umem: UmemHandle,
    area: Area,
    spec: UmemSpec,
    /// Bit `i`: the kernel holds chunk `i` (given through a fill or TX ring, not yet back).
    in_kernel: Box<[Cell<u64>]>,
    /// Whether the pool of all chunks was handed out ([`Umem::pool`] gives it once).
    pool_taken: Cell<bool>,
    /// The first socket reuses the UMEM's own fd; every later one (another device or queue)
    /// is a new socket bound with XDP_SHARED_UMEM.
    umem_fd_taken: Cell<bool>,
    /// Ring entries that named a chunk the kernel did not hold (refused, never made a frame).
    foreign: Cell<u64>,
}

// SAFETY: a `Umem` owns its mapping (`Area`) and its kernel registration outright; nothing
// else points into them until a socket or frame borrows the `Umem`, and those borrows tie
// whoever holds them to its lifetime. Its `Cell`s make it `!Sync`, so a `&Umem` never reaches
// two threads at once; moving the owner to another thread (the data path makes each worker's
// UMEM and lends it to that worker's thread alone) moves nothing that is tied to a thread.
unsafe impl Send for Umem {}

/// `xdpilone::Umem` has no Debug; wrap it.
struct UmemHandle(xdpilone::Umem);

impl std::fmt::Debug for UmemHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Umem")
    }
}

impl Umem {
    pub fn new(spec: UmemSpec) -> Result<Self, XskError> {
        let len = spec.frames as usize * spec.frame_size as usize;
        let area = Area::new(len)?;
        let config = UmemConfig {
            fill_size: spec.ring_size,
            complete_size: spec.ring_size,
            frame_size: spec.frame_size,
            headroom: 0,
            flags: 0,
        };
        let region = NonNull::slice_from_raw_parts(area.ptr, len);
        // SAFETY: `region` is a page-aligned mapping of exactly `frames * frame_size` bytes
        // owned by `area`, which outlives the UMEM (dropped after it, see field order).
        let umem = unsafe { xdpilone::Umem::new(config, region) }
            .map_err(|e| XskError::Umem(format!("{e}")))?;
        Ok(Self {
            umem: UmemHandle(umem),
            area,
            spec,
            in_kernel: (0..(spec.frames as usize).div_ceil(64))
                .map(|_| Cell::new(0))
                .collect(),
            pool_taken: Cell::new(false),
            umem_fd_taken: Cell::new(false),
            foreign: Cell::new(0),
        })
    }

    pub fn spec(&self) -> UmemSpec {
        self.spec
    }

    /// Every chunk as a free frame, the first time; `None` after (a second pool would alias
    /// the first).
    pub fn pool(&self) -> Option<Pool<'_>> {
        if self.pool_taken.replace(true) {
            return None;
        }
        let fs = self.spec.frame_size as usize;
        let frames = (0..self.spec.frames).map(|i| {
            // SAFETY: chunk `i` lies inside the mapping (i < frames, each `fs` long); this is
            // the only place besides `take` that makes a slice of a chunk, it runs once per
            // UMEM (`pool_taken`), and the kernel holds no chunk yet (no ring was filled: that
            // needs a frame, which only this pool provides).
            let chunk = unsafe {
                std::slice::from_raw_parts_mut(self.area.ptr.as_ptr().add(i as usize * fs), fs)
            };
            Frame::new(chunk, i)
        });
        Some(Pool::new(self.spec.frames as usize, frames))
    }

    /// Ring entries refused because they named a chunk the kernel did not hold.
    pub fn foreign(&self) -> u64 {
        self.foreign.get()
    }

    fn bit(&self, index: u32) -> Option<(&Cell<u64>, u64)> {
        let i = index as usize;
        Some((self.in_kernel.get(i / 64)?, 1u64 << (i % 64)))
    }

    /// Hands `frame`'s chunk to the kernel: its UMEM address (packet start) and length. The
    /// frame is consumed. `Err` gives it back if it is not a chunk of this UMEM.
    fn give<'u>(&'u self, frame: Frame<'u>) -> Result<XdpDesc, Frame<'u>> {
        let fs = self.spec.frame_size as usize;
        let expected = self
            .area
            .ptr
            .as_ptr()
            .wrapping_add(frame.index() as usize * fs);
        let Some((word, bit)) = self.bit(frame.index()) else {
            return Err(frame);
        };
        if frame.chunk().as_ptr() != expected.cast_const() || frame.chunk().len() != fs {
            return Err(frame);
        }
        word.set(word.get() | bit);
        let (index, off, len) = frame.into_parts();
        Ok(XdpDesc {
            addr: u64::from(index) * fs as u64 + u64::from(off),
            len,
            options: 0,
        })
    }

    /// The frame for a chunk the kernel returned at `addr` (`len` bytes of packet), if the
    /// kernel held it; anything else is refused and counted.
    fn take(&self, addr: u64, len: u32) -> Option<Frame<'_>> {
        let fs = u64::from(self.spec.frame_size);
        let index = u32::try_from(addr / fs).ok()?;
        let refuse = || {
            self.foreign.set(self.foreign.get() + 1);
            None
        };
        let Some((word, bit)) = self.bit(index).filter(|_| index < self.spec.frames) else {
            return refuse();
        };
        if word.get() & bit == 0 {
            return refuse();
        }
        word.set(word.get() & !bit);
        let fs = fs as usize;
        // SAFETY: chunk `index` lies inside the mapping (index < frames). Its bit was set, so
        // the kernel held it and no `Frame` of it exists (`give` consumed the last one and
        // set the bit; `pool` made the first ones before any bit was set); clearing the bit
        // makes this the only one. The kernel no longer writes a chunk it returned.
        let chunk = unsafe {
            std::slice::from_raw_parts_mut(self.area.ptr.as_ptr().add(index as usize * fs), fs)
        };
        let mut f = Frame::new(chunk, index);
        let off = (addr % fs as u64) as usize;
        if !f.set_packet(off, len as usize) {
            // A length past the chunk: keep the frame (it is ours again), with no packet.
            f.set_packet(0, 0);
        }
        Some(f)
    }
}

/// Waits until one of `fds` is readable or `timeout_ms` passes (the idle path of a worker).
pub fn wait_readable(fds: &[i32], timeout_ms: i32) {
    let mut pfds: [libc::pollfd; 4] = [libc::pollfd {
        fd: -1,
        events: 0,
        revents: 0,
    }; 4];
    for (p, fd) in pfds.iter_mut().zip(fds) {
        p.fd = *fd;
        p.events = libc::POLLIN;
    }
    let n = fds.len().min(pfds.len());
    // SAFETY: `pfds` is a live array of at least `n` initialised pollfd structs; poll only
    // writes their `revents` fields.
    unsafe {
        libc::poll(pfds.as_mut_ptr(), n as libc::nfds_t, timeout_ms);
    }
}

/// One AF_XDP socket bound to an interface queue, with its own fill and completion rings.
pub struct Port<'u> {
    umem: &'u Umem,
    device: DeviceQueue,
    rx: RingRx,
    tx: RingTx,
    _user: User,
    interface: String,
    queue: u32,
}

impl std::fmt::Debug for Port<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Port")
            .field("interface", &self.interface)
            .field("queue", &self.queue)
            .finish()
    }
}

/// Zero-copy or copy mode for the bind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindMode {
    /// The kernel copies frames between the driver and the UMEM (veth, generic XDP).
    Copy,
    /// The NIC DMAs straight into the UMEM.
    ZeroCopy,
}

/// The mode to bind `interfaces` (queue 0) in: zero-copy where the driver supports it for
/// all of them, else copy, with the reason zero-copy was not taken. Found by binding a
/// throwaway socket on a throwaway UMEM (the kernel answers EOPNOTSUPP, or EINVAL, for a
/// driver without zero-copy support), so that a refusal leaves nothing half set up.
///
/// A virtual device (no `device` in sysfs: veth, bridges, tunnels) has no zero-copy driver
/// and is not probed: the probe's UMEM is charged to the user's locked memory until the
/// kernel releases it in the background, and a gateway running with capabilities only (no
/// CAP_IPC_LOCK, RLIMIT_MEMLOCK 8 MiB) then failed to register its real one (ENOBUFS). The
/// probe's UMEM is the smallest that binds, for the same reason. (sysfs as mounted for this
/// process: entered by setns alone, another namespace's, and copy is taken, which always works.)
pub fn choose_mode(interfaces: &[&str], spec: UmemSpec) -> (BindMode, Option<String>) {
    let spec = UmemSpec {
        frames: 64,
        ring_size: 64,
        ..spec
    };
    for i in interfaces {
        if !std::path::Path::new("/sys/class/net")
            .join(i)
            .join("device")
            .exists()
        {
            return (
                BindMode::Copy,
                Some(format!("{i}: a virtual device, no zero-copy driver")),
            );
        }
        let probe = Umem::new(spec)
            .and_then(|u| Port::bind(&u, i, 0, BindMode::ZeroCopy, spec.ring_size).map(|_| ()));
        if let Err(e) = probe {
            return (BindMode::Copy, Some(format!("{i}: {e}")));
        }
    }
    (BindMode::ZeroCopy, None)
}

/// Room for frames the local interface refuses in one send (more only grows the spare once).
const LOCAL_REFUSED_ROOM: usize = 256;

/// Ring entries moved per step: the size of the stack buffers between the pool and a ring.
const STEP: usize = 64;

impl<'u> Port<'u> {
    /// Creates a socket on `interface` queue `queue`, sharing `umem`, and binds it.
    pub fn bind(
        umem: &'u Umem,
        interface: &str,
        queue: u32,
        mode: BindMode,
        ring_size: u32,
    ) -> Result<Self, XskError> {
        let err = |what: &'static str| {
            let interface = interface.to_string();
            move |e: xdpilone::Errno| XskError::Socket {
                what,
                interface,
                queue,
                errno: format!("{e}"),
            }
        };
        let name = CString::new(interface)
            .map_err(|_| XskError::Umem("interface name has a NUL".into()))?;
        let mut info = IfInfo::invalid();
        info.from_name(&name).map_err(err("looking up interface"))?;
        info.set_queue(queue);
        let shared = umem.umem_fd_taken.replace(true);
        let socket = if shared {
            Socket::new(&info)
        } else {
            Socket::with_shared(&info, &umem.umem.0)
        }
        .map_err(err("creating AF_XDP socket"))?;
        let device = umem
            .umem
            .0
            .fq_cq(&socket)
            .map_err(err("creating fill/completion rings"))?;
        // A socket sharing the UMEM inherits copy/zero-copy and need-wakeup from the first
        // one; the kernel refuses those flags on it (xsk_bind: EINVAL).
        let flags = if shared {
            0
        } else {
            SocketConfig::XDP_BIND_NEED_WAKEUP
                | match mode {
                    BindMode::Copy => SocketConfig::XDP_BIND_COPY,
                    BindMode::ZeroCopy => SocketConfig::XDP_BIND_ZEROCOPY,
                }
        };
        let ring =
            NonZeroU32::new(ring_size).ok_or_else(|| XskError::Umem("ring size 0".into()))?;
        let config = SocketConfig {
            rx_size: Some(ring),
            tx_size: Some(ring),
            bind_flags: flags,
        };
        let user = umem
            .umem
            .0
            .rx_tx(&socket, &config)
            .map_err(err("creating RX/TX rings"))?;
        let rx = user.map_rx().map_err(err("mapping RX ring"))?;
        let tx = user.map_tx().map_err(err("mapping TX ring"))?;
        umem.umem.0.bind(&user).map_err(err("binding"))?;
        Ok(Self {
            umem,
            device,
            rx,
            tx,
            _user: user,
            interface: interface.to_string(),
            queue,
        })
    }

    /// The socket's fd, for the XSKMAP.
    pub fn fd(&self) -> i32 {
        self.rx.as_raw_fd()
    }

    /// Gives up to `max` free frames of `pool` to the kernel for receiving. Returns how many.
    pub fn fill(&mut self, pool: &mut Pool<'u>, max: u32) -> u32 {
        let mut n = 0;
        // Twice at most, as in `send`: a first reservation may be short of the real room.
        'reserve: for _ in 0..2 {
            let mut writer = self.device.fill(max - n);
            let mut room = writer.capacity().min(max - n) as usize;
            if room == 0 {
                break;
            }
            while room > 0 {
                let mut addrs = arrayvec::ArrayVec::<u64, STEP>::new();
                while addrs.len() < room.min(STEP) {
                    let Some(f) = pool.alloc() else { break };
                    match self.umem.give(f) {
                        Ok(d) => addrs.push(d.addr),
                        Err(f) => {
                            pool.release(f);
                            break;
                        }
                    }
                }
                if addrs.is_empty() {
                    writer.commit();
                    break 'reserve;
                }
                let given = addrs.len();
                let put = writer.insert(addrs.iter().copied()) as usize;
                // The ring had room for all of them (capacity above); should it not, the
                // chunks it did not take come back to the pool instead of being lost.
                for &a in &addrs[put..] {
                    if let Some(f) = self.umem.take(a, 0) {
                        pool.release(f);
                    }
                }
                n += put as u32;
                room -= given;
                if put < given {
                    writer.commit();
                    break 'reserve;
                }
            }
            writer.commit();
            if n >= max {
                break;
            }
        }
        if self.device.needs_wakeup() {
            self.device.wake();
        }
        n
    }

    /// Appends up to `max` received frames to `out` (each is the caller's now). Returns how
    /// many.
    pub fn recv(&mut self, out: &mut Vec<Frame<'u>>, max: usize) -> usize {
        let mut reader = self.rx.receive(u32::try_from(max).unwrap_or(u32::MAX));
        let mut n = 0;
        while n < max {
            let Some(d) = reader.read() else { break };
            if let Some(f) = self.umem.take(d.addr, d.len) {
                out.push(f);
                n += 1;
            }
        }
        reader.release();
        n
    }

    /// Queues frames for transmission from the front of `frames`; those queued are removed
    /// (the kernel holds them now), the rest stay. Returns how many were queued.
    pub fn send(&mut self, frames: &mut Vec<Frame<'u>>) -> usize {
        let mut queued = 0;
        let mut refused = Vec::new();
        // Twice at most: the ring's view of the kernel's consumer head is refreshed only when
        // the cached free count is exhausted (xdpilone reserves `1..=n` and re-reads the head
        // below 1), so a first reservation can be short although the kernel has emptied the
        // ring. Filling it exhausts the cache; the second reservation sees the real room.
        // (Without this, bursts were dropped as `tx_ring_full` with the ring empty: about 1%
        // of a 100 Mbit/s TCP flow on veth.)
        for _ in 0..2 {
            if frames.is_empty() {
                break;
            }
            let mut writer = self
                .tx
                .transmit(u32::try_from(frames.len()).unwrap_or(u32::MAX));
            let room = (writer.capacity() as usize).min(frames.len());
            if room == 0 {
                break;
            }
            for f in frames.drain(..room) {
                match self.umem.give(f) {
                    Ok(d) => {
                        if writer.insert_once(d) {
                            queued += 1;
                        } else if let Some(f) = self.umem.take(d.addr, d.len) {
                            refused.push(f);
                        }
                    }
                    Err(f) => refused.push(f),
                }
            }
            writer.commit();
        }
        if !refused.is_empty() {
            // Not expected (room was checked); back to the caller, in front of the rest.
            refused.append(frames);
            *frames = refused;
        }
        if self.tx.needs_wakeup() {
            self.tx.wake();
        }
        queued
    }

    /// Takes back frames whose transmission completed, into `pool`. Returns how many.
    pub fn complete(&mut self, pool: &mut Pool<'u>, max: u32) -> u32 {
        let mut reader = self.device.complete(max);
        let mut n = 0;
        while let Some(addr) = reader.read() {
            if let Some(f) = self.umem.take(addr, 0) {
                pool.release(f);
                n += 1;
            }
        }
        reader.release();
        n
    }

    /// Kicks the kernel to transmit even if it did not ask for a wakeup. In copy mode each
    /// `sendto` moves at most a small batch of descriptors (32 in the kernel's generic
    /// transmit path), so kick until the ring is drained or the kernel stops making progress.
    pub fn kick(&self) {
        let mut last = u32::MAX;
        for _ in 0..64 {
            let pending = self.tx.pending();
            if pending == 0 || pending == last {
                return;
            }
            last = pending;
            self.tx.wake();
        }
    }
}

/// Frames kept out of the fill rings for packets the worker generates (ICMP errors), so that
/// it never has to wait for the kernel to make one.
const RESERVED_FRAMES: usize = 64;

/// A worker's AF_XDP link: one UMEM, a WAN socket and (unless one-armed) a LAN socket on it,
/// so that a frame received on one side is transmitted on the other without a copy; the raw
/// sockets of the kernel path; and, when the gateway has its own interface, this worker's
/// queue of it (the local side, copied to and from UMEM frames by read/write).
#[derive(Debug)]
pub struct XskLink<'u> {
    pool: Pool<'u>,
    wan: Port<'u>,
    lan: Option<Port<'u>>,
    local: Option<tun::TunQueue>,
    kernel: KernelPath,
    /// The frames the local interface refused in one `send`, swapped with the caller's queue:
    /// allocated once, so a refusal costs no allocation.
    local_refused: Vec<Frame<'u>>,
}

impl<'u> XskLink<'u> {
    pub fn new(
        pool: Pool<'u>,
        wan: Port<'u>,
        lan: Option<Port<'u>>,
        local: Option<tun::TunQueue>,
    ) -> Self {
        let mut link = Self {
            pool,
            wan,
            lan,
            local,
            kernel: KernelPath::new(),
            local_refused: Vec::with_capacity(LOCAL_REFUSED_ROOM),
        };
        link.refill();
        link
    }

    fn refill(&mut self) {
        let fillable = self.pool.free_count().saturating_sub(RESERVED_FRAMES);
        let share =
            u32::try_from(fillable / if self.lan.is_some() { 2 } else { 1 }).unwrap_or(u32::MAX);
        self.wan.fill(&mut self.pool, share);
        if let Some(lan) = self.lan.as_mut() {
            lan.fill(&mut self.pool, share);
        }
    }

    fn port(&mut self, side: Side) -> &mut Port<'u> {
        match (side, self.lan.as_mut()) {
            (Side::Lan, Some(lan)) => lan,
            _ => &mut self.wan,
        }
    }
}

impl<'u> Link<'u> for XskLink<'u> {
    fn has_lan(&self) -> bool {
        self.lan.is_some()
    }

    fn has_local(&self) -> bool {
        self.local.is_some()
    }

    fn service(&mut self) {
        let max = 2 * STEP as u32;
        self.wan.complete(&mut self.pool, max);
        if let Some(lan) = self.lan.as_mut() {
            lan.complete(&mut self.pool, max);
        }
        self.refill();
    }

    fn recv(&mut self, side: Side, out: &mut Vec<Frame<'u>>, max: usize) -> usize {
        if side == Side::Local {
            let Some(tun) = &self.local else { return 0 };
            let mut n = 0;
            while n < max {
                let Some(f) = tun.recv_frame(&mut self.pool) else {
                    break;
                };
                out.push(f);
                n += 1;
            }
            return n;
        }
        if side == Side::Lan && self.lan.is_none() {
            return 0;
        }
        self.port(side).recv(out, max)
    }

    fn send(&mut self, side: Side, frames: &mut Vec<Frame<'u>>) -> usize {
        if frames.is_empty() {
            return 0;
        }
        if side == Side::Local {
            // A write the kernel refuses (its queue full) is not retried: the frame goes back
            // to the caller, which drops and counts it as for a full TX ring.
            let mut sent = 0;
            let mut refused = std::mem::take(&mut self.local_refused);
            for f in frames.drain(..) {
                let ok = match (&self.local, f.packet().get(crate::packet::ETH_LEN..)) {
                    (Some(tun), Some(ip)) => tun.send(ip).is_ok_and(|n| n == ip.len()),
                    _ => false,
                };
                if ok {
                    sent += 1;
                    self.pool.release(f);
                } else {
                    refused.push(f);
                }
            }
            // The caller gets the refused frames; its emptied queue becomes the spare.
            std::mem::swap(frames, &mut refused);
            self.local_refused = refused;
            return sent;
        }
        let port = self.port(side);
        let n = port.send(frames);
        port.kick();
        n
    }

    fn alloc(&mut self) -> Option<Frame<'u>> {
        self.pool.alloc()
    }

    fn release(&mut self, frame: Frame<'u>) {
        self.pool.release(frame);
    }

    fn send_via_kernel(&mut self, frame: Frame<'u>, _side: Side, dst: IpAddr) -> bool {
        let sent = self.kernel.send(frame.packet(), dst);
        self.pool.release(frame);
        sent
    }

    fn wait(&mut self, timeout_ms: i32, bell: Option<std::os::fd::BorrowedFd<'_>>) {
        let mut fds = arrayvec::ArrayVec::<i32, 4>::new();
        fds.extend(bell.map(|b| std::os::fd::AsRawFd::as_raw_fd(&b)));
        fds.push(self.wan.fd());
        if let Some(l) = &self.lan {
            fds.push(l.fd());
        }
        if let Some(t) = &self.local {
            fds.push(t.fd());
        }
        wait_readable(&fds, timeout_ms);
    }
}
