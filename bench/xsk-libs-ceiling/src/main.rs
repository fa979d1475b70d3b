//! `xsk-libs-ceiling`: `wgxdp-ceiling` (bench/src/bin/wgxdp-ceiling.rs) written twice over the
//! bare ring libraries, for issue 14 item 4 ("measure xsk-rs against xdpilone on the same
//! worker loop"): `--lib xsk-rs` takes its UMEM, sockets and rings from xsk-rs (libxdp's ring
//! code, through FFI), `--lib xdpilone` from xdpilone (what wgxdp's `dataplane::xsk` wraps),
//! one loop shape for both. Both use wgxdp's XDP program and steering map, the UMEM and ring
//! sizes of `dataplane::xsk::UmemSpec::default()`, copy mode with need-wakeup, and per turn:
//! take the LAN socket's completions back and top up the WAN fill ring; receive up to 64;
//! rewrite the Ethernet addresses; transmit them on LAN and `sendto` once per 32 (the copy-mode
//! kernel's batch); wait 1 ms in poll when nothing came. (`wgxdp-ceiling` runs the same turn
//! through wgxdp's link layer: owned frames, a pool, and fill rings on both sockets.)
//!
//! ```text
//! xsk-libs-ceiling --lib xsk-rs|xdpilone --wan IF --lan IF --to-mac MAC [--port 51820] [--seconds S]
//! ```

use bench::ceiling::{arg, Ceiling};
use dataplane::xdp::Role;
use std::num::NonZeroU32;
use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::ptr::NonNull;
use std::time::Instant;
use xsk_rs::config::{
    BindFlags, FrameSize, Interface, LibxdpFlags, QueueSize, SocketConfig, UmemConfig,
};
use xsk_rs::{FrameDesc, Socket, Umem};

/// As `dataplane::xsk::UmemSpec::default()`.
const FRAMES: u32 = 4096;
const FRAME_SIZE: u32 = 2048;
const RING: u32 = 2048;
/// The worker's batch.
const BATCH: usize = 64;
/// Descriptors the kernel's copy-mode transmit takes per `sendto` (`TX_BATCH_SIZE`); wgxdp's
/// `Port::kick` repeats its `sendto` while the ring drains, about once per 32 frames.
const KERNEL_TX_BATCH: usize = 32;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    Ceiling::report("xsk-libs-ceiling", run(&args))
}

fn run(args: &[String]) -> Result<u64, String> {
    let lib = arg(args, "--lib").ok_or("--lib xsk-rs|xdpilone is required")?;
    if lib != "xsk-rs" && lib != "xdpilone" {
        return Err(format!("--lib {lib}: xsk-rs or xdpilone"));
    }
    let mut c = Ceiling::from_args(args)?;
    if lib == "xsk-rs" {
        with_xsk_rs(&mut c)
    } else {
        with_xdpilone(&mut c)
    }
}

