//! Tests of the whole table: fixed semantic cases, differential tests against the reference,
//! and readers racing the writer.

mod concurrency;
mod corrupt;
mod differential;
mod semantics;

use std::net::IpAddr;

use crate::Prefix;

pub(crate) fn p(s: &str) -> Prefix {
    let (a, l) = s.split_once('/').unwrap();
    Prefix::new(a.parse().unwrap(), l.parse().unwrap()).unwrap()
}

pub(crate) fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}
