//! Whole-protocol simulations of two devices on a fake clock and a fake network: handshake,
//! data both ways, rekeying by time and by message count, expiry and key zeroing, keepalives,
//! lost handshake messages, simultaneous initiation and cookies under load.

use crate::allowedips::Prefix;
use crate::constants::*;
use crate::device::{Device, DropReason, PeerConfig, PeerId, Received};
use crate::keys::{PresharedKey, PrivateKey};
use crate::testutil::{ipv4, A_TUN, B_TUN};
use crate::time::{Instant, Now};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use std::net::SocketAddr;
use std::time::Duration;

const A_ADDR: &str = "192.0.2.1:51820";
const B_ADDR: &str = "192.0.2.2:51821";

/// Which messages the network delivers. Returning false drops the datagram.
type Filter = Box<dyn FnMut(Side, &[u8]) -> bool>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    A,
    B,
}

struct Sim {
    now: Now,
    a: Device<ChaCha20Rng>,
    b: Device<ChaCha20Rng>,
    a_peer: PeerId, // B as seen by A
    b_peer: PeerId, // A as seen by B
    /// Decrypted inner packets delivered to each side.
    delivered_a: Vec<Vec<u8>>,
    delivered_b: Vec<Vec<u8>>,
    /// Every datagram that went over the wire, with its sender: (side, message type, len).
    wire_log: Vec<(Side, u8, usize)>,
    filter: Filter,
    a_under_load: bool,
    b_under_load: bool,
    drops: Vec<(Side, DropReason)>,
}

fn prefix(s: &str) -> Prefix {
    let (a, l) = s.split_once('/').unwrap();
    Prefix::new(a.parse().unwrap(), l.parse().unwrap()).unwrap()
}

impl Sim {
    fn new(seed: u64, psk: bool, a_keepalive: Option<Duration>) -> Self {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let a_key = PrivateKey::generate(&mut rng);
        let b_key = PrivateKey::generate(&mut rng);
        let psk_val = PresharedKey::generate(&mut rng);
        let now = Now::new(
            Instant::from_nanos(1_000_000_000),
            Duration::from_secs(1_700_000_000),
        );
        let mut a = Device::new(a_key.clone(), ChaCha20Rng::seed_from_u64(seed + 1));
        let mut b = Device::new(b_key.clone(), ChaCha20Rng::seed_from_u64(seed + 2));
        let a_peer = a
            .add_peer(
                now,
                b_key.public_key(),
                PeerConfig {
                    preshared_key: psk.then(|| psk_val.clone()),
                    endpoint: Some(B_ADDR.parse().unwrap()),
                    allowed_ips: vec![prefix("10.0.0.2/32")],
                    persistent_keepalive: a_keepalive,
                    ..Default::default()
                },
            )
            .unwrap();
        let b_peer = b
            .add_peer(
                now,
                a_key.public_key(),
                PeerConfig {
                    preshared_key: psk.then(|| psk_val.clone()),
                    endpoint: Some(A_ADDR.parse().unwrap()),
                    allowed_ips: vec![prefix("10.0.0.1/32")],
                    ..Default::default()
                },
            )
            .unwrap();
        Self {
            now,
            a,
            b,
            a_peer,
            b_peer,
            delivered_a: vec![],
            delivered_b: vec![],
            wire_log: vec![],
            filter: Box::new(|_, _| true),
            a_under_load: false,
            b_under_load: false,
            drops: vec![],
        }
    }

