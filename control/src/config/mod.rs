//! `wg(8)` and `wg-quick(8)` configuration files, read exactly as people write them.
//!
//! The accepted language is the union of what `wg setconf` (wireguard-tools `config.c`) and
//! `wg-quick` (`parse_options` in `wg-quick/linux.bash`) accept, with these rules taken from
//! those two programs:
//!
//! - Sections `[Interface]` and `[Peer]`, section names and keys compared case-insensitively.
//!   `[Interface]` may appear more than once; its keys merge, as in `wg`.
//! - `#` starts a comment that runs to the end of the line, wherever it appears, so
//!   `ListenPort = 51820 # or whatever` is the port 51820. The one exception is the wg-quick
//!   hooks (`PreUp`, `PostUp`, `PreDown`, `PostDown`): current wg-quick keeps their text
//!   verbatim up to the end of the line, `#` included, and hands it to bash, so we do too.
//! - Values of `wg`'s own keys lose all whitespace, as `wg` strips every space from a line
//!   before looking at it (so `Allowed IPs = 10.0.0.1/32, 10.0.0.2/32` works). The keys
//!   wg-quick handles are only trimmed, as wg-quick trims them.
//! - A single-valued key given twice keeps the last value, as both tools overwrite silently.
//!   `Address`, `DNS`, `AllowedIPs` and the hooks add up across lines.
//! - `PersistentKeepalive` and `FwMark` accept `off`; `off` and `0` both mean "none" and are
//!   stored as `None`, because `wg` stores both as 0 and `wg showconf` omits them.
//! - Endpoints are not resolved: a hostname stays a hostname until the configuration is
//!   applied, so parsing needs no network.
//!
//! Where we deliberately differ, it is to refuse sooner or to accept what the fixtures show
//! people write:
//!
//! - A line starting with `;` is a comment. Neither tool accepts this (`wg` says "Line
//!   unrecognized"), but INI habits put such lines in real files. A `;` later in a line is
//!   left alone: it separates shell commands in hooks.
//! - Two peers with the same public key are an error. `wg` passes both to the kernel, which
//!   merges them into one peer, so the second silently rewrites the first.
//! - Ports must be numbers (`wg` would also look up service names such as `domain`), a port 0
//!   endpoint is refused, and `AllowedIPs` does not take `wg set`'s `+`/`-` prefixes.
//! - `MTU` must be 1-65535, `DNS` entries that look like addresses must be addresses, and
//!   `Table` must be one word; wg-quick defers all of these to `ip` or `resolvconf`.
//!
//! Parsing is all-or-nothing: a [`Config`] or a [`ConfigError`] naming the file, the line and
//! the key. Error messages never echo key material.

pub use unapplied::{unapplied, Backend};
mod endpoint;
mod error;
mod parse;
mod prefix;
mod unapplied;
mod write;

#[cfg(test)]
mod fixture_tests;

pub use endpoint::{Endpoint, EndpointError};
pub use error::{ConfigError, ErrorKind, Warning, STDIN_NAME};
pub use prefix::{IpPrefix, PrefixError};

use proto::keys::{PresharedKey, PrivateKey, PublicKey};
use std::fmt;
use std::io::Read as _;
use std::net::IpAddr;
use std::path::Path;
use subtle::ConstantTimeEq as _;
use zeroize::Zeroizing;

/// An entry of a peer's `AllowedIPs`, kept as written: host bits are not cleared here.
pub type AllowedIp = IpPrefix;

/// A whole configuration file: one interface and its peers, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    pub interface: Interface,
    pub peers: Vec<Peer>,
}

/// The `[Interface]` section: `wg`'s keys and the ones wg-quick adds.
#[derive(Debug, Clone, Default)]
pub struct Interface {
    pub private_key: Option<PrivateKey>,
    /// `0` asks the kernel to pick a port, as with `wg`.
    pub listen_port: Option<u16>,
    /// `None` for `off` or `0`.
    pub fwmark: Option<u32>,
    /// wg-quick `Address`: the interface's own addresses, host bits meaningful.
    pub addresses: Vec<IpPrefix>,
    /// wg-quick `DNS`, as written: servers (IP addresses) and search domains interleaved.
    pub dns: Vec<String>,
    pub mtu: Option<u16>,
    /// wg-quick `Table`: `off`, `auto`, a table number or a name from `rt_tables`.
    pub table: Option<String>,
    /// Shell snippets, verbatim (`%i` is expanded by whoever runs them).
    pub pre_up: Vec<String>,
    pub post_up: Vec<String>,
    pub pre_down: Vec<String>,
    pub post_down: Vec<String>,
    pub save_config: bool,
}

