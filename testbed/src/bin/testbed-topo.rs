//! The gateway topology ([`testbed::Topology`]) for shell scripts: the demo and the benchmarks
//! build their hosts with it instead of their own `ip netns add` lines.
//!
//! ```text
//! testbed-topo create --owner PID [--wan switch|host] [--one-armed] [--peers K] [--queues N]
//!                     [--ipv4-only] [--route PREFIX]...
//! testbed-topo sites --owner PID
//! testbed-topo delete --owner PID
//! ```
//!
//! `create` prints shell assignments (`eval` them) and exits; the namespaces stay. They are
//! named after `--owner` (the script's `$$`), not after this short-lived process, so that
//! nothing sweeps them as stale while the script runs and `testbed/test`'s leak check blames
//! the script if they outlive it. The script's `trap` runs `delete --owner $$`, which removes
//! every namespace of that owner: also those of a `create` interrupted half-way.
//!
//! Printed (absent parts are not printed; addresses without their prefix length):
//!
//! ```text
//! ns_gw gw_wan gw_wan_v4 gw_wan_v6      the gateway's namespace and WAN interface
//! gw_lan                                its LAN interface (two-armed)
//! gw_lan_v4 gw_lan_v6                   its LAN-side addresses (one-armed: gw_lan_v4 only,
//!                                       on gw_wan)
//! ns_srv srv_if srv_v4 srv_v6           the server
//! ns_sw sw_bridge                       the switch (--wan switch)
//! ns_gen gen_if gen_v4 gen_v6           the generator's host (--wan host)
//! peer_count                            K; then ns_p<i> p<i>_if p<i>_v4 p<i>_v6 per peer
//! namespaces                            all of them, space-separated
//! ```
//!
//! `sites` builds the whitepaper's site-to-site topology ([`testbed::SiteToSite`]) and prints
//! `ns_a a_if a_v4`, `ns_ga ga_lan ga_lan_v4 ga_wan ga_wan_v4`, the same for `gb` and `b`,
//! `ns_link` (the link's bridge namespace, ports `port-a` and `port-b`),
//! `site_a site_b` (the subnets) and `namespaces`.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::IpAddr;
use std::process::ExitCode;
use testbed::{plan, Host, IfAddr, Topology, VethEnd, WanSide};

const USAGE: &str = "usage: testbed-topo create --owner PID [--wan switch|host] [--one-armed] \
[--peers K] [--queues N] [--ipv4-only] [--route PREFIX]...
       testbed-topo sites --owner PID
       testbed-topo delete --owner PID";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(msg)) => {
            eprintln!("testbed-topo: {msg}\n{USAGE}");
            ExitCode::from(2)
        }
        Err(Failure::Testbed(e)) => {
            eprintln!("testbed-topo: {e}");
            ExitCode::FAILURE
        }
    }
}

#[derive(Debug)]
enum Failure {
    Usage(String),
    Testbed(testbed::Error),
}

impl From<testbed::Error> for Failure {
    fn from(e: testbed::Error) -> Self {
        Failure::Testbed(e)
    }
}

