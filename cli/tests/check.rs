//! `wgxdp check` names every key of a wg-quick file that a backend would not apply, instead of
//! calling the file "OK" without a word, and only those: hooks, Address, MTU, Table and DNS
//! are applied by `wgxdp up` on both backends.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_wgxdp");

#[test]
fn check_names_what_each_backend_ignores() {
    // The guides' server: hooks with the MASQUERADE rule, an address, SaveConfig; and FwMark.
    let text = "[Interface]\nAddress = 10.0.0.1/24\nSaveConfig = false\nListenPort = 51820\n\
        FwMark = 51820\nMTU = 1380\n\
        PrivateKey = qNoBKylRuEUtBuTANIS6rSZoCqG8cFYzEWeS7fx63Vk=\n\
        PostUp = iptables -t nat -A POSTROUTING -o eth0 -j MASQUERADE\n\
        PostDown = iptables -t nat -D POSTROUTING -o eth0 -j MASQUERADE\nDNS = 10.0.0.1\n\n\
        [Peer]\nPublicKey = Bj7G2pqXZRjrcBTwOWDrkjcy3PzhhJd3cX8QvBTaRDI=\nAllowedIPs = 10.0.0.2/32\n";
    let path = std::env::temp_dir().join(format!("wgxdp-check-{}.conf", std::process::id()));
    std::fs::write(&path, text).unwrap();
    let out = Command::new(BIN).arg("check").arg(&path).output().unwrap();
    let _ = std::fs::remove_file(&path);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    for needle in [
        "FwMark from the file is not applied with XDP",
        "FwMark from the file is not applied with the fallback backend",
    ] {
        assert!(stderr.contains(needle), "{needle:?} missing:\n{stderr}");
    }
    for applied in ["PostUp", "PostDown", "Address", "MTU"] {
        assert!(!stderr.contains(applied), "{applied} is applied:\n{stderr}");
    }
    // DNS goes to resolvconf, as with wg-quick; without it, `up` refuses the file.
    let resolvconf = [
        "/usr/sbin/resolvconf",
        "/sbin/resolvconf",
        "/usr/bin/resolvconf",
    ]
    .iter()
    .any(|p| std::path::Path::new(p).exists());
    assert_eq!(
        stderr.contains("DNS = 10.0.0.1 needs resolvconf"),
        !resolvconf,
        "{stderr}"
    );
    assert!(
        !stderr.contains("SaveConfig"),
        "SaveConfig = false needs no warning"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("OK (1 peer)"));
}
