//! Records a handshake transcript with wireguard-go for `proto`'s known-answer tests
//! (`proto/src/noise_vectors.rs`). Not part of the suite: run it by hand when the vectors need
//! renewing, as root:
//!
//! `cargo test -p testbed --test capture_wireguard_go_vectors -- --ignored --nocapture`
//!
//! Our side uses fixed static keys, fixed ephemerals, fixed receiver indices and a fixed
//! timestamp, so our messages are reproducible; wireguard-go's are whatever it sent. What the
//! transcript proves: wireguard-go accepted our initiation (it answered) and our response (it
//! then sent data under the keys derived from it), and we derive the keys that open its data.

use proto::cookie::Cookie;
use proto::keys::{clamp, PresharedKey, PrivateKey, PublicKey};
use proto::messages::{Data, Initiation, Response, INITIATION_LEN, RESPONSE_LEN};
use proto::noise::{Handshake, StaticIdentity};
use proto::time::{Instant, Now};
use rand_core::{CryptoRng, RngCore};
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;
use testbed::{plan, Netns, VethPair, WgConfig, WgKeypair, WgPeer, WireguardGo};

struct Fixed([u8; 32]);
impl RngCore for Fixed {
    fn next_u32(&mut self) -> u32 {
        unreachable!()
    }
    fn next_u64(&mut self) -> u64 {
        unreachable!()
    }
    fn fill_bytes(&mut self, d: &mut [u8]) {
        d.copy_from_slice(&self.0[..d.len()]);
    }
    fn try_fill_bytes(&mut self, d: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(d);
        Ok(())
    }
}
impl CryptoRng for Fixed {}