fn with_xsk_rs(s: &mut Ceiling) -> Result<u64, String> {
    let e = |what: &'static str| move |err: String| format!("{what}: {err}");
    let umem_config = UmemConfig::builder()
        .frame_size(FrameSize::new(FRAME_SIZE).map_err(|x| e("frame size")(x.to_string()))?)
        .fill_queue_size(QueueSize::new(RING).map_err(|x| e("fill ring")(x.to_string()))?)
        .comp_queue_size(QueueSize::new(RING).map_err(|x| e("completion ring")(x.to_string()))?)
        .build()
        .map_err(|x| e("UMEM config")(x.to_string()))?;
    let frames = NonZeroU32::new(FRAMES).ok_or("no frames")?;
    let (umem, descs) =
        Umem::new(umem_config, frames, false).map_err(|x| e("UMEM")(x.to_string()))?;
    let ring = QueueSize::new(RING).map_err(|x| e("ring")(x.to_string()))?;
    let socket_config = SocketConfig::builder()
        .rx_queue_size(ring)
        .tx_queue_size(ring)
        // wgxdp's program steers; libxdp must not load its own.
        .libxdp_flags(LibxdpFlags::XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD)
        .bind_flags(BindFlags::XDP_COPY | BindFlags::XDP_USE_NEED_WAKEUP)
        .build();
    let wan_name: Interface = s.wan.parse().map_err(|_| "--wan: not an interface name")?;
    let lan_name: Interface = s.lan.parse().map_err(|_| "--lan: not an interface name")?;
    // SAFETY: the sockets and their rings are used only with descriptors of this UMEM, which
    // outlives them (both live until the end of this function, the UMEM declared first).
    let (_wan_tx, mut wan_rx, wan_rings) =
        unsafe { Socket::new(socket_config, &umem, &wan_name, 0) }
            .map_err(|x| e("WAN socket")(x.to_string()))?;
    // SAFETY: as above; the second socket shares the UMEM (libxdp binds it with
    // XDP_SHARED_UMEM and its own fill and completion rings).
    let (mut lan_tx, _lan_rx, lan_rings) =
        unsafe { Socket::new(socket_config, &umem, &lan_name, 0) }
            .map_err(|x| e("LAN socket")(x.to_string()))?;
    let (mut wan_fill, _wan_comp) = wan_rings.ok_or("no WAN fill/completion rings")?;
    let (_lan_fill, mut lan_comp) = lan_rings.ok_or("no LAN fill/completion rings")?;
    s.steering
        .set_socket(Role::Wan, 0, wan_rx.fd().as_raw_fd())
        .map_err(|x| x.to_string())?;

    // Free frames; the WAN fill ring takes as many as it holds.
    let mut free: Vec<FrameDesc> = descs;
    let mut batch = [FrameDesc::default(); BATCH];
    let mut done = [FrameDesc::default(); 2 * BATCH];
    let mut forwarded = 0u64;
    while Instant::now() < s.end {
        // Completions back to the free frames, free frames into the fill ring as far as it has
        // room. libxdp reserves all or nothing, so the frames go in batches, halved when the
        // ring refuses one, down to single frames: as full a top-up as xdpilone's, which takes
        // what fits.
        // SAFETY: every descriptor here is of this UMEM's frames, each in one place at a time
        // (free, a ring, or `batch`): `produce` takes all of the slice it is given or none of
        // it, so the frames it took are exactly the `given` ones cut from the end of `free`.
        unsafe {
            let n = lan_comp.consume(&mut done);
            free.extend_from_slice(&done[..n]);
            let mut k = free.len().min(BATCH);
            while k > 0 {
                let given = wan_fill.produce(&free[free.len() - k..]);
                free.truncate(free.len() - given);
                if given == 0 {
                    k /= 2;
                } else {
                    k = k.min(free.len());
                }
            }
            if wan_fill.needs_wakeup() {
                // Errors (EAGAIN and the like) are the kernel's "not now": as wgxdp's `wake`.
                let _ = wan_fill.wakeup(wan_rx.fd_mut(), 0);
            }
        }
        // SAFETY: as above.
        let n = unsafe { wan_rx.consume(&mut batch) };
        for d in &mut batch[..n] {
            // SAFETY: a received frame of this UMEM, ours until it is transmitted.
            s.readdress(unsafe { umem.data_mut(d) }.contents_mut());
        }
        // SAFETY: as above; what the TX ring takes is the kernel's until it completes. All or
        // nothing again: with too little room for the batch, frame by frame, as xdpilone
        // inserts what fits.
        let mut sent = unsafe { lan_tx.produce(&batch[..n]) };
        if sent == 0 {
            // SAFETY: as above, one descriptor at a time, in order.
            while sent < n && unsafe { lan_tx.produce_one(&batch[sent]) } == 1 {
                sent += 1;
            }
        }
        for _ in 0..sent.div_ceil(KERNEL_TX_BATCH) {
            let _ = lan_tx.wakeup();
        }
        forwarded += sent as u64;
        // What the TX ring refused is dropped: back to the free frames.
        free.extend_from_slice(&batch[sent..n]);
        if n == 0 {
            let _ = wan_rx.poll(1);
        }
    }
    Ok(forwarded)
}

/// Anonymous page-aligned memory for xdpilone's UMEM, unmapped on drop.
struct Area {
    ptr: NonNull<u8>,
    len: usize,
}

impl Area {
    fn new(len: usize) -> Result<Self, String> {
        // SAFETY: a fresh private anonymous mapping; no existing memory is touched.
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
            return Err(format!("mmap: {}", std::io::Error::last_os_error()));
        }
        let ptr = NonNull::new(ptr.cast::<u8>()).ok_or("mmap gave a null mapping")?;
        Ok(Self { ptr, len })
    }
}

