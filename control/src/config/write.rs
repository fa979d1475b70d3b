//! The canonical text form of a [`Config`], laid out as `wg-quick save` writes a file: the
//! wg-quick keys first, then what `wg showconf` prints, one blank line before each peer.
//!
//! Reading the output back gives the same `Config`, provided its strings are ones parsing
//! could have produced (no line breaks; hooks and `Table` trimmed; `DNS` entries without
//! commas, spaces or `#`).

use super::{Config, Interface, Peer};
use std::fmt::Display;

impl Config {
    /// The configuration as file text. It contains the private and pre-shared keys: write it
    /// only to a file nobody else can read. (`Config` deliberately has no `Display`, so a
    /// stray `{}` in a log line cannot print it.)
    pub fn to_wg_quick_string(&self) -> String {
        let mut out = String::new();
        write_interface(&mut out, &self.interface);
        for peer in &self.peers {
            out.push('\n');
            write_peer(&mut out, peer);
        }
        out
    }
}

impl Peer {
    /// This peer as one `[Peer]` section (with its pre-shared key, if any: a secret).
    pub fn to_wg_quick_section(&self) -> String {
        let mut out = String::new();
        write_peer(&mut out, self);
        out
    }
}

fn line(out: &mut String, key: &str, value: impl Display) {
    let value = value.to_string();
    out.push_str(key);
    out.push_str(if value.is_empty() { " =" } else { " = " });
    out.push_str(&value);
    out.push('\n');
}

fn write_interface(out: &mut String, i: &Interface) {
    out.push_str("[Interface]\n");
    for address in &i.addresses {
        line(out, "Address", address);
    }
    for dns in &i.dns {
        line(out, "DNS", dns);
    }
    if let Some(mtu) = i.mtu {
        line(out, "MTU", mtu);
    }
    if let Some(table) = &i.table {
        line(out, "Table", table);
    }
    if i.save_config {
        line(out, "SaveConfig", "true");
    }
    for (key, hooks) in [
        ("PreUp", &i.pre_up),
        ("PostUp", &i.post_up),
        ("PreDown", &i.pre_down),
        ("PostDown", &i.post_down),
    ] {
        for hook in hooks {
            line(out, key, hook);
        }
    }
    if let Some(port) = i.listen_port {
        line(out, "ListenPort", port);
    }
    if let Some(mark) = i.fwmark {
        line(out, "FwMark", format_args!("{mark:#x}"));
    }
    if let Some(key) = &i.private_key {
        line(out, "PrivateKey", key.to_base64());
    }
}

fn write_peer(out: &mut String, p: &Peer) {
    out.push_str("[Peer]\n");
    line(out, "PublicKey", p.public_key);
    if let Some(psk) = &p.preshared_key {
        line(out, "PresharedKey", psk.to_base64());
    }
    if !p.allowed_ips.is_empty() {
        let list: Vec<String> = p.allowed_ips.iter().map(ToString::to_string).collect();
        line(out, "AllowedIPs", list.join(", "));
    }
    if let Some(endpoint) = &p.endpoint {
        line(out, "Endpoint", endpoint);
    }
    if let Some(secs) = p.persistent_keepalive {
        line(out, "PersistentKeepalive", secs);
    }
}

#[cfg(test)]
mod tests {
    use super::super::{parse, Endpoint, IpPrefix};
    use super::*;
    use proptest::prelude::*;
    use proto::keys::{PresharedKey, PrivateKey, PublicKey};
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

    const KEY_A: &str = "qNoBKylRuEUtBuTANIS6rSZoCqG8cFYzEWeS7fx63Vk=";
    const KEY_B: &str = "Bj7G2pqXZRjrcBTwOWDrkjcy3PzhhJd3cX8QvBTaRDI=";
    const PSK: &str = "Hqc4AxV9dWulI82WFUmP7AnNqwTlaPFn7LOa3uJfFnc=";

    #[test]
    fn canonical_layout() {
        let text = format!(
            "[interface]\nprivatekey={KEY_A}\nfwmark=51820\nlistenport=51820\n\
             postup = ip rule add %i # why\nsaveconfig=true\ntable=off\nmtu=1420\n\
             dns=1.1.1.1,corp.example\naddress=10.0.0.1/24,fd00::1\n\
             [peer]\npersistentkeepalive=25\nendpoint=[2001:db8::1]:51820\n\
             allowedips=10.0.0.2,::/0\npresharedkey={PSK}\npublickey={KEY_B}\n\
             [peer]\npublickey={KEY_A}\n"
        );
        let config = parse("t.conf", &text).unwrap();
        let want = format!(
            "[Interface]\n\
             Address = 10.0.0.1/24\n\
             Address = fd00::1/128\n\
             DNS = 1.1.1.1\n\
             DNS = corp.example\n\
             MTU = 1420\n\
             Table = off\n\
             SaveConfig = true\n\
             PostUp = ip rule add %i # why\n\
             ListenPort = 51820\n\
             FwMark = 0xca6c\n\
             PrivateKey = {KEY_A}\n\
             \n\
             [Peer]\n\
             PublicKey = {KEY_B}\n\
             PresharedKey = {PSK}\n\
             AllowedIPs = 10.0.0.2/32, ::/0\n\
             Endpoint = [2001:db8::1]:51820\n\
             PersistentKeepalive = 25\n\
             \n\
             [Peer]\n\
             PublicKey = {KEY_A}\n"
        );
        assert_eq!(config.to_wg_quick_string(), want);
    }

