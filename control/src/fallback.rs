//! The fallback backend: where XDP or AF_XDP cannot be used (no capability, an old kernel, a
//! driver that refuses), the gateway still runs, as a userspace WireGuard on an ordinary UDP
//! socket and a TUN device, with the same protocol core doing the data messages itself. The
//! kernel routes between the TUN device and the LAN, as it would for kernel WireGuard. It is
//! announced at start; it is the baseline the XDP path is measured against, not the product.
//!
//! One thread: read the socket and the TUN device (both non-blocking), move what arrives, run
//! the timers. With a name, it also serves the UAPI socket, so the stock `wg` reads and
//! configures it as it does the XDP gateway (`set=1` all or nothing; routes for allowed IPs
//! follow, as wg-quick would set them), and it exits when its socket file is removed.

use crate::config::Config;
use crate::daemon::{bind_udp, canonical, resolve, ControlError};
use proto::allowedips::Prefix;
use proto::device::{Device, PeerConfig, Received};
use proto::time::{Instant, Now};
use rand_core::OsRng;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tun_tap::{Iface, Mode};

fn now() -> Now {
    let mono = contract::clock::mono_ns();
    Now::new(
        Instant::from_nanos(mono),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default(),
    )
}

fn ip(args: &[&str]) -> Result<(), ControlError> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| ControlError::Tun(format!("ip {}: {e}", args.join(" "))))?;
    if !out.status.success() {
        return Err(ControlError::Tun(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// What `get=1` reports for the fallback's device.
fn view(device: &Device<OsRng>, socket: &std::net::UdpSocket) -> crate::uapi::DeviceView {
    crate::uapi::DeviceView {
        private_key: *device.private_key().as_bytes(),
        listen_port: socket.local_addr().map_or(0, |a| a.port()),
        fwmark: 0,
        peers: device
            .peers()
            .map(|(id, p)| {
                let st = p.stats();
                crate::uapi::PeerView {
                    public_key: *p.public_key().as_bytes(),
                    preshared_key: *p.preshared_key().as_bytes(),
                    endpoint: p.endpoint(),
                    last_handshake: st.last_handshake,
                    rx_bytes: st.rx_bytes,
                    tx_bytes: st.tx_bytes,
                    persistent_keepalive: p.persistent_keepalive().map_or(0, |d| d.as_secs()),
                    allowed_ips: device
                        .allowed_ips()
                        .prefixes_of(id)
                        .iter()
                        .map(ToString::to_string)
                        .collect(),
                }
            })
            .collect(),
    }
}

/// Every prefix of every peer (for the routes into the TUN device).
fn all_prefixes(device: &Device<OsRng>) -> std::collections::BTreeSet<Prefix> {
    device
        .peers()
        .flat_map(|(id, _)| device.allowed_ips().prefixes_of(id))
        .collect()
}

/// Applies a `set=1` request to the fallback's device (the failures that can happen here,
/// a taken port or a refused fwmark, are checked before anything changes).
fn apply(
    device: &mut Device<OsRng>,
    socket: &mut std::net::UdpSocket,
    ifname: &str,
    req: &crate::uapi::SetRequest,
) -> Result<(), crate::uapi::UapiError> {
    use crate::uapi::set::{error, DeviceOp, Disposition, PeerOp};
    use crate::uapi::Errno;
    let mut new_socket = None;
    for op in &req.device {
        match op {
            DeviceOp::ListenPort(p) if socket.local_addr().map_or(0, |a| a.port()) != *p => {
                let s = bind_udp(*p).map_err(|e| error(Errno::PortInUse, e.to_string()))?;
                s.set_nonblocking(true)
                    .map_err(|e| error(Errno::PortInUse, e.to_string()))?;
                new_socket = Some(s);
            }
            DeviceOp::Fwmark(m) => {
                let target = new_socket.as_ref().unwrap_or(socket);
                nix::sys::socket::setsockopt(target, nix::sys::socket::sockopt::Mark, m)
                    .map_err(|e| error(Errno::PortInUse, format!("fwmark: {e}")))?;
            }
            _ => {}
        }
    }
    let before = all_prefixes(device);
    let t = now();
    for op in &req.device {
        match op {
            DeviceOp::PrivateKey(k) => {
                device.set_private_key(k.clone());
            }
            DeviceOp::ListenPort(_) => {
                if let Some(s) = new_socket.take() {
                    *socket = s;
                }
            }
            DeviceOp::Fwmark(_) => {}
            DeviceOp::ReplacePeers => {
                let ids: Vec<_> = device.peers().map(|(id, _)| id).collect();
                for id in ids {
                    let _ = device.remove_peer(id);
                }
            }
        }
    }
    for change in &req.peers {
        let existing = device.peer_by_key(&change.public_key);
        let own = *device.public_key();
        let id = match (change.disposition(&own, existing.is_some()), existing) {
            (Disposition::Ignore, _) | (Disposition::Remove, None) => continue,
            (Disposition::Remove, Some(id)) => {
                let _ = device.remove_peer(id);
                continue;
            }
            (Disposition::Apply { .. }, Some(id)) => id,
            (Disposition::Apply { .. }, None) => {
                match device.add_peer(t, change.public_key, PeerConfig::default()) {
                    Ok(id) => id,
                    Err(_) => continue,
                }
            }
        };
        for op in &change.ops {
            let _ = match op {
                PeerOp::UpdateOnly | PeerOp::Remove => Ok(()),
                PeerOp::PresharedKey(k) => device.set_preshared_key(id, k.clone()),
                PeerOp::Endpoint(e) => device.set_endpoint(id, *e),
                PeerOp::PersistentKeepalive(s) => {
                    device.set_persistent_keepalive(t, id, Duration::from_secs(u64::from(*s)))
                }
                PeerOp::ReplaceAllowedIps => device.clear_allowed_ips(id),
                PeerOp::AllowedIp(p) => device.add_allowed_ip(id, *p),
                PeerOp::RemoveAllowedIp(p) => device.remove_allowed_ip(id, *p).map(|_| ()),
            };
        }
    }
    // wg-quick's job on a running interface: routes into the tunnel for the allowed IPs.
    let after = all_prefixes(device);
    for p in after.difference(&before) {
        let family = if p.addr().is_ipv6() { "-6" } else { "-4" };
        let _ = ip(&[family, "route", "replace", &p.to_string(), "dev", ifname]);
    }
    for p in before.difference(&after) {
        let family = if p.addr().is_ipv6() { "-6" } else { "-4" };
        let _ = ip(&[family, "route", "del", &p.to_string(), "dev", ifname]);
    }
    Ok(())
}

/// Runs the gateway on a TUN device named `ifname` until `stop` is set (or, with a UAPI
/// socket named `name`, until that socket file is removed).
pub fn run(
    config: &Config,
    ifname: &str,
    name: Option<&crate::InterfaceName>,
    stop: &AtomicBool,
) -> Result<(), ControlError> {
    let uapi = match name {
        Some(n) => Some(crate::uapi::Uapi::bind(n).map_err(|e| ControlError::Setup {
            what: format!("UAPI socket {n}"),
            reason: e.to_string(),
        })?),
        None => None,
    };
    let private = config
        .interface
        .private_key
        .clone()
        .ok_or(ControlError::NoPrivateKey)?;
    let port = config.interface.listen_port.unwrap_or(51820);
    let mut socket = bind_udp(port)?;
    socket
        .set_nonblocking(true)
        .map_err(|source| ControlError::Bind { port, source })?;
    let tun = Iface::without_packet_info(ifname, Mode::Tun)
        .map_err(|e| ControlError::Tun(format!("creating TUN {ifname}: {e}")))?;
    tun.set_non_blocking()
        .map_err(|e| ControlError::Tun(e.to_string()))?;
    let mtu = config.interface.mtu.unwrap_or(1420);
    ip(&["link", "set", ifname, "mtu", &mtu.to_string(), "up"])?;
    for a in &config.interface.addresses {
        ip(&["addr", "add", &a.to_string(), "dev", ifname])?;
    }

    let mut device = Device::new(private, OsRng);
    device.set_mtu(usize::from(mtu));
    let t = now();
    for p in &config.peers {
        let allowed: Vec<Prefix> = p
            .allowed_ips
            .iter()
            .filter_map(|a| Prefix::new(a.addr(), a.prefix_len()).ok())
            .collect();
        for a in &allowed {
            // wg-quick's job: route every peer's allowed IPs into the tunnel.
            let family = if a.addr().is_ipv6() { "-6" } else { "-4" };
            ip(&[family, "route", "replace", &a.to_string(), "dev", ifname])?;
        }
        device
            .add_peer(
                t,
                p.public_key,
                PeerConfig {
                    public_key: Some(p.public_key),
                    preshared_key: p.preshared_key.clone(),
                    endpoint: p.endpoint.as_ref().and_then(resolve),
                    allowed_ips: allowed,
                    persistent_keepalive: p
                        .persistent_keepalive
                        .map(|s| Duration::from_secs(u64::from(s))),
                },
            )
            .map_err(|e| ControlError::Peer {
                key: p.public_key.to_base64(),
                reason: e.to_string(),
            })?;
    }
    let _ = Command::new("sysctl")
        .args([
            "-q",
            "-w",
            "net.ipv4.ip_forward=1",
            "net.ipv6.conf.all.forwarding=1",
        ])
        .status();

    let mut buf = vec![0u8; 65536];
    let mut out = vec![0u8; 65536];
    while !stop.load(Ordering::Relaxed) && uapi.as_ref().is_none_or(|u| u.exists()) {
        while let Some(req) = uapi.as_ref().and_then(|u| u.poll()) {
            let answer = match &req.op {
                crate::uapi::Op::Get => Ok(crate::uapi::format_get(&view(&device, &socket))
                    .trim_end_matches("errno=0\n\n")
                    .to_string()),
                crate::uapi::Op::Set(set) => {
                    apply(&mut device, &mut socket, ifname, set).map(|()| String::new())
                }
            };
            req.answer(answer);
        }
        let mut moved = 0;
        // Plaintext from the kernel for some peer.
        for _ in 0..64 {
            let Ok(n) = tun.recv(&mut buf) else { break };
            moved += 1;
            let _ = device.send(now(), &buf[..n]);
        }
        // WireGuard messages from peers.
        for _ in 0..64 {
            let Ok((n, src)) = socket.recv_from(&mut buf) else {
                break;
            };
            moved += 1;
            if let Ok(Received::Data { range, .. }) =
                device.handle_datagram(now(), canonical(src), &mut buf[..n], false)
            {
                let _ = tun.send(&buf[range]);
            }
        }
        let t = now();
        if device.poll_timeout().is_some_and(|d| d <= t.mono) {
            device.handle_timeout(t);
        }
        while let Some(tx) = device.poll_transmit(t, &mut out) {
            let _ = socket.send_to(&out[..tx.len], tx.dst);
        }
        if moved == 0 {
            // Both are non-blocking and tun-tap exposes no borrowed fd to poll on: nap briefly.
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    Ok(())
}
