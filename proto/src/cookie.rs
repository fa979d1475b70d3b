//! MAC1, MAC2 and cookie replies: WireGuard's DoS mitigation (whitepaper §5.3, §5.4.7).
//!
//! Every handshake message carries mac1, keyed by the receiver's public key, so a responder
//! can refuse garbage before any DH work. Under load it also demands mac2, keyed by a cookie
//! that binds the sender's IP address and port; a sender without a fresh cookie gets a cookie
//! reply instead of a handshake response. Split as in the kernel's `cookie.c`: the
//! [`CookieChecker`] is the responder side (one per device), [`Cookie`] the initiator side (one
//! per peer).

use crate::constants::{COOKIE_SECRET_LATENCY, COOKIE_SECRET_MAX_AGE};
use crate::crypto::{self, hash, mac, MAC_LEN, XNONCE_LEN};
use crate::keys::PublicKey;
use crate::messages::{mac1_covered, mac2_covered, CookieReply};
use crate::time::Instant;
use rand_core::CryptoRngCore;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

pub const LABEL_MAC1: &[u8] = b"mac1----";
pub const LABEL_COOKIE: &[u8] = b"cookie--";

/// The outcome of checking a handshake message's MACs (the kernel's `cookie_mac_state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MacState {
    /// mac1 is wrong: the sender does not know our public key. Dropped, no reply ever.
    InvalidMac,
    /// mac1 is right; mac2 was not checked (not under load) or did not match.
    ValidMacButNoCookie,
    /// mac1 and mac2 are right: the sender proved it can receive at its source address.
    ValidMacWithCookie,
}

fn source_bytes(src: SocketAddr) -> ([u8; 18], usize) {
    // The cookie binds the source address and port as they appear on the wire (network byte
    // order), exactly as the kernel hashes `saddr` and `source`.
    let mut b = [0u8; 18];
    let n = match src.ip() {
        IpAddr::V4(a) => {
            b[..4].copy_from_slice(&a.octets());
            4
        }
        IpAddr::V6(a) => {
            b[..16].copy_from_slice(&a.octets());
            16
        }
    };
    b[n..n + 2].copy_from_slice(&src.port().to_be_bytes());
    (b, n + 2)
}

/// Responder side: our mac1 key, the cookie encryption key and the rotating cookie secret.
pub struct CookieChecker {
    mac1_key: [u8; 32],
    cookie_encryption_key: [u8; 32],
    secret: Zeroizing<[u8; 32]>,
    secret_birth: Option<Instant>,
}

impl fmt::Debug for CookieChecker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CookieChecker")
            .field("secret_birth", &self.secret_birth)
            .finish_non_exhaustive()
    }
}

impl CookieChecker {
    pub fn new(our_public: &PublicKey) -> Self {
        Self {
            mac1_key: hash(&[LABEL_MAC1, our_public.as_bytes()]),
            cookie_encryption_key: hash(&[LABEL_COOKIE, our_public.as_bytes()]),
            secret: Zeroizing::new([0; 32]),
            secret_birth: None,
        }
    }

    /// The cookie for `src`: MAC(secret, ip || port), with the secret renewed every two
    /// minutes.
    fn make_cookie(
        &mut self,
        src: SocketAddr,
        now: Instant,
        rng: &mut impl CryptoRngCore,
    ) -> [u8; MAC_LEN] {
        let expired = match self.secret_birth {
            None => true,
            Some(b) => now.has_expired(b, COOKIE_SECRET_MAX_AGE),
        };
        if expired {
            rng.fill_bytes(&mut self.secret[..]);
            self.secret_birth = Some(now);
        }
        let (b, n) = source_bytes(src);
        mac(&self.secret[..], &[&b[..n]])
    }

    /// Checks mac1 and, when `check_cookie` (we are under load), mac2. `msg` is a complete
    /// initiation or response. mac1 is checked first and needs no secret work.
    pub fn validate(
        &mut self,
        msg: &[u8],
        src: SocketAddr,
        check_cookie: bool,
        now: Instant,
        rng: &mut impl CryptoRngCore,
    ) -> MacState {
        let mac1_pos = msg.len() - 2 * MAC_LEN;
        let expected = mac(&self.mac1_key, &[mac1_covered(msg)]);
        if !bool::from(expected.ct_eq(&msg[mac1_pos..mac1_pos + MAC_LEN])) {
            return MacState::InvalidMac;
        }
        if !check_cookie {
            return MacState::ValidMacButNoCookie;
        }
        // A message sent without a cookie carries zeros as mac2 (whitepaper 5.4.4). Under a
        // flood that is nearly every message: the expected mac2 (the cookie, then the MAC)
        // would be six of the eleven BLAKE2s compressions such a message costs, and zeros
        // cannot match it. (Zeros are no secret: the sender chose them.)
        if msg[mac1_pos + MAC_LEN..].iter().all(|&b| b == 0) {
            return MacState::ValidMacButNoCookie;
        }
        let cookie = self.make_cookie(src, now, rng);
        let expected = mac(&cookie, &[mac2_covered(msg)]);
        if bool::from(expected.ct_eq(&msg[mac1_pos + MAC_LEN..])) {
            MacState::ValidMacWithCookie
        } else {
            MacState::ValidMacButNoCookie
        }
    }

