//! Fixed cases for the kernel's semantics, checked through the writer and through a reader.

use super::{ip, p};
use crate::{AllowedIps, Error, Reference, MAX_PEER_ID, MAX_READERS};

/// Asserts `ip -> want` through the writer, a reader and the reference built from `inserts`.
fn check(t: &AllowedIps, cases: &[(&str, Option<u32>)]) {
    let mut r = t.reader().unwrap();
    for &(addr, want) in cases {
        assert_eq!(t.lookup(ip(addr)), want, "writer lookup {addr}");
        assert_eq!(r.lookup(ip(addr)), want, "reader lookup {addr}");
    }
}

#[test]
fn host_bits_are_normalised() {
    let mut t = AllowedIps::new();
    t.insert(p("192.95.5.65/27"), 1).unwrap();
    t.insert(p("2001:db8::1:2/64"), 1).unwrap();
    let listed: Vec<String> = t.prefixes_of(1).iter().map(|p| p.to_string()).collect();
    assert_eq!(listed, ["192.95.5.64/27", "2001:db8::/64"]);
    check(
        &t,
        &[
            ("192.95.5.64", Some(1)),
            ("192.95.5.95", Some(1)),
            ("192.95.5.96", None),
            ("192.95.5.63", None),
            ("2001:db8::ffff", Some(1)),
            ("2001:db8:0:1::", None),
        ],
    );
    // Same prefix after normalisation: one entry.
    t.insert(p("192.95.5.66/27"), 1).unwrap();
    assert_eq!(t.len(), 2);
}

#[test]
fn overlapping_prefixes_longest_wins_at_every_depth() {
    let mut t = AllowedIps::new();
    let routes = [
        ("0.0.0.0/0", 1),
        ("10.0.0.0/8", 2),
        ("10.1.0.0/16", 3),
        ("10.1.0.0/17", 4),
        ("10.1.2.0/23", 5),
        ("10.1.2.0/24", 6),
        ("10.1.2.128/25", 7),
        ("10.1.2.192/27", 8),
        ("10.1.2.200/29", 9),
        ("10.1.2.202/31", 10),
        ("10.1.2.203/32", 11),
    ];
    for (s, peer) in routes {
        t.insert(p(s), peer).unwrap();
    }
    let cases = [
        ("8.8.8.8", Some(1)),
        ("10.200.0.1", Some(2)),
        ("10.1.200.1", Some(3)),
        ("10.1.100.1", Some(4)),
        ("10.1.3.1", Some(5)),
        ("10.1.2.1", Some(6)),
        ("10.1.2.130", Some(7)),
        ("10.1.2.193", Some(8)),
        ("10.1.2.201", Some(9)),
        ("10.1.2.202", Some(10)),
        ("10.1.2.203", Some(11)),
        ("10.1.2.204", Some(9)),
        ("10.1.2.208", Some(8)),
    ];
    check(&t, &cases);
    // Removing from the middle falls back to the next shorter prefix.
    assert!(t.remove(p("10.1.2.0/24"), 6).unwrap());
    assert!(t.remove(p("10.1.0.0/16"), 3).unwrap());
    check(
        &t,
        &[
            ("10.1.2.1", Some(5)),
            ("10.1.200.1", Some(2)),
            ("10.1.100.1", Some(4)),
            ("10.1.2.203", Some(11)),
        ],
    );
    // Bulk build of the same set answers the same.
    let bulk = AllowedIps::from_prefixes(
        routes
            .iter()
            .filter(|(s, _)| !["10.1.2.0/24", "10.1.0.0/16"].contains(s))
            .map(|&(s, peer)| (p(s), peer)),
    )
    .unwrap();
    assert_eq!(bulk.stats().v4.live(), t.stats().v4.live());
}

