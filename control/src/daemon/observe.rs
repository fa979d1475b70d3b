//! What operators read: the `wg show` view (UAPI `get=1`) and the Prometheus page. Both add
//! the workers' per-session counters to what the protocol core counts (handshake messages),
//! and keep counting what retired sessions carried.

use super::Control;
use crate::metrics::Page;
use crate::uapi::{DeviceView, PeerView};
use contract::layout::WorkerStats;
use proto::device::PeerId;
use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;

/// How old a served metrics page may be.
const METRICS_MAX_AGE_NS: u64 = 1_000_000_000;

impl Control {
    /// Per peer: bytes received, bytes sent, packets received, packets sent by the workers,
    /// over its live and retired sessions.
    fn data_counters(&self) -> HashMap<PeerId, [u64; 4]> {
        let mut out: HashMap<PeerId, [u64; 4]> = HashMap::new();
        for (slot, info) in self.sessions.live() {
            let s = &self.region.sessions()[slot as usize];
            let e = out.entry(info.peer).or_default();
            for (a, c) in e
                .iter_mut()
                .zip([&s.rx_bytes, &s.tx_bytes, &s.rx_packets, &s.tx_packets])
            {
                *a += c.load(Relaxed);
            }
        }
        for id in self.peers.ids() {
            let e = out.entry(id).or_default();
            for (a, r) in e.iter_mut().zip(self.peers.retired(id)) {
                *a += r;
            }
        }
        out
    }

    /// What `wg show` sees.
    pub fn view(&self) -> DeviceView {
        let data = self.data_counters();
        let peers = self
            .device
            .peers()
            .map(|(id, p)| {
                let d = data.get(&id).copied().unwrap_or_default();
                let st = p.stats();
                PeerView {
                    public_key: *p.public_key().as_bytes(),
                    preshared_key: *p.preshared_key().as_bytes(),
                    endpoint: p.endpoint(),
                    last_handshake: st.last_handshake,
                    rx_bytes: st.rx_bytes + d[0],
                    tx_bytes: st.tx_bytes + d[1],
                    persistent_keepalive: p.persistent_keepalive().map_or(0, |d| d.as_secs()),
                    allowed_ips: self.peers.prefixes(id).map(|p| p.to_string()).collect(),
                }
            })
            .collect();
        DeviceView {
            private_key: *self.device.private_key().as_bytes(),
            listen_port: self.socket.local_addr().map_or(0, |a| a.port()),
            fwmark: self.fwmark,
            peers,
        }
    }

    /// Answers every scrape the metrics thread has waiting.
    /// Answers waiting scrapes. The page is O(peers) to render, so it is rendered at most
    /// once per [`METRICS_MAX_AGE`] however many scrapers ask (Prometheus scrapes every 15 s
    /// or so; a client asking in a loop gets the same page until it is due).
    pub(crate) fn serve_metrics(&mut self) {
        while let Some(s) = self.metrics.as_ref().and_then(|m| m.poll()) {
            let now = self.clock.region_ns();
            let fresh = self
                .metrics_cache
                .as_ref()
                .is_some_and(|(at, _)| now.saturating_sub(*at) < METRICS_MAX_AGE_NS);
            if !fresh {
                self.metrics_cache = Some((now, self.metrics_page()));
            }
            if let Some((_, page)) = &self.metrics_cache {
                s.answer(page.clone());
            }
        }
    }

