//! `wgxdp-loadgen`: the gateway benchmark's load generator and sink (design §6).
//!
//! ```text
//! wgxdp-loadgen peers --peers N [--seed S]            # [Peer] stanzas for the gateway's config
//! wgxdp-loadgen run --gateway IP:PORT --gateway-key B64 --bind IP --sink IP:PORT
//!               [--gen-netns NS] [--sink-netns NS] [--peers N] [--seed S]
//!               [--size 64|512|1420|imix] [--seconds T] [--pool-mb M] [--sockets K]
//!               [--direction in|out] [--rate PPS] [--tx sendmmsg|afxdp --tx-if IF]
//!               [--sink-if IF] [--answer true] [--no-handshake true] [--sink-drop true]
//! wgxdp-loadgen seal-rate [--size S] [--seconds T]    # ring's single-core seal rate
//! ```
//!
//! `run` handshakes as N peers from a socket bound to `--bind` in `--gen-netns`, opens the
//! sink's socket on `--sink` in `--sink-netns`, then sends pre-sealed data messages with
//! sendmmsg for `--seconds` of sending time (sealing between rounds is not counted), and
//! prints one `key=value` line: what was sent and received, rates over the sending time, loss.
//! `--tx afxdp` sends the inbound messages as Ethernet frames through an AF_XDP socket on
//! `--tx-if` (in `--gen-netns`) instead, several times faster than sendmmsg; for `--direction
//! out` the LAN side's plaintext goes through an AF_XDP socket on `--sink-if` to
//! `--lan-gateway`'s MAC, and `--gen-if` counts what the generator's interface received. `--sink-if`
//! also counts what the sink's interface received (`if_received`), exact even when the sink's
//! socket overflows; `delivered` is that count when given, else the socket's. `--answer true`:
//! the sink answers each sender's first datagram once (a NAT gateway's flows are then
//! established in its connection tracking, as a real service's would be). `--no-handshake
//! true`: made-up sessions, for a forwarder that opens nothing (`wgxdp-ceiling`). `--sink-drop
//! true` (inbound, with `--sink-if`): the sink's interface drops everything in XDP and the
//! count is its received packets, so the sink's stack is not billed to the gateway.
//! `--direction out` reverses it: plaintext from the sink's address to every peer's tunnel
//! address (port of `--sink`), sealed by the gateway, opened and counted by the generator.

use bench::handshake;
use bench::inner::SRC_PORT;
use bench::mmsg;
use bench::netns;
use bench::peers;
use bench::pool::{self, Pool};
use bench::sink::Sink;
use bench::sizes::Size;
use proto::keys::PublicKey;
use std::collections::HashMap;
use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::process::ExitCode;
use std::time::{Duration, Instant};

fn usage() -> ExitCode {
    eprintln!("usage: wgxdp-loadgen peers|run|seal-rate [options] (see the source's header)");
    ExitCode::from(2)
}

struct Args(HashMap<String, String>);

impl Args {
    fn parse(args: &[String]) -> Result<Args, String> {
        let mut m = HashMap::new();
        let mut it = args.iter();
        while let Some(k) = it.next() {
            let key = k
                .strip_prefix("--")
                .ok_or_else(|| format!("unexpected argument {k:?}"))?;
            let v = it.next().ok_or_else(|| format!("{k} needs a value"))?;
            m.insert(key.to_owned(), v.clone());
        }
        Ok(Args(m))
    }

    fn get<T: std::str::FromStr>(&self, key: &str, default: Option<T>) -> Result<T, String>
    where
        T::Err: std::fmt::Display,
    {
        match self.0.get(key) {
            Some(v) => v.parse().map_err(|e| format!("--{key} {v}: {e}")),
            None => default.ok_or_else(|| format!("--{key} is required")),
        }
    }

    fn opt(&self, key: &str) -> Option<String> {
        self.0.get(key).cloned()
    }
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let Some((cmd, rest)) = argv.split_first() else {
        return usage();
    };
    let result = Args::parse(rest).and_then(|a| match cmd.as_str() {
        "peers" => cmd_peers(&a),
        "run" => cmd_run(&a),
        "seal-rate" => cmd_seal_rate(&a),
        _ => Err(format!("unknown command {cmd:?}")),
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wgxdp-loadgen: {e}");
            ExitCode::FAILURE
        }
    }
}

