//! The per-peer timers of whitepaper §6, as deadlines driven by events (the kernel's
//! `timers.c`). Nothing here fires by itself: the device records events as they happen and
//! asks [`Timers::expired`] which deadlines have passed at `now`.
//!
//! | timer | armed by | cleared by | on expiry |
//! |---|---|---|---|
//! | retransmit_handshake | initiation sent | handshake complete | resend initiation, or give up after MAX_TIMER_HANDSHAKES |
//! | send_keepalive | data received (if not armed) | any authenticated packet sent | send a keepalive |
//! | new_handshake | data sent (if not armed) | any authenticated packet received | start a handshake |
//! | zero_key_material | session derived; giving up | — | wipe keys and handshake |
//! | persistent_keepalive | any authenticated packet sent or received | — | send a keepalive |

use crate::constants::{KEEPALIVE_TIMEOUT, REJECT_AFTER_TIME, REKEY_TIMEOUT};
use crate::time::Instant;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerKind {
    RetransmitHandshake,
    SendKeepalive,
    NewHandshake,
    ZeroKeyMaterial,
    PersistentKeepalive,
}

#[derive(Debug, Default, Clone)]
pub struct Timers {
    pub(crate) retransmit_handshake: Option<Instant>,
    pub(crate) send_keepalive: Option<Instant>,
    pub(crate) new_handshake: Option<Instant>,
    pub(crate) zero_key_material: Option<Instant>,
    pub(crate) persistent_keepalive: Option<Instant>,
    /// Data arrived while a passive keepalive was already pending: send another after it.
    pub(crate) need_another_keepalive: bool,
    /// Retransmissions of the current initiation so far.
    pub(crate) handshake_attempts: u32,
    /// The receive-side "last minute" rekey was already requested for this keypair.
    pub(crate) sent_lastminute_handshake: bool,
    /// Interval of persistent keepalives, if configured.
    pub(crate) persistent_keepalive_interval: Option<Duration>,
}

impl Timers {
    /// After sending an authenticated packet (data, keepalive or handshake).
    pub fn any_authenticated_packet_sent(&mut self) {
        self.send_keepalive = None;
    }

    /// After receiving an authenticated packet.
    pub fn any_authenticated_packet_received(&mut self) {
        self.new_handshake = None;
    }

    /// After any authenticated packet in either direction.
    pub fn any_authenticated_packet_traversal(&mut self, now: Instant) {
        if let Some(interval) = self.persistent_keepalive_interval {
            self.persistent_keepalive = Some(now + interval);
        }
    }

    /// After sending a data packet (not a keepalive): expect to hear back.
    pub fn data_sent(&mut self, now: Instant, jitter: Duration) {
        if self.new_handshake.is_none() {
            self.new_handshake = Some(now + KEEPALIVE_TIMEOUT + REKEY_TIMEOUT + jitter);
        }
    }

    /// After receiving a data packet (not a keepalive): answer with a keepalive if we have
    /// nothing to send by then.
    pub fn data_received(&mut self, now: Instant) {
        if self.send_keepalive.is_none() {
            self.send_keepalive = Some(now + KEEPALIVE_TIMEOUT);
        } else {
            self.need_another_keepalive = true;
        }
    }

    /// After sending an initiation.
    pub fn handshake_initiated(&mut self, now: Instant, jitter: Duration) {
        self.retransmit_handshake = Some(now + REKEY_TIMEOUT + jitter);
    }

    /// After a handshake completed (response consumed, or first data on a new keypair).
    pub fn handshake_complete(&mut self) {
        self.retransmit_handshake = None;
        self.handshake_attempts = 0;
        self.sent_lastminute_handshake = false;
    }

    /// After new keys were derived, in either role.
    pub fn session_derived(&mut self, now: Instant) {
        self.zero_key_material = Some(now + REJECT_AFTER_TIME * 3);
    }

    /// Earliest armed deadline.
    pub fn next_deadline(&self) -> Option<Instant> {
        [
            self.retransmit_handshake,
            self.send_keepalive,
            self.new_handshake,
            self.zero_key_material,
            self.persistent_keepalive,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Takes the earliest deadline at or before `now`, disarming it.
    pub fn take_expired(&mut self, now: Instant) -> Option<TimerKind> {
        let slots = [
            (
                TimerKind::RetransmitHandshake,
                &mut self.retransmit_handshake,
            ),
            (TimerKind::SendKeepalive, &mut self.send_keepalive),
            (TimerKind::NewHandshake, &mut self.new_handshake),
            (TimerKind::ZeroKeyMaterial, &mut self.zero_key_material),
            (
                TimerKind::PersistentKeepalive,
                &mut self.persistent_keepalive,
            ),
        ];
        let (kind, slot) = slots
            .into_iter()
            .filter(|(_, s)| s.is_some_and(|d| d <= now))
            .min_by_key(|(_, s)| s.unwrap_or(now))?;
        *slot = None;
        Some(kind)
    }

    /// Disarms everything (peer removed or keys wiped).
    pub fn stop_all(&mut self) {
        let interval = self.persistent_keepalive_interval;
        *self = Self {
            persistent_keepalive_interval: interval,
            ..Self::default()
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: u64) -> Instant {
        Instant::from_nanos(s * 1_000_000_000)
    }

    #[test]
    fn keepalive_and_new_handshake_rules() {
        let mut tm = Timers::default();
        tm.data_received(t(0));
        tm.data_received(t(1));
        assert_eq!(tm.send_keepalive, Some(t(10)), "not re-armed while pending");
        assert!(tm.need_another_keepalive);
        tm.any_authenticated_packet_sent();
        assert_eq!(tm.send_keepalive, None);

        tm.data_sent(t(0), Duration::ZERO);
        tm.data_sent(t(3), Duration::ZERO);
        assert_eq!(tm.new_handshake, Some(t(15)));
        tm.any_authenticated_packet_received();
        assert_eq!(tm.new_handshake, None);
    }

    #[test]
    fn expiry_order_and_persistent_keepalive() {
        let mut tm = Timers {
            persistent_keepalive_interval: Some(Duration::from_secs(25)),
            ..Default::default()
        };
        tm.any_authenticated_packet_traversal(t(0));
        tm.handshake_initiated(t(0), Duration::from_millis(100));
        tm.session_derived(t(0));
        assert_eq!(tm.next_deadline(), Some(t(5) + Duration::from_millis(100)));
        assert_eq!(tm.take_expired(t(4)), None);
        assert_eq!(tm.take_expired(t(30)), Some(TimerKind::RetransmitHandshake));
        assert_eq!(tm.take_expired(t(30)), Some(TimerKind::PersistentKeepalive));
        assert_eq!(tm.take_expired(t(30)), None);
        assert_eq!(tm.take_expired(t(540)), Some(TimerKind::ZeroKeyMaterial));
        tm.stop_all();
        assert_eq!(tm.next_deadline(), None);
        assert_eq!(
            tm.persistent_keepalive_interval,
            Some(Duration::from_secs(25))
        );
    }
}
