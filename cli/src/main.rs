//! `wgxdp`: the user's entry point. Subcommands mirror `wg` where they overlap, so scripts
//! written for `wg genkey | wg pubkey` work with `wgxdp` unchanged.

mod args;
mod caps;
mod fallback;
mod gateway;
mod logging;
mod operator;
mod peerstore;
mod saveconf;
mod supervise;
mod wgquick;

use proto::keys::{PresharedKey, PrivateKey};
use rand_core::OsRng;
use std::io::{self, Read, Write};
use std::process::ExitCode;

use args::{Cli, Command, PeerCommand, PeersCommand};
use clap::{CommandFactory as _, Parser as _};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        // --help and --version print and exit 0; a usage error prints what was wrong and
        // exits 2, as `wg` does.
        Err(e) => {
            let usage = e.use_stderr();
            let _ = e.print();
            return if usage {
                ExitCode::from(args::EXIT_USAGE)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    // The gateway's processes log (to their file, or stderr/the journal); the commands a
    // person runs print their output and log only warnings (a library's, aya's).
    let daemon = match &cli.command {
        Command::Control(_)
        | Command::Dataplane(_)
        | Command::Fallback(_)
        | Command::Sync { .. } => true,
        Command::Up(up) => up.foreground,
        _ => false,
    };
    if let Err(e) = logging::init(cli.log_level.as_deref(), cli.log_file.as_deref(), daemon) {
        eprintln!("wgxdp: {e}");
        return ExitCode::from(args::EXIT_FAILED);
    }
    let log = gateway::LogOptions {
        level: cli.log_level.clone(),
    };
    let result = match cli.command {
        Command::Genkey => genkey(),
        Command::Genpsk => genpsk(),
        Command::Pubkey => pubkey(),
        Command::Check { config } => check(&config),
        Command::Up(up) => gateway::up(&up.to_args(), up.foreground, &log),
        Command::Down { name } => gateway::down(&name.into_iter().collect::<Vec<_>>()),
        Command::Show { name, interval } => {
            let mut a: Vec<String> = name.into_iter().collect();
            a.extend(["--interval".into(), interval.to_string()]);
            operator::show(&a)
        }
        Command::Peer {
            command:
                PeerCommand::Add {
                    client,
                    endpoint,
                    interface,
                    allowed_ips,
                    dns,
                    qr,
                    etcd,
                },
        } => {
            let mut a = vec!["add".to_string(), client, "--endpoint".into(), endpoint];
            for (k, v) in [
                ("--interface", interface),
                ("--allowed-ips", allowed_ips),
                ("--dns", dns),
                ("--etcd", etcd),
            ] {
                if let Some(v) = v {
                    a.extend([k.into(), v]);
                }
            }
            if qr {
                a.push("--qr".into());
            }
            operator::peer(&a)
        }
        Command::Sync {
            name,
            etcd,
            metrics,
        } => peerstore::sync(&name, &etcd, metrics),
        Command::Peers { command } => match command {
            PeersCommand::Export { etcd } => peerstore::export(&etcd),
            PeersCommand::Import { file, etcd } => peerstore::import(&file, &etcd),
            PeersCommand::Remove { public_key, etcd } => peerstore::remove(&public_key, &etcd),
        },
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "wgxdp", &mut io::stdout());
            Ok(())
        }
        Command::Man => clap_mangen::Man::new(Cli::command())
            .render(&mut io::stdout())
            .map_err(|e| e.to_string()),
        Command::Control(c) => gateway::control(&c.to_args()),
        Command::Dataplane(d) => gateway::dataplane(&d.to_args()),
        Command::Fallback(f) => gateway::fallback(&f.to_args()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // A daemon's last words go to its log, where `up` (and journalctl) read them.
        Err(msg) if daemon => {
            tracing::error!(target: "wgxdp", "{}", msg.trim_end());
            ExitCode::from(args::EXIT_FAILED)
        }
        Err(msg) => {
            eprintln!("wgxdp: {}", msg.trim_end());
            ExitCode::from(args::EXIT_FAILED)
        }
    }
}

/// `wg genkey` warns when the key lands in a file others can read; so do we.
fn warn_if_stdout_world_accessible() {
    use std::os::unix::fs::PermissionsExt as _;
    if let Ok(meta) = std::fs::metadata("/proc/self/fd/1") {
        if meta.is_file() && meta.permissions().mode() & 0o077 != 0 {
            eprintln!("Warning: writing to world accessible file.\nConsider setting the umask to 077 and trying again.");
        }
    }
}

fn write_line(s: &str) -> Result<(), String> {
    let mut out = io::stdout().lock();
    writeln!(out, "{s}")
        .and_then(|()| out.flush())
        .map_err(|e| format!("cannot write: {e}"))
}

fn genkey() -> Result<(), String> {
    warn_if_stdout_world_accessible();
    let key = PrivateKey::generate(&mut OsRng);
    write_line(&zeroize::Zeroizing::new(key.to_base64()))
}

fn genpsk() -> Result<(), String> {
    warn_if_stdout_world_accessible();
    let key = PresharedKey::generate(&mut OsRng);
    write_line(&zeroize::Zeroizing::new(key.to_base64()))
}

fn pubkey() -> Result<(), String> {
    let mut input = zeroize::Zeroizing::new(String::new());
    io::stdin()
        .take(4096)
        .read_to_string(&mut input)
        .map_err(|e| format!("cannot read stdin: {e}"))?;
    // `wg pubkey` accepts the key with surrounding whitespace (a trailing newline from echo).
    let key = PrivateKey::from_base64(input.trim())
        .map_err(|_| "Key is not the correct length or format".to_string())?;
    write_line(&key.public_key().to_base64())
}

fn check(path: &str) -> Result<(), String> {
    let (config, warnings) = control::config::load(path).map_err(|e| e.to_string())?;
    for w in &warnings {
        eprintln!("Warning: {w}");
    }
    for backend in [
        control::config::Backend::Xdp,
        control::config::Backend::Fallback,
    ] {
        for w in control::config::unapplied(&config, backend) {
            eprintln!("Warning: {path}: {w}");
        }
    }
    if let Err(e) = wgquick::refuse_dns(&config, path) {
        eprintln!("Warning: {e}; `wgxdp up` refuses the file here");
    }
    println!(
        "{path}: OK ({} peer{})",
        config.peers.len(),
        if config.peers.len() == 1 { "" } else { "s" }
    );
    Ok(())
}