fn key(b: u8) -> [u8; 32] {
    let mut k = [b; 32];
    clamp(&mut k);
    k
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn recv(sock: &UdpSocket, len_ok: impl Fn(usize, u8) -> bool) -> Vec<u8> {
    let mut buf = [0u8; 2048];
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    loop {
        let (n, _) = sock.recv_from(&mut buf).expect("reply from wireguard-go");
        if len_ok(n, buf[0]) {
            return buf[..n].to_vec();
        }
    }
}

fn bed(
    wg_private: &PrivateKey,
    our_public: &PublicKey,
) -> (Netns, Netns, VethPair, UdpSocket, WireguardGo, SocketAddr) {
    let ours = Netns::new("capo").unwrap();
    let theirs = Netns::new("capt").unwrap();
    let wan = VethPair::wan(&ours, &theirs).unwrap();
    let sock = ours
        .run_in(|| UdpSocket::bind(SocketAddr::new(wan.a.v4().into(), 51820)))
        .unwrap();
    let wg = WireguardGo::start(
        &theirs,
        WgConfig {
            keypair: Some(WgKeypair::from_private(wg_private.to_base64()).unwrap()),
            addrs: vec![plan::TUNNEL_B_V4],
            peers: vec![WgPeer {
                allowed_ips: vec![plan::TUNNEL_A_V4.host()],
                endpoint: Some(sock.local_addr().unwrap()),
                ..WgPeer::new(our_public.to_base64())
            }],
            ..WgConfig::default()
        },
    )
    .unwrap();
    let ep = SocketAddr::new(wan.b.v4().into(), wg.listen_port());
    (ours, theirs, wan, sock, wg, ep)
}

#[test]
#[ignore = "records vectors; run by hand"]
fn capture() {
    assert!(testbed::require_wireguard_go());
    let ours = StaticIdentity::new(PrivateKey::from_bytes(key(0x11)));
    let wg_private = PrivateKey::from_bytes(key(0x22));
    let wg_public = wg_private.public_key();
    let now = Now::new(
        Instant::from_nanos(0),
        Duration::new(1_700_000_000, 500_000_000),
    );

    // We initiate.
    {
        let (_o, _t, _w, sock, _wg, ep) = bed(&wg_private, ours.public());
        let mut hs = Handshake::new(wg_public, PresharedKey::default());
        let mut init = [0u8; INITIATION_LEN];
        hs.create_initiation(
            &ours,
            now,
            0x1122_3344,
            &mut Fixed(key(0x33)),
            &mut Initiation::new_init(&mut init[..]).unwrap(),
        )
        .unwrap();
        Cookie::new(&wg_public).add_macs(&mut init, now.mono);
        sock.send_to(&init, ep).unwrap();
        let resp = recv(&sock, |n, t| n == RESPONSE_LEN && t == 2);
        hs.consume_response(&ours, &Response::new_checked(&resp[..]).unwrap())
            .unwrap();
        let keys = hs.begin_session().unwrap();
        // An echo request 198.19.0.1 -> 198.19.0.2, checksums precomputed by hand below.
        let ping = echo_request();
        let mut msg = vec![0u8; 16 + ping.len() + 16];
        msg[16..16 + ping.len()].copy_from_slice(&ping);
        let n =
            proto::data::seal(&keys.sending, keys.remote_index, 0, &mut msg, ping.len()).unwrap();
        sock.send_to(&msg[..n], ep).unwrap();
        let data = recv(&sock, |n, t| t == 4 && n > 32);
        assert_eq!(
            Data::new_checked(&data[..]).unwrap().receiver(),
            0x1122_3344
        );
        println!("pub const INITIATOR_INITIATION: &str = \"{}\";", hex(&init));
        println!("pub const INITIATOR_RESPONSE: &str = \"{}\";", hex(&resp));
        println!("pub const INITIATOR_DATA: &str = \"{}\";", hex(&data));
    }
    // wireguard-go initiates (it has a ping for us).
    {
        let (_o, theirs, _w, sock, _wg, ep) = bed(&wg_private, ours.public());
        std::thread::scope(|s| {
            s.spawn(|| theirs.ping(plan::TUNNEL_A_V4.ip, 1, Duration::from_secs(3)));
            let init = recv(&sock, |n, t| n == INITIATION_LEN && t == 1);
            let view = Initiation::new_checked(&init[..]).unwrap();
            let partial = Handshake::begin_consume_initiation(&ours, &view).unwrap();
            let mut hs = Handshake::new(wg_public, PresharedKey::default());
            hs.finish_consume_initiation(&ours, partial, &view, now.mono)
                .unwrap();
            let mut resp = [0u8; RESPONSE_LEN];
            hs.create_response(
                0x5566_7788,
                &mut Fixed(key(0x44)),
                &mut Response::new_init(&mut resp[..]).unwrap(),
            )
            .unwrap();
            Cookie::new(&wg_public).add_macs(&mut resp, now.mono);
            hs.begin_session().unwrap();
            sock.send_to(&resp, ep).unwrap();
            let data = recv(&sock, |n, t| t == 4 && n > 32);
            println!("pub const RESPONDER_INITIATION: &str = \"{}\";", hex(&init));
            println!("pub const RESPONDER_RESPONSE: &str = \"{}\";", hex(&resp));
            println!("pub const RESPONDER_DATA: &str = \"{}\";", hex(&data));
        });
    }
}

fn echo_request() -> Vec<u8> {
    use proto::wire::{Icmpv4Packet, Icmpv4Type, IpProtocol, Ipv4Packet};
    let mut buf = vec![0u8; 20 + 8 + 4];
    let mut ip = Ipv4Packet::new_unchecked(&mut buf[..]);
    ip.set_version(4);
    ip.set_header_len(20);
    ip.set_total_len(32);
    ip.set_ttl(64);
    ip.set_protocol(IpProtocol::ICMP);
    ip.set_src_addr(std::net::Ipv4Addr::new(198, 19, 0, 1));
    ip.set_dst_addr(std::net::Ipv4Addr::new(198, 19, 0, 2));
    ip.fill_checksum();
    let mut icmp = Icmpv4Packet::new_unchecked(ip.payload_mut());
    icmp.set_msg_type(Icmpv4Type::ECHO_REQUEST);
    icmp.set_echo_ident(7);
    icmp.set_echo_seq_no(1);
    icmp.payload_mut().copy_from_slice(b"wgxd");
    icmp.fill_checksum();
    buf
}
