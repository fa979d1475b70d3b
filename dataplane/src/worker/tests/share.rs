//! One tunnel across cores: a worker hands part of each round's crypto to another worker
//! (running on its own thread, as in the data path) and still sends every packet in the order
//! it came, both ways; the other worker really did part of the work.

use super::*;
use crate::worker::{Exchange, Share};

const ROUNDS: u64 = 40;
const PER_ROUND: u64 = 64;

fn stats(gw: &Gateway, w: usize) -> (u64, u64, u64) {
    let s = gw.region.worker_stats(w).unwrap();
    (
        s.crypto_handed.load(Ordering::Relaxed),
        s.crypto_helped.load(Ordering::Relaxed),
        s.crypto_reclaimed.load(Ordering::Relaxed),
    )
}

/// An owner (worker 0, patient: it waits for the helper to claim every part, so that the
/// helper does them all however the threads are scheduled) and its helper (worker 1), both
/// sharing every round. Built here (the gateway's table hands out readers); the helper is
/// run on a thread of its own.
fn pair<'a>(
    gw: &Gateway,
    exchange: &Arc<Exchange<'a>>,
    owner_arena: &'a mut [u8],
    helper_arena: &'a mut [u8],
) -> (Worker<'a, FakeLink<'a>>, Worker<'a, FakeLink<'a>>) {
    let owner = gw
        .worker(0, FakeLink::new(owner_arena, FRAME, true), neighbours())
        .with_share(Share::new(exchange.clone(), 0).min_bytes(0).patient());
    let helper = gw
        .worker(1, FakeLink::new(helper_arena, FRAME, true), neighbours())
        .with_share(Share::new(exchange.clone(), 1).min_bytes(0));
    (owner, helper)
}

#[test]
fn a_shared_tunnel_leaves_in_order_both_ways() {
    let gw = Gateway::new("share", true);
    let exchange = Exchange::new(2).unwrap();
    let mut owner_arena = vec![0u8; 256 * FRAME];
    let mut helper_arena = vec![0u8; 8 * FRAME];
    let stop = AtomicBool::new(false);
    let (mut owner, mut helper) = pair(&gw, &exchange, &mut owner_arena, &mut helper_arena);
    let (mut to_lan, mut to_peer) = (Vec::new(), Vec::new());
    std::thread::scope(|s| {
        s.spawn(|| helper.run(&stop));
        wait_idle(&exchange, 1);
        for round in 0..ROUNDS {
            let link = owner.link_mut();
            for i in 0..PER_ROUND {
                let tag = round * PER_ROUND + i;
                let msg = from_peer(
                    &inner(PEER_TUNNEL, LAN_HOST, tag),
                    &KEY_TO_US,
                    tag,
                    endpoint(),
                );
                assert!(link.inject(Side::Wan, &msg));
                assert!(link.inject(Side::Lan, &from_lan(&inner(LAN_HOST, PEER_TUNNEL, tag))));
            }
            assert_eq!(owner.poll_once(T0 + round), 2 * PER_ROUND as usize);
            let link = owner.link_mut();
            to_lan.extend(link.take_sent(Side::Lan).iter().map(|f| lan_tag(f)));
            to_peer.extend(
                link.take_sent(Side::Wan)
                    .iter()
                    .map(|f| open_to_peer(f, &KEY_TO_PEER).expect("sealed for the peer")),
            );
        }
        stop.store(true, Ordering::Relaxed);
    });
    let n = ROUNDS * PER_ROUND;
    assert_eq!(
        first_out_of_place(&to_lan, n),
        None,
        "opened and sent on in arrival order"
    );
    let tags: Vec<u64> = to_peer.iter().map(|&(_, t)| t).collect();
    assert_eq!(
        first_out_of_place(&tags, n),
        None,
        "sealed and sent in arrival order"
    );
    let counters: Vec<u64> = to_peer.iter().map(|&(c, _)| c).collect();
    assert_eq!(
        first_out_of_place(&counters, n),
        None,
        "counters in sending order"
    );
    let (handed, _, reclaimed) = stats(&gw, 0);
    let (_, helped, _) = stats(&gw, 1);
    assert!(handed > 0, "the owner handed parts out");
    // Patient, the owner waits for the helper to claim each part: it did them all.
    assert_eq!(
        (helped, reclaimed),
        (handed, 0),
        "the helper did every part"
    );
    assert_eq!(owner.link_mut().outstanding(), 0);
    assert_eq!(owner.link_mut().duplicates(), 0);
    assert_eq!(gw.drops(0, DropReason::DataAuth), 0);
}

