//! Readers hammer lookups while the writer publishes thousands of updates.
//!
//! The writer follows a script fixed in advance, so the answer every probe address must get
//! after each step is known (from the reference). A reader notes the last step completed before
//! its batch and the step in progress after it; each answer must equal the expected answer of
//! some version in that interval. A torn read (a mix of old and new blocks, or a block reused
//! too early) gives an answer that no version had: every step hands its prefix to a fresh peer
//! id, so stale or mixed values stand out.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;

use super::p;
use crate::workload::{inside, Rng};
use crate::{AllowedIps, PeerId, Prefix, Reference};

enum Step {
    Insert(Prefix, PeerId),
    Remove(Prefix, PeerId),
    /// Rebuild and swap whole arenas: answers do not change.
    Compact,
}

#[test]
fn readers_see_the_old_or_the_new_table_never_a_mix() {
    const STEPS: usize = 4000;
    const READERS: usize = 2;
    let mut rng = Rng::new(0xC0FFEE);

    // Hot prefixes nested around the probes, at every kind of depth: directory defaults
    // (<= 16), inside the first stride, deep, host routes.
    let hot: Vec<Prefix> = [
        "0.0.0.0/0",
        "10.0.0.0/8",
        "10.1.0.0/16",
        "10.1.0.0/18",
        "10.1.2.0/23",
        "10.1.2.0/24",
        "10.1.2.0/26",
        "10.1.2.0/29",
        "10.1.2.3/32",
        "10.1.2.4/32",
        "10.1.2.64/27",
        "10.1.128.0/17",
        "::/0",
        "2001:db8::/32",
        "2001:db8:1::/48",
        "2001:db8:1:2::/64",
        "2001:db8:1:2::/96",
        "2001:db8:1:2::1/128",
        "2001:db8:1:2::2/128",
        "2001:db8:1:2:8000::/66",
        "2001:db8:1:3::/64",
        "2001::/16",
    ]
    .iter()
    .map(|s| p(s))
    .collect();
    // Background prefixes so the blocks around the hot ones are shared with neighbours.
    let mut initial: Vec<(Prefix, PeerId)> = Vec::new();
    for i in 0..3000u32 {
        let v4 = Prefix::new(
            IpAddr::V4(Ipv4Addr::from(0x0A01_0000 | rng.next_u64() as u32 & 0xFFFF)),
            20 + rng.below(13) as u8,
        )
        .unwrap();
        let v6 = Prefix::new(
            IpAddr::V6(Ipv6Addr::from(
                0x2001_0db8_0001_0002u128 << 64 | u128::from(rng.next_u64()),
            )),
            64 + rng.below(65) as u8,
        )
        .unwrap();
        initial.push((v4, 1_000_000 + i));
        initial.push((v6, 1_000_000 + i));
    }
    let probes: Vec<IpAddr> = hot
        .iter()
        .flat_map(|&h| [inside(h, &mut rng), inside(h, &mut rng), h.addr()])
        .collect();

    // The script and the expected answers after each step (version 0: before any).
    let mut reference = Reference::new();
    for &(prefix, peer) in &initial {
        reference.insert(prefix, peer);
    }
    let mut owners: Vec<Option<PeerId>> = vec![None; hot.len()];
    let mut script = Vec::with_capacity(STEPS);
    let mut expected = Vec::with_capacity(STEPS + 1);
    expected.push(
        probes
            .iter()
            .map(|&q| reference.lookup(q))
            .collect::<Vec<_>>(),
    );
    for step in 0..STEPS {
        let h = rng.below(hot.len() as u64) as usize;
        let action = if step % 500 == 499 {
            Step::Compact
        } else if owners[h].is_some() && rng.below(2) == 0 {
            let owner = owners[h].take().unwrap_or(0);
            assert!(reference.remove(hot[h], owner));
            Step::Remove(hot[h], owner)
        } else {
            let peer = step as PeerId + 1;
            reference.insert(hot[h], peer);
            owners[h] = Some(peer);
            Step::Insert(hot[h], peer)
        };
        script.push(action);
        expected.push(probes.iter().map(|&q| reference.lookup(q)).collect());
    }

    let mut table = AllowedIps::from_prefixes(initial).unwrap();
    let expected = Arc::new(expected);
    let probes = Arc::new(probes);
    let started = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..READERS)
        .map(|_| {
            let mut reader = table.reader().unwrap();
            let (expected, probes) = (Arc::clone(&expected), Arc::clone(&probes));
            let (started, done, finished) = (
                Arc::clone(&started),
                Arc::clone(&done),
                Arc::clone(&finished),
            );
            thread::spawn(move || {
                let mut checked = 0usize;
                let mut answers = vec![None; probes.len()];
                let mut batch = 0usize;
                let v4: Vec<u32> = probes
                    .iter()
                    .filter_map(|q| match q {
                        IpAddr::V4(a) => Some(u32::from(*a)),
                        IpAddr::V6(_) => None,
                    })
                    .collect();
                let v6: Vec<u128> = probes
                    .iter()
                    .filter_map(|q| match q {
                        IpAddr::V6(a) => Some(u128::from(*a)),
                        IpAddr::V4(_) => None,
                    })
                    .collect();
                let (mut out4, mut out6) = (vec![None; v4.len()], vec![None; v6.len()]);
                loop {
                    let last = finished.load(Ordering::Acquire);
                    let lo = done.load(Ordering::Acquire);
                    {
                        let snap = reader.pin();
                        batch += 1;
                        if batch.is_multiple_of(2) {
                            for (a, q) in answers.iter_mut().zip(probes.iter()) {
                                *a = snap.lookup(*q);
                            }
                        } else {
                            // The batch path, as the workers use it.
                            snap.lookup_v4_batch(&v4, &mut out4);
                            snap.lookup_v6_batch(&v6, &mut out6);
                            let (mut i4, mut i6) = (out4.iter(), out6.iter());
                            for (a, q) in answers.iter_mut().zip(probes.iter()) {
                                *a = match q {
                                    IpAddr::V4(_) => *i4.next().unwrap(),
                                    IpAddr::V6(_) => *i6.next().unwrap(),
                                };
                            }
                        }
                    }
                    let hi = started.load(Ordering::Acquire);
                    for (i, got) in answers.iter().enumerate() {
                        let ok = (lo..=hi).any(|v| expected[v][i] == *got);
                        assert!(
                            ok,
                            "probe {} answered {got:?}, no version in {lo}..={hi} has that",
                            probes[i]
                        );
                        checked += 1;
                    }
                    if last {
                        return checked;
                    }
                }
            })
        })
        .collect();

    for (i, action) in script.iter().enumerate() {
        started.store(i + 1, Ordering::Release);
        match *action {
            Step::Insert(prefix, peer) => {
                table.insert(prefix, peer).unwrap();
            }
            Step::Remove(prefix, peer) => assert!(table.remove(prefix, peer).unwrap()),
            Step::Compact => table.compact().unwrap(),
        }
        done.store(i + 1, Ordering::Release);
        if i % 64 == 0 {
            thread::yield_now();
        }
    }
    finished.store(true, Ordering::Release);
    let checked: usize = readers.into_iter().map(|r| r.join().unwrap()).sum();
    eprintln!("checked {checked} answers");
    assert!(checked > probes.len() * READERS, "readers ran");
    // The final table answers exactly as the last version.
    for (q, want) in probes.iter().zip(&expected[STEPS]) {
        assert_eq!(table.lookup(*q), *want);
    }
}
