//! The command line (issue 16): clap's parser refuses unknown flags, bad numbers and missing
//! arguments with exit code 2 and a message naming them; `--version`, per-command `--help`,
//! completions and the man page print and exit 0. And `--backend auto` falls back to the
//! socket backend where XDP cannot run, saying why (root: a namespace whose WAN interface has
//! no Ethernet, which the AF_XDP data path cannot serve).

use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_wgxdp");

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn usage_errors_exit_2_and_name_what_was_wrong() {
    for (args, needle) in [
        (
            &["up", "wg0", "--wan", "eth0", "--worker", "4"][..],
            "--worker",
        ),
        (&["up", "wg0", "--wan", "eth0", "--workers", "x"][..], "'x'"),
        (&["up", "wg0", "--wan", "eth0", "--workers", "0"][..], "0"),
        (&["up", "wg0"][..], "--wan"),
        (
            &["up", "wg0", "--wan", "eth0", "--backend", "ebpf"][..],
            "ebpf",
        ),
        (
            &["up", "wg0", "--wan", "eth0", "--metrics", "9586"][..],
            "9586",
        ),
        (&["show", "wg0", "--interval", "-1"][..], "-1"),
        (&["peer", "add", "alice"][..], "--endpoint"),
        (&["frobnicate"][..], "frobnicate"),
        (&[][..], "Usage"),
        (&["--log-level", "dataplane=loud", "genkey"][..], "loud"),
    ] {
        let o = run(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(
            stderr(&o).contains(needle),
            "{args:?} should name {needle}: {}",
            stderr(&o)
        );
    }
}

#[test]
fn version_help_completions_and_man_page() {
    let o = run(&["--version"]);
    assert!(o.status.success());
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        format!("wgxdp {}", env!("CARGO_PKG_VERSION"))
    );
    let o = run(&["up", "--help"]);
    assert!(o.status.success());
    let help = String::from_utf8_lossy(&o.stdout);
    for flag in [
        "--wan",
        "--lan",
        "--workers",
        "--max-peers",
        "--metrics",
        "--auth-log-max",
        "--backend",
    ] {
        assert!(help.contains(flag), "up --help lists {flag}: {help}");
    }
    assert!(
        !help.contains("--time-scale"),
        "the test-only flag stays hidden"
    );
    let o = run(&["--help"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("Exit codes"));
    let o = run(&["completions", "bash"]);
    assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).contains("_wgxdp()"));
    let o = run(&["man"]);
    assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).contains(".TH wgxdp"));
}

/// A failing command (not a usage error) exits 1.
/// A daemon's last words (here control refusing a missing file, no root needed) are a log
/// line: with a time and level on plain stderr, with a syslog priority and nothing else when
/// stderr is the journal's stream (JOURNAL_STREAM names it), and in `--log-file` if given.
#[test]
fn daemons_log_with_levels_to_stderr_the_journal_or_a_file() {
    use std::os::unix::fs::MetadataExt as _;
    let dir = std::env::temp_dir().join(format!("wgxdp-logfmt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let args = [
        "control",
        "--region",
        "/nonexistent/region",
        "/nonexistent/wg9.conf",
    ];

    let plain = run(&args);
    let journal_file = dir.join("journal");
    let journal_out = std::fs::File::create(&journal_file).unwrap();
    let meta = journal_out.metadata().unwrap();
    let journal = Command::new(BIN)
        .args(args)
        .env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()))
        .stderr(journal_out)
        .status()
        .unwrap();
    // The variable inherited by a process whose stderr went elsewhere: not the journal.
    let inherited = Command::new(BIN)
        .args(args)
        .env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()))
        .output()
        .unwrap();
    let log_file = dir.join("control.log");
    let logged = Command::new(BIN)
        .arg("--log-file")
        .arg(&log_file)
        .args(args)
        .output()
        .unwrap();
    let journal_text = std::fs::read_to_string(&journal_file).unwrap();
    let file_text = std::fs::read_to_string(&log_file).unwrap_or_default();
    std::fs::remove_dir_all(&dir).unwrap();

    for (what, code) in [
        ("plain", plain.status.code()),
        ("journal", journal.code()),
        ("log file", logged.status.code()),
    ] {
        assert_eq!(code, Some(1), "{what}");
    }
    let plain = stderr(&plain);
    assert!(
        plain.contains(" ERROR wgxdp: ") && plain.contains("wg9.conf"),
        "{plain}"
    );
    assert!(
        journal_text.starts_with("<3>wgxdp: ") && journal_text.contains("wg9.conf"),
        "{journal_text}"
    );
    assert!(
        stderr(&inherited).contains(" ERROR wgxdp: "),
        "{}",
        stderr(&inherited)
    );
    assert!(
        file_text.contains(" ERROR wgxdp: ") && file_text.contains("wg9.conf"),
        "{file_text}"
    );
    assert!(
        stderr(&logged).is_empty(),
        "the file, not stderr: {}",
        stderr(&logged)
    );
}

#[test]
fn a_failed_command_exits_1() {
    let o = run(&["check", "/nonexistent/wg9.conf"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
}

/// `--backend auto` where XDP cannot run: the WAN interface is a TUN device (no Ethernet,
/// which the AF_XDP data path needs). The gateway comes up on the socket backend and says
/// why; `--backend xdp` fails with the same reason; `wgxdp show` works on the fallback.
#[test]
fn auto_falls_back_where_xdp_cannot_run_and_says_why() {
    if !testbed::require_netns() {
        return;
    }
    let ns = testbed::Netns::new("fb").unwrap();
    ns.ip(["tuntap", "add", "dev", "tunw", "mode", "tun"])
        .unwrap();
    ns.ip(["link", "set", "tunw", "up"]).unwrap();
    let dir = std::env::temp_dir().join(format!("wgxdp-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = String::from_utf8(run(&["genkey"]).stdout).unwrap();
    let name = format!("fb{}", std::process::id() % 100_000);
    let conf = dir.join(format!("{name}.conf"));
    std::fs::write(
        &conf,
        format!(
            "[Interface]\nPrivateKey = {}\nListenPort = 0\nAddress = 198.19.9.1/24\n",
            key.trim()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o600)).unwrap();
    let conf = conf.to_str().unwrap();

    let o = ns
        .command([BIN, "up", conf, "--wan", "tunw", "--backend", "xdp"])
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(1),
        "--backend xdp cannot run here: {}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("tunw"), "{}", stderr(&o));

    let o = ns
        .command([BIN, "up", conf, "--wan", "tunw"])
        .output()
        .unwrap();
    let said = stderr(&o);
    let shown = ns.command([BIN, "show", &name]).output().unwrap();
    let _ = ns.command([BIN, "down", &name]).output();
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(format!("/var/log/wgxdp/{name}"));
    assert!(
        o.status.success(),
        "auto: {said}{}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert!(
        said.contains("could not start") && said.contains("tunw") && said.contains("fallback"),
        "auto says why it fell back: {said}"
    );
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("fallback backend"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert!(
        shown.status.success() && String::from_utf8_lossy(&shown.stdout).contains("listening port"),
        "show works on the fallback: {}",
        stderr(&shown)
    );
}
