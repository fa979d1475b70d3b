//! The Noise_IKpsk2 handshake as WireGuard specifies it (whitepaper §5.4.2–§5.4.5).
//!
//! One [`Handshake`] per peer holds the in-flight state; the steps follow the kernel's
//! `noise.c` and are labelled with their Noise tokens. Index allocation, endpoint updates and
//! timers are the caller's (see `device/`); this module only computes messages and keys.
//!
//! State machine (the kernel's `handshake_state`):
//! `Zeroed -> CreatedInitiation -> ConsumedResponse -> (begin_session) Zeroed` for the
//! initiator, `Zeroed -> ConsumedInitiation -> CreatedResponse -> (begin_session) Zeroed` for
//! the responder. A new initiation or a consumed initiation may replace any state.

use crate::crypto::{self, hash, kdf, Key, LowOrderPoint, TAG_LEN};
use crate::keys::{PresharedKey, PrivateKey, PublicKey, KEY_LEN};
use crate::messages::{Initiation, Response};
use crate::time::{Instant, Now};
use crate::timestamp::{Tai64n, TIMESTAMP_LEN};
use rand_core::CryptoRngCore;
use std::fmt;
use std::time::Duration;
use zeroize::{Zeroize, Zeroizing};

pub const CONSTRUCTION: &[u8] = b"Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s";
pub const IDENTIFIER: &[u8] = b"WireGuard v1 zx2c4 Jason@zx2c4.com";

/// Minimum time between two initiations consumed from one peer (1 / INITIATIONS_PER_SECOND).
const INITIATION_MIN_INTERVAL: Duration =
    Duration::from_nanos(1_000_000_000 / crate::constants::INITIATIONS_PER_SECOND as u64);

/// C_0 = HASH(CONSTRUCTION).
pub fn initial_chaining_key() -> [u8; 32] {
    hash(&[CONSTRUCTION])
}

/// H_0 = HASH(C_0 || IDENTIFIER).
pub fn initial_hash() -> [u8; 32] {
    hash(&[&initial_chaining_key(), IDENTIFIER])
}

/// Our static key pair: the interface's private key and its public key.
#[derive(Clone)]
pub struct StaticIdentity {
    private: PrivateKey,
    public: PublicKey,
}

impl StaticIdentity {
    pub fn new(private: PrivateKey) -> Self {
        let public = private.public_key();
        Self { private, public }
    }

    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    pub fn private(&self) -> &PrivateKey {
        &self.private
    }
}

impl fmt::Debug for StaticIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticIdentity")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

/// Why a handshake message was refused or could not be produced. Every variant is a silent
/// drop on the wire; the reason is for counters and the authentication log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum HandshakeError {
    #[error("a Diffie-Hellman result was all zeros (low-order key)")]
    LowOrderPoint,
    #[error("the encrypted static key did not decrypt")]
    StaticDecrypt,
    #[error("the static key belongs to no configured peer")]
    UnknownPeer,
    #[error("the encrypted timestamp did not decrypt")]
    TimestampDecrypt,
    #[error("the timestamp is not newer than the last accepted one (replay)")]
    StaleTimestamp,
    #[error("initiations from this peer arrive faster than one per 20 ms")]
    Flood,
    #[error("the response did not authenticate")]
    ResponseDecrypt,
    #[error("no handshake in the state this message needs")]
    WrongState,
}

impl From<LowOrderPoint> for HandshakeError {
    fn from(_: LowOrderPoint) -> Self {
        Self::LowOrderPoint
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeState {
    Zeroed,
    CreatedInitiation,
    ConsumedInitiation,
    CreatedResponse,
    ConsumedResponse,
}

/// Transport keys derived at the end of a handshake (whitepaper §5.4.6), oriented for us.
pub struct SessionKeys {
    pub sending: Key,
    pub receiving: Key,
    pub local_index: u32,
    pub remote_index: u32,
    pub i_am_the_initiator: bool,
}

impl fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionKeys")
            .field("local_index", &self.local_index)
            .field("remote_index", &self.remote_index)
            .field("i_am_the_initiator", &self.i_am_the_initiator)
            .finish_non_exhaustive()
    }
}

