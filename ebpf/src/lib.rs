//! The XDP programs and what they share with userspace.
//!
//! The programs are C (`ebpf/c/wgxdp.bpf.c`), compiled by `ebpf/build.sh` with clang into
//! `ebpf/wgxdp.bpf.o`, which is committed and embedded here, so `cargo build` needs no clang.
//! CI runs `ebpf/build.sh --check` to fail when the committed object is stale.

pub mod abi;

/// Alignment wrapper: ELF parsing wants the object 8-byte aligned, `include_bytes!` promises 1.
#[repr(C, align(8))]
struct Aligned<const N: usize>([u8; N]);

const OBJECT_LEN: usize = include_bytes!("../wgxdp.bpf.o").len();
static ALIGNED: Aligned<OBJECT_LEN> = Aligned(*include_bytes!("../wgxdp.bpf.o"));

/// The compiled BPF object holding `wan_steer`, `lan_steer` and `onearm_steer`.
pub static OBJECT: &[u8] = &ALIGNED.0;

/// Program names in the object.
pub const WAN_PROGRAM: &str = "wan_steer";
pub const LAN_PROGRAM: &str = "lan_steer";
pub const ONE_ARMED_PROGRAM: &str = "onearm_steer";
/// The benchmarks' sink: drops everything (not loaded by the gateway).
pub const SINK_DROP_PROGRAM: &str = "sink_drop";

/// Map names in the object.
pub mod maps {
    pub const CONFIG: &str = "config";
    pub const STATS: &str = "stats";
    pub const XSKS_WAN: &str = "xsks_wan";
    pub const XSKS_LAN: &str = "xsks_lan";
    pub const PEER_V4: &str = "peer_v4";
    pub const PEER_V6: &str = "peer_v6";
    pub const LOCAL_V4: &str = "local_v4";
    pub const LOCAL_V6: &str = "local_v6";
    pub const FLOWS: &str = "flows";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_is_an_aligned_bpf_elf() {
        assert_eq!(&OBJECT[..4], b"\x7fELF");
        assert_eq!(OBJECT.as_ptr() as usize % 8, 0);
        // e_machine at offset 18: EM_BPF = 247.
        assert_eq!(u16::from_le_bytes([OBJECT[18], OBJECT[19]]), 247);
        for name in [
            WAN_PROGRAM,
            LAN_PROGRAM,
            ONE_ARMED_PROGRAM,
            maps::PEER_V6,
            maps::XSKS_LAN,
            maps::FLOWS,
        ] {
            // Whole names (NUL on both sides in the string table): "flows" must not be found
            // inside a stale object's "flows_v4".
            let whole = format!("\0{name}\0");
            assert!(
                OBJECT.windows(whole.len()).any(|w| w == whole.as_bytes()),
                "{name} missing"
            );
        }
    }
}
