//! Tests for the line reader: one table row per error class, then the accepted forms.

use super::super::{
    parse, parse_with_warnings, Endpoint, EndpointError, ErrorKind, PrefixError, Section, Warning,
};
use super::*;
use proptest::prelude::*;
use proto::keys::KeyParseError;

const KEY_A: &str = "qNoBKylRuEUtBuTANIS6rSZoCqG8cFYzEWeS7fx63Vk=";
const KEY_B: &str = "Bj7G2pqXZRjrcBTwOWDrkjcy3PzhhJd3cX8QvBTaRDI=";
const KEY_C: &str = "5SAd89dXTesrxFZpNaRvwL/M11WjuevHJH/7Cv5LI3c=";

fn ok(text: &str) -> Config {
    match parse("t.conf", text) {
        Ok(c) => c,
        Err(e) => panic!("{e}\n--- input:\n{text}"),
    }
}

/// Parses `text`, expecting an error; checks the message shape and returns (line, kind).
fn err(text: &str) -> (usize, ErrorKind, String) {
    let e = parse("t.conf", text).expect_err(text);
    let msg = e.to_string();
    let line = e.line().expect("syntax errors name a line");
    assert!(msg.starts_with(&format!("t.conf:{line}: ")), "{msg}");
    (line, e.kind().cloned().unwrap(), msg)
}

#[test]
fn every_error_class_names_file_line_and_subject() {
    let peer = format!("[Peer]\nPublicKey = {KEY_B}\n");
    let cases: Vec<(String, usize, &str, ErrorKind)> = vec![
        (
            "[Interface]\n[Peers]\n".into(),
            2,
            "[Peers]",
            ErrorKind::UnknownSection,
        ),
        (
            "[Interface]\n\nListenPrt = 1\n".into(),
            3,
            "ListenPrt",
            ErrorKind::UnknownKey {
                section: Section::Interface,
            },
        ),
        (
            format!("[Interface]\nPublicKey = {KEY_A}\n"),
            2,
            "PublicKey",
            ErrorKind::WrongSection {
                section: Section::Interface,
                belongs_in: Section::Peer,
            },
        ),
        (
            "# header\nListenPort = 51820\n".into(),
            2,
            "ListenPort",
            ErrorKind::OutsideSection,
        ),
        (
            "[Interface]\nListenPort 51820\n".into(),
            2,
            "ListenPort",
            ErrorKind::MissingEquals,
        ),
        (
            format!("[Peer]\nPublicKey = {KEY_B}=\n"),
            2,
            "PublicKey",
            ErrorKind::Key(KeyParseError::Length(45)),
        ),
        (
            format!("[Interface]\nPrivateKey = !{}\n", &KEY_A[1..]),
            2,
            "PrivateKey",
            ErrorKind::Key(KeyParseError::Base64),
        ),
        (
            format!("{peer}PresharedKey = {}\n", &KEY_A[..43]),
            3,
            "PresharedKey",
            ErrorKind::Key(KeyParseError::Length(43)),
        ),
        (
            format!("{peer}AllowedIPs = 10.0.0.0/24, 10.0.1.0/33\n"),
            3,
            "AllowedIPs",
            ErrorKind::Prefix {
                value: "10.0.1.0/33".into(),
                reason: PrefixError::Length { max: 32 },
            },
        ),
        (
            "[Interface]\nAddress = 10.0.0.1/24, 10.0.0.300/24\n".into(),
            2,
            "Address",
            ErrorKind::Prefix {
                value: "10.0.0.300/24".into(),
                reason: PrefixError::Address,
            },
        ),
        (
            "[Interface]\nListenPort = 65536\n".into(),
            2,
            "ListenPort",
            ErrorKind::Number {
                value: "65536".into(),
                expected: "a port number 0-65535",
            },
        ),
        (
            "[Interface]\nMTU = 0\n".into(),
            2,
            "MTU",
            ErrorKind::Number {
                value: "0".into(),
                expected: "an MTU 1-65535",
            },
        ),
        (
            "[Interface]\nFwMark = 0x1ffffffff\n".into(),
            2,
            "FwMark",
            ErrorKind::Number {
                value: "0x1ffffffff".into(),
                expected: "off or a mark 0-0xffffffff",
            },
        ),
        (
            format!("{peer}PersistentKeepalive = 65536\n"),
            3,
            "PersistentKeepalive",
            ErrorKind::Number {
                value: "65536".into(),
                expected: "off or a keepalive interval 0-65535",
            },
        ),
        (
            format!("{peer}\n[Peer]\nPublicKey = {KEY_C}\n[Peer]\nPublicKey = {KEY_B}\n"),
            7,
            "PublicKey",
            ErrorKind::DuplicatePeer { first_line: 2 },
        ),
        (
            format!("{peer}Endpoint = vpn.example.net\n"),
            3,
            "Endpoint",
            ErrorKind::Endpoint {
                value: "vpn.example.net".into(),
                reason: EndpointError::MissingPort,
            },
        ),
        (
            format!("{peer}[Peer]\n# no key here\nAllowedIPs = 10.0.0.0/8\n[Peer]\nPublicKey = {KEY_C}\n"),
            3,
            "[Peer]",
            ErrorKind::MissingPublicKey,
        ),
        (
            "[Peer]\nPublicKey =\n".into(),
            2,
            "PublicKey",
            ErrorKind::EmptyValue,
        ),
        (
            "[Interface]\nSaveConfig = yes\n".into(),
            2,
            "SaveConfig",
            ErrorKind::Bool {
                value: "yes".into(),
            },
        ),
        (
            "[Interface]\nDNS = 1.1.1.1, 10.0.0.256\n".into(),
            2,
            "DNS",
            ErrorKind::DnsServer {
                value: "10.0.0.256".into(),
            },
        ),
        (
            "[Interface]\nTable = main table\n".into(),
            2,
            "Table",
            ErrorKind::Table {
                value: "main table".into(),
            },
        ),
    ];
    for (text, line, subject, kind) in cases {
        let (got_line, got_kind, msg) = err(&text);
        assert_eq!(
            (got_line, &got_kind),
            (line, &kind),
            "{msg}\n--- input:\n{text}"
        );
        assert!(
            msg.starts_with(&format!("t.conf:{line}: {subject}: ")),
            "{msg}"
        );
    }
}

