//! What follows control's allowed IPs in the data-path process besides the workers' table
//! (which the workers read in the region, where control writes it): the LAN program's peer
//! tries with XDP, the kernel's routes into the TUN device with the socket backend. Both take
//! control's changes from the region's prefix log ([`contract::prefix_log`]), one change at a
//! time, so an update costs what changed.

use contract::prefix_log::PrefixChange;
use contract::Region;
use proto::allowedips::Prefix;

/// Changes applied per call at most, so that the caller's loop stays responsive while control
/// sends a large configuration.
const DRAIN_MAX: usize = 65536;

/// What follows the prefixes besides the workers' table.
pub trait PrefixSink {
    /// `prefix` now belongs to `peer` (it may have belonged to another).
    fn insert(&mut self, prefix: Prefix, peer: u32);
    /// `prefix` belongs to nobody now.
    fn remove(&mut self, prefix: Prefix);
    /// Forget every prefix (control sends them all again next).
    fn clear(&mut self);
}

/// Starts following control's changes from nothing: asks control for every prefix again
/// (a data path starting over a region control already filled).
pub fn follow_from_scratch(region: &Region, sink: &mut dyn PrefixSink) {
    sink.clear();
    region.prefix_log().request_resync();
}

/// Applies the changes control has logged since the last call; returns how many. Control
/// answers a `wg set` once the log is applied, so traffic follows the change when it returns.
pub fn sync(region: &Region, sink: &mut dyn PrefixSink) -> usize {
    region.prefix_log().drain(DRAIN_MAX, |c| match c {
        PrefixChange::Reset => sink.clear(),
        PrefixChange::Set { addr, len, peer } => {
            if let Ok(p) = Prefix::new(addr, len) {
                sink.insert(p, peer);
            }
        }
        PrefixChange::Remove { addr, len } => {
            if let Ok(p) = Prefix::new(addr, len) {
                sink.remove(p);
            }
        }
    })
}
