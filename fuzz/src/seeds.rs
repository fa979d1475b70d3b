//! The seed corpus: real inputs for every target, from the project's own vectors (the
//! wireguard-go transcript, packets the kernel produced, the fixture configurations, UAPI
//! requests as `wg` sends them, a region as control creates it). Written to `fuzz/corpus/` by
//! `cargo run -p wgxdp-fuzz --example write-seeds`; the committed files are what CI replays.

use contract::layout::encode_prefix;
use contract::{PeerRecord, SessionRecord, WorkerEvent};
use dataplane::packet::{encapsulate, Route, ETH_LEN, HEADROOM};
use std::net::SocketAddr;

/// A seed: target, file name, bytes.
pub type Seed = (&'static str, String, Vec<u8>);

// The handshake transcript recorded with wireguard-go (`proto/src/noise_vectors.rs`).
pub const INITIATOR_INITIATION: &str = "01000000443322117b0d47d93427f8311160781c7c733fd89f88970aef490d8aa0ee19a4cb8a1b1481e498317da959fba46669572516a5e6c021bfa620bb6c56ca0082e1feae14988c2c64d024c617734a263f76a008df04d0f94bad8ee75ec8fcc26955822044b2d7331053ca37046285bfbc8490b299e96af9ef365b2c7cfa7584a3a400000000000000000000000000000000";
pub const INITIATOR_RESPONSE: &str = "0200000017c668fa44332211f8b42abd326223d423c832088b8eb0875e4253e0666816f5c8450a62041eda3b89cd8e3e91c4a8698de2300e107d9e0e5d7d20c4eec54f03e3378e95d713f83300000000000000000000000000000000";
pub const INITIATOR_DATA: &str = "040000004433221100000000000000005a59a0f98d4688316c84a20eb2fbac46e06ffbb8b68664dc5f5d233397fe7e723d0cac1528b05ab939d5a617eff63f9f";
pub const RESPONDER_INITIATION: &str = "01000000373aa629c958a2304a8359e7a91873c76cbf873dbcdcb36482b26121faf2ea40478c573125469cf1fa1e048ce58040de265c19abafea4adcfbb26d7ad2b6ae0c8f8d46ed561148acc2748dde193584995c3ac0ffab599671850c08a7df10132eb2bd18a3042eb88d41bfbc9538ebdb296d60254060549bb5e73f63e298d9179d00000000000000000000000000000000";
pub const RESPONDER_RESPONSE: &str = "0200000088776655373aa629ff2ee45601ec1b67310c7790404585ae697331eee1c1f8cf2419731c1fff3e6b4da84208e88556390bac5bcf66c5e3cd1de52a4e337f906a3c7d393ad284b46600000000000000000000000000000000";
pub const RESPONDER_DATA: &str = "0400000088776655000000000000000066d36554a0dc183488a1b9a490388db383ae19f55c078c9c16705bb2a24bda3b74eb1e02a23451f4e39e76dc652e7b8d3ee67a8859ce5042eff243c1a7c6c08fcdbe5386ff83f6852fe49f67cb8130646741bd6e8233cc563ca15439dc89c5767566e59379fac4eee627677660fcfeea";

// Packets the kernel produced (`proto/src/wire/mod.rs`, `captured`).
const IPV4_UDP: &str = "45000023d88340004011dde1c0000201c0000263ca6c0035000f50dc77677864702100";
const IPV6_UDP: &str = "60056a2f0017114020010db800000000000000000000000120010db8000000000000000000000099ca6c119400176d0a68656c6c6f20776972656775617264";
const IPV4_ICMP_ECHO: &str =
    "4500002452ab4000400163c9c0000201c000026308009aafa5bb000170696e6764617461";
const IPV6_ICMP_ECHO: &str = "600e95d100113a4020010db800000000000000000000000120010db800000000000000000000009980009056a5bc000170696e676461746136";

const FIXTURES: &[(&str, &str)] = &[
    (
        "mesh-dolores",
        include_str!("../../control/src/config/fixtures/mesh-dolores.conf"),
    ),
    (
        "mesh-maeve",
        include_str!("../../control/src/config/fixtures/mesh-maeve.conf"),
    ),
    (
        "openbsd-phone",
        include_str!("../../control/src/config/fixtures/openbsd-phone.conf"),
    ),
    (
        "openbsd-server",
        include_str!("../../control/src/config/fixtures/openbsd-server.conf"),
    ),
    (
        "wg-quick-server",
        include_str!("../../control/src/config/fixtures/wg-quick-server.conf"),
    ),
];

fn bytes(hex: &str) -> Vec<u8> {
    hex::decode(hex).expect("a hex constant")
}

fn ethernet(ethertype: u16, packet: &[u8]) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(packet);
    f
}

