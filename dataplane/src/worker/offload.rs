//! Offloaded flows in the worker (docs/egress.md, [`crate::offload`]): a client's packet of a
//! flow the kernel established is translated here and sent to the next hop the FIB names, and
//! the flow's return packets (steered by the WAN program) are translated back before they are
//! sealed for the client. Everything else, and any packet whose next hop is not known yet,
//! keeps the kernel's path untranslated: the kernel translates it itself.

use super::Worker;
use crate::frame::Frame;
use crate::link::{Link, Side};
use crate::neigh::Snapshot;
use crate::offload::tuple;
use crate::packet;
use contract::DropReason;

impl<'a, L: Link<'a>> Worker<'a, L> {
    /// A decrypted packet (`chunk[off..off + len]`, the inner IP packet) of an offloaded flow:
    /// a hop taken off, rewritten into the flow's translated tuple and framed for the next hop
    /// the FIB names on one of the worker's own ports. Returns that side and the frame's new
    /// packet range; `None` if it is not such a packet or the next hop is not known yet.
    pub(super) fn offload_out(
        &mut self,
        chunk: &mut [u8],
        off: usize,
        len: usize,
        now: u64,
        snapshot: &Snapshot,
    ) -> Result<Option<(Side, usize, usize)>, DropReason> {
        let Some(flows) = self.flows.as_ref().filter(|f| !f.is_empty()) else {
            return Ok(None);
        };
        let Some(key) = chunk.get(off..off + len).and_then(tuple::classify) else {
            return Ok(None);
        };
        let Some(hit) = flows.lookup(&key) else {
            return Ok(None);
        };
        let dst = hit.to.dst;
        let ports = [
            Some((Side::Wan, &self.cfg.wan)),
            self.cfg.lan.as_ref().map(|l| (Side::Lan, l)),
        ];
        let hop = ports
            .into_iter()
            .flatten()
            .find_map(|(side, i)| Some((side, i, snapshot.lookup(dst, i.index)?)));
        let Some((side, port, mac)) = hop else {
            // The kernel's path this time (it resolves the neighbour); the next packets of
            // the flow find the hop once the resolver has learned it.
            self.neigh.request(dst);
            return Ok(None);
        };
        // Longer than the port carries: the kernel fragments it or tells the client the MTU
        // (through its NAT: the error quotes the translated packet).
        if len > port.mtu {
            return Ok(None);
        }
        let our_mac = port.mac;
        packet::decrement_ttl(chunk, off)?;
        tuple::rewrite(&mut chunk[off..off + len], hit.to);
        flows.touch(hit.slot, now);
        let framed = packet::frame_inner(chunk, off, len, our_mac, mac)?;
        self.count(|s| &s.offloaded_out, 1);
        Ok(Some((side, framed.0, framed.1)))
    }

    /// A plaintext frame from a port's socket: an offloaded flow's return packet (steered by
    /// the port's program) is rewritten in place into the flow's original tuple (its
    /// destination the client), so that the outbound path seals it for the client's peer. A
    /// frame that is no flow's is dropped where only flows are steered to the socket (a
    /// two-armed gateway's WAN side), or where it is for one of the gateway's own addresses:
    /// its flow ended between the program and here, and the kernel would have taken it.
    /// Where the socket also carries plaintext for peers (`plain_too`: a LAN port, or the one
    /// port of a one-armed gateway), anything else is that, steered as such.
    pub(super) fn offload_return(
        &mut self,
        frame: &mut Frame<'a>,
        now: u64,
        snapshot: &Snapshot,
        plain_too: bool,
    ) -> Result<(), DropReason> {
        let Some(flows) = &self.flows else {
            return if plain_too {
                Ok(())
            } else {
                Err(DropReason::FlowGone)
            };
        };
        let (off, len) = (frame.offset(), frame.len());
        let (ip_off, ip_len, dst) = packet::parse_inner(frame.chunk(), off, len)?;
        let chunk = frame.chunk_mut();
        // A sender on this host (veth) may have left its checksum partial: completed first,
        // so that the incremental update below starts from a whole one.
        packet::complete_partial_checksum(chunk, ip_off, ip_len);
        let hit = chunk
            .get(ip_off..ip_off + ip_len)
            .and_then(tuple::classify)
            .and_then(|key| flows.lookup(&key));
        match hit {
            Some(hit) => {
                tuple::rewrite(&mut chunk[ip_off..ip_off + ip_len], hit.to);
                flows.touch(hit.slot, now);
                self.count(|s| &s.offloaded_in, 1);
                Ok(())
            }
            None if !plain_too || snapshot.is_local(dst) => Err(DropReason::FlowGone),
            None => Ok(()),
        }
    }
}
