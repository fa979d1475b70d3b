//! The control process: handshakes, cookies, timers and the authority over the shared region.
//!
//! It runs the sans-IO protocol core with the external data path: handshake messages arrive
//! on an ordinary UDP socket bound to ListenPort (the XDP program passes them to the kernel),
//! session keys go into the shared region for the workers, and the workers' activity counters
//! drive the protocol's timers. Everything happens on one thread, in a loop that wakes at
//! least every [`TICK`].
//!
//! Restart: a control process that finds the region already there attaches to it instead of
//! creating it, and reconciles with what it finds ([`restart`]). The sessions it finds stay
//! in use by the workers until they expire; their slots are reclaimed then. New handshakes
//! replace them as the peers rekey.
//!
//! Control reads no clock and no randomness of its own: both are given to it ([`Clock`], an
//! RNG), so that tests drive it on a clock they move.

mod configure;
mod failover;
mod lanes;
mod observe;
mod restart;
mod routes;
mod sessions;

use crate::clock::{Clock, SystemClock};
use crate::config::{Config, Endpoint};
use crate::peers::PeerTable;
use contract::layout::{Layout, PeerRecord, SessionRecord, SessionSummary, NO_SLOT};
use contract::{Region, ShmError, WorkerEvent};
use proto::allowedips::Prefix;
use proto::constants::{REJECT_AFTER_TIME, UNDER_LOAD_AFTER_TIME};
use proto::device::{Device, Event, PeerConfig, PeerId};
use proto::time::{Instant, Now};
use rand_core::CryptoRngCore;
use sessions::SessionSlots;
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The loop's longest sleep: the protocol's timers have second granularity, worker activity
/// is picked up within this.
pub const TICK: Duration = Duration::from_millis(20);

/// Handshake datagrams taken from the socket per step. A full batch means at least this many
/// were queued: the kernel's under-load threshold (UNDER_LOAD_QUEUE_LEN, 512).
pub const HANDSHAKE_BATCH: usize = proto::constants::UNDER_LOAD_QUEUE_LEN;

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("the configuration has no PrivateKey")]
    NoPrivateKey,
    #[error("shared region: {0}")]
    Shm(#[from] ShmError),
    #[error("binding UDP port {port}: {source}")]
    Bind { port: u16, source: std::io::Error },
    #[error("peer {key}: {reason}")]
    Peer { key: String, reason: String },
    #[error("TUN device: {0}")]
    Tun(String),
    #[error("{what}: {reason}")]
    Setup { what: String, reason: String },
    #[error("{0} allowed-IP entries exceed the region's capacity of {1}")]
    TooManyPrefixes(usize, usize),
}

#[derive(Debug, Clone)]
pub struct ControlOptions {
    pub config: Config,
    pub region: PathBuf,
    pub workers: usize,
    /// Peers the gateway can hold at once (configured plus added live).
    pub max_peers: usize,
    pub max_sessions: usize,
    pub max_prefixes: usize,
    /// The interface name `wg` knows the gateway by (its UAPI socket); `None`: no socket.
    pub interface_name: Option<crate::InterfaceName>,
    /// Where the authentication log goes (appended); `None`: outcomes are only counted.
    pub auth_log: Option<PathBuf>,
    /// The authentication log's budget on disk, with its one rotated file
    /// ([`crate::authlog::DEFAULT_MAX_BYTES`] is the usual choice).
    pub auth_log_max_bytes: u64,
    /// Address of the Prometheus endpoint; `None`: off.
    pub metrics: Option<SocketAddr>,
}

/// The protocol core's randomness: ephemeral keys, indices, cookie secrets.
pub type Rng = Box<dyn CryptoRngCore + Send>;

