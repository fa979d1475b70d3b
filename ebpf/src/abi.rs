//! Mirrors `ebpf/c/abi.h`. The test below reads the header and checks that both sides agree.

/// Index 0 of the `config` array map (`struct wgxdp_config`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Config {
    /// WireGuard listen port in network byte order; 0 steers nothing.
    pub listen_port_be: u16,
    pub flags: u16,
    /// Offloaded flows' return packets up to this IP length are steered (host byte order, as
    /// the program compares it); 0 steers none.
    pub flow_mtu: u16,
    pub reserved: u16,
}

impl Config {
    pub fn new(listen_port: u16, flags: u16) -> Self {
        Self {
            listen_port_be: listen_port.to_be(),
            flags,
            flow_mtu: 0,
            reserved: 0,
        }
    }
}

/// Key of the `flows` hash (`struct wgxdp_flow`): an offloaded flow's reply tuple with every
/// field as in the packet (network byte order). An IPv4 address fills the first 4 bytes of its
/// field. For echo messages, `sport_be` is the identifier and `dport_be` the type.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Flow {
    pub saddr: [u8; 16],
    pub daddr: [u8; 16],
    pub sport_be: u16,
    pub dport_be: u16,
    pub proto: u8,
    /// 4 or 6.
    pub family: u8,
    pub pad: [u8; 2],
}

// SAFETY: `Flow` is `repr(C)`, made only of integers and byte arrays with explicit padding
// (16 + 16 + 2 + 2 + 1 + 1 + 2 = 40 bytes, no implicit padding) and every bit pattern is valid.
#[cfg(feature = "aya")]
unsafe impl aya::Pod for Flow {}

pub const MAX_FLOWS: u32 = 1 << 17;

// SAFETY: `Config` is `repr(C)`, made only of integers, has no padding (2 + 2 + 4 bytes) and
// every bit pattern is a valid value, which is what aya's `Pod` requires of map values.
#[cfg(feature = "aya")]
unsafe impl aya::Pod for Config {}

/// One-armed mode (`WGXDP_F_ONE_ARMED`).
pub const F_ONE_ARMED: u16 = 1;
/// Plaintext for peers passes to the kernel unless it is an offloaded flow's
/// (`WGXDP_F_LAN_VIA_KERNEL`).
pub const F_LAN_VIA_KERNEL: u16 = 2;

pub const MAX_QUEUES: u32 = 64;
pub const MAX_PEER_PREFIXES: u32 = 1 << 20;
pub const MAX_LOCAL_ADDRS: u32 = 256;

macro_rules! verdicts {
    ($($name:ident = $c:literal),* $(,)?) => {
        /// Why a program passed or redirected a packet: the index of its per-CPU counter in
        /// the `stats` map (`enum wgxdp_verdict`).
        #[repr(u32)]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Verdict { $($name),* }

        impl Verdict {
            pub const ALL: &'static [Verdict] = &[$(Verdict::$name),*];
            pub const COUNT: usize = Self::ALL.len();

            /// The C enumerator's name.
            pub fn c_name(self) -> &'static str {
                match self { $(Verdict::$name => $c),* }
            }
        }
    };
}

