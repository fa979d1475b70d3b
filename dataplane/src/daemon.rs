//! The data-path process: attaches the XDP programs, starts one pinned worker per queue on
//! the shared region (where the workers read control's allowed-IPs table), keeps the LAN
//! program's peer prefixes in step with control's changes, and detaches everything when it
//! stops.

use crate::neigh;
use crate::prefixes::{self, PrefixSink};
use crate::worker::{Exchange, Iface, Share, Worker, WorkerConfig};
use crate::xdp::{AttachMode, Role, Steering, XdpError};
use crate::xsk::{BindMode, Port, Umem, UmemSpec, XskError, XskLink};
use contract::{Region, ShmError};
use proto::allowedips::Prefix;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum DataplaneError {
    #[error("interface {0}: {1}")]
    Interface(String, String),
    #[error("shared region: {0}")]
    Shm(#[from] ShmError),
    #[error("{0}")]
    Xdp(#[from] XdpError),
    #[error("worker {0}: AF_XDP: {1}")]
    Worker(usize, XskError),
    #[error("worker {0} stopped unexpectedly; the data path stops rather than run without it")]
    WorkerDied(usize),
    #[error("the gateway's own interface: {0}")]
    Tun(#[from] crate::xsk::tun::TunError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

#[derive(Debug, Clone)]
pub struct DataplaneOptions {
    pub region: PathBuf,
    pub wan: String,
    /// `None`: one-armed (the WAN interface also carries the plaintext).
    pub lan: Option<String>,
    pub workers: usize,
    pub mtu: usize,
    /// The gateway's own interface (wg0): a multi-queue TUN device of this name, one queue per
    /// worker, created here and gone when the data path exits. `None`: no local interface
    /// (packets for the host's own addresses take the kernel path).
    pub tun: Option<String>,
    /// Called once everything is attached and running, with a one-line summary.
    pub ready_file: Option<PathBuf>,
}

/// The tunnel MTU when the configuration names none: what wg-quick computes for the common
/// 1500-byte path (1500 - 80).
pub const DEFAULT_MTU: usize = 1420;
/// The smallest tunnel MTU: IPv4's minimum (RFC 791), as the kernel's for a link.
pub const MIN_MTU: usize = 68;
/// The largest tunnel MTU a worker's frames hold: a plaintext packet sits behind the
/// headroom and its Ethernet header, and is sealed in place with padding to 16 and the tag
/// after it (frames are [`UmemSpec`]'s 2048 bytes).
pub const MAX_MTU: usize = (2048 - crate::packet::HEADROOM - crate::packet::ETH_LEN - 16) / 16 * 16;
const _: () = assert!(MAX_MTU >= 1500 && MAX_MTU < 2048);

/// An Ethernet address as sysfs, the ARP table and `ip` write it: six hex bytes separated
/// by colons, nothing more or less.
pub fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let mut m = [0u8; 6];
    let mut parts = text.split(':');
    for b in &mut m {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(m)
}

/// MAC and addresses of `name`, from sysfs and getifaddrs.
pub fn iface(name: &str) -> Result<Iface, DataplaneError> {
    let err = |m: String| DataplaneError::Interface(name.to_string(), m);
    let text = std::fs::read_to_string(format!("/sys/class/net/{name}/address"))
        .map_err(|_| err("no such interface".into()))?;
    let mac = parse_mac(text.trim()).ok_or_else(|| err(format!("unreadable MAC {text:?}")))?;
    let (mut v4, mut v6) = (None, None);
    for a in nix::ifaddrs::getifaddrs().map_err(|e| err(e.to_string()))? {
        if a.interface_name != name {
            continue;
        }
        let Some(addr) = a.address else { continue };
        if let Some(s) = addr.as_sockaddr_in() {
            v4.get_or_insert(s.ip());
        } else if let Some(s) = addr.as_sockaddr_in6() {
            let ip = s.ip();
            // The link-local address cannot be a peer's endpoint; prefer a global one.
            if (ip.segments()[0] & 0xffc0) != 0xfe80 {
                v6.get_or_insert(ip);
            }
        }
    }
    let index = std::fs::read_to_string(format!("/sys/class/net/{name}/ifindex"))
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .ok_or_else(|| err("unreadable interface index".into()))?;
    let mtu = std::fs::read_to_string(format!("/sys/class/net/{name}/mtu"))
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .ok_or_else(|| err("unreadable MTU".into()))?;
    Ok(Iface {
        name: name.to_string(),
        index,
        mac,
        v4,
        v6,
        mtu,
    })
}

/// Receive queues of `name` (sysfs `queues/rx-*`).
pub fn rx_queues(name: &str) -> usize {
    std::fs::read_dir(format!("/sys/class/net/{name}/queues"))
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with("rx-"))
                .count()
        })
        .unwrap_or(1)
        .max(1)
}

/// Waits for the control process to create the region.
fn attach_region(path: &PathBuf) -> Result<Region, DataplaneError> {
    for _ in 0..100 {
        match Region::attach(path) {
            Ok(r) => return Ok(r),
            Err(ShmError::Io { .. }) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Region::attach(path)?)
}

/// Runs the data path until `stop` is set. Everything attached is detached before returning.
pub fn run(opts: &DataplaneOptions, stop: &Arc<AtomicBool>) -> Result<(), DataplaneError> {
    let wan = iface(&opts.wan)?;
    let lan = opts.lan.as_deref().map(iface).transpose()?;
    let region = Arc::new(attach_region(&opts.region)?);
    let port = u16::try_from(region.header().listen_port.load(Ordering::Relaxed)).unwrap_or(0);
    let mut steering = Steering::load(port)?;
    // This host's addresses, before anything is attached: LAN traffic to them is never
    // steered, and WireGuard data only when addressed to them.
    let mut local = LocalAddrs::default();
    local.sync(&mut steering)?;
    let mut summary = Vec::new();
    let wan_role = if lan.is_some() {
        Role::Wan
    } else {
        Role::OneArmed
    };
    let mode = steering.attach(wan_role, &wan.name)?;
    summary.push(format!("{} on {}", mode_name(mode), wan.name));
    if let Some(l) = &lan {
        let mode = steering.attach(Role::Lan, &l.name)?;
        summary.push(format!("{} on {}", mode_name(mode), l.name));
    }
    let mut queues = rx_queues(&wan.name);
    if let Some(l) = &lan {
        queues = queues.min(rx_queues(&l.name));
    }
    let workers = opts
        .workers
        .clamp(1, queues)
        .min(region.layout().workers.max(1));
    let (neighbours, resolver) = neigh::spawn(stop.clone())?;
    // The workers read the allowed-IPs table in the region, where control writes it; the
    // reader slots a previous data path left are freed (its workers are gone). This thread
    // keeps the LAN program's peer tries in step with control's changes (below).
    allowedips::reset_readers(&*region);
    prefixes::follow_from_scratch(&region, &mut steering);
    // Flow offload (docs/egress.md): where the gateway has its own interface, the kernel
    // routes and translates the peers' traffic to the internet, and the workers carry each
    // flow themselves once connection tracking has it established.
    let mut offload = None;
    if opts.tun.is_some() {
        let table = crate::offload::table::FlowTable::new(crate::offload::MAX_FLOWS);
        let writer = crate::offload::table::Writer::new(table.clone());
        let started = steering
            .take_flow_map()
            .map_err(|e| e.to_string())
            .and_then(|map| {
                // The port that carries plaintext for peers: the WAN one of a one-armed
                // gateway.
                let lan = opts.lan.clone().unwrap_or_else(|| opts.wan.clone());
                crate::offload::spawn(writer, map, region.clone(), lan, stop.clone())
                    .map_err(|e| e.to_string())
            });
        match started {
            Ok(handle) => {
                steering.set_flow_mtu(u16::try_from(opts.mtu).unwrap_or(u16::MAX))?;
                summary.push("flow offload".to_string());
                offload = Some((table, handle));
            }
            Err(e) => tracing::warn!("flow offload is off ({e}); the kernel carries every flow"),
        }
    }
    let flows = offload.as_ref().map(|(t, _)| t.clone());
    // Zero-copy where the drivers support it (NICs with AF_XDP zero-copy), else copy (veth,
    // most virtual devices), and say which.
    let mut ports = vec![wan.name.as_str()];
    ports.extend(lan.as_ref().map(|l| l.name.as_str()));
    let (mode, no_zero_copy) = crate::xsk::choose_mode(&ports, UmemSpec::default());
    if let Some(why) = &no_zero_copy {
        tracing::info!("AF_XDP in copy mode: zero-copy refused ({why})");
    }
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    // The device appears with its first queue; `wgxdp up` gives it its addresses once the
    // data path is ready.
    let mut tun_queues = Vec::new();
    if let Some(name) = &opts.tun {
        for _ in 0..workers {
            tun_queues.push(Some(crate::xsk::tun::TunQueue::open(name)?));
        }
        summary.push(format!("interface {name}"));
    }

    // The UMEMs live here and outlive every worker thread (scoped below), so that a worker
    // may lend frames to another for crypto (one tunnel across cores, `Exchange`). Each
    // worker makes its own in its slot, on its own (pinned) thread, so that its pages are
    // first touched on its NUMA node.
    let mut umems: Vec<Option<Umem>> = (0..workers).map(|_| None).collect();
    let exchange = (share_crypto() && workers > 1)
        .then(|| Exchange::new(workers))
        .transpose()?;
    if exchange.is_some() {
        summary.push("crypto shared across workers".to_string());
    }
    let ctx = Running {
        opts,
        region: &region,
        steering: &mut steering,
        local: &mut local,
        summary,
        wan_role,
        mode,
        cores: &cores,
        port,
        wan: &wan,
        lan: lan.as_ref(),
        neighbours: &neighbours,
        flows: &flows,
        tun_queues: &mut tun_queues,
    };
    let result =
        std::thread::scope(|scope| run_workers(scope, ctx, &mut umems, exchange.as_ref(), stop));
    let _ = resolver.join();
    if let Some((_, handle)) = offload {
        let _ = handle.join();
    }
    drop(steering);
    result
}

/// Whether workers share one tunnel's crypto (`WGXDP_SHARE_CRYPTO=0` turns it off, for
/// comparisons).
fn share_crypto() -> bool {
    std::env::var("WGXDP_SHARE_CRYPTO").map_or(true, |v| v != "0")
}

/// What the workers' scope needs of `run`.
struct Running<'r> {
    opts: &'r DataplaneOptions,
    region: &'r Arc<Region>,
    steering: &'r mut Steering,
    local: &'r mut LocalAddrs,
    summary: Vec<String>,
    wan_role: Role,
    mode: BindMode,
    cores: &'r [core_affinity::CoreId],
    port: u16,
    wan: &'r Iface,
    lan: Option<&'r Iface>,
    neighbours: &'r neigh::Neighbours,
    flows: &'r Option<Arc<crate::offload::table::FlowTable>>,
    tun_queues: &'r mut [Option<crate::xsk::tun::TunQueue>],
}

/// Starts the workers in `scope`, one per UMEM, and watches them until `stop`.
fn run_workers<'s, 'u: 's>(
    scope: &'s std::thread::Scope<'s, '_>,
    ctx: Running<'_>,
    umems: &'u mut [Option<Umem>],
    exchange: Option<&Arc<Exchange<'u>>>,
    stop: &Arc<AtomicBool>,
) -> Result<(), DataplaneError> {
    let Running {
        opts,
        region,
        steering,
        local,
        mut summary,
        wan_role,
        mode,
        cores,
        port,
        wan,
        lan,
        neighbours,
        flows,
        tun_queues,
    } = ctx;
    // However this returns (an error included), the workers stop: the scope waits for them.
    let _stop = StopOnDrop(stop);
    let workers = umems.len();
    // Each worker binds its sockets on its own thread (they are not Send), reports the socket
    // fds for the XSKMAPs, waits for the go, and runs.
    let (fd_tx, fd_rx) =
        std::sync::mpsc::channel::<(usize, Result<(i32, Option<i32>), XskError>)>();
    let go = Arc::new(AtomicBool::new(false));
    let mut handles = Vec::new();
    for (q, slot) in umems.iter_mut().enumerate() {
        let reader = allowedips::Reader::attach(region.clone())
            .map_err(|e| DataplaneError::Interface(wan.name.clone(), e.to_string()))?;
        let flows = flows.clone();
        let share = exchange.map(|e| Share::new(e.clone(), q));
        let (region, neighbours, stop, go, fd_tx) = (
            region.clone(),
            neighbours.clone(),
            stop.clone(),
            go.clone(),
            fd_tx.clone(),
        );
        let cfg = WorkerConfig {
            id: q,
            wan: wan.clone(),
            lan: lan.cloned(),
            listen_port: port,
            mtu: opts.mtu,
        };
        let core = cores.get(q % cores.len().max(1)).copied();
        let tun_queue = tun_queues.get_mut(q).and_then(Option::take);
        handles.push(
            std::thread::Builder::new()
                .name(format!("wgxdp-worker-{q}"))
                .spawn_scoped(scope, move || {
                    if let Some(c) = core {
                        core_affinity::set_for_current(c);
                    }
                    // The slot is lent to this thread alone (`&mut`); the UMEM in it is
                    // shared from here on by its sockets and frames for as long as the
                    // scope lasts.
                    let umem: &'u Umem = match Umem::new(UmemSpec::default()) {
                        Ok(u) => slot.insert(u),
                        Err(e) => {
                            let _ = fd_tx.send((q, Err(e)));
                            return;
                        }
                    };
                    let spec = umem.spec();
                    let bound = (|| {
                        let wan_port =
                            Port::bind(umem, &cfg.wan.name, q as u32, mode, spec.ring_size)?;
                        let lan_port = match &cfg.lan {
                            Some(l) => {
                                Some(Port::bind(umem, &l.name, q as u32, mode, spec.ring_size)?)
                            }
                            None => None,
                        };
                        Ok((wan_port, lan_port))
                    })();
                    let (wan_port, lan_port) = match bound {
                        Ok(b) => b,
                        Err(e) => {
                            let _ = fd_tx.send((q, Err(e)));
                            return;
                        }
                    };
                    let _ = fd_tx.send((q, Ok((wan_port.fd(), lan_port.as_ref().map(Port::fd)))));
                    while !go.load(Ordering::Acquire) {
                        if stop.load(Ordering::Relaxed) {
                            return;
                        }
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    let Some(pool) = umem.pool() else { return };
                    let link = XskLink::new(pool, wan_port, lan_port, tun_queue);
                    let mut worker = Worker::new(cfg, region, link, neighbours, reader);
                    if let Some(t) = flows {
                        worker = worker.with_flows(t);
                    }
                    if let Some(s) = share {
                        worker = worker.with_share(s);
                    }
                    worker.run(&stop);
                })?,
        );
    }
    drop(fd_tx);
    let mut failure = None;
    for (q, fds) in fd_rx.iter().take(workers) {
        match fds {
            Ok((w, l)) => {
                steering.set_socket(wan_role, q as u32, w)?;
                if let Some(l) = l {
                    steering.set_socket(Role::Lan, q as u32, l)?;
                }
            }
            Err(e) => failure = Some(DataplaneError::Worker(q, e)),
        }
    }
    if let Some(e) = failure {
        stop.store(true, Ordering::Relaxed);
        for h in handles {
            let _ = h.join();
        }
        return Err(e);
    }
    go.store(true, Ordering::Release);
    // This thread keeps the LAN program's tries in step with control (a 100k-peer change is
    // a second of map updates): keep it off the workers' cores when there is a core to spare.
    if let Some(spare) = cores.get(workers..).and_then(<[_]>::last) {
        core_affinity::set_for_current(*spare);
    }
    summary.push(format!(
        "{workers} worker(s), AF_XDP {}",
        match mode {
            BindMode::ZeroCopy => "zero-copy",
            BindMode::Copy => "copy mode",
        }
    ));
    let line = format!("wgxdp data path: XDP {}", summary.join(", "));
    tracing::info!(workers, "{line}");
    if let Some(f) = &opts.ready_file {
        // Written aside and renamed: `wgxdp up` polls for the file and reads it at once.
        let tmp = f.with_extension("tmp");
        std::fs::write(&tmp, format!("{line}\n"))?;
        std::fs::rename(&tmp, f)?;
    }

    let mut port_now = port;
    let mut last_stats = std::time::Instant::now();
    let mut lan_via_kernel = false;
    let mut died = None;
    while !stop.load(Ordering::Relaxed) {
        // A worker that is gone (a panic) leaves its queue's peer-bound traffic to nobody:
        // the LAN program drops it meanwhile (no socket), and the data path stops loudly.
        if let Some(q) = first_finished(&handles) {
            tracing::error!(
                worker = q,
                "worker stopped unexpectedly; stopping the data path"
            );
            died = Some(q);
            stop.store(true, Ordering::Relaxed);
            break;
        }
        prefixes::sync(region, steering);
        // The kernel translates LAN traffic (the offload thread saw it): the LAN programs pass
        // what they steered to peers to it as well, so that it tracks both directions.
        if !lan_via_kernel && flows.as_ref().is_some_and(|f| f.lan_translated()) {
            lan_via_kernel = true;
            if let Err(e) = steering.set_lan_via_kernel() {
                tracing::warn!("passing LAN traffic to the kernel: {e}");
            }
        }
        if last_stats.elapsed() >= Duration::from_secs(1) {
            last_stats = std::time::Instant::now();
            // Addresses come and go (DHCP, an operator's `ip addr`): follow them.
            if let Err(e) = local.sync(steering) {
                tracing::warn!("following the local addresses: {e}");
            }
            if let Ok(v) = steering.stats() {
                for (slot, n) in region.header().xdp_verdicts.iter().zip(v) {
                    slot.store(n, Ordering::Relaxed);
                }
            }
        }
        // `wg set listen-port`: the XDP programs follow control's socket.
        let p = u16::try_from(region.header().listen_port.load(Ordering::Relaxed)).unwrap_or(0);
        if p != port_now && p != 0 && steering.set_listen_port(p).is_ok() {
            port_now = p;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    for h in handles {
        let _ = h.join();
    }
    match died {
        Some(q) => Err(DataplaneError::WorkerDied(q)),
        None => Ok(()),
    }
}

/// Sets the flag when dropped.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// This host's addresses as the XDP programs know them, kept in step with the interfaces.
#[derive(Debug, Default)]
struct LocalAddrs {
    known: crate::FastSet<IpAddr>,
}

impl LocalAddrs {
    fn sync(&mut self, steering: &mut Steering) -> Result<(), DataplaneError> {
        let now = neigh::local_addrs()
            .map_err(|e| DataplaneError::Interface("(all)".into(), e.to_string()))?;
        for a in now.difference(&self.known) {
            steering.add_local_addr(*a)?;
        }
        for a in self.known.difference(&now) {
            let _ = steering.remove_local_addr(*a);
        }
        self.known = now;
        Ok(())
    }
}

/// The first worker thread that has finished, if any (while running, none should have).
fn first_finished<T>(handles: &[T]) -> Option<usize>
where
    T: Finished,
{
    handles.iter().position(Finished::is_finished)
}

/// A thread handle that says whether its thread ended (scoped or not).
trait Finished {
    fn is_finished(&self) -> bool;
}

impl<T> Finished for std::thread::JoinHandle<T> {
    fn is_finished(&self) -> bool {
        std::thread::JoinHandle::is_finished(self)
    }
}

impl<T> Finished for std::thread::ScopedJoinHandle<'_, T> {
    fn is_finished(&self) -> bool {
        std::thread::ScopedJoinHandle::is_finished(self)
    }
}

fn mode_name(m: AttachMode) -> &'static str {
    match m {
        AttachMode::Native => "native",
        AttachMode::Generic => "generic (driver lacks native XDP)",
    }
}