/// Per-peer handshake state. Secrets are zeroized when the state returns to `Zeroed` and on
/// drop (through their `Zeroizing` containers).
pub struct Handshake {
    state: HandshakeState,
    remote_static: PublicKey,
    preshared_key: PresharedKey,
    /// DH(S_priv_local, S_pub_remote), computed once per peer, at its first handshake.
    precomputed_static_static: StaticStatic,
    ephemeral_private: Key,
    remote_ephemeral: [u8; KEY_LEN],
    hash: Zeroizing<[u8; 32]>,
    chaining_key: Key,
    latest_timestamp: Tai64n,
    last_initiation_consumption: Option<Instant>,
    local_index: u32,
    remote_index: u32,
}

impl fmt::Debug for Handshake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handshake")
            .field("state", &self.state)
            .field("remote_static", &self.remote_static)
            .field("local_index", &self.local_index)
            .field("remote_index", &self.remote_index)
            .finish_non_exhaustive()
    }
}

/// What a responder learned from the first half of an initiation, before it knows the peer.
pub struct PartialInitiation {
    chaining_key: Key,
    hash: Zeroizing<[u8; 32]>,
    remote_ephemeral: [u8; KEY_LEN],
    remote_static: PublicKey,
    sender: u32,
}

impl PartialInitiation {
    /// The initiator's static public key, decrypted: the caller looks the peer up by it.
    pub fn remote_static(&self) -> &PublicKey {
        &self.remote_static
    }
}

impl fmt::Debug for PartialInitiation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PartialInitiation")
            .field("remote_static", &self.remote_static)
            .field("sender", &self.sender)
            .finish_non_exhaustive()
    }
}

fn mix_hash(h: &mut [u8; 32], data: &[u8]) {
    *h = hash(&[&h[..], data]);
}

/// `e` token on the receiving side and the sending side alike: C = KDF1(C, e); H = HASH(H || e).
fn message_ephemeral(ck: &mut Key, h: &mut [u8; 32], e_pub: &[u8; 32]) {
    mix_hash(h, e_pub);
    let [c] = kdf::<1>(&ck[..], e_pub);
    *ck = c;
}

/// A DH token: (C, k) = KDF2(C, DH(...)). Refuses the all-zero DH result.
fn mix_dh(ck: &mut Key, private: &[u8; 32], public: &[u8; 32]) -> Result<Key, HandshakeError> {
    let shared = crypto::dh(private, public)?;
    Ok(mix_key(ck, &shared[..]))
}

fn mix_key(ck: &mut Key, input: &[u8]) -> Key {
    let [c, k] = kdf::<2>(&ck[..], input);
    *ck = c;
    k
}

/// AEAD(k, 0, plaintext, H) then H = HASH(H || ciphertext). `buf` = plaintext || 16 spare.
fn message_encrypt(buf: &mut [u8], key: &Key, h: &mut [u8; 32]) {
    crypto::aead_seal(key, 0, buf, &h[..]);
    mix_hash(h, buf);
}

fn message_decrypt(buf: &mut [u8], key: &Key, h: &mut [u8; 32]) -> Result<(), crypto::AuthError> {
    let ciphertext_hash = hash(&[&h[..], buf]);
    crypto::aead_open(key, 0, buf, &h[..])?;
    *h = ciphertext_hash;
    Ok(())
}

/// Random ephemeral private key. X25519 clamps internally; clamp anyway so the stored scalar
/// is the one actually used.
fn generate_ephemeral(rng: &mut impl CryptoRngCore) -> Key {
    let mut e = Zeroizing::new([0u8; 32]);
    rng.fill_bytes(&mut e[..]);
    crate::keys::clamp(&mut e);
    e
}

/// The static-static DH of a peer. The kernel computes it when the peer is added; here it is
/// computed at the peer's first handshake, so that adding 100k peers (a cluster joining, a
/// `wg setconf`) does not cost 100k X25519 operations up front (some 6 s of one core), most of
/// them for peers that may never connect. Same results: a low-order key fails every handshake.
enum StaticStatic {
    /// Not computed yet (the peer is new, or the interface's key changed).
    Pending,
    Key(Key),
    /// The all-zero value: every handshake with this peer fails (as in the kernel).
    LowOrder,
}

