//! Every protocol limit in one place, as the kernel keeps them in `messages.h`.
//! Values from the WireGuard whitepaper §6.1 and, where it is silent, the Linux kernel.

use std::time::Duration;

/// After this many messages on a keypair the sender starts a new handshake.
pub const REKEY_AFTER_MESSAGES: u64 = 1 << 60;
/// Bits in the anti-replay ring (`COUNTER_BITS_TOTAL` in messages.h).
pub const COUNTER_BITS_TOTAL: u64 = 8192;
/// One ring word the window leaves unused, so that the word holding the oldest counters need
/// not be cleared while the newest word fills (`COUNTER_REDUNDANT_BITS` = `BITS_PER_LONG`; we
/// follow 64-bit kernels, a 32-bit kernel's window is 8160).
pub const COUNTER_REDUNDANT_BITS: u64 = u64::BITS as u64;
/// Size of the anti-replay window in messages: 8192 - 64 = 8128.
pub const COUNTER_WINDOW_SIZE: u64 = COUNTER_BITS_TOTAL - COUNTER_REDUNDANT_BITS;
/// No message is sent or accepted with a counter at or above this. The whitepaper says
/// 2^64 - 2^13 - 1; the kernel uses `U64_MAX - COUNTER_WINDOW_SIZE - 1` and we follow it.
pub const REJECT_AFTER_MESSAGES: u64 = u64::MAX - COUNTER_WINDOW_SIZE - 1;
/// The initiator of the current keypair rekeys when it sends on a keypair this old.
pub const REKEY_AFTER_TIME: Duration = Duration::from_secs(120);
/// Keypairs older than this are never used, in either direction.
pub const REJECT_AFTER_TIME: Duration = Duration::from_secs(180);
/// Handshake retransmissions stop after this long.
pub const REKEY_ATTEMPT_TIME: Duration = Duration::from_secs(90);
/// Time between handshake initiations (retransmissions, and the floor for any new one).
pub const REKEY_TIMEOUT: Duration = Duration::from_secs(5);
/// Upper bound of the random extra delay added to REKEY_TIMEOUT; the kernel uses HZ / 3.
pub const REKEY_TIMEOUT_JITTER_MAX: Duration = Duration::from_millis(333);
/// Passive keepalive delay, and the base of the "stopped hearing back" handshake.
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);
/// Retransmissions of an initiation before giving up (REKEY_ATTEMPT_TIME / REKEY_TIMEOUT).
pub const MAX_TIMER_HANDSHAKES: u32 = 18;
/// Lifetime of the responder's cookie secret.
pub const COOKIE_SECRET_MAX_AGE: Duration = Duration::from_secs(120);
/// An initiator stops using a received cookie this long before the responder's secret could
/// have rotated, so mac2 is not computed with a cookie the responder no longer accepts.
pub const COOKIE_SECRET_LATENCY: Duration = Duration::from_secs(5);
/// At most this many initiations per second are consumed from one peer (one per 20 ms).
pub const INITIATIONS_PER_SECOND: u32 = 50;
/// Packets kept per peer while a handshake is under way (the kernel's MAX_STAGED_PACKETS).
pub const MAX_STAGED_PACKETS: usize = 128;
/// Plaintext of data messages is zero-padded to a multiple of this.
pub const MESSAGE_PADDING_MULTIPLE: usize = 16;
/// The kernel's handshake queue holds 4096; it counts as "under load" from 1/8 of that.
pub const MAX_QUEUED_INCOMING_HANDSHAKES: usize = 4096;
pub const UNDER_LOAD_QUEUE_LEN: usize = MAX_QUEUED_INCOMING_HANDSHAKES / 8;
/// Once under load, the state is kept for this long after the queue drains.
pub const UNDER_LOAD_AFTER_TIME: Duration = Duration::from_secs(1);
