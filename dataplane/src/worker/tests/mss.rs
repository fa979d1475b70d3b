//! MSS clamping both ways through the worker: a SYN sealed for a peer and a SYN opened from
//! one leave with an MSS that fits the tunnel, with a correct TCP checksum, and are counted.

use super::*;
use proto::wire::tcp;
use proto::wire::PseudoHeader as _;

/// An IPv4 TCP SYN from `src` to `dst` whose only option is MSS `mss`.
fn syn(src: Ipv4Addr, dst: Ipv4Addr, mss: u16) -> Vec<u8> {
    let mut b = vec![0u8; 20 + 24];
    {
        let mut ip = Ipv4Packet::new_unchecked(&mut b[..]);
        ip.set_version(4);
        ip.set_header_len(20);
        ip.set_total_len(44);
        ip.set_ttl(64);
        ip.set_protocol(IpProtocol::TCP);
        ip.set_src_addr(src);
        ip.set_dst_addr(dst);
        ip.fill_checksum();
        let seg = ip.payload_mut();
        seg[tcp::field::SRC_PORT].copy_from_slice(&40000u16.to_be_bytes());
        seg[tcp::field::DST_PORT].copy_from_slice(&443u16.to_be_bytes());
        seg[tcp::field::DATA_OFFSET] = 6 << 4;
        seg[tcp::field::FLAGS] = tcp::SYN;
        seg[20..24].copy_from_slice(&[2, 4, (mss >> 8) as u8, mss as u8]);
        let c = src
            .pseudo_header(dst, IpProtocol::TCP, 24)
            .add_bytes(seg)
            .finish();
        seg[tcp::field::CHECKSUM].copy_from_slice(&c.to_be_bytes());
    }
    b
}

/// The MSS of the SYN in `ip`, and whether its TCP checksum verifies.
fn mss_of(ip: &[u8]) -> (u16, bool) {
    let ip = Ipv4Packet::new_checked(ip).unwrap();
    let seg = ip.payload();
    let sum = ip
        .src_addr()
        .pseudo_header(ip.dst_addr(), IpProtocol::TCP, seg.len() as u32)
        .add_bytes(seg)
        .finish();
    (u16::from_be_bytes([seg[22], seg[23]]), sum == 0)
}

#[test]
fn syns_crossing_the_tunnel_get_an_mss_that_fits_it() {
    let gw = Gateway::new("mss", true);
    let mut arena = vec![0u8; 64 * FRAME];
    let mut w = gw.worker(0, FakeLink::new(&mut arena, FRAME, true), neighbours());
    let link = w.link_mut();
    // A client's SYN from the tunnel, and a LAN server's SYN to the client.
    assert!(link.inject(
        Side::Wan,
        &from_peer(&syn(PEER_TUNNEL, LAN_HOST, 1460), &KEY_TO_US, 0, endpoint())
    ));
    assert!(link.inject(Side::Lan, &from_lan(&syn(LAN_HOST, PEER_TUNNEL, 8960))));
    // One that already fits passes untouched.
    assert!(link.inject(Side::Lan, &from_lan(&syn(LAN_HOST, PEER_TUNNEL, 1200))));
    assert_eq!(w.poll_once(T0 + 1), 3);
    let link = w.link_mut();
    let lan = link.take_sent(Side::Lan);
    assert_eq!(lan.len(), 1);
    // 1420 (the tunnel MTU) - 20 (IPv4) - 20 (TCP).
    assert_eq!(mss_of(&lan[0][14..]), (1380, true), "opened from the peer");
    let wan = link.take_sent(Side::Wan);
    assert_eq!(wan.len(), 2);
    let sealed: Vec<(u16, bool)> = wan
        .iter()
        .map(|f| {
            let outer = packet::parse_outer(f, 0, f.len()).unwrap();
            let mut msg = f[outer.msg_offset..outer.msg_offset + outer.msg_len].to_vec();
            let n = proto::data::open(&KEY_TO_PEER, &mut msg).unwrap();
            mss_of(&msg[16..16 + n])
        })
        .collect();
    assert_eq!(sealed, [(1380, true), (1200, true)], "sealed for the peer");
    assert_eq!(
        gw.region
            .worker_stats(0)
            .unwrap()
            .mss_clamped
            .load(Ordering::Relaxed),
        2
    );
    assert_eq!((link.outstanding(), link.duplicates()), (0, 0));
}
