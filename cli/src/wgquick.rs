//! What wg-quick does around the WireGuard interface, done the same way for both backends:
//! the hooks, the interface's addresses and MTU, DNS through resolvconf, and the routes for
//! the peers' allowed IPs.
//!
//! The order is wg-quick's (Debian's wireguard-tools 1.0.20210914, `cmd_up`/`cmd_down`):
//!
//! - up: PreUp; the interface is created (here: by the data path, or the fallback process);
//!   `ip address add` for every Address; `ip link set mtu N up`; DNS; a route per allowed IP;
//!   PostUp. If a step fails, what was set up is torn down and `up` fails.
//! - down: PreDown; the interface is removed (the process owning it stops); DNS unset;
//!   PostDown. wg-quick stops at a failing down hook; we report it and carry on, so that a
//!   broken hook never leaves a gateway half up.
//!
//! (Upstream wg-quick since moved PreUp after the interface's creation; the Debian version
//! installed with the testbed, and most servers', runs it first.)
//!
//! Routes follow wg-quick's `add_route`: longest prefixes first; none with `Table = off`; with
//! a table number or name, every allowed IP into that table; otherwise into the main table,
//! skipping what a route on the interface already covers (its addresses' subnets). One
//! deliberate difference: a /0 in the main table is where wg-quick adds its policy routing
//! (a table of its own, an fwmark rule, `suppress_prefixlength 0`, and raw-table firewall
//! rules), which would also catch the data path's own kernel-path packets. wgxdp does not do
//! that: it adds no default route, and says so (a gateway's peers are its clients, whose
//! allowed IPs are their own addresses; a /0 on a gateway belongs with `Table = N`).

use control::config::{Config, IpPrefix};
use std::io::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// When a hook runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    PreUp,
    PostUp,
    PreDown,
    PostDown,
}

impl Phase {
    fn key(self) -> &'static str {
        match self {
            Phase::PreUp => "PreUp",
            Phase::PostUp => "PostUp",
            Phase::PreDown => "PreDown",
            Phase::PostDown => "PostDown",
        }
    }

    fn hooks(self, config: &Config) -> &[String] {
        let i = &config.interface;
        match self {
            Phase::PreUp => &i.pre_up,
            Phase::PostUp => &i.post_up,
            Phase::PreDown => &i.pre_down,
            Phase::PostDown => &i.post_down,
        }
    }
}

/// A hook's text as wg-quick runs it: every `%i` replaced by the interface name.
pub fn expand(hook: &str, interface: &str) -> String {
    hook.replace("%i", interface)
}

/// Runs the hooks of `phase`, in file order, each as wg-quick does: echoed as `[#] HOOK` on
/// stderr, then evaluated by bash with `set -e -o pipefail` (wg-quick's own shell options,
/// which its `(eval "$hook")` subshell inherits). Up hooks stop at the first that fails;
/// down hooks all run, and the failures are returned together.
pub fn run_hooks(phase: Phase, config: &Config, interface: &str) -> Result<(), String> {
    let mut failed = Vec::new();
    for hook in phase.hooks(config) {
        let hook = expand(hook, interface);
        eprintln!("[#] {hook}");
        let status = Command::new("bash")
            .args(["-e", "-o", "pipefail", "-c", &hook])
            .stdin(Stdio::null())
            .status();
        let why = match status {
            Ok(s) if s.success() => continue,
            Ok(s) => format!("{} `{hook}` failed ({s})", phase.key()),
            Err(e) => format!("{} `{hook}`: cannot run bash: {e}", phase.key()),
        };
        if matches!(phase, Phase::PreUp | Phase::PostUp) {
            return Err(why);
        }
        failed.push(why);
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(failed.join("\n"))
    }
}

