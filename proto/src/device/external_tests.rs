//! The external data path on a fake clock: device A hands data to a fake worker that seals
//! and opens with the keys from A's events (as the XDP workers will), device B is an ordinary
//! device. Handshakes both ways, confirmation, keepalives, rekeying and retirement.

use super::*;
use crate::replay::ReplayWindow;
use crate::testutil::{ipv4, A_TUN, B_TUN};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use std::collections::HashMap;

const A_ADDR: &str = "192.0.2.1:51820";
const B_ADDR: &str = "192.0.2.2:51821";

struct Session {
    peer: PeerId,
    remote_index: u32,
    send_key: [u8; 32],
    recv_key: [u8; 32],
    counter: u64,
    replay: ReplayWindow,
}

/// What the workers and control do together, reduced to a map of sessions.
#[derive(Default)]
struct FakeWorker {
    sessions: HashMap<u32, Session>,
    current: HashMap<PeerId, u32>,
    retired: Vec<u32>,
}

struct Sim {
    now: Now,
    a: Device<ChaCha20Rng>,
    b: Device<ChaCha20Rng>,
    a_peer: PeerId,
    w: FakeWorker,
    to_a: Vec<Vec<u8>>,
    to_b: Vec<Vec<u8>>,
    delivered_a: Vec<Vec<u8>>,
    delivered_b: Vec<Vec<u8>>,
}

impl Sim {
    fn new(seed: u64) -> Self {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let (ak, bk) = (
            PrivateKey::generate(&mut rng),
            PrivateKey::generate(&mut rng),
        );
        let now = Now::new(
            Instant::from_nanos(1_000_000_000),
            Duration::from_secs(1_700_000_000),
        );
        let mut a = Device::new(ak.clone(), ChaCha20Rng::seed_from_u64(seed + 1));
        a.set_external_data_path(true);
        let mut b = Device::new(bk.clone(), ChaCha20Rng::seed_from_u64(seed + 2));
        let p = |s: &str| {
            let (x, l) = s.split_once('/').unwrap();
            Prefix::new(x.parse().unwrap(), l.parse().unwrap()).unwrap()
        };
        let a_peer = a
            .add_peer(
                now,
                bk.public_key(),
                PeerConfig {
                    endpoint: Some(B_ADDR.parse().unwrap()),
                    allowed_ips: vec![p("10.0.0.2/32")],
                    ..Default::default()
                },
            )
            .unwrap();
        b.add_peer(
            now,
            ak.public_key(),
            PeerConfig {
                endpoint: Some(A_ADDR.parse().unwrap()),
                allowed_ips: vec![p("10.0.0.1/32")],
                ..Default::default()
            },
        )
        .unwrap();
        Self {
            now,
            a,
            b,
            a_peer,
            w: FakeWorker::default(),
            to_a: vec![],
            to_b: vec![],
            delivered_a: vec![],
            delivered_b: vec![],
        }
    }

    /// Control's job: apply A's events to the worker's sessions.
    fn drain_events(&mut self) {
        while let Some(e) = self.a.poll_event() {
            match e {
                Event::SessionEstablished { peer, local_index } => {
                    let (_, kp) = self.a.keypair(local_index).unwrap();
                    let s = Session {
                        peer,
                        remote_index: kp.remote_index(),
                        send_key: *kp.sending_key(),
                        recv_key: *kp.receiving_key(),
                        counter: 0,
                        replay: ReplayWindow::new(),
                    };
                    if kp.i_am_the_initiator() {
                        self.w.current.insert(peer, local_index);
                    }
                    self.w.sessions.insert(local_index, s);
                }
                Event::SessionConfirmed { peer, local_index } => {
                    self.w.current.insert(peer, local_index);
                }
                Event::SessionRetired { local_index } => {
                    self.w.sessions.remove(&local_index);
                    self.w.current.retain(|_, li| *li != local_index);
                    self.w.retired.push(local_index);
                }
                Event::Keepalive { peer } => self.worker_send(peer, &[]),
            }
        }
    }

    fn worker_send(&mut self, peer: PeerId, packet: &[u8]) {
        let Some(s) = self
            .w
            .current
            .get(&peer)
            .and_then(|li| self.w.sessions.get_mut(li))
        else {
            self.a.external_needs_session(self.now, peer);
            return;
        };
        let padded = data::padded_len(packet.len(), DEFAULT_MTU);
        let mut buf = vec![0u8; DATA_OVERHEAD + padded];
        buf[16..16 + packet.len()].copy_from_slice(packet);
        let n = data::seal(&s.send_key, s.remote_index, s.counter, &mut buf, padded).unwrap();
        s.counter += 1;
        let next = s.counter;
        self.to_b.push(buf[..n].to_vec());
        self.a
            .external_data_sent(self.now, peer, packet.is_empty(), next, n);
    }

