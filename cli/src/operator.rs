//! Operators' commands against a running gateway, through the same UAPI socket the stock `wg`
//! uses: `wgxdp peer add` (onboarding a client) and `wgxdp show` (the `wg show` view plus the
//! data path's per-worker rates and drops).

use control::config::{Config, Endpoint, Interface, IpPrefix, Peer};
use control::InterfaceName;
use proto::allowedips::Prefix;
use proto::keys::{PresharedKey, PrivateKey, PublicKey};
use rand_core::OsRng;
use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use zeroize::Zeroizing;

fn flag(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

/// Sends one UAPI request to gateway `name`; returns the body of a successful answer.
pub(crate) fn uapi(name: &InterfaceName, request: &str) -> Result<Zeroizing<String>, String> {
    control::uapi::request(name, request)
}

pub(crate) fn unhex(s: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(out)
}

/// A `get=1` answer: device keys, then one map per peer, in order.
#[derive(Debug, Default)]
pub(crate) struct Got {
    pub(crate) device: Vec<(String, String)>,
    pub(crate) peers: Vec<Vec<(String, String)>>,
}

impl Got {
    pub(crate) fn parse(text: &str) -> Self {
        let mut g = Got::default();
        for line in text.lines() {
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            let kv = (k.to_string(), v.to_string());
            if k == "public_key" {
                g.peers.push(vec![kv]);
            } else if let Some(p) = g.peers.last_mut() {
                p.push(kv);
            } else {
                g.device.push(kv);
            }
        }
        g
    }
}

pub(crate) fn get<'a>(kv: &'a [(String, String)], key: &str) -> Option<&'a str> {
    kv.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// The lowest host address of `net` that is not the gateway's own, not the network or
/// (IPv4) broadcast address, and inside no prefix a peer already has.
fn next_free(net: &IpPrefix, taken: &[Prefix]) -> Option<IpAddr> {
    let own = net.addr();
    let base = Prefix::new(own, net.prefix_len()).ok()?;
    let (bits, width) = match base.addr() {
        IpAddr::V4(a) => (u128::from(u32::from(a)), 32u32),
        IpAddr::V6(a) => (u128::from(a), 128),
    };
    let host_bits = width - u32::from(base.len());
    let size: u128 = if host_bits >= 127 {
        u128::MAX
    } else {
        1u128 << host_bits
    };
    // Scan at most a million candidates: enough for any tunnel subnet that has room.
    for h in 1..size.min(1 << 20) {
        if width == 32 && h == size - 1 {
            break;
        }
        let a = bits + h;
        let ip = if width == 32 {
            IpAddr::V4((a as u32).into())
        } else {
            IpAddr::V6(a.into())
        };
        if ip != own && !taken.iter().any(|p| p.contains(ip)) {
            return Some(ip);
        }
    }
    None
}

const PEER_ADD_USAGE: &str =
    "usage: wgxdp peer add CLIENT --endpoint HOST:PORT [--interface NAME] \
[--allowed-ips LIST] [--dns LIST] [--qr]";

