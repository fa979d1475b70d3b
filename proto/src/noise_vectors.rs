//! Known answers from a real peer: a handshake transcript recorded with wireguard-go by
//! `testbed/tests/capture_wireguard_go_vectors.rs`, in both roles. Our messages are made from
//! fixed keys, ephemerals, indices and timestamp, so they must come out byte for byte as the
//! ones wireguard-go accepted; wireguard-go's messages must consume, and its data must open
//! under the keys we derive.

use super::*;
use crate::cookie::{Cookie, CookieChecker, MacState};
use crate::messages::{INITIATION_LEN, RESPONSE_LEN};
use crate::testutil::FixedRng;
use crate::wire::{Icmpv4Packet, Icmpv4Type, Ipv4Packet};
use std::net::Ipv4Addr;

// Recorded 2026-11-27 against wireguard-go (Debian 12 package) over a veth pair.
const INITIATOR_INITIATION: &str = "01000000443322117b0d47d93427f8311160781c7c733fd89f88970aef490d8aa0ee19a4cb8a1b1481e498317da959fba46669572516a5e6c021bfa620bb6c56ca0082e1feae14988c2c64d024c617734a263f76a008df04d0f94bad8ee75ec8fcc26955822044b2d7331053ca37046285bfbc8490b299e96af9ef365b2c7cfa7584a3a400000000000000000000000000000000";
const INITIATOR_RESPONSE: &str = "0200000017c668fa44332211f8b42abd326223d423c832088b8eb0875e4253e0666816f5c8450a62041eda3b89cd8e3e91c4a8698de2300e107d9e0e5d7d20c4eec54f03e3378e95d713f83300000000000000000000000000000000";
const INITIATOR_DATA: &str = "040000004433221100000000000000005a59a0f98d4688316c84a20eb2fbac46e06ffbb8b68664dc5f5d233397fe7e723d0cac1528b05ab939d5a617eff63f9f";
const RESPONDER_INITIATION: &str = "01000000373aa629c958a2304a8359e7a91873c76cbf873dbcdcb36482b26121faf2ea40478c573125469cf1fa1e048ce58040de265c19abafea4adcfbb26d7ad2b6ae0c8f8d46ed561148acc2748dde193584995c3ac0ffab599671850c08a7df10132eb2bd18a3042eb88d41bfbc9538ebdb296d60254060549bb5e73f63e298d9179d00000000000000000000000000000000";
const RESPONDER_RESPONSE: &str = "0200000088776655373aa629ff2ee45601ec1b67310c7790404585ae697331eee1c1f8cf2419731c1fff3e6b4da84208e88556390bac5bcf66c5e3cd1de52a4e337f906a3c7d393ad284b46600000000000000000000000000000000";
const RESPONDER_DATA: &str = "0400000088776655000000000000000066d36554a0dc183488a1b9a490388db383ae19f55c078c9c16705bb2a24bda3b74eb1e02a23451f4e39e76dc652e7b8d3ee67a8859ce5042eff243c1a7c6c08fcdbe5386ff83f6852fe49f67cb8130646741bd6e8233cc563ca15439dc89c5767566e59379fac4eee627677660fcfeea";

fn key(b: u8) -> [u8; 32] {
    let mut k = [b; 32];
    crate::keys::clamp(&mut k);
    k
}

fn bytes(h: &str) -> Vec<u8> {
    hex::decode(h).unwrap()
}

fn identities() -> (StaticIdentity, StaticIdentity) {
    (
        StaticIdentity::new(PrivateKey::from_bytes(key(0x11))),
        StaticIdentity::new(PrivateKey::from_bytes(key(0x22))),
    )
}

fn now() -> Now {
    Now::new(
        Instant::from_nanos(0),
        Duration::new(1_700_000_000, 500_000_000),
    )
}

