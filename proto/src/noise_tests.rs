//! Tests of the handshake: known answers, a straight-line transcription of the whitepaper as
//! an independent reference (byte-exact in both roles), and every refusal path.

use super::*;
use crate::crypto::{aead_seal, dh, dh_public, kdf};
use crate::messages::{INITIATION_LEN, RESPONSE_LEN};
use crate::testutil::FixedRng;

fn hexs(b: &[u8]) -> String {
    hex::encode(b)
}

#[test]
fn construction_and_identifier_hashes() {
    // Published as constants by other implementations (e.g. boringtun's INITIAL_CHAIN_KEY).
    assert_eq!(
        hexs(&initial_chaining_key()),
        "60e26daef327efc02ec335e2a025d2d016eb4206f87277f52d38d1988b78cd36"
    );
    assert_eq!(
        hexs(&initial_hash()),
        "2211b361081ac566691243db458ad5322d9c6c662293e8b70ee19c65ba079ef3"
    );
}

struct Fixture {
    i_priv: [u8; 32],
    r_priv: [u8; 32],
    e_i: [u8; 32],
    e_r: [u8; 32],
    psk: [u8; 32],
    unix: Duration,
}

fn fixture() -> Fixture {
    let mut i_priv = [0x11u8; 32];
    let mut r_priv = [0x22u8; 32];
    let mut e_i = [0x33u8; 32];
    let mut e_r = [0x44u8; 32];
    for k in [&mut i_priv, &mut r_priv, &mut e_i, &mut e_r] {
        crate::keys::clamp(k);
    }
    Fixture {
        i_priv,
        r_priv,
        e_i,
        e_r,
        psk: [0x55u8; 32],
        unix: Duration::new(1_700_000_000, 123_456_789),
    }
}

/// The whitepaper §5.4.2–§5.4.4 written out line by line, sharing only the primitives.
fn reference_messages(
    f: &Fixture,
    sender_i: u32,
    sender_r: u32,
) -> (Vec<u8>, Vec<u8>, [u8; 32], [u8; 32]) {
    let s_i_pub = dh_public(&f.i_priv);
    let s_r_pub = dh_public(&f.r_priv);
    let e_i_pub = dh_public(&f.e_i);
    let e_r_pub = dh_public(&f.e_r);

    // Initiator.
    let c0 = hash(&[CONSTRUCTION]);
    let mut h = hash(&[&hash(&[&c0, IDENTIFIER]), &s_r_pub]);
    let [c] = kdf::<1>(&c0, &e_i_pub);
    h = hash(&[&h, &e_i_pub]);
    let [c, k] = kdf::<2>(&c[..], &dh(&f.e_i, &s_r_pub).unwrap()[..]);
    let mut stat = [0u8; 48];
    stat[..32].copy_from_slice(&s_i_pub);
    aead_seal(&k, 0, &mut stat, &h);
    h = hash(&[&h, &stat]);
    let [c, k] = kdf::<2>(&c[..], &dh(&f.i_priv, &s_r_pub).unwrap()[..]);
    let mut ts = [0u8; 28];
    ts[..12].copy_from_slice(Tai64n::from_unix(f.unix).as_bytes());
    aead_seal(&k, 0, &mut ts, &h);
    h = hash(&[&h, &ts]);
    let mut init = vec![1u8, 0, 0, 0];
    init.extend_from_slice(&sender_i.to_le_bytes());
    init.extend_from_slice(&e_i_pub);
    init.extend_from_slice(&stat);
    init.extend_from_slice(&ts);
    init.extend_from_slice(&[0u8; 32]); // mac1, mac2 are not Noise's business

    // Responder.
    let [c] = kdf::<1>(&c[..], &e_r_pub);
    h = hash(&[&h, &e_r_pub]);
    let [c] = kdf::<1>(&c[..], &dh(&f.e_r, &e_i_pub).unwrap()[..]);
    let [c] = kdf::<1>(&c[..], &dh(&f.e_r, &s_i_pub).unwrap()[..]);
    let [c, t, k] = kdf::<3>(&c[..], &f.psk);
    h = hash(&[&h, &t[..]]);
    let mut empty = [0u8; 16];
    aead_seal(&k, 0, &mut empty, &h);
    let mut resp = vec![2u8, 0, 0, 0];
    resp.extend_from_slice(&sender_r.to_le_bytes());
    resp.extend_from_slice(&sender_i.to_le_bytes());
    resp.extend_from_slice(&e_r_pub);
    resp.extend_from_slice(&empty);
    resp.extend_from_slice(&[0u8; 32]);

    let [t1, t2] = kdf::<2>(&c[..], &[]);
    (init, resp, *t1, *t2)
}