    /// Moves every queued datagram across until both sides are quiet.
    fn pump(&mut self) {
        let mut buf = vec![0u8; 2048];
        loop {
            let mut moved = false;
            for side in [Side::A, Side::B] {
                let (from, to_addr_str) = match side {
                    Side::A => (&mut self.a, A_ADDR),
                    Side::B => (&mut self.b, B_ADDR),
                };
                let Some(t) = from.poll_transmit(self.now, &mut buf) else {
                    continue;
                };
                moved = true;
                let mut dgram = buf[..t.len].to_vec();
                self.wire_log.push((side, dgram[0], dgram.len()));
                if !(self.filter)(side, &dgram) {
                    continue;
                }
                let src: SocketAddr = to_addr_str.parse().unwrap();
                let (to, delivered, load) = match side {
                    Side::A => (&mut self.b, &mut self.delivered_b, self.b_under_load),
                    Side::B => (&mut self.a, &mut self.delivered_a, self.a_under_load),
                };
                match to.handle_datagram(self.now, src, &mut dgram, load) {
                    Ok(Received::Data { range, .. }) => delivered.push(dgram[range].to_vec()),
                    Ok(_) => {}
                    Err(e) => self.drops.push((side, e)),
                }
            }
            if !moved {
                break;
            }
        }
    }

    /// Advances the clock in `step`s up to `total`, running timers and the network each step.
    fn run_for(&mut self, total: Duration, step: Duration) {
        let end = self.now.mono + total;
        while self.now.mono < end {
            self.now.advance(step);
            self.a.handle_timeout(self.now);
            self.b.handle_timeout(self.now);
            self.pump();
        }
    }

    fn a_sends(&mut self, payload: &[u8]) {
        self.a.send(self.now, &ipv4(A_TUN, B_TUN, payload)).unwrap();
        self.pump();
    }

    fn b_sends(&mut self, payload: &[u8]) {
        self.b.send(self.now, &ipv4(B_TUN, A_TUN, payload)).unwrap();
        self.pump();
    }

    fn count(&self, side: Side, msg_type: u8) -> usize {
        self.wire_log
            .iter()
            .filter(|(s, t, _)| *s == side && *t == msg_type)
            .count()
    }

    fn a_current_index(&self) -> Option<u32> {
        self.a
            .peer(self.a_peer)?
            .keypairs()
            .current()
            .map(|k| k.local_index())
    }
}

#[test]
fn handshake_then_data_both_ways() {
    let mut s = Sim::new(1, true, None);
    s.a_sends(b"hello from a");
    // A staged the packet, initiated; B responded; A confirmed with the staged packet itself.
    assert_eq!(s.count(Side::A, 1), 1);
    assert_eq!(s.count(Side::B, 2), 1);
    assert_eq!(s.delivered_b, vec![ipv4(A_TUN, B_TUN, b"hello from a")]);
    assert_eq!(
        s.count(Side::A, 4),
        1,
        "no separate keepalive: the staged packet confirms"
    );
    s.b_sends(b"hello from b");
    assert_eq!(s.delivered_a, vec![ipv4(B_TUN, A_TUN, b"hello from b")]);
    assert!(s.drops.is_empty(), "{:?}", s.drops);
    let pa = s.a.peer(s.a_peer).unwrap();
    assert!(pa.stats().last_handshake.is_some());
    assert_eq!(pa.endpoint(), Some(B_ADDR.parse().unwrap()));
    // Padded: a 32-byte packet is sent as 32 + 32 bytes; a 20+12 one too.
    assert!(s
        .wire_log
        .iter()
        .filter(|(_, t, _)| *t == 4)
        .all(|(_, _, l)| (l - 32) % 16 == 0));
}

#[test]
fn responder_waits_for_confirmation_and_initiator_sends_keepalive() {
    let mut s = Sim::new(2, false, None);
    s.a.initiate_handshake(s.now, s.a_peer);
    s.pump();
    // Nothing staged on A: it confirms the session with a keepalive (32 bytes).
    assert_eq!(s.wire_log.last(), Some(&(Side::A, 4, 32)));
    let bp = s.b.peer(s.b_peer).unwrap();
    assert!(
        bp.keypairs().current().is_some(),
        "keepalive confirmed B's next keypair"
    );
}

