//! `wgxdp-ceiling`: the ceiling of the gateway's path on this machine (issue 14, item 1): a
//! plain AF_XDP forwarder with wgxdp's own XDP program, sockets and worker-style loop, minus
//! everything a gateway does per packet (no parsing, no crypto, no lookups): what the WAN
//! program steers (WireGuard data to `--port`) leaves by the LAN port to `--to-mac`, as is.
//!
//! ```text
//! wgxdp-ceiling --wan IF --lan IF --to-mac MAC [--port 51820] [--seconds S]
//! ```
//!
//! Run inside the gateway's namespace (`ip netns exec`), as the benchmark does; it runs until
//! `--seconds` have passed, then prints `forwarded=N` and detaches. Killed instead, it leaves
//! its program on the WAN interface until the interface goes (the benchmark deletes its
//! namespaces). The generator sends it data messages under made-up sessions
//! (`wgxdp-loadgen run --no-handshake true`): nothing here opens them.

use dataplane::link::{Link, Side};
use dataplane::xdp::{Role, Steering};
use dataplane::xsk::{BindMode, Port, Umem, UmemSpec, XskLink};
use std::process::ExitCode;
use std::time::{Duration, Instant};

fn arg(args: &[String], key: &str) -> Option<String> {
    args.windows(2).find(|w| w[0] == key).map(|w| w[1].clone())
}

fn mac(text: &str) -> Option<[u8; 6]> {
    let mut m = [0u8; 6];
    let mut parts = text.split(':');
    for b in &mut m {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(m)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(n) => {
            println!("forwarded={n}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("wgxdp-ceiling: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> Result<u64, String> {
    let wan = arg(args, "--wan").ok_or("--wan IF is required")?;
    let lan = arg(args, "--lan").ok_or("--lan IF is required")?;
    let to = arg(args, "--to-mac")
        .and_then(|m| mac(&m))
        .ok_or("--to-mac MAC is required (aa:bb:cc:dd:ee:ff)")?;
    let port: u16 = arg(args, "--port")
        .unwrap_or_else(|| "51820".into())
        .parse()
        .map_err(|e| format!("--port: {e}"))?;
    let seconds: f64 = arg(args, "--seconds")
        .unwrap_or_else(|| "3600".into())
        .parse()
        .map_err(|e| format!("--seconds: {e}"))?;
    let lan_if = dataplane::daemon::iface(&lan).map_err(|e| e.to_string())?;
    let mut steering = Steering::load(port).map_err(|e| e.to_string())?;
    for a in dataplane::neigh::local_addrs().map_err(|e| e.to_string())? {
        steering.add_local_addr(a).map_err(|e| e.to_string())?;
    }
    steering
        .attach(Role::Wan, &wan)
        .map_err(|e| e.to_string())?;
    let spec = UmemSpec::default();
    let umem = Umem::new(spec).map_err(|e| e.to_string())?;
    let wan_port =
        Port::bind(&umem, &wan, 0, BindMode::Copy, spec.ring_size).map_err(|e| e.to_string())?;
    let lan_port =
        Port::bind(&umem, &lan, 0, BindMode::Copy, spec.ring_size).map_err(|e| e.to_string())?;
    steering
        .set_socket(Role::Wan, 0, wan_port.fd())
        .map_err(|e| e.to_string())?;
    let pool = umem.pool().ok_or("the UMEM's pool was taken")?;
    let mut link = XskLink::new(pool, wan_port, Some(lan_port), None);
    let (mut frames, mut forwarded) = (Vec::with_capacity(64), 0u64);
    let end = Instant::now() + Duration::from_secs_f64(seconds);
    while Instant::now() < end {
        link.service();
        let n = link.recv(Side::Wan, &mut frames, 64);
        for f in &mut frames {
            let off = f.offset();
            if let Some(eth) = f.chunk_mut().get_mut(off..off + 12) {
                eth[..6].copy_from_slice(&to);
                eth[6..12].copy_from_slice(&lan_if.mac);
            }
        }
        forwarded += link.send(Side::Lan, &mut frames) as u64;
        for f in frames.drain(..) {
            link.release(f);
        }
        if n == 0 {
            link.wait(1, None);
        }
    }
    Ok(forwarded)
}
