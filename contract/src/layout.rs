//! The typed layout of the shared region and the records in it.
//!
//! ```text
//! status (key-free):  [Header][WorkerStats; workers][PeerSlot; peers][SessionInfo; sessions]
//! page boundary
//! secrets and tables: [SessionSlot; sessions][index table: AtomicU64; 2*sessions]
//!                     [allowed-IPs table: header, reader slots, two sections per family]
//!                     [prefix log: [AtomicU64; 3]; PREFIX_LOG_CAP][Ring to control; workers]
//! ```
//! The allowed-IPs table's parts are laid out by [`Layout::table_parts`] with the sizes
//! `allowedips::Capacity` gives for `prefixes`.
//! Every part starts on a 64-byte boundary. Sizes are fixed when control creates the region
//! and recorded in the header, so a worker (or a restarted control) attaching later computes
//! the same offsets. The status part holds no key material and ends on a page boundary, so
//! that an operator's command (`wgxdp show`) maps only it ([`crate::Status`]).

use super::ring::Ring;
use super::seqlock::SeqLock;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::AtomicU64;

pub const MAGIC: u64 = u64::from_le_bytes(*b"WGXDPSHM");
/// 12: the allowed-IPs table's arrays on 2 MiB boundaries, alone in their huge pages.
/// 10: the workers' crypto-sharing counters (one tunnel across cores). 9: offloaded flows' counters and drop reason. 8: the allowed-IPs table itself in the region, and the prefix log in place of the list
/// (7: the receiver-index table's probe limit, `Header::index_probe_limit`).
pub const VERSION: u64 = 12;
pub const RING_CAP: usize = 1024;
pub type EventRing = Ring<RING_CAP>;

#[repr(C, align(64))]
#[derive(Debug, Default)]
pub struct Header {
    pub magic: AtomicU64,
    pub version: AtomicU64,
    pub session_slots: AtomicU64,
    pub peer_slots: AtomicU64,
    /// The allowed-IPs table's capacity in prefixes per family.
    pub prefix_slots: AtomicU64,
    pub workers: AtomicU64,
    /// The prefix log (`crate::prefix_log`): entries control wrote...
    pub prefix_log_head: AtomicU64,
    /// ...and entries the data path applied...
    pub prefix_log_applied: AtomicU64,
    /// ...and the data path's request for everything again.
    pub prefix_log_resync: AtomicU64,
    /// The WireGuard listen port (host order); control changes it on `wg set listen-port`.
    pub listen_port: AtomicU64,
    /// The data path: the XDP programs' verdict counters, copied from their per-CPU map about
    /// once a second, for `wgxdp show` and the metrics. Opaque here: slot `i` is the BPF ABI's
    /// verdict `i` (the data path, which links that ABI, checks it fits).
    pub xdp_verdicts: [AtomicU64; XDP_VERDICT_SLOTS],
    /// Control: how far past its home any present receiver index lies in the index table;
    /// workers' lookups stop there ([`crate::index`]).
    pub index_probe_limit: AtomicU64,
    /// The data path's flow offload (docs/egress.md): flows offloaded now, flows that stayed
    /// on the kernel's path for want of room, and resynchronisations after lost events.
    pub offload_flows: AtomicU64,
    pub offload_refused: AtomicU64,
    pub offload_resyncs: AtomicU64,
}

/// Room for the XDP programs' verdict counters in the header.
pub const XDP_VERDICT_SLOTS: usize = 32;

/// Words of a session record.
pub const SESSION_WORDS: usize = 12;

/// A session (one keypair) as control publishes it.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub local_index: u32,
    pub remote_index: u32,
    pub peer: u32,
    pub flags: u32,
    /// Monotonic time (ns) the keys were derived.
    pub birth_ns: u64,
    pub send_key: [u8; 32],
    pub recv_key: [u8; 32],
}

impl std::fmt::Debug for SessionRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionRecord")
            .field("local_index", &self.local_index)
            .field("remote_index", &self.remote_index)
            .field("peer", &self.peer)
            .field("flags", &self.flags)
            .field("birth_ns", &self.birth_ns)
            .finish_non_exhaustive()
    }
}