/// The control process's state.
pub struct Control {
    device: Device<Rng>,
    clock: Box<dyn Clock>,
    region: Arc<Region>,
    socket: UdpSocket,
    /// Cookie-carrying handshake messages, read before `socket` ([`lanes`]).
    lane: Option<UdpSocket>,
    /// Datagrams read from `lane` (a metric).
    lane_messages: u64,
    /// Which session slot holds which keypair.
    sessions: SessionSlots,
    last_under_load: Option<Instant>,
    /// Handshakes are handed over instead of read from the socket (see `feed_handshakes`).
    fed: bool,
    uapi: Option<crate::uapi::Uapi>,
    /// Region slots, allowed IPs and retired byte counts of the peers.
    peers: PeerTable,
    /// The workers' allowed-IPs table and the prefix log for the data-path process.
    routes: routes::Routes,
    fwmark: u32,
    /// `set=1` requests applied but not yet answered, with their answer-anyway deadlines:
    /// they wait for the data path to hold every change.
    waiting: Vec<(crate::uapi::Request, std::time::Instant)>,
    auth: crate::authlog::AuthLog,
    metrics: Option<crate::metrics::Metrics>,
    /// The last metrics page served, and when it was rendered (region clock).
    metrics_cache: Option<(u64, String)>,
    /// Peers allowed at once (`--max-peers`, at least the configured ones).
    max_peers: usize,
    /// Handshakes started for peers failing over from another gateway ([`failover`]).
    failover: failover::Failover,
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Control")
            .field("sessions", &self.sessions.len())
            .finish_non_exhaustive()
    }
}

pub(crate) fn resolve(e: &Endpoint) -> Option<SocketAddr> {
    match e {
        Endpoint::Addr(a) => Some(*a),
        Endpoint::Host { host, port } => (host.as_str(), *port).to_socket_addrs().ok()?.next(),
    }
}

/// What a peer record carries to tell peers apart across a control restart.
pub(crate) fn key_tag(key: &proto::keys::PublicKey) -> u64 {
    let b = key.as_bytes();
    u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}

/// Unmaps IPv4-mapped IPv6 source addresses from the dual-stack socket.
pub(crate) fn canonical(a: SocketAddr) -> SocketAddr {
    match a {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(v4.into(), v6.port()),
            None => a,
        },
        v4 => v4,
    }
}

impl Control {
    /// Control on the machine's clocks and randomness.
    pub fn new(opts: &ControlOptions) -> Result<Self, ControlError> {
        let rng = crate::rng::system().map_err(|e| ControlError::Setup {
            what: "randomness".into(),
            reason: e.to_string(),
        })?;
        Self::with(opts, Box::new(SystemClock), rng)
    }

