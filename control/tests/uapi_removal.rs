//! Removing the UAPI socket file makes the control process exit, as wireguard-go does (that is
//! how `wg-quick down` stops a userspace implementation). Needs root for /var/run/wireguard.

mod common;

use control::daemon::{Control, ControlOptions};
use proto::keys::PrivateKey;
use rand_core::OsRng;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

#[test]
fn control_exits_when_its_socket_is_removed() {
    if !nix::unistd::geteuid().is_root() {
        assert!(
            std::env::var("WGXDP_REQUIRE_PRIVILEGED").as_deref() != Ok("1"),
            "needs root for /var/run/wireguard"
        );
        eprintln!(
            "SKIPPED: control_exits_when_its_socket_is_removed needs root for /var/run/wireguard"
        );
        return;
    }
    let key = PrivateKey::generate(&mut OsRng);
    let text = format!(
        "[Interface]\nPrivateKey = {}\nListenPort = 0\n",
        key.to_base64()
    );
    let name = format!("wgxu{}", std::process::id() % 100_000);
    let opts = ControlOptions {
        interface_name: Some(control::InterfaceName::new(&name).unwrap()),
        ..common::options("uapi", &text)
    };
    let region = opts.region.clone();
    let mut control = Control::new(&opts).unwrap();
    let socket = std::path::Path::new(control::uapi::SOCKET_DIR).join(format!("{name}.sock"));
    assert!(socket.exists());
    let runner = std::thread::spawn(move || control.run(&AtomicBool::new(false)));
    std::thread::sleep(Duration::from_millis(100));
    assert!(!runner.is_finished());
    std::fs::remove_file(&socket).unwrap();
    let deadline = Instant::now() + Duration::from_secs(2);
    while !runner.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        runner.is_finished(),
        "control kept running after its socket was removed"
    );
    runner.join().unwrap();
    let _ = std::fs::remove_file(&region);
}