/// `wgxdp peer add CLIENT --endpoint HOST:PORT [--interface NAME] [--allowed-ips LIST]
/// [--dns LIST] [--qr]`: a key pair and PSK for a new client, the next free tunnel address in
/// the gateway's `Address` subnets, the peer added live, and the client's wg-quick file (and
/// with `--qr` a QR code of it) on stdout.
pub fn peer(args: &[String]) -> Result<(), String> {
    if args.first().map(String::as_str) != Some("add") {
        return Err(PEER_ADD_USAGE.into());
    }
    let args = &args[1..];
    let client = args
        .first()
        .filter(|a| !a.starts_with("--"))
        .ok_or(PEER_ADD_USAGE)?;
    let name =
        crate::gateway::interface_name(flag(args, "--interface").as_deref().unwrap_or("wgxdp"))?;
    let endpoint: Endpoint = flag(args, "--endpoint")
        .ok_or("--endpoint HOST:PORT is required: the address clients reach the gateway at")?
        .parse()
        .map_err(|e| format!("--endpoint: {e}"))?;
    let run = Path::new(crate::gateway::RUN_ROOT).join(&name);
    let conf_path = std::fs::read_to_string(run.join("config")).map_err(|_| {
        format!(
            "{name} is not a running wgxdp gateway (no {})",
            run.join("config").display()
        )
    })?;
    let (gw_conf, _) = control::config::load(conf_path.trim()).map_err(|e| e.to_string())?;
    if gw_conf.interface.addresses.is_empty() {
        return Err(format!(
            "{}: the [Interface] has no Address, so there is no tunnel subnet to give {client} an address from",
            conf_path.trim()
        ));
    }
    let got = Got::parse(&uapi(&name, "get=1\n\n")?);
    let gw_public = get(&got.device, "private_key")
        .and_then(unhex)
        .map(|k| PrivateKey::from_bytes(k).public_key())
        .ok_or("the gateway reported no private key")?;
    let etcd = flag(args, "--etcd");
    let mut taken: Vec<Prefix> = got
        .peers
        .iter()
        .flat_map(|p| p.iter().filter(|(k, _)| k == "allowed_ip"))
        .filter_map(|(_, v)| {
            let (a, l) = v.split_once('/')?;
            Prefix::new(a.parse().ok()?, l.parse().ok()?).ok()
        })
        .collect();
    // In a cluster, an address is taken if any record holds it, applied here yet or not.
    if let Some(url) = &etcd {
        taken.extend(crate::peerstore::taken(url)?);
    }
    let mut addresses = Vec::new();
    for net in &gw_conf.interface.addresses {
        let ip = next_free(net, &taken)
            .ok_or_else(|| format!("no free address left in {net} for {client}"))?;
        addresses.push(IpPrefix::host(ip));
    }
    let key = PrivateKey::generate(&mut OsRng);
    let psk = PresharedKey::generate(&mut OsRng);
    let mut set = Zeroizing::new(format!(
        "set=1\npublic_key={}\npreshared_key={}\n",
        hex::encode(key.public_key().as_bytes()),
        hex::encode(psk.as_bytes())
    ));
    for a in &addresses {
        set.push_str(&format!("allowed_ip={a}\n"));
    }
    set.push('\n');
    let record = Peer {
        public_key: key.public_key(),
        preshared_key: Some(psk.clone()),
        allowed_ips: addresses.clone(),
        endpoint: None,
        persistent_keepalive: None,
    };
    match &etcd {
        Some(url) => crate::peerstore::put(url, &record)?,
        None => {
            uapi(&name, &set)?;
        }
    }

    let allowed: Vec<IpPrefix> = match flag(args, "--allowed-ips") {
        Some(list) => list
            .split(',')
            .map(|s| {
                s.trim()
                    .parse()
                    .map_err(|e| format!("--allowed-ips {s}: {e}"))
            })
            .collect::<Result<_, String>>()?,
        None => vec![
            "0.0.0.0/0".parse().map_err(|e| format!("{e}"))?,
            "::/0".parse().map_err(|e| format!("{e}"))?,
        ],
    };
    let client_conf = Config {
        interface: Interface {
            private_key: Some(key.clone()),
            addresses: addresses.clone(),
            dns: flag(args, "--dns")
                .map(|d| d.split(',').map(|s| s.trim().to_string()).collect())
                .unwrap_or_default(),
            ..Interface::default()
        },
        peers: vec![Peer {
            public_key: gw_public,
            preshared_key: Some(psk.clone()),
            allowed_ips: allowed,
            endpoint: Some(endpoint),
            persistent_keepalive: Some(25),
        }],
    };
    let text = Zeroizing::new(format!(
        "# {client}: a client of {name} (added {})\n{}",
        time_now(),
        client_conf.to_wg_quick_string()
    ));
    print!("{}", *text);
    if args.iter().any(|a| a == "--qr") {
        let code = qrcode::QrCode::new(text.as_bytes()).map_err(|e| format!("QR code: {e}"))?;
        let image = code
            .render::<qrcode::render::unicode::Dense1x2>()
            .dark_color(qrcode::render::unicode::Dense1x2::Light)
            .light_color(qrcode::render::unicode::Dense1x2::Dark)
            .build();
        // On stderr: `peer add ... > client.conf` keeps the file clean and shows the code.
        eprintln!("\n{image}");
    }
    if let Some(url) = &etcd {
        eprintln!(
            "wgxdp: {client} ({}) written to the cluster's records ({url}); every gateway's `wgxdp sync` applies it",
            key.public_key().to_base64()
        );
        return Ok(());
    }
    eprintln!(
        "wgxdp: {client} ({}) added to {name} live. To keep it across restarts, add to {}:\n\n# {client}\n{}",
        key.public_key().to_base64(),
        conf_path.trim(),
        record.to_wg_quick_section()
    );
    Ok(())
}

fn time_now() -> String {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    control::authlog::rfc3339(t)
}

fn ago(t: Duration) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let s = now.saturating_sub(t).as_secs();
    match s {
        0..=59 => format!("{s} seconds ago"),
        60..=3599 => format!("{} minutes, {} seconds ago", s / 60, s % 60),
        _ => format!("{} hours, {} minutes ago", s / 3600, s / 60 % 60),
    }
}