#[test]
fn responder_cannot_send_before_confirmation() {
    let mut s = Sim::new(3, false, None);
    // Drop A's confirming keepalive.
    s.filter = Box::new(|side, d| !(side == Side::A && d[0] == 4));
    s.a.initiate_handshake(s.now, s.a_peer);
    s.pump();
    s.filter = Box::new(|_, _| true);
    // B has only an unconfirmed keypair: sending stages the packet and starts its own handshake.
    s.b_sends(b"early");
    assert_eq!(
        s.count(Side::B, 1),
        1,
        "B initiated instead of using the unconfirmed keypair"
    );
    assert_eq!(s.delivered_a, vec![ipv4(B_TUN, A_TUN, b"early")]);
}

#[test]
fn passive_keepalive_after_receiving_data() {
    let mut s = Sim::new(4, false, None);
    s.a_sends(b"ping");
    let before = s.count(Side::B, 4);
    s.run_for(
        KEEPALIVE_TIMEOUT + Duration::from_millis(500),
        Duration::from_millis(100),
    );
    assert_eq!(
        s.count(Side::B, 4),
        before + 1,
        "B answered with one keepalive"
    );
    assert_eq!(s.wire_log.last(), Some(&(Side::B, 4, 32)));
    // And nothing more while the link is idle (no persistent keepalive).
    let n = s.wire_log.len();
    s.run_for(Duration::from_secs(60), Duration::from_secs(1));
    assert_eq!(s.wire_log.len(), n);
}

#[test]
fn persistent_keepalive_initiates_and_repeats() {
    let mut s = Sim::new(5, false, Some(Duration::from_secs(25)));
    s.pump();
    assert_eq!(
        s.count(Side::A, 1),
        1,
        "configured keepalive starts a handshake at once"
    );
    let k0 = s.count(Side::A, 4);
    s.run_for(Duration::from_secs(100), Duration::from_secs(1));
    let sent = s.count(Side::A, 4) - k0;
    assert!((3..=4).contains(&sent), "about every 25 s: {sent}");
}

#[test]
fn new_handshake_when_we_stop_hearing_back() {
    let mut s = Sim::new(6, false, None);
    s.a_sends(b"one");
    // From now on B's replies are lost; A sent data and hears nothing.
    s.filter = Box::new(|side, _| side == Side::A);
    s.a_sends(b"two");
    let inits = s.count(Side::A, 1);
    s.run_for(
        KEEPALIVE_TIMEOUT + REKEY_TIMEOUT + Duration::from_millis(400),
        Duration::from_millis(100),
    );
    assert_eq!(
        s.count(Side::A, 1),
        inits + 1,
        "new handshake after 15 s without a reply"
    );
}

#[test]
fn lost_initiations_are_retried_then_given_up() {
    let mut s = Sim::new(7, false, None);
    s.filter = Box::new(|_, _| false);
    s.a_sends(b"lost");
    s.run_for(Duration::from_secs(200), Duration::from_millis(100));
    // First attempt plus MAX_TIMER_HANDSHAKES + 1 retries at ~5 s, then silence.
    assert_eq!(s.count(Side::A, 1), 1 + MAX_TIMER_HANDSHAKES as usize + 1);
    let pa = s.a.peer(s.a_peer).unwrap();
    assert_eq!(pa.staged_len(), 0, "staged packets dropped on giving up");
    // Retries are REKEY_TIMEOUT plus jitter apart: total span between 95 s and 102 s.
    // Now the network heals: new traffic starts afresh.
    s.filter = Box::new(|_, _| true);
    s.a_sends(b"again");
    assert_eq!(s.delivered_b, vec![ipv4(A_TUN, B_TUN, b"again")]);
}

#[test]
fn lost_response_is_recovered_by_retry() {
    let mut s = Sim::new(8, false, None);
    let mut dropped = false;
    s.filter = Box::new(move |side, d| {
        if side == Side::B && d[0] == 2 && !dropped {
            dropped = true;
            return false;
        }
        true
    });
    s.a_sends(b"x");
    assert!(s.delivered_b.is_empty());
    s.run_for(Duration::from_secs(6), Duration::from_millis(100));
    assert_eq!(s.count(Side::A, 1), 2);
    assert_eq!(s.delivered_b, vec![ipv4(A_TUN, B_TUN, b"x")]);
}

