//! Randomised differential tests: the table against the reference (hash map per length), and
//! the reference against proto's linear table.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::workload::{inside, Rng};
use crate::{AllowedIps, Capacity, Error, HeapMemory, PeerId, Prefix, Reference};

/// Prefixes that overlap a lot: a few base regions, lengths over the whole range.
fn random_prefix(rng: &mut Rng) -> Prefix {
    if rng.below(2) == 0 {
        let base: u32 = match rng.below(4) {
            0 => 0x0A00_0000, // 10.0.0.0
            1 => 0xC0A8_0000, // 192.168.0.0
            2 => 0x0A01_0200, // 10.1.2.0
            _ => rng.next_u64() as u32,
        };
        let len = match rng.below(8) {
            0 => rng.below(17) as u8,
            1..=3 => 17 + rng.below(16) as u8,
            _ => 24 + rng.below(9) as u8,
        };
        let noise = (rng.next_u64() as u32) >> rng.below(32);
        Prefix::new(IpAddr::V4(Ipv4Addr::from(base ^ noise)), len).unwrap()
    } else {
        let base: u128 = match rng.below(4) {
            0 => 0x2001_0db8 << 96,
            1 => 0xfd00_0000_0000_0001 << 64,
            2 => 0x2001_0db8_0001_0002 << 64,
            _ => rng.u128(),
        };
        let len = match rng.below(8) {
            0 => rng.below(33) as u8,
            1..=2 => 33 + rng.below(32) as u8,
            3..=4 => 64 + rng.below(64) as u8,
            _ => 128,
        };
        let noise = rng.u128() >> (rng.below(128) as u32);
        Prefix::new(IpAddr::V6(Ipv6Addr::from(base ^ noise)), len).unwrap()
    }
}

/// A query: inside a stored prefix, just outside one, or anywhere.
fn random_query(rng: &mut Rng, stored: &[Prefix]) -> IpAddr {
    let pick = stored[rng.below(stored.len() as u64) as usize];
    match rng.below(8) {
        0..=3 => inside(pick, rng),
        4 => match pick.addr() {
            IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a).wrapping_sub(1))),
            IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a).wrapping_sub(1))),
        },
        5 => match pick.addr() {
            IpAddr::V4(a) => {
                let last = u32::from(a) | u32::MAX.checked_shr(u32::from(pick.len())).unwrap_or(0);
                IpAddr::V4(Ipv4Addr::from(last.wrapping_add(rng.below(2) as u32)))
            }
            IpAddr::V6(a) => {
                let last =
                    u128::from(a) | u128::MAX.checked_shr(u32::from(pick.len())).unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(last.wrapping_add(u128::from(rng.below(2)))))
            }
        },
        6 => IpAddr::V4(Ipv4Addr::from(rng.next_u64() as u32)),
        _ => IpAddr::V6(Ipv6Addr::from(rng.u128())),
    }
}

/// The model of ownership, for listings.
#[derive(Default)]
struct Model {
    owner: BTreeMap<Prefix, PeerId>,
}

impl Model {
    fn listing(&self, peer: PeerId) -> Vec<Prefix> {
        let mut v: Vec<Prefix> = self
            .owner
            .iter()
            .filter(|(_, &o)| o == peer)
            .map(|(p, _)| *p)
            .collect();
        v.sort_by_key(|p| (p.addr().is_ipv6(), p.addr(), p.len()));
        v
    }
}