impl SessionRecord {
    /// The record is in use.
    pub const VALID: u32 = 1;
    /// We initiated the handshake (only the initiator rekeys on age).
    pub const INITIATOR: u32 = 2;
    /// Workers may send with it (the initiator at once; the responder once confirmed).
    pub const SENDABLE: u32 = 4;

    pub fn is_valid(&self) -> bool {
        self.flags & Self::VALID != 0
    }

    pub fn encode(&self) -> [u64; SESSION_WORDS] {
        let mut w = [0u64; SESSION_WORDS];
        w[0] = u64::from(self.local_index) | u64::from(self.remote_index) << 32;
        w[1] = u64::from(self.peer) | u64::from(self.flags) << 32;
        w[2] = self.birth_ns;
        for i in 0..4 {
            w[3 + i] =
                u64::from_le_bytes(self.send_key[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]));
            w[7 + i] =
                u64::from_le_bytes(self.recv_key[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]));
        }
        w
    }

    pub fn decode(w: &[u64; SESSION_WORDS]) -> Self {
        let mut send_key = [0u8; 32];
        let mut recv_key = [0u8; 32];
        for i in 0..4 {
            send_key[i * 8..i * 8 + 8].copy_from_slice(&w[3 + i].to_le_bytes());
            recv_key[i * 8..i * 8 + 8].copy_from_slice(&w[7 + i].to_le_bytes());
        }
        Self {
            local_index: w[0] as u32,
            remote_index: (w[0] >> 32) as u32,
            peer: w[1] as u32,
            flags: (w[1] >> 32) as u32,
            birth_ns: w[2],
            send_key,
            recv_key,
        }
    }
}

/// One session's slot: the record (written by control) and counters (written by workers).
#[repr(C, align(64))]
#[derive(Debug, Default)]
pub struct SessionSlot {
    pub record: SeqLock<SESSION_WORDS>,
    /// Next sending counter; workers take ranges with `fetch_add` per batch.
    pub send_counter: AtomicU64,
    pub rx_packets: AtomicU64,
    pub rx_bytes: AtomicU64,
    pub tx_packets: AtomicU64,
    pub tx_bytes: AtomicU64,
    /// Monotonic ns of the last authenticated packet received / sent on this session, and of
    /// the last one that carried data (not a keepalive). Control drives its timers from these.
    pub last_rx_ns: AtomicU64,
    pub last_tx_ns: AtomicU64,
    pub last_rx_data_ns: AtomicU64,
    pub last_tx_data_ns: AtomicU64,
    /// The receive window, shared by all workers (reset by control before the slot is live).
    pub replay: super::replay::SharedReplay,
}

/// What operators may see of a session, without its keys: written by control beside the
/// session's record (install, confirm, retire), read by `wgxdp show`.
#[repr(C)]
#[derive(Debug, Default)]
pub struct SessionInfo {
    pub record: SeqLock<2>,
}

/// The key-free part of a [`SessionRecord`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionSummary {
    pub local_index: u32,
    pub peer: u32,
    pub flags: u32,
}

impl SessionSummary {
    pub fn of(r: &SessionRecord) -> Self {
        Self {
            local_index: r.local_index,
            peer: r.peer,
            flags: r.flags,
        }
    }

    pub fn is_valid(&self) -> bool {
        self.flags & SessionRecord::VALID != 0
    }

    pub fn encode(&self) -> [u64; 2] {
        [
            u64::from(self.local_index) | u64::from(self.peer) << 32,
            u64::from(self.flags),
        ]
    }

    pub fn decode(w: &[u64; 2]) -> Self {
        Self {
            local_index: w[0] as u32,
            peer: (w[0] >> 32) as u32,
            flags: w[1] as u32,
        }
    }
}

/// Words of a peer record.
pub const PEER_WORDS: usize = 4;

/// No session (in a peer record's slot fields).
pub const NO_SLOT: u32 = u32::MAX;

/// A peer as control publishes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerRecord {
    pub valid: bool,
    pub endpoint: Option<SocketAddr>,
    /// Slot of the session workers send with, or `NO_SLOT`.
    pub current_session: u32,
    /// The first eight bytes of the peer's public key: a restarted control matches the
    /// slots it inherits to its configured peers by this (not secret: public keys are public).
    pub key_tag: u64,
}