#[test]
fn rekey_after_time_by_the_initiator() {
    let mut s = Sim::new(9, false, None);
    s.a_sends(b"start");
    let first = s.a_current_index();
    // Keep traffic flowing both ways every 10 s for 130 s.
    for _ in 0..13 {
        s.run_for(Duration::from_secs(10), Duration::from_secs(1));
        s.a_sends(b"tick");
        s.b_sends(b"tock");
    }
    assert!(s.count(Side::A, 1) >= 2, "A rekeyed");
    assert_ne!(s.a_current_index(), first);
    assert_eq!(s.delivered_b.len(), 14);
    assert_eq!(s.delivered_a.len(), 13);
    assert!(s.drops.is_empty(), "{:?}", s.drops);
}

#[test]
fn responder_rekeys_only_at_reject_time() {
    // B (responder) keeps sending; it must not rekey at 120 s (only the initiator does), but
    // at 180 s its key expires and it must initiate.
    let mut s = Sim::new(10, false, None);
    s.a_sends(b"start");
    s.filter = Box::new(|side, _| side == Side::B); // A goes quiet on the wire
    s.run_for(Duration::from_secs(125), Duration::from_secs(1));
    s.b.send(s.now, &ipv4(B_TUN, A_TUN, b"at 125s")).unwrap();
    s.pump();
    assert_eq!(
        s.count(Side::B, 1),
        0,
        "responder does not rekey after REKEY_AFTER_TIME"
    );
    s.run_for(Duration::from_secs(56), Duration::from_secs(1));
    s.b.send(s.now, &ipv4(B_TUN, A_TUN, b"at 181s")).unwrap();
    s.pump();
    assert!(s.count(Side::B, 1) >= 1, "expired key: B initiates");
}

#[test]
fn rekey_after_messages() {
    let mut s = Sim::new(11, false, None);
    s.a_sends(b"start");
    let first = s.a_current_index();
    let a_peer = s.a_peer;
    // Handshakes are at most one per REKEY_TIMEOUT; wait that out first.
    s.run_for(REKEY_TIMEOUT, Duration::from_secs(1));
    s.a.peer_mut_for_test(a_peer)
        .keypairs
        .current_mut()
        .unwrap()
        .set_sending_counter(REKEY_AFTER_MESSAGES + 1);
    s.a_sends(b"over the limit");
    assert_eq!(
        s.count(Side::A, 1),
        2,
        "counter past REKEY_AFTER_MESSAGES triggers a handshake"
    );
    assert_ne!(s.a_current_index(), first);
    // At REJECT_AFTER_MESSAGES the key refuses to send at all.
    s.run_for(Duration::from_secs(6), Duration::from_secs(1));
    s.a.peer_mut_for_test(a_peer)
        .keypairs
        .current_mut()
        .unwrap()
        .set_sending_counter(REJECT_AFTER_MESSAGES);
    let sent_data = s.count(Side::A, 4);
    s.a_sends(b"refused");
    assert_eq!(s.count(Side::A, 1), 3, "exhausted key: new handshake");
    assert_eq!(
        s.count(Side::A, 4),
        sent_data + 1,
        "the packet went out on the new key only"
    );
    assert_eq!(s.delivered_b.last(), Some(&ipv4(A_TUN, B_TUN, b"refused")));
}

#[test]
fn keys_expire_and_are_zeroed_after_silence() {
    let mut s = Sim::new(12, false, None);
    s.a_sends(b"start");
    s.filter = Box::new(|_, _| false);
    s.run_for(
        REJECT_AFTER_TIME * 3 + Duration::from_secs(20),
        Duration::from_secs(1),
    );
    let pa = s.a.peer(s.a_peer).unwrap();
    assert!(
        pa.keypairs().is_empty(),
        "keys wiped after 3 x REJECT_AFTER_TIME"
    );
    assert!(s.b.peer(s.b_peer).unwrap().keypairs().is_empty());
    assert!(s.a.indices_len_for_test() <= 1, "indices released");
}