fn run(args: &[String]) -> Result<(), Failure> {
    let (command, options) = args
        .split_first()
        .ok_or_else(|| Failure::Usage("no command".into()))?;
    let mut owner = None;
    let mut builder = Topology::builder();
    let mut routes = Vec::new();
    let mut it = options.iter();
    while let Some(option) = it.next() {
        let mut value = || {
            it.next()
                .ok_or_else(|| Failure::Usage(format!("{option} needs a value")))
        };
        match option.as_str() {
            "--owner" => owner = Some(parse::<u32>(option, value()?)?),
            "--wan" => {
                builder = builder.wan(match value()?.as_str() {
                    "switch" => WanSide::Switch,
                    "host" => WanSide::Host,
                    other => return Err(Failure::Usage(format!("--wan {other}: switch or host"))),
                })
            }
            "--one-armed" => builder = builder.one_armed(),
            "--peers" => builder = builder.peers(parse(option, value()?)?),
            "--queues" => builder = builder.queues(parse(option, value()?)?),
            "--ipv4-only" => builder = builder.ipv4_only(),
            "--route" => routes.push(parse::<IfAddr>(option, value()?)?),
            other => return Err(Failure::Usage(format!("unknown option {other}"))),
        }
    }
    let owner = owner.ok_or_else(|| Failure::Usage("--owner PID is required".into()))?;
    if !routes.is_empty() {
        builder = builder.routes(&routes);
    }
    match command.as_str() {
        "create" => {
            // Namespaces of a process that is not there would be swept as stale at once.
            if !std::path::Path::new("/proc")
                .join(owner.to_string())
                .exists()
            {
                return Err(Failure::Usage(format!("--owner {owner}: no such process")));
            }
            let topology = builder.owner(owner).create()?;
            // Printed before the guards are given up: if the script cannot read the names,
            // dropping the topology removes it.
            print_vars(&shell_vars(&topology))?;
            topology.release();
            Ok(())
        }
        "sites" => {
            if !std::path::Path::new("/proc")
                .join(owner.to_string())
                .exists()
            {
                return Err(Failure::Usage(format!("--owner {owner}: no such process")));
            }
            let sites = testbed::SiteToSite::create(Some(owner))?;
            let mut out = String::new();
            let mut var = |key: &str, value: &str| {
                let _ = writeln!(out, "{key}={value}");
            };
            for (key, site) in [("a", &sites.a), ("b", &sites.b)] {
                var(&format!("ns_{key}"), site.host.name());
                end_vars(&mut var, &format!("{key}_if"), key, &site.host_if);
                let g = format!("g{key}");
                var(&format!("ns_{g}"), site.gw.name());
                end_vars(
                    &mut var,
                    &format!("{g}_lan"),
                    &format!("{g}_lan"),
                    &site.gw_lan,
                );
                end_vars(
                    &mut var,
                    &format!("{g}_wan"),
                    &format!("{g}_wan"),
                    &site.gw_wan,
                );
            }
            var("ns_link", sites.link.name());
            var("site_a", &testbed::SITE_A.to_string());
            var("site_b", &testbed::SITE_B.to_string());
            let names = [
                &sites.a.host,
                &sites.a.gw,
                &sites.link,
                &sites.b.gw,
                &sites.b.host,
            ]
            .map(|n| n.name().to_string())
            .join(" ");
            var("namespaces", &format!("'{names}'"));
            print_vars(&out)?;
            sites.release();
            Ok(())
        }
        "delete" => {
            // Quiet, as the scripts' own cleanup was: it runs on every exit.
            testbed::delete_owned_by(owner)?;
            Ok(())
        }
        other => Err(Failure::Usage(format!("unknown command {other}"))),
    }
}

/// Writes the assignments to stdout, flushed, or fails (the caller then drops its guards).
fn print_vars(text: &str) -> Result<(), testbed::Error> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|source| testbed::Error::Io {
            what: "write to",
            path: "stdout".into(),
            source,
        })
}

fn parse<T: std::str::FromStr>(option: &str, value: &str) -> Result<T, Failure> {
    value
        .parse()
        .map_err(|_| Failure::Usage(format!("{option} {value}: not valid")))
}

/// `key=value` lines; values are names and addresses (no characters the shell treats
/// specially) except `namespaces`, which is quoted.
fn shell_vars(t: &Topology) -> String {
    let mut out = String::new();
    let mut var = |key: &str, value: &str| {
        let _ = writeln!(out, "{key}={value}");
    };
    var("ns_gw", t.gw.name());
    end_vars(&mut var, "gw_wan", "gw_wan", &t.gw_wan);
    match &t.gw_lan {
        Some(lan) => end_vars(&mut var, "gw_lan", "gw_lan", lan),
        // One-armed: the LAN-side address is on `wan` (IPv4 only).
        None => var("gw_lan_v4", &plan::LAN_GW_V4.ip.to_string()),
    }
    host_vars(&mut var, "srv", &t.srv);
    if let Some(switch) = &t.switch {
        var("ns_sw", switch.ns.name());
        var("sw_bridge", &switch.bridge);
    }
    if let Some(gen) = &t.generator {
        host_vars(&mut var, "gen", gen);
    }
    // Not `peers`: the scripts have an option of that name.
    var("peer_count", &t.peers.len().to_string());
    for (i, peer) in t.peers.iter().enumerate() {
        host_vars(&mut var, &format!("p{i}"), peer);
    }
    var("namespaces", &format!("'{}'", t.namespaces().join(" ")));
    out
}

/// `ns_<key>`, `<key>_if` and its addresses.
fn host_vars(var: &mut impl FnMut(&str, &str), key: &str, host: &Host) {
    var(&format!("ns_{key}"), host.ns.name());
    end_vars(var, &format!("{key}_if"), key, &host.iface);
}

/// `<if_key>=ifname`, then `<prefix>_v4` and `<prefix>_v6`: the end's first address of each
/// family.
fn end_vars(var: &mut impl FnMut(&str, &str), if_key: &str, prefix: &str, end: &VethEnd) {
    var(if_key, &end.ifname);
    let first = |v6: bool| end.addrs.iter().map(|a| a.ip).find(|ip| ip.is_ipv6() == v6);
    if let Some(IpAddr::V4(ip)) = first(false) {
        var(&format!("{prefix}_v4"), &ip.to_string());
    }
    if let Some(IpAddr::V6(ip)) = first(true) {
        var(&format!("{prefix}_v6"), &ip.to_string());
    }
}