#[test]
fn matches_the_reference_over_a_million_queries_with_updates_between_rounds() {
    const PEERS: u64 = 2000;
    const ROUNDS: usize = 5;
    const QUERIES: usize = 210_000;
    let mut rng = Rng::new(0x5eed_0005);
    let mut initial = Vec::new();
    for peer in 0..PEERS as u32 {
        for _ in 0..1 + rng.below(6) {
            initial.push((random_prefix(&mut rng), peer));
        }
    }
    let mut table = AllowedIps::from_prefixes(initial.iter().copied()).unwrap();
    let mut reference = Reference::new();
    let mut model = Model::default();
    for &(prefix, peer) in &initial {
        reference.insert(prefix, peer);
        model.owner.insert(prefix, peer);
    }
    let mut reader = table.reader().unwrap();
    let mut total = 0;
    for round in 0..ROUNDS {
        let stored: Vec<Prefix> = model.owner.keys().copied().collect();
        let queries: Vec<IpAddr> = (0..QUERIES)
            .map(|_| random_query(&mut rng, &stored))
            .collect();
        let v4: Vec<u32> = queries
            .iter()
            .filter_map(|q| match q {
                IpAddr::V4(a) => Some(u32::from(*a)),
                IpAddr::V6(_) => None,
            })
            .collect();
        let v6: Vec<u128> = queries
            .iter()
            .filter_map(|q| match q {
                IpAddr::V6(a) => Some(u128::from(*a)),
                IpAddr::V4(_) => None,
            })
            .collect();
        let snap = reader.pin();
        let mut out4 = vec![None; v4.len()];
        let mut out6 = vec![None; v6.len()];
        assert_eq!(snap.lookup_v4_batch(&v4, &mut out4), v4.len());
        assert_eq!(snap.lookup_v6_batch(&v6, &mut out6), v6.len());
        drop(snap);
        for (a, got) in v4.iter().zip(&out4) {
            assert_eq!(
                *got,
                reference.lookup_v4(*a),
                "round {round}: {}",
                Ipv4Addr::from(*a)
            );
        }
        for (a, got) in v6.iter().zip(&out6) {
            assert_eq!(
                *got,
                reference.lookup_v6(*a),
                "round {round}: {}",
                Ipv6Addr::from(*a)
            );
        }
        for q in queries.iter().step_by(97) {
            assert_eq!(
                table.lookup(*q),
                reference.lookup(*q),
                "writer-side lookup {q}"
            );
        }
        total += queries.len();

        // Listings against the model, then random changes.
        for peer in (0..PEERS as u32).step_by(37) {
            assert_eq!(
                table.prefixes_of(peer),
                model.listing(peer),
                "listing of {peer}"
            );
        }
        for _ in 0..3000 {
            let peer = rng.below(PEERS) as u32;
            match rng.below(10) {
                0..=3 => {
                    let prefix = random_prefix(&mut rng);
                    assert_eq!(
                        table.insert(prefix, peer).unwrap(),
                        reference.insert(prefix, peer)
                    );
                    model.owner.insert(prefix, peer);
                }
                4 => {
                    // Take over an existing prefix.
                    let prefix = stored[rng.below(stored.len() as u64) as usize];
                    assert_eq!(
                        table.insert(prefix, peer).unwrap(),
                        reference.insert(prefix, peer)
                    );
                    model.owner.insert(prefix, peer);
                }
                5..=7 => {
                    let prefix = stored[rng.below(stored.len() as u64) as usize];
                    let owner = model.owner.get(&prefix).copied().unwrap_or(peer);
                    let who = if rng.below(4) == 0 { peer } else { owner };
                    let removed = table.remove(prefix, who).unwrap();
                    assert_eq!(removed, reference.remove(prefix, who));
                    if removed {
                        model.owner.remove(&prefix).unwrap();
                    }
                }
                8 => {
                    let n = table.remove_by_peer(peer).unwrap();
                    let gone: Vec<Prefix> = model.listing(peer);
                    assert_eq!(n, gone.len());
                    for prefix in gone {
                        assert!(reference.remove(prefix, peer));
                        model.owner.remove(&prefix).unwrap();
                    }
                }
                _ => {
                    let prefix = random_prefix(&mut rng);
                    assert_eq!(table.owner(prefix), model.owner.get(&prefix).copied());
                }
            }
        }
        assert_eq!(table.len(), model.owner.len());
        // With no reader pinned every retired block was reclaimed: the live arena has exactly
        // the shape of a bulk build of the same prefixes.
        let bulk = AllowedIps::from_prefixes(model.owner.iter().map(|(p, o)| (*p, *o))).unwrap();
        let (s, b) = (table.stats(), bulk.stats());
        assert_eq!(
            (s.v4.nodes, s.v4.leaves, s.v4.singles),
            (b.v4.nodes, b.v4.leaves, b.v4.singles),
            "round {round}: IPv4 arena differs from a bulk build"
        );
        assert_eq!(
            (s.v6.nodes, s.v6.leaves, s.v6.singles),
            (b.v6.nodes, b.v6.leaves, b.v6.singles),
            "round {round}: IPv6 arena differs from a bulk build"
        );
    }
    assert!(total >= 1_000_000);
}

