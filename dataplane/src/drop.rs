//! Why a worker dropped a packet: one `Copy` reason, one counter each (design §7.6).

/// A drop reason of the data path. The discriminant indexes the per-worker counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Drop {
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
}

impl Drop {
    pub const ALL: [Drop; 16] = [
        Drop::Malformed,
        Drop::UnknownIndex,
        Drop::KeyExpired,
        Drop::DataAuth,
        Drop::Replay,
        Drop::BadInner,
        Drop::SourceNotAllowed,
        Drop::TtlExceeded,
        Drop::NoRoute,
        Drop::NoSession,
        Drop::NoEndpoint,
        Drop::CounterExhausted,
        Drop::RingFull,
        Drop::NoNeighbour,
        Drop::TooBig,
        Drop::EventRingFull,
    ];
    pub const COUNT: usize = Self::ALL.len();

    pub fn name(self) -> &'static str {
        match self {
            Drop::Malformed => "malformed",
            Drop::UnknownIndex => "unknown_index",
            Drop::KeyExpired => "key_expired",
            Drop::DataAuth => "data_auth",
            Drop::Replay => "replay",
            Drop::BadInner => "bad_inner",
            Drop::SourceNotAllowed => "source_not_allowed",
            Drop::TtlExceeded => "ttl_exceeded",
            Drop::NoRoute => "no_route",
            Drop::NoSession => "no_session",
            Drop::NoEndpoint => "no_endpoint",
            Drop::CounterExhausted => "counter_exhausted",
            Drop::RingFull => "tx_ring_full",
            Drop::NoNeighbour => "no_neighbour",
            Drop::TooBig => "too_big",
            Drop::EventRingFull => "event_ring_full",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discriminants_index_all() {
        for (i, d) in Drop::ALL.iter().enumerate() {
            assert_eq!(*d as usize, i);
        }
    }
}
