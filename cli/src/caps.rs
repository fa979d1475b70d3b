//! The capabilities `up` needs, checked in the effective set (`CapEff` in /proc/self/status),
//! so that the gateway runs as root or as any process given just these (a systemd unit's
//! `CapabilityBoundingSet=`), and says which one is missing instead of failing half-way.
//!
//! What each is for (capabilities(7), and the kernel's checks named):
//! - CAP_NET_ADMIN: attaching XDP programs (netlink), creating the TUN device, `ip address`,
//!   routes and forwarding sysctls; XSKMAP and DEVMAP maps (`bpf_net_capable`).
//! - CAP_BPF: loading the XDP programs and creating maps (kernels from 5.8; before that
//!   CAP_SYS_ADMIN, which is accepted instead).
//! - CAP_PERFMON: the verifier refuses our programs' packet-pointer arithmetic without it
//!   ("pointer arithmetic with it prohibited for !root": `bpf_allow_ptr_leaks`, the Spectre
//!   v1 checks; kernels from 5.8, CAP_SYS_ADMIN before).
//! - CAP_NET_RAW: AF_XDP sockets (`xsk_create`).
//!
//! CAP_SYS_ADMIN is not needed on 5.8+ (tested: cli/tests/service.rs). The UMEM is charged to RLIMIT_MEMLOCK unless the
//! process has CAP_IPC_LOCK: the systemd unit raises the limit (`LimitMEMLOCK=infinity`)
//! rather than grant that.

/// A capability's number (linux/capability.h) and name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cap(pub u8, pub &'static str);

pub const NET_ADMIN: Cap = Cap(12, "CAP_NET_ADMIN");
pub const NET_RAW: Cap = Cap(13, "CAP_NET_RAW");
pub const SYS_ADMIN: Cap = Cap(21, "CAP_SYS_ADMIN");
pub const PERFMON: Cap = Cap(38, "CAP_PERFMON");
pub const BPF: Cap = Cap(39, "CAP_BPF");

/// What the fallback backend (UDP socket and TUN) needs.
pub const FALLBACK: &[Cap] = &[NET_ADMIN];
/// What the XDP data path needs.
pub const XDP: &[Cap] = &[NET_ADMIN, BPF, PERFMON, NET_RAW];

/// The effective set, from the text of /proc/self/status.
pub fn effective_from_status(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
}

/// This process's effective capabilities (none if /proc cannot be read).
pub fn effective() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| effective_from_status(&s))
        .unwrap_or(0)
}

/// Which of `wanted` the set `eff` lacks (CAP_SYS_ADMIN stands in for CAP_BPF and
/// CAP_PERFMON, as on kernels older than 5.8).
pub fn missing(eff: u64, wanted: &[Cap]) -> Vec<Cap> {
    let has = |c: Cap| eff & (1u64 << c.0) != 0;
    wanted
        .iter()
        .copied()
        .filter(|&c| !(has(c) || ((c == BPF || c == PERFMON) && has(SYS_ADMIN))))
        .collect()
}

/// "CAP_BPF and CAP_NET_RAW".
pub fn names(caps: &[Cap]) -> String {
    let n: Vec<&str> = caps.iter().map(|c| c.1).collect();
    match n.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => n.join(""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_effective_set_is_read_from_status() {
        let status = "Name:\twgxdp\nCapInh:\t0000000000000000\nCapPrm:\t000001ffffffffff\n\
                      CapEff:\t000000c000003000\nCapBnd:\t000001ffffffffff\n";
        let eff = effective_from_status(status).unwrap();
        assert_eq!(eff, (1 << 39) | (1 << 38) | (1 << 13) | (1 << 12));
        assert!(missing(eff, XDP).is_empty());
        assert_eq!(effective_from_status("Name:\tx\n"), None);
    }

    #[test]
    fn the_missing_ones_are_named() {
        let only_net_admin = 1 << 12;
        assert_eq!(missing(only_net_admin, XDP), [BPF, PERFMON, NET_RAW]);
        assert_eq!(
            names(&missing(only_net_admin, XDP)),
            "CAP_BPF, CAP_PERFMON and CAP_NET_RAW"
        );
        assert_eq!(
            names(&missing(0, XDP)),
            "CAP_NET_ADMIN, CAP_BPF, CAP_PERFMON and CAP_NET_RAW"
        );
        assert!(missing(only_net_admin, FALLBACK).is_empty());
        // Before 5.8 there is no CAP_BPF: CAP_SYS_ADMIN loads programs.
        assert!(missing((1 << 12) | (1 << 13) | (1 << 21), XDP).is_empty());
    }

    #[test]
    fn this_process_has_a_set() {
        // Root in CI has them all; any process has a CapEff line.
        let s = std::fs::read_to_string("/proc/self/status").unwrap();
        assert!(effective_from_status(&s).is_some());
    }
}