#[test]
fn reference_matches_proto_linear_table() {
    let mut rng = Rng::new(77);
    let mut linear = proto::allowedips::AllowedIps::default();
    let mut reference = Reference::new();
    let mut stored = BTreeSet::new();
    for round in 0..4 {
        for _ in 0..150 {
            let prefix = random_prefix(&mut rng);
            let peer = rng.below(50) as u32;
            linear.insert(prefix, peer);
            reference.insert(prefix, peer);
            stored.insert(prefix);
        }
        let list: Vec<Prefix> = stored.iter().copied().collect();
        for _ in 0..40 {
            let prefix = list[rng.below(list.len() as u64) as usize];
            let peer = rng.below(50) as u32;
            assert_eq!(linear.remove(prefix, peer), reference.remove(prefix, peer));
        }
        for _ in 0..5000 {
            let q = random_query(&mut rng, &list);
            assert_eq!(reference.lookup(q), linear.lookup(q), "round {round}: {q}");
        }
    }
}

#[test]
fn bulk_build_of_a_provider_table_matches_the_reference() {
    let v4 = crate::workload::provider_v4(3000, 1);
    let v6 = crate::workload::provider_v6(3000, 2);
    let table = AllowedIps::from_prefixes(v4.iter().chain(&v6).copied()).unwrap();
    let mut reference = Reference::new();
    for &(prefix, peer) in v4.iter().chain(&v6) {
        reference.insert(prefix, peer);
    }
    let mut rng = Rng::new(3);
    let all: Vec<Prefix> = v4.iter().chain(&v6).map(|e| e.0).collect();
    for _ in 0..100_000 {
        let q = random_query(&mut rng, &all);
        assert_eq!(table.lookup(q), reference.lookup(q), "{q}");
    }
}

#[test]
fn a_full_section_is_rebuilt_into_the_other_and_a_change_beyond_capacity_changes_nothing() {
    // Random updates fill the active section; each time the writer builds the family
    // compactly into the other section and switches. Once even a compact build does not fit,
    // the insert is refused and the table (the writer's view and a reader's) stays as it was.
    let capacity = 3000;
    let mut table = AllowedIps::with_capacity(Capacity::new(capacity));
    let mut reader = table.reader().unwrap();
    let mut reference = Reference::new();
    let mut rng = Rng::new(11);
    let mut stored = Vec::new();
    let mut refused = 0;
    for i in 0..40_000u32 {
        let prefix = random_prefix(&mut rng);
        let before = table.owner(prefix);
        match table.insert(prefix, i % 3000) {
            Ok(old) => {
                assert_eq!(old, reference.insert(prefix, i % 3000));
                stored.push(prefix);
            }
            Err(Error::Full(_)) => {
                // Each refusal costs a full build: a few make the point.
                refused += 1;
                if refused == 20 {
                    break;
                }
                assert_eq!(table.owner(prefix), before, "refused: unchanged");
                let q = prefix.addr();
                assert_eq!(table.lookup(q), reference.lookup(q), "{q}");
            }
            Err(e) => panic!("{e}"),
        }
        if i % 4000 == 0 {
            for _ in 0..2000 {
                let q = random_query(&mut rng, &stored);
                assert_eq!(reader.lookup(q), reference.lookup(q), "{q}");
            }
        }
    }
    assert!(refused > 0, "40k random prefixes overflow room for 3000");
    let held = table.stats();
    assert!(
        held.v4_prefixes >= capacity && held.v6_prefixes >= capacity,
        "at least the capacity fits: {held:?}"
    );
    for _ in 0..50_000 {
        let q = random_query(&mut rng, &stored);
        assert_eq!(reader.lookup(q), reference.lookup(q), "{q}");
        assert_eq!(table.lookup(q), reference.lookup(q), "{q}");
    }
}