impl Handshake {
    /// The static-static DH, computed on first use.
    fn static_static(&mut self, local: &StaticIdentity) -> Result<&Key, HandshakeError> {
        if matches!(self.precomputed_static_static, StaticStatic::Pending) {
            self.precomputed_static_static =
                match crypto::dh(local.private.as_bytes(), self.remote_static.as_bytes()) {
                    Ok(k) => StaticStatic::Key(k),
                    Err(_) => StaticStatic::LowOrder,
                };
        }
        match &self.precomputed_static_static {
            StaticStatic::Key(k) => Ok(k),
            StaticStatic::Pending | StaticStatic::LowOrder => Err(HandshakeError::LowOrderPoint),
        }
    }

    /// The handshake state for one peer. The static-static DH is not computed here but at
    /// the first handshake, which is given the local identity ([`StaticStatic`]).
    pub fn new(remote_static: PublicKey, preshared_key: PresharedKey) -> Self {
        Self {
            state: HandshakeState::Zeroed,
            remote_static,
            preshared_key,
            precomputed_static_static: StaticStatic::Pending,
            ephemeral_private: Zeroizing::new([0; 32]),
            remote_ephemeral: [0; 32],
            hash: Zeroizing::new([0; 32]),
            chaining_key: Zeroizing::new([0; 32]),
            latest_timestamp: Tai64n::default(),
            last_initiation_consumption: None,
            local_index: 0,
            remote_index: 0,
        }
    }

    pub fn state(&self) -> HandshakeState {
        self.state
    }

    pub fn remote_static(&self) -> &PublicKey {
        &self.remote_static
    }

    pub fn local_index(&self) -> u32 {
        self.local_index
    }

    /// The receiver index this handshake has registered, if any: set by creating an
    /// initiation or response, handed to the keypair by `begin_session`, and absent while
    /// zeroed or between consuming an initiation and answering it.
    pub fn held_index(&self) -> Option<u32> {
        match self.state {
            HandshakeState::CreatedInitiation
            | HandshakeState::CreatedResponse
            | HandshakeState::ConsumedResponse => Some(self.local_index),
            HandshakeState::Zeroed | HandshakeState::ConsumedInitiation => None,
        }
    }

    pub fn preshared_key(&self) -> &PresharedKey {
        &self.preshared_key
    }

    pub fn set_preshared_key(&mut self, psk: PresharedKey) {
        self.preshared_key = psk;
    }

    /// The interface's private key changed: the static-static DH is computed anew at the next
    /// handshake (from the identity it is given), and the in-flight exchange is forgotten (the
    /// kernel's `wg_noise_precompute_static_static` followed by `wg_noise_handshake_clear`);
    /// the replay state survives.
    pub fn local_identity_changed(&mut self) {
        self.precomputed_static_static = StaticStatic::Pending;
        self.zero();
    }

    /// Forgets the in-flight exchange (the kernel's `handshake_zero`). The latest timestamp and
    /// the flood limiter survive, as they must for replay protection.
    pub fn zero(&mut self) {
        self.state = HandshakeState::Zeroed;
        self.ephemeral_private.zeroize();
        self.remote_ephemeral.zeroize();
        self.hash.zeroize();
        self.chaining_key.zeroize();
        self.local_index = 0;
        self.remote_index = 0;
    }

    /// Forgets everything including the replay state: the peer was removed or its keys wiped.
    pub fn clear(&mut self) {
        self.zero();
        self.latest_timestamp = Tai64n::default();
        self.last_initiation_consumption = None;
    }

    fn init_symmetric(&mut self) {
        *self.chaining_key = initial_chaining_key();
        *self.hash = initial_hash();
    }