    #[test]
    fn empty_config_writes_an_empty_interface() {
        let text = Config::default().to_wg_quick_string();
        assert_eq!(text, "[Interface]\n");
        assert_eq!(parse("t", &text).unwrap(), Config::default());
    }

    #[test]
    fn empty_hook_round_trips() {
        let c = parse("t", "[Interface]\nPostDown =\n").unwrap();
        let text = c.to_wg_quick_string();
        assert_eq!(text, "[Interface]\nPostDown =\n");
        assert_eq!(parse("t", &text).unwrap(), c);
    }

    fn prefix() -> impl Strategy<Value = IpPrefix> {
        prop_oneof![
            (any::<u32>(), 0u8..=32).prop_map(|(a, l)| IpPrefix::new(
                IpAddr::V4(Ipv4Addr::from(a)),
                l
            )
            .unwrap()),
            (any::<u128>(), 0u8..=128).prop_map(|(a, l)| IpPrefix::new(
                IpAddr::V6(Ipv6Addr::from(a)),
                l
            )
            .unwrap()),
        ]
    }

    fn endpoint() -> impl Strategy<Value = Endpoint> {
        prop_oneof![
            (any::<IpAddr>(), 1u16..)
                .prop_map(|(ip, port)| Endpoint::Addr(SocketAddr::new(ip, port))),
            ("[a-z0-9][a-z0-9-]{0,10}(\\.[a-z]{2,6}){0,2}", 1u16..)
                .prop_map(|(host, port)| Endpoint::Host { host, port }),
        ]
    }

    /// Hook text as a trimmed line: no line breaks, no leading or trailing space.
    fn hook() -> impl Strategy<Value = String> {
        "([!-~]([ -~]{0,30}[!-~])?)?"
    }

    fn dns_entry() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<IpAddr>().prop_map(|ip| ip.to_string()),
            "[a-z][a-z0-9.-]{0,20}",
        ]
    }

    fn interface() -> impl Strategy<Value = Interface> {
        (
            (
                prop::option::of(any::<[u8; 32]>()),
                prop::option::of(any::<u16>()),
                prop::option::of(1u32..),
                prop::collection::vec(prefix(), 0..4),
                prop::collection::vec(dns_entry(), 0..4),
                prop::option::of(1u16..),
                prop::option::of("off|auto|[0-9]{1,5}|[a-z_]{1,8}"),
            ),
            (
                prop::collection::vec(hook(), 0..3),
                prop::collection::vec(hook(), 0..3),
                prop::collection::vec(hook(), 0..3),
                prop::collection::vec(hook(), 0..3),
                any::<bool>(),
            ),
        )
            .prop_map(
                |(
                    (key, listen_port, fwmark, addresses, dns, mtu, table),
                    (pre_up, post_up, pre_down, post_down, save_config),
                )| Interface {
                    private_key: key.map(PrivateKey::from_bytes),
                    listen_port,
                    fwmark,
                    addresses,
                    dns,
                    mtu,
                    table,
                    pre_up,
                    post_up,
                    pre_down,
                    post_down,
                    save_config,
                },
            )
    }

    fn peer() -> impl Strategy<Value = Peer> {
        (
            any::<[u8; 32]>(),
            prop::option::of(any::<[u8; 32]>()),
            prop::collection::vec(prefix(), 0..5),
            prop::option::of(endpoint()),
            prop::option::of(1u16..),
        )
            .prop_map(
                |(key, psk, allowed_ips, endpoint, persistent_keepalive)| Peer {
                    public_key: PublicKey::from_bytes(key),
                    preshared_key: psk.map(PresharedKey::from_bytes),
                    allowed_ips,
                    endpoint,
                    persistent_keepalive,
                },
            )
    }

    fn config() -> impl Strategy<Value = Config> {
        (interface(), prop::collection::vec(peer(), 0..4)).prop_map(|(interface, mut peers)| {
            // Peers must have distinct keys; make them so without discarding cases.
            for (i, p) in peers.iter_mut().enumerate() {
                let mut bytes = *p.public_key.as_bytes();
                bytes[0] = u8::try_from(i).unwrap_or(u8::MAX);
                p.public_key = PublicKey::from_bytes(bytes);
            }
            Config { interface, peers }
        })
    }

    proptest! {
        #[test]
        fn write_then_parse_is_the_identity(config in config()) {
            let text = config.to_wg_quick_string();
            let back = parse("rt", &text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
            prop_assert_eq!(&back, &config, "{}", text);
            // And the text is a fixed point.
            prop_assert_eq!(back.to_wg_quick_string(), text);
        }
    }
}