    /// Writes a cookie reply to `msg` (the handshake message that needs a cookie, whose mac1
    /// was valid) from `src`, addressed to the message's sender index.
    pub fn create_reply(
        &mut self,
        msg: &[u8],
        sender_index: u32,
        src: SocketAddr,
        now: Instant,
        rng: &mut impl CryptoRngCore,
        out: &mut CookieReply<&mut [u8]>,
    ) {
        let mac1_pos = msg.len() - 2 * MAC_LEN;
        let mac1 = &msg[mac1_pos..mac1_pos + MAC_LEN];
        out.set_receiver(sender_index);
        let mut nonce = [0u8; XNONCE_LEN];
        rng.fill_bytes(&mut nonce);
        *out.nonce_mut() = nonce;
        let cookie = self.make_cookie(src, now, rng);
        let enc = out.encrypted_cookie_mut();
        enc[..MAC_LEN].copy_from_slice(&cookie);
        crypto::xaead_seal(&self.cookie_encryption_key, &nonce, enc, mac1);
    }
}

/// Why a cookie reply was ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CookieError {
    #[error("no handshake message with mac1 is outstanding for this peer")]
    NotExpected,
    #[error("cookie reply did not decrypt")]
    Decrypt,
}

/// Initiator side, per peer: the peer's mac1 key, the last mac1 we sent it (the AAD of any
/// cookie reply), and the latest cookie it gave us.
pub struct Cookie {
    mac1_key: [u8; 32],
    cookie_decryption_key: [u8; 32],
    cookie: Zeroizing<[u8; MAC_LEN]>,
    cookie_birth: Option<Instant>,
    last_mac1_sent: Option<[u8; MAC_LEN]>,
}

impl fmt::Debug for Cookie {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cookie")
            .field("cookie_birth", &self.cookie_birth)
            .finish_non_exhaustive()
    }
}

impl Cookie {
    pub fn new(peer_public: &PublicKey) -> Self {
        Self {
            mac1_key: hash(&[LABEL_MAC1, peer_public.as_bytes()]),
            cookie_decryption_key: hash(&[LABEL_COOKIE, peer_public.as_bytes()]),
            cookie: Zeroizing::new([0; MAC_LEN]),
            cookie_birth: None,
            last_mac1_sent: None,
        }
    }

    /// Fills mac1, and mac2 when we hold a cookie younger than the responder's secret
    /// lifetime less a margin; otherwise mac2 is zero. `msg` is a complete handshake message.
    pub fn add_macs(&mut self, msg: &mut [u8], now: Instant) {
        let mac1_pos = msg.len() - 2 * MAC_LEN;
        let mac1 = mac(&self.mac1_key, &[mac1_covered(msg)]);
        msg[mac1_pos..mac1_pos + MAC_LEN].copy_from_slice(&mac1);
        self.last_mac1_sent = Some(mac1);
        let fresh = self
            .cookie_birth
            .is_some_and(|b| !now.has_expired(b, COOKIE_SECRET_MAX_AGE - COOKIE_SECRET_LATENCY));
        let mac2 = if fresh {
            mac(&self.cookie[..], &[mac2_covered(msg)])
        } else {
            [0; MAC_LEN]
        };
        msg[mac1_pos + MAC_LEN..].copy_from_slice(&mac2);
    }

