//! Why a configuration was refused, and what was accepted but deserves a warning.
//!
//! Every parse error carries the file, the 1-based line and the key or section it concerns,
//! printed as `file:line: Key: reason` so editors and terminals can jump to it. Values are
//! echoed only where they cannot be secret (addresses, numbers, endpoints); key material never
//! is, and neither is unrecognised text, which might be a pasted key.

use super::{EndpointError, IpPrefix, PrefixError, Section};
use proto::keys::KeyParseError;
use std::fmt;

/// What messages call text that did not come from a named file.
pub const STDIN_NAME: &str = "<stdin>";

/// A configuration that could not be read or was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be opened or read, or is not UTF-8.
    #[error("{file}: {error}")]
    Io { file: String, error: std::io::Error },
    /// A line was refused. `subject` is the key (canonically spelled, e.g. `PublicKey`) or the
    /// section (`[Peer]`) the line concerns.
    #[error("{file}:{line}: {subject}: {kind}")]
    Syntax {
        file: String,
        line: usize,
        subject: String,
        kind: ErrorKind,
    },
}

impl ConfigError {
    /// The 1-based line the error points at, if it concerns a line.
    pub fn line(&self) -> Option<usize> {
        match self {
            ConfigError::Io { .. } => None,
            ConfigError::Syntax { line, .. } => Some(*line),
        }
    }

    pub fn kind(&self) -> Option<&ErrorKind> {
        match self {
            ConfigError::Io { .. } => None,
            ConfigError::Syntax { kind, .. } => Some(kind),
        }
    }
}

/// The reason a line was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    #[error("unknown section; expected [Interface] or [Peer]")]
    UnknownSection,
    #[error("unknown key in {section}")]
    UnknownKey { section: Section },
    #[error("not allowed in {section}; it belongs in {belongs_in}")]
    WrongSection {
        section: Section,
        belongs_in: Section,
    },
    #[error("appears before any [Interface] or [Peer] section")]
    OutsideSection,
    #[error("expected `Key = Value`")]
    MissingEquals,
    /// `wg` refuses an empty value for every key it handles ("Line unrecognized").
    #[error("value is empty")]
    EmptyValue,
    #[error(transparent)]
    Key(KeyParseError),
    #[error("`{value}`: {reason}")]
    Prefix { value: String, reason: PrefixError },
    /// A port, MTU, firewall mark or keepalive interval out of range or not a number.
    #[error("`{value}` is not {expected}")]
    Number {
        value: String,
        expected: &'static str,
    },
    #[error("`{value}`: {reason}")]
    Endpoint {
        value: String,
        reason: EndpointError,
    },
    #[error("`{value}` is neither true nor false")]
    Bool { value: String },
    #[error("`{value}` looks like a name server address but is not an IP address")]
    DnsServer { value: String },
    #[error("`{value}` is not a routing table (off, auto, a number or a table name)")]
    Table { value: String },
    /// Points at the second occurrence; `first_line` is the `PublicKey` line of the first.
    #[error("same public key as the peer at line {first_line}")]
    DuplicatePeer { first_line: usize },
    /// Points at the `[Peer]` header of the section that lacks one.
    #[error("peer has no PublicKey")]
    MissingPublicKey,
}

/// Something accepted that the operator should hear about.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Warning {
    /// The file holds a private or pre-shared key and its mode grants "other" users access.
    WorldAccessible { file: String, mode: u32 },
    /// An `AllowedIPs` entry has bits set past its prefix length; `wg` warns "AllowedIP has
    /// nonzero host part" and the kernel ignores those bits.
    HostBitsSet {
        file: String,
        line: usize,
        prefix: IpPrefix,
    },
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warning::WorldAccessible { file, mode } => write!(
                f,
                "{file}: is world accessible (mode {mode:04o}) but holds secret keys; \
                 chmod o-rwx it"
            ),
            Warning::HostBitsSet { file, line, prefix } => write!(
                f,
                "{file}:{line}: AllowedIPs: {prefix} has nonzero host bits, which are ignored"
            ),
        }
    }
}

/// Shortens a user-supplied (non-secret) value for a message, on a character boundary.
pub(super) fn shown(value: &str) -> String {
    const MAX: usize = 64;
    match value.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}...", &value[..cut]),
        None => value.to_owned(),
    }
}

/// Names unrecognised text in a message only if it looks like a key or section name; anything
/// else (a pasted base64 key, say) is not repeated back.
pub(super) fn shown_name(text: &str) -> String {
    const MAX: usize = 32;
    let plain = text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '[' | ']' | '_' | '-' | '.' | ' '));
    if !text.is_empty() && text.len() <= MAX && plain {
        text.to_owned()
    } else {
        "(unrecognised text)".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_values_are_cut_on_a_char_boundary() {
        assert_eq!(shown("10.0.0.1/33"), "10.0.0.1/33");
        let long = "é".repeat(100);
        let s = shown(&long);
        assert_eq!(s.chars().count(), 64 + 3);
        assert!(s.ends_with("..."));
    }

    #[test]
    fn unrecognised_text_that_might_be_a_key_is_not_echoed() {
        assert_eq!(shown_name("ListenPrt"), "ListenPrt");
        assert_eq!(shown_name("[Peers]"), "[Peers]");
        let key = "qNoBKylRuEUtBuTANIS6rSZoCqG8cFYzEWeS7fx63Vk";
        assert_eq!(shown_name(key), "(unrecognised text)");
        assert_eq!(shown_name("a+b/c"), "(unrecognised text)");
    }

    #[test]
    fn warnings_name_file_and_line() {
        let w = Warning::HostBitsSet {
            file: "wg0.conf".into(),
            line: 12,
            prefix: "10.0.0.1/24".parse().unwrap(),
        };
        assert_eq!(
            w.to_string(),
            "wg0.conf:12: AllowedIPs: 10.0.0.1/24 has nonzero host bits, which are ignored"
        );
        let w = Warning::WorldAccessible {
            file: "/etc/wireguard/wg0.conf".into(),
            mode: 0o644,
        };
        assert!(w
            .to_string()
            .starts_with("/etc/wireguard/wg0.conf: is world accessible (mode 0644)"));
    }
}
