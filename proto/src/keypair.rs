//! Transport keypairs and the current/previous/next rotation (the kernel's
//! `noise_keypairs`, whitepaper §5.4.6 and §6).
//!
//! The initiator uses a new keypair at once. The responder keeps it as `next` until the first
//! data message arrives on it (key confirmation), and only then sends with it; meanwhile it
//! keeps using `current`. `previous` lets packets in flight under the old keys still decrypt.

use crate::constants::{REJECT_AFTER_MESSAGES, REJECT_AFTER_TIME};
use crate::crypto::Key;
use crate::noise::SessionKeys;
use crate::replay::ReplayWindow;
use crate::time::Instant;
use std::fmt;

/// One direction pair of transport keys with their counters.
pub struct Keypair {
    pub(crate) sending_key: Key,
    pub(crate) receiving_key: Key,
    /// Next counter to send with.
    pub(crate) sending_counter: u64,
    pub(crate) replay: ReplayWindow,
    pub(crate) birth: Instant,
    pub(crate) i_am_the_initiator: bool,
    pub(crate) local_index: u32,
    pub(crate) remote_index: u32,
    pub(crate) sending_valid: bool,
    pub(crate) receiving_valid: bool,
}

impl fmt::Debug for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keypair")
            .field("local_index", &self.local_index)
            .field("remote_index", &self.remote_index)
            .field("sending_counter", &self.sending_counter)
            .field("birth", &self.birth)
            .field("i_am_the_initiator", &self.i_am_the_initiator)
            .finish_non_exhaustive()
    }
}

impl Keypair {
    pub fn new(keys: SessionKeys, now: Instant) -> Self {
        Self {
            sending_key: keys.sending,
            receiving_key: keys.receiving,
            sending_counter: 0,
            replay: ReplayWindow::new(),
            birth: now,
            i_am_the_initiator: keys.i_am_the_initiator,
            local_index: keys.local_index,
            remote_index: keys.remote_index,
            sending_valid: true,
            receiving_valid: true,
        }
    }

    pub fn local_index(&self) -> u32 {
        self.local_index
    }

    pub fn remote_index(&self) -> u32 {
        self.remote_index
    }

    pub fn birth(&self) -> Instant {
        self.birth
    }

    pub fn i_am_the_initiator(&self) -> bool {
        self.i_am_the_initiator
    }

    pub fn sending_counter(&self) -> u64 {
        self.sending_counter
    }

    /// Raw keys for the data path, which seals and opens in batches outside this crate.
    pub fn sending_key(&self) -> &[u8; 32] {
        &self.sending_key
    }

    pub fn receiving_key(&self) -> &[u8; 32] {
        &self.receiving_key
    }

    /// Takes the next sending counter, or `None` (and the keypair stops sending) when the key
    /// is too old or the counters are exhausted (send.c `wg_packet_send_staged_packets`).
    pub fn next_sending_counter(&mut self, now: Instant) -> Option<u64> {
        if !self.sending_valid {
            return None;
        }
        if now.has_expired(self.birth, REJECT_AFTER_TIME)
            || self.sending_counter >= REJECT_AFTER_MESSAGES
        {
            self.sending_valid = false;
            return None;
        }
        let c = self.sending_counter;
        self.sending_counter += 1;
        Some(c)
    }

    /// Whether a message may be decrypted with this keypair at all (before authentication):
    /// not once its keys are REJECT_AFTER_TIME old, nor once its receiving counter reached
    /// REJECT_AFTER_MESSAGES (the kernel's `decrypt_packet` checks both, and then marks the
    /// keypair invalid for receiving for good).
    pub fn can_receive(&mut self, now: Instant) -> bool {
        if self.receiving_valid
            && (now.has_expired(self.birth, REJECT_AFTER_TIME) || self.replay.is_exhausted())
        {
            self.receiving_valid = false;
        }
        self.receiving_valid
    }

    /// Records an authenticated counter; false for a replay (see [`ReplayWindow::validate`]).
    pub fn accept_counter(&mut self, counter: u64) -> bool {
        self.replay.validate(counter)
    }

