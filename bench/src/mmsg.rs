//! `sendmmsg(2)` and `recvmmsg(2)`: many datagrams per system call. The only `unsafe` in the
//! crate; both take and return safe slices.

use std::io;
use std::net::{SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;

/// Most datagrams per call (the kernel's UIO_MAXIOV is 1024; 64 is where returns flatten).
pub const BATCH: usize = 64;

/// Sends `msgs` (at most [`BATCH`]) on a connected socket; returns how many were sent.
pub fn send(socket: &UdpSocket, msgs: &[&[u8]]) -> io::Result<usize> {
    let n = msgs.len().min(BATCH);
    let mut iov = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; BATCH];
    // SAFETY: mmsghdr is plain data for which all-zero is a valid value (no name, no control).
    let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
    for k in 0..n {
        iov[k] = libc::iovec {
            iov_base: msgs[k].as_ptr().cast_mut().cast(),
            iov_len: msgs[k].len(),
        };
    }
    for k in 0..n {
        hdrs[k].msg_hdr.msg_iov = &mut iov[k];
        hdrs[k].msg_hdr.msg_iovlen = 1;
    }
    // SAFETY: `hdrs[..n]` each point at one iovec in `iov`, which points into a borrowed
    // `msgs[k]` alive for the call; the kernel only reads them (sendmmsg does not write
    // through iov_base). `n <= BATCH` bounds the array.
    let sent =
        unsafe { libc::sendmmsg(socket.as_raw_fd(), hdrs.as_mut_ptr(), n as libc::c_uint, 0) };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(sent as usize)
}

/// Sends `msgs[k].0` to `msgs[k].1` (at most [`BATCH`]) on an unconnected IPv4 socket;
/// returns how many were sent.
pub fn send_to(socket: &UdpSocket, msgs: &[(&[u8], SocketAddrV4)]) -> io::Result<usize> {
    let n = msgs.len().min(BATCH);
    let mut iov = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; BATCH];
    // SAFETY: sockaddr_in and mmsghdr are plain data for which all-zero is valid.
    let mut names: [libc::sockaddr_in; BATCH] = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
    for (k, (bytes, dst)) in msgs.iter().take(n).enumerate() {
        iov[k] = libc::iovec {
            iov_base: bytes.as_ptr().cast_mut().cast(),
            iov_len: bytes.len(),
        };
        names[k].sin_family = libc::AF_INET as libc::sa_family_t;
        names[k].sin_port = dst.port().to_be();
        names[k].sin_addr.s_addr = u32::from(*dst.ip()).to_be();
    }
    for k in 0..n {
        hdrs[k].msg_hdr.msg_iov = &mut iov[k];
        hdrs[k].msg_hdr.msg_iovlen = 1;
        hdrs[k].msg_hdr.msg_name = (&mut names[k] as *mut libc::sockaddr_in).cast();
        hdrs[k].msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    }
    // SAFETY: each header points at one iovec (into a borrowed `msgs[k].0`, only read) and one
    // sockaddr_in of the right length, all alive for the call; `n <= BATCH`.
    let sent =
        unsafe { libc::sendmmsg(socket.as_raw_fd(), hdrs.as_mut_ptr(), n as libc::c_uint, 0) };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(sent as usize)
}

/// Receives up to `bufs.len()` (at most [`BATCH`]) datagrams, blocking for the first, into
/// `bufs`; writes each one's length to `lens` and returns the count.
pub fn recv(socket: &UdpSocket, bufs: &mut [Vec<u8>], lens: &mut [usize]) -> io::Result<usize> {
    recv_from(socket, bufs, lens, &mut [])
}

/// [`recv`], also writing each IPv4 sender to `from` (as far as `from` reaches; a sender of
/// another family is written as 0.0.0.0:0).
pub fn recv_from(
    socket: &UdpSocket,
    bufs: &mut [Vec<u8>],
    lens: &mut [usize],
    from: &mut [SocketAddrV4],
) -> io::Result<usize> {
    let n = bufs.len().min(lens.len()).min(BATCH);
    let mut iov = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; BATCH];
    // SAFETY: all-zero is a valid mmsghdr and sockaddr_in (see `send`, `send_to`).
    let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut names: [libc::sockaddr_in; BATCH] = unsafe { std::mem::zeroed() };
    for (k, b) in bufs.iter_mut().take(n).enumerate() {
        iov[k] = libc::iovec {
            iov_base: b.as_mut_ptr().cast(),
            iov_len: b.len(),
        };
    }
    for k in 0..n {
        hdrs[k].msg_hdr.msg_iov = &mut iov[k];
        hdrs[k].msg_hdr.msg_iovlen = 1;
        hdrs[k].msg_hdr.msg_name = (&mut names[k] as *mut libc::sockaddr_in).cast();
        hdrs[k].msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    }
    // SAFETY: each header points at one iovec covering a distinct, exclusively borrowed
    // buffer in `bufs` that outlives the call (the kernel writes at most iov_len bytes there)
    // and at one sockaddr_in of the stated length in `names`, also alive for the call.
    // A null timeout blocks until the first datagram (or the socket's SO_RCVTIMEO).
    let got = unsafe {
        libc::recvmmsg(
            socket.as_raw_fd(),
            hdrs.as_mut_ptr(),
            n as libc::c_uint,
            libc::MSG_WAITFORONE,
            std::ptr::null_mut(),
        )
    };
    if got < 0 {
        return Err(io::Error::last_os_error());
    }
    let got = got as usize;
    for k in 0..got {
        lens[k] = hdrs[k].msg_len as usize;
        if let Some(f) = from.get_mut(k) {
            let a = &names[k];
            *f = if a.sin_family == libc::AF_INET as libc::sa_family_t {
                SocketAddrV4::new(
                    u32::from_be(a.sin_addr.s_addr).into(),
                    u16::from_be(a.sin_port),
                )
            } else {
                SocketAddrV4::new(std::net::Ipv4Addr::UNSPECIFIED, 0)
            };
        }
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn loopback_batch() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        tx.connect(rx.local_addr().unwrap()).unwrap();
        let payloads: Vec<Vec<u8>> = (0..10u8).map(|i| vec![i; usize::from(i) + 1]).collect();
        let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
        assert_eq!(send(&tx, &refs).unwrap(), 10);
        let mut bufs = vec![vec![0u8; 64]; BATCH];
        let mut lens = [0usize; BATCH];
        let mut seen = 0;
        let to = match rx.local_addr().unwrap() {
            std::net::SocketAddr::V4(a) => a,
            std::net::SocketAddr::V6(_) => unreachable!(),
        };
        let unconnected = UdpSocket::bind("127.0.0.1:0").unwrap();
        let with_names: Vec<(&[u8], SocketAddrV4)> = refs.iter().map(|&p| (p, to)).collect();
        assert_eq!(send_to(&unconnected, &with_names).unwrap(), 10);
        while seen < 20 {
            let n = recv(&rx, &mut bufs, &mut lens).unwrap();
            for k in 0..n {
                assert_eq!(&bufs[k][..lens[k]], &payloads[seen % 10][..]);
                seen += 1;
            }
        }
    }
}