#[test]
fn key_length_message_matches_the_documented_form() {
    let text = format!("[Interface]\n\n\n\n\n[Peer]\n#\nPublicKey = {KEY_B}=\n");
    let e = parse("wg0.conf", &text).unwrap_err();
    assert_eq!(
        e.to_string(),
        "wg0.conf:8: PublicKey: key must be 44 base64 characters, found 45"
    );
}

#[test]
fn errors_never_echo_key_material() {
    let bare_key_line = format!("[Interface]\n{KEY_A}\n");
    let pasted_as_key = format!("[Interface]\n{}= 1\n", &KEY_A[..43]);
    let no_equals = format!("[Interface]\nPrivateKey {KEY_A}\n");
    let bad_key = format!("[Interface]\nPrivateKey = {KEY_A}A\n");
    let outside = format!("{KEY_A}\n");
    for text in [bare_key_line, pasted_as_key, no_equals, bad_key, outside] {
        let msg = parse("t.conf", &text).unwrap_err().to_string();
        assert!(!msg.contains(&KEY_A[..16]), "{msg}");
    }
}

#[test]
fn duplicate_single_valued_keys_keep_the_last_as_wg_does() {
    let c = ok(&format!(
        "[Interface]\nPrivateKey = {KEY_B}\nPrivateKey = {KEY_A}\nListenPort = 1\n\
         ListenPort = 2\nMTU = 1400\nMTU = 1420\n[Peer]\nPublicKey = {KEY_C}\n\
         PublicKey = {KEY_B}\nEndpoint = a.example:1\nEndpoint = b.example:2\n"
    ));
    let key = c.interface.private_key.as_ref().unwrap();
    assert_eq!(key.to_base64(), KEY_A);
    assert_eq!(c.interface.listen_port, Some(2));
    assert_eq!(c.interface.mtu, Some(1420));
    assert_eq!(c.peers[0].public_key.to_base64(), KEY_B);
    assert_eq!(
        c.peers[0].endpoint.as_ref().unwrap().to_string(),
        "b.example:2"
    );
}

#[test]
fn duplicate_peer_points_at_the_last_public_key_line_of_the_second_peer() {
    // The second peer first names C, then changes its mind to B, which the first peer has.
    let text =
        format!("[Peer]\nPublicKey = {KEY_B}\n[Peer]\nPublicKey = {KEY_C}\nPublicKey = {KEY_B}\n");
    assert_eq!(err(&text).0, 5);
}