#[test]
fn ipv6_overlaps_and_families_stay_apart() {
    let mut t = AllowedIps::new();
    for (s, peer) in [
        ("::/0", 1),
        ("2001:db8::/32", 2),
        ("2001:db8:1::/48", 3),
        ("2001:db8:1:2::/64", 4),
        ("2001:db8:1:2::1/128", 5),
        ("2001:db8:1:2:8000::/65", 6),
        ("2001:db8:1:2::ff00/120", 7),
        ("::ffff:10.0.0.0/104", 8),
    ] {
        t.insert(p(s), peer).unwrap();
    }
    check(
        &t,
        &[
            ("fe80::1", Some(1)),
            ("2001:db8:ffff::1", Some(2)),
            ("2001:db8:1:ffff::1", Some(3)),
            ("2001:db8:1:2::2", Some(4)),
            ("2001:db8:1:2::1", Some(5)),
            ("2001:db8:1:2:8000::1", Some(6)),
            ("2001:db8:1:2::ff01", Some(7)),
            ("::ffff:10.1.1.1", Some(8)),
            // An IPv4 address never matches IPv6 prefixes (::/0 is not 0.0.0.0/0).
            ("10.1.1.1", None),
        ],
    );
    t.insert(p("0.0.0.0/0"), 9).unwrap();
    assert!(t.remove(p("::/0"), 1).unwrap());
    check(&t, &[("10.1.1.1", Some(9)), ("fe80::1", None)]);
}

#[test]
fn slash_zero_alone_and_with_host_routes() {
    let mut t = AllowedIps::new();
    t.insert(p("0.0.0.0/0"), 7).unwrap();
    t.insert(p("::/0"), 8).unwrap();
    check(
        &t,
        &[
            ("0.0.0.0", Some(7)),
            ("255.255.255.255", Some(7)),
            ("::", Some(8)),
            ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Some(8)),
        ],
    );
    t.insert(p("255.255.255.255/32"), 1).unwrap();
    t.insert(p("0.0.0.0/32"), 2).unwrap();
    t.insert(p("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128"), 3)
        .unwrap();
    check(
        &t,
        &[
            ("255.255.255.255", Some(1)),
            ("255.255.255.254", Some(7)),
            ("0.0.0.0", Some(2)),
            ("0.0.0.1", Some(7)),
            ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Some(3)),
            ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe", Some(8)),
        ],
    );
    assert_eq!(t.remove_by_peer(7).unwrap(), 1);
    check(&t, &[("1.2.3.4", None), ("255.255.255.255", Some(1))]);
}

#[test]
fn takeover_moves_a_prefix_between_peers() {
    let mut t = AllowedIps::new();
    assert_eq!(t.insert(p("10.0.0.0/24"), 1), Ok(None));
    assert_eq!(
        t.insert(p("10.0.0.7/24"), 2),
        Ok(Some(1)),
        "same prefix: moves to 2"
    );
    assert_eq!(t.insert(p("10.0.0.0/24"), 2), Ok(Some(2)), "idempotent");
    assert_eq!(t.len(), 1);
    assert!(t.prefixes_of(1).is_empty());
    assert_eq!(t.prefixes_of(2), [p("10.0.0.0/24")]);
    check(&t, &[("10.0.0.9", Some(2))]);
    assert!(
        !t.remove(p("10.0.0.0/24"), 1).unwrap(),
        "peer 1 no longer owns it"
    );
    check(&t, &[("10.0.0.9", Some(2))]);
    assert!(t.remove(p("10.0.0.0/24"), 2).unwrap());
    assert!(!t.remove(p("10.0.0.0/24"), 2).unwrap());
    assert!(t.is_empty());
    check(&t, &[("10.0.0.9", None)]);
}

#[test]
fn remove_by_peer_leaves_other_peers() {
    let mut t = AllowedIps::new();
    for (s, peer) in [
        ("10.0.0.0/8", 1),
        ("10.1.0.0/16", 2),
        ("10.1.1.0/24", 1),
        ("10.1.1.1/32", 2),
        ("2001:db8::/32", 1),
        ("2001:db8::1/128", 2),
    ] {
        t.insert(p(s), peer).unwrap();
    }
    assert_eq!(t.remove_by_peer(1).unwrap(), 3);
    assert_eq!(t.remove_by_peer(1).unwrap(), 0);
    check(
        &t,
        &[
            ("10.2.0.0", None),
            ("10.1.1.2", Some(2)),
            ("10.1.1.1", Some(2)),
            ("2001:db8::2", None),
            ("2001:db8::1", Some(2)),
        ],
    );
    assert_eq!(t.remove_by_peer(2).unwrap(), 3);
    assert!(t.is_empty());
    let empty = AllowedIps::new();
    assert_eq!(
        t.stats().v4.live(),
        empty.stats().v4.live(),
        "everything reclaimed"
    );
    assert_eq!(
        t.stats().v6.live(),
        empty.stats().v6.live(),
        "everything reclaimed"
    );
}