#[test]
fn expired_key_refuses_old_data() {
    let mut s = Sim::new(13, false, None);
    s.a_sends(b"start");
    // Capture a data message, then replay it late and again at once.
    let mut captured: Option<Vec<u8>> = None;
    s.a.send(s.now, &ipv4(A_TUN, B_TUN, b"capture me")).unwrap();
    let mut buf = vec![0u8; 2048];
    let t = s.a.poll_transmit(s.now, &mut buf).unwrap();
    captured.get_or_insert(buf[..t.len].to_vec());
    let src: SocketAddr = A_ADDR.parse().unwrap();
    let mut m = captured.clone().unwrap();
    assert!(matches!(
        s.b.handle_datagram(s.now, src, &mut m, false),
        Ok(Received::Data { .. })
    ));
    let mut m = captured.clone().unwrap();
    assert_eq!(
        s.b.handle_datagram(s.now, src, &mut m, false),
        Err(DropReason::Replay)
    );
    let mut m = captured.clone().unwrap();
    m[20] ^= 1;
    assert_eq!(
        s.b.handle_datagram(s.now, src, &mut m, false),
        Err(DropReason::DataAuth)
    );
    s.filter = Box::new(|_, _| false);
    s.run_for(REJECT_AFTER_TIME, Duration::from_secs(5));
    let mut m = captured.unwrap();
    assert_eq!(
        s.b.handle_datagram(s.now, src, &mut m, false),
        Err(DropReason::KeyExpired)
    );
}

#[test]
fn simultaneous_initiation_converges() {
    let mut s = Sim::new(14, false, None);
    // Both start a handshake before either message is delivered.
    s.a.send(s.now, &ipv4(A_TUN, B_TUN, b"from a")).unwrap();
    s.b.send(s.now, &ipv4(B_TUN, A_TUN, b"from b")).unwrap();
    s.pump();
    s.run_for(Duration::from_secs(12), Duration::from_millis(50));
    assert_eq!(s.delivered_b, vec![ipv4(A_TUN, B_TUN, b"from a")]);
    assert_eq!(s.delivered_a, vec![ipv4(B_TUN, A_TUN, b"from b")]);
    // Both ended with a usable session.
    s.a_sends(b"after");
    s.b_sends(b"after");
    assert_eq!(s.delivered_b.len(), 2);
    assert_eq!(s.delivered_a.len(), 2);
}

#[test]
fn cookie_reply_under_load() {
    let mut s = Sim::new(15, false, None);
    s.b_under_load = true;
    s.a_sends(b"under load");
    // B answered the first initiation with a cookie reply only.
    assert_eq!(s.count(Side::B, 3), 1);
    assert_eq!(s.count(Side::B, 2), 0);
    assert!(s.delivered_b.is_empty());
    // A's retry carries mac2 with the cookie and is accepted.
    s.run_for(Duration::from_secs(6), Duration::from_millis(100));
    assert_eq!(s.count(Side::B, 2), 1);
    assert_eq!(s.delivered_b, vec![ipv4(A_TUN, B_TUN, b"under load")]);
}

