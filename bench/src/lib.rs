//! Benchmarks and the load generator (see `../shared/design.md` §6).
//!
//! Not built yet: the batch-crypto, allowed-IPs and gateway benchmarks land with their issues;
//! results will be kept in `bench/RESULTS.md` with the command, date and machine of each run.
