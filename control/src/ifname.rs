//! The gateway's interface name (`wg0`): what `wg` knows it by, and a path component twice
//! over, `/run/wgxdp/<name>/` (the run directory, which `wgxdp down` removes as root) and
//! `/var/run/wireguard/<name>.sock` (the UAPI socket). A name is accepted only as wg-quick
//! accepts it, `[a-zA-Z0-9_=+.-]{1,15}` (15: the kernel's IFNAMSIZ less the NUL), and never
//! `.` or `..`, which match that class but name a directory itself or its parent. Such a
//! name has no `/`, so joined onto a directory it stays a single entry inside it.
//!
//! Every command and control take names through [`InterfaceName::new`] only.

use std::fmt;

/// A valid interface name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InterfaceName(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid interface name {name:?}: {why} (names are 1 to 15 of the characters a-z A-Z 0-9 _ = + . -, and not \".\" or \"..\", as wg-quick takes them)"
)]
pub struct InvalidInterfaceName {
    pub name: String,
    pub why: &'static str,
}

impl InterfaceName {
    /// The longest name: IFNAMSIZ (16) less the terminating NUL.
    pub const MAX_LEN: usize = 15;

    pub fn new(name: &str) -> Result<Self, InvalidInterfaceName> {
        let why = if name.is_empty() {
            "empty"
        } else if name == "." || name == ".." {
            "a directory, not a name"
        } else if let Some(c) = name
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '=' | '+' | '.' | '-')))
        {
            if c == '/' {
                "a path, not a name"
            } else {
                "a character wg-quick does not take"
            }
        } else if name.len() > Self::MAX_LEN {
            "longer than 15 characters"
        } else {
            return Ok(Self(name.to_string()));
        };
        Err(InvalidInterfaceName {
            name: name.to_string(),
            why,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for InterfaceName {
    type Err = InvalidInterfaceName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl fmt::Display for InterfaceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for InterfaceName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl AsRef<std::path::Path> for InterfaceName {
    fn as_ref(&self) -> &std::path::Path {
        self.0.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_as_wg_quick_takes_them() {
        let accepted = [
            "wg0",
            "a",
            "wgxdp",
            "WG_home-1",
            "a=b+c.d-e_f",
            "...",
            ".wg",
            "wg.",
            "-",
            "123456789012345",
        ];
        for n in accepted {
            let name = InterfaceName::new(n).unwrap_or_else(|e| panic!("{n:?}: {e}"));
            assert_eq!(name.as_str(), n);
            assert_eq!(n.parse::<InterfaceName>().as_ref(), Ok(&name));
        }
        let refused = [
            ("", "empty"),
            (".", "a directory, not a name"),
            ("..", "a directory, not a name"),
            ("../x", "a path, not a name"),
            ("../../tmp/x", "a path, not a name"),
            ("/etc", "a path, not a name"),
            ("a/b", "a path, not a name"),
            ("wg0/", "a path, not a name"),
            ("1234567890123456", "longer than 15 characters"),
            ("wg 0", "a character wg-quick does not take"),
            ("wg0\n", "a character wg-quick does not take"),
            ("wg\0", "a character wg-quick does not take"),
            ("wg:0", "a character wg-quick does not take"),
            ("wg*", "a character wg-quick does not take"),
            ("wgé", "a character wg-quick does not take"),
            ("wg٣", "a character wg-quick does not take"),
            ("ｗｇ0", "a character wg-quick does not take"),
        ];
        for (n, why) in refused {
            let e = InterfaceName::new(n).expect_err(n);
            assert_eq!(e.why, why, "{n:?}");
            assert_eq!(e.name, n);
            assert!(e.to_string().contains(&format!("{n:?}")), "{e}");
        }
    }

    #[test]
    fn a_name_stays_one_entry_of_the_directory_it_is_joined_to() {
        let dir = std::path::Path::new("/run/wgxdp");
        for n in ["wg0", "...", "a.b", "-x"] {
            let p = dir.join(InterfaceName::new(n).unwrap());
            assert_eq!(p.parent(), Some(dir), "{n}");
            assert_eq!(p.components().count(), dir.components().count() + 1);
        }
    }
}
