//! Interface names become paths (`/run/wgxdp/NAME`, `/var/run/wireguard/NAME.sock`), and the
//! gateway's commands run as root: every command refuses a name wg-quick would refuse
//! (`[a-zA-Z0-9_=+.-]{1,15}`, not `.` or `..`), saying which, before it touches anything.
//! No privilege needed: the names are refused before anything asks for it.

use std::path::PathBuf;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_wgxdp");

/// A directory with a file in it that a bad name would point at.
fn victim(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("wgxdp-names-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("marker"), "still here").unwrap();
    d
}

fn refused(args: &[&str], bad: &str) {
    let out = Command::new(BIN).args(args).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "wgxdp {args:?} succeeded: {err}");
    assert!(
        err.contains("invalid interface name") && err.contains(&format!("{bad:?}")),
        "wgxdp {args:?}: {err}"
    );
}

#[test]
fn down_refuses_a_path_for_a_name_and_removes_nothing() {
    let d = victim("down");
    // Relative to /run/wgxdp, and absolute (Path::join replaces the base with it).
    let rel = format!("../..{}", d.display());
    for bad in [rel.as_str(), d.to_str().unwrap()] {
        refused(&["down", bad], bad);
        assert!(
            d.join("marker").exists(),
            "wgxdp down {bad} removed {}",
            d.display()
        );
    }
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn every_command_refuses_bad_names() {
    let d = victim("all");
    let rel = format!("../..{}", d.display());
    let bad = rel.as_str();
    // A configuration that does not exist: a command that got past the name would fail on
    // it (or on the missing interface) without starting anything.
    let conf = d.join("missing.conf");
    let conf = conf.to_str().unwrap();
    for args in [
        vec!["up", conf, "--wan", "nosuchif0", "--name", bad],
        vec!["show", bad],
        vec![
            "peer",
            "add",
            "alice",
            "--interface",
            bad,
            "--endpoint",
            "198.18.0.1:51820",
        ],
        vec!["control", "--region", conf, "--name", bad, conf],
        vec!["fallback", "--tun", "wgxtest0", "--name", bad, conf],
    ] {
        refused(&args, bad);
    }
    // The configuration file's name is the interface name unless --name says otherwise.
    let stem = d.join("has space.conf");
    refused(
        &["up", stem.to_str().unwrap(), "--wan", "nosuchif0"],
        "has space",
    );
    assert!(d.join("marker").exists());
    std::fs::remove_dir_all(&d).unwrap();
}
