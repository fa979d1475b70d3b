//! What operators read besides `wg show`: the authentication log (accepted and rejected
//! handshakes with their reasons) and the Prometheus endpoint, scraped and parsed. Loopback
//! only, no privilege needed.

mod common;

use common::*;
use proto::keys::PrivateKey;
use proto::messages::{Initiation, INITIATION_LEN};
use rand_core::OsRng;
use std::collections::HashMap;
use std::net::{TcpStream, UdpSocket};
use std::time::Duration;

/// An initiation with a valid MAC1 from a key the gateway does not know: it passes MAC1 and
/// fails when the static key turns out to be nobody's.
fn initiation_from_stranger(gw: &proto::keys::PublicKey) -> [u8; INITIATION_LEN] {
    use proto::device::{Device, PeerConfig};
    let stranger = PrivateKey::generate(&mut OsRng);
    let mut dev = Device::new(stranger, OsRng);
    let now = proto::time::Now::new(
        proto::time::Instant::from_nanos(1),
        Duration::from_secs(1_700_000_000),
    );
    let id = dev
        .add_peer(
            now,
            *gw,
            PeerConfig {
                endpoint: Some("127.0.0.1:9".parse().unwrap()),
                ..PeerConfig::default()
            },
        )
        .unwrap();
    dev.initiate_handshake(now, id);
    let mut m = [0u8; INITIATION_LEN];
    let t = dev.poll_transmit(now, &mut m).unwrap();
    assert_eq!(t.len, INITIATION_LEN);
    assert!(Initiation::new_checked(&m[..]).is_ok());
    m
}

/// `name{labels} value` lines of a scrape, keyed by the part before the value.
fn parse(page: &str) -> HashMap<String, f64> {
    page.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').unwrap();
            (k.to_string(), v.parse().unwrap())
        })
        .collect()
}

