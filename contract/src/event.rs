//! What a worker tells control, over its ring in the region ([`crate::ring`]). One typed enum,
//! one codec: the worker encodes, control decodes, and neither sees the words.
//!
//! Wire form (four words, the ring's message): the first word's low byte is the kind; the rest
//! is per kind, below. A message control cannot decode is ignored (a newer worker's event, or
//! a torn slot after a crash: the ring's protocol makes the latter impossible, the decoder does
//! not rely on it).

use crate::ring::Msg;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

/// An event from a worker to control.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerEvent {
    /// Traffic for peer slot `peer` found no usable session: start a handshake (workers
    /// repeat it at most once a second per peer).
    NeedSession { peer: u32 },
    /// An authenticated packet of peer slot `peer` came from `from`, which is not the endpoint
    /// its record holds (roaming).
    Endpoint { peer: u32, from: SocketAddr },
    /// A data message for a receiver index no session here holds came from `from`
    /// (unauthenticated: anyone can send one). If `from` is a known peer's endpoint, that peer
    /// may be sending on a session another gateway of a cluster held (it died, and the
    /// router sent the flow here): control may start a handshake with it at once instead of
    /// waiting for the peer's own timers. Workers report a source at most once a second.
    UnknownIndex { from: SocketAddr },
}

const NEED_SESSION: u64 = 1;
const ENDPOINT: u64 = 2;
const UNKNOWN_INDEX: u64 = 3;
const FAMILY_V4: u64 = 4;
const FAMILY_V6: u64 = 6;

/// `[kind | family << 8 | port << 16 | peer << 32, addr hi, addr lo, 0]` with the address
/// IPv6 or IPv4-mapped, big-endian halves.
fn encode_addr(kind: u64, peer: u32, from: SocketAddr) -> Msg {
    let (family, octets) = match from.ip() {
        IpAddr::V4(a) => (FAMILY_V4, a.to_ipv6_mapped().octets()),
        IpAddr::V6(a) => (FAMILY_V6, a.octets()),
    };
    let (hi, lo) = octets.split_at(8);
    [
        kind | family << 8 | u64::from(from.port()) << 16 | u64::from(peer) << 32,
        u64::from_be_bytes(hi.try_into().unwrap_or([0; 8])),
        u64::from_be_bytes(lo.try_into().unwrap_or([0; 8])),
        0,
    ]
}

/// The peer field and the address of a message [`encode_addr`] wrote.
fn decode_addr(msg: &Msg) -> Option<(u32, SocketAddr)> {
    let family = (msg[0] >> 8) & 0xff;
    let port = (msg[0] >> 16) as u16;
    let peer = (msg[0] >> 32) as u32;
    let mut octets = [0u8; 16];
    octets[..8].copy_from_slice(&msg[1].to_be_bytes());
    octets[8..].copy_from_slice(&msg[2].to_be_bytes());
    let v6 = Ipv6Addr::from(octets);
    let ip = match family {
        FAMILY_V4 => IpAddr::V4(v6.to_ipv4_mapped()?),
        FAMILY_V6 => IpAddr::V6(v6),
        _ => return None,
    };
    Some((peer, SocketAddr::new(ip, port)))
}

impl WorkerEvent {
    /// `[NEED_SESSION, peer, 0, 0]`, or [`encode_addr`]'s form for the others (peer 0 for
    /// `UnknownIndex`).
    pub fn encode(&self) -> Msg {
        match *self {
            WorkerEvent::NeedSession { peer } => [NEED_SESSION, u64::from(peer), 0, 0],
            WorkerEvent::Endpoint { peer, from } => encode_addr(ENDPOINT, peer, from),
            WorkerEvent::UnknownIndex { from } => encode_addr(UNKNOWN_INDEX, 0, from),
        }
    }

    /// The event in `msg`, or `None` if it is not one this version knows.
    pub fn decode(msg: &Msg) -> Option<Self> {
        match msg[0] & 0xff {
            NEED_SESSION => Some(WorkerEvent::NeedSession {
                peer: u32::try_from(msg[1]).ok()?,
            }),
            ENDPOINT => {
                let (peer, from) = decode_addr(msg)?;
                Some(WorkerEvent::Endpoint { peer, from })
            }
            UNKNOWN_INDEX => match decode_addr(msg)? {
                (0, from) => Some(WorkerEvent::UnknownIndex { from }),
                _ => None,
            },
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trip() {
        for e in [
            WorkerEvent::NeedSession { peer: 0 },
            WorkerEvent::NeedSession { peer: u32::MAX },
            WorkerEvent::Endpoint {
                peer: 7,
                from: "198.18.0.2:51820".parse().unwrap(),
            },
            WorkerEvent::Endpoint {
                peer: u32::MAX,
                from: "[2001:2::1]:1".parse().unwrap(),
            },
            WorkerEvent::UnknownIndex {
                from: "198.18.0.2:51820".parse().unwrap(),
            },
            WorkerEvent::UnknownIndex {
                from: "[2001:2::1]:65535".parse().unwrap(),
            },
        ] {
            assert_eq!(WorkerEvent::decode(&e.encode()), Some(e));
        }
    }

    #[test]
    fn unknown_kinds_and_families_are_ignored() {
        assert_eq!(WorkerEvent::decode(&[0, 0, 0, 0]), None);
        assert_eq!(WorkerEvent::decode(&[99, 0, 0, 0]), None);
        assert_eq!(WorkerEvent::decode(&[ENDPOINT | 5 << 8, 0, 0, 0]), None);
        // A v4 family whose address is not IPv4-mapped.
        assert_eq!(
            WorkerEvent::decode(&[ENDPOINT | FAMILY_V4 << 8, 1, 1, 0]),
            None
        );
        assert_eq!(WorkerEvent::decode(&[NEED_SESSION, 1 << 40, 0, 0]), None);
        // An unknown index never names a peer.
        assert_eq!(
            WorkerEvent::decode(&[UNKNOWN_INDEX | FAMILY_V6 << 8 | 1 << 32, 0, 1, 0]),
            None
        );
    }

    proptest! {
        /// Any four words decode to nothing or to an event that encodes back to a message
        /// that decodes the same (the codec never panics on what a ring holds).
        #[test]
        fn decode_never_panics(w in proptest::array::uniform4(any::<u64>())) {
            if let Some(e) = WorkerEvent::decode(&w) {
                prop_assert_eq!(WorkerEvent::decode(&e.encode()), Some(e));
            }
        }
    }
}
