//! The authentication log: every handshake message that passed MAC1 (so came from someone
//! who knows the gateway's public key), saying whether it was accepted and why not, which peer
//! sent it when that is known, from where, and when. WireGuard itself keeps no such record;
//! operators ask for it. Nothing secret goes in: public keys, addresses, times.
//!
//! Lines are logfmt, e.g.
//! `ts=2026-11-27T05:07:01.123Z msg=initiation result=rejected reason=unknown_key
//! peer=hJ...= endpoint=198.18.0.2:40000`.
//! The same classification feeds the handshake-outcome counters of the metrics endpoint.
//!
//! The log must not become the attack: one captured initiation replayed from spoofed sources
//! passes MAC1 every time and is refused (mac2_required, rate_limited, stale_timestamp...) at
//! whatever rate the sender manages, and the log lives on tmpfs (`/run`). So:
//!
//! - every **accepted** handshake has its own line (only peers' keys get there, and the
//!   protocol rate-limits each peer's initiations);
//! - **rejections** are aggregated over a [`WINDOW`] by kind: message, reason, peer (when
//!   known) and source prefix (/24 for IPv4, /64 for IPv6, what one spoofer controls). The
//!   first of a kind in a window gets its line at once, as above; when the window ends, one
//!   line per kind says how many more came (`source=198.18.0.0/24 repeated=N window=10s`).
//!   At most [`MAX_KINDS`] kinds are tracked per window; rejections of further kinds are only
//!   counted, in one line at the window's end (`folded=N`). So rejections cost at most
//!   `2 * MAX_KINDS + 1` lines per window, whatever their rate, and fixed memory;
//! - the file is **rotated**: when the next line would take it past half of its budget
//!   (`--auth-log-max`, [`DEFAULT_MAX_BYTES`]), it becomes `auth.log.1` (replacing the
//!   previous one) and a new file starts, so both together stay within the budget.

use proto::device::{DropReason, Received};
use proto::keys::PublicKey;
use proto::noise::HandshakeError;
use std::collections::BTreeMap;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long rejections are aggregated before their counts are written.
pub const WINDOW: Duration = Duration::from_secs(10);
/// Kinds of rejection (message, reason, peer, source prefix) tracked per window.
pub const MAX_KINDS: usize = 64;
/// The log's budget on disk, both files together (`auth.log` and `auth.log.1`).
pub const DEFAULT_MAX_BYTES: u64 = 16 << 20;
/// The smallest budget accepted: room for some lines in each of the two files.
pub const MIN_MAX_BYTES: u64 = 4096;

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

/// Where rejections come from, as far as aggregating them goes: the source address's /24
/// (IPv4) or /64 (IPv6), the part one sender may spoof at will.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Source(IpAddr, u8);

impl Source {
    pub fn of(a: SocketAddr) -> Self {
        match a.ip() {
            IpAddr::V4(v) => Self(Ipv4Addr::from(u32::from(v) & !0xff).into(), 24),
            IpAddr::V6(v) => Self(
                Ipv6Addr::from(u128::from(v) & !u128::from(u64::MAX)).into(),
                64,
            ),
        }
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.0, self.1)
    }
}

/// A kind of rejection, as aggregated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Kind {
    message: &'static str,
    reason: &'static str,
    peer: Option<PublicKey>,
    source: Source,
}

/// The rejections of the current window.
#[derive(Debug, Default)]
struct Window {
    start: Option<Duration>,
    /// Per kind: how many came after the first (which has its own line).
    kinds: BTreeMap<Kind, u64>,
    /// Rejections of kinds beyond MAX_KINDS.
    folded: u64,
}

/// A log file that rotates to `<name>.1` when it would pass `limit` bytes.
#[derive(Debug)]
struct Rotating {
    path: PathBuf,
    out: std::io::BufWriter<std::fs::File>,
    /// Bytes in the file, including what is still buffered.
    len: u64,
    limit: u64,
}

