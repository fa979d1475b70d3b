//! Names that cannot collide: between tests of one process, between test processes running in
//! parallel (nextest runs each test in its own process), and with other users of the machine.
//! Each name carries the pid, so a namespace left by a process that died can be recognised as
//! stale and removed (see `netns::sweep_stale`).

use std::sync::atomic::{AtomicU32, Ordering};

/// Prefix of every network namespace the testbed creates.
pub const NETNS_PREFIX: &str = "wgx-";

/// Linux interface names hold at most 15 bytes (IFNAMSIZ minus the NUL).
pub const IFNAMSIZ_MAX: usize = 15;

static COUNTER: AtomicU32 = AtomicU32::new(0);

pub(crate) fn next() -> u32 {
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

/// `wgx-<pid>-<n>-<label>`, the label reduced to `[A-Za-z0-9_-]` and 32 characters.
pub(crate) fn netns(label: &str) -> String {
    netns_owned_by(std::process::id(), label)
}

/// A namespace name whose owner is process `owner`, which may be another process than this
/// one: `testbed-topo` builds namespaces for the shell script that called it and exits, and
/// the script's pid, not its own, says whether the namespaces are still in use. The counter
/// part then carries this process's pid too (`<pid>.<n>`), so that two `testbed-topo` runs
/// for one script cannot pick the same name.
pub(crate) fn netns_owned_by(owner: u32, label: &str) -> String {
    let label: String = label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(32)
        .collect();
    let me = std::process::id();
    if owner == me {
        format!("{NETNS_PREFIX}{owner}-{}-{label}", next())
    } else {
        format!("{NETNS_PREFIX}{owner}-{me}.{}-{label}", next())
    }
}

/// The pid encoded in a testbed namespace name, if `name` is one.
pub(crate) fn netns_owner(name: &str) -> Option<u32> {
    name.strip_prefix(NETNS_PREFIX)?
        .split('-')
        .next()?
        .parse()
        .ok()
}

/// A WireGuard interface name, unique on the machine while this process lives: the UAPI
/// socket `/var/run/wireguard/<ifname>.sock` is shared by all namespaces, so the interface
/// name must be too. `wgx` + pid mod 10^5 (zero-padded, so that pid 5 counter 12 and pid 51
/// counter 2 differ) + counter stays within 15 bytes. Two live pids equal mod 10^5 could still
/// meet; `WireguardGo::start` checks that the socket is free and moves on to the next name.
pub(crate) fn wg_ifname() -> String {
    let name = format!("wgx{:05}{}", std::process::id() % 100_000, next());
    debug_assert!(name.len() <= IFNAMSIZ_MAX, "{name}");
    name
}

/// A veth end name, unique within this process (veths are created inside their namespaces,
/// so names only have to differ between pairs that share a namespace).
pub(crate) fn veth_pair() -> (String, String) {
    let n = next();
    (format!("veth{n}a"), format!("veth{n}b"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netns_names_are_unique_and_sanitised() {
        let a = netns("gw wan/1");
        let b = netns("gw wan/1");
        assert_ne!(a, b);
        assert!(
            a.starts_with(&format!("wgx-{}-", std::process::id())),
            "{a}"
        );
        assert!(a.ends_with("-gw_wan_1"), "{a}");
        assert_eq!(netns_owner(&a), Some(std::process::id()));
        assert_eq!(netns_owner("other-ns"), None);
        assert_eq!(netns_owner("wgx-notapid-1-x"), None);
    }

    #[test]
    fn netns_names_for_another_owner_carry_both_pids() {
        let me = std::process::id();
        let a = netns_owned_by(1, "gw");
        let b = netns_owned_by(1, "gw");
        assert_ne!(a, b);
        assert!(a.starts_with(&format!("wgx-1-{me}.")), "{a}");
        assert_eq!(netns_owner(&a), Some(1));
        assert!(netns_owned_by(me, "gw").starts_with(&format!("wgx-{me}-")));
    }

    #[test]
    fn wg_ifnames_fit_ifnamsiz() {
        for _ in 0..1000 {
            let name = wg_ifname();
            assert!(name.len() <= IFNAMSIZ_MAX, "{name}");
        }
        // Worst case: a five-digit pid remainder and a counter in the millions.
        assert!(format!("wgx{:05}{}", 99_999, 9_999_999).len() <= IFNAMSIZ_MAX);
        assert_eq!(format!("wgx{:05}{}", 5, 12).len(), 10);
    }

    #[test]
    fn veth_names_fit_ifnamsiz() {
        let (a, b) = veth_pair();
        assert_ne!(a, b);
        assert!(format!("veth{}a", u32::MAX).len() <= IFNAMSIZ_MAX);
    }
}