    /// Control on the given clock and randomness (tests, and `--time-scale`).
    pub fn with(
        opts: &ControlOptions,
        clock: Box<dyn Clock>,
        rng: Rng,
    ) -> Result<Self, ControlError> {
        let config = &opts.config;
        let private = config
            .interface
            .private_key
            .clone()
            .ok_or(ControlError::NoPrivateKey)?;
        let layout = Layout {
            sessions: opts.max_sessions,
            // Room for the slots of removed peers while the data path catches up.
            peers: opts.max_peers.max(config.peers.len()) * 2 + 16,
            prefixes: opts.max_prefixes,
            workers: opts.workers,
        };
        let region = match Region::attach(&opts.region) {
            Ok(r) => {
                // A previous control process may have died mid-write.
                let torn = r.repair_torn();
                if torn > 0 {
                    tracing::warn!(
                        records = torn,
                        "records a previous control left half-written were emptied"
                    );
                }
                r
            }
            Err(ShmError::Io { .. }) => Region::create(&opts.region, layout)?,
            Err(e) => return Err(e.into()),
        };
        if region.in_memory() == Some(false) {
            tracing::warn!(
                region = %opts.region.display(),
                "the shared region is not on tmpfs: on a disk file system the kernel writes \
                 its pages, session keys included, back to the disk, and the allowed-IPs table \
                 gets no huge pages; put the run directory on tmpfs (as /run is on most systems)"
            );
        }
        let region = Arc::new(region);
        let port = config.interface.listen_port.unwrap_or(51820);
        let lanes::Bound { main: socket, lane } = lanes::bind(port, true)?;
        let port = socket.local_addr().map_or(port, |a| a.port());
        region
            .header()
            .listen_port
            .store(u64::from(port), Ordering::Relaxed);

        let mut device = Device::new(private, rng);
        device.set_external_data_path(true);
        let sessions = SessionSlots::new(
            region.layout().sessions,
            restart::inherited_sessions(&region),
        );
        let mut control = Self {
            device,
            clock,
            region: region.clone(),
            socket,
            lane,
            lane_messages: 0,
            sessions,
            last_under_load: None,
            fed: false,
            uapi: match &opts.interface_name {
                Some(n) => Some(crate::uapi::Uapi::bind(n).map_err(|e| ControlError::Setup {
                    what: format!("UAPI socket {n}"),
                    reason: e.to_string(),
                })?),
                None => None,
            },
            peers: PeerTable::new(region.layout().peers),
            routes: routes::Routes::default(),
            fwmark: 0,
            waiting: Vec::new(),
            auth: crate::authlog::AuthLog::open(opts.auth_log.as_deref(), opts.auth_log_max_bytes)
                .map_err(|e| ControlError::Setup {
                    what: "authentication log".into(),
                    reason: e.to_string(),
                })?,
            metrics: match opts.metrics {
                Some(a) => {
                    Some(
                        crate::metrics::Metrics::bind(a).map_err(|e| ControlError::Setup {
                            what: format!("metrics endpoint {a}"),
                            reason: e.to_string(),
                        })?,
                    )
                }
                None => None,
            },
            metrics_cache: None,
            max_peers: opts.max_peers.max(config.peers.len()),
            failover: failover::Failover::default(),
        };
        control.reconcile(config)?;
        control.publish_prefixes();
        let ids: Vec<PeerId> = control.peers.ids().collect();
        for id in ids {
            control.publish_peer(id);
        }
        control.drain_events();
        control.flush();
        Ok(control)
    }

    /// The allowed-IPs epoch every worker has passed (peer slots freed before are free).
    pub(crate) fn prefixes_applied(&self) -> u64 {
        self.routes.settled()
    }

    /// Adds a peer to the protocol and the region (in slot `at` if given). Its record is
    /// written by `publish_peer`, its prefixes by `publish_prefixes`.
    pub(crate) fn create_peer(
        &mut self,
        now: Now,
        pc: PeerConfig,
        allowed: impl IntoIterator<Item = Prefix>,
        at: Option<u32>,
    ) -> Result<PeerId, ControlError> {
        let Some(key) = pc.public_key else {
            return Err(ControlError::Peer {
                key: String::new(),
                reason: "no public key".into(),
            });
        };
        let err = |reason: String| ControlError::Peer {
            key: key.to_base64(),
            reason,
        };
        let applied = self.prefixes_applied();
        if at.is_none() && self.peers.available(applied) == 0 {
            return Err(err(format!(
                "no room for more peers ({} configured; start with a larger --max-peers)",
                self.peers.len()
            )));
        }
        let id = self
            .device
            .add_peer(now, key, pc)
            .map_err(|e| err(e.to_string()))?;
        let placed = match at {
            Some(slot) => self.peers.add_at(id, slot) || self.peers.add(id, applied).is_some(),
            None => self.peers.add(id, applied).is_some(),
        };
        if !placed {
            let _ = self.device.remove_peer(id);
            return Err(err("no free peer slot".into()));
        }
        for p in allowed {
            self.peers.insert_prefix(id, p);
        }
        Ok(id)
    }