/// Runs `ip ARGS`, echoed as wg-quick echoes its commands.
pub fn ip(args: &[&str]) -> Result<(), String> {
    eprintln!("[#] ip {}", args.join(" "));
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if !out.status.success() {
        return Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

/// The tunnel MTU: the file's, else 1420 (what wg-quick computes for a 1500-byte path).
pub fn mtu(config: &Config) -> usize {
    config
        .interface
        .mtu
        .map_or(dataplane::daemon::DEFAULT_MTU, usize::from)
}

/// wg-quick's `add_addr` for every Address, then `set_mtu_up`.
/// Turns on IP forwarding (both families): a gateway forwards what its peers send beyond it,
/// and on XDP the kernel does for what the workers hand it through the gateway's interface
/// (the internet behind the operator's NAT, another peer, a LAN host not yet resolved).
/// wg-quick leaves this to the operator (the guides set it in sysctl.conf); a gateway that did
/// not forward would drop those packets silently. Best effort: a read-only /proc/sys (a
/// container) leaves it as it is.
pub fn enable_forwarding() {
    // With forwarding on, an interface whose accept_ra is 1 stops taking router
    // advertisements, and a host that has its IPv6 default route from them would lose it
    // when it expires; 2 takes them even when forwarding (what a router with an upstream
    // learned by SLAAC uses).
    if let Ok(dir) = std::fs::read_dir("/proc/sys/net/ipv6/conf") {
        for e in dir.flatten() {
            let path = e.path().join("accept_ra");
            if std::fs::read_to_string(&path).is_ok_and(|v| v.trim() == "1") {
                let _ = std::fs::write(&path, "2");
            }
        }
    }
    let _ = std::process::Command::new("sysctl")
        .args([
            "-q",
            "-w",
            "net.ipv4.ip_forward=1",
            "net.ipv6.conf.all.forwarding=1",
        ])
        .status();
}

pub fn set_addresses_and_mtu_up(config: &Config, interface: &str) -> Result<(), String> {
    for a in &config.interface.addresses {
        let family = if a.addr().is_ipv6() { "-6" } else { "-4" };
        ip(&[family, "address", "add", &a.to_string(), "dev", interface])?;
    }
    ip(&[
        "link",
        "set",
        "mtu",
        &mtu(config).to_string(),
        "up",
        "dev",
        interface,
    ])
}

/// Where the routes for the peers' allowed IPs go (wg-quick's `Table`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Table {
    /// `auto` or unset: the main table.
    Main,
    /// `off`: no routes.
    Off,
    /// A table number or a name from rt_tables.
    Named(String),
}

impl Table {
    pub fn of(config: &Config) -> Self {
        match config.interface.table.as_deref() {
            None => Table::Main,
            Some(t) if t.eq_ignore_ascii_case("auto") => Table::Main,
            Some(t) if t.eq_ignore_ascii_case("off") => Table::Off,
            Some(t) => Table::Named(t.to_string()),
        }
    }
}

/// The routes `up` adds, as `ip route` arguments after `route add`, and what it leaves out
/// and why (printed).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RoutePlan {
    pub routes: Vec<String>,
    pub notes: Vec<String>,
}

/// `prefix` with its host bits cleared, as `wg show allowed-ips` prints it.
fn network(p: &IpPrefix) -> (IpAddr, u8) {
    let len = p.prefix_len();
    let addr = match p.addr() {
        IpAddr::V4(a) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            IpAddr::V4((u32::from(a) & mask).into())
        }
        IpAddr::V6(a) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            IpAddr::V6((u128::from(a) & mask).into())
        }
    };
    (addr, len)
}

/// Whether `outer` contains `inner` (same family, shorter or equal prefix).
fn covers(outer: (IpAddr, u8), inner: (IpAddr, u8)) -> bool {
    if outer.1 > inner.1 || outer.0.is_ipv4() != inner.0.is_ipv4() {
        return false;
    }
    let masked = IpPrefix::new(inner.0, outer.1).map(|p| network(&p).0);
    masked == Ok(outer.0)
}

/// wg-quick's routes for `config`'s allowed IPs on `interface`. In the main table a prefix
/// that a route on the interface already covers is skipped, as wg-quick's
/// `ip route show dev IF match P` check does: right after `up` set the addresses, those routes
/// are the addresses' subnets (and fe80::/64).
pub fn route_plan(config: &Config, interface: &str) -> RoutePlan {
    let mut plan = RoutePlan::default();
    let table = Table::of(config);
    if table == Table::Off {
        return plan;
    }
    let mut prefixes: Vec<(IpAddr, u8)> = config
        .peers
        .iter()
        .flat_map(|p| p.allowed_ips.iter().map(network))
        .collect();
    // `sort -nr -k 2 -t /`: longest prefixes first.
    prefixes.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    prefixes.dedup();
    let connected: Vec<(IpAddr, u8)> = config
        .interface
        .addresses
        .iter()
        .filter(|a| a.prefix_len() < IpPrefix::max_len(a.addr()))
        .map(network)
        .chain(std::iter::once(("fe80::".parse().expect("an address"), 64)))
        .collect();
    for p in prefixes {
        let text = format!("{}/{}", p.0, p.1);
        match &table {
            Table::Named(t) => plan
                .routes
                .push(format!("{text} dev {interface} table {t}")),
            Table::Main if p.1 == 0 => plan.notes.push(format!(
                "not routing {text} into {interface}: wg-quick would add a policy-routing table \
                 and fwmark rule for it, which wgxdp does not; the gateway's own traffic keeps \
                 its default route (Table = N routes it into table N instead)"
            )),
            Table::Main if connected.iter().any(|c| covers(*c, p)) => {}
            Table::Main => plan.routes.push(format!("{text} dev {interface}")),
            Table::Off => {}
        }
    }
    plan
}

