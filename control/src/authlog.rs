//! The authentication log: one line per handshake message that passed MAC1 (so came from
//! someone who knows the gateway's public key), saying whether it was accepted and why not,
//! which peer sent it when that is known, from where, and when. WireGuard itself keeps no such
//! record; operators ask for it. Nothing secret goes in: public keys, addresses, times.
//!
//! Lines are logfmt, e.g.
//! `ts=2026-11-27T05:07:01.123Z msg=initiation result=rejected reason=unknown_key
//! peer=hJ...= endpoint=198.18.0.2:40000`.
//! The same classification feeds the handshake-outcome counters of the metrics endpoint.

use proto::device::{DropReason, Received};
use proto::keys::PublicKey;
use proto::noise::HandshakeError;
use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

/// What became of a handshake message that passed MAC1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    Accepted,
    Rejected(&'static str),
}

impl Outcome {
    /// The outcome of `result`, or `None` if the message is not logged (it is not a
    /// handshake message, or its MAC1 was wrong: noise from anyone on the internet).
    pub fn of(result: &Result<Received, DropReason>) -> Option<Self> {
        use HandshakeError as H;
        Some(match result {
            Ok(Received::Initiation { .. } | Received::Response { .. }) => Self::Accepted,
            // Under load without a valid MAC2: answered with a cookie, not processed.
            Ok(Received::CookieReplySent) => Self::Rejected("mac2_required"),
            Ok(_) => return None,
            Err(DropReason::RateLimited) => Self::Rejected("rate_limited"),
            Err(DropReason::UnknownIndex) => Self::Rejected("unknown_index"),
            Err(DropReason::Handshake(e)) => Self::Rejected(match e {
                H::UnknownPeer => "unknown_key",
                H::StaleTimestamp => "stale_timestamp",
                H::Flood => "flood",
                H::StaticDecrypt | H::TimestampDecrypt | H::ResponseDecrypt => "decrypt_failure",
                H::LowOrderPoint => "low_order_key",
                H::WrongState => "unexpected_response",
            }),
            Err(_) => return None,
        })
    }

    pub fn reason(self) -> &'static str {
        match self {
            Self::Accepted => "",
            Self::Rejected(r) => r,
        }
    }
}

/// Formats a time since the Unix epoch as RFC 3339 UTC with milliseconds.
pub fn rfc3339(t: Duration) -> String {
    let secs = t.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        t.subsec_millis()
    )
}

/// One log line (without the newline).
pub fn line(
    unix: Duration,
    message: &str,
    outcome: Outcome,
    peer: Option<&PublicKey>,
    endpoint: SocketAddr,
) -> String {
    let mut s = format!("ts={} msg={message} ", rfc3339(unix));
    match outcome {
        Outcome::Accepted => s.push_str("result=accepted"),
        Outcome::Rejected(r) => {
            s.push_str("result=rejected reason=");
            s.push_str(r);
        }
    }
    if let Some(p) = peer {
        s.push_str(" peer=");
        s.push_str(&p.to_base64());
    }
    s.push_str(&format!(" endpoint={endpoint}"));
    s
}

/// The log's sink and the outcome counters. Writes are buffered and flushed once per
/// control step, so a flood of handshakes costs a write per step, not per message.
#[derive(Debug, Default)]
pub struct AuthLog {
    out: Option<std::io::BufWriter<std::fs::File>>,
    /// Handshake messages per (message, outcome), for the metrics endpoint.
    pub counts: BTreeMap<(&'static str, Outcome), u64>,
}

impl AuthLog {
    /// Appends to `path` (created 0600), or only counts with `None`.
    pub fn open(path: Option<&std::path::Path>) -> std::io::Result<Self> {
        let out = match path {
            Some(p) => {
                use std::os::unix::fs::OpenOptionsExt as _;
                let f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .mode(0o600)
                    .open(p)?;
                Some(std::io::BufWriter::new(f))
            }
            None => None,
        };
        Ok(Self {
            out,
            counts: BTreeMap::new(),
        })
    }

    pub fn record(
        &mut self,
        unix: Duration,
        message: &'static str,
        outcome: Outcome,
        peer: Option<&PublicKey>,
        endpoint: SocketAddr,
    ) {
        *self.counts.entry((message, outcome)).or_default() += 1;
        if let Some(out) = self.out.as_mut() {
            let _ = writeln!(out, "{}", line(unix, message, outcome, peer, endpoint));
        }
    }

    pub fn flush(&mut self) {
        if let Some(out) = self.out.as_mut() {
            let _ = out.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_by_reason() {
        use HandshakeError as H;
        let cases: &[(Result<Received, DropReason>, Option<Outcome>)] = &[
            (
                Ok(Received::Initiation {
                    peer: proto::device::PeerId(0),
                }),
                Some(Outcome::Accepted),
            ),
            (
                Ok(Received::CookieReplySent),
                Some(Outcome::Rejected("mac2_required")),
            ),
            (
                Err(DropReason::Handshake(H::UnknownPeer)),
                Some(Outcome::Rejected("unknown_key")),
            ),
            (
                Err(DropReason::Handshake(H::StaleTimestamp)),
                Some(Outcome::Rejected("stale_timestamp")),
            ),
            (
                Err(DropReason::Handshake(H::StaticDecrypt)),
                Some(Outcome::Rejected("decrypt_failure")),
            ),
            (
                Err(DropReason::RateLimited),
                Some(Outcome::Rejected("rate_limited")),
            ),
            (Err(DropReason::InvalidMac1), None),
            (Err(DropReason::BadLength), None),
        ];
        for (r, want) in cases {
            assert_eq!(Outcome::of(r), *want, "{r:?}");
        }
    }

    #[test]
    fn lines_are_logfmt_with_utc_times() {
        assert_eq!(rfc3339(Duration::ZERO), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339(Duration::from_millis(1_795_756_021_123)),
            "2026-11-27T05:07:01.123Z"
        );
        assert_eq!(
            rfc3339(Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00.000Z"
        );
        let key = PublicKey::from_bytes([7; 32]);
        let l = line(
            Duration::from_secs(0),
            "initiation",
            Outcome::Rejected("unknown_key"),
            Some(&key),
            "198.18.0.2:40000".parse().unwrap(),
        );
        assert_eq!(
            l,
            format!(
                "ts=1970-01-01T00:00:00.000Z msg=initiation result=rejected reason=unknown_key peer={} endpoint=198.18.0.2:40000",
                key.to_base64()
            )
        );
    }
}
