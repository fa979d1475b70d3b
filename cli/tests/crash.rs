//! Control killed in the middle of publishing a large allowed-IPs list (security review, long
//! run 2): `kill -9` lands while control rewrites the 100k-entry list under the table-wide
//! seqlock, again and again, each time in a new control process that attached to what the
//! previous one left; then one runs to the end. No reader ever takes a half-written list or
//! record, and the list the last one leaves is exactly the configuration's.
//!
//! No namespaces, no data path: `wgxdp control` on a region file and a port of its own, read
//! from here as a worker reads it. Runs unprivileged.

use contract::layout::{decode_prefix, PeerRecord};
use contract::Region;
use proto::keys::{PrivateKey, PublicKey};
use rand_core::OsRng;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_wgxdp");
const PEERS: usize = 1000;
const PREFIXES: usize = 100_000;
/// Of which IPv4 /32s (in 198.18.0.0/15); the rest are IPv6 /64s (in 2001:2::/48).
const V4: usize = 80_000;
/// Control processes killed: every third after it has come up (a whole list of the other
/// configuration for the reader), the others inside their publication if the kill lands there.
const ROUNDS: usize = 9;

/// Prefix `j` of the configurations, as (address, length).
fn prefix(j: usize) -> (IpAddr, u8) {
    if j < V4 {
        let a = u32::from(Ipv4Addr::new(198, 18, 0, 0)) + j as u32;
        (Ipv4Addr::from(a).into(), 32)
    } else {
        let a = Ipv6Addr::new(0x2001, 2, 0, (j - V4) as u16, 0, 0, 0, 0);
        (a.into(), 64)
    }
}

/// Who owns prefix `j` in configuration `variant`: every 1000th prefix in one, runs of 100 in
/// the other. The two group the prefixes differently, so a list is told for one or the other
/// whatever slots the peers have, and a list half of one and half of the other is neither.
/// Prefix 0 has a different owner in each (a new publication rewrites the first entry).
fn owner(variant: usize, j: usize) -> usize {
    match variant {
        0 => j % PEERS,
        _ => (j / (PREFIXES / PEERS) + 1) % PEERS,
    }
}

fn config(gw: &PrivateKey, peers: &[PublicKey], variant: usize) -> String {
    let mut allowed: Vec<Vec<String>> = vec![Vec::new(); PEERS];
    for j in 0..PREFIXES {
        let (a, l) = prefix(j);
        allowed[owner(variant, j)].push(format!("{a}/{l}"));
    }
    let mut text = format!(
        "[Interface]\nPrivateKey = {}\nListenPort = 0\n",
        gw.to_base64()
    );
    for (p, a) in peers.iter().zip(allowed) {
        text.push_str(&format!(
            "\n[Peer]\nPublicKey = {}\nAllowedIPs = {}\n",
            p.to_base64(),
            a.join(", ")
        ));
    }
    text
}

fn key_tag(k: &PublicKey) -> u64 {
    u64::from_le_bytes(k.as_bytes()[..8].try_into().unwrap())
}

/// Removes the test's directory (region, configurations, logs) however the test ends.
struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A control process, killed when dropped.
struct Control(Child);