fn open_append(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

impl Rotating {
    fn open(path: &Path, limit: u64) -> std::io::Result<Self> {
        let f = open_append(path)?;
        Ok(Self {
            len: f.metadata()?.len(),
            out: std::io::BufWriter::new(f),
            path: path.to_path_buf(),
            limit,
        })
    }

    fn previous(&self) -> PathBuf {
        let mut name = self.path.file_name().unwrap_or_default().to_os_string();
        name.push(".1");
        self.path.with_file_name(name)
    }

    fn write_line(&mut self, line: &str) -> std::io::Result<()> {
        let n = line.len() as u64 + 1;
        // A line that alone exceeds the limit still goes into a file of its own.
        if self.len > 0 && self.len + n > self.limit {
            self.out.flush()?;
            match std::fs::rename(&self.path, self.previous()) {
                // Someone removed the file: start a new one all the same.
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
            self.out = std::io::BufWriter::new(open_append(&self.path)?);
            self.len = 0;
        }
        self.len += n;
        writeln!(self.out, "{line}")
    }
}

/// The log's sink and the outcome counters. Writes are buffered and flushed once per
/// control step, so a flood of handshakes costs a write per step, not per message.
#[derive(Debug, Default)]
pub struct AuthLog {
    out: Option<Rotating>,
    window: Window,
    /// The latest time seen, to close the window with when the log is dropped.
    last: Duration,
    /// Handshake messages per (message, outcome), for the metrics endpoint.
    pub counts: BTreeMap<(&'static str, Outcome), u64>,
}

impl AuthLog {
    /// Appends to `path` (created 0600), rotating so that it and `<path>.1` together stay
    /// within `max_bytes` (at least [`MIN_MAX_BYTES`]); or only counts with `None`.
    pub fn open(path: Option<&Path>, max_bytes: u64) -> std::io::Result<Self> {
        let out = match path {
            Some(p) => Some(Rotating::open(p, max_bytes.max(MIN_MAX_BYTES) / 2)?),
            None => None,
        };
        Ok(Self {
            out,
            window: Window::default(),
            last: Duration::ZERO,
            counts: BTreeMap::new(),
        })
    }

    fn write(&mut self, line: &str) {
        if let Some(out) = self.out.as_mut() {
            // Nothing to do about a full disk here: the counters still count.
            let _ = out.write_line(line);
        }
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
        if self.out.is_none() {
            return;
        }
        self.close_window(unix);
        let Outcome::Rejected(reason) = outcome else {
            self.write(&line(unix, message, outcome, peer, endpoint));
            return;
        };
        let w = &mut self.window;
        w.start.get_or_insert(unix);
        let kind = Kind {
            message,
            reason,
            peer: peer.copied(),
            source: Source::of(endpoint),
        };
        if let Some(n) = w.kinds.get_mut(&kind) {
            *n += 1;
        } else if w.kinds.len() < MAX_KINDS {
            w.kinds.insert(kind, 0);
            self.write(&line(unix, message, outcome, peer, endpoint));
        } else {
            w.folded += 1;
        }
    }

    /// Ends the window if it has run its time at `now` (or the clock went back): one line
    /// per kind that came more than once, and one for what was folded.
    fn close_window(&mut self, now: Duration) {
        self.last = self.last.max(now);
        let Some(start) = self.window.start else {
            return;
        };
        if now >= start && now < start + WINDOW {
            return;
        }
        let w = std::mem::take(&mut self.window);
        let ts = rfc3339(now);
        let secs = WINDOW.as_secs();
        for (k, n) in w.kinds.into_iter().filter(|(_, n)| *n > 0) {
            let mut s = format!(
                "ts={ts} msg={} result=rejected reason={}",
                k.message, k.reason
            );
            if let Some(p) = k.peer {
                s.push_str(" peer=");
                s.push_str(&p.to_base64());
            }
            s.push_str(&format!(" source={} repeated={n} window={secs}s", k.source));
            self.write(&s);
        }
        if w.folded > 0 {
            self.write(&format!(
                "ts={ts} result=rejected folded={} window={secs}s",
                w.folded
            ));
        }
    }

    /// Once per control step: ends the window if its time is up, then writes out.
    pub fn flush(&mut self, now: Duration) {
        self.close_window(now);
        if let Some(out) = self.out.as_mut() {
            let _ = out.out.flush();
        }
    }
}

impl Drop for AuthLog {
    /// The counts of the last window are not lost when control stops.
    fn drop(&mut self) {
        let end = self
            .last
            .max(self.window.start.unwrap_or_default() + WINDOW);
        self.flush(end);
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

    /// A fresh directory for a log; removed by the caller.
    fn temp_log(tag: &str) -> (std::path::PathBuf, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("wgxdp-authlog-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("auth.log");
        (dir, log)
    }

    fn size(p: &std::path::Path) -> u64 {
        std::fs::metadata(p).map_or(0, |m| m.len())
    }

    fn lines_of(p: &std::path::Path) -> Vec<String> {
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Spoofed sources everywhere: `n` spread over some 4000 IPv4 /24s and IPv6 /64s.
    fn spoofed(n: u64) -> SocketAddr {
        let x = n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        if x.is_multiple_of(5) {
            let a = std::net::Ipv6Addr::from(
                (0x2001_0002_u128 << 96) | u128::from(x >> 40) << 64 | u128::from(x),
            );
            SocketAddr::new(a.into(), (x >> 16) as u16)
        } else {
            let a = std::net::Ipv4Addr::from(0xc612_0000 | (x >> 32) as u32 & 0x000f_ffff);
            SocketAddr::new(a.into(), (x >> 8) as u16)
        }
    }

    const REASONS: [&str; 4] = [
        "mac2_required",
        "rate_limited",
        "stale_timestamp",
        "unknown_key",
    ];

    /// One captured initiation replayed from spoofed sources at 1000 messages a second for
    /// 100 s, with a peer's genuine handshakes among them: the log stays under its cap (two
    /// files of at most half of it each), rotating, and the newest accepted handshake is in.
    #[test]
    fn a_flood_of_rejections_stays_under_the_cap_and_rotates() {
        use std::os::unix::fs::PermissionsExt as _;
        let (dir, path) = temp_log("flood");
        let cap = 256 << 10;
        let mut log = AuthLog::open(Some(&path), cap).unwrap();
        let peer = PublicKey::from_bytes([3; 32]);
        let t0 = Duration::from_secs(1_795_756_021);
        let mut t = t0;
        for n in 0..100_000u64 {
            t = t0 + Duration::from_millis(n);
            let reason = REASONS[n as usize % REASONS.len()];
            log.record(
                t,
                "initiation",
                Outcome::Rejected(reason),
                Some(&peer),
                spoofed(n),
            );
            if n.is_multiple_of(100) {
                log.record(t, "initiation", Outcome::Accepted, Some(&peer), spoofed(n));
            }
            if n.is_multiple_of(20) {
                log.flush(t);
            }
        }
        log.record(
            t,
            "initiation",
            Outcome::Accepted,
            Some(&peer),
            "198.18.9.9:1".parse().unwrap(),
        );
        log.flush(t);
        let old = path.with_file_name("auth.log.1");
        eprintln!(
            "auth.log {} bytes, auth.log.1 {} bytes",
            size(&path),
            size(&old)
        );
        assert!(
            size(&path) + size(&old) <= cap,
            "{} + {} bytes",
            size(&path),
            size(&old)
        );
        assert!(old.exists(), "rotated");
        assert!(size(&path) <= cap / 2 && size(&old) <= cap / 2);
        for p in [&path, &old] {
            assert_eq!(
                std::fs::metadata(p).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        let last = lines_of(&path);
        assert!(
            last.last().is_some_and(
                |l| l.contains("result=accepted") && l.contains("endpoint=198.18.9.9:1")
            ),
            "{:?}",
            last.last()
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Per window: every accepted handshake has its line; rejections take at most one line
    /// per kind and source prefix when they start and one with the count when the window
    /// ends, for at most MAX_KINDS of them, and one line for the rest; and every rejection is
    /// accounted for in exactly one of those lines.
    #[test]
    fn rejections_are_aggregated_per_window_and_accepted_ones_all_logged() {
        let (dir, path) = temp_log("windows");
        let mut log = AuthLog::open(Some(&path), DEFAULT_MAX_BYTES).unwrap();
        let peer = PublicKey::from_bytes([4; 32]);
        let t0 = Duration::from_secs(1_795_756_020);
        let mut seen = 0;
        let mut n = 0u64;
        for w in 0..10u32 {
            let start = t0 + WINDOW * w;
            for i in 0..10_000u32 {
                let t = start + WINDOW * i / 10_000;
                // A few sources send most of it, spoofed ones the rest.
                let src = if i.is_multiple_of(2) {
                    SocketAddr::new([198, 18, 0, (i % 7) as u8].into(), 40_000)
                } else {
                    n += 1;
                    spoofed(n)
                };
                let reason = REASONS[i as usize % 3];
                log.record(t, "initiation", Outcome::Rejected(reason), Some(&peer), src);
                if i.is_multiple_of(100) {
                    log.record(t, "initiation", Outcome::Accepted, Some(&peer), src);
                }
            }
            log.flush(start + WINDOW);
            let all = lines_of(&path);
            let lines = &all[seen..];
            seen = all.len();
            let accepted = lines
                .iter()
                .filter(|l| l.contains("result=accepted"))
                .count();
            assert_eq!(accepted, 100, "window {w}");
            let rejected: Vec<&String> = lines
                .iter()
                .filter(|l| l.contains("result=rejected"))
                .collect();
            assert!(
                rejected.len() <= 2 * MAX_KINDS + 1,
                "window {w}: {} lines",
                rejected.len()
            );
            let field = |l: &str, k: &str| {
                l.split(' ')
                    .find_map(|f| f.strip_prefix(k))
                    .map(|v| v.parse::<u64>().unwrap())
            };
            let total: u64 = rejected
                .iter()
                .map(|l| field(l, "repeated=").or(field(l, "folded=")).unwrap_or(1))
                .sum();
            assert_eq!(total, 10_000, "window {w}: every rejection counted once");
            assert!(
                rejected
                    .iter()
                    .any(|l| l.contains("source=198.18.0.0/24")
                        && l.contains("reason=mac2_required")),
                "{rejected:?}"
            );
            assert!(rejected.iter().any(|l| l.contains("folded=")));
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// One source replaying one initiation: its first rejection as it happens, then one line
    /// per window with how many more came.
    #[test]
    fn one_source_replaying_costs_two_lines_per_window() {
        let (dir, path) = temp_log("replay");
        let mut log = AuthLog::open(Some(&path), DEFAULT_MAX_BYTES).unwrap();
        let src: SocketAddr = "[2001:2::1234]:5".parse().unwrap();
        let t0 = Duration::from_secs(1_795_756_020);
        for i in 0..100_000u32 {
            let t = t0 + WINDOW * i / 50_000;
            log.record(
                t,
                "initiation",
                Outcome::Rejected("stale_timestamp"),
                None,
                src,
            );
            log.flush(t);
        }
        log.flush(t0 + WINDOW * 3);
        let lines = lines_of(&path);
        assert_eq!(lines.len(), 4, "{lines:#?}");
        assert!(
            lines[0].ends_with("reason=stale_timestamp endpoint=[2001:2::1234]:5"),
            "{}",
            lines[0]
        );
        assert!(
            lines[1]
                .contains("reason=stale_timestamp source=2001:2::/64 repeated=49999 window=10s"),
            "{}",
            lines[1]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn source_prefixes() {
        for (a, p) in [
            ("198.18.7.9:1", "198.18.7.0/24"),
            ("[2001:2:0:5:1:2:3:4]:1", "2001:2:0:5::/64"),
        ] {
            assert_eq!(Source::of(a.parse().unwrap()).to_string(), p);
        }
    }
}