    /// Writes handshake initiation message 1 into `msg` (mac1/mac2 are the cookie module's).
    pub fn create_initiation(
        &mut self,
        local: &StaticIdentity,
        now: Now,
        local_index: u32,
        rng: &mut impl CryptoRngCore,
        msg: &mut Initiation<&mut [u8]>,
    ) -> Result<(), HandshakeError> {
        self.zero();
        self.init_symmetric();
        mix_hash(&mut self.hash, self.remote_static.as_bytes());

        // e
        self.ephemeral_private = generate_ephemeral(rng);
        let e_pub = crypto::dh_public(&self.ephemeral_private);
        *msg.ephemeral_mut() = e_pub;
        message_ephemeral(&mut self.chaining_key, &mut self.hash, &e_pub);

        // es
        let key = mix_dh(
            &mut self.chaining_key,
            &self.ephemeral_private,
            self.remote_static.as_bytes(),
        )?;

        // s
        let s = msg.encrypted_static_mut();
        s[..KEY_LEN].copy_from_slice(local.public.as_bytes());
        message_encrypt(s, &key, &mut self.hash);

        // ss (computed once per peer)
        let ss = Zeroizing::new(**self.static_static(local)?);
        let key = mix_key(&mut self.chaining_key, &ss[..]);

        // {t}
        let t = msg.encrypted_timestamp_mut();
        t[..TIMESTAMP_LEN].copy_from_slice(Tai64n::from_unix(now.unix).as_bytes());
        message_encrypt(t, &key, &mut self.hash);

        msg.set_sender(local_index);
        self.local_index = local_index;
        self.state = HandshakeState::CreatedInitiation;
        Ok(())
    }

    /// Responder, first half: runs `e`, `es` and `s` with our static key and returns the
    /// initiator's static public key so the caller can find the peer. No state changes.
    pub fn begin_consume_initiation(
        local: &StaticIdentity,
        msg: &Initiation<&[u8]>,
    ) -> Result<PartialInitiation, HandshakeError> {
        let mut ck: Key = Zeroizing::new(initial_chaining_key());
        let mut h = Zeroizing::new(initial_hash());
        mix_hash(&mut h, local.public.as_bytes());

        // e
        let e = *msg.ephemeral();
        message_ephemeral(&mut ck, &mut h, &e);

        // es
        let key = mix_dh(&mut ck, local.private.as_bytes(), &e)?;

        // s
        let mut s = Zeroizing::new(*msg.encrypted_static());
        message_decrypt(&mut s[..], &key, &mut h).map_err(|_| HandshakeError::StaticDecrypt)?;
        let mut remote = [0u8; KEY_LEN];
        remote.copy_from_slice(&s[..KEY_LEN]);

        Ok(PartialInitiation {
            chaining_key: ck,
            hash: h,
            remote_ephemeral: e,
            remote_static: PublicKey::from_bytes(remote),
            sender: msg.sender(),
        })
    }

    /// Responder, second half, on the peer the static key named: `ss` and `{t}`, the replay
    /// and flood checks, then the state moves to `ConsumedInitiation`.
    pub fn finish_consume_initiation(
        &mut self,
        local: &StaticIdentity,
        partial: PartialInitiation,
        msg: &Initiation<&[u8]>,
        now: Instant,
    ) -> Result<(), HandshakeError> {
        let PartialInitiation {
            mut chaining_key,
            mut hash,
            remote_ephemeral,
            remote_static,
            sender,
        } = partial;
        if !remote_static.ct_eq(&self.remote_static) {
            return Err(HandshakeError::UnknownPeer);
        }
        // ss
        let ss = Zeroizing::new(**self.static_static(local)?);
        let key = mix_key(&mut chaining_key, &ss[..]);

        // {t}
        let mut t = *msg.encrypted_timestamp();
        message_decrypt(&mut t, &key, &mut hash).map_err(|_| HandshakeError::TimestampDecrypt)?;
        let mut ts = [0u8; TIMESTAMP_LEN];
        ts.copy_from_slice(&t[..TIMESTAMP_LEN]);
        let timestamp = Tai64n::from_bytes(ts);

        if timestamp <= self.latest_timestamp {
            return Err(HandshakeError::StaleTimestamp);
        }
        if let Some(last) = self.last_initiation_consumption {
            if !now.has_expired(last, INITIATION_MIN_INTERVAL) {
                return Err(HandshakeError::Flood);
            }
        }

        self.zero();
        self.latest_timestamp = timestamp;
        self.last_initiation_consumption = Some(now);
        self.remote_ephemeral = remote_ephemeral;
        self.hash = hash;
        self.chaining_key = chaining_key;
        self.remote_index = sender;
        self.state = HandshakeState::ConsumedInitiation;
        Ok(())
    }

