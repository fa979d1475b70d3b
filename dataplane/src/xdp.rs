//! Loading, attaching and feeding the XDP steering programs of `ebpf/` (aya 0.14).
//!
//! Contract: the control side of the data path owns one [`Steering`]; it writes the maps
//! (listen port, sockets per queue, every peer's allowed IPs, this host's LAN addresses) and
//! the programs read them per packet. Dropping a `Steering` detaches every program it
//! attached: nothing stays on an interface after `wgxdp down` or a failed start.

use aya::maps::lpm_trie::{Key, LpmTrie};
use aya::maps::{Array, HashMap, MapData, PerCpuArray, XskMap};
use aya::programs::{ProgramError, TestRun, TestRunOptions, Xdp, XdpMode};
use aya::Ebpf;
use ebpf::abi::{Config, Flow, Verdict};
use proto::allowedips::Prefix;
use std::net::IpAddr;
use std::os::fd::AsRawFd;

/// The WAN programs' map of offloaded flows' reply tuples.
pub struct FlowMap(HashMap<MapData, Flow, u8>);

impl std::fmt::Debug for FlowMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FlowMap")
    }
}

impl FlowMap {
    pub fn insert(&mut self, key: Flow) -> Result<(), XdpError> {
        let name = ebpf::maps::FLOWS;
        self.0.insert(key, 1, 0).map_err(map_err(name))
    }

    /// Removes `key`; a key that was not there is no error.
    pub fn remove(&mut self, key: &Flow) {
        let _ = self.0.remove(key);
    }

    /// Every key now in the map (to empty it after a resynchronisation).
    pub fn keys(&self) -> Vec<Flow> {
        self.0.keys().filter_map(Result::ok).collect()
    }
}

/// The benchmarks' sink program (not the gateway's): drops every frame at the driver of the
/// interface it is attached to, until dropped.
pub struct SinkDrop {
    _ebpf: Ebpf,
}

impl std::fmt::Debug for SinkDrop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SinkDrop")
    }
}

impl SinkDrop {
    /// Attaches it natively to `interface` (in the calling thread's namespace).
    pub fn attach(interface: &str) -> Result<Self, XdpError> {
        let name = ebpf::SINK_DROP_PROGRAM;
        let mut ebpf = Ebpf::load(ebpf::OBJECT).map_err(|e| XdpError::Load(Box::new(e)))?;
        let xdp = xdp_program(&mut ebpf, name)?;
        xdp.load().map_err(program_err(name))?;
        xdp.attach(interface, XdpMode::Driver)
            .map_err(|e| XdpError::Attach {
                interface: interface.to_string(),
                native: Box::new(e),
                generic: Box::new(ProgramError::NotAttached),
            })?;
        Ok(Self { _ebpf: ebpf })
    }
}

/// Which steering program an interface runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Encrypted side: WireGuard data to our port goes to the workers.
    Wan,
    /// Plaintext side: packets for peers go to the workers.
    Lan,
    /// One interface carries both (cloud egress nodes).
    OneArmed,
}

impl Role {
    fn program(self) -> &'static str {
        match self {
            Role::Wan => ebpf::WAN_PROGRAM,
            Role::Lan => ebpf::LAN_PROGRAM,
            Role::OneArmed => ebpf::ONE_ARMED_PROGRAM,
        }
    }
}

/// How a program ended up attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachMode {
    /// In the driver (veth, and NICs with XDP support): the fast path.
    Native,
    /// In the kernel's generic hook, after the skb is built: works everywhere, slowly.
    Generic,
}

#[derive(Debug, thiserror::Error)]
pub enum XdpError {
    #[error("loading the BPF object: {0}")]
    Load(Box<aya::EbpfError>),
    #[error("BPF program {name}: {source}")]
    Program {
        name: &'static str,
        source: Box<ProgramError>,
    },
    #[error("attaching XDP to {interface}: native mode failed ({native}); generic mode failed ({generic})")]
    Attach {
        interface: String,
        native: Box<ProgramError>,
        generic: Box<ProgramError>,
    },
    #[error("BPF map {name}: {source}")]
    Map {
        name: &'static str,
        source: aya::maps::MapError,
    },
    #[error("BPF map {0} is missing from the object")]
    MissingMap(&'static str),
}

fn program_err(name: &'static str) -> impl Fn(ProgramError) -> XdpError {
    move |source| XdpError::Program {
        name,
        source: Box::new(source),
    }
}

fn map_err(name: &'static str) -> impl Fn(aya::maps::MapError) -> XdpError {
    move |source| XdpError::Map { name, source }
}

/// Program `name` of the object, as an XDP program.
fn xdp_program<'e>(ebpf: &'e mut Ebpf, name: &'static str) -> Result<&'e mut Xdp, XdpError> {
    let program = ebpf.program_mut(name).ok_or(XdpError::Program {
        name,
        source: Box::new(ProgramError::NotLoaded),
    })?;
    program.try_into().map_err(program_err(name))
}

/// The loaded programs and their maps.
#[derive(Debug)]
pub struct Steering {
    ebpf: Ebpf,
    /// What the `config` map holds (written whole on every change).
    config: Config,
}

impl Steering {
    /// Loads and verifies all three programs and sets the WireGuard listen port.
    pub fn load(listen_port: u16) -> Result<Self, XdpError> {
        let mut ebpf = Ebpf::load(ebpf::OBJECT).map_err(|e| XdpError::Load(Box::new(e)))?;
        for name in [
            ebpf::WAN_PROGRAM,
            ebpf::LAN_PROGRAM,
            ebpf::ONE_ARMED_PROGRAM,
        ] {
            xdp_program(&mut ebpf, name)?
                .load()
                .map_err(program_err(name))?;
        }
        let mut steering = Self {
            ebpf,
            config: Config::new(listen_port, 0),
        };
        steering.set_listen_port(listen_port)?;
        Ok(steering)
    }

