//! `wgxdp genkey`, `pubkey` and `genpsk` are interchangeable with `wg`'s, byte for byte.
//! Needs the stock `wg` from wireguard-tools; CI installs it, elsewhere the comparison with
//! `wg` is skipped with a message (the known-answer test always runs).

use std::io::Write;
use std::process::{Command, Stdio};

fn run(cmd: &str, args: &[&str], stdin: &[u8]) -> (bool, String, String) {
    let mut child = Command::new(cmd)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd}: {e}"));
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn wgxdp(args: &[&str], stdin: &[u8]) -> (bool, String, String) {
    run(env!("CARGO_BIN_EXE_wgxdp"), args, stdin)
}

fn have_wg() -> bool {
    let ok = Command::new("wg")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("the stock `wg` tool is required in CI (apt package wireguard-tools)");
        }
        eprintln!("SKIPPED: `wg` (wireguard-tools) is not installed; comparison with wg not run");
    }
    ok
}

#[test]
fn pubkey_known_answer_rfc7748() {
    // RFC 7748 §6.1: Alice's private key and public key, in base64.
    let private = "dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCo=\n";
    let (ok, out, _) = wgxdp(&["pubkey"], private.as_bytes());
    assert!(ok);
    assert_eq!(out, "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=\n");
}

#[test]
fn bad_input_is_refused_like_wg() {
    for input in [
        "",
        "short\n",
        "dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCo==\n",
    ] {
        let (ok, out, err) = wgxdp(&["pubkey"], input.as_bytes());
        assert!(!ok && out.is_empty(), "{input:?}");
        assert!(
            err.contains("Key is not the correct length or format"),
            "{err}"
        );
    }
    let (ok, _, err) = wgxdp(&["frobnicate"], b"");
    assert!(!ok && err.contains("Usage"));
}

#[test]
fn generated_keys_have_wg_format() {
    for cmd in ["genkey", "genpsk"] {
        let (ok, out, _) = wgxdp(&[cmd], b"");
        assert!(ok);
        assert_eq!(out.len(), 45, "{cmd}: 44 base64 characters and a newline");
        assert!(out.ends_with("=\n"));
    }
    let (_, a, _) = wgxdp(&["genkey"], b"");
    let (_, b, _) = wgxdp(&["genkey"], b"");
    assert_ne!(a, b);
}

#[test]
fn interchangeable_with_wg() {
    if !have_wg() {
        return;
    }
    for _ in 0..20 {
        // wg genkey | tee k | wg pubkey  ==  wgxdp pubkey < k
        let (ok, k, _) = run("wg", &["genkey"], b"");
        assert!(ok);
        let (_, theirs, _) = run("wg", &["pubkey"], k.as_bytes());
        let (ok, ours, _) = wgxdp(&["pubkey"], k.as_bytes());
        assert!(ok);
        assert_eq!(ours, theirs);

        // wgxdp genkey | wg pubkey works and agrees with wgxdp pubkey.
        let (_, k, _) = wgxdp(&["genkey"], b"");
        let (ok, theirs, err) = run("wg", &["pubkey"], k.as_bytes());
        assert!(ok, "wg pubkey refused our key: {err}");
        assert_eq!(wgxdp(&["pubkey"], k.as_bytes()).1, theirs);

        // wg accepts our PSKs where it takes keys.
        let (_, psk, _) = wgxdp(&["genpsk"], b"");
        assert!(run("wg", &["pubkey"], psk.as_bytes()).0);
    }
}