    fn worker_receive(&mut self, mut msg: Vec<u8>) {
        let (li, counter) = {
            let d = Data::new_checked(&msg[..]).unwrap();
            (d.receiver(), d.counter())
        };
        let Some(s) = self.w.sessions.get_mut(&li) else {
            return;
        };
        let Ok(plain) = data::open(&s.recv_key, &mut msg) else {
            return;
        };
        if !s.replay.validate(counter) {
            return;
        }
        let _ = s.peer;
        self.a
            .external_data_received(self.now, li, B_ADDR.parse().unwrap(), plain)
            .unwrap();
        if plain > 0 {
            let len = wire::inner_packet_len(&msg[16..16 + plain]).unwrap();
            self.delivered_a.push(msg[16..16 + len].to_vec());
        }
    }

    fn pump(&mut self) {
        let mut buf = vec![0u8; 2048];
        loop {
            self.drain_events();
            while let Some(t) = self.a.poll_transmit(self.now, &mut buf) {
                assert!(buf[0] != 4, "no data from an external-path device");
                self.to_b.push(buf[..t.len].to_vec());
            }
            while let Some(t) = self.b.poll_transmit(self.now, &mut buf) {
                self.to_a.push(buf[..t.len].to_vec());
            }
            if self.to_a.is_empty() && self.to_b.is_empty() {
                self.drain_events();
                if self.to_a.is_empty() && self.to_b.is_empty() {
                    break;
                }
            }
            for mut m in std::mem::take(&mut self.to_b) {
                if let Ok(Received::Data { range, .. }) =
                    self.b
                        .handle_datagram(self.now, A_ADDR.parse().unwrap(), &mut m, false)
                {
                    self.delivered_b.push(m[range].to_vec());
                }
            }
            for mut m in std::mem::take(&mut self.to_a) {
                if m[0] == 4 {
                    self.worker_receive(m);
                } else {
                    let _ =
                        self.a
                            .handle_datagram(self.now, B_ADDR.parse().unwrap(), &mut m, false);
                }
            }
        }
    }

    fn run_for(&mut self, total: Duration, step: Duration) {
        let end = self.now.mono + total;
        while self.now.mono < end {
            self.now.advance(step);
            self.a.handle_timeout(self.now);
            self.b.handle_timeout(self.now);
            self.pump();
        }
    }
}

#[test]
fn initiator_side_external_path() {
    let mut s = Sim::new(31);
    let peer = s.a_peer;
    s.worker_send(peer, &ipv4(A_TUN, B_TUN, b"no session yet"));
    s.pump();
    // Dropped (workers do not stage), but a handshake ran and A confirmed it with a keepalive.
    assert!(s.w.current.contains_key(&peer));
    assert!(s.delivered_b.is_empty());
    s.worker_send(peer, &ipv4(A_TUN, B_TUN, b"now"));
    s.pump();
    assert_eq!(s.delivered_b, vec![ipv4(A_TUN, B_TUN, b"now")]);
    s.b.send(s.now, &ipv4(B_TUN, A_TUN, b"back")).unwrap();
    s.pump();
    assert_eq!(s.delivered_a, vec![ipv4(B_TUN, A_TUN, b"back")]);
    // B's data arms A's passive keepalive: an Event::Keepalive 10 s later, sealed by the worker.
    let sent = s.w.sessions.values().map(|x| x.counter).sum::<u64>();
    s.run_for(
        KEEPALIVE_TIMEOUT + Duration::from_millis(200),
        Duration::from_millis(100),
    );
    assert_eq!(
        s.w.sessions.values().map(|x| x.counter).sum::<u64>(),
        sent + 1
    );
}

#[test]
fn responder_side_waits_for_confirmation() {
    let mut s = Sim::new(32);
    let peer = s.a_peer;
    s.b.send(s.now, &ipv4(B_TUN, A_TUN, b"hello a")).unwrap();
    s.pump();
    // A answered B's initiation; B's staged packet confirmed the session on A's worker.
    assert_eq!(s.delivered_a, vec![ipv4(B_TUN, A_TUN, b"hello a")]);
    assert!(s.w.current.contains_key(&peer), "confirmed, hence sendable");
    s.worker_send(peer, &ipv4(A_TUN, B_TUN, b"reply"));
    s.pump();
    assert_eq!(s.delivered_b, vec![ipv4(A_TUN, B_TUN, b"reply")]);
}

