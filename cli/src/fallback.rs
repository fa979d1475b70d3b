//! The fallback backend: where XDP or AF_XDP cannot be used (no capability, an old kernel, a
//! driver that refuses), the gateway still runs, as a userspace WireGuard on an ordinary UDP
//! socket and a TUN device. It is the same two parts as with XDP, in one process: control
//! (handshakes, timers, UAPI, metrics) and one worker, the same batch core, over a
//! [`SocketLink`] instead of AF_XDP. They share a region as they do across processes, so
//! `wgxdp show` and the stock `wg` see it the same way.
//!
//! The TUN device is the gateway's own interface, named as wg-quick names it (the
//! configuration's name, as the XDP data path names its own), with the file's Address and MTU
//! (`wgquick.rs`). The kernel routes between it and the LAN, as it would for kernel
//! WireGuard; as wg-quick does, the peers' allowed IPs are routed into it (after `Table`),
//! following every change (`wg set`), before control answers the change. It is announced at
//! start; it is the baseline the XDP path is measured against, not the product.

use crate::wgquick::{self, ip, Table};
use contract::clock::mono_ns;
use control::daemon::{Control, ControlOptions, HANDSHAKE_BATCH};
use control::InterfaceName;
use dataplane::link::Link as _;
use dataplane::neigh::{Neighbours, Snapshot};
use dataplane::prefixes::{self, PrefixSink};
use dataplane::socket_link::SocketLink;
use dataplane::worker::{Iface, Worker, WorkerConfig};
use proto::allowedips::Prefix;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Frames of the socket backend's worker (heap memory; 2 KiB each, as a UMEM's).
const FRAMES: usize = 2048;
const FRAME_SIZE: usize = 2048;
/// How often control's loop runs when no handshake arrived (timers have second granularity,
/// worker activity is picked up within this).
const CONTROL_EVERY: Duration = Duration::from_millis(5);

/// The kernel's routes into the TUN device, one per allowed IP, where `Table` puts them (what
/// wg-quick sets up, and, with a /0 in the main table, leaves out as `wgquick.rs` says).
struct Routes<'a> {
    dev: &'a str,
    table: Table,
}

impl Routes<'_> {
    /// `ip route VERB PREFIX dev DEV [table T]`, or `None` where `Table` adds no route.
    fn args<'s>(&'s self, verb: &'s str, prefix: &'s str, len: u8) -> Option<Vec<&'s str>> {
        let mut args = vec!["route", verb, prefix, "dev", self.dev];
        match &self.table {
            Table::Off => return None,
            Table::Main if len == 0 => return None,
            Table::Main => {}
            Table::Named(t) => args.extend(["table", t.as_str()]),
        }
        Some(args)
    }
}

impl PrefixSink for Routes<'_> {
    fn insert(&mut self, prefix: Prefix, _peer: u32) {
        let text = prefix.to_string();
        match self.args("replace", &text, prefix.len()) {
            Some(args) => {
                if let Err(e) = ip(&args) {
                    tracing::warn!(prefix = %text, interface = self.dev, "route not added: {e}");
                }
            }
            None if self.table == Table::Main => tracing::warn!(
                prefix = %text,
                interface = self.dev,
                "not routed into the interface: no policy routing for default routes \
                 (Table = N routes it into table N instead)"
            ),
            None => {}
        }
    }

    fn remove(&mut self, prefix: Prefix) {
        let text = prefix.to_string();
        if let Some(args) = self.args("del", &text, prefix.len()) {
            let _ = ip(&args);
        }
    }

    fn clear(&mut self) {
        // The routes `insert` added (protocol "boot", ip's default), not the kernel's own
        // routes for the device's addresses.
        for family in ["-4", "-6"] {
            let mut args = vec![family, "route", "flush", "dev", self.dev, "proto", "boot"];
            match &self.table {
                Table::Off => return,
                Table::Main => {}
                Table::Named(t) => args.extend(["table", t.as_str()]),
            }
            let _ = ip(&args);
        }
    }
}