#[test]
fn listing_is_canonical() {
    let mut t = AllowedIps::new();
    for s in [
        "fd00::/8",
        "10.0.0.2/32",
        "::/0",
        "10.0.0.0/24",
        "192.168.0.1/32",
        "10.0.0.0/8",
        "0.0.0.0/0",
    ] {
        t.insert(p(s), 1).unwrap();
    }
    t.insert(p("172.16.0.0/12"), 2).unwrap();
    let list: Vec<String> = t.prefixes_of(1).iter().map(|p| p.to_string()).collect();
    assert_eq!(
        list,
        [
            "0.0.0.0/0",
            "10.0.0.0/8",
            "10.0.0.0/24",
            "10.0.0.2/32",
            "192.168.0.1/32",
            "::/0",
            "fd00::/8",
        ]
    );
    // The same order as the linear reference in proto.
    let mut linear = proto::allowedips::AllowedIps::default();
    for q in t.prefixes_of(1).iter().rev() {
        linear.insert(*q, 1);
    }
    assert_eq!(linear.prefixes_of(1), t.prefixes_of(1));
}

#[test]
fn limits_are_errors_not_panics() {
    let mut t = AllowedIps::new();
    assert_eq!(
        t.insert(p("10.0.0.0/8"), MAX_PEER_ID + 1),
        Err(Error::PeerId(MAX_PEER_ID + 1))
    );
    assert_eq!(t.insert(p("10.0.0.0/8"), MAX_PEER_ID), Ok(None));
    check(&t, &[("10.9.9.9", Some(MAX_PEER_ID))]);
    let readers: Vec<_> = (0..MAX_READERS).map(|_| t.reader().unwrap()).collect();
    assert_eq!(t.reader().unwrap_err(), Error::TooManyReaders);
    drop(readers);
    assert!(t.reader().is_ok());
}

#[test]
fn singletons_split_and_collapse() {
    // Two host routes diverging deep below a shared path, then one removed: the region goes
    // node -> singleton -> leaf, and the shape equals a bulk build at each step.
    let mut t = AllowedIps::new();
    let a = p("fd00::1:2:3:4/128");
    let b = p("fd00::1:2:3:5/128");
    let c = p("fd00::1:0:0:0/80");
    t.insert(a, 1).unwrap();
    t.insert(b, 2).unwrap();
    t.insert(c, 3).unwrap();
    let cases = [
        ("fd00::1:2:3:4", Some(1)),
        ("fd00::1:2:3:5", Some(2)),
        ("fd00::1:2:3:6", Some(3)),
        ("fd00::2:0:0:0", None),
    ];
    check(&t, &cases);
    let same = |t: &AllowedIps, set: &[(crate::Prefix, u32)]| {
        let bulk = AllowedIps::from_prefixes(set.iter().copied()).unwrap();
        assert_eq!(bulk.stats().v6.live(), t.stats().v6.live());
    };
    same(&t, &[(a, 1), (b, 2), (c, 3)]);
    assert!(t.remove(b, 2).unwrap());
    check(
        &t,
        &[("fd00::1:2:3:4", Some(1)), ("fd00::1:2:3:5", Some(3))],
    );
    same(&t, &[(a, 1), (c, 3)]);
    assert!(t.remove(a, 1).unwrap());
    same(&t, &[(c, 3)]);
    check(&t, &[("fd00::1:2:3:4", Some(3)), ("fd00::2:2:3:4", None)]);
}

