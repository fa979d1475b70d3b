//! Captures (docs/operations.md): the XDP program redirects WireGuard data messages to
//! AF_XDP before the kernel's packet taps, so tcpdump on the WAN interface never sees them,
//! while it still sees what XDP passes to the kernel. xdpdump (Debian's xdp-tools), which
//! hooks the XDP program's entry with fentry programs, sees them all; where the kernel
//! refuses fentry programs (this project's VMs answer EPERM), that half is reported in the
//! skip list rather than passed.

mod common;

use common::*;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// SIGINT (both tools write out their file on it) and wait; what it said on stderr.
fn stop(c: Child) -> String {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(c.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    );
    let out = c.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Packets in a capture file that match `filter`, as tcpdump reads it.
fn count(file: &std::path::Path, filter: &str) -> usize {
    let out = Command::new("tcpdump")
        .args(["-n", "-r"])
        .arg(file)
        .arg(filter)
        .stderr(Stdio::null())
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).lines().count()
}

/// WireGuard data messages (type 4, the first byte of the UDP payload) to the gateway.
const DATA_IN: &str = "udp dst port 51820 and udp[8] = 4";
/// ... and from it (the workers transmit them through AF_XDP).
const DATA_OUT: &str = "udp src port 51820 and udp[8] = 4";
/// A datagram XDP passes to the kernel: the first byte is no message type.
const NOT_WG: &str = "udp dst port 51820 and udp[8] = 0x78";

#[test]
fn tcpdump_misses_steered_traffic_and_xdpdump_sees_it() {
    if !require() || !testbed::require_tools(&["xdpdump", "tcpdump"]) {
        return;
    }
    let t = topo(1, &[]);
    let p = &t.peers[0];
    assert!(ping(&p.ns, LAN_V4), "up\n{}", show(&t));
    let (xdp_file, tap_file) = (t.dir.join("xdpdump.pcap"), t.dir.join("tcpdump.pcap"));
    let spawn = |argv: &[&str], file: &std::path::Path, more: &[&str]| {
        t.gw.command(argv)
            .arg(file)
            .args(more)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let xdpdump = spawn(
        &["xdpdump", "-i", &t.wan_if, "--rx-capture", "entry", "-w"],
        &xdp_file,
        &[],
    );
    let tcpdump = spawn(
        &[
            "tcpdump",
            "-n",
            "--immediate-mode",
            "-U",
            "-i",
            &t.wan_if,
            "-w",
        ],
        &tap_file,
        &["udp port 51820"],
    );
    std::thread::sleep(Duration::from_secs(2));
    // Data messages (the pings through the tunnel), and one datagram that is no WireGuard
    // message, which XDP passes: the witness that tcpdump's tap works at all.
    for _ in 0..5 {
        assert!(ping(&p.ns, LAN_V4), "forwarding while captured");
    }
    let gw_wan = testbed::plan::WAN_A_V4.ip;
    ok(p.ns.exec([
        "bash",
        "-c",
        &format!("printf xxxx > /dev/udp/{gw_wan}/51820"),
    ]));
    std::thread::sleep(Duration::from_millis(500));
    let _ = stop(tcpdump);
    let xdpdump_said = stop(xdpdump);

    assert!(
        count(&tap_file, NOT_WG) >= 1,
        "tcpdump sees what XDP passes to the kernel"
    );
    assert_eq!(
        (count(&tap_file, DATA_IN), count(&tap_file, DATA_OUT)),
        (0, 0),
        "tcpdump sees no data message: XDP redirected them before its tap, AF_XDP sent the \
         others past it"
    );
    if xdpdump_said.contains("Can't load eBPF object: Operation not permitted") {
        testbed::note_skip(
            "xdpdump: this kernel refuses its fentry programs (EPERM); its half is unchecked",
        );
        return;
    }
    assert!(
        count(&xdp_file, DATA_IN) >= 5,
        "xdpdump sees the data messages\n{xdpdump_said}"
    );
}
