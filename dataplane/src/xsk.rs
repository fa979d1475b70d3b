//! AF_XDP sockets over one UMEM per worker, on xdpilone (the kernel's four rings, no libxdp).
//!
//! Every `unsafe` block of the socket layer is in this module. The ownership rule that makes
//! the UMEM sound: a frame belongs to exactly one party at a time. The kernel owns frames it
//! was given through a fill ring or a TX ring until it hands them back through an RX or
//! completion ring; the worker owns every other frame, and only a frame it owns is ever turned
//! into a slice (through `&mut self`, so two slices of one frame cannot coexist).
//!
//! Why xdpilone over xsk-rs: it builds without libxdp/libbpf (no C at build time), and it
//! models one UMEM shared by sockets on different devices, each with its own fill and
//! completion rings, which is exactly a worker's WAN + LAN pair (design §8).

use std::ffi::CString;
use std::num::NonZeroU32;
use std::ptr::NonNull;
use xdpilone::xdp::XdpDesc;
use xdpilone::{DeviceQueue, IfInfo, RingRx, RingTx, Socket, SocketConfig, Umem, UmemConfig, User};

pub use xdpilone::xdp::XdpDesc as Desc;

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
        // UMEM registered on it is dropped before the area (field order in `Frames`).
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}

/// A worker's UMEM: the registered packet memory and the free list of frames it owns.
#[derive(Debug)]
pub struct Frames {
    // Dropped first: the kernel registration must go before the memory.
    umem: UmemHandle,
    area: Area,
    frame_size: u32,
    free: Vec<u64>,
    /// The first socket reuses the UMEM's own fd; every later one (another device or queue)
    /// is a new socket bound with XDP_SHARED_UMEM.
    umem_fd_taken: std::cell::Cell<bool>,
}

/// `xdpilone::Umem` has no Debug; wrap it.
struct UmemHandle(Umem);

impl std::fmt::Debug for UmemHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Umem")
    }
}

impl Frames {
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
        let umem =
            unsafe { Umem::new(config, region) }.map_err(|e| XskError::Umem(format!("{e}")))?;
        let free = (0..u64::from(spec.frames))
            .map(|i| i * u64::from(spec.frame_size))
            .collect();
        Ok(Self {
            umem: UmemHandle(umem),
            area,
            frame_size: spec.frame_size,
            free,
            umem_fd_taken: std::cell::Cell::new(false),
        })
    }

    pub fn frame_size(&self) -> u32 {
        self.frame_size
    }

    /// Frames the worker owns and has not handed to the kernel.
    pub fn free_count(&self) -> usize {
        self.free.len()
    }

    /// Takes a free frame (its UMEM address), if any.
    pub fn alloc(&mut self) -> Option<u64> {
        self.free.pop()
    }

    /// Returns a frame the worker owns to the free list.
    pub fn release(&mut self, addr: u64) {
        // Align to the frame start: RX descriptors may point past headroom.
        let fs = u64::from(self.frame_size);
        self.free.push(addr - addr % fs);
    }

    /// The bytes of a frame the worker owns (one it allocated or received), `len` long from
    /// `addr`. `None` if the range is outside the UMEM or crosses the frame's end.
    pub fn bytes_mut(&mut self, addr: u64, len: usize) -> Option<&mut [u8]> {
        let fs = u64::from(self.frame_size);
        let start = usize::try_from(addr).ok()?;
        let end = start.checked_add(len)?;
        if end > self.area.len || (addr % fs) + len as u64 > fs {
            return None;
        }
        // SAFETY: the range lies inside the mapping and inside one frame. By the module's
        // ownership rule only frames the worker owns are passed here, so the kernel is not
        // writing them, and `&mut self` prevents a second live slice into the UMEM.
        Some(unsafe { std::slice::from_raw_parts_mut(self.area.ptr.as_ptr().add(start), len) })
    }
}

impl Frames {
    /// The whole chunk holding `addr`, and `addr`'s offset in it. The frame must be the
    /// worker's (see the module's ownership rule).
    pub fn chunk_mut(&mut self, addr: u64) -> Option<(u64, usize, &mut [u8])> {
        let fs = u64::from(self.frame_size);
        let base = addr - addr % fs;
        let offset = usize::try_from(addr % fs).ok()?;
        let len = self.frame_size as usize;
        self.bytes_mut(base, len).map(|c| (base, offset, c))
    }
}

/// At most this many chunks are lent out at once by [`Frames::with_chunks`] (one batch).
pub const MAX_BATCH: usize = 64;

