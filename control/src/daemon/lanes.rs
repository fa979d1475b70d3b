//! The handshake socket, and its cookie lane.
//!
//! Under a flood the kernel drops whatever overflows control's socket, blindly: a legitimate
//! initiator's retry that carries the cookie control just gave it is as likely to be lost as
//! a spoofed message, and then it waits the protocol's 5 s before the next. That retry is the
//! one message a spoofing flood cannot send (the cookie went to the spoofed address), and it
//! carries a mac2 that is not zero. So it gets a queue of its own: a second socket bound to
//! the same port, in one SO_REUSEPORT group with the first, and a classic BPF program the
//! kernel runs on each datagram to pick the socket. Handshake messages with a non-zero mac2
//! go to the lane, everything else to the main socket; control reads the lane first.
//!
//! A flood that fills mac2 with garbage lands in the lane and costs what it cost before the
//! lane existed (it is checked and answered with a cookie reply either way), and the main
//! socket stays free for initiations without a cookie. Nothing changes on the wire.
//!
//! The kernel runs the program on the UDP payload (it pulls the UDP header first,
//! net/core/sock_reuseport.c) and takes its result as an index into the group, in the order
//! the sockets joined. A load past the datagram's end makes the program return 0 (the main
//! socket), and an index past the group's end makes the kernel pick by hash, which with the
//! lane gone is the main socket: whatever happens, the main socket gets the datagram.
//!
//! The group is open to any later socket of the same user with SO_REUSEPORT, so a second
//! gateway on the same port would bind without EADDRINUSE. Binding checks with a plain socket
//! first, which does fail on a taken port; only two binds in the same instant slip past it.

use super::ControlError;
use nix::libc::{sock_filter, sock_fprog};
use nix::sys::socket::{setsockopt, sockopt};
use socket2::{Domain, Protocol, Socket, Type};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsFd;

/// Receive buffer of each handshake socket: room for several thousand handshake messages, so
/// that a backlog of HANDSHAKE_BATCH can build up at all (the default holds about 200).
const HANDSHAKE_RCVBUF: usize = 8 << 20;

/// The sockets bound to the listen port.
#[derive(Debug)]
pub(crate) struct Bound {
    /// Everything but cookie-carrying handshake messages; replies are sent from it.
    pub main: UdpSocket,
    /// Handshake messages with a non-zero mac2; `None` where the kernel refused the program.
    pub lane: Option<UdpSocket>,
}

/// Binds the listen port (`0`: any free one). `lane`: also bind the cookie lane (control
/// reads the sockets itself; a backend fed from the main socket must not lose datagrams to a
/// socket nobody reads).
pub(crate) fn bind(port: u16, lane: bool) -> Result<Bound, ControlError> {
    let err = |source| ControlError::Bind { port, source };
    if port != 0 && lane {
        // EADDRINUSE where any socket holds the port, as a bind without SO_REUSEPORT would.
        drop(bound(port, false).map_err(err)?);
    }
    let main = socket(port, lane).map_err(err)?;
    if !lane {
        return Ok(Bound { main, lane: None });
    }
    let port = main.local_addr().map_err(err)?.port();
    let lane = match socket(port, true).and_then(|l| attach(&main).map(|()| l)) {
        Ok(l) => Some(l),
        Err(e) => {
            tracing::warn!(
                port,
                error = %e,
                "no cookie lane: cookie-carrying handshakes share the socket with a flood"
            );
            None
        }
    };
    Ok(Bound { main, lane })
}

/// A dual-stack UDP socket bound to `port`.
fn bound(port: u16, reuse_port: bool) -> std::io::Result<Socket> {
    let s = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_only_v6(false)?;
    if reuse_port {
        s.set_reuse_port(true)?;
    }
    s.bind(&SocketAddr::from(([0u16; 8], port)).into())?;
    Ok(s)
}