#[test]
fn comments_whitespace_and_case() {
    let c = ok(&format!(
        "; INI-style comment\n  ;indented too\n\n\t[ interface ]  # trailing\r\n\
         LISTENPORT=51820# glued comment\r\n\
         privatekey  =  {KEY_A}   \n\
         #PublicKey = not a key\n\
         [PEER]\n\
         Public Key = {KEY_B}\n\
         Allowed IPs = 10.0.0.1 /32 , fd00::/64\n\
         persistentkeepalive = OFF\n"
    ));
    assert_eq!(c.interface.listen_port, Some(51820));
    assert!(c.interface.private_key.is_some());
    assert_eq!(c.peers.len(), 1);
    assert_eq!(c.peers[0].allowed_ips.len(), 2);
    assert_eq!(c.peers[0].persistent_keepalive, None);
}

#[test]
fn semicolons_are_comments_only_at_the_start_of_a_line() {
    let c = ok("[Interface]\nPostUp = a; b ;c\n; PostUp = d\n");
    assert_eq!(c.interface.post_up, ["a; b ;c"]);
}

#[test]
fn wg_quick_keys_are_trimmed_not_compacted() {
    // wg-quick matches its keys after trimming only, so `Post Up` is not PostUp.
    let (line, kind, _) = err("[Interface]\nPost Up = true\n");
    assert_eq!(line, 2);
    assert!(matches!(kind, ErrorKind::UnknownKey { .. }));
}

#[test]
fn hooks_are_verbatim_including_percent_i_equals_and_hash() {
    let c = ok("[Interface]\n\
         PreUp = sysctl -w net.ipv4.ip_forward=1\n\
         PostUp   =   iptables -A FORWARD -i %i -j ACCEPT   \n\
         PostUp = echo 'a#b' # note\n\
         PreDown =\n\
         PostDown = ip link del %i\n");
    let i = &c.interface;
    assert_eq!(i.pre_up, ["sysctl -w net.ipv4.ip_forward=1"]);
    assert_eq!(
        i.post_up,
        ["iptables -A FORWARD -i %i -j ACCEPT", "echo 'a#b' # note"]
    );
    assert_eq!(i.pre_down, [""]);
    assert_eq!(i.post_down, ["ip link del %i"]);
}

#[test]
fn lists_add_up_across_lines() {
    let c = ok(&format!(
        "[Interface]\nAddress = 10.0.0.1/24\nAddress = fd00::1/64 10.1.0.1,\n\
         DNS = 1.1.1.1\nDNS = example.com,::1\n\
         [Peer]\nPublicKey = {KEY_B}\nAllowedIPs = 10.0.0.2\nAllowedIPs = fd00::2,10.2.0.0/16\n"
    ));
    let shown = |v: &[IpPrefix]| v.iter().map(ToString::to_string).collect::<Vec<_>>();
    assert_eq!(
        shown(&c.interface.addresses),
        ["10.0.0.1/24", "fd00::1/64", "10.1.0.1/32"]
    );
    assert_eq!(c.interface.dns, ["1.1.1.1", "example.com", "::1"]);
    assert_eq!(
        shown(&c.peers[0].allowed_ips),
        ["10.0.0.2/32", "fd00::2/128", "10.2.0.0/16"]
    );
}

#[test]
fn allowed_ips_with_host_bits_are_kept_and_warned_about() {
    let text = format!("[Peer]\nPublicKey = {KEY_B}\nAllowedIPs = 10.0.0.0/24, 10.0.1.1/24\n");
    let (c, warnings) = parse_with_warnings("t.conf", &text).unwrap();
    assert_eq!(c.peers[0].allowed_ips[1].to_string(), "10.0.1.1/24");
    assert_eq!(
        warnings,
        [Warning::HostBitsSet {
            file: "t.conf".into(),
            line: 3,
            prefix: "10.0.1.1/24".parse().unwrap(),
        }]
    );
}

#[test]
fn empty_allowed_ip_entries_are_refused_like_wg() {
    let text = format!("[Peer]\nPublicKey = {KEY_B}\nAllowedIPs = 10.0.0.0/8,\n");
    let (line, kind, _) = err(&text);
    assert_eq!(line, 3);
    assert!(matches!(
        kind,
        ErrorKind::Prefix {
            reason: PrefixError::Address,
            ..
        }
    ));
}