fn cmd_peers(a: &Args) -> Result<(), String> {
    let count: usize = a.get("peers", None)?;
    if count == 0 || count > peers::MAX_PEERS {
        return Err(format!("--peers between 1 and {}", peers::MAX_PEERS));
    }
    print!("{}", peers::config_stanzas(a.get("seed", Some(1))?, count));
    Ok(())
}

fn cmd_run(a: &Args) -> Result<(), String> {
    let gateway: SocketAddr = a.get("gateway", None)?;
    let gateway_key = PublicKey::from_base64(&a.get::<String>("gateway-key", None)?)
        .map_err(|e| format!("--gateway-key: {e}"))?;
    let bind: std::net::IpAddr = a.get("bind", None)?;
    let sink_addr: SocketAddrV4 = a.get("sink", None)?;
    let count: usize = a.get("peers", Some(64))?;
    let seed: u64 = a.get("seed", Some(1))?;
    let size: Size = a.get("size", Some(Size::Fixed(64)))?;
    let seconds: f64 = a.get("seconds", Some(5.0))?;
    let pool_mb: usize = a.get("pool-mb", Some(512))?;
    // Inbound only: paced to this many packets/s (0: as fast as sendmmsg goes). A paced run
    // below the gateway's capacity shows loss caused by something else (a pause).
    let rate: f64 = a.get("rate", Some(0.0))?;
    if count == 0 || count > peers::MAX_PEERS {
        return Err(format!("--peers between 1 and {}", peers::MAX_PEERS));
    }

    let mut pool = Pool::new(size, pool_mb << 20);
    // Several sockets are several flows: a multi-queue veth spreads them over its queues
    // (and so over the gateway's workers) by flow hash.
    let nsockets: usize = a.get("sockets", Some(1))?;
    let socks = netns::run_in(a.opt("gen-netns").as_deref(), move || {
        (0..nsockets.max(1))
            .map(|_| {
                let s = UdpSocket::bind(SocketAddr::new(bind, 0))?;
                s.connect(gateway)?;
                let _ =
                    nix::sys::socket::setsockopt(&s, nix::sys::socket::sockopt::SndBuf, &(8 << 20));
                Ok(s)
            })
            .collect::<std::io::Result<Vec<_>>>()
    })
    .map_err(|e| format!("generator socket: {e}"))?;
    let sock = &socks[0];
    let answer: bool = a.get("answer", Some(false))?;
    let sink = Sink::spawn_answering(
        a.opt("sink-netns"),
        SocketAddr::V4(sink_addr),
        pool.len(),
        answer,
    )
    .map_err(|e| format!("sink socket: {e}"))?;

    let t = Instant::now();
    let no_handshake: bool = a.get("no-handshake", Some(false))?;
    let mut sessions = if no_handshake {
        // For a forwarder that opens nothing (wgxdp-ceiling): made-up sessions.
        (0..count)
            .map(|i| bench::pool::Session {
                key: [i as u8; 32],
                receiver: i as u32,
                next_counter: 0,
                local_index: i as u32,
                rx_key: [0; 32],
                src: std::net::SocketAddrV4::new(peers::tunnel_addr(i), SRC_PORT),
            })
            .collect()
    } else {
        handshake::establish(sock, gateway, &gateway_key, seed, count, SRC_PORT)
            .map_err(|e| format!("handshakes: {e}"))?
    };
    let handshake_s = t.elapsed().as_secs_f64();
    // Confirm every session (the gateway is the responder) before the timed window, a few
    // times: a gateway may learn of a session a little after its handshake response (wgxdp's
    // data path does, through the shared region) and drop what arrives before.
    // (Made-up sessions: once, so that the kernel learns the gateway's MAC for the AF_XDP
    // generator.)
    for _ in 0..if no_handshake { 1 } else { 3 } {
        bench::outbound::confirm(sock, &mut sessions).map_err(|e| format!("keepalives: {e}"))?;
        std::thread::sleep(Duration::from_millis(400));
    }

    let budget = Duration::from_secs_f64(seconds);
    let direction: String = a.get("direction", Some("in".to_owned()))?;
    match direction.as_str() {
        "in" => {}
        "out" => {
            drop(sink.stop());
            return run_outbound(a, &socks, sessions, sink_addr, size, budget, handshake_s);
        }
        _ => return Err(format!("--direction {direction}: in or out")),
    }
    let sink_if: Option<String> = a.opt("sink-if");
    let sink_ns = a.opt("sink-netns");
    let if_count = move || -> Result<Option<u64>, String> {
        let Some(ifname) = sink_if.clone() else {
            return Ok(None);
        };
        netns::run_in(sink_ns.as_deref(), move || {
            bench::netdev::rx_packets(&ifname).map_err(std::io::Error::other)
        })
        .map(Some)
        .map_err(|e| e.to_string())
    };
    // `--sink-drop true`: the sink's interface drops everything in XDP (counted by the
    // interface all the same), so that its stack, which veth runs on the sender's CPU, is not
    // billed to the gateway. Detached when this value drops, after the count.
    let _sink_drop = if a.get("sink-drop", Some(false))? {
        let ifname: String = a.get("sink-if", None)?;
        Some(
            netns::run_in(a.opt("sink-netns").as_deref(), move || {
                dataplane::xdp::SinkDrop::attach(&ifname).map_err(std::io::Error::other)
            })
            .map_err(|e| format!("--sink-drop: {e}"))?,
        )
    } else {
        None
    };
    let if_before = if_count()?;
    let avg_inner = pool.inner_bytes() as f64 / pool.len().max(1) as f64;
    let tx: String = a.get("tx", Some("sendmmsg".to_owned()))?;
    let mut sending = Duration::ZERO;
    let (mut sent, mut rounds, mut send_errors) = (0u64, 0u32, 0u64);
    let mut seal = Duration::ZERO;
    if tx == "afxdp" {
        let ifname: String = a.get("tx-if", None)?;
        let SocketAddr::V4(src) = sock.local_addr().map_err(|e| e.to_string())? else {
            return Err("--tx afxdp needs an IPv4 --bind".into());
        };
        let SocketAddr::V4(dst) = gateway else {
            return Err("--tx afxdp needs an IPv4 --gateway".into());
        };
        // The whole timed loop runs in the generator's namespace: the AF_XDP socket and the
        // addresses it needs are found there.
        let (s, r, t, sl) = netns::run_in(a.opt("gen-netns").as_deref(), move || {
            let path = bench::afxdp::Path {
                src_mac: bench::afxdp::mac_of(&ifname).map_err(std::io::Error::other)?,
                dst_mac: bench::afxdp::neighbour_mac(*dst.ip()).map_err(std::io::Error::other)?,
                src: src.into(),
                dst: dst.into(),
            };
            let (mut sent, mut rounds, mut sending, mut seal) =
                (0u64, 0u32, Duration::ZERO, Duration::ZERO);
            bench::afxdp::with_sender(&ifname, |sender| {
                while sending < budget {
                    let t = Instant::now();
                    pool.fill(rounds, &mut sessions, sink_addr);
                    seal += t.elapsed();
                    let start = Instant::now();
                    sent += sender.send_all(
                        pool.len(),
                        |j, buf| bench::afxdp::frame(&path, pool.message(j), buf),
                        rate,
                        || sending + start.elapsed() >= budget,
                    );
                    sending += start.elapsed();
                    rounds += 1;
                    std::thread::sleep(Duration::from_millis(300));
                }
            })
            .map_err(std::io::Error::other)?;
            Ok((sent, rounds, sending, seal))
        })
        .map_err(|e| format!("AF_XDP generator: {e}"))?;
        (sent, rounds, sending, seal) = (s, r, t, sl);
    } else {
        while sending < budget {
            let t = Instant::now();
            pool.fill(rounds, &mut sessions, sink_addr);
            seal += t.elapsed();
            let mut batch: Vec<&[u8]> = Vec::with_capacity(mmsg::BATCH);
            let start = Instant::now();
            let mut k = 0;
            while k < pool.len() {
                batch.clear();
                batch.extend((k..pool.len().min(k + mmsg::BATCH)).map(|j| pool.message(j)));
                let out = &socks[(k / mmsg::BATCH) % socks.len()];
                match mmsg::send(out, &batch) {
                    Ok(n) => k += n,
                    Err(_) => send_errors += 1,
                }
                if rate > 0.0 {
                    let due = start + Duration::from_secs_f64(k as f64 / rate);
                    let now = Instant::now();
                    if due > now {
                        std::thread::sleep(due - now);
                    }
                }
                if sending + start.elapsed() >= budget {
                    break;
                }
            }
            sent += k as u64;
            sending += start.elapsed();
            rounds += 1;
            // Let the gateway drain before the next round is sealed, so each round's stragglers
            // are counted in it (the sink resets its duplicate filter per round).
            std::thread::sleep(Duration::from_millis(300));
        }
    }
    let counts = sink.stop();
    let received = counts.received.load(std::sync::atomic::Ordering::Relaxed);
    let if_received = match (if_before, if_count()?) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a)),
        _ => None,
    };
    let delivered = if_received.unwrap_or(received);
    let bytes = counts.bytes.load(std::sync::atomic::Ordering::Relaxed);
    let secs = sending.as_secs_f64();
    println!(
        "direction=in size={size} peers={count} handshake_s={handshake_s:.2} rounds={rounds} send_s={secs:.3} seal_s={:.3} \
         sent={sent} offered_pps={:.0} received={received} if_received={} delivered={delivered} pps={:.0} gbps={:.3} \
         loss={} loss_pct={:.2} duplicates={} invalid={} sink_rcvbuf_errors={} send_errors={send_errors} tx={tx}",
        seal.as_secs_f64(),
        sent as f64 / secs,
        if_received.map_or("-".to_string(), |n| n.to_string()),
        delivered as f64 / secs,
        if if_received.is_some() {
            delivered as f64 * avg_inner * 8.0 / secs / 1e9
        } else {
            bytes as f64 * 8.0 / secs / 1e9
        },
        sent.saturating_sub(delivered),
        if sent > 0 { 100.0 * sent.saturating_sub(delivered) as f64 / sent as f64 } else { 0.0 },
        counts.duplicates.load(std::sync::atomic::Ordering::Relaxed),
        counts.invalid.load(std::sync::atomic::Ordering::Relaxed),
        counts.rcvbuf_errors.load(std::sync::atomic::Ordering::Relaxed),
    );
    Ok(())
}

