//! Handshakes per second on one control core (issue 14, item 5), through the same `Device`
//! control runs:
//!
//! - `responder/initiation`: one initiation handled and its response written: the MAC1
//!   check, the four DH operations and the hashing of the responder's side (a fresh initiation
//!   each time, made outside the timed part).
//! - `responder/cookie_reply`: the flood case, under load: MAC1 checked, no MAC2, so a cookie
//!   reply is written instead (no DH).
//! - `x25519/dh`: one Diffie-Hellman as the protocol's code does it (aws-lc), the unit most
//!   of the first case is made of; `x25519/dh_reference`: the same by x25519-dalek, in the
//!   same run.
//!
//! `cargo bench -p proto --bench handshake`

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use proto::allowedips::Prefix;
use proto::device::{Device, PeerConfig, PeerId};
use proto::keys::PrivateKey;
use proto::time::{Instant, Now};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use std::net::SocketAddr;
use std::time::Duration;

const INITIATOR: &str = "198.18.0.2:40000";
const RESPONDER: &str = "198.18.0.1:51820";

struct Pair {
    now: Now,
    initiator: Device<ChaCha20Rng>,
    responder: Device<ChaCha20Rng>,
    peer: PeerId,
}

fn pair() -> Pair {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let a = PrivateKey::generate(&mut rng);
    let b = PrivateKey::generate(&mut rng);
    let now = Now::new(
        Instant::from_nanos(1_000_000_000),
        Duration::from_secs(1_700_000_000),
    );
    let mut initiator = Device::new(a.clone(), ChaCha20Rng::seed_from_u64(2));
    let mut responder = Device::new(b.clone(), ChaCha20Rng::seed_from_u64(3));
    let peer = initiator
        .add_peer(
            now,
            b.public_key(),
            PeerConfig {
                endpoint: Some(RESPONDER.parse().unwrap()),
                allowed_ips: vec![Prefix::new("10.0.0.1".parse().unwrap(), 32).unwrap()],
                ..PeerConfig::default()
            },
        )
        .unwrap();
    responder
        .add_peer(
            now,
            a.public_key(),
            PeerConfig {
                allowed_ips: vec![Prefix::new("10.0.0.2".parse().unwrap(), 32).unwrap()],
                ..PeerConfig::default()
            },
        )
        .unwrap();
    Pair {
        now,
        initiator,
        responder,
        peer,
    }
}

impl Pair {
    /// A new initiation from the initiator, a REKEY_TIMEOUT later than the last (so that
    /// neither side refuses it as too soon or as a replayed timestamp).
    fn initiation(&mut self) -> Vec<u8> {
        self.now.advance(Duration::from_secs(6));
        self.initiator.initiate_handshake(self.now, self.peer);
        let mut buf = [0u8; 256];
        let t = self
            .initiator
            .poll_transmit(self.now, &mut buf)
            .expect("an initiation");
        buf[..t.len].to_vec()
    }
}

fn responder(c: &mut Criterion) {
    let src: SocketAddr = INITIATOR.parse().unwrap();
    let mut g = c.benchmark_group("responder");
    g.throughput(Throughput::Elements(1));
    let mut p = pair();
    g.bench_function("initiation", |b| {
        // Each initiation is made untimed; only the responder's handling is timed (a clock
        // read around a ~100 µs operation).
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                let mut msg = p.initiation();
                let now = p.now;
                let start = std::time::Instant::now();
                let r = p.responder.handle_datagram(now, src, &mut msg, false);
                let mut out = [0u8; 256];
                let t = p.responder.poll_transmit(now, &mut out);
                spent += start.elapsed();
                assert!(r.is_ok(), "{r:?}");
                assert_eq!(t.map(|t| t.len), Some(92));
            }
            spent
        })
    });
    let mut p = pair();
    let msg = p.initiation();
    g.bench_function("cookie_reply", |b| {
        b.iter_batched(
            || msg.clone(),
            |mut m| {
                let now = p.now;
                let r = p.responder.handle_datagram(now, src, &mut m, true);
                assert!(r.is_ok(), "{r:?}");
                let mut out = [0u8; 256];
                let t = p
                    .responder
                    .poll_transmit(now, &mut out)
                    .expect("a cookie reply");
                assert_eq!(t.len, 64);
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn x25519(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::seed_from_u64(4);
    let a = PrivateKey::generate(&mut rng);
    let b = PrivateKey::generate(&mut rng).public_key();
    let mut g = c.benchmark_group("x25519");
    g.throughput(Throughput::Elements(1));
    g.bench_function("dh", |bench| {
        bench.iter(|| proto::crypto::dh(a.as_bytes(), b.as_bytes()).map(drop))
    });
    g.bench_function("dh_reference", |bench| {
        bench.iter(|| proto::crypto::dh_reference(a.as_bytes(), b.as_bytes()).map(drop))
    });
    g.finish();
}

criterion_group!(benches, responder, x25519);
criterion_main!(benches);