#[test]
fn fwmark_and_keepalive_forms() {
    for (value, want) in [
        ("off", None),
        ("OFF", None),
        ("0", None),
        ("0x0", None),
        ("51820", Some(51820)),
        ("0xca6c", Some(0xca6c)),
        ("0xffffffff", Some(u32::MAX)),
        ("010", Some(10)),
    ] {
        let c = ok(&format!("[Interface]\nFwMark = {value}\n"));
        assert_eq!(c.interface.fwmark, want, "{value}");
    }
    for bad in ["0X10", "0x", "-1", "+1", "4294967296", "0xg", "mark"] {
        let (line, kind, _) = err(&format!("[Interface]\nFwMark = {bad}\n"));
        assert_eq!(line, 2);
        assert!(matches!(kind, ErrorKind::Number { .. }), "{bad}");
    }
    for (value, want) in [
        ("off", None),
        ("0", None),
        ("25", Some(25)),
        ("65535", Some(65535)),
    ] {
        let c = ok(&format!(
            "[Peer]\nPublicKey = {KEY_B}\nPersistentKeepalive = {value}\n"
        ));
        assert_eq!(c.peers[0].persistent_keepalive, want, "{value}");
    }
}

#[test]
fn wg_quick_scalars() {
    let c = ok("[Interface]\nMTU = 1420\nTable = off\nSaveConfig = TRUE\n");
    assert_eq!(c.interface.mtu, Some(1420));
    assert_eq!(c.interface.table.as_deref(), Some("off"));
    assert!(c.interface.save_config);
    for table in ["auto", "1234", "vpn_main"] {
        let c = ok(&format!("[Interface]\nTable = {table}\n"));
        assert_eq!(c.interface.table.as_deref(), Some(table));
    }
    // An empty MTU or Table is "unset" to wg-quick.
    let c = ok("[Interface]\nMTU = 1420\nMTU =\nTable = 7\nTable =\n");
    assert_eq!((c.interface.mtu, c.interface.table), (None, None));
}

#[test]
fn endpoints_are_not_resolved() {
    let c = ok(&format!(
        "[Peer]\nPublicKey = {KEY_B}\nEndpoint = vpn.example.net:51820\n\
         [Peer]\nPublicKey = {KEY_C}\nEndpoint = [2001:db8::1]:51820\n"
    ));
    assert_eq!(
        c.peers[0].endpoint,
        Some(Endpoint::Host {
            host: "vpn.example.net".into(),
            port: 51820
        })
    );
    assert_eq!(
        c.peers[1].endpoint,
        Some(Endpoint::Addr("[2001:db8::1]:51820".parse().unwrap()))
    );
}

#[test]
fn repeated_interface_sections_merge_and_empty_files_are_valid() {
    let c = ok("[Interface]\nListenPort = 1\n[Interface]\nMTU = 1280\n");
    assert_eq!(
        (c.interface.listen_port, c.interface.mtu),
        (Some(1), Some(1280))
    );
    assert_eq!(ok(""), Config::default());
    assert_eq!(ok("# nothing\n\n"), Config::default());
}

#[test]
fn only_ascii_whitespace_is_stripped() {
    // A no-break space is not whitespace to `wg`; refusing beats silently compacting it.
    let (line, _, _) = err("[Interface]\nListenPort = 5\u{a0}\n");
    assert_eq!(line, 2);
}

/// Line fragments that reach every branch of the reader when shuffled together.
fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("[Interface]".to_owned()),
        Just("[Peer]".to_owned()),
        Just("[".to_owned()),
        Just(format!("PrivateKey = {KEY_A}")),
        Just(format!("PublicKey = {KEY_B}")),
        Just(format!("PublicKey = {KEY_C}")),
        Just(format!("PresharedKey = {KEY_A}")),
        Just("AllowedIPs = 10.0.0.0/8, ::/0".to_owned()),
        Just("Endpoint = [::1]:5".to_owned()),
        "(ListenPort|FwMark|MTU|Table|DNS|Address|PostUp|SaveConfig|PersistentKeepalive|Endpoint|AllowedIPs) ?= ?[0-9a-fx.:/,%\\[\\] #;=-]{0,24}",
        "[ -~]{0,40}",
        any::<String>(),
    ]
}

proptest! {
    #[test]
    fn never_panics_on_arbitrary_text(text in any::<String>()) {
        let _ = parse("fuzz", &text);
    }

    #[test]
    fn never_panics_on_plausible_lines(lines in prop::collection::vec(fragment(), 0..24)) {
        let text = lines.join("\n");
        match parse("fuzz", &text) {
            Ok(_) => {}
            // Whatever the failure, it points inside the input.
            Err(e) => {
                let line = e.line().unwrap();
                prop_assert!((1..=text.lines().count()).contains(&line), "{}", e);
            }
        }
    }
}
