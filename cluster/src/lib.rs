//! Gateways that share one peer set through etcd (issue 17, docs/cluster.md): the etcd client,
//! the record format, and `wgxdp sync`, which applies the records to a gateway.

pub mod apply;
pub mod endpoints;
pub mod etcd;
pub mod record;
pub mod sync;