/// LAN -> peers: plaintext from the sink's address to every peer's tunnel address, opened
/// and counted on the generator's socket.
fn run_outbound(
    a: &Args,
    socks: &[UdpSocket],
    sessions: Vec<bench::pool::Session>,
    lan: SocketAddrV4,
    size: Size,
    budget: Duration,
    handshake_s: f64,
) -> Result<(), String> {
    use bench::outbound;
    use std::sync::atomic::Ordering::Relaxed;
    let count = sessions.len();
    let rx = socks[0].try_clone().map_err(|e| e.to_string())?;
    let (stop, counts, thread) = outbound::spawn_receiver(rx, sessions);
    let lan_ip = *lan.ip();
    let tx = netns::run_in(a.opt("sink-netns").as_deref(), move || {
        let s = UdpSocket::bind(SocketAddr::new(lan_ip.into(), 0))?;
        let _ = nix::sys::socket::setsockopt(&s, nix::sys::socket::sockopt::SndBuf, &(8 << 20));
        Ok(s)
    })
    .map_err(|e| format!("LAN sender socket: {e}"))?;
    let dsts: Vec<SocketAddrV4> = (0..count)
        .map(|i| SocketAddrV4::new(peers::tunnel_addr(i), lan.port()))
        .collect();
    let gen_ns = a.opt("gen-netns");
    let gen_errors = move || {
        let ns = gen_ns.clone();
        netns::run_in(ns.as_deref(), || Ok(bench::sink::rcvbuf_errors())).unwrap_or(0)
    };
    let errors_before = gen_errors();
    let gen_if: Option<String> = a.opt("gen-if");
    let gen_ns2 = a.opt("gen-netns");
    let if_count = move || -> Option<u64> {
        let ifname = gen_if.clone()?;
        netns::run_in(gen_ns2.as_deref(), move || {
            bench::netdev::rx_packets(&ifname).map_err(std::io::Error::other)
        })
        .ok()
    };
    let tx_mode: String = a.get("tx", Some("sendmmsg".to_owned()))?;
    let if_before = if_count();
    let sent = if tx_mode == "afxdp" {
        let sink_if: String = a.get("sink-if", None)?;
        let lan_gw: std::net::Ipv4Addr = a.get("lan-gateway", None)?;
        let src = SocketAddrV4::new(lan_ip, lan.port());
        // One datagram through the kernel first, so that the LAN side knows the gateway's MAC.
        let _ = tx.send_to(&[0u8; 16], dsts[0]);
        std::thread::sleep(Duration::from_millis(200));
        netns::run_in(a.opt("sink-netns").as_deref(), move || {
            let src_mac = bench::afxdp::mac_of(&sink_if).map_err(std::io::Error::other)?;
            let dst_mac = bench::afxdp::neighbour_mac(lan_gw).map_err(std::io::Error::other)?;
            let start = Instant::now();
            let packets = bench::afxdp::with_sender(&sink_if, |sender| {
                sender.send_all(
                    usize::MAX,
                    |k, buf| {
                        let path = bench::afxdp::Path {
                            src_mac,
                            dst_mac,
                            src: src.into(),
                            dst: dsts[k % dsts.len()].into(),
                        };
                        let len = usize::from(size.nth(k))
                            .saturating_sub(bench::inner::HEADERS_LEN)
                            .max(bench::inner::TAG_LEN);
                        // The payload in place, then the headers in front of it.
                        let at = dataplane::packet::udp_headers_len(&path);
                        let Some(payload) = buf.get_mut(at..at + len) else {
                            return 0;
                        };
                        payload.fill(0);
                        bench::inner::Tag {
                            round: 0,
                            seq: k as u64,
                        }
                        .write(payload);
                        match dataplane::packet::write_udp_headers(buf, &path, len) {
                            Ok(()) => at + len,
                            Err(_) => 0,
                        }
                    },
                    0.0,
                    || start.elapsed() >= budget,
                )
            })
            .map_err(std::io::Error::other)?;
            Ok(outbound::Sent {
                packets,
                elapsed: start.elapsed(),
                errors: 0,
            })
        })
        .map_err(|e| format!("AF_XDP LAN sender: {e}"))?
    } else {
        outbound::send(&tx, &dsts, size, budget)
    };
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Relaxed);
    let _ = thread.join();
    let rcvbuf_errors = gen_errors().saturating_sub(errors_before);
    let secs = sent.elapsed.as_secs_f64();
    let received = counts.received.load(Relaxed);
    let if_received = match (if_before, if_count()) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a)),
        _ => None,
    };
    let delivered = if_received.unwrap_or(received);
    let avg_inner = if received > 0 {
        counts.bytes.load(Relaxed) as f64 / received as f64
    } else {
        0.0
    };
    println!(
        "direction=out size={size} peers={count} handshake_s={handshake_s:.2} send_s={secs:.3} \
         sent={} offered_pps={:.0} received={received} if_received={} delivered={delivered} pps={:.0} gbps={:.3} loss={} loss_pct={:.2} \
         duplicates={} invalid={} auth_failures={} unknown_index={} keepalives={} generator_rcvbuf_errors={rcvbuf_errors} \
         send_errors={}",
        sent.packets,
        sent.packets as f64 / secs,
        if_received.map_or("-".to_string(), |n| n.to_string()),
        delivered as f64 / secs,
        delivered as f64 * avg_inner * 8.0 / secs / 1e9,
        sent.packets.saturating_sub(delivered),
        if sent.packets > 0 {
            100.0 * sent.packets.saturating_sub(delivered) as f64 / sent.packets as f64
        } else {
            0.0
        },
        counts.duplicates.load(Relaxed),
        counts.invalid.load(Relaxed),
        counts.auth_failures.load(Relaxed),
        counts.unknown_index.load(Relaxed),
        counts.keepalives.load(Relaxed),
        sent.errors,
    );
    Ok(())
}

