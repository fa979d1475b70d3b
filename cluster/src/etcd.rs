//! A small etcd v3 client: range, put, delete and watch over etcd's JSON gateway (HTTP/1.1
//! `POST /v3/...`, keys and values in base64, 64-bit numbers as strings), which every etcd
//! 3.4+ member serves on its client port. Blocking and thread-free: the sync process is one
//! loop, so it needs no async runtime (etcd-client would bring tokio and a protoc build step).
//!
//! Several endpoints may be given; a request that cannot reach one tries the next, and the
//! client stays with the last one that answered.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::Deserialize;
use serde_json::json;
use std::cell::Cell;
use std::fmt;
use std::io::Read;
use std::time::Duration;

/// How long a unary request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a watch may stay silent before it is reopened: a member that hangs (rather than
/// closing the connection) is noticed within this time.
pub const WATCH_IDLE: Duration = Duration::from_secs(15);
/// Keys per range page: bounds each answer's size whatever the prefix holds.
const PAGE: usize = 1000;
/// Puts per transaction: etcd's default `--max-txn-ops`.
pub const TXN_OPS: usize = 128;
/// Largest answer body read: a page of records, or one watch message.
const MAX_BODY: u64 = 64 << 20;

#[derive(Debug)]
pub enum EtcdError {
    /// No endpoint answered; the last one's error.
    Unreachable(String),
    /// The watch's start revision has been compacted away: read everything again.
    Compacted { compact_revision: i64 },
    /// etcd answered with an error (a bad request, or the cluster has no leader).
    Refused(String),
    /// An answer we could not read.
    Protocol(String),
    /// A watch heard nothing for [`WATCH_IDLE`]: reopen it.
    Idle,
}

impl fmt::Display for EtcdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EtcdError::Unreachable(e) => write!(f, "etcd unreachable: {e}"),
            EtcdError::Compacted { compact_revision } => {
                write!(
                    f,
                    "etcd compacted the history up to revision {compact_revision}"
                )
            }
            EtcdError::Refused(e) => write!(f, "etcd refused the request: {e}"),
            EtcdError::Protocol(e) => write!(f, "unreadable answer from etcd: {e}"),
            EtcdError::Idle => write!(f, "the watch was silent for {WATCH_IDLE:?}"),
        }
    }
}

impl std::error::Error for EtcdError {}

/// One key and its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kv {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub mod_revision: i64,
}

/// Every key under a prefix, as of one revision.
#[derive(Debug)]
pub struct Snapshot {
    pub revision: i64,
    pub kvs: Vec<Kv>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Put(Kv),
    Delete { key: Vec<u8>, mod_revision: i64 },
}