#[test]
fn unauthenticated_packets_get_no_reply_and_change_nothing() {
    let mut s = Sim::new(16, false, None);
    s.a_sends(b"start");
    let log = s.wire_log.len();
    let src: SocketAddr = "198.51.100.9:4444".parse().unwrap();
    let mut junk = vec![1u8, 0, 0, 0];
    junk.resize(148, 0x5a);
    assert_eq!(
        s.b.handle_datagram(s.now, src, &mut junk, false),
        Err(DropReason::InvalidMac1)
    );
    assert_eq!(
        s.b.handle_datagram(s.now, src, &mut junk.clone(), true),
        Err(DropReason::InvalidMac1)
    );
    let mut short = vec![4u8, 0, 0, 0, 1];
    assert_eq!(
        s.b.handle_datagram(s.now, src, &mut short, false),
        Err(DropReason::BadLength)
    );
    let mut unknown = vec![9u8; 40];
    assert_eq!(
        s.b.handle_datagram(s.now, src, &mut unknown, false),
        Err(DropReason::UnknownType)
    );
    s.pump();
    assert_eq!(
        s.wire_log.len(),
        log,
        "no reply to anything unauthenticated"
    );
    assert_eq!(
        s.b.peer(s.b_peer).unwrap().endpoint(),
        Some(A_ADDR.parse().unwrap())
    );
}

#[test]
fn inner_source_must_be_in_allowed_ips_and_roaming_updates_endpoint() {
    let mut s = Sim::new(17, false, None);
    s.a_sends(b"start");
    // A sends a packet whose inner source is not 10.0.0.1: B drops it after decrypting.
    s.a.send_to(s.now, s.a_peer, &ipv4([10, 9, 9, 9], B_TUN, b"spoof"))
        .unwrap();
    let mut buf = vec![0u8; 2048];
    let t = s.a.poll_transmit(s.now, &mut buf).unwrap();
    let roamed: SocketAddr = "203.0.113.5:60000".parse().unwrap();
    let mut m = buf[..t.len].to_vec();
    assert_eq!(
        s.b.handle_datagram(s.now, roamed, &mut m, false),
        Err(DropReason::SourceNotAllowed)
    );
    // The packet was authentic, so the endpoint moved (roaming), as in the kernel.
    assert_eq!(s.b.peer(s.b_peer).unwrap().endpoint(), Some(roamed));
    // Traffic to an address no peer owns is refused at send.
    assert_eq!(
        s.a.send(s.now, &ipv4(A_TUN, [10, 7, 7, 7], b"nowhere")),
        Err(DropReason::NoRoute)
    );
}

#[test]
fn removing_a_peer_stops_its_traffic() {
    let mut s = Sim::new(18, false, None);
    s.a_sends(b"start");
    s.a.send(s.now, &ipv4(A_TUN, B_TUN, b"in flight")).unwrap();
    let mut buf = vec![0u8; 2048];
    let t = s.a.poll_transmit(s.now, &mut buf).unwrap();
    s.b.remove_peer(s.b_peer).unwrap();
    let mut m = buf[..t.len].to_vec();
    assert_eq!(
        s.b.handle_datagram(s.now, A_ADDR.parse().unwrap(), &mut m, false),
        Err(DropReason::UnknownIndex)
    );
    assert_eq!(s.b.indices_len_for_test(), 0);
}

#[test]
fn under_load_each_source_is_rate_limited_after_its_burst() {
    let mut s = Sim::new(19, false, None);
    s.b_under_load = true;
    // Get a cookie: the first initiation is answered with a cookie reply.
    s.a.send(s.now, &ipv4(A_TUN, B_TUN, b"x")).unwrap();
    s.pump();
    assert_eq!(s.count(Side::B, 3), 1);
    // A's next initiation carries a valid mac2; take it off the wire instead of delivering it.
    let mut buf = vec![0u8; 2048];
    s.now.advance(REKEY_TIMEOUT);
    s.a.initiate_handshake(s.now, s.a_peer);
    let t = s.a.poll_transmit(s.now, &mut buf).unwrap();
    let init = buf[..t.len].to_vec();
    assert_eq!(init[0], 1);
    assert_ne!(&init[132..148], &[0u8; 16], "mac2 present");
    let src: SocketAddr = A_ADDR.parse().unwrap();
    let mut results = vec![];
    for _ in 0..8 {
        let mut m = init.clone();
        results.push(s.b.handle_datagram(s.now, src, &mut m, true));
    }
    assert!(
        matches!(results[0], Ok(Received::Initiation { .. })),
        "{:?}",
        results[0]
    );
    // Replays within the burst pass the rate limiter and are refused by the timestamp check;
    // past the burst of 5 they are refused before any DH work.
    assert!(
        results[1..5]
            .iter()
            .all(|r| matches!(r, Err(DropReason::Handshake(_)))),
        "{results:?}"
    );
    assert!(
        results[5..]
            .iter()
            .all(|r| *r == Err(DropReason::RateLimited)),
        "{results:?}"
    );
}