impl Default for PeerRecord {
    fn default() -> Self {
        Self {
            valid: false,
            endpoint: None,
            current_session: NO_SLOT,
            key_tag: 0,
        }
    }
}

impl PeerRecord {
    pub fn encode(&self) -> [u64; PEER_WORDS] {
        let (family, port, addr) = match self.endpoint {
            None => (0u64, 0u64, [0u8; 16]),
            Some(SocketAddr::V4(a)) => (4, u64::from(a.port()), a.ip().to_ipv6_mapped().octets()),
            Some(SocketAddr::V6(a)) => (6, u64::from(a.port()), a.ip().octets()),
        };
        [
            u64::from(self.valid)
                | family << 8
                | port << 16
                | u64::from(self.current_session) << 32,
            u64::from_be_bytes(addr[..8].try_into().unwrap_or([0; 8])),
            u64::from_be_bytes(addr[8..].try_into().unwrap_or([0; 8])),
            self.key_tag,
        ]
    }

    pub fn decode(w: &[u64; PEER_WORDS]) -> Self {
        let family = (w[0] >> 8) & 0xff;
        let port = (w[0] >> 16) as u16;
        let mut addr = [0u8; 16];
        addr[..8].copy_from_slice(&w[1].to_be_bytes());
        addr[8..].copy_from_slice(&w[2].to_be_bytes());
        let v6 = Ipv6Addr::from(addr);
        let endpoint = match family {
            4 => v6
                .to_ipv4_mapped()
                .map(|a| SocketAddr::new(IpAddr::V4(a), port)),
            6 => Some(SocketAddr::new(IpAddr::V6(v6), port)),
            _ => None,
        };
        Self {
            valid: w[0] & 1 == 1,
            endpoint,
            current_session: (w[0] >> 32) as u32,
            key_tag: w[3],
        }
    }
}

/// One peer's slot.
#[repr(C, align(64))]
#[derive(Debug, Default)]
pub struct PeerSlot {
    pub record: SeqLock<PEER_WORDS>,
}

/// An allowed-IPs entry: an IPv6 or IPv4-mapped address, the prefix length, family, and peer.
pub fn encode_prefix(addr: IpAddr, len: u8, peer: u32) -> [u64; 3] {
    let (family, octets) = match addr {
        IpAddr::V4(a) => (4u64, a.to_ipv6_mapped().octets()),
        IpAddr::V6(a) => (6u64, a.octets()),
    };
    [
        u64::from_be_bytes(octets[..8].try_into().unwrap_or([0; 8])),
        u64::from_be_bytes(octets[8..].try_into().unwrap_or([0; 8])),
        u64::from(len) | family << 8 | u64::from(peer) << 32,
    ]
}

pub fn decode_prefix(w: &[u64; 3]) -> Option<(IpAddr, u8, u32)> {
    let mut octets = [0u8; 16];
    octets[..8].copy_from_slice(&w[0].to_be_bytes());
    octets[8..].copy_from_slice(&w[1].to_be_bytes());
    let v6 = Ipv6Addr::from(octets);
    let addr = match (w[2] >> 8) & 0xff {
        4 => IpAddr::V4(v6.to_ipv4_mapped().unwrap_or(Ipv4Addr::UNSPECIFIED)),
        6 => IpAddr::V6(v6),
        _ => return None,
    };
    Some((addr, w[2] as u8, (w[2] >> 32) as u32))
}

/// Counters one worker publishes (drops by reason, packets each way).
#[repr(C, align(64))]
#[derive(Debug)]
pub struct WorkerStats {
    /// One counter per [`crate::DropReason`].
    pub drops: [AtomicU64; crate::DropReason::COUNT],
    pub rx_wan: AtomicU64,
    pub rx_lan: AtomicU64,
    pub tx_wan: AtomicU64,
    pub tx_lan: AtomicU64,
    pub keepalives: AtomicU64,
    pub to_kernel: AtomicU64,
    /// TCP SYNs whose MSS was lowered to fit the tunnel, both ways.
    pub mss_clamped: AtomicU64,
    /// Packets of offloaded flows the worker translated and sent itself: from the peers to
    /// the internet, and back.
    pub offloaded_out: AtomicU64,
    pub offloaded_in: AtomicU64,
    /// One tunnel across cores: packets whose AEAD this worker handed to others, did for
    /// others, and took back undone because no other worker was free in time.
    pub crypto_handed: AtomicU64,
    pub crypto_helped: AtomicU64,
    pub crypto_reclaimed: AtomicU64,
    /// Monotonic ns of the worker's last loop; a stalled worker is visible.
    pub heartbeat_ns: AtomicU64,
}

