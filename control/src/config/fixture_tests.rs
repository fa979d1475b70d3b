//! The real-world files in `fixtures/` (copied from the shared fixture set so a fresh clone
//! can run them) against the outcomes their README records.

use super::*;
use proto::keys::KeyParseError;
use std::path::PathBuf;

fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/config/fixtures")
}

/// Loads through the file API. Warnings are not asserted on: whether the checked-out files
/// are world readable depends on the umask of whoever cloned the repository.
fn load_fixture(name: &str) -> Result<Config, ConfigError> {
    load(fixtures_dir().join(name)).map(|(config, _)| config)
}

fn syntax_error(name: &str) -> (usize, String, ErrorKind, String) {
    let e = match load_fixture(name) {
        Ok(_) => panic!("{name}: parsed, but the README expects an error"),
        Err(e) => e,
    };
    let msg = e.to_string();
    match e {
        ConfigError::Syntax {
            line,
            subject,
            kind,
            ..
        } => (line, subject, kind, msg),
        ConfigError::Io { .. } => panic!("{name}: {msg}"),
    }
}

fn prefixes(v: &[IpPrefix]) -> Vec<String> {
    v.iter().map(ToString::to_string).collect()
}

fn host(h: &str, port: u16) -> Option<Endpoint> {
    Some(Endpoint::Host {
        host: h.into(),
        port,
    })
}

#[test]
fn openbsd_server_refuses_the_45_character_public_key_on_line_8() {
    let (line, subject, kind, msg) = syntax_error("openbsd-server.conf");
    assert_eq!((line, subject.as_str()), (8, "PublicKey"));
    assert_eq!(kind, ErrorKind::Key(KeyParseError::Length(45)));
    assert!(
        msg.ends_with(
            "openbsd-server.conf:8: PublicKey: key must be 44 base64 characters, found 45"
        ),
        "{msg}"
    );
}

#[test]
fn openbsd_phone_is_a_full_tunnel_client() {
    let c = load_fixture("openbsd-phone.conf").unwrap();
    let i = &c.interface;
    assert!(i.private_key.is_some());
    assert_eq!(i.listen_port, None);
    assert_eq!(prefixes(&i.addresses), ["10.0.0.3/32"]);
    assert_eq!(i.dns, ["176.103.130.130", "176.103.130.131"]);
    assert_eq!(c.peers.len(), 1);
    let p = &c.peers[0];
    assert_eq!(
        p.public_key.to_base64(),
        "ZXmNA6CCRttOMSE/EX9S+CobCXfzmxfMFL10hZVq6hU="
    );
    assert!(p.preshared_key.is_some());
    assert_eq!(prefixes(&p.allowed_ips), ["0.0.0.0/0", "::/0"]);
    assert_eq!(
        p.endpoint,
        Some(Endpoint::Addr("124.112.22.23:53".parse().unwrap()))
    );
    assert_eq!(p.persistent_keepalive, Some(25));
}

#[test]
fn mesh_dolores_has_hostname_endpoints_and_additive_allowed_ips() {
    let c = load_fixture("mesh-dolores.conf").unwrap();
    assert_eq!(c.interface.listen_port, Some(55867));
    assert_eq!(
        prefixes(&c.interface.addresses),
        ["10.195.171.142/24", "fdc1:d89e:b128:6a04::7de4/64"]
    );
    let endpoints: Vec<_> = c.peers.iter().map(|p| p.endpoint.clone()).collect();
    assert_eq!(
        endpoints,
        [
            host("maeve.example.net", 55867),
            host("bernard.example.net", 55867),
            host("charlotte.example.net", 55867),
        ]
    );
    assert_eq!(
        prefixes(&c.peers[0].allowed_ips),
        ["10.195.171.47/32", "fdc1:d89e:b128:6a04::961/128"]
    );
    let charlotte = &c.peers[2];
    assert_eq!(
        charlotte.public_key.to_base64(),
        "xFXzNIDQ5NJkY0Pgg5hG1fZg0RAD51nnu5MMBbhlpCg="
    );
    assert_eq!(
        prefixes(&charlotte.allowed_ips),
        [
            "10.195.171.241/32",
            "fdc1:d89e:b128:6a04::29ab/128",
            "172.27.88.0/24",
            "fdc1:d89e:b128:13a6::/64",
        ]
    );
}