impl Drop for Control {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(region: &Path, conf: &Path, log: &Path) -> Control {
    let log = std::fs::File::create(log).unwrap();
    Control(
        Command::new(BIN)
            .args(["control", "--workers", "1", "--region"])
            .arg(region)
            .arg(conf)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    )
}

/// The list as a worker takes it: `None` while it is being written (or was left torn);
/// otherwise (prefix, peer slot) per entry.
fn read_list(r: &Region) -> Option<Vec<(IpAddr, u8, u32)>> {
    let mut buf = Vec::new();
    r.read_prefixes(&mut buf)?;
    Some(
        buf.iter()
            .map(|e| decode_prefix(e).expect("an entry of a whole list decodes"))
            .collect(),
    )
}

/// Prefix -> its number `j`.
type Index = HashMap<(IpAddr, u8), usize>;

/// Whether `list` is one configuration's whole list: every prefix once, and for one of the
/// variants one slot per owner, the same for all of that owner's prefixes.
fn whole_variant(index: &Index, list: &[(IpAddr, u8, u32)]) -> Option<usize> {
    if list.len() != PREFIXES {
        return None;
    }
    (0..2).find(|&variant| {
        let mut slot_of: HashMap<usize, u32> = HashMap::new();
        let mut seen = vec![false; PREFIXES];
        list.iter().all(|&(a, l, slot)| {
            let Some(&j) = index.get(&(a, l)) else {
                return false;
            };
            !std::mem::replace(&mut seen[j], true)
                && *slot_of.entry(owner(variant, j)).or_insert(slot) == slot
        }) && slot_of.values().collect::<BTreeSet<_>>().len() == PEERS
    })
}

/// Every peer record a worker can read is whole: either unreadable (torn, refused) or one
/// that decodes to no peer or a configured one. Returns the readable valid ones by key tag.
fn peer_records(r: &Region, tags: &BTreeSet<u64>) -> (BTreeMap<u64, u32>, usize) {
    let mut valid = BTreeMap::new();
    let mut torn = 0;
    for (slot, p) in r.peers().iter().enumerate() {
        match p.record.read() {
            None => {
                assert!(p.record.is_torn(), "slot {slot}: unreadable but not torn");
                torn += 1;
            }
            Some(w) => {
                let rec = PeerRecord::decode(&w);
                if rec.valid {
                    assert!(
                        tags.contains(&rec.key_tag),
                        "slot {slot}: a record of nobody configured {rec:?}"
                    );
                    assert!(
                        valid.insert(rec.key_tag, slot as u32).is_none(),
                        "two records for one peer"
                    );
                }
            }
        }
    }
    (valid, torn)
}

/// Waits until control has come up (its configuration published) or `deadline`.
fn wait_listening(c: &mut Control, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !std::fs::read_to_string(log)
        .unwrap_or_default()
        .contains("listening")
    {
        assert!(
            c.0.try_wait().unwrap().is_none(),
            "control exited: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        assert!(Instant::now() < deadline, "control never came up");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn sigkill(c: &mut Control) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(c.0.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let _ = c.0.wait();
}

/// A gateway running configuration 0 (1000 peers, 100k allowed IPs) loses its control
/// process to `kill -9` in the middle of republishing the list, ROUNDS times over, each time
/// in a new process that attached to the torn region and was publishing the other
/// configuration; then a last one runs to the end. Meanwhile a reader, as a worker would,
/// copies the list again and again: every copy it gets is one configuration's whole list,
/// never a mix. After each kill, a torn list is refused and peer records are whole. At the
/// end nothing is torn, and the list routes each configured prefix to its configured peer.
#[test]
fn kill_control_inside_a_100k_prefix_publish_then_restart() {
    let dir = Dir(std::env::temp_dir().join(format!("wgxdp-crash-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir.0);
    std::fs::create_dir_all(&dir.0).unwrap();
    let region_path = dir.0.join("region");
    let gw = PrivateKey::generate(&mut OsRng);
    let peers: Vec<PublicKey> = (0..PEERS)
        .map(|_| PrivateKey::generate(&mut OsRng).public_key())
        .collect();
    let tags: BTreeSet<u64> = peers.iter().map(key_tag).collect();
    assert_eq!(tags.len(), PEERS);
    let index: Index = (0..PREFIXES).map(|j| (prefix(j), j)).collect();
    let confs: Vec<PathBuf> = (0..2)
        .map(|v| {
            let p = dir.0.join(format!("v{v}.conf"));
            std::fs::write(&p, config(&gw, &peers, v)).unwrap();
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
            p
        })
        .collect();

    // The running gateway: configuration 0, published whole.
    let log = dir.0.join("control-first.log");
    let mut c = start(&region_path, &confs[0], &log);
    wait_listening(&mut c, &log);
    sigkill(&mut c);
    let r = Region::attach(&region_path).unwrap();
    let list = read_list(&r).expect("a whole list");
    assert_eq!(whole_variant(&index, &list), Some(0));

    let stop = AtomicBool::new(false);
    let (landed, took, reads) = std::thread::scope(|s| {
        // The worker's view, all along.
        let reader = s.spawn(|| {
            let r = Region::attach(&region_path).unwrap();
            let (mut whole, mut refused) = ([0u32; 2], 0u32);
            while !stop.load(Ordering::Relaxed) {
                match read_list(&r) {
                    None => {
                        refused += 1;
                        std::thread::sleep(Duration::from_micros(200));
                    }
                    Some(list) => {
                        let v = whole_variant(&index, &list).unwrap_or_else(|| {
                            panic!("a reader took a list that is no configuration's whole list")
                        });
                        whole[v] += 1;
                    }
                }
            }
            (whole, refused)
        });
        let mut landed = 0;
        let mut took = Vec::new();
        for round in 1..=ROUNDS {
            let variant = round % 2;
            let log = dir.0.join(format!("control{round}.log"));
            // The publication has begun when the sequence turns odd or, if the previous
            // process left it odd, when the first entry changes (prefix 0, whose owner
            // differs between the variants; peeked at through the file, since the seqlock
            // refuses a torn list). Kill at once.
            let h = r.header();
            let seq0 = h.prefixes_seq.load(Ordering::Acquire);
            let file = std::fs::File::open(&region_path).unwrap();
            let entry0 = || {
                use std::os::unix::fs::FileExt as _;
                let mut w = [0u8; 24];
                file.read_exact_at(&mut w, r.layout().prefixes_offset() as u64)
                    .unwrap();
                w
            };
            let entry0_before = entry0();
            let started = Instant::now();
            let mut c = start(&region_path, &confs[variant], &log);
            if round % 3 == 0 {
                wait_listening(&mut c, &log);
                sigkill(&mut c);
                let list = read_list(&r).expect("a whole list once control is up");
                assert_eq!(whole_variant(&index, &list), Some(variant));
                continue;
            }
            loop {
                let seq = h.prefixes_seq.load(Ordering::Acquire);
                if seq != seq0 || (seq & 1 == 1 && entry0() != entry0_before) {
                    break;
                }
                assert!(
                    started.elapsed() < Duration::from_secs(120),
                    "control never published: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            sigkill(&mut c);
            took.push(started.elapsed());
            let inside = h.prefixes_seq.load(Ordering::Acquire) & 1 == 1;
            landed += usize::from(inside);
            // What a worker would take now: nothing while torn, else a whole list.
            match read_list(&r) {
                None => assert!(inside, "round {round}: an even list that cannot be read"),
                Some(list) => assert!(
                    !inside && whole_variant(&index, &list).is_some(),
                    "round {round}: a list that is not a whole configuration's was read"
                ),
            }
            peer_records(&r, &tags);
        }
        stop.store(true, Ordering::Relaxed);
        (landed, took, reader.join().unwrap())
    });

    // The last restart runs to the end: it repairs what was left and republishes.
    let variant = (ROUNDS + 1) % 2;
    let log = dir.0.join("control-last.log");
    let mut c = start(&region_path, &confs[variant], &log);
    wait_listening(&mut c, &log);
    let list = read_list(&r).expect("the republished list is whole");
    assert_eq!(whole_variant(&index, &list), Some(variant));
    let (valid, torn) = peer_records(&r, &tags);
    assert_eq!(torn, 0, "nothing torn is left");
    assert_eq!(valid.len(), PEERS, "every configured peer has its record");
    // Routing: each prefix goes to the slot whose record carries its configured owner's key.
    let owner_at: HashMap<u32, u64> = valid.iter().map(|(&t, &s)| (s, t)).collect();
    let got: BTreeSet<(IpAddr, u8, u64)> = list
        .iter()
        .map(|&(a, l, s)| (a, l, *owner_at.get(&s).expect("a prefix's slot has a peer")))
        .collect();
    let want: BTreeSet<(IpAddr, u8, u64)> = (0..PREFIXES)
        .map(|j| {
            let (a, l) = prefix(j);
            (a, l, key_tag(&peers[owner(variant, j)]))
        })
        .collect();
    assert!(got == want, "the list is the configuration's");
    eprintln!(
        "{landed} of {} kills landed inside the publication; they took {took:.0?} from the \
         start; the reader got {:?} whole lists of each configuration and was refused {} times; {}",
        took.len(),
        reads.0,
        reads.1,
        std::fs::read_to_string(&log).unwrap_or_default().trim()
    );
    assert!(landed >= took.len() / 2, "most kills landed inside");
    assert!(
        reads.0.iter().all(|&n| n > 0) && reads.1 > 0,
        "the reader took both configurations' lists and was refused torn ones"
    );
    drop(c);
}