    /// Removes a peer everywhere: its sessions are wiped (through the device's retire
    /// events, at once), its record invalidated, its prefixes dropped from the next list.
    pub(crate) fn destroy_peer(&mut self, id: PeerId) {
        self.failover.forget(id);
        let _ = self.device.remove_peer(id);
        self.drain_events();
        self.sessions.forget_peer(id);
        if let Some(slot) = self.peers.remove(id) {
            if let Some(p) = self.region.peers().get(slot as usize) {
                p.record.write(&PeerRecord::default().encode());
            }
        }
    }

    /// Brings the workers' table in step with the peer table and logs the changes for the
    /// data-path process; returns whether anything changed.
    pub(crate) fn publish_prefixes(&mut self) -> bool {
        let changed = self.routes.sync(&self.region, &mut self.peers);
        self.routes.push_log(&self.region, &self.peers);
        changed
    }

    /// The protocol's now, from the clock control was given.
    fn now(&self) -> Now {
        self.clock.now()
    }

    /// Writes peer `id`'s record: endpoint and the session workers send with.
    pub(crate) fn publish_peer(&self, id: PeerId) {
        let (Some(slot), Some(peer)) = (self.peers.slot(id), self.device.peer(id)) else {
            return;
        };
        let Some(shm) = self.region.peers().get(slot as usize) else {
            return;
        };
        let old = shm
            .record
            .read()
            .map(|w| PeerRecord::decode(&w))
            .unwrap_or_default();
        let current = match self.sessions.current(id) {
            Some(s) => s,
            // Keep a session inherited from a previous control process.
            None if self.sessions.is_inherited(old.current_session) => old.current_session,
            None => NO_SLOT,
        };
        let rec = PeerRecord {
            valid: true,
            endpoint: peer.endpoint(),
            current_session: current,
            key_tag: key_tag(peer.public_key()),
        };
        if rec != old {
            shm.record.write(&rec.encode());
        }
    }

    pub(crate) fn flush(&mut self) {
        let mut buf = [0u8; 256];
        let now = self.now();
        while let Some(t) = self.device.poll_transmit(now, &mut buf) {
            let _ = self.socket.send_to(&buf[..t.len], t.dst);
        }
    }

    pub(crate) fn drain_events(&mut self) {
        while let Some(e) = self.device.poll_event() {
            match e {
                Event::SessionEstablished { peer, local_index } => self.install(peer, local_index),
                Event::SessionConfirmed { peer, local_index } => {
                    if let Some(slot) = self.sessions.slot_of(local_index) {
                        self.write_session(slot, local_index, true);
                        self.sessions.set_current(peer, slot);
                        self.publish_peer(peer);
                    }
                }
                Event::SessionRetired { local_index } => self.retire(local_index),
                Event::Keepalive { peer } => self.send_keepalive(peer),
            }
        }
    }

    /// Writes session `local_index`'s record into `slot`, born (region clock) when its slot
    /// was taken.
    fn write_session(&self, slot: u32, local_index: u32, sendable: bool) {
        let Some((peer, kp)) = self.device.keypair(local_index) else {
            return;
        };
        let Some(peer_slot) = self.peers.slot(peer) else {
            return;
        };
        let mut flags = SessionRecord::VALID;
        if kp.i_am_the_initiator() {
            flags |= SessionRecord::INITIATOR;
        }
        if sendable {
            flags |= SessionRecord::SENDABLE;
        }
        // Key ages in the region are on the region's clock, whatever the protocol's does: the
        // keys were derived in the step that took the slot.
        let birth = self
            .sessions
            .get(slot)
            .map_or_else(|| self.clock.region_ns(), |s| s.birth_ns);
        let rec = SessionRecord {
            local_index,
            remote_index: kp.remote_index(),
            peer: peer_slot,
            flags,
            birth_ns: birth,
            send_key: *kp.sending_key(),
            recv_key: *kp.receiving_key(),
        };
        self.region.sessions()[slot as usize]
            .record
            .write(&rec.encode());
        self.region.session_info()[slot as usize]
            .record
            .write(&SessionSummary::of(&rec).encode());
    }

