//! Curve25519 static keys and pre-shared keys, in the base64 form `wg` prints and reads.
//!
//! Key material is zeroized on drop and never printed: `Debug` shows only a redaction for
//! private keys and PSKs (and the base64 form for public keys, which are not secret).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use rand_core::CryptoRngCore;
use std::fmt;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Length in bytes of every WireGuard key (Curve25519 scalars and points, PSKs).
pub const KEY_LEN: usize = 32;
/// Length of a key in base64 as `wg` writes it: 43 characters and one `=`.
pub const KEY_B64_LEN: usize = 44;

/// Why a base64 key string was refused. The messages mirror `wg`'s wording where it has one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyParseError {
    #[error("key must be {KEY_B64_LEN} base64 characters, found {0}")]
    Length(usize),
    #[error("key is not valid base64")]
    Base64,
}

fn decode_b64(s: &str) -> Result<[u8; KEY_LEN], KeyParseError> {
    let s = s.trim();
    // `wg` insists on exactly 44 characters ending in one '='; anything else (a stray '=',
    // a truncated paste) is a different key or none, so refuse it rather than guess.
    if s.len() != KEY_B64_LEN || !s.ends_with('=') || s[..KEY_B64_LEN - 1].contains('=') {
        return Err(KeyParseError::Length(s.len()));
    }
    let mut out = [0u8; KEY_LEN];
    let n = B64
        .decode_slice(s, &mut out)
        .map_err(|_| KeyParseError::Base64)?;
    if n != KEY_LEN {
        out.zeroize();
        return Err(KeyParseError::Base64);
    }
    Ok(out)
}

fn encode_b64(bytes: &[u8; KEY_LEN]) -> String {
    B64.encode(bytes)
}

/// A Curve25519 private key. Clamping happens inside X25519, so the stored bytes are exactly
/// what the user supplied (`wg genkey` output is already clamped, and we clamp on generation).
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct PrivateKey([u8; KEY_LEN]);

impl PrivateKey {
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// Generates a key exactly as `wg genkey` does: 32 random bytes, clamped per RFC 7748.
    pub fn generate(rng: &mut impl CryptoRngCore) -> Self {
        let mut b = [0u8; KEY_LEN];
        rng.fill_bytes(&mut b);
        clamp(&mut b);
        Self(b)
    }

    pub fn from_base64(s: &str) -> Result<Self, KeyParseError> {
        decode_b64(s).map(Self)
    }

    /// The base64 form, for writing a config file; the caller must treat it as secret.
    pub fn to_base64(&self) -> String {
        encode_b64(&self.0)
    }

    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    pub fn public_key(&self) -> PublicKey {
        let secret = x25519_dalek::StaticSecret::from(self.0);
        PublicKey(*x25519_dalek::PublicKey::from(&secret).as_bytes())
    }
}

/// RFC 7748 §5 clamping, as `wg genkey` applies it.
pub fn clamp(b: &mut [u8; KEY_LEN]) {
    b[0] &= 248;
    b[31] = (b[31] & 127) | 64;
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKey(<redacted>)")
    }
}

/// A Curve25519 public key. Not secret; compared in constant time anyway because the lookup
/// that uses it sits on the handshake path an attacker drives.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey([u8; KEY_LEN]);

impl PublicKey {
    pub const fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }

    pub fn from_base64(s: &str) -> Result<Self, KeyParseError> {
        decode_b64(s).map(Self)
    }

    pub fn to_base64(&self) -> String {
        encode_b64(&self.0)
    }

    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    pub fn ct_eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_base64())
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64())
    }
}

/// The optional pre-shared symmetric key mixed in by the `psk` token of Noise_IKpsk2. An
/// absent PSK is 32 zero bytes, as the whitepaper specifies.
#[derive(Clone, Default, Zeroize, ZeroizeOnDrop)]
pub struct PresharedKey([u8; KEY_LEN]);

impl PresharedKey {
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// 32 random bytes, unclamped, as `wg genpsk` produces.
    pub fn generate(rng: &mut impl CryptoRngCore) -> Self {
        let mut b = [0u8; KEY_LEN];
        rng.fill_bytes(&mut b);
        Self(b)
    }

    pub fn from_base64(s: &str) -> Result<Self, KeyParseError> {
        decode_b64(s).map(Self)
    }

    pub fn to_base64(&self) -> String {
        encode_b64(&self.0)
    }

    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    pub fn is_zero(&self) -> bool {
        self.0.ct_eq(&[0u8; KEY_LEN]).into()
    }
}

impl PartialEq for PresharedKey {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}
impl Eq for PresharedKey {}

impl fmt::Debug for PresharedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PresharedKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 7748 §6.1 Alice's private and public keys.
    const ALICE_PRIV: &str = "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a";
    const ALICE_PUB: &str = "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a";

    fn hex32(s: &str) -> [u8; 32] {
        hex::decode(s).unwrap().try_into().unwrap()
    }

    #[test]
    fn public_key_matches_rfc7748() {
        let k = PrivateKey::from_bytes(hex32(ALICE_PRIV));
        assert_eq!(k.public_key().as_bytes(), &hex32(ALICE_PUB));
    }

    #[test]
    fn base64_round_trip_and_length_errors() {
        let k = PrivateKey::from_bytes(hex32(ALICE_PRIV));
        let s = k.to_base64();
        assert_eq!(s.len(), KEY_B64_LEN);
        assert_eq!(
            PrivateKey::from_base64(&s).unwrap().as_bytes(),
            k.as_bytes()
        );
        assert_eq!(
            PublicKey::from_base64(&format!("{s}=")),
            Err(KeyParseError::Length(45))
        );
        assert_eq!(PublicKey::from_base64(""), Err(KeyParseError::Length(0)));
        let bad = format!("!{}", &s[1..]);
        assert_eq!(PublicKey::from_base64(&bad), Err(KeyParseError::Base64));
    }

    #[test]
    fn debug_never_prints_secrets() {
        let k = PrivateKey::from_bytes(hex32(ALICE_PRIV));
        let p = PresharedKey::from_bytes(hex32(ALICE_PRIV));
        let b64 = k.to_base64();
        for s in [format!("{k:?}"), format!("{p:?}")] {
            assert!(!s.contains(&b64) && !s.contains("77076d"), "{s}");
            assert!(s.contains("redacted"));
        }
    }

    #[test]
    fn generated_keys_are_clamped() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
        use rand::SeedableRng as _;
        for _ in 0..100 {
            let b = *PrivateKey::generate(&mut rng).as_bytes();
            assert_eq!(b[0] & 7, 0);
            assert_eq!(b[31] & 0xc0, 0x40);
        }
    }
}
