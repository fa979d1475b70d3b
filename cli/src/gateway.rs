//! `wgxdp up` / `wgxdp down` and the two daemons they start.
//!
//! `up` checks everything it can before touching the system (capabilities, configuration,
//! interfaces), then starts `wgxdp control` and `wgxdp dataplane` as background processes with
//! their pid files in the run directory (`/run/wgxdp/<name>/`) and their logs in
//! `/var/log/wgxdp/<name>/` (`logging.rs`), and waits until the data path reports it is
//! attached. If either fails, it stops the other and removes the region, so nothing stays
//! attached. `down` stops both (the data path detaches its XDP programs as it exits) and
//! removes the run directory; the logs stay. `up --foreground` stays and supervises
//! (`supervise.rs`).
//!
//! Around that, what wg-quick does (`wgquick.rs`): PreUp first; once the data path has
//! created the gateway's own interface (named NAME, as wg-quick names it), its addresses,
//! MTU, DNS and routes, then PostUp; a failure in any of them stops everything again. `down`
//! runs PreDown before and PostDown after.

use crate::supervise::{self, pid_alive, read_pid, stop_pid, tail};
use crate::wgquick::{self, Phase};
use crate::{caps, logging};
use control::InterfaceName;
use dataplane::daemon::{DEFAULT_MTU, MAX_MTU, MIN_MTU};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const RUN_ROOT: &str = "/run/wgxdp";

/// How the processes `up` starts log (`--log-level`, handed on).
#[derive(Debug)]
pub struct LogOptions {
    pub level: Option<String>,
}

fn flag(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

fn positional(args: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut skip = false;
    for a in args {
        if skip {
            skip = false;
            continue;
        }
        if a.starts_with("--") {
            skip = true;
            continue;
        }
        out.push(a.clone());
    }
    out
}

/// A size in bytes, as `--auth-log-max` takes it: a number with an optional K, M or G
/// (powers of 1024), from [`control::authlog::MIN_MAX_BYTES`] to 1 TiB.
fn parse_size(flag: &str, s: &str) -> Result<u64, String> {
    let (digits, unit) = match s.char_indices().last() {
        Some((i, 'K' | 'k')) => (&s[..i], 1u64 << 10),
        Some((i, 'M' | 'm')) => (&s[..i], 1 << 20),
        Some((i, 'G' | 'g')) => (&s[..i], 1 << 30),
        _ => (s, 1),
    };
    let min = control::authlog::MIN_MAX_BYTES;
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(unit))
        .filter(|n| (min..=1 << 40).contains(n))
        .ok_or(format!(
            "{flag} {s}: expected a size from {min} bytes to 1024G, e.g. 16M"
        ))
}

/// An interface name from the command line (`--name`, `down NAME`, `show NAME`...): only
/// as wg-quick takes them, since it becomes a path under /run/wgxdp and /var/run/wireguard.
pub fn interface_name(s: &str) -> Result<InterfaceName, String> {
    InterfaceName::new(s).map_err(|e| e.to_string())
}

/// The optional `--name` flag, checked.
fn name_flag(args: &[String]) -> Result<Option<InterfaceName>, String> {
    flag(args, "--name").map(|n| interface_name(&n)).transpose()
}

/// `up`'s interface name: `--name`, or the configuration file's name, as wg-quick takes it
/// (`/etc/wireguard/wg0.conf` is wg0).
fn up_name(args: &[String], config_path: &str) -> Result<InterfaceName, String> {
    if let Some(n) = name_flag(args)? {
        return Ok(n);
    }
    let stem = Path::new(config_path)
        .file_stem()
        .map_or_else(|| "wgxdp".into(), |s| s.to_string_lossy());
    InterfaceName::new(&stem).map_err(|e| {
        format!("{e}; the configuration file's name is the interface name: rename it or give --name NAME")
    })
}

/// The run directory of gateway `name`: one entry of RUN_ROOT, whatever the name (it has no
/// `/` and is not `.` or `..`).
pub(crate) fn run_dir(name: &InterfaceName) -> PathBuf {
    Path::new(RUN_ROOT).join(name)
}