    fn install(&mut self, peer: PeerId, local_index: u32) {
        let born = self.clock.region_ns();
        let Some((slot, evicted)) = self.sessions.take(local_index, peer, born) else {
            tracing::warn!(
                peer = %self.device.peer(peer).map(|p| crate::short_key(p.public_key())).unwrap_or_default(),
                live = self.sessions.len(),
                "no free session slot for a new session; the peer keeps its previous one"
            );
            return;
        };
        if let Some(old) = evicted {
            self.wipe_slot(old);
        }
        let initiator = self
            .device
            .keypair(local_index)
            .is_some_and(|(_, k)| k.i_am_the_initiator());
        let s = &self.region.sessions()[slot as usize];
        // Counters and the replay window start empty per keypair; reset before the record
        // makes the slot live.
        s.replay.reset();
        for a in [
            &s.send_counter,
            &s.rx_packets,
            &s.rx_bytes,
            &s.tx_packets,
            &s.tx_bytes,
            &s.last_rx_ns,
            &s.last_tx_ns,
            &s.last_rx_data_ns,
            &s.last_tx_data_ns,
        ] {
            a.store(0, Ordering::Relaxed);
        }
        self.write_session(slot, local_index, initiator);
        self.region.index_insert(local_index, slot);
        if initiator {
            self.sessions.set_current(peer, slot);
        }
        self.publish_peer(peer);
    }

    /// Makes a slot dead in the region: its index forgotten, its record invalid with the keys
    /// wiped (a worker that read the old record sees the version change and drops what it
    /// was doing with it).
    fn wipe_slot(&self, slot: u32) {
        let Some(s) = self.region.sessions().get(slot as usize) else {
            return;
        };
        if let Some(r) = s.record.read().map(|w| SessionRecord::decode(&w)) {
            if r.is_valid() {
                self.region.index_remove(r.local_index);
            }
        }
        s.record.write(&[0; contract::layout::SESSION_WORDS]);
        self.region.session_info()[slot as usize]
            .record
            .write(&[0; 2]);
    }

    fn retire(&mut self, local_index: u32) {
        let Some((slot, info)) = self.sessions.retire(local_index) else {
            return;
        };
        // `wg show` keeps counting what the session carried.
        let s = &self.region.sessions()[slot as usize];
        self.peers.add_retired(
            info.peer,
            [&s.rx_bytes, &s.tx_bytes, &s.rx_packets, &s.tx_packets]
                .map(|c| c.load(Ordering::Relaxed)),
        );
        self.wipe_slot(slot);
        self.publish_peer(info.peer);
        self.sessions.free(slot);
    }

    /// Seals a keepalive on the peer's current session with the workers' counter and sends
    /// it through the kernel.
    fn send_keepalive(&mut self, peer: PeerId) {
        let now = self.now();
        let (Some(slot), Some(dst)) = (
            self.sessions.current(peer),
            self.device.peer(peer).and_then(|p| p.endpoint()),
        ) else {
            return;
        };
        let Some(info) = self.sessions.get(slot) else {
            return;
        };
        let Some((_, kp)) = self.device.keypair(info.local_index) else {
            return;
        };
        let shm = &self.region.sessions()[slot as usize];
        let counter = shm.send_counter.fetch_add(1, Ordering::Relaxed);
        let mut buf = [0u8; 32];
        let Ok(n) = proto::data::seal(kp.sending_key(), kp.remote_index(), counter, &mut buf, 0)
        else {
            return;
        };
        let _ = self.socket.send_to(&buf[..n], dst);
        self.device
            .external_data_sent(now, peer, true, counter + 1, n);
    }

