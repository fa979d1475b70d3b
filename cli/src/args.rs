//! The command line, parsed by clap: every command and flag with its help, `--version`,
//! unknown or malformed flags refused with exit code 2 (as `wg` does for a usage error).
//!
//! Parsed arguments are handed to the commands as a canonical argument list (`to_args`):
//! the same form in which `up` starts its own `control`, `dataplane` and `fallback`
//! processes, so one parser checks what a user types and what `up` passes on.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;

/// Exit codes, as documented in `wgxdp --help`.
pub const EXIT_FAILED: u8 = 1;
pub const EXIT_USAGE: u8 = 2;

const AFTER_HELP: &str = "\
Exit codes: 0 success, 1 the command failed, 2 a usage error (unknown flag, bad value,
missing argument).";

/// A WireGuard gateway whose data path runs on XDP and AF_XDP.
#[derive(Debug, Parser)]
#[command(name = "wgxdp", version, after_help = AFTER_HELP, disable_help_subcommand = false)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log filter: a level (error, warn, info, debug, trace) or RUST_LOG directives
    /// (info,dataplane=debug); default RUST_LOG, else info for the gateway's processes.
    #[arg(long, global = true, value_name = "FILTER", value_parser = crate::logging::parse_filter)]
    pub log_level: Option<String>,
    /// Log to this file (rotated at 8 MiB) instead of stderr; `up` gives it to the processes
    /// it starts.
    #[arg(long, global = true, hide = true, value_name = "PATH")]
    pub log_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print a new private key (base64), as `wg genkey`.
    Genkey,
    /// Read a private key on stdin, print its public key, as `wg pubkey`.
    Pubkey,
    /// Print a new pre-shared key, as `wg genpsk`.
    Genpsk,
    /// Parse a wg / wg-quick configuration file and report errors and warnings.
    Check {
        /// The file.
        config: String,
    },
    /// Start the gateway: control process and XDP/AF_XDP data path (root, or CAP_NET_ADMIN,
    /// CAP_BPF, CAP_PERFMON and CAP_NET_RAW).
    ///
    /// The stock `wg` reads and configures it by NAME. Logs, and the handshakes' auth.log,
    /// are in /var/log/wgxdp/NAME/. Where XDP cannot run, the fallback backend (a UDP socket
    /// and a TUN device) runs instead.
    Up(UpArgs),
    /// Stop a gateway (all of them without NAME) and detach everything.
    Down {
        /// The gateway's name (its interface, wg0).
        name: Option<String>,
    },
    /// The `wg show` view, then per-worker packet rates, drops by reason, sessions.
    Show {
        /// The gateway's name (default: wgxdp).
        name: Option<String>,
        /// Seconds over which rates are measured.
        #[arg(long, default_value_t = 1.0, value_parser = positive_seconds)]
        interval: f64,
    },
    /// Onboard clients.
    Peer {
        #[command(subcommand)]
        command: PeerCommand,
    },
    /// Keep gateway NAME's peers equal to the records in etcd, applying each change live
    /// (docs/cluster.md). Runs until stopped; the gateway keeps its last peer set while etcd
    /// is unreachable.
    Sync {
        /// The gateway's name.
        name: String,
        /// Where the records are: etcd://HOST:PORT[,HOST:PORT...]/PREFIX.
        #[arg(long, value_name = "URL", value_parser = etcd_url)]
        etcd: String,
        /// Serve the sync's own Prometheus metrics at ADDR:PORT/metrics.
        #[arg(long, value_name = "ADDR:PORT")]
        metrics: Option<SocketAddr>,
    },
    /// The peer records in etcd, as wg-quick [Peer] sections.
    Peers {
        #[command(subcommand)]
        command: PeersCommand,
    },
    /// Print shell completions for SHELL.
    Completions { shell: clap_complete::Shell },
    /// Print the man page (roff).
    Man,
    /// The control process (started by `up`).
    #[command(hide = true)]
    Control(ControlArgs),
    /// The XDP data path (started by `up`).
    #[command(hide = true)]
    Dataplane(DataplaneArgs),
    /// The socket backend (started by `up --backend fallback`).
    #[command(hide = true)]
    Fallback(FallbackArgs),
}