/// A `frames` input: flags, 16-bit start and length, then the chunk.
fn frames_input(flags: u8, start: usize, frame: &[u8]) -> Vec<u8> {
    let mut chunk = vec![0u8; start];
    chunk.extend_from_slice(frame);
    let mut v = vec![flags];
    v.extend_from_slice(&(start as u16).to_le_bytes());
    v.extend_from_slice(&(frame.len() as u16).to_le_bytes());
    v.extend_from_slice(&chunk);
    v
}

/// A `device` operation carrying bytes: op, 16-bit length, bytes.
fn op(code: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![code];
    v.extend_from_slice(&(payload.len() as u16).to_le_bytes());
    v.extend_from_slice(payload);
    v
}

/// An IPv4 packet from the device's tunnel to the recorded peer's (198.19.0.1 → 198.19.0.2).
fn ping_to_peer() -> Vec<u8> {
    let mut p = bytes(IPV4_ICMP_ECHO);
    p[12..16].copy_from_slice(&[198, 19, 0, 1]);
    p[16..20].copy_from_slice(&[198, 19, 0, 2]);
    p
}

pub fn all() -> Vec<Seed> {
    let mut s: Vec<Seed> = Vec::new();
    let mut add = |target: &'static str, name: &str, data: Vec<u8>| {
        s.push((target, format!("seed-{name}"), data));
    };

    for (name, hex) in [
        ("initiator-initiation", INITIATOR_INITIATION),
        ("initiator-response", INITIATOR_RESPONSE),
        ("initiator-data", INITIATOR_DATA),
        ("responder-initiation", RESPONDER_INITIATION),
        ("responder-response", RESPONDER_RESPONSE),
        ("responder-data", RESPONDER_DATA),
    ] {
        add("messages", name, bytes(hex));
    }
    let mut cookie = vec![3u8, 0, 0, 0];
    cookie.resize(64, 0x5a);
    add("messages", "cookie-reply", cookie);

    let packets = [
        ("ipv4-udp", 0x0800, IPV4_UDP),
        ("ipv6-udp", 0x86dd, IPV6_UDP),
        ("ipv4-icmp-echo", 0x0800, IPV4_ICMP_ECHO),
        ("ipv6-icmp-echo", 0x86dd, IPV6_ICMP_ECHO),
    ];
    for (name, ethertype, hex) in packets {
        add("packets", name, bytes(hex));
        add(
            "packets",
            &format!("eth-{name}"),
            ethernet(ethertype, &bytes(hex)),
        );
        // A LAN frame in a chunk after the kernel's headroom, padded as short frames are.
        let mut frame = ethernet(ethertype, &bytes(hex));
        frame.resize(frame.len().max(60), 0);
        add(
            "frames",
            &format!("lan-{name}"),
            frames_input(0, HEADROOM, &frame),
        );
        add(
            "frames",
            &format!("lan-v6-{name}"),
            frames_input(2, 0, &frame),
        );
    }
    for v6 in [false, true] {
        let frame = wan_frame(&bytes(IPV4_UDP), v6);
        let name = if v6 { "wan-ipv6" } else { "wan-ipv4" };
        add("frames", name, frames_input(0, HEADROOM, &frame));
    }

    // The responder's transcript: initiation, then data; the initiator's: a packet to send
    // (which starts the handshake), the response, then data. Bit 1: external data path.
    let mut responder = vec![0u8];
    responder.extend(op(0, &bytes(RESPONDER_INITIATION)));
    responder.extend(op(0, &bytes(RESPONDER_DATA)));
    add("device", "responder", responder.clone());
    responder[0] = 2;
    add("device", "responder-external", responder);
    let mut initiator = vec![1u8];
    initiator.extend(op(3, &ping_to_peer()));
    initiator.extend(op(0, &bytes(INITIATOR_RESPONSE)));
    initiator.extend(op(0, &bytes(INITIATOR_DATA)));
    // Two minutes later: rekey and expiry timers fire.
    initiator.extend([2, 0x30, 0x2e]);
    add("device", "initiator", initiator);

    for (name, text) in FIXTURES {
        add("config", name, text.as_bytes().to_vec());
    }

    for (name, body) in uapi_requests() {
        add("uapi", name, body.into_bytes());
    }

    // No region seeds: a region now holds the allowed-IPs table's directories (32 MiB at
    // least), too large to commit. The version-7 seeds stay as regressions of attach's checks.

    let event_words = |e: WorkerEvent| words_bytes(&e.encode());
    add(
        "records",
        "need-session",
        event_words(WorkerEvent::NeedSession { peer: 3 }),
    );
    let from: SocketAddr = "[2001:db8::2]:51820".parse().expect("address");
    add(
        "records",
        "endpoint-v6",
        event_words(WorkerEvent::Endpoint { peer: 1, from }),
    );
    add("records", "session", words_bytes(&session().encode()));
    add("records", "peer", words_bytes(&peer().encode()));
    add(
        "records",
        "prefix",
        words_bytes(&encode_prefix([10, 1, 0, 0].into(), 16, 2)),
    );
    for (name, choice, lens) in [
        // A window of MTU-sized packets (the lanes sealing, ring opening), then a few more.
        ("burst-1420", 0, vec![1420; 66]),
        // Every limit: empty, partial and whole blocks, 1023/1024, 1600/1601, past 2000;
        // once with the workers' crossover, once without ring.
        ("every-limit", 0, AEAD_LIMITS.to_vec()),
        ("every-limit-no-ring", 4, AEAD_LIMITS.to_vec()),
        // Small packets, all to ring (crossover 0).
        ("small-ring", 1, vec![64, 16, 0, 48, 128, 80, 64, 64]),
    ] {
        add("aead", name, aead_input(choice, &lens));
    }
    s
}