impl PrefixSink for Steering {
    fn insert(&mut self, prefix: Prefix, peer: u32) {
        let _ = self.insert_peer_prefix(prefix, peer);
    }

    fn remove(&mut self, prefix: Prefix) {
        let _ = self.remove_peer_prefix(prefix);
    }

    fn clear(&mut self) {
        if let Err(e) = self.clear_peer_prefixes() {
            tracing::error!("clearing the LAN program's peer prefixes: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn macs_parse_only_whole() {
        use super::parse_mac as mac;
        assert_eq!(mac("02:00:00:00:00:0a"), Some([2, 0, 0, 0, 0, 10]));
        assert_eq!(mac("02:00:00:00:00"), None);
        assert_eq!(mac("02:00:00:00:00:0a:0b"), None);
        assert_eq!(mac("02:00:00:00:00:zz"), None);
    }

    #[test]
    fn a_finished_worker_is_noticed() {
        let alive = std::thread::spawn(|| std::thread::sleep(std::time::Duration::from_secs(2)));
        let dead = std::thread::spawn(|| {});
        let handles = vec![alive, dead];
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
        while super::first_finished(&handles).is_none() {
            assert!(std::time::Instant::now() < deadline, "never noticed");
            std::thread::yield_now();
        }
        assert_eq!(super::first_finished(&handles), Some(1));
    }
}
