//! The line-by-line reader. See the module docs of [`super`] for the language accepted and
//! where it follows `wg` or wg-quick.

use super::error::{shown, shown_name};
use super::{
    Config, ConfigError, Endpoint, ErrorKind, Interface, IpPrefix, Peer, Section, Warning,
};
use proto::keys::{PresharedKey, PrivateKey, PublicKey};
use std::collections::HashMap;
use std::net::IpAddr;
use zeroize::Zeroizing;

/// Every key the file may hold, with the section it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[expect(
    clippy::enum_variant_names,
    reason = "variants are named as the file spells the keys, some of which end in Key"
)]
enum Key {
    PrivateKey,
    ListenPort,
    FwMark,
    Address,
    Dns,
    Mtu,
    Table,
    PreUp,
    PostUp,
    PreDown,
    PostDown,
    SaveConfig,
    PublicKey,
    PresharedKey,
    AllowedIps,
    Endpoint,
    PersistentKeepalive,
}

impl Key {
    const ALL: [Key; 17] = [
        Key::PrivateKey,
        Key::ListenPort,
        Key::FwMark,
        Key::Address,
        Key::Dns,
        Key::Mtu,
        Key::Table,
        Key::PreUp,
        Key::PostUp,
        Key::PreDown,
        Key::PostDown,
        Key::SaveConfig,
        Key::PublicKey,
        Key::PresharedKey,
        Key::AllowedIps,
        Key::Endpoint,
        Key::PersistentKeepalive,
    ];

    fn name(self) -> &'static str {
        match self {
            Key::PrivateKey => "PrivateKey",
            Key::ListenPort => "ListenPort",
            Key::FwMark => "FwMark",
            Key::Address => "Address",
            Key::Dns => "DNS",
            Key::Mtu => "MTU",
            Key::Table => "Table",
            Key::PreUp => "PreUp",
            Key::PostUp => "PostUp",
            Key::PreDown => "PreDown",
            Key::PostDown => "PostDown",
            Key::SaveConfig => "SaveConfig",
            Key::PublicKey => "PublicKey",
            Key::PresharedKey => "PresharedKey",
            Key::AllowedIps => "AllowedIPs",
            Key::Endpoint => "Endpoint",
            Key::PersistentKeepalive => "PersistentKeepalive",
        }
    }

    fn section(self) -> Section {
        match self {
            Key::PublicKey
            | Key::PresharedKey
            | Key::AllowedIps
            | Key::Endpoint
            | Key::PersistentKeepalive => Section::Peer,
            _ => Section::Interface,
        }
    }

    /// Keys `wg` itself reads. `wg` deletes every space in a line before matching, so these
    /// match and take values with inner whitespace removed; wg-quick only trims its own.
    fn is_wg_native(self) -> bool {
        matches!(self, Key::PrivateKey | Key::ListenPort | Key::FwMark)
            || self.section() == Section::Peer
    }

    fn is_hook(self) -> bool {
        matches!(
            self,
            Key::PreUp | Key::PostUp | Key::PreDown | Key::PostDown
        )
    }

    /// The key named by `raw` (the text before `=`), in any section.
    fn lookup(raw: &str) -> Option<Key> {
        let trimmed = raw.trim_matches(is_space);
        let compact = without_spaces(raw);
        Key::ALL.into_iter().find(|k| {
            let spelled = if k.is_wg_native() { &compact } else { trimmed };
            spelled.eq_ignore_ascii_case(k.name())
        })
    }
}

/// C `isspace` in the C locale: what both `wg` and bash's `[[:space:]]` strip. Narrower than
/// Unicode whitespace on purpose, so a non-ASCII space is an error rather than a guess.
fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r')
}

/// Sized up front so a key being copied leaves no stray partial copies behind reallocation.
fn without_spaces(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    out.extend(s.chars().filter(|&c| !is_space(c)));
    out
}

/// wg-quick's test for a name server rather than a search domain: `^[0-9.]+$` or `:`.
pub(super) fn looks_like_dns_server(entry: &str) -> bool {
    entry.contains(':')
        || (!entry.is_empty() && entry.bytes().all(|b| b.is_ascii_digit() || b == b'.'))
}

/// `Address` and `DNS` are split on commas and whitespace, as wg-quick's `${value//,/ }`
/// followed by word splitting does.
fn words(value: &str) -> impl Iterator<Item = &str> {
    value
        .split(|c| c == ',' || is_space(c))
        .filter(|w| !w.is_empty())
}

/// A `[Peer]` section being read; becomes a [`Peer`] once its PublicKey is known.
struct PeerDraft {
    header_line: usize,
    /// With the line it was (last) given on, to point duplicate-peer errors at it.
    public_key: Option<(PublicKey, usize)>,
    preshared_key: Option<PresharedKey>,
    allowed_ips: Vec<IpPrefix>,
    endpoint: Option<Endpoint>,
    persistent_keepalive: Option<u16>,
}