    fn map_mut(&mut self, name: &'static str) -> Result<&mut aya::maps::Map, XdpError> {
        self.ebpf.map_mut(name).ok_or(XdpError::MissingMap(name))
    }

    fn xdp_mut(&mut self, role: Role) -> Result<&mut Xdp, XdpError> {
        xdp_program(&mut self.ebpf, role.program())
    }

    /// Sets the UDP port whose WireGuard data messages are steered (0: none).
    pub fn set_listen_port(&mut self, port: u16) -> Result<(), XdpError> {
        self.config.listen_port_be = port.to_be();
        self.write_config()
    }

    /// Steers offloaded flows' return packets of up to `mtu` bytes (0: none).
    pub fn set_flow_mtu(&mut self, mtu: u16) -> Result<(), XdpError> {
        self.config.flow_mtu = mtu;
        self.write_config()
    }

    /// Plaintext for peers passes to the kernel (unless it is an offloaded flow's): the
    /// kernel translates LAN traffic, so its connection tracking must see it.
    pub fn set_lan_via_kernel(&mut self) -> Result<(), XdpError> {
        self.config.flags |= ebpf::abi::F_LAN_VIA_KERNEL;
        self.write_config()
    }

    fn write_config(&mut self) -> Result<(), XdpError> {
        let name = ebpf::maps::CONFIG;
        let value = self.config;
        let mut config: Array<&mut MapData, Config> =
            Array::try_from(self.map_mut(name)?).map_err(map_err(name))?;
        config.set(0, value, 0).map_err(map_err(name))
    }

    /// The offloaded flows' reply tuples, for the offload thread to own (the programs keep
    /// reading the map; it lives as long as they do).
    pub fn take_flow_map(&mut self) -> Result<FlowMap, XdpError> {
        let name = ebpf::maps::FLOWS;
        let map = self.ebpf.take_map(name).ok_or(XdpError::MissingMap(name))?;
        Ok(FlowMap(HashMap::try_from(map).map_err(map_err(name))?))
    }

    /// Attaches `role`'s program to `interface`: native mode if the driver supports it,
    /// otherwise generic, and says which. The program stays attached until `self` drops.
    pub fn attach(&mut self, role: Role, interface: &str) -> Result<AttachMode, XdpError> {
        let xdp = self.xdp_mut(role)?;
        let native = match xdp.attach(interface, XdpMode::Driver) {
            Ok(_) => return Ok(AttachMode::Native),
            Err(e) => e,
        };
        match xdp.attach(interface, XdpMode::Skb) {
            Ok(_) => Ok(AttachMode::Generic),
            Err(generic) => Err(XdpError::Attach {
                interface: interface.to_string(),
                native: Box::new(native),
                generic: Box::new(generic),
            }),
        }
    }

    /// Binds the AF_XDP socket `fd` to receive queue `queue` of `role`'s side. In one-armed
    /// mode the same socket serves both maps.
    pub fn set_socket(
        &mut self,
        role: Role,
        queue: u32,
        fd: impl AsRawFd + Copy,
    ) -> Result<(), XdpError> {
        let names: &[&'static str] = match role {
            Role::Wan => &[ebpf::maps::XSKS_WAN],
            Role::Lan => &[ebpf::maps::XSKS_LAN],
            Role::OneArmed => &[ebpf::maps::XSKS_WAN, ebpf::maps::XSKS_LAN],
        };
        for &name in names {
            let mut map: XskMap<&mut MapData> =
                XskMap::try_from(self.map_mut(name)?).map_err(map_err(name))?;
            map.set(queue, fd, 0).map_err(map_err(name))?;
        }
        Ok(())
    }

    /// Runs `f` on the peer-prefix trie of `N`-byte addresses (4: IPv4, 16: IPv6).
    fn with_trie<const N: usize>(
        &mut self,
        f: impl FnOnce(&mut LpmTrie<&mut MapData, [u8; N], u32>) -> Result<(), aya::maps::MapError>,
    ) -> Result<(), XdpError> {
        let name = if N == 4 {
            ebpf::maps::PEER_V4
        } else {
            ebpf::maps::PEER_V6
        };
        let mut trie = LpmTrie::try_from(self.map_mut(name)?).map_err(map_err(name))?;
        f(&mut trie).map_err(map_err(name))
    }

