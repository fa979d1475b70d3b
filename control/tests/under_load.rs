//! The control process under a flood of handshake initiations: once its socket holds a
//! backlog, it stops doing DH work for them and answers with cookie replies instead (mac1
//! valid, no mac2); a lone initiation never gets one; a retry with the cookie gets through a
//! socket the flood has filled. Runs on loopback, no privilege needed.

mod common;

use control::daemon::Control;
use proto::constants::REKEY_TIMEOUT;
use proto::cookie::Cookie;
use proto::device::{Device, PeerConfig, Received};
use proto::keys::PrivateKey;
use proto::messages::{Initiation, MessageType, INITIATION_LEN};
use proto::time::{Instant, Now};
use rand_core::OsRng;
use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn initiation(gw: &proto::keys::PublicKey, sender: u32) -> [u8; INITIATION_LEN] {
    let mut m = [0u8; INITIATION_LEN];
    let mut v = Initiation::new_init(&mut m[..]).unwrap();
    v.set_sender(sender);
    v.ephemeral_mut()
        .copy_from_slice(PrivateKey::generate(&mut OsRng).public_key().as_bytes());
    Cookie::new(gw).add_macs(&mut m, Instant::from_nanos(0));
    m
}

fn cookie_replies(sock: &UdpSocket, wait: Duration) -> usize {
    sock.set_read_timeout(Some(wait)).unwrap();
    let mut buf = [0u8; 256];
    let mut n = 0;
    while let Ok((len, _)) = sock.recv_from(&mut buf) {
        if MessageType::of(&buf[..len]) == Some(MessageType::CookieReply) {
            n += 1;
        }
    }
    n
}

#[test]
fn cookie_replies_only_under_load() {
    let gw_key = PrivateKey::generate(&mut OsRng);
    let gw_pub = gw_key.public_key();
    let peer = PrivateKey::generate(&mut OsRng).public_key();
    let text = format!(
        "[Interface]\nPrivateKey = {}\nListenPort = 0\n\n[Peer]\nPublicKey = {}\nAllowedIPs = 10.0.0.2/32\n",
        gw_key.to_base64(),
        peer.to_base64()
    );
    let opts = common::options("underload", &text);
    let region = opts.region.clone();
    let mut control = Control::new(&opts).unwrap();
    let port = control.local_addr().unwrap().port();
    let stop = Arc::new(AtomicBool::new(false));
    let runner = {
        let stop = stop.clone();
        std::thread::spawn(move || control.run(&stop))
    };
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    let target = ("127.0.0.1", port);

    // One initiation (valid mac1, undecryptable): dropped after the DH, no reply at all.
    client.send_to(&initiation(&gw_pub, 1), target).unwrap();
    assert_eq!(
        cookie_replies(&client, Duration::from_millis(300)),
        0,
        "not under load"
    );

    // A flood: the socket backs up, control goes under load and answers with cookies.
    let msgs: Vec<_> = (0..4000u32).map(|i| initiation(&gw_pub, i)).collect();
    for m in &msgs {
        let _ = client.send_to(m, target);
    }
    let replies = cookie_replies(&client, Duration::from_millis(1500));
    stop.store(true, Ordering::Relaxed);
    runner.join().unwrap();
    let _ = std::fs::remove_file(&region);
    assert!(
        replies > 0,
        "under load, initiations without mac2 get cookie replies"
    );
    assert!(
        replies < msgs.len(),
        "not every message: only those taken while under load"
    );
}

/// A legitimate initiator's retry, carrying the cookie control gave it, while a flood without
/// cookies fills control's socket: it arrives on the cookie lane, which control reads first,
/// and is answered in the very next step, ahead of the whole backlog. (On one shared socket
/// it would be dropped with the overflow, or wait behind tens of thousands of messages.)
#[test]
fn a_cookie_carrying_retry_gets_through_a_flooded_socket() {
    let peer = PrivateKey::generate(&mut OsRng);
    let mut gw = common::gateway("lane", &[peer.public_key()], 4);
    let gw_pub = gw.key.public_key();
    let port = gw.control.local_addr().unwrap().port();
    let target = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let flooder = UdpSocket::bind("127.0.0.1:0").unwrap();
    let replayed = initiation(&gw_pub, 7);
    let flood = |n: usize| {
        for _ in 0..n {
            let _ = flooder.send_to(&replayed, target);
        }
    };

    // The peer: a proto Device on its own clock, which the test moves.
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let clock = std::cell::Cell::new(Duration::from_secs(1));
    let now = || {
        Now::new(
            Instant::from_nanos(clock.get().as_nanos() as u64),
            clock.get(),
        )
    };
    let mut dev = Device::new(peer.clone(), OsRng);
    let id = dev
        .add_peer(
            now(),
            gw_pub,
            PeerConfig {
                endpoint: Some(target),
                ..PeerConfig::default()
            },
        )
        .unwrap();
    let send = |dev: &mut Device<OsRng>| {
        let mut buf = [0u8; 2048];
        let mut sent = 0;
        while let Some(t) = dev.poll_transmit(now(), &mut buf) {
            sock.send_to(&buf[..t.len], t.dst).unwrap();
            sent += 1;
        }
        sent
    };
    let receive = |dev: &mut Device<OsRng>| {
        let mut buf = [0u8; 2048];
        let (n, from) = sock.recv_from(&mut buf).ok()?;
        dev.handle_datagram(now(), from, &mut buf[..n], false).ok()
    };

    // Control under load (a full batch taken), then the peer's first initiation: a cookie.
    flood(control::daemon::HANDSHAKE_BATCH + 100);
    gw.control.step();
    dev.initiate_handshake(now(), id);
    assert_eq!(send(&mut dev), 1);
    let mut cookie = None;
    for _ in 0..10 {
        gw.control.step();
        if let Some(r) = receive(&mut dev) {
            cookie = Some(r);
            break;
        }
    }
    assert_eq!(cookie, Some(Received::CookieReply { peer: id }));
    // Control's socket answered everything: empty again.
    for _ in 0..10 {
        gw.control.step();
    }
    while sock.recv_from(&mut [0u8; 256]).is_ok() {}

    // Now the flood fills the socket (16 MiB of buffer, ~1 KiB a datagram), and the peer's
    // retry (its timer, REKEY_TIMEOUT later) carries the cookie as mac2.
    flood(40_000);
    clock.set(clock.get() + REKEY_TIMEOUT + Duration::from_secs(1));
    dev.handle_timeout(now());
    assert_eq!(send(&mut dev), 1, "the retry");
    gw.control.step();
    let answer = receive(&mut dev);
    assert_eq!(
        answer,
        Some(Received::Response { peer: id }),
        "the retry answered in the first step after it"
    );
}