    fn worker_events(&mut self) {
        let now = self.now();
        for w in 0..self.region.layout().workers {
            while let Some(e) = self.region.pop_event(w) {
                match e {
                    WorkerEvent::NeedSession { peer } => {
                        if let Some(id) = self.peers.peer_at(peer) {
                            self.device.external_needs_session(now, id);
                        }
                    }
                    WorkerEvent::Endpoint { peer, from } => {
                        if let Some(id) = self.peers.peer_at(peer) {
                            let _ = self.device.set_endpoint(id, from);
                            self.publish_peer(id);
                        }
                    }
                    WorkerEvent::UnknownIndex { from } => self.unknown_index(from),
                }
            }
        }
    }

    /// Feeds the workers' activity on each live session into the protocol's timers.
    fn activity(&mut self) {
        let now = self.now();
        let mut received = Vec::new();
        let mut sent = Vec::new();
        for (slot, info) in self.sessions.live_mut() {
            let s = &self.region.sessions()[slot as usize];
            let (rx, rx_data) = (
                s.last_rx_ns.load(Ordering::Relaxed),
                s.last_rx_data_ns.load(Ordering::Relaxed),
            );
            let (tx, tx_data) = (
                s.last_tx_ns.load(Ordering::Relaxed),
                s.last_tx_data_ns.load(Ordering::Relaxed),
            );
            if rx != info.seen_rx {
                received.push((info.local_index, rx_data != info.seen_rx_data));
                info.seen_rx = rx;
                info.seen_rx_data = rx_data;
            }
            if tx != info.seen_tx {
                sent.push((
                    info.peer,
                    tx_data == info.seen_tx_data,
                    s.send_counter.load(Ordering::Relaxed),
                ));
                info.seen_tx = tx;
                info.seen_tx_data = tx_data;
            }
        }
        for (local_index, data) in received {
            let Some((peer, _)) = self.device.keypair(local_index) else {
                continue;
            };
            let Some(src) = self.device.peer(peer).and_then(|p| p.endpoint()) else {
                continue;
            };
            let _ = self
                .device
                .external_data_received(now, local_index, src, usize::from(data));
        }
        for (peer, keepalive, counter) in sent {
            self.device
                .external_data_sent(now, peer, keepalive, counter, 0);
        }
    }

    /// Frees the slots a previous control process left once their keys are too old for the
    /// workers to use.
    fn expire_inherited(&mut self) {
        let cutoff = self
            .clock
            .region_ns()
            .saturating_sub(REJECT_AFTER_TIME.as_nanos() as u64);
        for slot in self.sessions.expired_inherited(cutoff) {
            self.wipe_slot(slot);
            self.sessions.free(slot);
        }
    }

    /// One iteration: the datagrams waiting (or a TICK of waiting for one), then everything
    /// they caused.
    pub fn step(&mut self) {
        // (Fed handshakes: the main socket is read by the backend, which hands them over.)
        if !self.fed {
            self.wait_for_datagrams();
            // The lane first: a cookie-carrying retry never waits behind a flood's backlog.
            self.take_handshakes(true);
            self.take_handshakes(false);
        }
        // Activity first: a responder session confirmed by the peer's first data must count
        // before a worker's "no session" for the same peer, or control would start a needless
        // second handshake for replies that raced the confirmation.
        self.activity();
        self.worker_events();
        let now = self.now();
        if self.device.poll_timeout().is_some_and(|t| t <= now.mono) {
            self.device.handle_timeout(now);
        }
        self.drain_events();
        self.flush();
        self.expire_inherited();
        self.routes.push_log(&self.region, &self.peers);
        let now = self.now();
        self.routes.follow_pages(&self.region, now.mono);
        // Rejections are counted per window; this ends one even when traffic has stopped.
        self.auth.flush(now.unix);
        self.serve_uapi();
        self.serve_metrics();
    }