struct Parser<'a> {
    file: &'a str,
    section: Option<Section>,
    interface: Interface,
    peers: Vec<PeerDraft>,
    warnings: Vec<Warning>,
}

pub(super) fn parse(file: &str, text: &str) -> Result<(Config, Vec<Warning>), ConfigError> {
    let mut parser = Parser {
        file,
        section: None,
        interface: Interface::default(),
        peers: Vec::new(),
        warnings: Vec::new(),
    };
    for (index, raw) in text.lines().enumerate() {
        parser.line(index + 1, raw)?;
    }
    parser.finish()
}

impl Parser<'_> {
    fn error(&self, line: usize, subject: impl Into<String>, kind: ErrorKind) -> ConfigError {
        ConfigError::Syntax {
            file: self.file.to_owned(),
            line,
            subject: subject.into(),
            kind,
        }
    }

    fn line(&mut self, line: usize, raw: &str) -> Result<(), ConfigError> {
        let content = raw.split_once('#').map_or(raw, |(before, _)| before);
        let trimmed = content.trim_matches(is_space);
        if trimmed.is_empty() || trimmed.starts_with(';') {
            return Ok(());
        }
        if trimmed.starts_with('[') {
            let header = without_spaces(trimmed);
            self.section = Some(if header.eq_ignore_ascii_case("[Interface]") {
                Section::Interface
            } else if header.eq_ignore_ascii_case("[Peer]") {
                self.peers.push(PeerDraft {
                    header_line: line,
                    public_key: None,
                    preshared_key: None,
                    allowed_ips: Vec::new(),
                    endpoint: None,
                    persistent_keepalive: None,
                });
                Section::Peer
            } else {
                return Err(self.error(line, shown_name(&header), ErrorKind::UnknownSection));
            });
            return Ok(());
        }
        let Some((raw_key, raw_value)) = content.split_once('=') else {
            let first_word = trimmed.split(is_space).next().unwrap_or(trimmed);
            let subject = Key::lookup(first_word)
                .map_or_else(|| shown_name(first_word), |k| k.name().to_owned());
            return Err(self.error(line, subject, ErrorKind::MissingEquals));
        };
        let key = Key::lookup(raw_key);
        let subject = key.map_or_else(
            || shown_name(raw_key.trim_matches(is_space)),
            |k| k.name().to_owned(),
        );
        let Some(section) = self.section else {
            return Err(self.error(line, subject, ErrorKind::OutsideSection));
        };
        let Some(key) = key else {
            return Err(self.error(line, subject, ErrorKind::UnknownKey { section }));
        };
        if key.section() != section {
            let kind = ErrorKind::WrongSection {
                section,
                belongs_in: key.section(),
            };
            return Err(self.error(line, subject, kind));
        }
        // Wiped on drop: for PrivateKey and PresharedKey lines this is the secret itself.
        let value = Zeroizing::new(if key.is_hook() {
            // wg-quick reads hooks from the unstripped line: a `#` inside a hook reaches bash,
            // which treats a trailing one as a comment anyway. `raw` has the same first `=`.
            raw.split_once('=')
                .map_or("", |(_, v)| v)
                .trim_matches(is_space)
                .to_owned()
        } else if key.is_wg_native() {
            without_spaces(raw_value)
        } else {
            raw_value.trim_matches(is_space).to_owned()
        });
        self.set(line, key, &value)
            .map_err(|kind| self.error(line, subject, kind))
    }

    fn set(&mut self, line: usize, key: Key, value: &str) -> Result<(), ErrorKind> {
        if value.is_empty() && key.is_wg_native() {
            return Err(ErrorKind::EmptyValue);
        }
        let iface = &mut self.interface;
        match key {
            Key::PrivateKey => {
                iface.private_key = Some(PrivateKey::from_base64(value).map_err(ErrorKind::Key)?);
            }
            Key::ListenPort => {
                iface.listen_port =
                    Some(decimal(value).ok_or_else(|| number(value, "a port number 0-65535"))?);
            }
            Key::FwMark => iface.fwmark = parse_fwmark(value)?,
            Key::Address => {
                for word in words(value) {
                    iface.addresses.push(prefix(word)?);
                }
            }
            Key::Dns => {
                for word in words(value) {
                    if looks_like_dns_server(word) && word.parse::<IpAddr>().is_err() {
                        return Err(ErrorKind::DnsServer { value: shown(word) });
                    }
                    iface.dns.push(word.to_owned());
                }
            }
            // wg-quick treats an empty MTU or Table as unset, so a later empty line clears.
            Key::Mtu if value.is_empty() => iface.mtu = None,
            Key::Mtu => {
                let mtu = decimal(value).filter(|&m: &u16| m != 0);
                iface.mtu = Some(mtu.ok_or_else(|| number(value, "an MTU 1-65535"))?);
            }
            Key::Table if value.is_empty() => iface.table = None,
            Key::Table => {
                let word = value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
                if !word {
                    return Err(ErrorKind::Table {
                        value: shown(value),
                    });
                }
                iface.table = Some(value.to_owned());
            }
            Key::PreUp => iface.pre_up.push(value.to_owned()),
            Key::PostUp => iface.post_up.push(value.to_owned()),
            Key::PreDown => iface.pre_down.push(value.to_owned()),
            Key::PostDown => iface.post_down.push(value.to_owned()),
            Key::SaveConfig => {
                iface.save_config = if value.eq_ignore_ascii_case("true") {
                    true
                } else if value.eq_ignore_ascii_case("false") {
                    false
                } else {
                    return Err(ErrorKind::Bool {
                        value: shown(value),
                    });
                };
            }
            Key::PublicKey
            | Key::PresharedKey
            | Key::AllowedIps
            | Key::Endpoint
            | Key::PersistentKeepalive => self.set_peer(line, key, value)?,
        }
        Ok(())
    }

    fn set_peer(&mut self, line: usize, key: Key, value: &str) -> Result<(), ErrorKind> {
        let file = self.file;
        // `line` only dispatches Peer keys here once a [Peer] header has pushed a draft.
        let Some(peer) = self.peers.last_mut() else {
            return Err(ErrorKind::OutsideSection);
        };
        match key {
            Key::PublicKey => {
                peer.public_key =
                    Some((PublicKey::from_base64(value).map_err(ErrorKind::Key)?, line));
            }
            Key::PresharedKey => {
                peer.preshared_key =
                    Some(PresharedKey::from_base64(value).map_err(ErrorKind::Key)?);
            }
            Key::AllowedIps => {
                // Only commas separate: `wg` has already deleted the spaces.
                for entry in value.split(',') {
                    let p = prefix(entry)?;
                    if p.has_host_bits() {
                        self.warnings.push(Warning::HostBitsSet {
                            file: file.to_owned(),
                            line,
                            prefix: p,
                        });
                    }
                    peer.allowed_ips.push(p);
                }
            }
            Key::Endpoint => {
                let endpoint = value.parse().map_err(|reason| ErrorKind::Endpoint {
                    value: shown(value),
                    reason,
                })?;
                peer.endpoint = Some(endpoint);
            }
            Key::PersistentKeepalive => {
                peer.persistent_keepalive = if value.eq_ignore_ascii_case("off") {
                    None
                } else {
                    let secs: u16 = decimal(value)
                        .ok_or_else(|| number(value, "off or a keepalive interval 0-65535"))?;
                    (secs != 0).then_some(secs)
                };
            }
            _ => {
                return Err(ErrorKind::UnknownKey {
                    section: Section::Peer,
                })
            }
        }
        Ok(())
    }

    fn finish(self) -> Result<(Config, Vec<Warning>), ConfigError> {
        let mut seen: HashMap<PublicKey, usize> = HashMap::new();
        let mut peers = Vec::with_capacity(self.peers.len());
        for draft in &self.peers {
            let Some((public_key, key_line)) = draft.public_key else {
                let header = Section::Peer.to_string();
                return Err(self.error(draft.header_line, header, ErrorKind::MissingPublicKey));
            };
            if let Some(&first_line) = seen.get(&public_key) {
                let kind = ErrorKind::DuplicatePeer { first_line };
                return Err(self.error(key_line, Key::PublicKey.name(), kind));
            }
            seen.insert(public_key, key_line);
            peers.push(Peer {
                public_key,
                preshared_key: draft.preshared_key.clone(),
                allowed_ips: draft.allowed_ips.clone(),
                endpoint: draft.endpoint.clone(),
                persistent_keepalive: draft.persistent_keepalive,
            });
        }
        let config = Config {
            interface: self.interface,
            peers,
        };
        Ok((config, self.warnings))
    }
}