/// One `[Peer]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub public_key: PublicKey,
    pub preshared_key: Option<PresharedKey>,
    pub allowed_ips: Vec<AllowedIp>,
    pub endpoint: Option<Endpoint>,
    /// Seconds; `None` for `off` or `0`.
    pub persistent_keepalive: Option<u16>,
}

/// The two kinds of section a file may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Section {
    Interface,
    Peer,
}

impl fmt::Display for Section {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Section::Interface => "[Interface]",
            Section::Peer => "[Peer]",
        })
    }
}

impl Config {
    /// Whether the file carries anything secret: a private key or any pre-shared key.
    pub fn holds_secrets(&self) -> bool {
        self.interface.private_key.is_some() || self.peers.iter().any(|p| p.preshared_key.is_some())
    }
}

impl Interface {
    /// The `DNS` entries wg-quick treats as name servers: all digits and dots, or containing
    /// a colon. Parsing has checked that each is an address.
    pub fn dns_servers(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.dns.iter().filter_map(|d| d.parse().ok())
    }

    /// The `DNS` entries wg-quick treats as search domains.
    pub fn dns_search(&self) -> impl Iterator<Item = &str> + '_ {
        self.dns
            .iter()
            .filter(|d| !parse::looks_like_dns_server(d))
            .map(String::as_str)
    }
}

// Manual because `PrivateKey` deliberately has no `PartialEq`: the comparison must be constant
// time. Destructuring makes a new field a compile error here rather than a silent omission.
impl PartialEq for Interface {
    fn eq(&self, other: &Self) -> bool {
        let Interface {
            private_key,
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
        } = self;
        let keys_equal = match (private_key, &other.private_key) {
            (Some(a), Some(b)) => bool::from(a.as_bytes().ct_eq(b.as_bytes())),
            (None, None) => true,
            _ => false,
        };
        keys_equal
            && *listen_port == other.listen_port
            && *fwmark == other.fwmark
            && *addresses == other.addresses
            && *dns == other.dns
            && *mtu == other.mtu
            && *table == other.table
            && *pre_up == other.pre_up
            && *post_up == other.post_up
            && *pre_down == other.pre_down
            && *post_down == other.post_down
            && *save_config == other.save_config
    }
}
impl Eq for Interface {}

/// Parses configuration text. `name` is what error messages call the source: the path as the
/// user gave it, or [`STDIN_NAME`]. Warnings are dropped; see [`parse_with_warnings`].
pub fn parse(name: &str, text: &str) -> Result<Config, ConfigError> {
    parse::parse(name, text).map(|(config, _)| config)
}

/// Like [`parse`], also returning what `wg` would warn about (AllowedIPs with host bits set).
pub fn parse_with_warnings(name: &str, text: &str) -> Result<(Config, Vec<Warning>), ConfigError> {
    parse::parse(name, text)
}