/// The end of the range that holds exactly the keys starting with `prefix` (etcd's
/// convention: the prefix with its last byte incremented, carrying over 0xff bytes; "\0"
/// for every key when there is no such end).
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// `etcd://HOST:PORT[,HOST:PORT...]/PREFIX` (or `http://...`): the client URLs and the key
/// prefix, which always ends in `/`.
pub fn parse_url(url: &str) -> Result<(Vec<String>, String), String> {
    let rest = url
        .strip_prefix("etcd://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| format!("{url}: expected etcd://HOST:PORT[,HOST:PORT...]/PREFIX"))?;
    let (hosts, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let mut endpoints = Vec::new();
    for h in hosts.split(',') {
        let h = h.trim();
        let port_ok = h
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
        if !port_ok {
            return Err(format!("{url}: `{h}` is not HOST:PORT"));
        }
        endpoints.push(format!("http://{h}"));
    }
    let mut prefix = path.to_string();
    if !prefix.ends_with('/') {
        prefix.push('/');
    }
    Ok((endpoints, prefix))
}

#[derive(Debug)]
pub struct Etcd {
    endpoints: Vec<String>,
    agent: ureq::Agent,
    watch_agent: ureq::Agent,
    current: Cell<usize>,
}

// The JSON gateway's shapes (proto3 JSON: int64 as strings, zero values left out).
#[derive(Deserialize, Default)]
struct Header {
    #[serde(default)]
    revision: Option<String>,
}
#[derive(Deserialize)]
struct JsonKv {
    key: String,
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    mod_revision: Option<String>,
}
#[derive(Deserialize)]
struct RangeResponse {
    #[serde(default)]
    header: Header,
    #[serde(default)]
    kvs: Vec<JsonKv>,
    #[serde(default)]
    more: bool,
}
#[derive(Deserialize)]
struct JsonEvent {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    kv: JsonKv,
}
#[derive(Deserialize)]
struct WatchResult {
    #[serde(default)]
    header: Header,
    #[serde(default)]
    canceled: bool,
    #[serde(default)]
    compact_revision: Option<String>,
    #[serde(default)]
    cancel_reason: Option<String>,
    #[serde(default)]
    events: Vec<JsonEvent>,
}
#[derive(Deserialize)]
struct WatchMessage {
    #[serde(default)]
    result: Option<WatchResult>,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

fn number(s: &Option<String>) -> Result<i64, EtcdError> {
    match s {
        None => Ok(0),
        Some(s) => s
            .parse()
            .map_err(|_| EtcdError::Protocol(format!("`{s}` is not a number"))),
    }
}

fn unb64(s: &str) -> Result<Vec<u8>, EtcdError> {
    B64.decode(s)
        .map_err(|e| EtcdError::Protocol(format!("base64: {e}")))
}

impl JsonKv {
    fn into_kv(self) -> Result<Kv, EtcdError> {
        Ok(Kv {
            key: unb64(&self.key)?,
            value: match &self.value {
                Some(v) => unb64(v)?,
                None => Vec::new(),
            },
            mod_revision: number(&self.mod_revision)?,
        })
    }
}

impl Etcd {
    pub fn new(endpoints: Vec<String>) -> Self {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(2))
            .timeout(REQUEST_TIMEOUT)
            .build();
        let watch_agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(2))
            .timeout_read(WATCH_IDLE)
            .build();
        Etcd {
            endpoints,
            agent,
            watch_agent,
            current: Cell::new(0),
        }
    }

    /// The endpoint the last successful request went to.
    pub fn endpoint(&self) -> &str {
        &self.endpoints[self.current.get() % self.endpoints.len()]
    }

    /// POSTs `body` to `path` on each endpoint in turn, from the current one, until one
    /// answers; returns the answer's body.
    fn post(
        &self,
        agent: &ureq::Agent,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<Box<dyn Read + Send + Sync>, EtcdError> {
        let n = self.endpoints.len();
        let mut last = String::from("no endpoints");
        for i in 0..n {
            let at = (self.current.get() + i) % n;
            let url = format!("{}{path}", self.endpoints[at]);
            match agent.post(&url).send_string(&body.to_string()) {
                Ok(r) => {
                    self.current.set(at);
                    return Ok(Box::new(r.into_reader().take(MAX_BODY)));
                }
                // An answer with an error status: etcd is there, and said no.
                Err(ureq::Error::Status(code, r)) => {
                    self.current.set(at);
                    let text = r.into_string().unwrap_or_default();
                    return Err(EtcdError::Refused(format!(
                        "{url}: HTTP {code}: {}",
                        text.trim()
                    )));
                }
                // ureq names the URL itself.
                Err(e) => last = e.to_string(),
            }
        }
        Err(EtcdError::Unreachable(last))
    }

    fn unary<T: for<'de> Deserialize<'de>>(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<T, EtcdError> {
        let r = self.post(&self.agent, path, body)?;
        serde_json::from_reader(r).map_err(|e| EtcdError::Protocol(format!("{path}: {e}")))
    }

    /// Every key under `prefix`, read in pages at one revision (a consistent snapshot however
    /// many keys there are).
    pub fn range_prefix(&self, prefix: &[u8]) -> Result<Snapshot, EtcdError> {
        let end = prefix_end(prefix);
        let mut from = prefix.to_vec();
        let mut revision = 0i64;
        let mut kvs = Vec::new();
        loop {
            let mut body = json!({
                "key": B64.encode(&from),
                "range_end": B64.encode(&end),
                "limit": PAGE.to_string(),
            });
            if revision != 0 {
                body["revision"] = json!(revision.to_string());
            }
            let page: RangeResponse = self.unary("/v3/kv/range", &body)?;
            if revision == 0 {
                revision = number(&page.header.revision)?;
            }
            let more = page.more;
            for kv in page.kvs {
                kvs.push(kv.into_kv()?);
            }
            match kvs.last() {
                Some(last) if more => {
                    // The next page starts just after the last key read.
                    from = last.key.clone();
                    from.push(0);
                }
                _ => return Ok(Snapshot { revision, kvs }),
            }
        }
    }

    /// Writes `key`; returns the revision it was written at.
    pub fn put(&self, key: &[u8], value: &[u8]) -> Result<i64, EtcdError> {
        #[derive(Deserialize)]
        struct PutResponse {
            #[serde(default)]
            header: Header,
        }
        let body = json!({ "key": B64.encode(key), "value": B64.encode(value) });
        let r: PutResponse = self.unary("/v3/kv/put", &body)?;
        number(&r.header.revision)
    }

    /// Writes all of `kvs`, in transactions of at most [`TXN_OPS`] puts (etcd's default
    /// `--max-txn-ops`): each transaction is one Raft entry, where a put per request would be
    /// one round trip and one fsync per key. Returns the last revision written.
    pub fn put_all<V: AsRef<[u8]>>(&self, kvs: &[(Vec<u8>, V)]) -> Result<i64, EtcdError> {
        #[derive(Deserialize)]
        struct TxnResponse {
            #[serde(default)]
            header: Header,
            #[serde(default)]
            succeeded: bool,
        }
        let mut revision = 0;
        for chunk in kvs.chunks(TXN_OPS) {
            let ops: Vec<serde_json::Value> = chunk
                .iter()
                .map(|(k, v)| json!({ "request_put": { "key": B64.encode(k), "value": B64.encode(v.as_ref()) } }))
                .collect();
            let r: TxnResponse = self.unary("/v3/kv/txn", &json!({ "success": ops }))?;
            if !r.succeeded {
                return Err(EtcdError::Refused("transaction not applied".into()));
            }
            revision = number(&r.header.revision)?;
        }
        Ok(revision)
    }

    /// Deletes `key`; whether it existed.
    pub fn delete(&self, key: &[u8]) -> Result<bool, EtcdError> {
        #[derive(Deserialize)]
        struct DeleteResponse {
            #[serde(default)]
            deleted: Option<String>,
        }
        let r: DeleteResponse =
            self.unary("/v3/kv/deleterange", &json!({ "key": B64.encode(key) }))?;
        Ok(number(&r.deleted)? > 0)
    }

    /// Opens a watch on every key under `prefix`, from `start_revision` on.
    pub fn watch(&self, prefix: &[u8], start_revision: i64) -> Result<Watch, EtcdError> {
        let body = json!({ "create_request": {
            "key": B64.encode(prefix),
            "range_end": B64.encode(prefix_end(prefix)),
            "start_revision": start_revision.to_string(),
        }});
        let stream = self.post(&self.watch_agent, "/v3/watch", &body)?;
        Ok(Watch {
            stream: serde_json::Deserializer::from_reader(stream).into_iter(),
        })
    }
}

/// An open watch: each [`Watch::recv`] is one message's events and the revision they bring
/// the store to.
pub struct Watch {
    stream: serde_json::StreamDeserializer<
        'static,
        serde_json::de::IoRead<Box<dyn Read + Send + Sync>>,
        WatchMessage,
    >,
}

impl fmt::Debug for Watch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Watch")
    }
}

impl Watch {
    /// The next batch of events (empty for the creation notice and progress messages) and the
    /// store's revision as of it. An error ends the watch: a closed or silent connection is
    /// `Unreachable`, a start revision compacted away is `Compacted`.
    pub fn recv(&mut self) -> Result<(i64, Vec<Event>), EtcdError> {
        let message = match self.stream.next() {
            None => return Err(EtcdError::Unreachable("the watch stream ended".into())),
            Some(Err(e))
                if matches!(
                    e.io_error_kind(),
                    Some(std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock)
                ) =>
            {
                return Err(EtcdError::Idle)
            }
            Some(Err(e)) if e.is_io() || e.is_eof() => {
                return Err(EtcdError::Unreachable(format!("watch: {e}")))
            }
            Some(Err(e)) => return Err(EtcdError::Protocol(format!("watch: {e}"))),
            Some(Ok(m)) => m,
        };
        if let Some(e) = message.error {
            return Err(EtcdError::Refused(format!("watch: {e}")));
        }
        let result = message
            .result
            .ok_or_else(|| EtcdError::Protocol("watch message without a result".into()))?;
        let compact = number(&result.compact_revision)?;
        if compact > 0 {
            return Err(EtcdError::Compacted {
                compact_revision: compact,
            });
        }
        if result.canceled {
            return Err(EtcdError::Refused(format!(
                "watch canceled: {}",
                result.cancel_reason.unwrap_or_default()
            )));
        }
        let revision = number(&result.header.revision)?;
        let mut events = Vec::with_capacity(result.events.len());
        for e in result.events {
            let kv = e.kv.into_kv()?;
            events.push(match e.kind.as_deref() {
                None | Some("PUT") => Event::Put(kv),
                Some("DELETE") => Event::Delete {
                    key: kv.key,
                    mod_revision: kv.mod_revision,
                },
                Some(other) => {
                    return Err(EtcdError::Protocol(format!("watch event type {other}")))
                }
            });
        }
        Ok((revision, events))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_increments_the_last_byte_and_carries() {
        assert_eq!(prefix_end(b"/wgxdp/peers/"), b"/wgxdp/peers0");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff\xff"), b"\0");
        assert_eq!(prefix_end(b""), b"\0");
    }

    #[test]
    fn urls_give_endpoints_and_a_prefix_ending_in_a_slash() {
        let (e, p) = parse_url("etcd://198.18.5.1:2379,198.18.5.2:2379/wgxdp/prod").unwrap();
        assert_eq!(e, ["http://198.18.5.1:2379", "http://198.18.5.2:2379"]);
        assert_eq!(p, "/wgxdp/prod/");
        let (e, p) = parse_url("etcd://[2001:2::1]:2379").unwrap();
        assert_eq!(e, ["http://[2001:2::1]:2379"]);
        assert_eq!(p, "/");
        for bad in [
            "198.18.5.1:2379/x",
            "etcd://host/x",
            "etcd://:2379/x",
            "etcd://h:99999/x",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }
}