struct Pair {
    i_id: StaticIdentity,
    r_id: StaticIdentity,
    i_hs: Handshake,
    r_hs: Handshake,
}

fn pair(f: &Fixture) -> Pair {
    let i_id = StaticIdentity::new(PrivateKey::from_bytes(f.i_priv));
    let r_id = StaticIdentity::new(PrivateKey::from_bytes(f.r_priv));
    let psk = || PresharedKey::from_bytes(f.psk);
    let i_hs = Handshake::new(*r_id.public(), psk());
    let r_hs = Handshake::new(*i_id.public(), psk());
    Pair {
        i_id,
        r_id,
        i_hs,
        r_hs,
    }
}

fn now_at(unix: Duration, mono_ms: u64) -> Now {
    Now::new(Instant::from_nanos(mono_ms * 1_000_000), unix)
}

impl Pair {
    /// The initiator's message 1 with the fixture's ephemeral.
    fn initiation(&mut self, f: &Fixture, now: Now, index: u32) -> [u8; INITIATION_LEN] {
        let mut init = [0u8; INITIATION_LEN];
        let mut msg = Initiation::new_init(&mut init[..]).unwrap();
        self.i_hs
            .create_initiation(&self.i_id, now, index, &mut FixedRng::new(&f.e_i), &mut msg)
            .unwrap();
        init
    }

    /// The responder consumes `init` and answers with message 2.
    fn respond(&mut self, f: &Fixture, init: &[u8], now: Now, index: u32) -> [u8; RESPONSE_LEN] {
        let view = Initiation::new_checked(init).unwrap();
        let partial = Handshake::begin_consume_initiation(&self.r_id, &view).unwrap();
        self.r_hs
            .finish_consume_initiation(&self.r_id, partial, &view, now.mono)
            .unwrap();
        let mut resp = [0u8; RESPONSE_LEN];
        let mut msg = Response::new_init(&mut resp[..]).unwrap();
        self.r_hs
            .create_response(index, &mut FixedRng::new(&f.e_r), &mut msg)
            .unwrap();
        resp
    }
}

/// Runs a full handshake through the state machines; returns both messages and both keys.
fn run(f: &Fixture, p: &mut Pair) -> (Vec<u8>, Vec<u8>, SessionKeys, SessionKeys) {
    let now = now_at(f.unix, 1000);
    let mut init = vec![0u8; INITIATION_LEN];
    let mut msg = Initiation::new_init(&mut init[..]).unwrap();
    p.i_hs
        .create_initiation(
            &p.i_id,
            now,
            0x0a0b0c0d,
            &mut FixedRng::new(&f.e_i),
            &mut msg,
        )
        .unwrap();
    let view = Initiation::new_checked(&init[..]).unwrap();
    let partial = Handshake::begin_consume_initiation(&p.r_id, &view).unwrap();
    assert_eq!(partial.remote_static(), p.i_id.public());
    p.r_hs
        .finish_consume_initiation(&p.r_id, partial, &view, now.mono)
        .unwrap();
    let mut resp = vec![0u8; RESPONSE_LEN];
    let mut rmsg = Response::new_init(&mut resp[..]).unwrap();
    p.r_hs
        .create_response(0x01020304, &mut FixedRng::new(&f.e_r), &mut rmsg)
        .unwrap();
    let r_keys = p.r_hs.begin_session().unwrap();
    p.i_hs
        .consume_response(&p.i_id, &Response::new_checked(&resp[..]).unwrap())
        .unwrap();
    let i_keys = p.i_hs.begin_session().unwrap();
    (init, resp, i_keys, r_keys)
}

