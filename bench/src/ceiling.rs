//! What the ceiling forwarders share (issue 14, items 1 and 4): `wgxdp-ceiling` (over
//! wgxdp's own link layer) and `bench/xsk-libs-ceiling` (over the bare xsk-rs and xdpilone
//! ring libraries) take the same arguments, steer with wgxdp's XDP program on WAN, and
//! rewrite every forwarded frame's Ethernet addresses the same way.
//!
//! ```text
//! --wan IF --lan IF --to-mac MAC [--port 51820] [--seconds S]
//! ```

use dataplane::daemon::parse_mac;
use dataplane::xdp::{Role, Steering};
use std::time::{Duration, Instant};

/// `--key value` from the arguments.
pub fn arg(args: &[String], key: &str) -> Option<String> {
    args.windows(2).find(|w| w[0] == key).map(|w| w[1].clone())
}

/// A forwarder's setting, and wgxdp's XDP program attached to WAN, steering WireGuard data
/// for the port to the socket that [`Ceiling::steering`] is given.
#[derive(Debug)]
pub struct Ceiling {
    pub wan: String,
    pub lan: String,
    /// Destination and source Ethernet addresses written into every frame.
    pub to: [u8; 6],
    pub from: [u8; 6],
    /// When to stop.
    pub end: Instant,
    pub steering: Steering,
}

impl Ceiling {
    /// Reads the arguments and attaches the WAN program (run inside the gateway's namespace).
    pub fn from_args(args: &[String]) -> Result<Self, String> {
        let wan = arg(args, "--wan").ok_or("--wan IF is required")?;
        let lan = arg(args, "--lan").ok_or("--lan IF is required")?;
        let to = arg(args, "--to-mac")
            .and_then(|m| parse_mac(&m))
            .ok_or("--to-mac MAC is required (aa:bb:cc:dd:ee:ff)")?;
        let port: u16 = arg(args, "--port")
            .unwrap_or_else(|| "51820".into())
            .parse()
            .map_err(|e| format!("--port: {e}"))?;
        let seconds: f64 = arg(args, "--seconds")
            .unwrap_or_else(|| "3600".into())
            .parse()
            .map_err(|e| format!("--seconds: {e}"))?;
        let from = dataplane::daemon::iface(&lan)
            .map_err(|e| e.to_string())?
            .mac;
        let mut steering = Steering::load(port).map_err(|e| e.to_string())?;
        for a in dataplane::neigh::local_addrs().map_err(|e| e.to_string())? {
            steering.add_local_addr(a).map_err(|e| e.to_string())?;
        }
        steering
            .attach(Role::Wan, &wan)
            .map_err(|e| e.to_string())?;
        Ok(Self {
            wan,
            lan,
            to,
            from,
            end: Instant::now() + Duration::from_secs_f64(seconds),
            steering,
        })
    }

    /// Writes a frame's Ethernet addresses (a frame shorter than that is left alone).
    pub fn readdress(&self, frame: &mut [u8]) {
        if let Some(eth) = frame.get_mut(..12) {
            eth[..6].copy_from_slice(&self.to);
            eth[6..12].copy_from_slice(&self.from);
        }
    }

    /// Prints `forwarded=N` (what the benchmark reads) or the error, as the exit code says.
    pub fn report(name: &str, result: Result<u64, String>) -> std::process::ExitCode {
        match result {
            Ok(n) => {
                println!("forwarded={n}");
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{name}: {e}");
                std::process::ExitCode::FAILURE
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_found_by_key() {
        let args: Vec<String> = ["--wan", "a", "--lan", "b"].map(String::from).to_vec();
        assert_eq!(arg(&args, "--lan").as_deref(), Some("b"));
        assert_eq!(arg(&args, "--port"), None);
    }
}