    /// Steers LAN traffic to `prefix` to the workers (`peer` is informational).
    pub fn insert_peer_prefix(&mut self, prefix: Prefix, peer: u32) -> Result<(), XdpError> {
        let len = u32::from(prefix.len());
        match prefix.addr() {
            IpAddr::V4(a) => self.with_trie(|t| t.insert(&Key::new(len, a.octets()), peer, 0)),
            IpAddr::V6(a) => self.with_trie(|t| t.insert(&Key::new(len, a.octets()), peer, 0)),
        }
    }

    /// Steers no LAN traffic to the workers any more (control sends every prefix again next).
    pub fn clear_peer_prefixes(&mut self) -> Result<(), XdpError> {
        fn clear<const N: usize>(
            t: &mut LpmTrie<&mut MapData, [u8; N], u32>,
        ) -> Result<(), aya::maps::MapError> {
            // Collected first: deleting while walking with get_next_key may skip keys.
            let keys: Vec<Key<[u8; N]>> = t.keys().collect::<Result<_, _>>()?;
            for k in &keys {
                t.remove(k)?;
            }
            Ok(())
        }
        self.with_trie::<4>(clear)?;
        self.with_trie::<16>(clear)
    }

    pub fn remove_peer_prefix(&mut self, prefix: Prefix) -> Result<(), XdpError> {
        let len = u32::from(prefix.len());
        match prefix.addr() {
            IpAddr::V4(a) => self.with_trie(|t| t.remove(&Key::new(len, a.octets()))),
            IpAddr::V6(a) => self.with_trie(|t| t.remove(&Key::new(len, a.octets()))),
        }
    }

    /// Marks `addr` as this host's: LAN traffic to it always goes to the kernel, and WireGuard
    /// data is steered only when addressed to one of these.
    pub fn add_local_addr(&mut self, addr: IpAddr) -> Result<(), XdpError> {
        match addr {
            IpAddr::V4(a) => {
                let name = ebpf::maps::LOCAL_V4;
                // The program compares the address as it sits in the packet.
                let mut map: HashMap<&mut MapData, u32, u8> =
                    HashMap::try_from(self.map_mut(name)?).map_err(map_err(name))?;
                map.insert(u32::from_ne_bytes(a.octets()), 1, 0)
                    .map_err(map_err(name))
            }
            IpAddr::V6(a) => {
                let name = ebpf::maps::LOCAL_V6;
                let mut map: HashMap<&mut MapData, [u8; 16], u8> =
                    HashMap::try_from(self.map_mut(name)?).map_err(map_err(name))?;
                map.insert(a.octets(), 1, 0).map_err(map_err(name))
            }
        }
    }

    /// Forgets `addr` as this host's (it was removed from its interface).
    pub fn remove_local_addr(&mut self, addr: IpAddr) -> Result<(), XdpError> {
        match addr {
            IpAddr::V4(a) => {
                let name = ebpf::maps::LOCAL_V4;
                let mut map: HashMap<&mut MapData, u32, u8> =
                    HashMap::try_from(self.map_mut(name)?).map_err(map_err(name))?;
                map.remove(&u32::from_ne_bytes(a.octets()))
                    .map_err(map_err(name))
            }
            IpAddr::V6(a) => {
                let name = ebpf::maps::LOCAL_V6;
                let mut map: HashMap<&mut MapData, [u8; 16], u8> =
                    HashMap::try_from(self.map_mut(name)?).map_err(map_err(name))?;
                map.remove(&a.octets()).map_err(map_err(name))
            }
        }
    }

    /// Every verdict's counter summed over the CPUs.
    pub fn stats(&self) -> Result<[u64; Verdict::COUNT], XdpError> {
        let name = ebpf::maps::STATS;
        let map = self.ebpf.map(name).ok_or(XdpError::MissingMap(name))?;
        let stats: PerCpuArray<&MapData, u64> =
            PerCpuArray::try_from(map).map_err(map_err(name))?;
        let mut out = [0u64; Verdict::COUNT];
        for (i, slot) in out.iter_mut().enumerate() {
            let index = u32::try_from(i).unwrap_or(u32::MAX);
            *slot = stats.get(&index, 0).map_err(map_err(name))?.iter().sum();
        }
        Ok(out)
    }

    /// Runs `role`'s program once on `frame` with BPF_PROG_TEST_RUN and returns the XDP action
    /// (`XDP_PASS` = 2, `XDP_REDIRECT` = 4). Counters move as for a real packet.
    pub fn test_run(&mut self, role: Role, frame: &[u8]) -> Result<u32, XdpError> {
        let name = role.program();
        let xdp = self.xdp_mut(role)?;
        let opts = TestRunOptions {
            data_in: Some(frame),
            ..TestRunOptions::new()
        };
        xdp.test_run(opts)
            .map(|r| r.return_value)
            .map_err(program_err(name))
    }
}

/// XDP actions, as the programs return them.
/// XDP_DROP, as `test_run` returns it.
pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;
pub const XDP_REDIRECT: u32 = 4;