/// A handshake socket on `port`: non-blocking (control polls it), with a large receive
/// buffer.
fn socket(port: u16, reuse_port: bool) -> std::io::Result<UdpSocket> {
    let s = bound(port, reuse_port)?;
    s.set_nonblocking(true)?;
    let sock: UdpSocket = s.into();
    // SO_RCVBUFFORCE (CAP_NET_ADMIN) goes past net.core.rmem_max; otherwise take what
    // SO_RCVBUF gives.
    if setsockopt(&sock, sockopt::RcvBufForce, &HANDSHAKE_RCVBUF).is_err() {
        let _ = setsockopt(&sock, sockopt::RcvBuf, &HANDSHAKE_RCVBUF);
    }
    Ok(sock)
}

/// Classic BPF (linux/filter.h, bpf_common.h) opcodes the program uses.
mod op {
    pub const LD_W_IND: u16 = 0x40; // A = word at X + k
    pub const LD_B_ABS: u16 = 0x30; // A = byte at k
    pub const LD_W_LEN: u16 = 0x80; // A = datagram length
    pub const LDX_IMM: u16 = 0x01; // X = k
    pub const JEQ_K: u16 = 0x15; // A == k ? jt : jf (relative)
    pub const JA: u16 = 0x05; // jump k (relative)
    pub const RET_K: u16 = 0x06; // return k
}

const fn insn(code: u16, jt: u8, jf: u8, k: u32) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

/// The socket a datagram goes to: 1 (the lane) for an initiation or a response whose mac2,
/// its last 16 bytes, is not zero; 0 (main) for anything else.
const LANE: u32 = 1;
const MAIN: u32 = 0;
const PROGRAM: [sock_filter; 20] = {
    use op::*;
    use proto::messages::{INITIATION_LEN, RESPONSE_LEN};
    const MAC2: u32 = 16;
    [
        /* 0 */ insn(LD_W_LEN, 0, 0, 0),
        /* 1 */ insn(JEQ_K, 0, 4, INITIATION_LEN as u32), // else 6
        /* 2 */ insn(LD_B_ABS, 0, 0, 0),
        /* 3 */ insn(JEQ_K, 0, 14, 1), // type 1, else main
        /* 4 */ insn(LDX_IMM, 0, 0, INITIATION_LEN as u32 - MAC2),
        /* 5 */ insn(JA, 0, 0, 4), // to 10
        /* 6 */ insn(JEQ_K, 0, 11, RESPONSE_LEN as u32), // else main
        /* 7 */ insn(LD_B_ABS, 0, 0, 0),
        /* 8 */ insn(JEQ_K, 0, 9, 2), // type 2, else main
        /* 9 */ insn(LDX_IMM, 0, 0, RESPONSE_LEN as u32 - MAC2),
        /* 10 */ insn(LD_W_IND, 0, 0, 0),
        /* 11 */ insn(JEQ_K, 0, 7, 0), // non-zero: lane
        /* 12 */ insn(LD_W_IND, 0, 0, 4),
        /* 13 */ insn(JEQ_K, 0, 5, 0),
        /* 14 */ insn(LD_W_IND, 0, 0, 8),
        /* 15 */ insn(JEQ_K, 0, 3, 0),
        /* 16 */ insn(LD_W_IND, 0, 0, 12),
        /* 17 */ insn(JEQ_K, 0, 1, 0),
        /* 18 */ insn(RET_K, 0, 0, MAIN),
        /* 19 */ insn(RET_K, 0, 0, LANE),
    ]
};

/// Installs [`PROGRAM`] as the selector of `main`'s reuseport group.
fn attach(main: &impl AsFd) -> std::io::Result<()> {
    let mut program = PROGRAM;
    let prog = sock_fprog {
        len: program.len() as u16,
        filter: program.as_mut_ptr(),
    };
    setsockopt(main, sockopt::AttachReusePortCbpf, &prog)?;
    Ok(())
}

