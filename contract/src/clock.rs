//! The one clock of the region: CLOCK_MONOTONIC in nanoseconds. Every timestamp in the shared
//! region (key births, activity times, heartbeats) is on it, read the same way by control and
//! the workers. Only the processes' outer loops read it; the protocol core and the worker's
//! round take `now` as an argument.

/// CLOCK_MONOTONIC now, in nanoseconds (vDSO, no syscall).
pub fn mono_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| {
            u64::try_from(t.tv_sec()).unwrap_or(0) * 1_000_000_000
                + u64::try_from(t.tv_nsec()).unwrap_or(0)
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn monotonic() {
        let a = super::mono_ns();
        let b = super::mono_ns();
        assert!(a > 0 && b >= a);
    }
}
