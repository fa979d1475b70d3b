//! Data messages sealed before the timed window: a round's worth of transport data messages
//! (whitepaper §5.4.6) spread round-robin over the sessions, each with the session's next
//! counter, so that what the generator times is sending, not sealing.
//!
//! A counter can be used once (the gateway's replay window rejects it again), so the pool is
//! refilled with fresh counters between rounds; it is sealed with ring through
//! [`proto::data::seal`], the reference implementation.

use crate::inner::{self, Tag};
use crate::sizes::Size;
use proto::data;
use proto::device::DEFAULT_MTU;
use proto::messages::DATA_OVERHEAD;
use std::net::SocketAddrV4;

/// One established session of one generated peer, as the initiator: what sealing needs.
#[derive(Clone)]
pub struct Session {
    pub key: [u8; 32],
    /// The gateway's index for this session (the data message's receiver field).
    pub receiver: u32,
    pub next_counter: u64,
    /// Our index for this session and its receiving key (the outbound direction opens).
    pub local_index: u32,
    pub rx_key: [u8; 32],
    /// The peer's tunnel address and the inner source port.
    pub src: SocketAddrV4,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("receiver", &self.receiver)
            .field("next_counter", &self.next_counter)
            .field("src", &self.src)
            .finish_non_exhaustive()
    }
}

/// Wire length of a data message carrying an inner packet of `inner` bytes.
pub fn message_len(inner: usize) -> usize {
    DATA_OVERHEAD + data::padded_len(inner, DEFAULT_MTU)
}

/// A contiguous buffer of sealed messages; `msgs[k]` is `(offset, len)` into `buf`.
#[derive(Debug)]
pub struct Pool {
    size: Size,
    buf: Vec<u8>,
    msgs: Vec<(usize, usize)>,
    inner_bytes: u64,
}

impl Pool {
    /// A pool of at most `max_bytes` of messages (at least one IMIX cycle).
    pub fn new(size: Size, max_bytes: usize) -> Pool {
        let mut msgs = Vec::new();
        let mut off = 0;
        let mut inner_bytes = 0u64;
        let mut k = 0;
        loop {
            let inner = usize::from(size.nth(k));
            let len = message_len(inner);
            if off + len > max_bytes && k >= crate::sizes::IMIX.len() {
                break;
            }
            msgs.push((off, len));
            inner_bytes += inner as u64;
            off += len;
            k += 1;
        }
        Pool {
            size,
            buf: vec![0u8; off],
            msgs,
            inner_bytes,
        }
    }

    pub fn len(&self) -> usize {
        self.msgs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.msgs.is_empty()
    }

    /// Sum of the inner packets' lengths (what the sink receives, as IP packets).
    pub fn inner_bytes(&self) -> u64 {
        self.inner_bytes
    }

    /// Seals round `round`: message `k` goes on session `k % sessions.len()` with its next
    /// counter, carrying tag `(round, k)` to `dst`.
    pub fn fill(&mut self, round: u32, sessions: &mut [Session], dst: SocketAddrV4) {
        assert!(!sessions.is_empty(), "no sessions");
        for (k, &(off, len)) in self.msgs.iter().enumerate() {
            let s = &mut sessions[k % sessions.len()];
            let inner = usize::from(self.size.nth(k));
            let msg = &mut self.buf[off..off + len];
            let padded = len - DATA_OVERHEAD;
            let plain = &mut msg[proto::messages::DATA_HEADER_LEN..][..padded];
            // The buffer holds the previous round's ciphertext: every byte is written anew.
            plain.fill(0);
            inner::write_udp4(
                &mut plain[..inner],
                s.src,
                dst,
                Tag {
                    round,
                    seq: k as u64,
                },
            );
            let counter = s.next_counter;
            s.next_counter += 1;
            let n = data::seal(&s.key, s.receiver, counter, msg, padded)
                .unwrap_or_else(|e| unreachable!("message buffer sized for its packet: {e}"));
            debug_assert_eq!(n, len);
        }
    }

    /// Message `k` as it goes on the wire.
    pub fn message(&self, k: usize) -> &[u8] {
        let (off, len) = self.msgs[k];
        &self.buf[off..off + len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn messages_open_with_increasing_counters() {
        let mut sessions: Vec<Session> = (0..3u8)
            .map(|i| Session {
                key: [i + 1; 32],
                receiver: 100 + u32::from(i),
                next_counter: 5,
                local_index: 0,
                rx_key: [0; 32],
                src: SocketAddrV4::new(crate::peers::tunnel_addr(usize::from(i)), 1),
            })
            .collect();
        let dst = SocketAddrV4::new(Ipv4Addr::new(198, 18, 1, 2), 9000);
        let mut pool = Pool::new(Size::Imix, 20_000);
        assert!(pool.len() >= 12);
        pool.fill(7, &mut sessions, dst);
        pool.fill(8, &mut sessions, dst);
        for k in 0..pool.len() {
            let mut msg = pool.message(k).to_vec();
            let s = &sessions[k % 3];
            let n = data::open(&s.key, &mut msg).expect("authentic");
            let plain = &msg[16..16 + n];
            let len = proto::wire::inner_packet_len(plain).unwrap();
            assert_eq!(len, usize::from(Size::Imix.nth(k)));
            assert_eq!(proto::wire::source_addr(plain), Some((*s.src.ip()).into()));
            let ip = proto::wire::Ipv4Packet::new_checked(&plain[..len]).unwrap();
            assert!(ip.verify_checksum() && ip.dont_frag() && !ip.is_fragment());
            assert_eq!((ip.dscp(), ip.ecn()), (0, 0));
            assert!(plain[len..].iter().all(|&b| b == 0), "zero padding");
            let counter = u64::from_le_bytes(msg[8..16].try_into().unwrap());
            assert!(counter >= 5 && counter < s.next_counter);
            assert_eq!(
                Tag::read(&plain[inner::HEADERS_LEN..]),
                Some(Tag {
                    round: 8,
                    seq: k as u64
                })
            );
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(message_len(64), 96);
        assert_eq!(message_len(1420), 1452);
        let p = Pool::new(Size::Fixed(64), 96 * 100);
        assert_eq!(p.len(), 100);
        assert_eq!(p.inner_bytes(), 6400);
    }
}
