//! Flow offload (docs/egress.md): established flows that the kernel routes, filters and
//! translates between the peers and the internet are carried by the workers themselves.
//!
//! The kernel decides: a flow's first packets take its path (through wg0, its rules and its
//! NAT), and once connection tracking has the flow established, the offload thread
//! ([`conntrack`] events) enters the flow's two tuples in the [`table`] the workers read and
//! its reply tuple in the WAN program's map. The workers then rewrite its packets as conntrack
//! would ([`tuple`]) and send them themselves, both ways. Packets that must reach connection
//! tracking still take the kernel's path (TCP SYN, FIN and RST, fragments, oversized packets,
//! ICMP errors), and the thread keeps the kernel's entry alive while the workers carry the
//! flow.

pub mod table;
pub mod tuple;