    /// The Prometheus page.
    pub fn metrics_page(&self) -> String {
        let mut p = Page::default();
        let data = self.data_counters();
        let keys: Vec<(PeerId, String)> = self
            .device
            .peers()
            .map(|(id, peer)| (id, peer.public_key().to_base64()))
            .collect();
        for (i, (name, help)) in [
            ("wgxdp_peer_rx_bytes_total", "Bytes received from the peer."),
            ("wgxdp_peer_tx_bytes_total", "Bytes sent to the peer."),
            (
                "wgxdp_peer_rx_packets_total",
                "Data packets received from the peer.",
            ),
            (
                "wgxdp_peer_tx_packets_total",
                "Data packets sent to the peer.",
            ),
        ]
        .into_iter()
        .enumerate()
        {
            p.family(name, "counter", help);
            for (id, key) in &keys {
                let d = data.get(id).copied().unwrap_or_default();
                let hs = self.device.peer(*id).map(|x| x.stats()).unwrap_or_default();
                // Handshake messages count as bytes too, as in `wg show`.
                let extra = match i {
                    0 => hs.rx_bytes,
                    1 => hs.tx_bytes,
                    _ => 0,
                };
                p.sample(name, &[("public_key", key)], (d[i] + extra) as f64);
            }
        }
        p.family(
            "wgxdp_peer_last_handshake_timestamp_seconds",
            "gauge",
            "UNIX time of the peer's latest handshake (absent before the first).",
        );
        for (id, key) in &keys {
            if let Some(t) = self.device.peer(*id).and_then(|x| x.stats().last_handshake) {
                p.sample(
                    "wgxdp_peer_last_handshake_timestamp_seconds",
                    &[("public_key", key)],
                    t.as_secs_f64(),
                );
            }
        }
        let workers: Vec<_> = (0..self.region.layout().workers)
            .filter_map(|w| Some((w, self.region.worker_stats(w)?)))
            .filter(|(_, s)| s.heartbeat_ns.load(Relaxed) != 0)
            .collect();
        // Liveness: a worker loops at least every few milliseconds, idle or not.
        let region_now = self.clock.region_ns();
        p.family(
            "wgxdp_worker_heartbeat_age_seconds",
            "gauge",
            "Seconds since each worker's last loop (a stuck worker grows it).",
        );
        p.family(
            "wgxdp_worker_up",
            "gauge",
            "1 while the worker loops (a heartbeat within the last second), else 0.",
        );
        for (w, s) in &workers {
            let age = region_now.saturating_sub(s.heartbeat_ns.load(Relaxed));
            let w = w.to_string();
            p.sample(
                "wgxdp_worker_heartbeat_age_seconds",
                &[("worker", &w)],
                age as f64 / 1e9,
            );
            p.sample(
                "wgxdp_worker_up",
                &[("worker", &w)],
                f64::from(u8::from(age < 1_000_000_000)),
            );
        }
        type Counter = fn(&WorkerStats) -> &AtomicU64;
        let counters: [(&str, &str, Counter); 8] = [
            (
                "wgxdp_worker_kernel_path_packets_total",
                "Packets each worker handed to the kernel's stack (no next hop known, or not its to send).",
                |s| &s.to_kernel,
            ),
            (
                "wgxdp_worker_keepalives_total",
                "Keepalives (empty data messages) each worker received.",
                |s| &s.keepalives,
            ),
            (
                "wgxdp_worker_mss_clamped_total",
                "TCP SYNs whose MSS each worker lowered to fit the tunnel.",
                |s| &s.mss_clamped,
            ),
            (
                "wgxdp_worker_offloaded_out_total",
                "Packets of offloaded flows each worker translated and sent towards the internet itself.",
                |s| &s.offloaded_out,
            ),
            (
                "wgxdp_worker_offloaded_in_total",
                "Return packets of offloaded flows each worker translated back and sealed itself.",
                |s| &s.offloaded_in,
            ),
            (
                "wgxdp_worker_crypto_handed_total",
                "Packets whose AEAD each worker handed to other workers (one tunnel across cores).",
                |s| &s.crypto_handed,
            ),
            (
                "wgxdp_worker_crypto_helped_total",
                "Packets each worker sealed or opened for another worker.",
                |s| &s.crypto_helped,
            ),
            (
                "wgxdp_worker_crypto_reclaimed_total",
                "Packets whose AEAD a worker took back undone because no other worker was free in time.",
                |s| &s.crypto_reclaimed,
            ),
        ];
        for (name, help, counter) in counters {
            p.family(name, "counter", help);
            for (w, s) in &workers {
                p.sample(
                    name,
                    &[("worker", &w.to_string())],
                    counter(s).load(Relaxed) as f64,
                );
            }
        }
        p.family(
            "wgxdp_worker_packets_total",
            "counter",
            "Frames each worker received (rx) and transmitted (tx), by side.",
        );
        for (w, s) in &workers {
            let w = w.to_string();
            for (dir, side, c) in [
                ("rx", "wan", &s.rx_wan),
                ("rx", "lan", &s.rx_lan),
                ("tx", "wan", &s.tx_wan),
                ("tx", "lan", &s.tx_lan),
            ] {
                p.sample(
                    "wgxdp_worker_packets_total",
                    &[("worker", &w), ("direction", dir), ("side", side)],
                    c.load(Relaxed) as f64,
                );
            }
        }
        p.family(
            "wgxdp_worker_drops_total",
            "counter",
            "Packets each worker dropped, by reason.",
        );
        for (w, s) in &workers {
            let w = w.to_string();
            for d in contract::DropReason::ALL {
                p.sample(
                    "wgxdp_worker_drops_total",
                    &[("worker", &w), ("reason", d.name())],
                    s.drops[d as usize].load(Relaxed) as f64,
                );
            }
        }
        p.family(
            "wgxdp_xdp_packets_total",
            "counter",
            "Packets the XDP programs redirected to the workers or passed to the kernel, by reason.",
        );
        for (v, n) in ebpf::abi::Verdict::ALL
            .iter()
            .zip(&self.region.header().xdp_verdicts)
        {
            p.sample(
                "wgxdp_xdp_packets_total",
                &[("verdict", &v.c_name().to_lowercase())],
                n.load(Relaxed) as f64,
            );
        }
        let h = self.region.header();
        for (name, kind, help, v) in [
            (
                "wgxdp_offload_flows",
                "gauge",
                "Flows the data path carries itself (flow offload).",
                &h.offload_flows,
            ),
            (
                "wgxdp_offload_refused_total",
                "counter",
                "Flows left on the kernel's path because the offload table was full.",
                &h.offload_refused,
            ),
            (
                "wgxdp_offload_resyncs_total",
                "counter",
                "Times the offload lost connection-tracking events and listed every flow again.",
                &h.offload_resyncs,
            ),
        ] {
            p.family(name, kind, help);
            p.sample(name, &[], v.load(Relaxed) as f64);
        }
        p.family(
            "wgxdp_handshakes_total",
            "counter",
            "Handshake messages that passed MAC1, by message and outcome (see the auth log).",
        );
        let mut cookies = 0;
        for ((message, outcome), n) in &self.auth.counts {
            let (result, reason) = match outcome {
                crate::authlog::Outcome::Accepted => ("accepted", ""),
                crate::authlog::Outcome::Rejected(r) => ("rejected", *r),
            };
            if reason == "mac2_required" {
                cookies += n;
            }
            p.sample(
                "wgxdp_handshakes_total",
                &[("message", message), ("result", result), ("reason", reason)],
                *n as f64,
            );
        }
        p.family(
            "wgxdp_cookie_replies_sent_total",
            "counter",
            "Cookie replies sent to handshake messages under load.",
        );
        p.sample("wgxdp_cookie_replies_sent_total", &[], cookies as f64);
        p.family(
            "wgxdp_cookie_lane_messages_total",
            "counter",
            "Handshake messages with a non-zero mac2 (retries with a cookie), read from the \
             cookie lane ahead of the main socket.",
        );
        p.sample(
            "wgxdp_cookie_lane_messages_total",
            &[],
            self.lane_messages as f64,
        );
        p.family(
            "wgxdp_failover_handshakes_total",
            "counter",
            "Handshakes this gateway started because a known peer's data for an unknown index \
             reached it (the peer failing over from another gateway).",
        );
        p.sample(
            "wgxdp_failover_handshakes_total",
            &[],
            self.failover.started as f64,
        );
        p.family("wgxdp_peers", "gauge", "Configured peers.");
        p.sample("wgxdp_peers", &[], keys.len() as f64);
        p.family(
            "wgxdp_build_info",
            "gauge",
            "Always 1; the running build's version in its labels.",
        );
        p.sample(
            "wgxdp_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))],
            1.0,
        );
        p.finish()
    }
}