/// Adds `plan`'s routes in one `ip -batch` (which stops at the first that fails).
pub fn add_routes(plan: &RoutePlan) -> Result<(), String> {
    for n in &plan.notes {
        eprintln!("wgxdp: {n}");
    }
    if plan.routes.is_empty() {
        return Ok(());
    }
    let mut batch = String::new();
    for r in &plan.routes {
        eprintln!("[#] ip route add {r}");
        batch.push_str("route add ");
        batch.push_str(r);
        batch.push('\n');
    }
    let mut child = Command::new("ip")
        .args(["-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("ip -batch: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(batch.as_bytes())
            .map_err(|e| format!("ip -batch: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("ip -batch: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "adding routes: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

/// Where `resolvconf` is (wg-quick's DNS needs it): on PATH, or in the sbin directories a
/// reset sudo PATH may lack.
fn resolvconf() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join("resolvconf"))
        .find(|p| p.is_file())
}

pub fn have_resolvconf() -> bool {
    resolvconf().is_some()
}

/// Why `up` refuses `config` here, if it does: DNS without resolvconf (wg-quick fails the
/// same way, after creating the interface; we refuse before anything is started).
pub fn refuse_dns(config: &Config, path: &str) -> Result<(), String> {
    if config.interface.dns.is_empty() || have_resolvconf() {
        return Ok(());
    }
    Err(format!(
        "{path}: DNS = {} needs resolvconf, as with wg-quick, and it is not installed: install \
         resolvconf (or openresolv), or remove DNS from the file",
        config.interface.dns.join(", ")
    ))
}

/// The name resolvconf knows the interface by: Debian's resolvconf orders interfaces by
/// name patterns, and wg-quick prefixes the first wildcard one (`tun.` for `tun*`).
fn resolvconf_name(interface: &str) -> String {
    let order = Path::new("/etc/resolvconf/interface-order");
    // wg-quick: Debian's resolvconf (not a symlink to another implementation).
    let debian = resolvconf().is_some_and(|p| !p.is_symlink());
    let prefix = if order.is_file() && debian {
        std::fs::read_to_string(order)
            .unwrap_or_default()
            .lines()
            .find_map(|l| {
                let stem = l.trim().strip_suffix('*')?;
                (!stem.is_empty() && stem.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
                    .then(|| format!("{stem}."))
            })
            .unwrap_or_default()
    } else {
        String::new()
    };
    format!("{prefix}{interface}")
}

/// wg-quick's `set_dns`: the servers and search domains to resolvconf.
pub fn set_dns(config: &Config, interface: &str) -> Result<(), String> {
    let i = &config.interface;
    let servers: Vec<IpAddr> = i.dns_servers().collect();
    if servers.is_empty() {
        return Ok(());
    }
    let mut text: String = servers
        .iter()
        .map(|s| format!("nameserver {s}\n"))
        .collect();
    let search: Vec<&str> = i.dns_search().collect();
    if !search.is_empty() {
        text.push_str(&format!("search {}\n", search.join(" ")));
    }
    let name = resolvconf_name(interface);
    eprintln!("[#] resolvconf -a {name} -m 0 -x");
    let mut child = Command::new("resolvconf")
        .args(["-a", &name, "-m", "0", "-x"])
        .stdin(Stdio::piped())
        .spawn()
        .map_err(|e| format!("resolvconf: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(text.as_bytes())
            .map_err(|e| format!("resolvconf: {e}"))?;
    }
    match child.wait() {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(format!("resolvconf -a {name}: {s}")),
        Err(e) => Err(format!("resolvconf: {e}")),
    }
}

/// wg-quick's `unset_dns`.
pub fn unset_dns(config: &Config, interface: &str) {
    if config.interface.dns_servers().next().is_none() {
        return;
    }
    let name = resolvconf_name(interface);
    eprintln!("[#] resolvconf -d {name} -f");
    let _ = Command::new("resolvconf")
        .args(["-d", &name, "-f"])
        .status();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Config {
        control::config::parse("t.conf", text).unwrap()
    }

    const IFACE: &str = "[Interface]\nPrivateKey = qNoBKylRuEUtBuTANIS6rSZoCqG8cFYzEWeS7fx63Vk=\n";
    const PEERS: &str = "[Peer]\nPublicKey = xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=\n\
        AllowedIPs = 10.0.0.2/32, fd00::2/128, 192.168.7.0/24\n\
        [Peer]\nPublicKey = TrMvSoP4jYQlY6RIzBgbssQqY3vxI2Pi+y71lOWWXX0=\n\
        AllowedIPs = 10.0.0.3/32, 0.0.0.0/0, 10.9.9.9/16\n";

    #[test]
    fn routes_as_wg_quick_adds_them() {
        let c = config(&format!(
            "{IFACE}Address = 10.0.0.1/24, fd00::1/64\n{PEERS}"
        ));
        let plan = route_plan(&c, "wg0");
        // The /32s and /128 inside the addresses' subnets need no route of their own; the
        // rest go longest first, host bits cleared; the /0 is left out, with a note.
        assert_eq!(
            plan.routes,
            ["192.168.7.0/24 dev wg0", "10.9.0.0/16 dev wg0"]
        );
        assert_eq!(plan.notes.len(), 1);
        assert!(plan.notes[0].contains("0.0.0.0/0"), "{:?}", plan.notes);

        // A /32 address covers nothing but itself: every peer gets its route.
        let c = config(&format!("{IFACE}Address = 10.0.0.1/32\n{PEERS}"));
        let plan = route_plan(&c, "wg0");
        assert_eq!(
            plan.routes,
            [
                "fd00::2/128 dev wg0",
                "10.0.0.2/32 dev wg0",
                "10.0.0.3/32 dev wg0",
                "192.168.7.0/24 dev wg0",
                "10.9.0.0/16 dev wg0"
            ]
        );
    }

    #[test]
    fn the_table_key_decides_where_routes_go() {
        let off = config(&format!("{IFACE}Table = off\n{PEERS}"));
        assert_eq!(route_plan(&off, "wg0"), RoutePlan::default());
        let t = config(&format!(
            "{IFACE}Address = 10.0.0.1/24\nTable = 1234\n{PEERS}"
        ));
        let plan = route_plan(&t, "wg0");
        // Into that table, all of them (the /0 too, and no skipping: the subnet route is in
        // main), as wg-quick does.
        assert_eq!(plan.routes.len(), 6, "{plan:?}");
        assert!(plan
            .routes
            .contains(&"0.0.0.0/0 dev wg0 table 1234".to_string()));
        assert!(plan.notes.is_empty());
        let auto = config(&format!("{IFACE}Table = auto\n{PEERS}"));
        assert_eq!(Table::of(&auto), Table::Main);
    }

    #[test]
    fn hooks_get_the_interface_name() {
        assert_eq!(
            expand("iptables -A FORWARD -i %i -j ACCEPT; echo %i", "wg0"),
            "iptables -A FORWARD -i wg0 -j ACCEPT; echo wg0"
        );
    }

    #[test]
    fn up_hooks_stop_at_the_first_failure_down_hooks_do_not() {
        let dir = std::env::temp_dir().join(format!("wgxdp-hooks-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("log");
        let l = log.display();
        let c = config(&format!(
            "{IFACE}PostUp = echo a %i >> {l}\nPostUp = false; echo not >> {l}\n\
             PostUp = echo b >> {l}\nPostDown = false\nPostDown = echo c %i >> {l}\n"
        ));
        let e = run_hooks(Phase::PostUp, &c, "wg7").unwrap_err();
        assert!(e.contains("PostUp `false; echo not"), "{e}");
        // bash -e: the failing command ends the hook, as in wg-quick's subshell.
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "a wg7\n");
        let e = run_hooks(Phase::PostDown, &c, "wg7").unwrap_err();
        assert!(e.contains("PostDown `false`"), "{e}");
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "a wg7\nc wg7\n");
        assert!(run_hooks(Phase::PreUp, &c, "wg7").is_ok(), "none to run");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