impl Default for WorkerStats {
    fn default() -> Self {
        Self {
            drops: std::array::from_fn(|_| AtomicU64::new(0)),
            rx_wan: AtomicU64::new(0),
            rx_lan: AtomicU64::new(0),
            tx_wan: AtomicU64::new(0),
            tx_lan: AtomicU64::new(0),
            keepalives: AtomicU64::new(0),
            to_kernel: AtomicU64::new(0),
            mss_clamped: AtomicU64::new(0),
            offloaded_out: AtomicU64::new(0),
            offloaded_in: AtomicU64::new(0),
            crypto_handed: AtomicU64::new(0),
            crypto_helped: AtomicU64::new(0),
            crypto_reclaimed: AtomicU64::new(0),
            heartbeat_ns: AtomicU64::new(0),
        }
    }
}

/// Sizes of a region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub sessions: usize,
    pub peers: usize,
    pub prefixes: usize,
    pub workers: usize,
}

/// Where one family section's arrays lie in the region.
#[derive(Debug, Clone, Copy)]
pub struct Section {
    pub dims: allowedips::Dims,
    pub dir: usize,
    pub nodes: usize,
    pub leaves: usize,
    pub singles: usize,
}

/// Where the allowed-IPs table lies in the region ([`Layout::table_parts`]).
#[derive(Debug, Clone, Copy)]
pub struct TableParts {
    pub header: usize,
    pub readers: usize,
    pub v4: [Section; 2],
    pub v6: [Section; 2],
}

const fn align64(n: usize) -> usize {
    (n + 63) & !63
}

/// The page size the status part is rounded to (x86-64 and arm64 base pages are 4 KiB; a
/// larger page only makes the mapping of the status part round up further, which mmap does).
pub const PAGE: usize = 4096;

/// The huge page size the allowed-IPs table is backed with where the file system allows
/// (`crate::region::HugeBacking`): x86-64's and arm64's with 4 KiB base pages.
pub const HUGE_PAGE: usize = 2 << 20;

/// The table's arrays start and end on huge page boundaries, so a huge page of them holds
/// nothing the workers write (their counters, reader slots and event rings): collapsing one
/// into a huge page stalls no worker's write, and is not refused for a page a worker holds.
const fn align_huge(n: usize) -> usize {
    (n + HUGE_PAGE - 1) & !(HUGE_PAGE - 1)
}

const fn align_page(n: usize) -> usize {
    (n + PAGE - 1) & !(PAGE - 1)
}

impl Layout {
    /// Receiver-index hash table entries: a power of two, at least twice the sessions.
    pub fn index_slots(&self) -> usize {
        (self.sessions * 2).next_power_of_two()
    }

    pub fn stats_offset(&self) -> usize {
        align64(std::mem::size_of::<Header>())
    }

    pub fn peers_offset(&self) -> usize {
        align64(self.stats_offset() + self.workers * std::mem::size_of::<WorkerStats>())
    }

    pub fn session_info_offset(&self) -> usize {
        align64(self.peers_offset() + self.peers * std::mem::size_of::<PeerSlot>())
    }

    /// Length of the key-free status part (header, worker counters, peers, session
    /// summaries): a whole number of pages, so that it can be mapped alone.
    pub fn status_len(&self) -> usize {
        align_page(self.session_info_offset() + self.sessions * std::mem::size_of::<SessionInfo>())
    }

    pub fn sessions_offset(&self) -> usize {
        self.status_len()
    }

    pub fn index_offset(&self) -> usize {
        align64(self.sessions_offset() + self.sessions * std::mem::size_of::<SessionSlot>())
    }

    pub fn table_offset(&self) -> usize {
        align64(self.index_offset() + self.index_slots() * 8)
    }