pub fn stop_flag() -> Result<Arc<AtomicBool>, String> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, stop.clone())
            .map_err(|e| format!("signal handler: {e}"))?;
    }
    Ok(stop)
}

/// `wgxdp control --region PATH [--workers N] [--max-peers N] [--auth-log PATH]
/// [--auth-log-max SIZE] [--metrics ADDR:PORT] [--time-scale N] CONFIG`
pub fn control(args: &[String]) -> Result<(), String> {
    let pos = positional(args);
    let path = pos
        .first()
        .ok_or("usage: wgxdp control --region PATH CONFIG")?;
    let region = flag(args, "--region").ok_or("--region PATH is required")?;
    let interface_name = name_flag(args)?;
    let (config, warnings) = control::config::load(path).map_err(|e| e.to_string())?;
    for w in warnings {
        tracing::warn!(config = %path, "{w}");
    }
    let opts = control_options(args, config, region.into(), interface_name)?;
    // Control's work (handshakes, a 100k-peer `wg setconf`) stays off the cores the workers
    // are pinned to (0..workers) when there is one to spare; its threads inherit this.
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    if let Some(spare) = cores.get(opts.workers..).and_then(<[_]>::last) {
        core_affinity::set_for_current(*spare);
    }
    let stop = stop_flag()?;
    // `--time-scale N` (a test flag): the protocol's timers run N times faster, so that an
    // end-to-end test sees rekeying (120 s) in seconds. It picks the clock, nothing else.
    let clock: Box<dyn control::clock::Clock> = match flag(args, "--time-scale") {
        Some(n) => Box::new(control::clock::ScaledClock::new(
            n.parse()
                .map_err(|_| format!("--time-scale {n}: not a number"))?,
        )),
        None => Box::new(control::clock::SystemClock),
    };
    let rng = control::rng::system().map_err(|e| format!("randomness: {e}"))?;
    let mut c = control::daemon::Control::with(&opts, clock, rng).map_err(|e| e.to_string())?;
    tracing::info!(
        interface = %opts.interface_name.as_ref().map_or("", |n| n.as_str()),
        peers = opts.config.peers.len(),
        "control listening"
    );
    c.run(&stop);
    Ok(())
}

/// Control's options from the command line: sizes from the configuration unless given.
fn control_options(
    args: &[String],
    config: control::config::Config,
    region: PathBuf,
    interface_name: Option<InterfaceName>,
) -> Result<control::daemon::ControlOptions, String> {
    // Peers can be added live (`wg set`, `wgxdp peer add`): room for twice the configured
    // ones, at least 1024, unless told otherwise.
    let max_peers = match flag(args, "--max-peers") {
        Some(n) => n
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=1 << 24).contains(n))
            .ok_or(format!(
                "--max-peers {n}: expected a number from 1 to 16777216"
            ))?,
        None => (config.peers.len() * 2).max(1024),
    }
    .max(config.peers.len());
    // Up to three keypairs per peer (current, previous, next) live at once.
    let max_sessions = (max_peers * 3 + 64).max(4096);
    let configured_prefixes = config
        .peers
        .iter()
        .map(|p| p.allowed_ips.len())
        .sum::<usize>();
    let max_prefixes = (configured_prefixes * 2).max(max_peers * 16).max(65536);
    Ok(control::daemon::ControlOptions {
        config,
        region,
        workers: flag(args, "--workers")
            .and_then(|w| w.parse().ok())
            .unwrap_or(64),
        max_peers,
        max_sessions,
        max_prefixes,
        interface_name,
        auth_log: flag(args, "--auth-log").map(Into::into),
        auth_log_max_bytes: match flag(args, "--auth-log-max") {
            Some(s) => parse_size("--auth-log-max", &s)?,
            None => control::authlog::DEFAULT_MAX_BYTES,
        },
        metrics: match flag(args, "--metrics") {
            Some(a) => Some(a.parse().map_err(|_| {
                format!("--metrics {a}: expected ADDRESS:PORT, e.g. 127.0.0.1:9586")
            })?),
            None => None,
        },
    })
}