fn bytes(n: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < units.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.2} {}", units[u])
    }
}

/// The `wg show` part of `wgxdp show`, from a `get=1` answer.
fn print_wg_view(name: &InterfaceName, got: &Got) {
    println!("interface: {name}");
    if let Some(k) = get(&got.device, "private_key").and_then(unhex) {
        println!(
            "  public key: {}",
            PrivateKey::from_bytes(k).public_key().to_base64()
        );
    }
    if let Some(p) = get(&got.device, "listen_port") {
        println!("  listening port: {p}");
    }
    if let Some(m) = get(&got.device, "fwmark") {
        println!("  fwmark: {m}");
    }
    for p in &got.peers {
        let key = get(p, "public_key")
            .and_then(unhex)
            .map(|k| PublicKey::from_bytes(k).to_base64())
            .unwrap_or_default();
        println!("\npeer: {key}");
        if let Some(e) = get(p, "endpoint") {
            println!("  endpoint: {e}");
        }
        let allowed: Vec<&str> = p
            .iter()
            .filter(|(k, _)| k == "allowed_ip")
            .map(|(_, v)| v.as_str())
            .collect();
        println!(
            "  allowed ips: {}",
            if allowed.is_empty() {
                "(none)".to_string()
            } else {
                allowed.join(", ")
            }
        );
        let secs: u64 = get(p, "last_handshake_time_sec")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        if secs != 0 {
            println!("  latest handshake: {}", ago(Duration::from_secs(secs)));
        }
        let n = |k: &str| get(p, k).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
        let (rx, tx) = (n("rx_bytes"), n("tx_bytes"));
        if rx + tx > 0 {
            println!("  transfer: {} received, {} sent", bytes(rx), bytes(tx));
        }
        let ka = n("persistent_keepalive_interval");
        if ka > 0 {
            println!("  persistent keepalive: every {ka} seconds");
        }
    }
}