    #[cfg(test)]
    pub(crate) fn set_sending_counter(&mut self, c: u64) {
        self.sending_counter = c;
    }
}

/// Which slot a keypair was found in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    Current,
    Previous,
    Next,
}

/// The three keypair slots of a peer.
#[derive(Debug, Default)]
pub struct Keypairs {
    pub(crate) current: Option<Box<Keypair>>,
    pub(crate) previous: Option<Box<Keypair>>,
    pub(crate) next: Option<Box<Keypair>>,
}

/// Local indices of keypairs dropped by a rotation, for the caller to release. At most three.
#[derive(Debug, Default)]
pub struct Released(pub(crate) [Option<u32>; 3]);

impl Released {
    fn push(&mut self, kp: Option<Box<Keypair>>) {
        if let Some(kp) = kp {
            if let Some(slot) = self.0.iter_mut().find(|s| s.is_none()) {
                *slot = Some(kp.local_index);
            }
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.0.iter().flatten().copied()
    }
}

impl Keypairs {
    pub fn current(&self) -> Option<&Keypair> {
        self.current.as_deref()
    }

    pub fn current_mut(&mut self) -> Option<&mut Keypair> {
        self.current.as_deref_mut()
    }

    /// Installs a freshly derived keypair (the kernel's `add_new_keypair`).
    pub fn insert(&mut self, new: Keypair) -> Released {
        let mut released = Released::default();
        let new = Some(Box::new(new));
        if new.as_ref().is_some_and(|k| k.i_am_the_initiator) {
            // Confirmed by the response: usable at once. A pending `next` (from a handshake we
            // answered meanwhile) becomes `previous` so its in-flight packets still decrypt.
            if let Some(next) = self.next.take() {
                released.push(self.previous.replace(next));
                released.push(self.current.take());
            } else {
                let old_current = self.current.take();
                released.push(std::mem::replace(&mut self.previous, old_current));
            }
            self.current = new;
        } else {
            // Unconfirmed until the initiator's first data message arrives.
            released.push(std::mem::replace(&mut self.next, new));
            released.push(self.previous.take());
        }
        released
    }

    /// The keypair under our receiver index `local_index`, in any slot.
    pub fn get(&self, local_index: u32) -> Option<&Keypair> {
        [&self.current, &self.previous, &self.next]
            .into_iter()
            .flatten()
            .map(|k| &**k)
            .find(|k| k.local_index == local_index)
    }

    /// Finds the keypair a data message is addressed to.
    pub fn lookup_mut(&mut self, local_index: u32) -> Option<(Slot, &mut Keypair)> {
        for (slot, kp) in [
            (Slot::Current, &mut self.current),
            (Slot::Previous, &mut self.previous),
            (Slot::Next, &mut self.next),
        ] {
            if let Some(k) = kp.as_deref_mut() {
                if k.local_index == local_index {
                    return Some((slot, k));
                }
            }
        }
        None
    }

    /// Called after a message authenticated on `slot`. If that was `next`, the handshake is
    /// confirmed: `next` becomes `current` (the kernel's `wg_noise_received_with_keypair`).
    /// Returns whether this completed a handshake, and what was released.
    pub fn received_with(&mut self, slot: Slot) -> (bool, Released) {
        let mut released = Released::default();
        if slot != Slot::Next {
            return (false, released);
        }
        let Some(next) = self.next.take() else {
            return (false, released);
        };
        let old_current = self.current.replace(next);
        released.push(std::mem::replace(&mut self.previous, old_current));
        (true, released)
    }

    /// Drops every keypair (key zeroing after 3 × REJECT_AFTER_TIME, or peer removal).
    pub fn clear(&mut self) -> Released {
        let mut released = Released::default();
        released.push(self.current.take());
        released.push(self.previous.take());
        released.push(self.next.take());
        released
    }

