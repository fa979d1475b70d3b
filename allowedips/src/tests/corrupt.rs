//! A table whose words a bug has scribbled over (the writer's, or anything else that can write
//! the shared region) costs wrong answers at worst: a worker's lookup neither panics nor walks
//! forever, whatever the words say.

use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use rand::{Rng as _, SeedableRng as _};
use rand_chacha::ChaCha8Rng;

use super::p;
use crate::{AllowedIps, Arrays, Capacity, HeapMemory, Memory, Reader};

/// Overwrites one word of `a` that lookups of `slots` (directory slots) read, or may read,
/// with `value`.
fn scribble(a: &Arrays<'_>, slots: &[usize], rng: &mut ChaCha8Rng, value: u64) {
    match rng.gen_range(0..4) {
        0 => {
            let i = slots[rng.gen_range(0..slots.len())];
            a.dir[i].store(value, Ordering::Relaxed);
        }
        1 => {
            // A bulk build uses the nodes from index 0 up.
            let i = rng.gen_range(0..a.nodes.len().min(128));
            a.nodes[i][rng.gen_range(0..4)].store(value, Ordering::Relaxed);
        }
        2 => {
            let i = rng.gen_range(0..a.leaves.len().min(1024));
            a.leaves[i].store(value as u32, Ordering::Relaxed);
        }
        _ => {
            let i = rng.gen_range(0..a.singles.len().min(1024));
            a.singles[i].store(value, Ordering::Relaxed);
        }
    }
}

/// Values a corrupt word could hold: random, all ones, small indices (cycles back up the
/// trie), an index just past a node array, a skip of 15.
fn nasty(rng: &mut ChaCha8Rng, nodes: usize) -> u64 {
    match rng.gen_range(0..5) {
        0 => rng.gen(),
        1 => u64::MAX,
        2 => rng.gen_range(0..4) | (rng.gen_range(0..4u64) << 32),
        3 => nodes as u64 | ((nodes as u64 + 1) << 32),
        _ => (0xF << 32) | u64::from(rng.gen::<u32>()),
    }
}

fn lookups_survive_corruption(seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let memory = Arc::new(HeapMemory::new(Capacity::new(4_000)));
    // Long prefixes packed under few directory slots, so that lookups walk nodes: IPv4 in
    // 10.0.0.0/16 (16 slots), IPv6 in 2001:db8::/32 (one slot).
    let v4_net = 10u32 << 24;
    let v6_net = 0x2001_0db8u128 << 96;
    let mut prefixes = Vec::new();
    for i in 0..600u32 {
        let l = rng.gen_range(20..=32);
        let a = (v4_net | rng.gen::<u32>() >> 16) & (u32::MAX << (32 - l));
        prefixes.push((p(&format!("{}/{l}", std::net::Ipv4Addr::from(a))), i));
        let l = rng.gen_range(33..=128u32);
        let b = (v6_net | rng.gen::<u128>() >> 32) & (u128::MAX << (128 - l));
        prefixes.push((p(&format!("{}/{l}", std::net::Ipv6Addr::from(b))), i));
    }
    let dyn_memory: Arc<dyn Memory> = memory.clone();
    let _table = AllowedIps::attach(Arc::clone(&dyn_memory), prefixes).unwrap();
    let mut reader = Reader::attach(dyn_memory).unwrap();
    let v4: Vec<u32> = (0..256).map(|_| v4_net | rng.gen::<u32>() >> 16).collect();
    let v6: Vec<u128> = (0..256).map(|_| v6_net | rng.gen::<u128>() >> 32).collect();
    let v4_slots: Vec<usize> = v4.iter().map(|a| (a >> 12) as usize).collect();
    let v6_slots = [(v6_net >> 108) as usize];
    let mut out = vec![None; 256];
    for _ in 0..300 {
        let shared = memory.table();
        for a in &shared.v4 {
            let value = nasty(&mut rng, a.nodes.len());
            scribble(a, &v4_slots, &mut rng, value);
        }
        for a in &shared.v6 {
            let value = nasty(&mut rng, a.nodes.len());
            scribble(a, &v6_slots, &mut rng, value);
        }
        let snap = reader.pin();
        snap.lookup_v4_batch(&v4, &mut out);
        snap.lookup_v6_batch(&v6, &mut out);
        for &a in &v4[..32] {
            let _ = snap.lookup_v4(a);
        }
        for &a in &v6[..32] {
            let _ = snap.lookup_v6(a);
        }
    }
}

#[test]
fn corrupt_words_cost_wrong_answers_not_panics_or_endless_walks() {
    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || {
        for seed in 0..8 {
            lookups_survive_corruption(seed);
        }
        let _ = done.send(());
    });
    match finished.recv_timeout(Duration::from_secs(120)) {
        Ok(()) => {}
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("a lookup walked on and on"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("a lookup panicked (above)"),
    }
}