#[test]
fn a_switch_waits_for_a_reader_still_on_the_other_section() {
    let mut table = AllowedIps::new();
    let mut reader = table.reader().unwrap();
    let a = Prefix::new("198.18.0.0".parse().unwrap(), 24).unwrap();
    table.insert(a, 1).unwrap();
    let early = reader.pin();
    // The first switch moves readers off the section `early` does not use...
    table.compact().unwrap();
    table.insert(a, 2).unwrap();
    assert_eq!(
        early.lookup("198.18.0.9".parse().unwrap()),
        Some(1),
        "the old section"
    );
    // ...the second would rebuild the one `early` still reads: refused while it is pinned.
    assert_eq!(table.compact(), Err(Error::Busy));
    assert_eq!(
        early.lookup("198.18.0.9".parse().unwrap()),
        Some(1),
        "still intact"
    );
    drop(early);
    table.compact().unwrap();
    assert_eq!(reader.lookup("198.18.0.9".parse().unwrap()), Some(2));
}

/// Shapes that cost the most room per prefix: pairs of host routes that differ only in their
/// last bit, each pair under its own directory slot (a chain of nodes down to the end of the
/// address), and lone host routes high up (IPv6 long singletons).
fn worst_case(family_v6: bool, n: usize) -> Vec<(Prefix, PeerId)> {
    (0..n)
        .map(|i| {
            let slot = (i / 2) as u128;
            let last = (i % 2) as u128;
            let peer = i as PeerId;
            if family_v6 {
                let spread = slot.wrapping_mul(0x9E37_79B9_7F4A_7C15) & ((1 << 20) - 1);
                let addr = spread << 108 | (slot << 20) | last;
                let len = if i % 7 == 6 { 64 } else { 128 };
                let addr = addr & !((1u128 << (128 - len)) - 1);
                (
                    Prefix::new(IpAddr::V6(Ipv6Addr::from(addr)), len).unwrap(),
                    peer,
                )
            } else {
                let spread = (slot as u32).wrapping_mul(0x9E37_79B9) & 0xFFFF_F000;
                let addr = spread | (slot as u32 & 0x7FF) << 1 | last as u32;
                (
                    Prefix::new(IpAddr::V4(Ipv4Addr::from(addr)), 32).unwrap(),
                    peer,
                )
            }
        })
        .collect()
}

#[test]
fn the_capacity_holds_its_prefixes_whatever_their_shape() {
    for v6 in [false, true] {
        for n in [100, 5000] {
            let set = worst_case(v6, n);
            let distinct: BTreeSet<Prefix> = set.iter().map(|(p, _)| *p).collect();
            // In one bulk build...
            let memory = std::sync::Arc::new(HeapMemory::new(Capacity::new(n)));
            let bulk = AllowedIps::attach(memory, set.iter().copied()).unwrap();
            assert_eq!(bulk.len(), distinct.len());
            // ...and one insert at a time.
            let mut t = AllowedIps::with_capacity(Capacity::new(n));
            for &(p, peer) in &set {
                t.insert(p, peer)
                    .unwrap_or_else(|e| panic!("v6 {v6}, {n} prefixes, at {p}: {e}"));
            }
            for &(p, _) in &set {
                assert_eq!(t.lookup(p.addr()), bulk.lookup(p.addr()));
            }
        }
    }
}
