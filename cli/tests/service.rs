//! The gateway as a service: `up` with only the capabilities it names (what the systemd unit
//! grants), and `up --foreground` (what the unit runs) supervising control, telling systemd
//! it is ready, and going down on SIGTERM. Needs root and wireguard-go, as the other
//! gateway tests; no systemd (its notify socket is played by the test).

mod common;

use common::*;
use std::os::unix::net::UnixDatagram;
use std::process::{Child, Output};
use std::time::{Duration, Instant};

/// A new gateway behind the same address: the peer, still on its old session, handshakes
/// again only once that session has gone unanswered (wireguard-go: 15 s).
fn reaches(p: &Peer) -> bool {
    let deadline = Instant::now() + Duration::from_secs(40);
    while Instant::now() < deadline {
        if ping(&p.ns, LAN_V4) {
            return true;
        }
    }
    false
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `wgxdp up` for `t`'s gateway, with arguments added.
fn up_args<'a>(t: &'a Topo, more: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec![
        BIN,
        "up",
        t.conf.to_str().unwrap(),
        "--wan",
        &t.wan_if,
        "--lan",
        &t.lan_if,
        "--name",
        &t.name,
    ];
    a.extend_from_slice(more);
    a
}

/// `up` run as root but with only `caps` in its bounding set (as systemd's
/// CapabilityBoundingSet= leaves it).
fn up_with_caps(t: &Topo, caps: &str, backend: &str) -> Output {
    let bounding = format!("--bounding-set=-all,{caps}");
    let mut a = vec!["setpriv", &bounding, "--inh-caps=-all"];
    a.extend(up_args(t, &["--backend", backend]));
    t.gw.command(a).output().unwrap()
}

#[test]
fn up_runs_with_just_the_capabilities_it_names() {
    if !require() {
        return;
    }
    let t = topo(1, &[]);
    ok(t.gw.exec([BIN, "down", &t.name]));
    let p = &t.peers[0];

    let o = up_with_caps(&t, "+net_admin", "xdp");
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("missing: CAP_BPF, CAP_PERFMON and CAP_NET_RAW"),
        "names what is missing: {}",
        stderr(&o)
    );

    // `auto` without the XDP path's capabilities falls back, and says why.
    let o = up_with_caps(&t, "+net_admin", "auto");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("could not start (no CAP_BPF, CAP_PERFMON and CAP_NET_RAW)"),
        "{}",
        stderr(&o)
    );
    assert!(reaches(p), "the fallback forwards\n{}", show(&t));
    ok(t.gw.exec([BIN, "down", &t.name]));

    // These four are enough for the XDP data path: no CAP_SYS_ADMIN, no CAP_IPC_LOCK.
    let o = up_with_caps(&t, "+net_admin,+bpf,+perfmon,+net_raw", "xdp");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("native on"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert!(reaches(p), "XDP forwards\n{}", show(&t));
}

fn pid_file(t: &Topo, which: &str) -> Option<i32> {
    std::fs::read_to_string(format!("/run/wgxdp/{}/{which}.pid", t.name))
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "{what} within {secs} s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Ends the supervisor if the test failed before it did.
struct Supervisor(Child);

impl Drop for Supervisor {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.0.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = self.0.wait();
        }
    }
}

#[test]
fn foreground_up_restarts_control_and_goes_down_on_sigterm() {
    if !require() {
        return;
    }
    let t = topo(1, &[]);
    ok(t.gw.exec([BIN, "down", &t.name]));
    let p = &t.peers[0];
    // systemd's side of Type=notify.
    let notify_path = t.dir.join("notify");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut sup = Supervisor(
        // aya's debug records (through the `log` bridge) as a witness that the filter is
        // handed on and the BPF loader's messages are kept.
        t.gw.command(up_args(
            &t,
            &["--foreground", "--log-level", "info,aya=debug"],
        ))
        .env("NOTIFY_SOCKET", &notify_path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap(),
    );
    let mut buf = [0u8; 256];
    let n = notify.recv(&mut buf).expect("READY=1 within 30 s");
    let said = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(said.starts_with("READY=1\n"), "{said}");
    assert!(reaches(p), "up\n{}", show(&t));
    let dp_log = std::fs::read_to_string(format!("{}/dataplane.log", log_dir(&t.name))).unwrap();
    assert!(
        dp_log.contains("aya") && dp_log.contains("BPF Feature Detection"),
        "the BPF loader's log is kept: {dp_log}"
    );

    // Control dies: the data path forwards meanwhile, and a new control is started.
    let first = pid_file(&t, "control").unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(first),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert!(ping(&p.ns, LAN_V4), "forwarding without control");
    wait_for("a new control", 10, || {
        pid_file(&t, "control").is_some_and(|p| p != first)
    });
    let second = pid_file(&t, "control").unwrap();
    assert!(
        std::path::Path::new(&format!("/proc/{second}")).exists(),
        "the new control runs"
    );
    // The new control answers `wg` (its UAPI socket) and the tunnel carries traffic.
    wait_for("the new control's UAPI", 10, || {
        t.gw.exec(["wg", "show", &t.name]).is_ok()
    });
    assert!(ping(&p.ns, LAN_V4), "after the restart\n{}", show(&t));
    let log = std::fs::read_to_string(format!("{}/control.log", log_dir(&t.name))).unwrap();
    assert!(
        log.contains("control listening"),
        "the new control logs: {log}"
    );

    // SIGTERM (systemctl stop): down, as `wgxdp down` does, and a clean exit.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(sup.0.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = sup.0.wait().unwrap();
    assert!(status.success(), "{status}");
    let n = notify.recv(&mut buf).expect("STOPPING=1");
    assert_eq!(&buf[..n], b"STOPPING=1");
    assert!(
        !std::path::Path::new(&format!("/run/wgxdp/{}", t.name)).exists(),
        "down removed the run directory"
    );
    assert!(
        !std::path::Path::new(&format!("/proc/{second}")).exists()
            || std::fs::read_to_string(format!("/proc/{second}/status"))
                .unwrap_or_default()
                .contains("zombie"),
        "control stopped"
    );
    assert!(
        std::path::Path::new(&format!("{}/dataplane.log", log_dir(&t.name))).exists(),
        "down kept the logs"
    );
}
