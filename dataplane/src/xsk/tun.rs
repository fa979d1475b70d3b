//! One queue of the gateway's own interface: a multi-queue TUN device (IFF_MULTI_QUEUE), one
//! queue per worker, so that each worker reads and writes its own file descriptor and no two
//! workers share a lock or a queue. The device lives as long as one queue is open: it goes
//! when the data path exits, as a wg-quick interface goes with `ip link delete`.
//!
//! A TUN device moves one packet per `read`/`write`: a syscall per packet by nature. The
//! worker reads at most a batch per round and only when it has a local side.
//!
//! The `ioctl` that attaches a queue is the one `unsafe` block here, beside the AF_XDP code
//! whose kernel ABI it shares (design §7.4).

use crate::frame::{Frame, Pool};
use crate::packet::{ETH_LEN, HEADROOM};
use std::ffi::CStr;
use std::os::fd::{AsFd as _, AsRawFd as _, OwnedFd, RawFd};

#[derive(Debug, thiserror::Error)]
pub enum TunError {
    #[error("TUN device name {0:?}: must be 1-15 bytes, no NUL")]
    Name(String),
    #[error("opening /dev/net/tun: {0}")]
    Open(std::io::Error),
    #[error("attaching a queue of TUN device {name}: {source}")]
    Attach {
        name: String,
        source: std::io::Error,
    },
}

/// One queue of a multi-queue TUN device (no packet-information header: each read is one IP
/// packet, each write must be one). Non-blocking.
#[derive(Debug)]
pub struct TunQueue {
    fd: OwnedFd,
}

impl TunQueue {
    /// Opens one more queue of TUN device `name`, creating the device with the first queue.
    /// A device of that name that exists already is refused by the kernel unless it is a
    /// multi-queue TUN device this process may attach to.
    pub fn open(name: &str) -> Result<Self, TunError> {
        let bytes = name.as_bytes();
        if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ || bytes.contains(&0) {
            return Err(TunError::Name(name.to_string()));
        }
        let path = c"/dev/net/tun";
        let fd = open_rdwr(path).map_err(TunError::Open)?;
        // SAFETY: `ifreq` is plain old data (bytes and integers in a union); all-zero is a
        // valid value of it, and the kernel reads it as such.
        let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
        for (d, s) in ifr.ifr_name.iter_mut().zip(bytes) {
            *d = *s as libc::c_char;
        }
        ifr.ifr_ifru.ifru_flags = (libc::IFF_TUN | libc::IFF_NO_PI | libc::IFF_MULTI_QUEUE)
            .try_into()
            .unwrap_or_default();
        // SAFETY: TUNSETIFF reads (and may write back the name into) one `struct ifreq`, which
        // `ifr` is, alive and exclusively borrowed for the call; `fd` is an open descriptor of
        // /dev/net/tun owned by this function.
        let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETIFF, &mut ifr) };
        if r < 0 {
            return Err(TunError::Attach {
                name: name.to_string(),
                source: std::io::Error::last_os_error(),
            });
        }
        Ok(Self { fd })
    }

    /// Reads one packet into `buf`; `WouldBlock` when none is waiting.
    pub fn recv(&self, buf: &mut [u8]) -> std::io::Result<usize> {
        nix::unistd::read(self.fd.as_fd(), buf).map_err(std::io::Error::from)
    }

    /// Writes one IP packet to the kernel, which receives it as arriving on the device.
    pub fn send(&self, packet: &[u8]) -> std::io::Result<usize> {
        nix::unistd::write(self.fd.as_fd(), packet).map_err(std::io::Error::from)
    }

    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// A packet from the device in a frame of `pool`, behind an Ethernet header with zero
    /// MACs (the worker parses plaintext as Ethernet frames); `None` when none is waiting or
    /// the pool is empty.
    pub fn recv_frame<'a>(&self, pool: &mut Pool<'a>) -> Option<Frame<'a>> {
        let mut f = pool.alloc()?;
        let at = HEADROOM + ETH_LEN;
        let n = match f.chunk_mut().get_mut(at..).map(|b| self.recv(b)) {
            Some(Ok(n)) if n > 0 => n,
            _ => {
                pool.release(f);
                return None;
            }
        };
        if !crate::packet::dress_tun_packet(&mut f, n) {
            pool.release(f);
            return None;
        }
        Some(f)
    }
}

/// `open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC)` as an owned descriptor.
fn open_rdwr(path: &CStr) -> std::io::Result<OwnedFd> {
    let flags =
        nix::fcntl::OFlag::O_RDWR | nix::fcntl::OFlag::O_NONBLOCK | nix::fcntl::OFlag::O_CLOEXEC;
    Ok(nix::fcntl::open(
        path,
        flags,
        nix::sys::stat::Mode::empty(),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_kernel_cannot_take_are_refused_before_any_syscall() {
        for bad in ["", "sixteen-chars-xx", "a\0b"] {
            assert!(
                matches!(TunQueue::open(bad), Err(TunError::Name(_))),
                "{bad:?}"
            );
        }
    }
}