/// `wgxdp show [NAME] [--interval SECONDS]`: the `wg show` view (from the UAPI socket, when
/// control is up), then per-worker packet rates over the interval and the drop counters by
/// reason, and the live sessions (from the shared region, also when control is down).
pub fn show(args: &[String]) -> Result<(), String> {
    use contract::layout::{PeerRecord, SessionSummary, NO_SLOT};
    use contract::DropReason;
    use std::sync::atomic::Ordering::Relaxed;
    let name = args
        .iter()
        .find(|a| !a.starts_with("--"))
        .filter(|a| flag(args, "--interval").as_ref() != Some(a))
        .map_or("wgxdp", String::as_str);
    let name = crate::gateway::interface_name(name)?;
    let interval: f64 = flag(args, "--interval")
        .map(|s| {
            s.parse()
                .map_err(|_| format!("--interval {s}: not a number"))
        })
        .transpose()?
        .unwrap_or(1.0);
    // Only the key-free part of the region is mapped: counters, peers, session summaries.
    let region = contract::Status::attach(
        Path::new(crate::gateway::RUN_ROOT)
            .join(&name)
            .join("region"),
    )
    .map_err(|e| format!("{name}: {e}"))?;
    match uapi(&name, "get=1\n\n") {
        Ok(text) => print_wg_view(&name, &Got::parse(&text)),
        Err(e) => println!("interface: {name} (control not answering: {e})"),
    }
    let sample = |w: usize| {
        region
            .worker_stats(w)
            .map(|s| [&s.rx_wan, &s.rx_lan, &s.tx_wan, &s.tx_lan].map(|c| c.load(Relaxed)))
    };
    let workers: Vec<usize> = (0..region.layout().workers)
        .filter(|w| {
            region
                .worker_stats(*w)
                .is_some_and(|s| s.heartbeat_ns.load(Relaxed) != 0)
        })
        .collect();
    let before: Vec<_> = workers.iter().map(|w| sample(*w)).collect();
    std::thread::sleep(Duration::from_secs_f64(interval.clamp(0.05, 60.0)));
    println!("\ndata path:");
    for (i, &w) in workers.iter().enumerate() {
        let (Some(a), Some(b), Some(s)) = (before[i], sample(w), region.worker_stats(w)) else {
            continue;
        };
        let rate = |k: usize| (b[k].saturating_sub(a[k])) as f64 / interval;
        println!(
            "  worker {w}: rx wan {:.0}/s lan {:.0}/s, tx wan {:.0}/s lan {:.0}/s; totals rx wan {} lan {}, tx wan {} lan {}, keepalives {}, via kernel {}, MSS clamped {}, offloaded out {}, offloaded in {}, crypto handed {}, crypto helped {}, crypto taken back {}",
            rate(0),
            rate(1),
            rate(2),
            rate(3),
            b[0],
            b[1],
            b[2],
            b[3],
            s.keepalives.load(Relaxed),
            s.to_kernel.load(Relaxed),
            s.mss_clamped.load(Relaxed),
            s.offloaded_out.load(Relaxed),
            s.offloaded_in.load(Relaxed),
            s.crypto_handed.load(Relaxed),
            s.crypto_helped.load(Relaxed),
            s.crypto_reclaimed.load(Relaxed)
        );
        let drops: Vec<String> = DropReason::ALL
            .iter()
            .filter_map(|d| {
                let n = s.drops[*d as usize].load(Relaxed);
                (n > 0).then(|| format!("{} {n}", d.name()))
            })
            .collect();
        if !drops.is_empty() {
            println!("    drops: {}", drops.join(", "));
        }
    }
    let verdicts: Vec<String> = ebpf::abi::Verdict::ALL
        .iter()
        .zip(&region.header().xdp_verdicts)
        .filter_map(|(v, n)| {
            let n = n.load(Relaxed);
            (n > 0).then(|| format!("{} {n}", v.c_name().to_lowercase()))
        })
        .collect();
    if !verdicts.is_empty() {
        println!("  xdp: {}", verdicts.join(", "));
    }
    let h = region.header();
    let flows = h.offload_flows.load(Relaxed);
    let refused = h.offload_refused.load(Relaxed);
    if flows > 0 || refused > 0 {
        println!(
            "  offload: offloaded flows {flows}, refused {refused}, resyncs {}",
            h.offload_resyncs.load(Relaxed)
        );
    }
    for (i, p) in region.peers().iter().enumerate() {
        let Some(r) = p.record.read().map(|w| PeerRecord::decode(&w)) else {
            continue;
        };
        if r.valid {
            let current = if r.current_session == NO_SLOT {
                "none".to_string()
            } else {
                r.current_session.to_string()
            };
            let endpoint = r.endpoint.map_or("none".to_string(), |e| e.to_string());
            println!("  peer slot {i}: endpoint {endpoint}, sends on session {current}");
        }
    }
    for (i, s) in region.session_info().iter().enumerate() {
        let Some(r) = s.record.read().map(|w| SessionSummary::decode(&w)) else {
            continue;
        };
        if r.is_valid() {
            println!(
                "  session {i}: peer slot {} index {:08x} flags {:x}",
                r.peer, r.local_index, r.flags,
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefix(s: &str) -> Prefix {
        let (a, l) = s.split_once('/').unwrap();
        Prefix::new(a.parse().unwrap(), l.parse().unwrap()).unwrap()
    }

    #[test]
    fn next_free_skips_own_taken_network_and_broadcast() {
        let net: IpPrefix = "10.0.0.1/24".parse().unwrap();
        assert_eq!(next_free(&net, &[]), Some("10.0.0.2".parse().unwrap()));
        let taken = [prefix("10.0.0.2/32"), prefix("10.0.0.4/31")];
        assert_eq!(next_free(&net, &taken), Some("10.0.0.3".parse().unwrap()));
        let taken = [prefix("10.0.0.2/31"), prefix("10.0.0.4/30")];
        assert_eq!(next_free(&net, &taken), Some("10.0.0.8".parse().unwrap()));
        let full = [
            prefix("10.0.0.0/25"),
            prefix("10.0.0.128/26"),
            prefix("10.0.0.192/27"),
            prefix("10.0.0.224/28"),
            prefix("10.0.0.240/29"),
            prefix("10.0.0.248/30"),
            prefix("10.0.0.252/31"),
            prefix("10.0.0.254/32"),
        ];
        assert_eq!(
            next_free(&net, &full),
            None,
            "only .255, the broadcast, is left"
        );
        let v6: IpPrefix = "fd00::1/64".parse().unwrap();
        assert_eq!(
            next_free(&v6, &[prefix("fd00::2/128")]),
            Some("fd00::3".parse().unwrap())
        );
    }

    #[test]
    fn get_answers_split_into_device_and_peers() {
        let g = Got::parse(
            "private_key=aa\nlisten_port=1\npublic_key=bb\nallowed_ip=10.0.0.2/32\npublic_key=cc\n",
        );
        assert_eq!(get(&g.device, "listen_port"), Some("1"));
        assert_eq!(g.peers.len(), 2);
        assert_eq!(get(&g.peers[0], "allowed_ip"), Some("10.0.0.2/32"));
    }
}
