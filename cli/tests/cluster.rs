//! Gateways sharing one peer set through etcd (issue 17): three etcd members and three
//! gateways with one private key, each gateway with `wgxdp sync` beside it.
//!
//! ```text
//!   gw1 (198.18.11.2) ----.
//!   gw2 (198.18.12.2) ---- router (etcd members at 198.18.99.1-3, on its loopback)
//!   gw3 (198.18.13.2) ----'
//! ```
//!
//! A peer written to etcd reaches all three gateways within 2 s and a removed one leaves all
//! three; with one member killed changes still apply; with etcd down entirely the gateways
//! keep their peers and say so in the sync's metrics, and once it is back changes resume from
//! the last revision (no full re-read).
//!
//! Needs root, namespaces, etcd, wg: skipped with a message elsewhere, a failure in CI.

mod common;

use common::*;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use testbed::{IfAddr, Netns, VethPair, WgConfig, WgPeer, WireguardGo};

const MEMBERS: usize = 3;
const GATEWAYS: usize = 3;
const SYNC_METRICS: &str = "127.0.0.1:9599";
/// The address all gateways serve, spread over them by the router.
const SERVICE: &str = "198.18.100.1";

struct Gateway {
    ns: Netns,
    name: String,
}

struct Cluster {
    /// The gateways' shared public key.
    public: String,
    router: Netns,
    gateways: Vec<Gateway>,
    members: Vec<Option<u32>>,
    dir: PathBuf,
    url: String,
    tag: String,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for g in &self.gateways {
            let _ = g.ns.exec([BIN, "down", &g.name]);
            remove_logs(&g.name);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn member_ip(i: usize) -> String {
    format!("198.18.99.{}", i + 1)
}

impl Cluster {
    fn start_member(&mut self, i: usize) {
        let cluster: Vec<String> = (0..MEMBERS)
            .map(|j| format!("m{j}=http://{}:2380", member_ip(j)))
            .collect();
        let client = format!("http://{}:2379", member_ip(i));
        let peer = format!("http://{}:2380", member_ip(i));
        let data = self.dir.join(format!("m{i}"));
        let log = self.dir.join(format!("m{i}.log"));
        let script = format!(
            "exec etcd --name m{i} --data-dir {} --listen-client-urls {client} --advertise-client-urls {client} \
             --listen-peer-urls {peer} --initial-advertise-peer-urls {peer} --initial-cluster {} \
             --initial-cluster-token wgxdp-{} --initial-cluster-state new >>{} 2>&1",
            data.display(),
            cluster.join(","),
            self.tag,
            log.display()
        );
        let pid = self.router.spawn(["sh", "-c", &script]).unwrap();
        self.members[i] = Some(pid);
    }

    fn kill_member(&mut self, i: usize) {
        let pid = self.members[i].take().expect("member running");
        // The member itself (sh exec'd it): SIGKILL, as a crash would.
        let _ = std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status();
        // Gone once it is a zombie (the namespace guard reaps it at the end) or reaped.
        let dead = || {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| {
                s.rsplit(')')
                    .next()
                    .is_some_and(|r| r.trim_start().starts_with('Z'))
            })
        };
        let start = Instant::now();
        while !dead() {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "etcd member {i} lingers"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `wgxdp ARGS... --etcd URL` from the router, where etcd is.
    fn wgxdp(&self, args: &[&str]) -> std::process::Output {
        let mut argv = vec![BIN];
        argv.extend_from_slice(args);
        argv.extend(["--etcd", &self.url]);
        self.router.command(&argv).output().unwrap()
    }

    /// Writes `peers` ([Peer] sections) to etcd with `wgxdp peers import`, retrying for up to
    /// `within` while etcd cannot take them (electing a leader, coming back).
    fn import(&self, peers: &str, within: Duration) {
        let file = self.dir.join("peers.conf");
        std::fs::write(&file, peers).unwrap();
        let start = Instant::now();
        loop {
            let o = self.wgxdp(&["peers", "import", file.to_str().unwrap()]);
            if o.status.success() {
                return;
            }
            assert!(
                start.elapsed() < within,
                "etcd did not take the peers: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn put_peer(&self, public_key: &str, allowed: &str) {
        self.import(
            &format!("[Peer]\nPublicKey = {public_key}\nAllowedIPs = {allowed}\n"),
            Duration::ZERO,
        );
    }

    /// Waits until every gateway has (or has not) `public_key`; how long that took.
    fn until_everywhere(&self, public_key: &str, present: bool, limit: Duration) -> Duration {
        let start = Instant::now();
        let mut done = vec![false; self.gateways.len()];
        while start.elapsed() < limit {
            for (g, d) in self.gateways.iter().zip(done.iter_mut()) {
                if !*d {
                    let peers = ok(g.ns.exec(["wg", "show", &g.name, "peers"]));
                    *d = peers.lines().any(|l| l.trim() == public_key) == present;
                }
            }
            if done.iter().all(|d| *d) {
                return start.elapsed();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let shows: Vec<String> = self
            .gateways
            .iter()
            .map(|g| ok(g.ns.exec(["wg", "show", &g.name, "peers"])))
            .collect();
        panic!(
            "{public_key} {} on every gateway within {limit:?}: {done:?}; peers: {shows:?}; sync logs:\n{}",
            if present { "not" } else { "still" },
            self.sync_logs()
        );
    }

    fn sync_logs(&self) -> String {
        (0..self.gateways.len())
            .map(|i| {
                std::fs::read_to_string(self.dir.join(format!("sync{i}.log"))).unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join("\n---\n")
    }

    /// One metric of gateway `i`'s sync (`None` while it does not serve them yet).
    fn try_metric(&self, i: usize, name: &str) -> Option<f64> {
        let page = self.gateways[i].ns.run_in(|| {
            let mut s = std::net::TcpStream::connect(SYNC_METRICS).ok()?;
            s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").ok()?;
            let mut page = String::new();
            s.read_to_string(&mut page).ok()?;
            Some(page)
        })?;
        page.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
    }

    fn metric(&self, i: usize, name: &str) -> f64 {
        self.try_metric(i, name)
            .unwrap_or_else(|| panic!("gateway {i}'s sync serves no {name}"))
    }
}

fn build(tag: &str) -> Cluster {
    let dir = std::env::temp_dir().join(format!("wgxdp-cluster-{tag}"));
    std::fs::create_dir_all(&dir).unwrap();
    let router = Netns::new("router").unwrap();
    ok(router.exec(["sysctl", "-qw", "net.ipv4.ip_forward=1"]));
    for i in 0..MEMBERS {
        ok(router.ip(["addr", "add", &format!("{}/32", member_ip(i)), "dev", "lo"]));
    }
    let key = genkey();
    let conf = dir.join("gw.conf");
    std::fs::write(
        &conf,
        format!(
            "[Interface]\nPrivateKey = {}\nListenPort = 51820\nAddress = {GW_TUNNEL_V4}/24\n",
            key.trim()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut cluster = Cluster {
        public: pubkey_of(&key),
        router,
        gateways: Vec::new(),
        members: vec![None; MEMBERS],
        url: format!(
            "etcd://{}/wgxdp/{tag}",
            (0..MEMBERS)
                .map(|i| format!("{}:2379", member_ip(i)))
                .collect::<Vec<_>>()
                .join(",")
        ),
        dir,
        tag: tag.to_string(),
    };
    for i in 0..GATEWAYS {
        let ns = Netns::new(&format!("gw{i}")).unwrap();
        let net = 11 + i;
        let pair = VethPair::builder(&cluster.router, &ns)
            .names(&format!("r{i}"), "wan")
            .a_addrs(&[IfAddr::new(format!("198.18.{net}.1").parse().unwrap(), 24)])
            .create()
            .unwrap();
        // Released: the namespaces' deletion removes it.
        let _ = pair.into_ends();
        // The shared service address first (the data path sends from the WAN's first
        // address, as clients expect replies from the address they sent to), then the
        // gateway's own link address, from which it reaches etcd (replies to the service
        // address would be spread over the gateways).
        ok(ns.ip(["addr", "add", &format!("{SERVICE}/32"), "dev", "wan"]));
        ok(ns.ip(["addr", "add", &format!("198.18.{net}.2/24"), "dev", "wan"]));
        let via = format!("198.18.{net}.1");
        ok(ns.ip(["route", "add", "default", "via", &via, "src", SERVICE]));
        ok(ns.ip([
            "route",
            "add",
            "198.18.99.0/24",
            "via",
            &via,
            "src",
            &format!("198.18.{net}.2"),
        ]));
        let name = format!("c{tag}g{i}");
        let up = ns
            .command([
                BIN,
                "up",
                conf.to_str().unwrap(),
                "--wan",
                "wan",
                "--name",
                &name,
                "--backend",
                "xdp",
            ])
            .output()
            .unwrap();
        assert!(
            up.status.success(),
            "up: {}",
            String::from_utf8_lossy(&up.stderr)
        );
        cluster.gateways.push(Gateway { ns, name });
    }
    // ECMP to the service address on the L4 hash, in a resilient group: when a gateway's
    // next hop goes, only its flows move (hash-threshold groups would remap others too).
    let r = &cluster.router;
    ok(r.exec(["sysctl", "-qw", "net.ipv4.fib_multipath_hash_policy=1"]));
    for i in 0..GATEWAYS {
        let id = (i + 1).to_string();
        let via = format!("198.18.{}.2", 11 + i);
        ok(r.ip([
            "nexthop",
            "add",
            "id",
            &id,
            "via",
            &via,
            "dev",
            &format!("r{i}"),
        ]));
    }
    let group: Vec<String> = (1..=GATEWAYS).map(|i| i.to_string()).collect();
    ok(r.ip([
        "nexthop",
        "add",
        "id",
        "100",
        "group",
        &group.join("/"),
        "type",
        "resilient",
        "buckets",
        "64",
    ]));
    ok(r.ip(["route", "add", &format!("{SERVICE}/32"), "nhid", "100"]));
    for i in 0..MEMBERS {
        cluster.start_member(i);
    }
    for (i, g) in cluster.gateways.iter().enumerate() {
        let log = cluster.dir.join(format!("sync{i}.log"));
        g.ns.spawn([
            BIN,
            "--log-level",
            "debug,ureq=info",
            "--log-file",
            log.to_str().unwrap(),
            "sync",
            &g.name,
            "--etcd",
            &cluster.url,
            "--metrics",
            SYNC_METRICS,
        ])
        .unwrap();
    }
    cluster
}

fn genkey() -> String {
    let o = std::process::Command::new(BIN)
        .arg("genkey")
        .output()
        .unwrap();
    String::from_utf8(o.stdout).unwrap()
}

fn pubkey() -> String {
    pubkey_of(&genkey())
}

fn pubkey_of(key: &str) -> String {
    let mut child = std::process::Command::new(BIN)
        .arg("pubkey")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(key.as_bytes())
        .unwrap();
    String::from_utf8(child.wait_with_output().unwrap().stdout)
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn peers_from_etcd_reach_every_gateway_and_survive_etcd_outages() {
    if !testbed::require_netns() || !testbed::require_tools(&["etcd", "wg"]) {
        return;
    }
    let c = &mut build(&tag());
    // The syncs have read the (empty) set once etcd elected a leader.
    let start = Instant::now();
    while !(0..GATEWAYS).all(|i| c.try_metric(i, "wgxdp_peer_source_up") == Some(1.0)) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "syncs not up:\n{}",
            c.sync_logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // Added, then removed: everywhere within 2 s.
    let a = pubkey();
    c.put_peer(&a, "198.19.10.1/32");
    let took = c.until_everywhere(&a, true, Duration::from_secs(2));
    eprintln!("peer added through etcd: on all {GATEWAYS} gateways after {took:?}");
    let o = c.wgxdp(&["peers", "remove", &a]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let took = c.until_everywhere(&a, false, Duration::from_secs(2));
    eprintln!("peer removed through etcd: gone from all {GATEWAYS} gateways after {took:?}");

    // One member killed: changes still apply (a new leader may take an election).
    let b = pubkey();
    c.kill_member(0);
    c.put_peer(&b, "198.19.10.2/32");
    let took = c.until_everywhere(&b, true, Duration::from_secs(5));
    eprintln!("with member 0 killed: a new peer on all gateways after {took:?}");

    // etcd down entirely: the gateways keep their peers, and say etcd is gone.
    c.kill_member(1);
    c.kill_member(2);
    let start = Instant::now();
    while !(0..GATEWAYS).all(|i| c.metric(i, "wgxdp_peer_source_up") == 0.0) {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "outage not noticed:\n{}",
            c.sync_logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(2));
    c.until_everywhere(&b, true, Duration::from_millis(100));
    assert!(
        c.sync_logs().contains("keeps serving its last peer set"),
        "{}",
        c.sync_logs()
    );

    // Back (all three, from their data): changes resume from the last revision applied.
    for i in 0..MEMBERS {
        c.start_member(i);
    }
    let d = pubkey();
    c.import(
        &format!("[Peer]\nPublicKey = {d}\nAllowedIPs = 198.19.10.3/32\n"),
        Duration::from_secs(30),
    );
    let took = c.until_everywhere(&d, true, Duration::from_secs(10));
    eprintln!("after etcd's return: a new peer on all gateways after {took:?}");
    for i in 0..GATEWAYS {
        assert_eq!(c.metric(i, "wgxdp_peer_source_up"), 1.0);
        // Resumed by watch from the revision it had, not read again in full.
        assert_eq!(
            c.metric(i, "wgxdp_peer_source_resyncs_total"),
            1.0,
            "{}",
            c.sync_logs()
        );
        assert_eq!(c.metric(i, "wgxdp_peer_source_peers"), 2.0);
    }
}

/// A wireguard-go client behind the router, pinging the gateways' tunnel address.
struct Client {
    ns: Netns,
    wg: WireguardGo,
    log: PathBuf,
}

fn add_clients(c: &Cluster, n: usize) -> Vec<Client> {
    (0..n)
        .map(|i| {
            let ns = Netns::new(&format!("cl{i}")).unwrap();
            let net = 40 + i;
            let pair = VethPair::builder(&c.router, &ns)
                .names(&format!("k{i}"), "up0")
                .a_addrs(&[IfAddr::new(format!("198.18.{net}.1").parse().unwrap(), 24)])
                .b_addrs(&[IfAddr::new(format!("198.18.{net}.2").parse().unwrap(), 24)])
                .create()
                .unwrap();
            let _ = pair.into_ends();
            ok(ns.ip(["route", "add", "default", "via", &format!("198.18.{net}.1")]));
            let wg = WireguardGo::start(
                &ns,
                WgConfig {
                    // A port of its own: the router's L4 hash tells the clients apart.
                    listen_port: 0,
                    addrs: vec![IfAddr::new(
                        format!("198.19.0.{}", 10 + i).parse().unwrap(),
                        32,
                    )],
                    peers: vec![WgPeer {
                        allowed_ips: vec![format!("{GW_TUNNEL_V4}/32").parse().unwrap()],
                        endpoint: Some(format!("{SERVICE}:51820").parse().unwrap()),
                        ..WgPeer::new(c.public.clone())
                    }],
                    ..WgConfig::default()
                },
            )
            .unwrap();
            ok(ns.ip(["route", "add", GW_TUNNEL_V4, "dev", wg.ifname()]));
            let log = c.dir.join(format!("ping{i}.log"));
            Client { ns, wg, log }
        })
        .collect()
}

/// The replies in a `ping -D` log: (sequence number, Unix time).
fn replies(log: &std::path::Path) -> Vec<(u64, f64)> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let t = l.strip_prefix('[')?.split(']').next()?.parse().ok()?;
            let seq = l
                .split("icmp_seq=")
                .nth(1)?
                .split(' ')
                .next()?
                .parse()
                .ok()?;
            Some((seq, t))
        })
        .collect()
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Which gateway client `cl`'s session is on: the one where its peer has a handshake.
fn serving(c: &Cluster, cl: &Client, except: Option<usize>) -> Option<usize> {
    c.gateways.iter().enumerate().find_map(|(i, g)| {
        if Some(i) == except {
            return None;
        }
        let dump = ok(g.ns.exec(["wg", "show", &g.name, "dump"]));
        dump.lines().skip(1).find_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f.first() == Some(&cl.wg.public_key()) && f.get(4).is_some_and(|h| *h != "0"))
                .then_some(i)
        })
    })
}

const PING_INTERVAL: f64 = 0.2;
/// What the design note predicts for a client whose gateway died (docs/scale-out.md): with the
/// protocol's timers alone, its next handshake would start KEEPALIVE_TIMEOUT + REKEY_TIMEOUT =
/// 15 s after the first unanswered packet. The gateway its packets now reach knows its
/// endpoint (shared through etcd) and starts the handshake itself at the first of them: back
/// within a ping interval, the worker's report, control's step and a round trip, well under a
/// second; the limit leaves room for a loaded machine.
const FAILOVER_LIMIT: f64 = 3.0;

#[test]
fn ecmp_spreads_clients_and_a_dead_gateways_clients_come_back() {
    if !testbed::require_wireguard_go() || !testbed::require_tools(&["etcd"]) {
        return;
    }
    let c = &mut build(&tag());
    let clients = add_clients(c, 8);
    let mut peers = String::new();
    for (i, cl) in clients.iter().enumerate() {
        peers += &format!(
            "[Peer]\nPublicKey = {}\nAllowedIPs = 198.19.0.{}/32\n\n",
            cl.wg.public_key(),
            10 + i
        );
    }
    // etcd may still be electing its first leader.
    c.import(&peers, Duration::from_secs(30));
    for cl in &clients {
        c.until_everywhere(cl.wg.public_key(), true, Duration::from_secs(10));
    }
    for cl in &clients {
        let cmd = format!(
            "exec ping -D -n -i {PING_INTERVAL} {GW_TUNNEL_V4} >{} 2>&1",
            cl.log.display()
        );
        cl.ns.spawn(["sh", "-c", &cmd]).unwrap();
    }
    let start = Instant::now();
    while !clients.iter().all(|cl| replies(&cl.log).len() >= 3) {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "not every client reaches the gateways: {:?}",
            clients
                .iter()
                .map(|cl| replies(&cl.log).len())
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // Spread by ECMP: the sessions are on more than one gateway.
    let on: Vec<usize> = clients
        .iter()
        .map(|cl| serving(c, cl, None).expect("a gateway has the client's session"))
        .collect();
    let mut per = [0usize; GATEWAYS];
    for g in &on {
        per[*g] += 1;
    }
    eprintln!("clients per gateway: {per:?}");
    assert!(per.iter().filter(|n| **n > 0).count() >= 2, "{per:?}");

    // The busiest gateway dies: the router loses its next hop (as a BGP session would drop),
    // and it goes down.
    let victim = (0..GATEWAYS).max_by_key(|g| per[*g]).unwrap();
    // Time for `wgxdp sync` to share the clients' endpoints (read every 0.5 s, one etcd write,
    // one watch event), with room for a loaded machine.
    std::thread::sleep(Duration::from_secs(3));
    let t0 = unix_now();
    ok(c.router.ip(["link", "set", &format!("r{victim}"), "down"]));
    let _ = c.gateways[victim]
        .ns
        .exec([BIN, "down", &c.gateways[victim].name]);
    let moved: Vec<usize> = (0..clients.len()).filter(|i| on[*i] == victim).collect();
    let back = |i: usize| replies(&clients[i].log).into_iter().find(|(_, t)| *t > t0);
    let start = Instant::now();
    while !moved.iter().all(|i| back(*i).is_some()) {
        assert!(
            start.elapsed() < Duration::from_secs_f64(FAILOVER_LIMIT + 20.0),
            "clients of the dead gateway never came back"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(2));
    let t_end = unix_now();
    for i in &moved {
        let (_, t) = back(*i).unwrap();
        eprintln!(
            "client {i}: back through gateway {:?} after {:.2} s",
            serving(c, &clients[*i], Some(victim)),
            t - t0
        );
        assert!(t - t0 <= FAILOVER_LIMIT, "client {i} took {:.2} s", t - t0);
        assert!(serving(c, &clients[*i], Some(victim)).is_some());
    }
    // The others lost at most one ping in a row (each sequence number is a ping interval).
    for (i, cl) in clients.iter().enumerate() {
        if on[i] == victim {
            continue;
        }
        let seqs: Vec<u64> = replies(&cl.log)
            .into_iter()
            .filter(|(_, t)| *t > t0 - 1.0 && *t < t_end)
            .map(|(s, _)| s)
            .collect();
        let worst = seqs.windows(2).map(|w| w[1] - w[0] - 1).max().unwrap_or(0);
        assert!(seqs.len() > 10, "client {i}: {} replies", seqs.len());
        assert!(
            worst <= 1,
            "client {i} (gateway {}) lost {worst} pings in a row",
            on[i]
        );
    }
}