/// A forged message in a part a helper opens is refused like one the owner opens, and
/// only it.
#[test]
fn a_forgery_in_a_helpers_part_is_dropped_alone() {
    let gw = Gateway::new("share-forged", true);
    let exchange = Exchange::new(2).unwrap();
    let mut owner_arena = vec![0u8; 128 * FRAME];
    let mut helper_arena = vec![0u8; 8 * FRAME];
    let stop = AtomicBool::new(false);
    let (mut owner, mut helper) = pair(&gw, &exchange, &mut owner_arena, &mut helper_arena);
    let mut sent = Vec::new();
    std::thread::scope(|s| {
        s.spawn(|| helper.run(&stop));
        wait_idle(&exchange, 1);
        let link = owner.link_mut();
        for tag in 0..PER_ROUND {
            let mut msg = from_peer(
                &inner(PEER_TUNNEL, LAN_HOST, tag),
                &KEY_TO_US,
                tag,
                endpoint(),
            );
            if tag == PER_ROUND - 1 {
                // The last one lies in the helper's part (the owner keeps the head).
                let n = msg.len();
                msg[n - 1] ^= 1;
            }
            assert!(link.inject(Side::Wan, &msg));
        }
        owner.poll_once(T0);
        sent.extend(
            owner
                .link_mut()
                .take_sent(Side::Lan)
                .iter()
                .map(|f| lan_tag(f)),
        );
        stop.store(true, Ordering::Relaxed);
    });
    assert_eq!(first_out_of_place(&sent, PER_ROUND - 1), None);
    assert_eq!(gw.drops(0, DropReason::DataAuth), 1);
    assert_eq!(stats(&gw, 0).0, PER_ROUND - share_head());
    assert_eq!(
        stats(&gw, 1).1,
        PER_ROUND - share_head(),
        "the helper opened its part"
    );
    assert_eq!(owner.link_mut().outstanding(), 0);
}

/// Waits until worker `i` runs and has time for others' parts.
fn wait_idle(exchange: &Exchange<'_>, i: usize) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !exchange.is_idle(i) {
        assert!(std::time::Instant::now() < deadline, "worker {i} never ran");
        std::thread::yield_now();
    }
}

fn share_head() -> u64 {
    crate::worker::share::split(PER_ROUND as usize, 1, crate::worker::share::OWNER_WEIGHT).0 as u64
}

/// Where `got` first differs from 0, 1, ..., n-1 (position, what was there), or its length
/// if it is short or long; `None` if it is exactly that.
fn first_out_of_place(got: &[u64], n: u64) -> Option<(usize, Option<u64>)> {
    let want = 0..n;
    got.iter()
        .copied()
        .map(Some)
        .chain(std::iter::repeat(None))
        .zip(want.map(Some).chain(std::iter::once(None)))
        .enumerate()
        .find(|(_, (g, w))| g != w)
        .map(|(i, (g, _))| (i, g))
}

/// A worker busy with its own queue (here: one that never says it is idle) is handed
/// nothing; the owner does the whole round itself.
#[test]
fn busy_workers_are_not_handed_parts() {
    let gw = Gateway::new("share-busy", true);
    let exchange = Exchange::new(2).unwrap();
    let mut arena = vec![0u8; 128 * FRAME];
    let mut owner = gw
        .worker(0, FakeLink::new(&mut arena, FRAME, true), neighbours())
        .with_share(Share::new(exchange.clone(), 0).min_bytes(0));
    let link = owner.link_mut();
    for tag in 0..PER_ROUND {
        assert!(link.inject(Side::Lan, &from_lan(&inner(LAN_HOST, PEER_TUNNEL, tag))));
    }
    owner.poll_once(T0);
    let tags: Vec<u64> = owner
        .link_mut()
        .take_sent(Side::Wan)
        .iter()
        .map(|f| open_to_peer(f, &KEY_TO_PEER).unwrap().1)
        .collect();
    assert_eq!(first_out_of_place(&tags, PER_ROUND), None);
    assert_eq!(
        stats(&gw, 0),
        (0, 0, 0),
        "nothing handed, nothing taken back"
    );
}

/// A helper that stops while it holds a part (a panic) does not leave its owner waiting:
/// the owner takes the frames back and drops them, counted.
#[test]
fn a_part_held_by_a_stopped_helper_is_taken_back() {
    let gw = Gateway::new("share-dead", true);
    let exchange = Exchange::new(2).unwrap();
    let mut arena = vec![0u8; 128 * FRAME];
    let mut owner = gw
        .worker(0, FakeLink::new(&mut arena, FRAME, true), neighbours())
        .with_share(Share::new(exchange.clone(), 0).min_bytes(0).patient());
    // Worker 1 says it is idle, claims the part offered to it and stops before finishing.
    exchange.set_idle(1, true);
    let link = owner.link_mut();
    for tag in 0..PER_ROUND {
        assert!(link.inject(Side::Lan, &from_lan(&inner(LAN_HOST, PEER_TUNNEL, tag))));
    }
    std::thread::scope(|s| {
        s.spawn(|| {
            exchange.claim_and_stop(1);
        });
        owner.poll_once(T0);
    });
    let tags: Vec<u64> = owner
        .link_mut()
        .take_sent(Side::Wan)
        .iter()
        .map(|f| open_to_peer(f, &KEY_TO_PEER).unwrap().1)
        .collect();
    let head = share_head();
    assert_eq!(
        first_out_of_place(&tags, head),
        None,
        "the owner's head went out"
    );
    assert_eq!(gw.drops(0, DropReason::HelperLost), PER_ROUND - head);
    assert_eq!(
        owner.link_mut().outstanding(),
        0,
        "every frame back in the pool"
    );
}
