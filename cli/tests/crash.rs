//! Control killed in the middle of building a large allowed-IPs table (security review, long
//! run 2): `kill -9` lands while control builds the 100k-prefix table into the region's other
//! section, again and again, each time in a new control process that attached to what the
//! previous one left; then one runs to the end. A reader looking every prefix up, as a worker
//! does, always gets one configuration's whole table per address family (never a mix, never a
//! half-built one), peer records are never half-written, and the table the last one leaves is
//! exactly the configuration's.
//!
//! No namespaces, no data path: `wgxdp control` on a region file and a port of its own, read
//! from here as a worker reads it. Runs unprivileged.

use allowedips::Reader;
use contract::layout::PeerRecord;
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

/// The table as a worker sees it in one batch: (prefix, peer slot) for every configured
/// prefix of the family (`v4`) that has an owner.
fn read_table(reader: &mut Reader, v4: bool) -> Vec<(IpAddr, u8, u32)> {
    let range = if v4 { 0..V4 } else { V4..PREFIXES };
    let snapshot = reader.pin();
    range
        .filter_map(|j| {
            let (a, l) = prefix(j);
            Some((a, l, snapshot.lookup(a)?))
        })
        .collect()
}

/// Prefix -> its number `j`.
type Index = HashMap<(IpAddr, u8), usize>;

/// Whether `list` is one configuration's whole table for one family (`v4`): every prefix of
/// the family once, and for one of the variants a one-to-one map between owners and slots
/// (the variants group the prefixes differently, so a mix is neither).
fn whole_variant(index: &Index, list: &[(IpAddr, u8, u32)], v4: bool) -> Option<usize> {
    if list.len() != if v4 { V4 } else { PREFIXES - V4 } {
        return None;
    }
    (0..2).find(|&variant| {
        let mut slot_of: HashMap<usize, u32> = HashMap::new();
        let mut owner_of: HashMap<u32, usize> = HashMap::new();
        let mut seen = vec![false; PREFIXES];
        list.iter().all(|&(a, l, slot)| {
            let Some(&j) = index.get(&(a, l)) else {
                return false;
            };
            let o = owner(variant, j);
            !std::mem::replace(&mut seen[j], true)
                && *slot_of.entry(o).or_insert(slot) == slot
                && *owner_of.entry(slot).or_insert(o) == o
        })
    })
}

/// Both families' tables, each one configuration's whole table; the variants.
fn whole_tables(index: &Index, reader: &mut Reader) -> Option<[usize; 2]> {
    Some([
        whole_variant(index, &read_table(reader, true), true)?,
        whole_variant(index, &read_table(reader, false), false)?,
    ])
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
/// process to `kill -9` at points spread over its start-up (the build of the other
/// configuration's table included), ROUNDS times over, each time in a new process that
/// attached to the region the previous one left; then a last one runs to the end. Meanwhile a
/// reader, as a worker would, looks every prefix up again and again: each family's table it
/// sees is one configuration's whole table, never a mix or a half-built one. After each kill
/// the peer records are whole; at the end nothing is torn, and the table routes each
/// configured prefix to its configured peer.
#[test]
fn kill_control_while_it_builds_a_100k_prefix_table_then_restart() {
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

    // The running gateway: configuration 0, built whole.
    let log = dir.0.join("control-first.log");
    let started = Instant::now();
    let mut c = start(&region_path, &confs[0], &log);
    wait_listening(&mut c, &log);
    let start_up = started.elapsed();
    sigkill(&mut c);
    let r = std::sync::Arc::new(Region::attach(&region_path).unwrap());
    let mut reader = Reader::attach(r.clone()).unwrap();
    assert_eq!(whole_tables(&index, &mut reader), Some([0, 0]));

    let stop = AtomicBool::new(false);
    let (outcomes, reads) = std::thread::scope(|s| {
        // The worker's view, all along.
        let reader = s.spawn(|| {
            let mut whole = [[0u32; 2]; 2];
            while !stop.load(Ordering::Relaxed) {
                for (f, v4) in [(0, true), (1, false)] {
                    let v = whole_variant(&index, &read_table(&mut reader, v4), v4).unwrap_or_else(
                        || panic!("a reader saw a table that is no configuration's whole table"),
                    );
                    whole[f][v] += 1;
                }
            }
            whole
        });
        // Per round: whether the kill left the previous table in place or the new one.
        let mut outcomes = [0usize; 2];
        let mut last = 0;
        for round in 1..=ROUNDS {
            let variant = round % 2;
            let log = dir.0.join(format!("control{round}.log"));
            let mut c = start(&region_path, &confs[variant], &log);
            if round % 3 == 0 {
                wait_listening(&mut c, &log);
            } else {
                // Spread over the start-up: parsing, peers, then the table's build and switch.
                std::thread::sleep(start_up * round as u32 / ROUNDS as u32);
            }
            sigkill(&mut c);
            let mut check = Reader::attach(r.clone()).unwrap();
            let now = whole_tables(&index, &mut check).expect("a whole table after the kill");
            assert!(
                now[0] == now[1] || now[0] == variant,
                "families switch v4 first"
            );
            outcomes[usize::from(now[1] == variant && variant != last)] += 1;
            last = now[1];
            peer_records(&r, &tags);
        }
        stop.store(true, Ordering::Relaxed);
        (outcomes, reader.join().unwrap())
    });

    // The last restart runs to the end: it repairs what was left and builds the table.
    let variant = (ROUNDS + 1) % 2;
    let log = dir.0.join("control-last.log");
    let mut c = start(&region_path, &confs[variant], &log);
    wait_listening(&mut c, &log);
    let (valid, torn) = peer_records(&r, &tags);
    assert_eq!(torn, 0, "nothing torn is left");
    assert_eq!(valid.len(), PEERS, "every configured peer has its record");
    // Routing: each prefix goes to the slot whose record carries its configured owner's key.
    let owner_at: HashMap<u32, u64> = valid.iter().map(|(&t, &s)| (s, t)).collect();
    let list: Vec<_> = [true, false]
        .into_iter()
        .flat_map(|v4| read_table(&mut reader, v4))
        .collect();
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
    assert!(got == want, "the table is the configuration's");
    eprintln!(
        "start-up {start_up:.0?}; of {ROUNDS} kills, {} left the previous table and {} the new \
         one; the reader saw whole tables {reads:?} times (family x variant); {}",
        outcomes[0],
        outcomes[1],
        std::fs::read_to_string(&log).unwrap_or_default().trim()
    );
    assert!(
        outcomes[0] > 0 && outcomes[1] > 0,
        "kills landed both before and after a switch"
    );
    assert!(
        reads.iter().all(|f| f.iter().all(|&n| n > 0)),
        "the reader saw both configurations' tables"
    );
    drop(c);
}