#[test]
fn receiver_indices_are_random_and_never_collide() {
    use rand_core::{CryptoRng, RngCore};
    /// Yields the index 7 three times, then 8, then zeros: an adversarially repetitive RNG.
    struct Repeats(Vec<u32>);
    impl RngCore for Repeats {
        fn next_u32(&mut self) -> u32 {
            if self.0.is_empty() {
                0
            } else {
                self.0.remove(0)
            }
        }
        fn next_u64(&mut self) -> u64 {
            0
        }
        fn fill_bytes(&mut self, d: &mut [u8]) {
            d.fill(0x42);
        }
        fn try_fill_bytes(&mut self, d: &mut [u8]) -> Result<(), rand_core::Error> {
            self.fill_bytes(d);
            Ok(())
        }
    }
    impl CryptoRng for Repeats {}
    let mut rng = ChaCha20Rng::seed_from_u64(20);
    let mut dev = Device::new(PrivateKey::generate(&mut rng), Repeats(vec![7, 7, 7, 8]));
    let now = Now::new(Instant::from_nanos(0), Duration::from_secs(1_700_000_000));
    let p1 = dev
        .add_peer(
            now,
            PrivateKey::generate(&mut rng).public_key(),
            PeerConfig::default(),
        )
        .unwrap();
    let p2 = dev
        .add_peer(
            now,
            PrivateKey::generate(&mut rng).public_key(),
            PeerConfig::default(),
        )
        .unwrap();
    dev.initiate_handshake(now, p1);
    dev.initiate_handshake(now, p2);
    let i1 = dev.peer(p1).unwrap().handshake.held_index();
    let i2 = dev.peer(p2).unwrap().handshake.held_index();
    assert_eq!(
        (i1, i2),
        (Some(7), Some(8)),
        "the colliding draws of 7 were skipped"
    );
    assert_eq!(dev.indices_len_for_test(), 2);
}

#[test]
fn debug_output_never_contains_key_material() {
    let mut s = Sim::new(21, true, None);
    s.a_sends(b"secret-bearing session");
    let dbg = format!(
        "{:?} {:?} {:?}",
        s.a,
        s.a.peer(s.a_peer).unwrap(),
        s.b.peer(s.b_peer).unwrap()
    );
    let keypair = s.a.peer(s.a_peer).unwrap().keypairs().current().unwrap();
    for secret in [keypair.sending_key(), keypair.receiving_key()] {
        assert!(
            !dbg.contains(&format!("{:?}", &secret[..4])),
            "raw key bytes in Debug"
        );
        assert!(!dbg.contains(&hex::encode(secret)));
    }
    assert!(
        !dbg.contains("sending_key") && !dbg.contains("chaining_key") && !dbg.contains("preshared")
    );
}

// ---- configuration changes on a running interface (`wg set`) ----------------------------