#[derive(Debug, Subcommand)]
pub enum PeerCommand {
    /// New keys and PSK for CLIENT, the next free tunnel address, added live; prints the
    /// client's wg-quick file (and a QR code for phones).
    Add {
        /// The client's name (a comment in its file).
        client: String,
        /// Where the client reaches the gateway.
        #[arg(long, value_name = "HOST:PORT")]
        endpoint: String,
        /// The gateway's name (default: wgxdp).
        #[arg(long, value_name = "NAME")]
        interface: Option<String>,
        /// What the client routes into the tunnel (default: everything).
        #[arg(long, value_name = "LIST")]
        allowed_ips: Option<String>,
        /// The client's DNS servers.
        #[arg(long, value_name = "LIST")]
        dns: Option<String>,
        /// Also print the file as a QR code.
        #[arg(long)]
        qr: bool,
        /// Write the peer to the cluster's records in etcd (etcd://HOST:PORT[,...]/PREFIX)
        /// instead of adding it to this gateway only; every gateway's `wgxdp sync` applies it.
        #[arg(long, value_name = "URL", value_parser = etcd_url)]
        etcd: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum PeersCommand {
    /// Print every record as a wg-quick [Peer] section (pre-shared keys included).
    Export {
        /// etcd://HOST:PORT[,HOST:PORT...]/PREFIX
        #[arg(long, value_name = "URL", value_parser = etcd_url)]
        etcd: String,
    },
    /// Write each [Peer] of a wg / wg-quick file (its [Interface] is ignored) as a record.
    Import {
        /// The file (- for stdin).
        file: String,
        /// etcd://HOST:PORT[,HOST:PORT...]/PREFIX
        #[arg(long, value_name = "URL", value_parser = etcd_url)]
        etcd: String,
    },
    /// Delete the record of the peer with this public key (base64).
    Remove {
        public_key: String,
        /// etcd://HOST:PORT[,HOST:PORT...]/PREFIX
        #[arg(long, value_name = "URL", value_parser = etcd_url)]
        etcd: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    /// XDP, and the fallback where XDP cannot run.
    Auto,
    Xdp,
    Fallback,
}

/// Options control takes (from `up`, or directly).
#[derive(Debug, Args)]
pub struct ControlOpts {
    /// Worker threads (one per queue).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub workers: Option<u32>,
    /// Room for peers added later (default: twice the configured ones, at least 1024).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_peers: Option<u32>,
    /// Serve Prometheus metrics at ADDR:PORT/metrics.
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics: Option<SocketAddr>,
    /// Largest auth log (and its rotated file), e.g. 16M.
    #[arg(long, value_name = "SIZE")]
    pub auth_log_max: Option<String>,
    /// Run control's clock this many times faster (tests only).
    #[arg(long, hide = true, value_name = "FACTOR")]
    pub time_scale: Option<f64>,
}

impl ControlOpts {
    fn push(&self, out: &mut Vec<String>) {
        let mut add = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                out.extend([k.to_string(), v]);
            }
        };
        add("--workers", self.workers.map(|n| n.to_string()));
        add("--max-peers", self.max_peers.map(|n| n.to_string()));
        add("--metrics", self.metrics.map(|a| a.to_string()));
        add("--auth-log-max", self.auth_log_max.clone());
        add("--time-scale", self.time_scale.map(|f| f.to_string()));
    }
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// A wg-quick file, or a name (wg0 for /etc/wireguard/wg0.conf).
    pub config: String,
    /// The interface peers reach the gateway on.
    #[arg(long, value_name = "IF")]
    pub wan: String,
    /// The plaintext side (omit for a one-armed gateway).
    #[arg(long, value_name = "IF")]
    pub lan: Option<String>,
    /// The gateway's name (default: the file's name).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Which data path.
    #[arg(long, value_enum, default_value_t = Backend::Auto)]
    pub backend: Backend,
    /// Stay in the foreground and supervise: restart control when it dies (the data path
    /// forwards meanwhile), exit when the data path does, and take the gateway down on
    /// SIGTERM. For systemd (Type=notify: READY=1 once up).
    #[arg(long)]
    pub foreground: bool,
    #[command(flatten)]
    pub control: ControlOpts,
}

#[derive(Debug, Args)]
pub struct ControlArgs {
    pub config: String,
    #[arg(long)]
    pub region: PathBuf,
    #[arg(long)]
    pub name: Option<String>,
    #[arg(long)]
    pub auth_log: Option<PathBuf>,
    #[command(flatten)]
    pub control: ControlOpts,
}

#[derive(Debug, Args)]
pub struct DataplaneArgs {
    #[arg(long)]
    pub region: PathBuf,
    #[arg(long)]
    pub wan: String,
    #[arg(long)]
    pub lan: Option<String>,
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub workers: Option<u32>,
    #[arg(long, value_parser = clap::value_parser!(u16).range(68..))]
    pub mtu: Option<u16>,
    #[arg(long)]
    pub tun: Option<String>,
    #[arg(long)]
    pub ready: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct FallbackArgs {
    pub config: String,
    #[arg(long)]
    pub tun: String,
    #[arg(long)]
    pub name: Option<String>,
    #[arg(long)]
    pub ready: Option<PathBuf>,
    #[arg(long)]
    pub auth_log: Option<PathBuf>,
    #[command(flatten)]
    pub control: ControlOpts,
}

fn etcd_url(s: &str) -> Result<String, String> {
    cluster::etcd::parse_url(s).map(|_| s.to_string())
}

fn positive_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v <= 3600.0 => Ok(v),
        _ => Err(format!("{s:?} is not a number of seconds in (0, 3600]")),
    }
}

