//! `wgxdp`: the user's entry point. Subcommands mirror `wg` where they overlap, so scripts
//! written for `wg genkey | wg pubkey` work with `wgxdp` unchanged.

mod fallback;
mod gateway;
mod operator;
mod saveconf;
mod wgquick;

use proto::keys::{PresharedKey, PrivateKey};
use rand_core::OsRng;
use std::io::{self, Read, Write};
use std::process::ExitCode;

const USAGE: &str = "\
Usage: wgxdp <command> [arguments]

Commands:
  genkey          print a new private key (base64), as `wg genkey`
  pubkey          read a private key on stdin, print its public key, as `wg pubkey`
  genpsk          print a new pre-shared key, as `wg genpsk`
  check CONFIG    parse a wg / wg-quick configuration file and report errors and warnings
  up CONFIG --wan IF [--lan IF] [--workers N] [--max-peers N] [--name NAME]
     [--metrics ADDR:PORT] [--auth-log-max SIZE] [--backend auto|xdp|fallback]
                  start the gateway: control process + XDP/AF_XDP data path (root); where XDP
                  cannot run, `auto` falls back to a UDP socket + TUN device, and says so.
                  As wg-quick: an interface NAME with Address and MTU, DNS, routes for the
                  peers' AllowedIPs (after Table), PreUp/PostUp (PreDown/PostDown at down).
                  The stock `wg` reads and configures it by NAME; handshakes are logged to
                  /run/wgxdp/NAME/auth.log (rejections summed per source every 10 s;
                  rotated to auth.log.1, both within SIZE, 16M by default);
                  --metrics serves Prometheus at ADDR:PORT/metrics
  down [NAME]     stop it and detach everything
  show [NAME] [--interval S]
                  the `wg show` view, then per-worker packet rates, drops by reason, sessions
  peer add CLIENT --endpoint HOST:PORT [--interface NAME] [--allowed-ips LIST] [--dns LIST]
     [--qr]       onboard a client: new keys and PSK, the next free tunnel address, added
                  live; prints the client's wg-quick file (and a QR code for phones)
  help            this text
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("genkey") if args.len() == 1 => genkey(),
        Some("genpsk") if args.len() == 1 => genpsk(),
        Some("pubkey") if args.len() == 1 => pubkey(),
        Some("check") if args.len() == 2 => check(&args[1]),
        Some("up") => gateway::up(&args[1..]),
        Some("down") => gateway::down(&args[1..]),
        Some("show") => operator::show(&args[1..]),
        Some("peer") => operator::peer(&args[1..]),
        Some("control") => gateway::control(&args[1..]),
        Some("dataplane") => gateway::dataplane(&args[1..]),
        Some("fallback") => gateway::fallback(&args[1..]),
        Some("help" | "--help" | "-h") => {
            print!("{USAGE}");
            Ok(())
        }
        _ => Err(format!("Usage error.\n\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("wgxdp: {}", msg.trim_end());
            ExitCode::FAILURE
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