fn number(value: &str, expected: &'static str) -> ErrorKind {
    ErrorKind::Number {
        value: shown(value),
        expected,
    }
}

fn prefix(entry: &str) -> Result<IpPrefix, ErrorKind> {
    entry.parse().map_err(|reason| ErrorKind::Prefix {
        value: shown(entry),
        reason,
    })
}

/// Decimal digits only, as `wg`'s `strtoul` after its `char_is_digit` check: no sign, no
/// spaces. Too large for `T` is `None` like any other refusal.
fn decimal<T: TryFrom<u64>>(s: &str) -> Option<T> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    T::try_from(s.parse::<u64>().ok()?).ok()
}

/// `wg`'s `parse_fwmark`: `off`, decimal, or hex after a lowercase `0x`. Zero means no mark.
fn parse_fwmark(value: &str) -> Result<Option<u32>, ErrorKind> {
    if value.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    let mark = match value.strip_prefix("0x") {
        Some(hex) if !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
            u32::from_str_radix(hex, 16).ok()
        }
        Some(_) => None,
        None => decimal(value),
    };
    let mark = mark.ok_or_else(|| number(value, "off or a mark 0-0xffffffff"))?;
    Ok((mark != 0).then_some(mark))
}

#[cfg(test)]
#[path = "parse_tests.rs"]
mod tests;
