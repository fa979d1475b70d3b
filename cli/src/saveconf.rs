//! `SaveConfig = true`: wg-quick's `save_config`, run by `wgxdp down` after PreDown and before
//! the gateway stops. The file is rewritten from the running gateway: its wg-quick keys first
//! (Address as now on the interface, MTU as now if the file set one, and the file's DNS, Table
//! and hooks, with SaveConfig itself), then what `wg showconf` prints, taken from the UAPI
//! socket (private key, port, fwmark, and the peers with their live changes: `wg set`,
//! `wgxdp peer add`, roamed endpoints). Written aside with mode 0600, synced, renamed over the
//! file. As with wg-quick, a file that cannot be written stops `down`, so that the live state
//! is not lost; a control process that does not answer (it died; the data path forwards on
//! without it) has no live state left to save, so then the file stays as it is and `down`
//! carries on.
//!
//! One difference from wg-quick: it keeps the link-local addresses `ip -brief` shows; the
//! kernel puts those there itself, so they are left out here.

use crate::operator::{get, uapi, unhex, Got};
use control::config::{Config, Endpoint, Interface, IpPrefix, Peer};
use control::InterfaceName;
use proto::keys::{PresharedKey, PrivateKey, PublicKey};
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;
use std::process::Command;

/// The addresses on `interface` now, with their prefix lengths; link-local ones left out.
fn current_addresses(interface: &str) -> Result<Vec<IpPrefix>, String> {
    let out = Command::new("ip")
        .args(["-o", "address", "show", "dev", interface])
        .output()
        .map_err(|e| format!("ip address show: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "ip address show dev {interface}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(parse_addresses(&String::from_utf8_lossy(&out.stdout)))
}

/// `ip -o address show` lines: `N: IF inet A/L ... scope S ...`.
fn parse_addresses(text: &str) -> Vec<IpPrefix> {
    text.lines()
        .filter(|l| !l.contains(" scope link"))
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            words.find(|w| *w == "inet" || *w == "inet6")?;
            words.next()?.parse().ok()
        })
        .collect()
}

/// The gateway's state as `wg showconf` prints it, from a UAPI `get=1` answer, under the
/// wg-quick keys of `file` (Address and MTU replaced by the interface's).
fn saved(file: &Config, got: &Got, addresses: Vec<IpPrefix>, mtu: Option<u16>) -> Config {
    let d = &got.device;
    let f = &file.interface;
    let interface = Interface {
        private_key: get(d, "private_key")
            .and_then(unhex)
            .map(PrivateKey::from_bytes),
        listen_port: get(d, "listen_port").and_then(|p| p.parse().ok()),
        fwmark: get(d, "fwmark")
            .and_then(|m| m.parse().ok())
            .filter(|m| *m != 0),
        addresses,
        dns: f.dns.clone(),
        mtu: f.mtu.and(mtu).or(f.mtu),
        table: f.table.clone(),
        pre_up: f.pre_up.clone(),
        post_up: f.post_up.clone(),
        pre_down: f.pre_down.clone(),
        post_down: f.post_down.clone(),
        save_config: true,
    };
    let peers = got
        .peers
        .iter()
        .filter_map(|p| {
            Some(Peer {
                public_key: PublicKey::from_bytes(get(p, "public_key").and_then(unhex)?),
                preshared_key: get(p, "preshared_key")
                    .and_then(unhex)
                    .map(PresharedKey::from_bytes)
                    .filter(|k| !k.is_zero()),
                allowed_ips: p
                    .iter()
                    .filter(|(k, _)| k == "allowed_ip")
                    .filter_map(|(_, v)| v.parse().ok())
                    .collect(),
                endpoint: get(p, "endpoint")
                    .and_then(|e| e.parse().ok())
                    .map(Endpoint::Addr),
                persistent_keepalive: get(p, "persistent_keepalive_interval")
                    .and_then(|k| k.parse().ok())
                    .filter(|k| *k != 0),
            })
        })
        .collect();
    Config { interface, peers }
}

