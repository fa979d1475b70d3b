//! The control process under a flood of handshake initiations: once its socket holds a
//! backlog, it stops doing DH work for them and answers with cookie replies instead (mac1
//! valid, no mac2); a lone initiation never gets one. Runs on loopback, no privilege needed.

mod common;

use control::daemon::Control;
use proto::cookie::Cookie;
use proto::keys::PrivateKey;
use proto::messages::{Initiation, MessageType, INITIATION_LEN};
use proto::time::Instant;
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