fn opt(out: &mut Vec<String>, k: &str, v: Option<impl ToString>) {
    if let Some(v) = v {
        out.extend([k.to_string(), v.to_string()]);
    }
}

fn path(p: &std::path::Path) -> String {
    p.to_string_lossy().into_owned()
}

impl UpArgs {
    /// The canonical argument list `gateway::up` reads.
    pub fn to_args(&self) -> Vec<String> {
        let mut out = vec![self.config.clone(), "--wan".into(), self.wan.clone()];
        opt(&mut out, "--lan", self.lan.as_ref());
        opt(&mut out, "--name", self.name.as_ref());
        let backend = match self.backend {
            Backend::Auto => "auto",
            Backend::Xdp => "xdp",
            Backend::Fallback => "fallback",
        };
        out.extend(["--backend".into(), backend.into()]);
        self.control.push(&mut out);
        out
    }
}

impl ControlArgs {
    pub fn to_args(&self) -> Vec<String> {
        let mut out = vec![self.config.clone(), "--region".into(), path(&self.region)];
        opt(&mut out, "--name", self.name.as_ref());
        opt(&mut out, "--auth-log", self.auth_log.as_deref().map(path));
        self.control.push(&mut out);
        out
    }
}

impl DataplaneArgs {
    pub fn to_args(&self) -> Vec<String> {
        let mut out = vec![
            "--region".into(),
            path(&self.region),
            "--wan".into(),
            self.wan.clone(),
        ];
        opt(&mut out, "--lan", self.lan.as_ref());
        opt(&mut out, "--workers", self.workers);
        opt(&mut out, "--mtu", self.mtu);
        opt(&mut out, "--tun", self.tun.as_ref());
        opt(&mut out, "--ready", self.ready.as_deref().map(path));
        out
    }
}

impl FallbackArgs {
    pub fn to_args(&self) -> Vec<String> {
        let mut out = vec![self.config.clone(), "--tun".into(), self.tun.clone()];
        opt(&mut out, "--name", self.name.as_ref());
        opt(&mut out, "--ready", self.ready.as_deref().map(path));
        opt(&mut out, "--auth-log", self.auth_log.as_deref().map(path));
        self.control.push(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn up_round_trips_through_its_canonical_arguments() {
        let cli = Cli::try_parse_from([
            "wgxdp",
            "up",
            "wg0",
            "--wan",
            "eth0",
            "--lan",
            "eth1",
            "--workers",
            "4",
            "--metrics",
            "127.0.0.1:9586",
        ])
        .unwrap();
        let Command::Up(up) = cli.command else {
            panic!("not up")
        };
        let args = up.to_args();
        assert_eq!(
            args,
            [
                "wg0",
                "--wan",
                "eth0",
                "--lan",
                "eth1",
                "--backend",
                "auto",
                "--workers",
                "4",
                "--metrics",
                "127.0.0.1:9586"
            ]
        );
    }
}