#[test]
fn messages_are_byte_exact_in_both_roles() {
    let f = fixture();
    let mut p = pair(&f);
    let (init, resp, i_keys, r_keys) = run(&f, &mut p);
    let (ref_init, ref_resp, t1, t2) = reference_messages(&f, 0x0a0b0c0d, 0x01020304);
    assert_eq!(hexs(&init), hexs(&ref_init), "initiation (initiator role)");
    assert_eq!(hexs(&resp), hexs(&ref_resp), "response (responder role)");
    assert_eq!(
        (*i_keys.sending, *i_keys.receiving),
        (t1, t2),
        "initiator sends with T1"
    );
    assert_eq!(
        (*r_keys.sending, *r_keys.receiving),
        (t2, t1),
        "responder sends with T2"
    );
    assert!(i_keys.i_am_the_initiator && !r_keys.i_am_the_initiator);
    assert_eq!(
        (i_keys.local_index, i_keys.remote_index),
        (0x0a0b0c0d, 0x01020304)
    );
    assert_eq!(
        (r_keys.local_index, r_keys.remote_index),
        (0x01020304, 0x0a0b0c0d)
    );
    assert_eq!(p.i_hs.state(), HandshakeState::Zeroed);
    assert_eq!(p.r_hs.state(), HandshakeState::Zeroed);
}

#[test]
fn no_psk_is_32_zero_bytes() {
    let mut f = fixture();
    f.psk = [0u8; 32];
    let mut p = pair(&f);
    let i_id = StaticIdentity::new(PrivateKey::from_bytes(f.i_priv));
    p.r_hs = Handshake::new(*i_id.public(), PresharedKey::default());
    let (_, resp, _, _) = run(&f, &mut p);
    let (_, ref_resp, _, _) = reference_messages(&f, 0x0a0b0c0d, 0x01020304);
    assert_eq!(resp, ref_resp);
}

#[test]
fn replayed_initiation_is_refused() {
    let f = fixture();
    let mut p = pair(&f);
    let (init, ..) = run(&f, &mut p);
    let view = Initiation::new_checked(&init[..]).unwrap();
    let partial = Handshake::begin_consume_initiation(&p.r_id, &view).unwrap();
    let later = Instant::from_nanos(10_000_000_000);
    assert_eq!(
        p.r_hs
            .finish_consume_initiation(&p.r_id, partial, &view, later),
        Err(HandshakeError::StaleTimestamp)
    );
}

#[test]
fn initiations_faster_than_20ms_are_refused() {
    let f = fixture();
    let mut p = pair(&f);
    let consume = |p: &mut Pair, unix: Duration, mono_ms: u64| {
        let mut init = [0u8; INITIATION_LEN];
        let mut msg = Initiation::new_init(&mut init[..]).unwrap();
        p.i_hs
            .create_initiation(
                &p.i_id,
                now_at(unix, mono_ms),
                1,
                &mut FixedRng::new(&f.e_i),
                &mut msg,
            )
            .unwrap();
        let view = Initiation::new_checked(&init[..]).unwrap();
        let partial = Handshake::begin_consume_initiation(&p.r_id, &view).unwrap();
        p.r_hs.finish_consume_initiation(
            &p.r_id,
            partial,
            &view,
            Instant::from_nanos(mono_ms * 1_000_000),
        )
    };
    let t = Duration::from_secs(1_700_000_000);
    assert_eq!(consume(&mut p, t, 1000), Ok(()));
    // A newer timestamp but only 19 ms later on the responder's clock.
    assert_eq!(
        consume(&mut p, t + Duration::from_millis(40), 1019),
        Err(HandshakeError::Flood)
    );
    assert_eq!(consume(&mut p, t + Duration::from_millis(80), 1020), Ok(()));
}

#[test]
fn forged_response_leaves_initiation_usable() {
    let f = fixture();
    let mut p = pair(&f);
    let now = now_at(f.unix, 1000);
    let init = p.initiation(&f, now, 9);
    let resp = p.respond(&f, &init, now, 7);

    for i in [12usize, 50] {
        let mut bad = resp;
        bad[i] ^= 0x80;
        let err = p
            .i_hs
            .consume_response(&p.i_id, &Response::new_checked(&bad[..]).unwrap());
        assert!(err.is_err(), "byte {i}");
        assert_eq!(p.i_hs.state(), HandshakeState::CreatedInitiation);
    }
    let mut wrong_receiver = resp;
    wrong_receiver[8] ^= 1;
    assert_eq!(
        p.i_hs.consume_response(
            &p.i_id,
            &Response::new_checked(&wrong_receiver[..]).unwrap()
        ),
        Err(HandshakeError::WrongState)
    );
    p.i_hs
        .consume_response(&p.i_id, &Response::new_checked(&resp[..]).unwrap())
        .unwrap();
    assert_eq!(p.i_hs.state(), HandshakeState::ConsumedResponse);
}