/// `wgxdp fallback --tun NAME [--ready FILE] CONFIG`: the userspace backend (UDP socket +
/// TUN device).
pub fn fallback(args: &[String]) -> Result<(), String> {
    let pos = positional(args);
    let path = pos
        .first()
        .ok_or("usage: wgxdp fallback --tun NAME CONFIG")?;
    let tun = interface_name(&flag(args, "--tun").ok_or("--tun NAME is required")?)?;
    let name = name_flag(args)?;
    let (config, _) = control::config::load(path).map_err(|e| e.to_string())?;
    let stop = stop_flag()?;
    tracing::info!(interface = %tun, "fallback backend: UDP socket and TUN device, no XDP");
    // The region lives where `wgxdp show` looks for it, as with XDP.
    let region = match &name {
        Some(n) => run_dir(n).join("region"),
        None => std::env::temp_dir().join(format!("wgxdp-fallback-{}", std::process::id())),
    };
    let _ = std::fs::remove_file(&region);
    let mut opts = control_options(args, config, region, name)?;
    opts.workers = 1;
    let ready = flag(args, "--ready").map(PathBuf::from);
    crate::fallback::run(&opts, &tun, ready.as_deref(), &stop)
}

/// `wgxdp dataplane --region PATH --wan IF [--lan IF] [--workers N] [--ready FILE]`
pub fn dataplane(args: &[String]) -> Result<(), String> {
    let opts = dataplane::daemon::DataplaneOptions {
        region: flag(args, "--region")
            .ok_or("--region PATH is required")?
            .into(),
        wan: flag(args, "--wan").ok_or("--wan IF is required")?,
        lan: flag(args, "--lan"),
        workers: flag(args, "--workers")
            .and_then(|w| w.parse().ok())
            .unwrap_or(1),
        mtu: match flag(args, "--mtu") {
            Some(m) => m
                .parse()
                .ok()
                .filter(|m| (MIN_MTU..=MAX_MTU).contains(m))
                .ok_or(format!("--mtu {m}: expected {MIN_MTU} to {MAX_MTU}"))?,
            None => DEFAULT_MTU,
        },
        tun: flag(args, "--tun"),
        ready_file: flag(args, "--ready").map(PathBuf::from),
    };
    let stop = stop_flag()?;
    let result = dataplane::daemon::run(&opts, &stop).map_err(|e| e.to_string());
    // Stopped by a signal (SIGTERM from systemd, an operator's kill), not by `wgxdp down`
    // (which removes the run directory itself once this process is gone): leave the system
    // as `down` would. XDP is detached already (run returned); control goes, and the run
    // directory with the region and its keys.
    // A data path that never came up (no ready file) leaves the directory to `up`, which
    // reads the reason from its log and cleans up (or falls back).
    let came_up = opts.ready_file.as_deref().is_some_and(Path::exists);
    if let Some(dir) = opts
        .region
        .parent()
        .filter(|d| came_up && d.parent() == Some(Path::new(RUN_ROOT)))
    {
        if let Some(pid) = read_pid(dir, "control.pid") {
            stop_pid(pid);
        }
        let _ = std::fs::remove_dir_all(dir);
        if let Some(name) = dir
            .file_name()
            .and_then(|n| InterfaceName::new(&n.to_string_lossy()).ok())
        {
            let _ = std::fs::remove_file(control::uapi::socket_path(&name));
        }
    }
    result
}

