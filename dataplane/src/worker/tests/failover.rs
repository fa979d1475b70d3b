//! Data for a receiver index no session holds: dropped as such, and its source reported to
//! control, which may start a handshake with the peer whose endpoint it is (a peer whose
//! gateway in a cluster died), at most once a second per source.

use super::*;

#[test]
fn data_for_an_unknown_index_reports_its_source_once_a_second() {
    let gw = Gateway::new("unknown-index", false);
    let mut arena = vec![0u8; 64 * FRAME];
    let mut w = gw.worker(0, FakeLink::new(&mut arena, FRAME, true), neighbours());
    let reported = [WorkerEvent::UnknownIndex { from: endpoint() }];
    for (counter, at, events) in [
        (0, T0, &reported[..]),
        (1, T0 + 1_000, &[][..]),
        (2, T0 + 999_999_999, &[][..]),
        (3, T0 + 1_000_000_000, &reported[..]),
    ] {
        let msg = from_peer(
            &inner(PEER_TUNNEL, LAN_HOST, counter),
            &KEY_TO_US,
            counter,
            endpoint(),
        );
        assert!(w.link_mut().inject(Side::Wan, &msg));
        w.poll_once(at);
        assert_eq!(gw.events(0), events, "at {at}");
    }
    assert_eq!(gw.drops(0, DropReason::UnknownIndex), 4);
    let link = w.link_mut();
    assert!(link.sent.is_empty() && link.to_kernel.is_empty());
    assert_eq!((link.outstanding(), link.duplicates()), (0, 0));
}
