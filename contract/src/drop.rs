//! Why a worker dropped a packet: one `Copy` reason, one counter each (design §7.6). Named
//! `DropReason`, not `Drop`, so that it never hides the prelude's `Drop` trait.

/// A drop reason of the data path. The discriminant indexes the per-worker counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DropReason {
    /// Headers do not parse (the XDP program lets only plausible frames through).
    Malformed,
    /// No live session has this receiver index.
    UnknownIndex,
    /// The session's keys are older than REJECT_AFTER_TIME.
    KeyExpired,
    /// The data message failed authentication.
    DataAuth,
    /// Counter already seen or below the window.
    Replay,
    /// The decrypted packet is not a valid IPv4/IPv6 packet.
    BadInner,
    /// The inner source is not in the sending peer's allowed IPs.
    SourceNotAllowed,
    /// TTL or hop limit ran out.
    TtlExceeded,
    /// No peer's allowed IPs contain the destination.
    NoRoute,
    /// The peer has no session we may send with (a handshake was requested).
    NoSession,
    /// The peer has no endpoint yet.
    NoEndpoint,
    /// Counters exhausted on the session (REJECT_AFTER_MESSAGES).
    CounterExhausted,
    /// The TX ring was full: the frame could not be queued for sending.
    RingFull,
    /// No next-hop MAC was known and handing the packet to the kernel failed.
    NoNeighbour,
    /// Larger than the tunnel MTU (the sender was told with ICMP where it may be).
    TooBig,
    /// Not a packet: an event for control was lost because the worker's event ring was full.
    EventRingFull,
    /// Control retired or replaced the session between the worker reading its key and using
    /// it: sending would reuse a nonce, receiving would fill the new session's window.
    SessionRetired,
    /// The decrypted packet's destination is one no packet from outside may reach (loopback,
    /// 0/8, unspecified), as the kernel drops martians.
    Martian,
    /// A packet steered as an offloaded flow's return traffic whose flow was removed before
    /// the worker took it (the kernel destroyed the connection meanwhile).
    FlowGone,
    /// The worker that was sealing or opening this packet for its owner (one tunnel across
    /// cores) stopped meanwhile: the data path is stopping.
    HelperLost,
}

impl DropReason {
    pub const ALL: [DropReason; 20] = [
        DropReason::Malformed,
        DropReason::UnknownIndex,
        DropReason::KeyExpired,
        DropReason::DataAuth,
        DropReason::Replay,
        DropReason::BadInner,
        DropReason::SourceNotAllowed,
        DropReason::TtlExceeded,
        DropReason::NoRoute,
        DropReason::NoSession,
        DropReason::NoEndpoint,
        DropReason::CounterExhausted,
        DropReason::RingFull,
        DropReason::NoNeighbour,
        DropReason::TooBig,
        DropReason::EventRingFull,
        DropReason::SessionRetired,
        DropReason::Martian,
        DropReason::FlowGone,
        DropReason::HelperLost,
    ];
    pub const COUNT: usize = Self::ALL.len();

    pub fn name(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::UnknownIndex => "unknown_index",
            DropReason::KeyExpired => "key_expired",
            DropReason::DataAuth => "data_auth",
            DropReason::Replay => "replay",
            DropReason::BadInner => "bad_inner",
            DropReason::SourceNotAllowed => "source_not_allowed",
            DropReason::TtlExceeded => "ttl_exceeded",
            DropReason::NoRoute => "no_route",
            DropReason::NoSession => "no_session",
            DropReason::NoEndpoint => "no_endpoint",
            DropReason::CounterExhausted => "counter_exhausted",
            DropReason::RingFull => "tx_ring_full",
            DropReason::NoNeighbour => "no_neighbour",
            DropReason::TooBig => "too_big",
            DropReason::EventRingFull => "event_ring_full",
            DropReason::SessionRetired => "session_retired",
            DropReason::Martian => "martian",
            DropReason::FlowGone => "flow_gone",
            DropReason::HelperLost => "helper_lost",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discriminants_index_all() {
        for (i, d) in DropReason::ALL.iter().enumerate() {
            assert_eq!(*d as usize, i);
        }
    }
}