/// ring's ChaCha20-Poly1305 through `proto::data::seal` (one packet per call, one core):
/// the cipher's ceiling the gateway's per-worker rate is read against.
fn cmd_seal_rate(a: &Args) -> Result<(), String> {
    let size: Size = a.get("size", Some(Size::Fixed(1420)))?;
    let seconds: f64 = a.get("seconds", Some(1.0))?;
    let key = [7u8; 32];
    let mut bufs: Vec<Vec<u8>> = (0..sizes_len(size))
        .map(|k| vec![0x55u8; pool::message_len(usize::from(size.nth(k)))])
        .collect();
    let budget = Duration::from_secs_f64(seconds);
    let start = Instant::now();
    let (mut n, mut inner_bytes, mut counter) = (0u64, 0u64, 0u64);
    while start.elapsed() < budget {
        for _ in 0..256 {
            let k = (counter as usize) % bufs.len();
            let buf = &mut bufs[k];
            let padded = buf.len() - pool::message_len(0);
            let len =
                proto::data::seal(&key, 1, counter, buf, padded).map_err(|e| e.to_string())?;
            std::hint::black_box(len);
            inner_bytes += u64::from(size.nth(k));
            counter += 1;
            n += 1;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "size={size} seal_pps={:.0} seal_gbps={:.3}",
        n as f64 / secs,
        inner_bytes as f64 * 8.0 / secs / 1e9
    );
    Ok(())
}

fn sizes_len(size: Size) -> usize {
    match size {
        Size::Fixed(_) => 1,
        Size::Imix => bench::sizes::IMIX.len(),
    }
}
