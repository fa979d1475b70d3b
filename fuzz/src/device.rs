//! The protocol core's receive path (`proto::device::Device::handle_datagram`) driven by a
//! script of datagrams, packets to send and clock steps.
//!
//! The device is the responder or the initiator of the transcript recorded with wireguard-go
//! (`proto/src/noise_vectors.rs`): the same keys, and randomness that replays the recorded
//! receiver index and ephemeral first. So a seed holding the recorded messages completes the
//! handshake and opens the recorded data, and the fuzzer mutates from a live session rather
//! than from datagrams that die at mac1.
//!
//! Input: a scenario byte (bit 0: initiator; bit 1: external data path, as under XDP), then
//! operations until the input ends. Operation byte `op`:
//! - `op & 3` 0 or 1: a datagram (`u16` length, then bytes) from one of two sources (bit 2),
//!   under load if `op & 3 == 1`;
//! - 2: the clock moves on by a `u16` count of 10 ms steps, then `handle_timeout`;
//! - 3: a plaintext packet to send (`u16` length, then bytes).
//!
//! After each operation everything the device has to transmit is taken. Properties: no panic;
//! a data packet's range lies inside the datagram, between header and tag, and is a whole IP
//! packet; the device never has endlessly many datagrams to send.

use crate::Input;
use proto::allowedips::Prefix;
use proto::device::{Device, PeerConfig, Received};
use proto::keys::PrivateKey;
use proto::time::{Instant, Now};
use rand_core::{CryptoRng, RngCore};
use std::net::SocketAddr;
use std::time::Duration;

/// The recorded peer's address, and a second source (roaming, cookies per address).
const PEER: &str = "198.18.0.2:51820";
const OTHER: &str = "198.18.0.3:40000";
/// Room for a transmitted datagram: the largest packet `send` accepts plus the overhead.
const OUT_LEN: usize = 65_535 + 64;
/// More datagrams after one operation than any operation can cause.
const MAX_TRANSMITS: usize = 10_000;

/// A key of the transcript: `b` repeated, clamped as `wg genkey` clamps.
pub(crate) fn key(b: u8) -> [u8; 32] {
    let mut k = [b; 32];
    proto::keys::clamp(&mut k);
    k
}

/// The transcript's clock: recorded at Unix time 1 700 000 000.5 s.
pub(crate) fn start() -> Now {
    Now::new(
        Instant::from_nanos(0),
        Duration::new(1_700_000_000, 500_000_000),
    )
}

/// Randomness that first replays `prefix` (the recorded index and ephemeral), then a fixed
/// SplitMix64 stream: deterministic, so every crash reproduces from its input alone, and never
/// periodic, so index allocation cannot loop.
#[derive(Debug)]
pub(crate) struct ScriptedRng {
    prefix: Vec<u8>,
    pos: usize,
    state: u64,
}

impl ScriptedRng {
    pub(crate) fn new(prefix: Vec<u8>) -> Self {
        Self {
            prefix,
            pos: 0,
            state: 0x5eed,
        }
    }
}

impl RngCore for ScriptedRng {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        self.fill_bytes(&mut b);
        u32::from_le_bytes(b)
    }

    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.fill_bytes(&mut b);
        u64::from_le_bytes(b)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for d in dest {
            *d = match self.prefix.get(self.pos) {
                Some(b) => *b,
                None => {
                    self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
                    let mut z = self.state;
                    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                    (z ^ (z >> 31)) as u8
                }
            };
            self.pos += 1;
        }
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

// Only a test stand-in: the fuzzer needs reproducible "randomness".
impl CryptoRng for ScriptedRng {}

/// The device of the transcript in either role, with the recorded peer configured.
pub(crate) fn transcript_device(initiator: bool) -> Device<ScriptedRng> {
    // What the recorded side drew first: its receiver index (little-endian), then (the
    // initiator) the retransmission timer's jitter, then its ephemeral.
    let prefix = if initiator {
        [&0x1122_3344u32.to_le_bytes()[..], &[0; 8], &key(0x33)].concat()
    } else {
        [&0x5566_7788u32.to_le_bytes()[..], &key(0x44)].concat()
    };
    let mut dev = Device::new(PrivateKey::from_bytes(key(0x11)), ScriptedRng::new(prefix));
    let theirs = PrivateKey::from_bytes(key(0x22)).public_key();
    let config = PeerConfig {
        endpoint: Some(PEER.parse().expect("address")),
        allowed_ips: vec![Prefix::new([198, 19, 0, 0].into(), 24).expect("prefix")],
        ..PeerConfig::default()
    };
    dev.add_peer(start(), theirs, config)
        .expect("a new peer that is not ourselves");
    dev
}

pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let scenario = input.u8();
    let external = scenario & 2 != 0;
    let mut dev = transcript_device(scenario & 1 != 0);
    dev.set_external_data_path(external);
    let sources: [SocketAddr; 2] = [
        PEER.parse().expect("address"),
        OTHER.parse().expect("address"),
    ];
    let mut now = start();
    let mut out = vec![0u8; OUT_LEN];
    while !input.is_empty() {
        let op = input.u8();
        match op & 3 {
            0 | 1 => {
                let n = usize::from(input.u16());
                let mut datagram = input.bytes(n).to_vec();
                let src = sources[usize::from(op >> 2 & 1)];
                let r = dev.handle_datagram(now, src, &mut datagram, op & 3 == 1);
                if let Ok(Received::Data { range, .. }) = r {
                    assert!(range.start >= 16 && range.end + 16 <= datagram.len());
                    let packet = &datagram[range.clone()];
                    assert_eq!(proto::wire::inner_packet_len(packet), Ok(range.len()));
                }
            }
            2 => {
                now.advance(Duration::from_millis(u64::from(input.u16()) * 10));
                dev.handle_timeout(now);
            }
            _ => {
                let n = usize::from(input.u16());
                let _ = dev.send(now, input.bytes(n));
            }
        }
        drain(&mut dev, now, &mut out);
    }
}

/// Takes every datagram and event the device has ready.
fn drain(dev: &mut Device<ScriptedRng>, now: Now, out: &mut [u8]) {
    let mut n = 0;
    while let Some(t) = dev.poll_transmit(now, out) {
        assert!(t.len <= out.len());
        n += 1;
        assert!(n < MAX_TRANSMITS, "poll_transmit never runs dry");
    }
    while let Some(e) = dev.poll_event() {
        // Keys announced here may already be retired by a later event of the same step.
        if let proto::device::Event::SessionEstablished { local_index, .. } = e {
            let _ = dev.keypair(local_index);
        }
        n += 1;
        assert!(n < MAX_TRANSMITS, "poll_event never runs dry");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seeds;

    fn datagram(
        dev: &mut Device<ScriptedRng>,
        now: Now,
        hex: &str,
    ) -> Result<Received, proto::device::DropReason> {
        let mut d = hex::decode(hex).unwrap();
        dev.handle_datagram(now, PEER.parse().unwrap(), &mut d, false)
    }

    /// The seeds reach a live session: the responder answers the recorded initiation and
    /// opens the recorded data, so mutations start past mac1 and the handshake.
    #[test]
    fn responder_replays_the_transcript() {
        let mut dev = transcript_device(false);
        let r = datagram(&mut dev, start(), seeds::RESPONDER_INITIATION).unwrap();
        assert!(matches!(r, Received::Initiation { .. }));
        let mut out = vec![0u8; OUT_LEN];
        let t = dev.poll_transmit(start(), &mut out).unwrap();
        assert_eq!(
            hex::encode(&out[..t.len]),
            seeds::RESPONDER_RESPONSE,
            "the recorded response, byte for byte"
        );
        let r = datagram(&mut dev, start(), seeds::RESPONDER_DATA).unwrap();
        assert!(matches!(r, Received::Data { .. }), "{r:?}");
    }

    #[test]
    fn initiator_replays_the_transcript() {
        let mut dev = transcript_device(true);
        let ping = {
            let seeds = seeds::all();
            let input = &seeds.iter().find(|s| s.1 == "seed-initiator").unwrap().2;
            input[4..4 + usize::from(u16::from_le_bytes([input[2], input[3]]))].to_vec()
        };
        let _ = dev.send(start(), &ping);
        let mut out = vec![0u8; OUT_LEN];
        let t = dev.poll_transmit(start(), &mut out).unwrap();
        assert_eq!(
            hex::encode(&out[..t.len]),
            seeds::INITIATOR_INITIATION,
            "the recorded initiation, byte for byte"
        );
        let r = datagram(&mut dev, start(), seeds::INITIATOR_RESPONSE).unwrap();
        assert!(matches!(r, Received::Response { .. }), "{r:?}");
        let r = datagram(&mut dev, start(), seeds::INITIATOR_DATA).unwrap();
        assert!(matches!(r, Received::Data { .. }), "{r:?}");
    }
}