    /// Up to a batch of the handshake messages waiting on the lane or the main socket, each
    /// handled.
    fn take_handshakes(&mut self, lane: bool) {
        let mut buf = [0u8; 2048];
        let mut taken = 0;
        while taken < HANDSHAKE_BATCH {
            let socket = if lane {
                self.lane.as_ref()
            } else {
                Some(&self.socket)
            };
            let Some(Ok((n, src))) = socket.map(|s| s.recv_from(&mut buf)) else {
                break;
            };
            taken += 1;
            if lane {
                self.lane_messages += 1;
            }
            self.handle_handshake(canonical(src), &mut buf[..n], taken == HANDSHAKE_BATCH);
        }
    }

    /// Waits up to a TICK for a datagram on either handshake socket.
    fn wait_for_datagrams(&self) {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        use std::os::fd::AsFd as _;
        let tick = PollTimeout::try_from(TICK).unwrap_or(PollTimeout::NONE);
        let main = PollFd::new(self.socket.as_fd(), PollFlags::POLLIN);
        let _ = match &self.lane {
            Some(l) => poll(&mut [main, PollFd::new(l.as_fd(), PollFlags::POLLIN)], tick),
            None => poll(&mut [main], tick),
        };
    }

    /// One handshake message from `src`; `backlog`: at least HANDSHAKE_BATCH were waiting
    /// (the kernel's under-load condition).
    pub fn handle_handshake(&mut self, src: SocketAddr, datagram: &mut [u8], backlog: bool) {
        let now = self.now();
        let under_load = self.under_load(now.mono, backlog);
        let message = match datagram.first() {
            Some(1) => "initiation",
            Some(2) => "response",
            _ => "other",
        };
        let result = self.device.handle_datagram(now, src, datagram, under_load);
        if let Some(outcome) = crate::authlog::Outcome::of(&result) {
            let sender = self.device.handshake_sender().copied();
            self.auth
                .record(now.unix, message, outcome, sender.as_ref(), src);
        }
        // Publish a new session before its response leaves: the initiator's first data
        // message may arrive right behind it, and the workers must know the keys by then.
        self.drain_events();
        self.flush();
    }

    /// From now on control reads no datagrams itself: a backend that owns the socket's
    /// receiving side (the socket backend, where data and handshakes share it) hands the
    /// handshakes to [`Control::handle_handshake`], and [`Control::step`] never waits.
    pub fn feed_handshakes(&mut self) {
        self.fed = true;
        // Closed, the lane leaves the group, and the kernel sends all to the main socket.
        self.lane = None;
    }

    /// The socket handshakes are answered from (and data sent from, in the socket backend).
    pub fn socket(&self) -> &UdpSocket {
        &self.socket
    }

    /// Whether control should stop because its UAPI socket file was removed (what
    /// `wg-quick down` does to a userspace implementation).
    pub fn uapi_removed(&self) -> bool {
        self.uapi.as_ref().is_some_and(|u| !u.exists())
    }

    /// Whether the handshake path is overloaded: the kernel's rule is a queue of
    /// UNDER_LOAD_QUEUE_LEN handshakes, sticky for UNDER_LOAD_AFTER_TIME. Control's queue is
    /// its socket: a full batch of that many taken in one step is the same condition, and the
    /// state sticks for the same second.
    fn under_load(&mut self, now: Instant, backlog: bool) -> bool {
        if backlog {
            self.last_under_load = Some(now);
        }
        self.last_under_load
            .is_some_and(|t| !now.has_expired(t, UNDER_LOAD_AFTER_TIME))
    }

    /// Where the metrics endpoint listens, if it is on.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(|m| m.local_addr())
    }

    /// The UDP address handshakes arrive on.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Runs until `stop` is set, or until someone removes the UAPI socket file (what
    /// `wg-quick down` does to a userspace implementation, which then exits, as
    /// wireguard-go does).
    pub fn run(&mut self, stop: &AtomicBool) {
        while !stop.load(Ordering::Relaxed) && self.uapi.as_ref().is_none_or(|u| u.exists()) {
            self.step();
        }
    }

    pub fn region(&self) -> &Arc<Region> {
        &self.region
    }

    pub fn device(&self) -> &Device<Rng> {
        &self.device
    }
}