verdicts! {
    WanRedirect = "WAN_REDIRECT",
    WanNoSocket = "WAN_NO_SOCKET",
    WanPassHandshake = "WAN_PASS_HANDSHAKE",
    WanPassNotWg = "WAN_PASS_NOT_WG",
    WanPassShortData = "WAN_PASS_SHORT_DATA",
    WanPassOtherPort = "WAN_PASS_OTHER_PORT",
    WanPassNotUdp = "WAN_PASS_NOT_UDP",
    WanPassFragment = "WAN_PASS_FRAGMENT",
    WanPassNotIp = "WAN_PASS_NOT_IP",
    WanPassMalformed = "WAN_PASS_MALFORMED",
    WanPassUnconfigured = "WAN_PASS_UNCONFIGURED",
    WanPassTransit = "WAN_PASS_TRANSIT",
    LanRedirect = "LAN_REDIRECT",
    LanNoSocket = "LAN_NO_SOCKET",
    LanPassLocal = "LAN_PASS_LOCAL",
    LanPassMulticast = "LAN_PASS_MULTICAST",
    LanPassNd = "LAN_PASS_ND",
    LanPassNoPeer = "LAN_PASS_NO_PEER",
    LanPassNotIp = "LAN_PASS_NOT_IP",
    LanPassMalformed = "LAN_PASS_MALFORMED",
    WanFlowRedirect = "WAN_FLOW_REDIRECT",
    WanFlowNoSocket = "WAN_FLOW_NO_SOCKET",
    LanFlowRedirect = "LAN_FLOW_REDIRECT",
    LanFlowNoSocket = "LAN_FLOW_NO_SOCKET",
    LanPassViaKernel = "LAN_PASS_VIA_KERNEL",
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = include_str!("../c/abi.h");

    /// The enumerators of `enum wgxdp_verdict`, in order, read from the header.
    fn c_verdicts() -> Vec<String> {
        let start = HEADER.find("enum wgxdp_verdict {").expect("enum in abi.h");
        let body = &HEADER[start..HEADER[start..].find("};").unwrap() + start];
        body.lines()
            .skip(1)
            .map(|l| l.split("/*").next().unwrap().trim())
            .filter(|l| !l.is_empty())
            .map(|l| {
                l.trim_end_matches(',')
                    .split('=')
                    .next()
                    .unwrap()
                    .trim()
                    .to_string()
            })
            .filter(|n| n != "WGXDP_VERDICT_MAX")
            .collect()
    }

    #[test]
    fn verdicts_match_the_c_enum() {
        let rust: Vec<&str> = Verdict::ALL.iter().map(|v| v.c_name()).collect();
        assert_eq!(rust, c_verdicts());
        for (i, v) in Verdict::ALL.iter().enumerate() {
            assert_eq!(*v as usize, i);
        }
    }

    #[test]
    fn layouts_and_limits_match_the_header() {
        assert_eq!(std::mem::size_of::<Config>(), 8);
        assert!(HEADER.contains("__u16 listen_port;") && HEADER.contains("__u16 flags;"));
        assert!(HEADER.contains("#define WGXDP_F_ONE_ARMED 1"));
        assert!(HEADER.contains("#define WGXDP_F_LAN_VIA_KERNEL 2"));
        assert_eq!(F_LAN_VIA_KERNEL, 2);
        assert!(HEADER.contains("#define WGXDP_MAX_QUEUES 64"));
        assert!(HEADER.contains("#define WGXDP_MAX_PEER_PREFIXES (1 << 20)"));
        assert!(HEADER.contains("#define WGXDP_MAX_LOCAL_ADDRS 256"));
        assert!(HEADER.contains("#define WGXDP_MAX_FLOWS (1 << 17)"));
        assert_eq!(MAX_FLOWS, 1 << 17);
        assert!(HEADER.contains("__u16 flow_mtu;"));
        assert_eq!(std::mem::size_of::<Flow>(), 40);
        assert_eq!(std::mem::offset_of!(Flow, sport_be), 32);
        assert_eq!(std::mem::offset_of!(Flow, family), 37);
        for field in [
            "__u8 saddr[16];",
            "__u8 daddr[16];",
            "__u16 sport;",
            "__u16 dport;",
            "__u8 proto;",
            "__u8 family;",
            "__u8 pad[2];",
        ] {
            assert!(HEADER.contains(field), "{field}");
        }
        assert_eq!(MAX_PEER_PREFIXES, 1 << 20);
        assert_eq!(
            Config::new(51820, 0).listen_port_be.to_ne_bytes(),
            51820u16.to_be_bytes()
        );
    }
}