/// `wgxdp up CONFIG --wan IF [--lan IF] [--workers N] [--max-peers N] [--name NAME]
/// [--metrics ADDR:PORT] [--auth-log-max SIZE] [--time-scale N]`; the authentication log goes
/// to the log directory, rotated within SIZE (16M by default).
pub fn up(args: &[String], foreground: bool, log: &LogOptions) -> Result<(), String> {
    let pos = positional(args);
    let config_path = &find_config(
        pos.first()
            .ok_or("usage: wgxdp up CONFIG --wan IF [--lan IF] [--workers N]")?,
        Path::new(WG_QUICK_DIR),
    );
    let wan =
        flag(args, "--wan").ok_or("--wan IF is required (the interface peers reach us on)")?;
    let lan = flag(args, "--lan");
    let workers = flag(args, "--workers").unwrap_or_else(|| "1".into());
    let name = up_name(args, config_path)?;
    // A mistyped interface is the operator's error, not a reason to fall back.
    for i in std::iter::once(&wan).chain(&lan) {
        if !Path::new("/sys/class/net").join(i).exists() {
            return Err(format!("interface {i} does not exist"));
        }
    }
    // Root, or the capabilities themselves (a systemd unit's bounding set): checked in the
    // effective set, so that a missing one is named before anything starts. `auto` needs
    // only what the fallback needs, and falls back without the XDP path's.
    let backend = flag(args, "--backend").unwrap_or_else(|| "auto".into());
    let eff = caps::effective();
    let needed = if backend == "xdp" {
        caps::XDP
    } else {
        caps::FALLBACK
    };
    let lacking = caps::missing(eff, needed);
    if !lacking.is_empty() {
        return Err(format!(
            "wgxdp up needs {} (missing: {}): run it as root, or give it {}",
            caps::names(needed),
            caps::names(&lacking),
            if lacking.len() == 1 {
                "that capability"
            } else {
                "those capabilities"
            }
        ));
    }
    let xdp_lacks = caps::missing(eff, caps::XDP);
    // Everything that can be refused is refused before anything is started.
    let (config, warnings) = control::config::load(config_path).map_err(|e| e.to_string())?;
    for w in warnings {
        eprintln!("Warning: {w}");
    }
    let backend_for_warnings = match flag(args, "--backend").as_deref() {
        Some("fallback") => control::config::Backend::Fallback,
        _ => control::config::Backend::Xdp,
    };
    for w in control::config::unapplied(&config, backend_for_warnings) {
        eprintln!("Warning: {config_path}: {w}");
    }
    if config.interface.private_key.is_none() {
        return Err(format!("{config_path}: [Interface] has no PrivateKey"));
    }
    for i in std::iter::once(&wan).chain(lan.as_ref()) {
        if !Path::new("/sys/class/net").join(i).exists() {
            return Err(format!("interface {i} does not exist"));
        }
    }
    if let Some(s) = flag(args, "--auth-log-max") {
        parse_size("--auth-log-max", &s)?;
    }
    if !["auto", "xdp", "fallback"].contains(&backend.as_str()) {
        return Err(format!(
            "--backend must be auto, xdp or fallback, not {backend:?}"
        ));
    }
    let mtu = wgquick::mtu(&config);
    if !(MIN_MTU..=MAX_MTU).contains(&mtu) {
        return Err(format!(
            "{config_path}: MTU = {mtu}: wgxdp takes a tunnel MTU from {MIN_MTU} (IPv4's \
             minimum) to {MAX_MTU} (what its frames hold)"
        ));
    }
    wgquick::refuse_dns(&config, config_path)?;
    let dir = run_dir(&name);
    for (file, what) in [
        ("control.pid", "control"),
        ("dataplane.pid", "data path"),
        ("fallback.pid", "fallback backend"),
    ] {
        if let Some(pid) = read_pid(&dir, file).filter(|p| pid_alive(*p)) {
            return Err(format!(
                "{name} is already up ({what} pid {pid}); run wgxdp down {name} first"
            ));
        }
    }
    // As wg-quick: the interface is ours to create.
    if Path::new("/sys/class/net").join(name.as_str()).exists() {
        return Err(format!("`{name}' already exists"));
    }
    // Supervising: a SIGTERM from here on (systemctl stop while starting) is noted, and
    // answered with `down` once up, rather than end `up` with its processes running.
    let stop = if foreground { Some(stop_flag()?) } else { None };
    // wg-quick's first step, before the interface exists.
    wgquick::run_hooks(Phase::PreUp, &config, name.as_str())?;
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    // Where the configuration came from, for `wgxdp peer add` (the tunnel subnet).
    let abs = std::fs::canonicalize(config_path).map_err(|e| format!("{config_path}: {e}"))?;
    std::fs::write(dir.join("config"), format!("{}\n", abs.display()))
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    let region = dir.join("region");
    let ready = dir.join("ready");
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let logs = Logs {
        dir: logging::log_dir(name.as_str()),
        level: log.level.clone(),
        journal: foreground && logging::stderr_is_journal(),
    };
    // Once the interface exists, wg-quick's remaining steps up to PostUp. On the fallback
    // backend its process has already given the interface its addresses, MTU and routes (it
    // keeps the routes in step with `wg set`). DNS is the one step whose effect outlives the
    // processes, so a failure takes it back; the rest goes with the interface.
    let finish_up = |xdp: bool| -> Result<(), String> {
        let steps = || -> Result<(), String> {
            if xdp {
                wgquick::set_addresses_and_mtu_up(&config, name.as_str())?;
                wgquick::enable_forwarding();
            }
            wgquick::set_dns(&config, name.as_str())?;
            if xdp {
                wgquick::add_routes(&wgquick::route_plan(&config, name.as_str()))?;
            }
            wgquick::run_hooks(Phase::PostUp, &config, name.as_str())
        };
        steps().inspect_err(|_| wgquick::unset_dns(&config, name.as_str()))
    };
    // Up: done, or (--foreground) supervised until the gateway goes down.
    let running = |g: supervise::Gateway<'_>| -> Result<(), String> {
        match &stop {
            Some(stop) => supervise::run(g, stop),
            None => Ok(()),
        }
    };
    let start_fallback = |why: &str| -> Result<Child, String> {
        if !why.is_empty() {
            eprintln!("wgxdp: the XDP data path could not start ({why}); running the fallback backend (UDP socket + TUN)");
        }
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let mut fb = logs
            .command(&exe, "fallback.log", true)?
            .args(["fallback", "--tun", name.as_str(), "--name", name.as_str()])
            .arg("--ready")
            .arg(&ready)
            .arg("--auth-log")
            .arg(logs.dir.join("auth.log"))
            .arg(config_path)
            .spawn()
            .map_err(|e| format!("starting the fallback backend: {e}"))?;
        std::fs::write(dir.join("fallback.pid"), fb.id().to_string()).map_err(|e| e.to_string())?;
        let deadline = Instant::now() + Duration::from_secs(5);
        while !ready.exists() {
            if let Ok(Some(status)) = fb.try_wait() {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(format!(
                    "the fallback backend exited ({status}):\n{}",
                    logs.tail("fallback.log")
                ));
            }
            if Instant::now() > deadline {
                stop_pid(fb.id() as i32);
                let _ = std::fs::remove_dir_all(&dir);
                return Err("the fallback backend did not come up in 5 s".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Err(e) = finish_up(false) {
            stop_pid(fb.id() as i32);
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
        println!(
            "wgxdp {name} is up on the fallback backend (TUN {name}, pid {}); logs in {}",
            fb.id(),
            logs.dir.display()
        );
        Ok(fb)
    };
    let on_fallback = |fb: Child| supervise::Gateway {
        name: &name,
        dir: &dir,
        main: fb,
        main_what: "fallback backend",
        control: None,
    };
    if backend == "fallback" {
        return running(on_fallback(start_fallback("")?));
    }
    if backend == "auto" && !xdp_lacks.is_empty() {
        let why = format!("no {}", caps::names(&xdp_lacks));
        return running(on_fallback(start_fallback(&why)?));
    }

    // Control, as started now and again by the supervisor when it died (a new process
    // attaches to the region the data path still forwards from).
    let spawn_control = |fresh: bool| -> Result<Child, String> {
        let mut c = logs.command(&exe, "control.log", fresh)?;
        c.args(["control", "--region"])
            .arg(&region)
            .args(["--workers", &workers, "--name", name.as_str()])
            .arg("--auth-log")
            .arg(logs.dir.join("auth.log"));
        for f in ["--time-scale", "--max-peers", "--metrics", "--auth-log-max"] {
            if let Some(v) = flag(args, f) {
                c.args([f, &v]);
            }
        }
        let child = c
            .arg(config_path)
            .spawn()
            .map_err(|e| format!("starting control: {e}"))?;
        std::fs::write(dir.join("control.pid"), child.id().to_string())
            .map_err(|e| e.to_string())?;
        Ok(child)
    };
    let mut control = spawn_control(true)?;
    let cleanup = |msg: String| -> String {
        for p in ["dataplane.pid", "control.pid"] {
            if let Some(pid) = read_pid(&dir, p) {
                stop_pid(pid);
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
        msg
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !region.exists() {
        if let Ok(Some(status)) = control.try_wait() {
            return Err(cleanup(format!(
                "control exited ({status}):\n{}",
                logs.tail("control.log")
            )));
        }
        if Instant::now() > deadline {
            return Err(cleanup(
                "control did not create the shared region in 10 s".into(),
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut dp_cmd = logs.command(&exe, "dataplane.log", true)?;
    dp_cmd
        .args(["dataplane", "--region"])
        .arg(&region)
        .args(["--wan", &wan, "--workers", &workers, "--ready"])
        .arg(&ready)
        .args(["--tun", name.as_str(), "--mtu", &mtu.to_string()]);
    if let Some(l) = &lan {
        dp_cmd.args(["--lan", l]);
    }
    let mut dp = dp_cmd
        .spawn()
        .map_err(|e| cleanup(format!("starting the data path: {e}")))?;
    std::fs::write(dir.join("dataplane.pid"), dp.id().to_string()).map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ready.exists() {
        // A data path that fails stops control on its way out: when control is gone, give
        // the data path a moment to be seen exiting, so that its failure is the one reported.
        if matches!(control.try_wait(), Ok(Some(_))) {
            let until = Instant::now() + Duration::from_secs(2);
            while Instant::now() < until && matches!(dp.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        if let Ok(Some(status)) = dp.try_wait() {
            let log = logs.tail("dataplane.log");
            let msg = cleanup(format!("the data path exited ({status}):\n{log}"));
            // `auto`: where XDP or AF_XDP cannot run, the socket backend does, and says why.
            if backend == "auto" {
                let why = log
                    .lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .map_or("it exited", logging::message_of)
                    .to_string();
                return running(on_fallback(start_fallback(&why)?));
            }
            return Err(msg);
        }
        if let Ok(Some(status)) = control.try_wait() {
            return Err(cleanup(format!(
                "control exited ({status}):\n{}",
                logs.tail("control.log")
            )));
        }
        if Instant::now() > deadline {
            return Err(cleanup("the data path did not come up in 20 s".into()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    if let Err(e) = finish_up(true) {
        return Err(cleanup(e));
    }
    print!("{}", std::fs::read_to_string(&ready).unwrap_or_default());
    println!(
        "wgxdp {name} is up (control pid {}, data path pid {}); logs in {}",
        control.id(),
        dp.id(),
        logs.dir.display()
    );
    let respawn = || spawn_control(false);
    running(supervise::Gateway {
        name: &name,
        dir: &dir,
        main: dp,
        main_what: "data path",
        control: Some((control, &respawn)),
    })
}

/// Where the processes `up` starts log, and how they are started for it: each with
/// `--log-file` in the gateway's log directory; its stdout and stderr (a panic, anything
/// not logged through tracing) go to the same file, or, under systemd, to the journal.
struct Logs {
    dir: PathBuf,
    level: Option<String>,
    /// `up --foreground` under systemd: the processes' stderr is the journal too.
    journal: bool,
}

impl Logs {
    /// The command for a process logging to `file`; `fresh`: a new run (the previous one's
    /// file is kept as `file.1`).
    fn command(&self, exe: &Path, file: &str, fresh: bool) -> Result<Command, String> {
        let path = self.dir.join(file);
        let out = if fresh {
            logging::fresh(&self.dir, file)?
        } else {
            logging::make_dir(&self.dir)?;
            logging::append(&path).map_err(|e| format!("{}: {e}", path.display()))?
        };
        let mut c = Command::new(exe);
        c.arg("--log-file").arg(&path).stdin(Stdio::null());
        if let Some(l) = &self.level {
            c.args(["--log-level", l]);
        }
        if !self.journal {
            let err = out.try_clone().map_err(|e| e.to_string())?;
            c.stdout(out).stderr(err);
        }
        Ok(c)
    }

    /// The last lines of a process's log, for the user when it failed.
    fn tail(&self, file: &str) -> String {
        tail(&self.dir.join(file))
    }
}

/// Where wg-quick keeps its files.
const WG_QUICK_DIR: &str = "/etc/wireguard";

/// The file `wgxdp up ARG` reads: ARG itself if it names a file or a path, else, as wg-quick
/// does for an interface name, `DIR/ARG.conf`.
fn find_config(arg: &str, dir: &Path) -> String {
    if arg.contains('/') || Path::new(arg).exists() || InterfaceName::new(arg).is_err() {
        return arg.to_string();
    }
    dir.join(format!("{arg}.conf"))
        .to_string_lossy()
        .into_owned()
}

/// `wgxdp down [NAME]`: stops the data path (which detaches XDP), then control, and removes
/// the run directory with the shared region.
pub fn down(args: &[String]) -> Result<(), String> {
    let pos = positional(args);
    let names: Vec<InterfaceName> = match pos.first() {
        Some(n) => vec![interface_name(n)?],
        // Every gateway that is up; anything else in RUN_ROOT is not ours to remove.
        None => std::fs::read_dir(RUN_ROOT)
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter_map(|e| InterfaceName::new(&e.file_name().to_string_lossy()).ok())
                    .collect()
            })
            .unwrap_or_default(),
    };
    if names.is_empty() {
        return Err("nothing is up".into());
    }
    for name in names {
        let dir = run_dir(&name);
        if !dir.exists() {
            return Err(format!("{name} is not up"));
        }
        // The file `up` read, read again as wg-quick reads it for `down`: its hooks and DNS.
        let path = std::fs::read_to_string(dir.join("config"))
            .map(|p| PathBuf::from(p.trim()))
            .unwrap_or_default();
        let config = control::config::load(&path)
            .map(|(c, _)| c)
            .inspect_err(|e| eprintln!("wgxdp: {name}: no PreDown/PostDown/DNS to undo: {e}"))
            .ok();
        // A failing down hook is reported; the gateway still goes down.
        let hooks = |phase| {
            if let Some(c) = &config {
                if let Err(e) = wgquick::run_hooks(phase, c, name.as_str()) {
                    eprintln!("wgxdp: {e}");
                }
            }
        };
        hooks(Phase::PreDown);
        // wg-quick's order: saved after PreDown, while the gateway still runs. A file that
        // cannot be written stops `down`, as in wg-quick, rather than lose the live state.
        if let Some(c) = config.as_ref().filter(|c| c.interface.save_config) {
            crate::saveconf::save_config(&name, &path, c)?;
        }
        for p in ["dataplane.pid", "control.pid", "fallback.pid"] {
            if let Some(pid) = read_pid(&dir, p) {
                stop_pid(pid);
            }
        }
        // The data path removes it itself when it stops on the signal.
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("{}: {e}", dir.display())),
        }
        // A control process killed outright leaves its UAPI socket behind.
        let _ = std::fs::remove_file(control::uapi::socket_path(&name));
        // The interface went with the process that held it (and its routes with it).
        if let Some(c) = &config {
            wgquick::unset_dns(c, name.as_str());
        }
        hooks(Phase::PostDown);
        println!("wgxdp {name} is down");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interface_name_finds_its_wg_quick_file() {
        let dir = Path::new("/etc/wireguard");
        assert_eq!(find_config("wg0", dir), "/etc/wireguard/wg0.conf");
        assert_eq!(find_config("./wg0.conf", dir), "./wg0.conf");
        assert_eq!(find_config("/tmp/x.conf", dir), "/tmp/x.conf");
        assert_eq!(find_config("not a name!", dir), "not a name!");
    }

    #[test]
    fn sizes() {
        for (s, want) in [
            ("16M", Some(16 << 20)),
            ("4096", Some(4096)),
            ("64k", Some(64 << 10)),
            ("1G", Some(1 << 30)),
            ("1024G", Some(1 << 40)),
            ("4095", None),
            ("1025G", None),
            ("", None),
            ("M", None),
            ("-1M", None),
            ("1.5M", None),
            ("99999999999999999999G", None),
        ] {
            assert_eq!(parse_size("--auth-log-max", s).ok(), want, "{s:?}");
        }
    }
}