#[test]
fn reference_agrees_on_the_fixed_cases() {
    let mut r = Reference::new();
    r.insert(p("10.0.0.0/8"), 1);
    r.insert(p("10.1.0.0/16"), 2);
    r.insert(p("::/0"), 3);
    assert_eq!(r.lookup(ip("10.1.2.3")), Some(2));
    assert_eq!(r.lookup(ip("10.2.2.3")), Some(1));
    assert_eq!(r.lookup(ip("11.2.2.3")), None);
    assert_eq!(r.lookup(ip("::1")), Some(3));
    assert!(!r.remove(p("10.1.0.0/16"), 1));
    assert!(r.remove(p("10.1.0.0/16"), 2));
    assert_eq!(r.lookup(ip("10.1.2.3")), Some(1));
}

#[test]
fn path_compressed_chains_match_and_miss() {
    // Host routes in one /64 with nothing ending above them: the levels between the directory
    // slot and the point where they diverge fold into path-compressed nodes. A lookup that
    // diverges inside the folded bits falls back to what covers it; a prefix ending inside
    // them unfolds the chain, and removing it folds it again, as a bulk build would.
    let mut t = AllowedIps::new();
    let hosts: Vec<_> = (0..4u32)
        .map(|i| p(&format!("fd00:0:0:1::{:x}/128", 0x100 + i * 0x40)))
        .collect();
    for (i, &h) in hosts.iter().enumerate() {
        t.insert(h, i as u32).unwrap();
    }
    t.insert(p("fd00::/16"), 100).unwrap();
    let mut cases = vec![
        ("fd00:0:0:1::140", Some(1)),
        ("fd00:0:0:1::141", Some(100)),
        ("fd00:0:0:2::140", Some(100)),
        ("fd00:1:0:1::140", Some(100)),
        ("fd01::1", None),
    ];
    let batch = |t: &AllowedIps, cases: &[(&str, Option<u32>)]| {
        check(t, cases);
        let addrs: Vec<u128> = cases
            .iter()
            .map(|(a, _)| match ip(a) {
                std::net::IpAddr::V6(a) => u128::from(a),
                std::net::IpAddr::V4(_) => unreachable!(),
            })
            .collect();
        let mut r = t.reader().unwrap();
        let mut out = vec![None; addrs.len()];
        r.pin().lookup_v6_batch(&addrs, &mut out);
        let want: Vec<_> = cases.iter().map(|c| c.1).collect();
        assert_eq!(out, want, "batch lookups");
    };
    let same = |t: &AllowedIps, extra: &[(crate::Prefix, u32)]| {
        let mut set: Vec<_> = hosts
            .iter()
            .enumerate()
            .map(|(i, &h)| (h, i as u32))
            .collect();
        set.push((p("fd00::/16"), 100));
        set.extend_from_slice(extra);
        let bulk = AllowedIps::from_prefixes(set).unwrap();
        assert_eq!(bulk.stats().v6.live(), t.stats().v6.live());
    };
    batch(&t, &cases);
    same(&t, &[]);
    // Without folding there would be a node for each of the 17 strides from bit 18 to 120.
    assert!(t.stats().v6.nodes <= 6, "{:?}", t.stats().v6);
    t.insert(p("fd00:0:0:2::/64"), 200).unwrap();
    cases[2].1 = Some(200);
    batch(&t, &cases);
    same(&t, &[(p("fd00:0:0:2::/64"), 200)]);
    assert!(t.remove(p("fd00:0:0:2::/64"), 200).unwrap());
    cases[2].1 = Some(100);
    batch(&t, &cases);
    same(&t, &[]);
}