    pub fn is_empty(&self) -> bool {
        self.current.is_none() && self.previous.is_none() && self.next.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zeroize::Zeroizing;

    fn kp(index: u32, initiator: bool) -> Keypair {
        Keypair::new(
            SessionKeys {
                sending: Zeroizing::new([1; 32]),
                receiving: Zeroizing::new([2; 32]),
                local_index: index,
                remote_index: index + 100,
                i_am_the_initiator: initiator,
            },
            Instant::from_nanos(0),
        )
    }

    fn indices(k: &Keypairs) -> [Option<u32>; 3] {
        [&k.current, &k.previous, &k.next].map(|s| s.as_ref().map(|k| k.local_index))
    }

    #[test]
    fn initiator_rotation() {
        let mut k = Keypairs::default();
        assert_eq!(k.insert(kp(1, true)).iter().count(), 0);
        assert_eq!(k.insert(kp(2, true)).iter().count(), 0);
        assert_eq!(indices(&k), [Some(2), Some(1), None]);
        let r = k.insert(kp(3, true));
        assert_eq!(r.iter().collect::<Vec<_>>(), vec![1]);
        assert_eq!(indices(&k), [Some(3), Some(2), None]);
    }

    #[test]
    fn responder_waits_for_confirmation() {
        let mut k = Keypairs::default();
        k.insert(kp(1, true));
        k.insert(kp(2, true));
        let r = k.insert(kp(3, false));
        assert_eq!(r.iter().collect::<Vec<_>>(), vec![1], "previous dropped");
        assert_eq!(indices(&k), [Some(2), None, Some(3)]);
        // Data on current changes nothing; data on next confirms it.
        assert!(!k.received_with(Slot::Current).0);
        let (done, r) = k.received_with(Slot::Next);
        assert!(done);
        assert_eq!(r.iter().count(), 0);
        assert_eq!(indices(&k), [Some(3), Some(2), None]);
        // A second unconfirmed keypair replaces the first.
        k.insert(kp(4, false));
        let r = k.insert(kp(5, false));
        assert_eq!(r.iter().collect::<Vec<_>>(), vec![4]);
    }

    #[test]
    fn initiator_after_unconfirmed_next_keeps_it_as_previous() {
        let mut k = Keypairs::default();
        k.insert(kp(1, true));
        k.insert(kp(2, false));
        let r = k.insert(kp(3, true));
        assert_eq!(r.iter().collect::<Vec<_>>(), vec![1]);
        assert_eq!(indices(&k), [Some(3), Some(2), None]);
    }

    #[test]
    fn sending_stops_at_the_limits() {
        let mut a = kp(1, true);
        assert_eq!(a.next_sending_counter(Instant::from_nanos(0)), Some(0));
        assert_eq!(a.next_sending_counter(Instant::from_nanos(0)), Some(1));
        a.set_sending_counter(REJECT_AFTER_MESSAGES - 1);
        assert_eq!(
            a.next_sending_counter(Instant::from_nanos(0)),
            Some(REJECT_AFTER_MESSAGES - 1)
        );
        assert_eq!(a.next_sending_counter(Instant::from_nanos(0)), None);
        let mut b = kp(2, true);
        let late = Instant::from_nanos(0) + REJECT_AFTER_TIME;
        assert_eq!(b.next_sending_counter(late), None);
        assert!(!b.can_receive(late));
        assert!(kp(3, true).can_receive(late - std::time::Duration::from_nanos(1)));
    }

    /// As the kernel's `decrypt_packet`: once the receiving counter reaches
    /// REJECT_AFTER_MESSAGES the keypair takes no more messages, however young it is.
    #[test]
    fn receiving_stops_when_the_counters_are_exhausted() {
        let now = Instant::from_nanos(1);
        let mut a = kp(1, true);
        assert!(a.accept_counter(REJECT_AFTER_MESSAGES - 2));
        assert!(a.can_receive(now));
        assert!(a.accept_counter(REJECT_AFTER_MESSAGES - 1));
        assert!(!a.can_receive(now), "the last counter was used");
        assert!(!a.can_receive(now), "and it stays refused");
    }
}
