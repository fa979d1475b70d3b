//! Sockets opened inside named network namespaces (made by the scripts with `testbed-topo`):
//! a socket stays in the namespace it was created in, so one process can be a generator on
//! the WAN side and a sink on the LAN side at once. Entering is testbed's
//! [`testbed::run_in_netns`]; this only adapts it to the generator's optional names and
//! `io::Result`s.

use std::io;

/// Runs `f` on a new thread that has joined network namespace `name`, or right here (in the
/// current namespace) if `name` is `None`, and returns what it returns. A panic in `f`
/// propagates.
pub fn run_in<T: Send>(
    name: Option<&str>,
    f: impl FnOnce() -> io::Result<T> + Send,
) -> io::Result<T> {
    match name {
        None => f(),
        Some(name) => testbed::run_in_netns(name, f).map_err(io::Error::other)?,
    }
}
