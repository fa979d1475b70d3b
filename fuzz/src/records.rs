//! The codecs of the region's words (`contract`): the worker events on the rings and the
//! session, peer, summary and allowed-IPs records. Whatever words a slot holds (a newer
//! writer's, or garbage), decoding never panics and what it decodes encodes back to words
//! that decode to the same value.

use contract::layout::{decode_prefix, encode_prefix, SessionSummary, PEER_WORDS, SESSION_WORDS};
use contract::{PeerRecord, SessionRecord, WorkerEvent};

fn words<const N: usize>(data: &[u8]) -> [u64; N] {
    std::array::from_fn(|i| {
        let mut b = [0u8; 8];
        if let Some(chunk) = data.get(i * 8..) {
            let n = chunk.len().min(8);
            b[..n].copy_from_slice(&chunk[..n]);
        }
        u64::from_le_bytes(b)
    })
}

pub fn run(data: &[u8]) {
    if let Some(e) = WorkerEvent::decode(&words(data)) {
        assert_eq!(WorkerEvent::decode(&e.encode()), Some(e));
    }

    let w: [u64; SESSION_WORDS] = words(data);
    let s = SessionRecord::decode(&w);
    let encoded = s.encode();
    assert_eq!(SessionRecord::decode(&encoded), s);
    assert_eq!(
        encoded[..SESSION_WORDS - 1],
        w[..SESSION_WORDS - 1],
        "every word but the spare one is kept"
    );
    let summary = SessionSummary::of(&s);
    assert_eq!(SessionSummary::decode(&summary.encode()), summary);
    assert_eq!(summary.is_valid(), s.is_valid());

    let p = PeerRecord::decode(&words::<PEER_WORDS>(data));
    assert_eq!(PeerRecord::decode(&p.encode()), p);

    let summary = SessionSummary::decode(&words(data));
    assert_eq!(SessionSummary::decode(&summary.encode()), summary);

    if let Some((addr, len, peer)) = decode_prefix(&words(data)) {
        assert_eq!(
            decode_prefix(&encode_prefix(addr, len, peer)),
            Some((addr, len, peer))
        );
    }
}