/// Text lengths across the AEAD's limits, for the `aead` seeds.
const AEAD_LIMITS: [u16; 18] = [
    0, 1, 15, 16, 63, 64, 65, 255, 256, 511, 512, 1023, 1024, 1420, 1600, 1601, 2000, 2047,
];

/// An `aead` input: three keys, the crossover choice, then per packet a key (in turn), a
/// counter, the length and a flip (every other packet forged), then text bytes.
fn aead_input(choice: u8, lens: &[u16]) -> Vec<u8> {
    let mut d: Vec<u8> = (0..96u8)
        .map(|i| i.wrapping_mul(37).wrapping_add(1))
        .collect();
    d.push(choice);
    d.push(u8::try_from(lens.len() - 1).expect("at most 70 packets"));
    for (i, &len) in lens.iter().enumerate() {
        d.push(i as u8 % 3);
        d.extend_from_slice(&(i as u16).to_le_bytes());
        d.extend_from_slice(&len.to_le_bytes());
        let flip: u16 = if i % 2 == 1 { (i as u16) << 5 | 1 } else { 0 };
        d.extend_from_slice(&flip.to_le_bytes());
    }
    d.extend(b"wgxdp seals and opens whatever the batch holds.".iter());
    d
}

fn words_bytes(words: &[u64]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

fn session() -> SessionRecord {
    SessionRecord {
        local_index: 0x5566_7788,
        remote_index: 0x2aa6_3a37,
        peer: 0,
        flags: SessionRecord::VALID | SessionRecord::SENDABLE,
        birth_ns: 1_000_000_000,
        send_key: [1; 32],
        recv_key: [2; 32],
    }
}

fn peer() -> PeerRecord {
    PeerRecord {
        valid: true,
        endpoint: Some("198.18.0.2:51820".parse().expect("address")),
        current_session: 0,
        key_tag: 0x0123_4567_89ab_cdef,
    }
}

/// A WAN frame carrying `packet` sealed in a data message, as a peer sends it.
fn wan_frame(packet: &[u8], v6: bool) -> Vec<u8> {
    let (src, dst) = if v6 {
        ("[2001:db8::2]:40000", "[2001:db8::1]:51820")
    } else {
        ("198.18.0.2:40000", "198.18.0.1:51820")
    };
    let route = Route {
        src: src.parse().expect("address"),
        dst: dst.parse().expect("address"),
        src_mac: [2, 0, 0, 0, 0, 2],
        dst_mac: [2, 0, 0, 0, 0, 1],
    };
    let inner = HEADROOM + ETH_LEN;
    let mut chunk = vec![0u8; inner + packet.len() + 64];
    chunk[inner..inner + packet.len()].copy_from_slice(packet);
    let (s, l) = encapsulate(
        &mut chunk,
        inner,
        packet.len(),
        &[7; 32],
        9,
        3,
        &route,
        1420,
    )
    .expect("room to encapsulate");
    chunk[s..s + l].to_vec()
}

/// `set=1` bodies as `wg set`/`wg setconf` send them (after the `set=1` line).
fn uapi_requests() -> Vec<(&'static str, String)> {
    let k1 = "e84b5a6d2717c1003a13b431570353dbaca9146cf150c5f8575680feba52027a";
    let k2 = "58402e695ba1772b1cc9309755f043251ea77fdcf10fbe63989ceb7e19321376";
    vec![
        (
            "setconf",
            format!(
                "private_key={k1}\nlisten_port=51820\nfwmark=7\nreplace_peers=true\n\
                 public_key={k2}\npreshared_key={k1}\nprotocol_version=1\n\
                 endpoint=[2001:db8::1]:51820\npersistent_keepalive_interval=25\n\
                 replace_allowed_ips=true\nallowed_ip=192.95.5.65/27\nallowed_ip=-10.0.0.0/8\n\
                 allowed_ip=::/0\n\n"
            ),
        ),
        (
            "remove-and-update",
            format!("public_key={k1}\nremove=true\npublic_key={k2}\nupdate_only=true\nendpoint=192.0.2.1:1\n\n"),
        ),
        ("listen-port", "listen_port=0\n\n".to_string()),
    ]
}