    /// The allowed-IPs table's parts, each 64-byte aligned: the table header, the reader
    /// slots, then per family (IPv4, IPv6) and section (0, 1) its arrays' offsets and
    /// dimensions, the arrays from and up to a huge page boundary. Returns the parts and the
    /// offset past them.
    pub fn table_parts(&self) -> (TableParts, usize) {
        use allowedips::{Capacity, ReaderSlot, TableHeader, MAX_READERS};
        let cap = Capacity::new(self.prefixes);
        let header = self.table_offset();
        let readers = align64(header + std::mem::size_of::<TableHeader>());
        let mut at = align_huge(readers + MAX_READERS * std::mem::size_of::<ReaderSlot>());
        let mut section = |d: allowedips::Dims| {
            let dir = at;
            let nodes = align64(dir + d.dir * 8);
            let leaves = align64(nodes + d.nodes * 32);
            let singles = align64(leaves + d.leaves * 4);
            at = align64(singles + d.singles * 8);
            Section {
                dims: d,
                dir,
                nodes,
                leaves,
                singles,
            }
        };
        let v4 = [section(cap.v4()), section(cap.v4())];
        let v6 = [section(cap.v6()), section(cap.v6())];
        (
            TableParts {
                header,
                readers,
                v4,
                v6,
            },
            align_huge(at),
        )
    }

    pub fn prefix_log_offset(&self) -> usize {
        self.table_parts().1
    }

    pub fn rings_offset(&self) -> usize {
        align64(self.prefix_log_offset() + crate::prefix_log::PREFIX_LOG_CAP * 24)
    }

    pub fn total_len(&self) -> usize {
        align64(self.rings_offset() + self.workers * std::mem::size_of::<EventRing>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let s = SessionRecord {
            local_index: 0xdead_beef,
            remote_index: 7,
            peer: 42,
            flags: SessionRecord::VALID | SessionRecord::SENDABLE,
            birth_ns: 123_456_789,
            send_key: std::array::from_fn(|i| i as u8),
            recv_key: std::array::from_fn(|i| 255 - i as u8),
        };
        assert_eq!(SessionRecord::decode(&s.encode()), s);
        for endpoint in [
            None,
            Some("198.18.0.2:51820".parse().unwrap()),
            Some("[2001:2::2]:1".parse().unwrap()),
        ] {
            let p = PeerRecord {
                valid: true,
                endpoint,
                current_session: 9,
                key_tag: 0x0123_4567_89ab_cdef,
            };
            assert_eq!(PeerRecord::decode(&p.encode()), p);
        }
        let summary = SessionSummary::of(&s);
        assert_eq!(SessionSummary::decode(&summary.encode()), summary);
        assert_eq!(
            PeerRecord::decode(&PeerRecord::default().encode()),
            PeerRecord::default()
        );
        for (a, l) in [("10.1.0.0", 16u8), ("2001:2::", 48)] {
            let addr: IpAddr = a.parse().unwrap();
            assert_eq!(
                decode_prefix(&encode_prefix(addr, l, 5)),
                Some((addr, l, 5))
            );
        }
        assert!(
            format!("{s:?}").find("send_key").is_none(),
            "Debug hides keys"
        );
    }

    #[test]
    fn parts_do_not_overlap_and_are_aligned() {
        let l = Layout {
            sessions: 1000,
            peers: 300,
            prefixes: 5000,
            workers: 3,
        };
        let offsets = [
            l.stats_offset(),
            l.peers_offset(),
            l.session_info_offset(),
            l.sessions_offset(),
            l.index_offset(),
            l.table_offset(),
            l.table_parts().0.readers,
            l.table_parts().0.v4[0].dir,
            l.table_parts().0.v4[1].dir,
            l.table_parts().0.v6[0].dir,
            l.table_parts().0.v6[1].singles,
            l.prefix_log_offset(),
            l.rings_offset(),
            l.total_len(),
        ];
        assert!(offsets.windows(2).all(|w| w[0] < w[1]));
        assert!(offsets.iter().all(|o| o % 64 == 0));
        // Nothing with keys lies in the status part.
        assert_eq!(l.sessions_offset(), l.status_len());
        assert_eq!(l.status_len() % PAGE, 0);
        assert_eq!(l.index_slots(), 2048);
    }
}
