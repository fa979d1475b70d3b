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

use bench::ceiling::Ceiling;
use dataplane::link::{Link, Side};
use dataplane::xdp::Role;
use dataplane::xsk::{BindMode, Port, Umem, UmemSpec, XskLink};
use std::process::ExitCode;
use std::time::Instant;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    Ceiling::report("wgxdp-ceiling", run(&args))
}

fn run(args: &[String]) -> Result<u64, String> {
    let mut c = Ceiling::from_args(args)?;
    let spec = UmemSpec::default();
    let umem = Umem::new(spec).map_err(|e| e.to_string())?;
    let wan_port =
        Port::bind(&umem, &c.wan, 0, BindMode::Copy, spec.ring_size).map_err(|e| e.to_string())?;
    let lan_port =
        Port::bind(&umem, &c.lan, 0, BindMode::Copy, spec.ring_size).map_err(|e| e.to_string())?;
    c.steering
        .set_socket(Role::Wan, 0, wan_port.fd())
        .map_err(|e| e.to_string())?;
    let pool = umem.pool().ok_or("the UMEM's pool was taken")?;
    let mut link = XskLink::new(pool, wan_port, Some(lan_port), None);
    let (mut frames, mut forwarded) = (Vec::with_capacity(64), 0u64);
    while Instant::now() < c.end {
        link.service();
        let n = link.recv(Side::Wan, &mut frames, 64);
        for f in &mut frames {
            let off = f.offset();
            if let Some(eth) = f.chunk_mut().get_mut(off..) {
                c.readdress(eth);
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