#[test]
fn auth_log_and_metrics_tell_accepted_from_rejected() {
    let a = PrivateKey::generate(&mut OsRng);
    let log = std::env::temp_dir().join(format!("wgxdp-auth-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let mut gw = gateway_with(
        "observe",
        &[a.public_key()],
        4,
        Some(log.clone()),
        Some("127.0.0.1:0".parse().unwrap()),
    );
    handshake(&mut gw, &a);
    // A stranger with a valid MAC1; a message with a bad MAC1 (not logged at all).
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = gw.control.local_addr().unwrap().port();
    let m = initiation_from_stranger(&gw.key.public_key());
    sock.send_to(&m, ("127.0.0.1", port)).unwrap();
    let mut bad = m;
    bad[INITIATION_LEN - 20] ^= 1;
    sock.send_to(&bad, ("127.0.0.1", port)).unwrap();
    for _ in 0..5 {
        gw.control.step();
    }
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].contains("msg=initiation result=accepted")
            && lines[0].contains(&format!("peer={}", a.public_key().to_base64()))
            && lines[0].contains("endpoint=127.0.0.1:")
            && lines[0].starts_with("ts=20"),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].contains("result=rejected reason=unknown_key peer="),
        "{}",
        lines[1]
    );
    assert!(
        !text.contains(&a.to_base64()) && !text.contains(&gw.key.to_base64()),
        "no private key in the log"
    );

    // Scrape: the control loop answers while it steps. A client that connected first and
    // says nothing holds up only itself: the scrape is answered at once.
    let addr = gw.control.metrics_addr().unwrap();
    let _silent = TcpStream::connect(addr).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let started = std::time::Instant::now();
    let page = gw.scrape();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "the scrape waited {:?} behind a silent client",
        started.elapsed()
    );
    let body = page.split("\r\n\r\n").nth(1).unwrap();
    let m = parse(body);
    let key = a.public_key().to_base64();
    let get = |k: &str| {
        *m.get(k)
            .unwrap_or_else(|| panic!("{k} missing in:\n{body}"))
    };
    assert_eq!(
        get(r#"wgxdp_handshakes_total{message="initiation",result="accepted",reason=""}"#),
        1.0
    );
    assert_eq!(
        get(
            r#"wgxdp_handshakes_total{message="initiation",result="rejected",reason="unknown_key"}"#
        ),
        1.0
    );
    assert_eq!(get("wgxdp_cookie_replies_sent_total"), 0.0);
    assert_eq!(
        get(r#"wgxdp_xdp_packets_total{verdict="wan_redirect"}"#),
        0.0,
        "XDP verdicts are exported (no data path here)"
    );
    assert_eq!(get("wgxdp_peers"), 1.0);
    assert!(
        get(&format!(
            "wgxdp_peer_rx_bytes_total{{public_key=\"{key}\"}}"
        )) >= 148.0
    );
    // As the kernel, a responder counts the handshake complete when data confirms it; here
    // no data followed (there are no workers), so the peer has no handshake time yet.
    assert!(!m
        .keys()
        .any(|k| k.starts_with("wgxdp_peer_last_handshake_timestamp_seconds")));
    assert_eq!(
        get(&format!(
            "wgxdp_build_info{{version=\"{}\"}}",
            env!("CARGO_PKG_VERSION")
        )),
        1.0
    );
    assert!(
        !m.keys().any(|k| k.starts_with("wgxdp_worker_up")),
        "no worker has run, so none is reported up or down"
    );
    let _ = std::fs::remove_file(&log);
}

/// One captured initiation replayed many times (here from one source): the log takes a line
/// when it starts and one with the count when the window ends, not a line per packet, and
/// every message is accounted for. Control runs on a clock the test moves, so that the
/// 10-second window ends when the test says.
#[test]
fn a_replayed_initiation_is_aggregated_not_logged_per_packet() {
    const SENT: u64 = 300;
    let log = std::env::temp_dir().join(format!("wgxdp-auth-replay-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let key = PrivateKey::generate(&mut OsRng);
    let text = format!(
        "[Interface]\nPrivateKey = {}\nListenPort = 0\n",
        key.to_base64()
    );
    let options = control::daemon::ControlOptions {
        auth_log: Some(log.clone()),
        ..options("replay", &text)
    };
    let clock = control::clock::ManualClock::new();
    let mut control =
        control::daemon::Control::with(&options, Box::new(clock.clone()), Box::new(OsRng)).unwrap();
    let mut advanced = Duration::ZERO;
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = control.local_addr().unwrap().port();
    let m = initiation_from_stranger(&key.public_key());
    let rejected = |c: &control::daemon::Control| {
        parse(&c.metrics_page())
            .get(r#"wgxdp_handshakes_total{message="initiation",result="rejected",reason="unknown_key"}"#)
            .copied()
            .unwrap_or(0.0) as u64
    };
    // In bursts the socket's default buffer holds.
    for _ in 0..SENT / 50 {
        for _ in 0..50 {
            sock.send_to(&m, ("127.0.0.1", port)).unwrap();
        }
        let before = rejected(&control);
        while rejected(&control) < before + 50 {
            control.step();
        }
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let total = |text: &str| -> u64 {
        text.lines()
            .map(|l| {
                l.split(' ')
                    .find_map(|f| f.strip_prefix("repeated="))
                    .map_or(1, |n| n.parse().unwrap())
            })
            .sum()
    };
    // Until the last window has ended and its count is written.
    while total(&std::fs::read_to_string(&log).unwrap()) < SENT {
        assert!(std::time::Instant::now() < deadline, "window never ended");
        clock.advance(Duration::from_secs(1));
        advanced += Duration::from_secs(1);
        control.step();
    }
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(total(&text), SENT, "{text}");
    // Two lines per window at most, however slowly this machine got through them.
    let windows = advanced.as_secs() / 10 + 2;
    assert!(
        lines.len() as u64 <= 2 * windows && (lines.len() as u64) < SENT / 10,
        "{} lines for {SENT} messages in {windows} windows:\n{text}",
        lines.len()
    );
    assert!(
        lines[0].contains("msg=initiation result=rejected reason=unknown_key peer=")
            && lines[0].contains("endpoint=127.0.0.1:"),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].contains("reason=unknown_key peer=")
            && lines[1].contains("source=127.0.0.0/24 repeated="),
        "{}",
        lines[1]
    );
    drop(control);
    let _ = std::fs::remove_file(&log);
    let _ = std::fs::remove_file(&options.region);
}

/// The Grafana dashboard in the repo (contrib/grafana/wgxdp.json) is valid JSON and every
/// metric its queries name is one the gateway exports (a renamed metric would leave a panel
/// empty without a word).
#[test]
fn the_dashboard_queries_only_exported_metrics() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../contrib/grafana/wgxdp.json");
    let text = std::fs::read_to_string(path).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    let exprs: Vec<String> = dashboard["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t["expr"].as_str().map(str::to_string))
        .collect();
    assert!(exprs.len() >= 10, "a dashboard, not a stub: {exprs:?}");
    let gw = gateway("dashboard", &[key()], 4);
    let page = gw.control.metrics_page();
    let exported: std::collections::BTreeSet<&str> = page
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .collect();
    let mut used = std::collections::BTreeSet::new();
    for e in &exprs {
        let mut rest = e.as_str();
        while let Some(at) = rest.find("wgxdp_") {
            let name: String = rest[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            rest = &rest[at + name.len()..];
            used.insert(name);
        }
    }
    let missing: Vec<_> = used
        .iter()
        .filter(|n| !exported.contains(n.as_str()))
        .collect();
    assert!(missing.is_empty(), "queried but not exported: {missing:?}");
    // And the dashboard's job variable comes from a metric every gateway exports.
    assert!(text.contains("label_values(wgxdp_build_info, job)"));
}