#[test]
fn changed_private_key_retires_sessions_until_the_peer_learns_the_new_key() {
    let mut s = Sim::new(40, false, None);
    s.a_sends(b"before");
    assert_eq!(s.delivered_b.len(), 1);
    let new_b = PrivateKey::generate(&mut ChaCha20Rng::seed_from_u64(41));
    assert_eq!(s.b.set_private_key(new_b.clone()), None);
    assert_eq!(s.b.indices_len_for_test(), 0, "B's keypairs are retired");
    // A still sends on its old session: B no longer knows the index.
    s.a_sends(b"old session");
    assert_eq!(s.delivered_b.len(), 1);
    assert!(
        s.drops.contains(&(Side::A, DropReason::UnknownIndex)),
        "{:?}",
        s.drops
    );
    // A's initiations are encrypted to B's old static key: B cannot answer them.
    let responses = s.count(Side::B, 2);
    s.a.initiate_handshake(s.now, s.a_peer);
    s.pump();
    assert_eq!(s.count(Side::B, 2), responses);
    // Once A has the new key, the handshake and data work again.
    s.a.remove_peer(s.a_peer).unwrap();
    s.a_peer =
        s.a.add_peer(
            s.now,
            new_b.public_key(),
            PeerConfig {
                endpoint: Some(B_ADDR.parse().unwrap()),
                allowed_ips: vec![prefix("10.0.0.2/32")],
                ..Default::default()
            },
        )
        .unwrap();
    s.run_for(REKEY_TIMEOUT * 2, Duration::from_millis(100));
    s.a_sends(b"after");
    assert_eq!(
        s.delivered_b.last(),
        Some(&ipv4(A_TUN, B_TUN, b"after")),
        "{:?}",
        s.drops
    );
}

#[test]
fn setting_our_own_public_key_as_a_peer_removes_that_peer() {
    let mut s = Sim::new(42, false, None);
    // B takes A's identity: its peer "A" would be itself, and goes (as in the kernel).
    let a_key = s.a.private_key().clone();
    assert_eq!(s.b.set_private_key(a_key), Some(s.b_peer));
    assert!(s.b.peer(s.b_peer).is_none());
}

#[test]
fn changed_preshared_key_applies_to_the_next_handshake() {
    let mut s = Sim::new(43, true, None);
    s.a_sends(b"with psk");
    assert_eq!(s.delivered_b.len(), 1);
    let other = PresharedKey::generate(&mut ChaCha20Rng::seed_from_u64(44));
    s.b.set_preshared_key(s.b_peer, other.clone()).unwrap();
    // The running session is unaffected.
    s.a_sends(b"same session");
    assert_eq!(s.delivered_b.len(), 2);
    // A new handshake with mismatched keys completes on B's side only: A cannot open the
    // response, so it gets no new keypair.
    let before = s.a_current_index();
    s.now.advance(REKEY_TIMEOUT + Duration::from_secs(1));
    let (inits, responses) = (s.count(Side::A, 1), s.count(Side::B, 2));
    s.a.initiate_handshake(s.now, s.a_peer);
    s.pump();
    assert_eq!(
        (s.count(Side::A, 1), s.count(Side::B, 2)),
        (inits + 1, responses + 1)
    );
    assert_eq!(s.a_current_index(), before);
    s.a.set_preshared_key(s.a_peer, other).unwrap();
    s.run_for(REKEY_TIMEOUT * 2, Duration::from_millis(100));
    assert_ne!(
        s.a_current_index(),
        before,
        "the retried handshake succeeds: {:?} {:?}",
        s.drops,
        s.wire_log
    );
}

#[test]
fn persistent_keepalive_turned_on_sends_at_once_and_off_stops() {
    let mut s = Sim::new(45, false, None);
    s.a_sends(b"up");
    s.run_for(Duration::from_secs(30), Duration::from_secs(1));
    let k0 = s.count(Side::A, 4);
    s.a.set_persistent_keepalive(s.now, s.a_peer, Duration::from_secs(10))
        .unwrap();
    s.pump();
    assert_eq!(s.count(Side::A, 4), k0 + 1, "a keepalive at once");
    s.run_for(Duration::from_secs(35), Duration::from_secs(1));
    let k1 = s.count(Side::A, 4);
    assert!((k0 + 4..=k0 + 5).contains(&k1), "every 10 s: {}", k1 - k0);
    s.a.set_persistent_keepalive(s.now, s.a_peer, Duration::ZERO)
        .unwrap();
    s.run_for(Duration::from_secs(60), Duration::from_secs(1));
    assert_eq!(s.count(Side::A, 4), k1, "off: no more keepalives");
}