#[test]
fn singleton_forms_compare_every_prefix_bit() {
    // Alone in its directory slot, an IPv6 prefix up to 57 bits past the directory keeps the
    // short (16-byte) form, a longer one the long form; IPv4 singletons have one form. Flipping
    // any bit inside the prefix must miss, any bit after it must still match.
    let key: u128 = 0x2001_0db8_5a5a_a5a5_0f0f_f0f0_3c3c_c3c3;
    for len in [21u8, 64, 77, 78, 100, 127, 128] {
        let prefix = crate::Prefix::new(std::net::Ipv6Addr::from(key).into(), len).unwrap();
        let t = AllowedIps::from_prefixes([(prefix, 7)]).unwrap();
        let mut r = t.reader().unwrap();
        let snap = r.pin();
        let base = u128::from(match prefix.addr() {
            std::net::IpAddr::V6(a) => a,
            std::net::IpAddr::V4(_) => unreachable!(),
        });
        let addrs: Vec<u128> = (0..128).map(|bit| base ^ (1u128 << (127 - bit))).collect();
        let mut out = vec![None; addrs.len()];
        snap.lookup_v6_batch(&addrs, &mut out);
        for (bit, (&a, &got)) in addrs.iter().zip(&out).enumerate() {
            let want = (bit >= usize::from(len)).then_some(7);
            assert_eq!(got, want, "/{len}, bit {bit} flipped (batch)");
            assert_eq!(snap.lookup_v6(a), want, "/{len}, bit {bit} flipped");
        }
    }
    for len in [21u8, 26, 27, 32] {
        let prefix = crate::Prefix::new(std::net::Ipv4Addr::from(0xC0A8_5A5Au32).into(), len);
        let t = AllowedIps::from_prefixes([(prefix.unwrap(), 7)]).unwrap();
        let mut r = t.reader().unwrap();
        let snap = r.pin();
        let base = 0xC0A8_5A5Au32 & (u32::MAX << (32 - len));
        let addrs: Vec<u32> = (0..32).map(|bit| base ^ (1u32 << (31 - bit))).collect();
        let mut out = vec![None; addrs.len()];
        snap.lookup_v4_batch(&addrs, &mut out);
        for (bit, &got) in out.iter().enumerate() {
            assert_eq!(
                got,
                (bit >= usize::from(len)).then_some(7),
                "/{len}, bit {bit}"
            );
        }
    }
}

#[test]
fn in_use_is_the_active_section_up_to_its_high_water_marks() {
    let mut prefixes = crate::workload::provider_v4(300, 5);
    prefixes.extend(crate::workload::provider_v6(300, 6));
    let memory = std::sync::Arc::new(crate::HeapMemory::new(crate::Capacity::new(10_000)));
    let mut t = AllowedIps::attach(memory.clone(), prefixes.iter().copied()).unwrap();
    let check = |t: &AllowedIps, exact: bool| {
        // The sections the readers walk: each family's `active` word picks one.
        let shared = crate::Memory::table(&*memory);
        let walked = [shared.v4, shared.v6];
        let s = t.stats();
        for (f, (a, st)) in t.in_use().iter().zip([s.v4, s.v6]).enumerate() {
            let w = walked[f][shared.header.active(f)];
            assert_eq!(a.dir.as_ptr(), w.dir.as_ptr());
            assert_eq!(a.nodes.as_ptr(), w.nodes.as_ptr());
            assert_eq!(a.leaves.as_ptr(), w.leaves.as_ptr());
            assert_eq!(a.singles.as_ptr(), w.singles.as_ptr());
            assert_eq!(a.dir.len(), crate::DIR_SLOTS);
            let used = (a.nodes.len(), a.leaves.len(), a.singles.len() / 2);
            let (n, l, u) = st.live();
            if exact {
                assert_eq!(used, (n, l, u), "a bulk build has no free blocks");
            } else {
                assert!(used.0 >= n && used.1 >= l && used.2 >= u, "{used:?} {st:?}");
            }
        }
    };
    check(&t, true);
    let before = t.in_use()[0].nodes.as_ptr();
    for &(p, peer) in prefixes.iter().step_by(3) {
        t.remove(p, peer).unwrap();
    }
    // Removed blocks wait in free lists below the marks.
    check(&t, false);
    assert!(t.stats().v4.nodes < t.in_use()[0].nodes.len());
    t.compact().unwrap();
    check(&t, true);
    assert_ne!(t.in_use()[0].nodes.as_ptr(), before, "the other section");
}