/// Reads and parses a file. Besides the parse warnings, warns when a file that holds a private
/// or pre-shared key can be read, written or entered by others (`mode & 0o007 != 0`), as
/// wg-quick warns "is world accessible".
///
/// wg-quick warns only when the file's and its directory's modes share an "other" bit, and
/// whatever the file holds; we look at the file alone, since a secret readable through any
/// path is exposed, and stay quiet for files without secrets.
pub fn load(path: impl AsRef<Path>) -> Result<(Config, Vec<Warning>), ConfigError> {
    let path = path.as_ref();
    let file = path.display().to_string();
    let io = |error| ConfigError::Io {
        file: file.clone(),
        error,
    };
    let mut f = std::fs::File::open(path).map_err(io)?;
    // Mode from the open descriptor, so it describes the file we read even if the path is
    // swapped underneath us.
    let meta = f.metadata().map_err(io)?;
    // One allocation sized up front: a growing String would leave copies of the private key
    // in freed memory that `Zeroizing` cannot reach.
    let capacity = usize::try_from(meta.len()).unwrap_or(0).saturating_add(1);
    let mut text = Zeroizing::new(String::with_capacity(capacity));
    f.read_to_string(&mut text).map_err(io)?;
    let (config, mut warnings) = parse::parse(&file, &text)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o007 != 0 && config.holds_secrets() {
            warnings.insert(0, Warning::WorldAccessible { file, mode });
        }
    }
    Ok((config, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_A: &str = "qNoBKylRuEUtBuTANIS6rSZoCqG8cFYzEWeS7fx63Vk=";
    const KEY_B: &str = "Bj7G2pqXZRjrcBTwOWDrkjcy3PzhhJd3cX8QvBTaRDI=";
    const PSK: &str = "Hqc4AxV9dWulI82WFUmP7AnNqwTlaPFn7LOa3uJfFnc=";

    /// A file in the temp directory, removed on drop.
    struct TempFile(std::path::PathBuf);

    impl TempFile {
        fn new(name: &str, text: &str, mode: u32) -> Self {
            use std::os::unix::fs::PermissionsExt as _;
            let path =
                std::env::temp_dir().join(format!("wgxdp-control-{}-{name}", std::process::id()));
            std::fs::write(&path, text).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            Self(path)
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    #[test]
    fn load_warns_when_others_can_read_a_private_key() {
        let text = format!("[Interface]\nPrivateKey = {KEY_A}\n");
        let open = TempFile::new("open.conf", &text, 0o644);
        let (_, warnings) = load(&open.0).unwrap();
        let name = open.0.display().to_string();
        assert_eq!(
            warnings,
            vec![Warning::WorldAccessible {
                file: name.clone(),
                mode: 0o644
            }]
        );
        let msg = warnings[0].to_string();
        assert!(
            msg.contains(&name) && msg.contains("world accessible"),
            "{msg}"
        );

        let closed = TempFile::new("closed.conf", &text, 0o600);
        assert_eq!(load(&closed.0).unwrap().1, vec![]);
        // Group access is a site's choice; wg-quick too looks only at "other".
        let group = TempFile::new("group.conf", &text, 0o640);
        assert_eq!(load(&group.0).unwrap().1, vec![]);
    }

    #[test]
    fn load_warns_for_a_world_readable_psk_but_not_for_public_data() {
        let psk = format!("[Peer]\nPublicKey = {KEY_B}\nPresharedKey = {PSK}\n");
        let f = TempFile::new("psk.conf", &psk, 0o604);
        assert!(matches!(
            load(&f.0).unwrap().1[..],
            [Warning::WorldAccessible { mode: 0o604, .. }]
        ));
        let public = format!("[Peer]\nPublicKey = {KEY_B}\n");
        let f = TempFile::new("public.conf", &public, 0o644);
        assert_eq!(load(&f.0).unwrap().1, vec![]);
    }

    #[test]
    fn load_names_the_file_in_io_and_parse_errors() {
        let missing = std::env::temp_dir().join("wgxdp-control-does-not-exist.conf");
        let e = load(&missing).unwrap_err();
        assert!(matches!(e, ConfigError::Io { .. }));
        assert!(
            e.to_string().starts_with(&missing.display().to_string()),
            "{e}"
        );

        let bad = TempFile::new("bad.conf", "[Interface]\n\nListenPort = x\n", 0o600);
        let e = load(&bad.0).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "{}:3: ListenPort: `x` is not a port number 0-65535",
                bad.0.display()
            )
        );
    }

    #[test]
    fn debug_never_prints_secrets() {
        let text = format!(
            "[Interface]\nPrivateKey = {KEY_A}\n[Peer]\nPublicKey = {KEY_B}\nPresharedKey = {PSK}\n"
        );
        let config = parse("t.conf", &text).unwrap();
        let debug = format!("{config:?} {config:#?}");
        assert!(!debug.contains(KEY_A) && !debug.contains(PSK), "{debug}");
        assert!(!debug.contains(&KEY_A[..20]) && !debug.contains(&PSK[..20]));
        // Public keys are not secret and help when reading a dump.
        assert!(debug.contains(KEY_B));
    }

    #[test]
    fn interface_equality_compares_private_keys() {
        let a = parse("t", &format!("[Interface]\nPrivateKey = {KEY_A}\n")).unwrap();
        let b = parse("t", &format!("[Interface]\nPrivateKey = {KEY_B}\n")).unwrap();
        let none = parse("t", "[Interface]\n").unwrap();
        assert_eq!(a, a.clone());
        assert_ne!(a, b);
        assert_ne!(a, none);
        assert_eq!(none, Config::default());
    }

    #[test]
    fn dns_splits_into_servers_and_search_domains_as_wg_quick_does() {
        let c = parse(
            "t",
            "[Interface]\nDNS = 10.0.0.1, fd00::53, corp.example, 1.1.1.1 home.arpa\n",
        )
        .unwrap();
        let servers: Vec<IpAddr> = c.interface.dns_servers().collect();
        assert_eq!(
            servers,
            ["10.0.0.1", "fd00::53", "1.1.1.1"].map(|s| s.parse::<IpAddr>().unwrap())
        );
        let search: Vec<&str> = c.interface.dns_search().collect();
        assert_eq!(search, ["corp.example", "home.arpa"]);
    }
}