    /// Writes handshake response message 2 for a consumed initiation.
    pub fn create_response(
        &mut self,
        local_index: u32,
        rng: &mut impl CryptoRngCore,
        msg: &mut Response<&mut [u8]>,
    ) -> Result<(), HandshakeError> {
        if self.state != HandshakeState::ConsumedInitiation {
            return Err(HandshakeError::WrongState);
        }
        msg.set_receiver(self.remote_index);

        // e
        self.ephemeral_private = generate_ephemeral(rng);
        let e_pub = crypto::dh_public(&self.ephemeral_private);
        *msg.ephemeral_mut() = e_pub;
        message_ephemeral(&mut self.chaining_key, &mut self.hash, &e_pub);

        // ee
        let _ = mix_dh(
            &mut self.chaining_key,
            &self.ephemeral_private,
            &self.remote_ephemeral,
        )?;
        // se
        let _ = mix_dh(
            &mut self.chaining_key,
            &self.ephemeral_private,
            self.remote_static.as_bytes(),
        )?;
        // psk
        let key = self.mix_psk();
        // {}
        message_encrypt(msg.encrypted_nothing_mut(), &key, &mut self.hash);

        msg.set_sender(local_index);
        self.local_index = local_index;
        self.state = HandshakeState::CreatedResponse;
        Ok(())
    }

    /// (C, t, k) = KDF3(C, PSK); H = HASH(H || t); returns k.
    fn mix_psk(&mut self) -> Key {
        let [c, t, k] = kdf::<3>(&self.chaining_key[..], self.preshared_key.as_bytes());
        self.chaining_key = c;
        mix_hash(&mut self.hash, &t[..]);
        k
    }

    /// Initiator: consumes response message 2 addressed to our in-flight initiation. The
    /// caller found this handshake by the response's receiver index.
    pub fn consume_response(
        &mut self,
        local: &StaticIdentity,
        msg: &Response<&[u8]>,
    ) -> Result<(), HandshakeError> {
        if self.state != HandshakeState::CreatedInitiation || msg.receiver() != self.local_index {
            return Err(HandshakeError::WrongState);
        }
        // Work on copies so that a forged response leaves our initiation intact.
        let mut ck = self.chaining_key.clone();
        let mut h = self.hash.clone();

        // e
        let e = *msg.ephemeral();
        message_ephemeral(&mut ck, &mut h, &e);
        // ee
        let _ = mix_dh(&mut ck, &self.ephemeral_private, &e)?;
        // se
        let _ = mix_dh(&mut ck, local.private.as_bytes(), &e)?;
        // psk
        let [c, t, key] = kdf::<3>(&ck[..], self.preshared_key.as_bytes());
        ck = c;
        mix_hash(&mut h, &t[..]);
        // {}
        let mut empty = *msg.encrypted_nothing();
        message_decrypt(&mut empty, &key, &mut h).map_err(|_| HandshakeError::ResponseDecrypt)?;

        self.remote_ephemeral = e;
        self.chaining_key = ck;
        self.hash = h;
        self.remote_index = msg.sender();
        self.state = HandshakeState::ConsumedResponse;
        Ok(())
    }

    /// Derives the transport keys (T_send, T_recv) = KDF2(C, "") oriented by role and zeroes
    /// the handshake. Valid after `create_response` (responder) or `consume_response`
    /// (initiator).
    pub fn begin_session(&mut self) -> Result<SessionKeys, HandshakeError> {
        let i_am_the_initiator = match self.state {
            HandshakeState::ConsumedResponse => true,
            HandshakeState::CreatedResponse => false,
            _ => return Err(HandshakeError::WrongState),
        };
        let [t1, t2] = kdf::<2>(&self.chaining_key[..], &[]);
        let (sending, receiving) = if i_am_the_initiator {
            (t1, t2)
        } else {
            (t2, t1)
        };
        let keys = SessionKeys {
            sending,
            receiving,
            local_index: self.local_index,
            remote_index: self.remote_index,
            i_am_the_initiator,
        };
        self.zero();
        Ok(keys)
    }
}

/// Size of the encrypted static field, for tests and the message layout.
pub const ENCRYPTED_STATIC_LEN: usize = KEY_LEN + TAG_LEN;

#[cfg(test)]
#[path = "noise_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "noise_vectors.rs"]
mod vectors;