impl Drop for Area {
    fn drop(&mut self) {
        // SAFETY: exactly the mapping made in `new`; the UMEM on it is gone (declared after
        // the area in `with_xdpilone`, so dropped first).
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

fn with_xdpilone(s: &mut Ceiling) -> Result<u64, String> {
    use xdpilone::{IfInfo, Socket, SocketConfig, UmemConfig};
    let e = |what: &'static str| move |err: xdpilone::Errno| format!("{what}: {err}");
    let len = (FRAMES * FRAME_SIZE) as usize;
    let area = Area::new(len)?;
    let config = UmemConfig {
        fill_size: RING,
        complete_size: RING,
        frame_size: FRAME_SIZE,
        headroom: 0,
        flags: 0,
    };
    // SAFETY: a page-aligned mapping of exactly `len` bytes that outlives the UMEM.
    let umem = unsafe { xdpilone::Umem::new(config, NonNull::slice_from_raw_parts(area.ptr, len)) }
        .map_err(e("UMEM"))?;
    let info = |name: &str| -> Result<IfInfo, String> {
        let mut info = IfInfo::invalid();
        let c = std::ffi::CString::new(name).map_err(|_| "interface name has a NUL")?;
        info.from_name(&c).map_err(e("interface"))?;
        info.set_queue(0);
        Ok(info)
    };
    let ring = NonZeroU32::new(RING);
    // The first socket is the UMEM's own fd; the second shares it (XDP_SHARED_UMEM), and
    // inherits copy mode and need-wakeup: the kernel refuses those flags on it.
    let wan_socket = Socket::with_shared(&info(&s.wan)?, &umem).map_err(e("WAN socket"))?;
    let mut wan_dev = umem.fq_cq(&wan_socket).map_err(e("WAN fill/completion"))?;
    let wan_user = umem
        .rx_tx(
            &wan_socket,
            &SocketConfig {
                rx_size: ring,
                tx_size: ring,
                bind_flags: SocketConfig::XDP_BIND_NEED_WAKEUP | SocketConfig::XDP_BIND_COPY,
            },
        )
        .map_err(e("WAN rings"))?;
    let mut wan_rx = wan_user.map_rx().map_err(e("WAN RX ring"))?;
    umem.bind(&wan_user).map_err(e("WAN bind"))?;
    let lan_socket = Socket::new(&info(&s.lan)?).map_err(e("LAN socket"))?;
    let mut lan_dev = umem.fq_cq(&lan_socket).map_err(e("LAN fill/completion"))?;
    let lan_user = umem
        .rx_tx(
            &lan_socket,
            &SocketConfig {
                rx_size: ring,
                tx_size: ring,
                bind_flags: 0,
            },
        )
        .map_err(e("LAN rings"))?;
    let mut lan_tx = lan_user.map_tx().map_err(e("LAN TX ring"))?;
    umem.bind(&lan_user).map_err(e("LAN bind"))?;
    s.steering
        .set_socket(Role::Wan, 0, wan_rx.as_raw_fd())
        .map_err(|x| x.to_string())?;

    // Free frames, by their chunk's address.
    let mut free: Vec<u64> = (0..FRAMES).map(|i| u64::from(i * FRAME_SIZE)).collect();
    let mut batch = [xdpilone::xdp::XdpDesc {
        addr: 0,
        len: 0,
        options: 0,
    }; BATCH];
    let mut forwarded = 0u64;
    while Instant::now() < s.end {
        {
            let mut done = lan_dev.complete(2 * BATCH as u32);
            while let Some(a) = done.read() {
                free.push(a);
            }
            done.release();
        }
        // Twice at most, as wgxdp's `Port::fill`: xdpilone re-reads the kernel's consumer head
        // only once its cached free count is used up, so a first reservation can be short of
        // the real room.
        for _ in 0..2 {
            let mut fill = wan_dev.fill(RING);
            let room = (fill.capacity() as usize).min(free.len());
            if room == 0 {
                break;
            }
            let from = free.len() - room;
            let given = fill.insert(free[from..].iter().copied()) as usize;
            fill.commit();
            drop(fill);
            // The first `given` of those went in.
            free.drain(from..from + given);
        }
        if wan_dev.needs_wakeup() {
            wan_dev.wake();
        }
        let mut n = 0;
        {
            let mut rx = wan_rx.receive(BATCH as u32);
            while let Some(d) = rx.read() {
                batch[n] = d;
                n += 1;
            }
            rx.release();
        }
        for d in &batch[..n] {
            let (at, len) = (d.addr as usize, d.len as usize);
            if at + len <= area.len {
                // SAFETY: a received frame: `len` bytes at `addr` inside the UMEM, ours until
                // it is transmitted.
                s.readdress(unsafe {
                    std::slice::from_raw_parts_mut(area.ptr.as_ptr().add(at), len)
                });
            }
        }
        // Twice at most, for the same reason (wgxdp's `Port::send`).
        let mut sent = 0;
        for _ in 0..2 {
            if sent == n {
                break;
            }
            let mut tx = lan_tx.transmit((n - sent) as u32);
            sent += tx.insert(batch[sent..n].iter().copied()) as usize;
            tx.commit();
        }
        for _ in 0..sent.div_ceil(KERNEL_TX_BATCH) {
            lan_tx.wake();
        }
        forwarded += sent as u64;
        free.extend(
            batch[sent..n]
                .iter()
                .map(|d| d.addr & !u64::from(FRAME_SIZE - 1)),
        );
        if n == 0 {
            dataplane::xsk::wait_readable(&[wan_rx.as_raw_fd()], 1);
        }
    }
    drop(lan_dev);
    drop(wan_dev);
    Ok(forwarded)
}