#[test]
fn rekey_after_time_and_retirement() {
    let mut s = Sim::new(33);
    let peer = s.a_peer;
    s.worker_send(peer, &ipv4(A_TUN, B_TUN, b"x"));
    s.pump();
    let first = s.w.current[&peer];
    for round in 0..3 {
        s.run_for(
            REKEY_AFTER_TIME + Duration::from_secs(1),
            Duration::from_secs(1),
        );
        s.worker_send(peer, &ipv4(A_TUN, B_TUN, b"tick"));
        s.pump();
        s.b.send(s.now, &ipv4(B_TUN, A_TUN, b"tock")).unwrap();
        s.pump();
        assert_ne!(s.w.current[&peer], first, "round {round}: rekeyed");
    }
    assert!(
        s.w.retired.contains(&first),
        "the first keypair was retired and its keys dropped"
    );
    assert!(s.w.sessions.len() <= 3);
    assert_eq!(s.delivered_a.len(), 3);
}

#[test]
fn responder_rekeys_when_its_keypair_expires_while_sending() {
    let mut s = Sim::new(34);
    let peer = s.a_peer;
    // B initiates: A is the responder and never rekeys on REKEY_AFTER_TIME.
    s.b.send(s.now, &ipv4(B_TUN, A_TUN, b"hello a")).unwrap();
    s.pump();
    let first = s.w.current[&peer];
    s.run_for(
        REJECT_AFTER_TIME + Duration::from_secs(1),
        Duration::from_secs(1),
    );
    // A's workers still send (their own clock says the key is alive a little longer): the
    // report makes A start a handshake, as the kernel's send path would.
    s.worker_send(peer, &ipv4(A_TUN, B_TUN, b"late"));
    s.pump();
    assert_ne!(
        s.w.current[&peer], first,
        "a new keypair replaced the expired one"
    );
}

#[test]
fn a_data_message_reaching_the_device_is_not_opened_there() {
    let mut s = Sim::new(37);
    let peer = s.a_peer;
    s.worker_send(peer, &ipv4(A_TUN, B_TUN, b"start"));
    s.pump();
    s.b.send(s.now, &ipv4(B_TUN, A_TUN, b"authentic")).unwrap();
    let mut buf = vec![0u8; 2048];
    let t = s.b.poll_transmit(s.now, &mut buf).unwrap();
    assert_eq!(buf[0], 4, "a data message");
    let endpoint = s.a.peer(peer).unwrap().endpoint();
    // The workers own the receive windows: the device refuses it, whatever the source.
    let elsewhere: std::net::SocketAddr = "192.0.2.99:20000".parse().unwrap();
    assert_eq!(
        s.a.handle_datagram(s.now, elsewhere, &mut buf[..t.len], false),
        Err(DropReason::DataElsewhere)
    );
    assert_eq!(s.a.peer(peer).unwrap().endpoint(), endpoint, "no roaming");
}

/// A failover initiation (the peer's data for another gateway's session arrived): one
/// message, not retransmitted when nobody answers, at most one per REKEY_TIMEOUT; answered, the
/// session is up and confirmed at once.
#[test]
fn a_failover_initiation_is_one_message_and_is_not_retransmitted() {
    let mut s = Sim::new(41);
    let peer = s.a_peer;
    let mut buf = vec![0u8; 2048];
    let mut initiations = |s: &mut Sim| {
        let mut n = 0;
        while let Some(t) = s.a.poll_transmit(s.now, &mut buf) {
            assert_eq!((buf[0], t.len), (1, 148));
            n += 1;
        }
        n
    };
    assert!(s.a.external_failover_initiation(s.now, peer));
    assert_eq!(initiations(&mut s), 1);
    assert!(
        !s.a.external_failover_initiation(s.now, peer),
        "REKEY_TIMEOUT"
    );
    // Nobody answers: 30 s of timers send nothing more.
    for _ in 0..300 {
        s.now.advance(Duration::from_millis(100));
        s.a.handle_timeout(s.now);
        assert_eq!(initiations(&mut s), 0);
    }
    // Again, and B answers: the session is confirmed (A's keepalive) and carries data.
    assert!(s.a.external_failover_initiation(s.now, peer));
    s.pump();
    assert!(s.w.current.contains_key(&peer));
    s.b.send(s.now, &ipv4(B_TUN, A_TUN, b"back")).unwrap();
    s.pump();
    assert_eq!(s.delivered_a, vec![ipv4(B_TUN, A_TUN, b"back")]);
}