#[test]
fn mismatched_psk_fails_at_the_response() {
    let f = fixture();
    let mut p = pair(&f);
    p.r_hs
        .set_preshared_key(PresharedKey::from_bytes([0x56; 32]));
    let now = now_at(f.unix, 1000);
    let init = p.initiation(&f, now, 9);
    let resp = p.respond(&f, &init, now, 7);
    assert_eq!(
        p.i_hs
            .consume_response(&p.i_id, &Response::new_checked(&resp[..]).unwrap()),
        Err(HandshakeError::ResponseDecrypt)
    );
}

#[test]
fn wrong_responder_cannot_read_the_static() {
    let f = fixture();
    let mut p = pair(&f);
    let now = now_at(f.unix, 1000);
    let mut init = [0u8; INITIATION_LEN];
    p.i_hs
        .create_initiation(
            &p.i_id,
            now,
            9,
            &mut FixedRng::new(&f.e_i),
            &mut Initiation::new_init(&mut init[..]).unwrap(),
        )
        .unwrap();
    let other = StaticIdentity::new(PrivateKey::from_bytes([0x66; 32]));
    let view = Initiation::new_checked(&init[..]).unwrap();
    assert_eq!(
        Handshake::begin_consume_initiation(&other, &view).err(),
        Some(HandshakeError::StaticDecrypt)
    );
    // A handshake for a different peer refuses the partial result.
    let partial = Handshake::begin_consume_initiation(&p.r_id, &view).unwrap();
    let mut stranger = Handshake::new(*other.public(), PresharedKey::default());
    assert_eq!(
        stranger.finish_consume_initiation(&p.r_id, partial, &view, now.mono),
        Err(HandshakeError::UnknownPeer)
    );
}

#[test]
fn low_order_keys_are_refused() {
    let f = fixture();
    let i_id = StaticIdentity::new(PrivateKey::from_bytes(f.i_priv));
    // A peer whose static key is a low-order point: the precomputed DH is zero.
    let mut hs = Handshake::new(PublicKey::from_bytes([0u8; 32]), PresharedKey::default());
    let mut init = [0u8; INITIATION_LEN];
    let r = hs.create_initiation(
        &i_id,
        now_at(f.unix, 0),
        1,
        &mut FixedRng::new(&f.e_i),
        &mut Initiation::new_init(&mut init[..]).unwrap(),
    );
    assert_eq!(r, Err(HandshakeError::LowOrderPoint));

    // An initiation carrying a low-order ephemeral is refused before any decryption.
    let mut p = pair(&f);
    let mut init = [0u8; INITIATION_LEN];
    p.i_hs
        .create_initiation(
            &p.i_id,
            now_at(f.unix, 0),
            1,
            &mut FixedRng::new(&f.e_i),
            &mut Initiation::new_init(&mut init[..]).unwrap(),
        )
        .unwrap();
    init[8..40].fill(0);
    let view = Initiation::new_checked(&init[..]).unwrap();
    assert_eq!(
        Handshake::begin_consume_initiation(&p.r_id, &view).err(),
        Some(HandshakeError::LowOrderPoint)
    );
}

#[test]
fn response_requires_a_consumed_initiation() {
    let f = fixture();
    let mut p = pair(&f);
    let mut resp = [0u8; RESPONSE_LEN];
    assert_eq!(
        p.r_hs.create_response(
            1,
            &mut FixedRng::new(&f.e_r),
            &mut Response::new_init(&mut resp[..]).unwrap()
        ),
        Err(HandshakeError::WrongState)
    );
    assert_eq!(
        p.r_hs.begin_session().err(),
        Some(HandshakeError::WrongState)
    );
}