#[test]
fn mesh_maeve_refuses_the_empty_public_key_on_line_13_after_semicolon_comments() {
    let (line, subject, kind, msg) = syntax_error("mesh-maeve.conf");
    assert_eq!(
        (line, subject.as_str(), kind),
        (13, "PublicKey", ErrorKind::EmptyValue)
    );
    assert!(msg.contains("mesh-maeve.conf:13: PublicKey: "), "{msg}");
}

#[test]
fn wg_quick_server_keeps_hooks_verbatim_and_strips_inline_comments() {
    let c = load_fixture("wg-quick-server.conf").unwrap();
    let i = &c.interface;
    assert_eq!(prefixes(&i.addresses), ["10.0.0.1/32"]);
    assert!(!i.save_config);
    assert_eq!(
        i.post_up,
        ["iptables -I INPUT 1 -i %i -j ACCEPT; iptables -A FORWARD -i %i -j ACCEPT; \
          iptables -A FORWARD -o %i -j ACCEPT; iptables -t nat -A POSTROUTING -o eth0 -j MASQUERADE"]
    );
    assert_eq!(
        i.post_down,
        ["iptables -D INPUT -i %i -j ACCEPT; iptables -D FORWARD -i %i -j ACCEPT; \
          iptables -D FORWARD -o %i -j ACCEPT; iptables -t nat -D POSTROUTING -o eth0 -j MASQUERADE"]
    );
    // `ListenPort = 23456 # or whatever`
    assert_eq!(i.listen_port, Some(23456));
    assert!(i.private_key.is_some());
    // The commented `# PublicKey = ...` in [Interface] would otherwise be a WrongSection error.
    assert_eq!(c.peers.len(), 2);
    assert_eq!(prefixes(&c.peers[0].allowed_ips), ["10.0.0.2/32"]);
    assert_eq!(
        prefixes(&c.peers[1].allowed_ips),
        ["10.0.0.3/32", "192.168.4.0/24"]
    );
}

#[test]
fn valid_fixtures_round_trip_through_the_writer() {
    for name in [
        "openbsd-phone.conf",
        "mesh-dolores.conf",
        "wg-quick-server.conf",
    ] {
        let config = load_fixture(name).unwrap();
        let text = config.to_wg_quick_string();
        assert_eq!(parse(name, &text).unwrap(), config, "{name}:\n{text}");
    }
}

#[test]
fn every_fixture_in_the_directory_is_covered() {
    let mut names: Vec<String> = std::fs::read_dir(fixtures_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".conf"))
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "mesh-dolores.conf",
            "mesh-maeve.conf",
            "openbsd-phone.conf",
            "openbsd-server.conf",
            "wg-quick-server.conf",
        ]
    );
}

/// Where the copies came from. Absent in a fresh clone (CI), present in the shared workspace;
/// when present, the copies must not have drifted.
#[test]
fn copies_match_the_shared_fixtures_when_available() {
    let shared = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/configs");
    let Ok(entries) = std::fs::read_dir(&shared) else {
        return;
    };
    for entry in entries {
        let entry = entry.unwrap();
        let name = entry.file_name();
        let theirs = std::fs::read(entry.path()).unwrap();
        let ours = std::fs::read(fixtures_dir().join(&name)).unwrap_or_else(|e| {
            panic!("{}: not copied into fixtures/: {e}", name.to_string_lossy())
        });
        assert!(
            ours == theirs,
            "{} differs from {}",
            name.to_string_lossy(),
            shared.display()
        );
    }
}
