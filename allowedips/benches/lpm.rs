//! LPM benchmarks (work in progress).
fn main() {}