/// Opens a recorded data message and returns the ICMP echo inside: (src, dst, type, ident, seq).
fn open_echo(key: &[u8; 32], hex_msg: &str) -> (Ipv4Addr, Ipv4Addr, Icmpv4Type, u16, u16) {
    let mut msg = bytes(hex_msg);
    let n = crate::data::open(key, &mut msg).expect("wireguard-go's data opens under our keys");
    let plain = &msg[16..16 + n];
    let ip =
        Ipv4Packet::new_checked(&plain[..crate::wire::inner_packet_len(plain).unwrap()]).unwrap();
    assert!(ip.verify_checksum());
    let icmp = Icmpv4Packet::new_checked(ip.payload()).unwrap();
    assert!(icmp.verify_checksum());
    (
        ip.src_addr(),
        ip.dst_addr(),
        icmp.msg_type(),
        icmp.echo_ident(),
        icmp.echo_seq_no(),
    )
}

#[test]
fn initiator_transcript_with_wireguard_go() {
    let (ours, theirs) = identities();
    let mut hs = Handshake::new(*theirs.public(), PresharedKey::default());
    let mut init = [0u8; INITIATION_LEN];
    hs.create_initiation(
        &ours,
        now(),
        0x1122_3344,
        &mut FixedRng::new(&key(0x33)),
        &mut Initiation::new_init(&mut init[..]).unwrap(),
    )
    .unwrap();
    Cookie::new(theirs.public()).add_macs(&mut init, now().mono);
    assert_eq!(
        hex::encode(init),
        INITIATOR_INITIATION,
        "the initiation wireguard-go accepted"
    );

    let resp = bytes(INITIATOR_RESPONSE);
    let mut checker = CookieChecker::new(ours.public());
    let src = "198.18.0.2:51820".parse().unwrap();
    assert_eq!(
        checker.validate(&resp, src, false, now().mono, &mut FixedRng::new(&[0])),
        MacState::ValidMacButNoCookie
    );
    hs.consume_response(&ours, &Response::new_checked(&resp[..]).unwrap())
        .unwrap();
    let keys = hs.begin_session().unwrap();
    assert_eq!(keys.local_index, 0x1122_3344);
    let (s, d, t, ident, seq) = open_echo(&keys.receiving, INITIATOR_DATA);
    assert_eq!(
        (s, d),
        (Ipv4Addr::new(198, 19, 0, 2), Ipv4Addr::new(198, 19, 0, 1))
    );
    assert_eq!(
        (t, ident, seq),
        (Icmpv4Type::ECHO_REPLY, 7, 1),
        "the kernel answered our ping"
    );
}

#[test]
fn responder_transcript_with_wireguard_go() {
    let (ours, theirs) = identities();
    let init = bytes(RESPONDER_INITIATION);
    let mut checker = CookieChecker::new(ours.public());
    let src = "198.18.0.2:51820".parse().unwrap();
    assert_eq!(
        checker.validate(&init, src, false, now().mono, &mut FixedRng::new(&[0])),
        MacState::ValidMacButNoCookie
    );
    let view = Initiation::new_checked(&init[..]).unwrap();
    let partial = Handshake::begin_consume_initiation(&ours, &view).unwrap();
    assert_eq!(partial.remote_static(), theirs.public());
    let mut hs = Handshake::new(*theirs.public(), PresharedKey::default());
    hs.finish_consume_initiation(&ours, partial, &view, now().mono)
        .unwrap();

    let mut resp = [0u8; RESPONSE_LEN];
    hs.create_response(
        0x5566_7788,
        &mut FixedRng::new(&key(0x44)),
        &mut Response::new_init(&mut resp[..]).unwrap(),
    )
    .unwrap();
    Cookie::new(theirs.public()).add_macs(&mut resp, now().mono);
    assert_eq!(
        hex::encode(resp),
        RESPONDER_RESPONSE,
        "the response wireguard-go accepted"
    );
    let keys = hs.begin_session().unwrap();
    let (s, d, t, _, _) = open_echo(&keys.receiving, RESPONDER_DATA);
    assert_eq!(
        (s, d, t),
        (
            Ipv4Addr::new(198, 19, 0, 2),
            Ipv4Addr::new(198, 19, 0, 1),
            Icmpv4Type::ECHO_REQUEST
        )
    );
}