/// Rewrites `path` from gateway `name`'s running state (see the module's text).
pub fn save_config(name: &InterfaceName, path: &Path, file: &Config) -> Result<(), String> {
    eprintln!("[#] wg showconf {name}");
    // Control gone (the data path forwards on without it): the live state went with it, and
    // `down` must still work; the file stays as it was.
    let got = match uapi(name, "get=1\n\n") {
        Ok(text) => Got::parse(&text),
        Err(e) => {
            eprintln!(
                "wgxdp: SaveConfig: {e}; {} is left as it was",
                path.display()
            );
            return Ok(());
        }
    };
    // The interface gone with a data path that died: the file's addresses stand.
    let addresses = current_addresses(name.as_str())
        .inspect_err(|e| eprintln!("wgxdp: SaveConfig: {e}; keeping the file's Address"))
        .unwrap_or_else(|_| file.interface.addresses.clone());
    let mtu = std::fs::read_to_string(format!("/sys/class/net/{name}/mtu"))
        .ok()
        .and_then(|m| m.trim().parse().ok());
    let text = zeroize::Zeroizing::new(saved(file, &got, addresses, mtu).to_wg_quick_string());
    let tmp = path.with_extension("conf.tmp");
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("SaveConfig: could not write {}: {e}", path.display())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_running_state_under_the_files_wg_quick_keys() {
        let file = control::config::parse(
            "t.conf",
            "[Interface]\nPrivateKey = qNoBKylRuEUtBuTANIS6rSZoCqG8cFYzEWeS7fx63Vk=\n\
             Address = 10.0.0.1/24\nMTU = 1400\nDNS = 10.0.0.1, example.net\nSaveConfig = true\n\
             PostUp = iptables -A FORWARD -i %i -j ACCEPT # verbatim\n",
        )
        .unwrap();
        let key = hex::encode(file.interface.private_key.as_ref().unwrap().as_bytes());
        let peer = hex::encode([7u8; 32]);
        let got = Got::parse(&format!(
            "private_key={key}\nlisten_port=51820\nfwmark=0\npublic_key={peer}\n\
             preshared_key={}\nprotocol_version=1\nendpoint=198.18.0.10:51820\n\
             last_handshake_time_sec=0\npersistent_keepalive_interval=25\n\
             allowed_ip=10.0.0.2/32\nallowed_ip=fd00::2/128\n",
            "0".repeat(64)
        ));
        let addrs = parse_addresses(
            "7: wg0    inet 10.0.0.1/24 scope global wg0\\       valid_lft forever\n\
             7: wg0    inet6 fd00::1/64 scope global \\       valid_lft forever\n\
             7: wg0    inet6 fe80::1/64 scope link \\       valid_lft forever\n",
        );
        assert_eq!(addrs.len(), 2, "{addrs:?}");
        let c = saved(&file, &got, addrs, Some(1380));
        let text = c.to_wg_quick_string();
        let back = control::config::parse("saved.conf", &text).unwrap();
        assert_eq!(back, c, "{text}");
        let i = &back.interface;
        assert_eq!(i.mtu, Some(1380), "the interface's MTU now");
        assert_eq!(i.listen_port, Some(51820));
        assert_eq!(i.fwmark, None);
        assert!(i.save_config && i.post_up == file.interface.post_up && i.dns.len() == 2);
        assert_eq!(back.peers.len(), 1);
        let p = &back.peers[0];
        assert_eq!(p.preshared_key, None, "an all-zero key is none");
        assert_eq!(p.persistent_keepalive, Some(25));
        assert_eq!(p.allowed_ips.len(), 2);
        assert_eq!(
            p.endpoint,
            Some(Endpoint::Addr("198.18.0.10:51820".parse().unwrap()))
        );
        // Without MTU in the file, none is saved (wg-quick computes it again).
        let mut no_mtu = file.clone();
        no_mtu.interface.mtu = None;
        assert_eq!(saved(&no_mtu, &got, vec![], Some(1380)).interface.mtu, None);
    }
}