/// What [`PROGRAM`] returns for `datagram` (a UDP payload), by interpreting it as the kernel
/// does: the tests run this and the kernel's own verdict side by side.
#[cfg(test)]
fn run(datagram: &[u8]) -> u32 {
    let word = |at: usize| {
        datagram
            .get(at..at + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    let (mut a, mut x, mut pc) = (0u32, 0u32, 0usize);
    loop {
        let i = PROGRAM[pc];
        pc += 1;
        match i.code {
            op::LD_W_LEN => a = datagram.len() as u32,
            op::LD_W_IND | op::LD_B_ABS => {
                let at = i.k as usize
                    + if i.code == op::LD_W_IND {
                        x as usize
                    } else {
                        0
                    };
                let v = if i.code == op::LD_B_ABS {
                    datagram.get(at).map(|&b| u32::from(b))
                } else {
                    word(at)
                };
                // An out-of-range load ends the program with 0.
                let Some(v) = v else { return 0 };
                a = v;
            }
            op::LDX_IMM => x = i.k,
            op::JEQ_K => pc += usize::from(if a == i.k { i.jt } else { i.jf }),
            op::JA => pc += i.k as usize,
            op::RET_K => return i.k,
            c => panic!("opcode {c:#x} not interpreted"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::messages::{COOKIE_REPLY_LEN, INITIATION_LEN, RESPONSE_LEN};

    fn message(kind: u8, len: usize, mac2: Option<usize>) -> Vec<u8> {
        let mut m = vec![0xa5u8; len];
        m[0] = kind;
        m[1..4].fill(0);
        m[len - 16..].fill(0);
        if let Some(at) = mac2 {
            m[len - 16 + at] = 1;
        }
        m
    }

    /// Each of mac2's bytes alone sends a handshake message to the lane; zeros, other types,
    /// other lengths and short datagrams stay on the main socket.
    #[test]
    fn the_program_picks_the_lane_for_mac2_and_nothing_else() {
        for (kind, len) in [(1, INITIATION_LEN), (2, RESPONSE_LEN)] {
            assert_eq!(
                run(&message(kind, len, None)),
                MAIN,
                "type {kind} without mac2"
            );
            for at in 0..16 {
                assert_eq!(
                    run(&message(kind, len, Some(at))),
                    LANE,
                    "type {kind} byte {at}"
                );
            }
            // The other type's length, one byte more or less: main.
            let other = if kind == 1 {
                RESPONSE_LEN
            } else {
                INITIATION_LEN
            };
            for l in [len - 1, len + 1, other] {
                let mut m = message(kind, l, None);
                m[l - 1] = 1;
                assert_eq!(run(&m), MAIN, "type {kind}, {l} bytes");
            }
        }
        assert_eq!(run(&message(3, COOKIE_REPLY_LEN, Some(0))), MAIN);
        assert_eq!(run(&message(4, INITIATION_LEN, Some(0))), MAIN);
        assert_eq!(run(&[]), MAIN);
        assert_eq!(run(&[1]), MAIN);
    }

    /// The kernel runs the program: a cookie-carrying initiation sent to the port arrives on
    /// the lane, one without a cookie and a data message on the main socket. A taken port is
    /// refused as without the lane.
    #[test]
    fn the_kernel_sends_cookie_carrying_messages_to_the_lane() {
        let b = bind(0, true).unwrap();
        let lane = b.lane.as_ref().expect("the kernel takes the program");
        let port = b.main.local_addr().unwrap().port();
        let to = SocketAddr::from(([127, 0, 0, 1], port));
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let with = message(1, INITIATION_LEN, Some(15));
        let without = message(1, INITIATION_LEN, None);
        let data = message(4, 64, Some(3));
        for m in [&with, &without, &data] {
            tx.send_to(m, to).unwrap();
        }
        let read = |s: &UdpSocket, want: usize| {
            let mut got = Vec::new();
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
            let mut buf = [0u8; 256];
            while std::time::Instant::now() < deadline && got.len() < want {
                match s.recv(&mut buf) {
                    Ok(n) => got.push(buf[..n].to_vec()),
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(5)),
                }
            }
            got
        };
        assert_eq!(read(&b.main, 2), vec![without, data]);
        assert_eq!(read(lane, 1), vec![with]);

        let taken = bind(port, true).unwrap_err().to_string();
        assert!(taken.contains("in use"), "{taken}");
    }
}