    /// Takes the cookie from a reply to our last handshake message. A reply is accepted once:
    /// the mac1 it answers is forgotten, as in the kernel.
    pub fn consume_reply(
        &mut self,
        reply: &CookieReply<&[u8]>,
        now: Instant,
    ) -> Result<(), CookieError> {
        let mac1 = self.last_mac1_sent.ok_or(CookieError::NotExpected)?;
        let mut enc = *reply.encrypted_cookie();
        crypto::xaead_open(&self.cookie_decryption_key, reply.nonce(), &mut enc, &mac1)
            .map_err(|_| CookieError::Decrypt)?;
        self.cookie.copy_from_slice(&enc[..MAC_LEN]);
        self.cookie_birth = Some(now);
        self.last_mac1_sent = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::{Initiation, COOKIE_REPLY_LEN, INITIATION_LEN};
    use crate::testutil::FixedRng;
    use std::time::Duration;

    fn responder_key() -> PublicKey {
        crate::keys::PrivateKey::from_bytes([0x42; 32]).public_key()
    }

    fn initiation() -> Vec<u8> {
        let mut m = vec![0u8; INITIATION_LEN];
        Initiation::new_init(&mut m[..]).unwrap().set_sender(77);
        m[8..116]
            .iter_mut()
            .enumerate()
            .for_each(|(i, b)| *b = i as u8);
        m
    }

    const SRC: &str = "192.0.2.7:51820";

    #[test]
    fn mac1_is_keyed_by_the_receivers_public_key() {
        let r = responder_key();
        let mut msg = initiation();
        Cookie::new(&r).add_macs(&mut msg, Instant::from_nanos(0));
        let expected = mac(&hash(&[LABEL_MAC1, r.as_bytes()]), &[&msg[..116]]);
        assert_eq!(&msg[116..132], &expected);
        assert_eq!(&msg[132..148], &[0u8; 16], "no cookie: mac2 is zero");

        let mut checker = CookieChecker::new(&r);
        let rng = &mut FixedRng::new(&[9]);
        let t = Instant::from_nanos(0);
        let src = SRC.parse().unwrap();
        assert_eq!(
            checker.validate(&msg, src, false, t, rng),
            MacState::ValidMacButNoCookie
        );
        assert_eq!(
            checker.validate(&msg, src, true, t, rng),
            MacState::ValidMacButNoCookie
        );
        let mut other =
            CookieChecker::new(&crate::keys::PrivateKey::from_bytes([1; 32]).public_key());
        assert_eq!(
            other.validate(&msg, src, false, t, rng),
            MacState::InvalidMac
        );
        msg[20] ^= 1;
        assert_eq!(
            checker.validate(&msg, src, false, t, rng),
            MacState::InvalidMac
        );
    }

    /// The full exchange under load: no cookie -> cookie reply -> retry with mac2 accepted;
    /// the cookie is bound to the source address and port and expires.
    #[test]
    fn cookie_reply_round_trip() {
        let r = responder_key();
        let mut checker = CookieChecker::new(&r);
        let mut peer = Cookie::new(&r);
        let rng = &mut FixedRng::new(&[1, 2, 3, 4, 5]);
        let t0 = Instant::from_nanos(5_000_000_000);
        let src: SocketAddr = SRC.parse().unwrap();

        let mut msg = initiation();
        peer.add_macs(&mut msg, t0);
        assert_eq!(
            checker.validate(&msg, src, true, t0, rng),
            MacState::ValidMacButNoCookie
        );
        let mut reply = [0u8; COOKIE_REPLY_LEN];
        let mut view = CookieReply::new_init(&mut reply[..]).unwrap();
        checker.create_reply(&msg, 77, src, t0, rng, &mut view);
        let reply_view = CookieReply::new_checked(&reply[..]).unwrap();
        assert_eq!(reply_view.receiver(), 77);
        peer.consume_reply(&reply_view, t0).unwrap();
        assert_eq!(
            peer.consume_reply(&reply_view, t0),
            Err(CookieError::NotExpected),
            "accepted once"
        );

        let mut retry = initiation();
        peer.add_macs(&mut retry, t0 + Duration::from_secs(1));
        assert_ne!(&retry[132..148], &[0u8; 16]);
        assert_eq!(
            checker.validate(&retry, src, true, t0, rng),
            MacState::ValidMacWithCookie
        );
        let other_port: SocketAddr = "192.0.2.7:51821".parse().unwrap();
        assert_eq!(
            checker.validate(&retry, other_port, true, t0, rng),
            MacState::ValidMacButNoCookie
        );

        // After 115 s the initiator stops using the cookie; after 120 s the secret rotates.
        let mut late = initiation();
        peer.add_macs(&mut late, t0 + Duration::from_secs(115));
        assert_eq!(&late[132..148], &[0u8; 16]);
        assert_eq!(
            checker.validate(
                &retry,
                src,
                true,
                t0 + Duration::from_secs(120),
                &mut FixedRng::new(&[7])
            ),
            MacState::ValidMacButNoCookie
        );
    }

    #[test]
    fn cookie_reply_for_another_mac1_is_refused() {
        let r = responder_key();
        let mut checker = CookieChecker::new(&r);
        let mut peer = Cookie::new(&r);
        let rng = &mut FixedRng::new(&[3]);
        let t = Instant::from_nanos(0);
        let src: SocketAddr = "[2001:db8::1]:1".parse().unwrap();
        let mut a = initiation();
        peer.add_macs(&mut a, t);
        let mut b = initiation();
        b[30] ^= 0xff;
        peer.add_macs(&mut b, t); // now the last mac1 sent is b's
        let mut reply = [0u8; COOKIE_REPLY_LEN];
        checker.create_reply(
            &a,
            77,
            src,
            t,
            rng,
            &mut CookieReply::new_init(&mut reply[..]).unwrap(),
        );
        assert_eq!(
            peer.consume_reply(&CookieReply::new_checked(&reply[..]).unwrap(), t),
            Err(CookieError::Decrypt)
        );
    }

    #[test]
    fn cookie_binds_address_bytes_as_on_the_wire() {
        assert_eq!(
            source_bytes("1.2.3.4:258".parse().unwrap()).0[..6],
            [1, 2, 3, 4, 1, 2]
        );
        let (b, n) = source_bytes("[::1]:80".parse().unwrap());
        assert_eq!(n, 18);
        assert_eq!(b[15..18], [1, 0, 80]);
    }
}