impl Frames {
    /// Lends the whole chunks holding `addrs` (at most [`MAX_BATCH`], each a frame the worker
    /// owns, no two in the same chunk) to `f` at once, so that a batch can be sealed or opened
    /// in one call. `None` if an address is out of range, two share a chunk, or there are too
    /// many.
    pub fn with_chunks<R>(
        &mut self,
        addrs: &[u64],
        f: impl FnOnce(&mut [&mut [u8]]) -> R,
    ) -> Option<R> {
        let fs = u64::from(self.frame_size);
        if addrs.len() > MAX_BATCH {
            return None;
        }
        let mut bases = arrayvec::ArrayVec::<u64, MAX_BATCH>::new();
        for &a in addrs {
            let base = a - a % fs;
            if base + fs > self.area.len as u64 || bases.contains(&base) {
                return None;
            }
            bases.push(base);
        }
        let mut chunks = arrayvec::ArrayVec::<&mut [u8], MAX_BATCH>::new();
        for &base in &bases {
            // SAFETY: every chunk lies inside the mapping (checked above), no two overlap
            // (distinct chunk bases, checked above), and they are frames the worker owns (the
            // caller's contract, as for `bytes_mut`), so the kernel is not writing them. The
            // slices live only for this call, during which `&mut self` keeps every other
            // access to the UMEM out.
            chunks.push(unsafe {
                std::slice::from_raw_parts_mut(
                    self.area.ptr.as_ptr().add(base as usize),
                    self.frame_size as usize,
                )
            });
        }
        Some(f(&mut chunks))
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
pub struct Port {
    device: DeviceQueue,
    rx: RingRx,
    tx: RingTx,
    _user: User,
    interface: String,
    queue: u32,
}

impl std::fmt::Debug for Port {
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

impl Port {
    /// Creates a socket on `interface` queue `queue`, sharing `frames`' UMEM, and binds it.
    pub fn bind(
        frames: &Frames,
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
        let umem = &frames.umem.0;
        let shared = frames.umem_fd_taken.replace(true);
        let socket = if shared {
            Socket::new(&info)
        } else {
            Socket::with_shared(&info, umem)
        }
        .map_err(err("creating AF_XDP socket"))?;
        let device = umem
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
            .rx_tx(&socket, &config)
            .map_err(err("creating RX/TX rings"))?;
        let rx = user.map_rx().map_err(err("mapping RX ring"))?;
        let tx = user.map_tx().map_err(err("mapping TX ring"))?;
        umem.bind(&user).map_err(err("binding"))?;
        Ok(Self {
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

    /// Gives up to `max` free frames to the kernel for receiving. Returns how many.
    pub fn fill(&mut self, frames: &mut Frames, max: u32) -> u32 {
        let mut writer = self.device.fill(max);
        let want = writer.capacity().min(max) as usize;
        let take = want.min(frames.free.len());
        let start = frames.free.len() - take;
        let n = writer.insert(frames.free[start..].iter().copied());
        writer.commit();
        drop(writer);
        frames.free.truncate(frames.free.len() - n as usize);
        if self.device.needs_wakeup() {
            self.device.wake();
        }
        n
    }

    /// Takes received frames, up to `out.len()`. Ownership of each moves to the worker.
    pub fn recv(&mut self, out: &mut [XdpDesc]) -> usize {
        let mut reader = self
            .rx
            .receive(u32::try_from(out.len()).unwrap_or(u32::MAX));
        let mut n = 0;
        while n < out.len() {
            match reader.read() {
                Some(d) => {
                    out[n] = d;
                    n += 1;
                }
                None => break,
            }
        }
        reader.release();
        n
    }

    /// Queues frames for transmission; ownership of each queued frame moves to the kernel.
    /// Returns how many were queued (the rest stay the caller's).
    pub fn send(&mut self, descs: &[XdpDesc]) -> usize {
        let mut writer = self
            .tx
            .transmit(u32::try_from(descs.len()).unwrap_or(u32::MAX));
        let n = writer.insert(descs.iter().copied());
        writer.commit();
        drop(writer);
        if self.tx.needs_wakeup() {
            self.tx.wake();
        }
        n as usize
    }

    /// Takes back frames whose transmission completed. Returns how many.
    pub fn complete(&mut self, frames: &mut Frames, max: u32) -> u32 {
        let mut reader = self.device.complete(max);
        let mut n = 0;
        while let Some(addr) = reader.read() {
            frames.release(addr);
            n += 1;
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

/// A descriptor for `len` bytes at `addr`.
pub fn desc(addr: u64, len: u32) -> XdpDesc {
    XdpDesc {
        addr,
        len,
        options: 0,
    }
}