/// Runs the gateway on TUN device `tun` until `stop` is set (or, with a UAPI socket, until
/// that socket file is removed). `ready` is written once the device is up with its addresses
/// and routes and control listens.
pub fn run(
    opts: &ControlOptions,
    tun: &InterfaceName,
    ready: Option<&Path>,
    stop: &AtomicBool,
) -> Result<(), String> {
    let dev = tun_tap::Iface::without_packet_info(tun.as_str(), tun_tap::Mode::Tun)
        .map_err(|e| format!("creating TUN {tun}: {e}"))?;
    let mtu = wgquick::mtu(&opts.config);
    wgquick::set_addresses_and_mtu_up(&opts.config, tun.as_str())?;
    wgquick::enable_forwarding();

    let mut control = Control::new(opts).map_err(|e| e.to_string())?;
    control.feed_handshakes();
    let region = control.region().clone();
    let socket = control.socket().try_clone().map_err(|e| e.to_string())?;
    let mut port = control.local_addr().map_err(|e| e.to_string())?.port();
    let mut arena = vec![0u8; FRAMES * FRAME_SIZE];
    let link = SocketLink::new(&mut arena, FRAME_SIZE, socket, dev, port)
        .map_err(|e| format!("socket backend: {e}"))?;
    // Control, in this process, started the prefix log with a reset and every prefix; the
    // worker reads the allowed-IPs table in the region, as on XDP.
    let mut routes = Routes {
        dev: tun.as_str(),
        table: Table::of(&opts.config),
    };
    prefixes::sync(&region, &mut routes);
    let reader = allowedips::Reader::attach(region.clone()).map_err(|e| e.to_string())?;
    // The socket sends from whatever address the kernel picks; these only fill the headers
    // the worker writes and the link reads back.
    let tunnel_v4 = opts
        .config
        .interface
        .addresses
        .iter()
        .find_map(|a| match a.addr() {
            IpAddr::V4(v4) => Some(v4),
            IpAddr::V6(_) => None,
        });
    let tunnel_v6 = opts
        .config
        .interface
        .addresses
        .iter()
        .find_map(|a| match a.addr() {
            IpAddr::V6(v6) => Some(v6),
            IpAddr::V4(_) => None,
        });
    let cfg = WorkerConfig {
        id: 0,
        wan: Iface {
            name: "udp".into(),
            index: 0,
            mac: [0; 6],
            v4: Some(Ipv4Addr::UNSPECIFIED),
            v6: Some(Ipv6Addr::UNSPECIFIED),
            // Unused: no next hop is ever known, so the workers never send out of these.
            mtu: usize::from(u16::MAX),
        },
        lan: Some(Iface {
            name: tun.to_string(),
            index: 0,
            mac: [0; 6],
            v4: tunnel_v4,
            v6: tunnel_v6,
            mtu: usize::from(u16::MAX),
        }),
        listen_port: port,
        mtu,
    };
    // No next hop is ever known: every packet goes through the kernel (TUN or socket).
    let neighbours = Neighbours::fixed(Snapshot::default());
    let mut worker = Worker::new(cfg, region.clone(), link, neighbours, reader);
    if let Some(f) = ready {
        // Written aside and renamed: `wgxdp up` polls for the file.
        let tmp = f.with_extension("tmp");
        std::fs::write(&tmp, format!("wgxdp fallback backend: TUN {tun}\n"))
            .and_then(|()| std::fs::rename(&tmp, f))
            .map_err(|e| format!("{}: {e}", f.display()))?;
    }
    let mut last_control = std::time::Instant::now();
    while !stop.load(Ordering::Relaxed) && !control.uapi_removed() {
        let moved = worker.poll_once(mono_ns());
        let link = worker.link_mut();
        let backlog = link.queued_handshakes() >= HANDSHAKE_BATCH;
        let mut fed = false;
        for (src, mut datagram) in link.take_handshakes() {
            control.handle_handshake(src, &mut datagram, backlog);
            fed = true;
        }
        if fed || last_control.elapsed() >= CONTROL_EVERY {
            last_control = std::time::Instant::now();
            control.step();
            prefixes::sync(&region, &mut routes);
            // `wg set listen-port`: control moved its socket; data follows it.
            let now_port = control.local_addr().map_or(port, |a| a.port());
            if now_port != port {
                if let Ok(s) = control.socket().try_clone() {
                    if worker.link_mut().set_socket(s, now_port).is_ok() {
                        port = now_port;
                    }
                }
            }
        }
        if moved == 0 && !fed {
            worker.link_mut().wait(1, None);
        }
    }
    let _ = std::fs::remove_file(&opts.region);
    Ok(())
}
