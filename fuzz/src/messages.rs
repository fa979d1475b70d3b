//! The four WireGuard messages (`proto::messages`): classification and checked views.
//!
//! A view that `new_checked` accepts must agree with `MessageType::of`, have exactly its
//! length, and rebuild byte for byte from its fields through `new_init` and the setters (the
//! encoder the protocol core writes its own messages with).

use proto::messages::{
    mac1_covered, mac2_covered, CookieReply, Data, Initiation, MessageType, Response,
    COOKIE_REPLY_LEN, DATA_HEADER_LEN, DATA_MIN_LEN, INITIATION_LEN, RESPONSE_LEN,
};

pub fn run(data: &[u8]) {
    let kind = MessageType::of(data);
    let word = data
        .get(..4)
        .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]));
    assert_eq!(
        kind.is_some(),
        matches!(word, Some(1..=4)),
        "classified by the whole header word"
    );
    // A fixed-size message of its type is refused for its length only.
    let exact = |t, len| kind == Some(t) && data.len() == len;
    assert_eq!(
        Initiation::new_checked(data).is_ok(),
        exact(MessageType::Initiation, INITIATION_LEN)
    );
    assert_eq!(
        Response::new_checked(data).is_ok(),
        exact(MessageType::Response, RESPONSE_LEN)
    );
    assert_eq!(
        CookieReply::new_checked(data).is_ok(),
        exact(MessageType::CookieReply, COOKIE_REPLY_LEN)
    );

    if let Ok(m) = Initiation::new_checked(data) {
        assert_eq!(
            (kind, data.len()),
            (Some(MessageType::Initiation), INITIATION_LEN)
        );
        let mut b = Initiation::new_init([0u8; INITIATION_LEN]).expect("exact length");
        b.set_sender(m.sender());
        b.ephemeral_mut().copy_from_slice(m.ephemeral());
        b.encrypted_static_mut()
            .copy_from_slice(m.encrypted_static());
        b.encrypted_timestamp_mut()
            .copy_from_slice(m.encrypted_timestamp());
        b.mac1_mut().copy_from_slice(m.mac1());
        b.mac2_mut().copy_from_slice(m.mac2());
        assert_eq!(b.as_bytes(), data, "initiation rebuilds from its fields");
        assert_eq!(mac1_covered(data).len(), INITIATION_LEN - 32);
        assert_eq!(mac2_covered(data).len(), INITIATION_LEN - 16);
    }

    if let Ok(m) = Response::new_checked(data) {
        assert_eq!(
            (kind, data.len()),
            (Some(MessageType::Response), RESPONSE_LEN)
        );
        let mut b = Response::new_init([0u8; RESPONSE_LEN]).expect("exact length");
        b.set_sender(m.sender());
        b.set_receiver(m.receiver());
        b.ephemeral_mut().copy_from_slice(m.ephemeral());
        b.encrypted_nothing_mut()
            .copy_from_slice(m.encrypted_nothing());
        b.mac1_mut().copy_from_slice(m.mac1());
        b.mac2_mut().copy_from_slice(m.mac2());
        assert_eq!(b.as_bytes(), data, "response rebuilds from its fields");
        assert_eq!(mac1_covered(data).len(), RESPONSE_LEN - 32);
    }

    if let Ok(m) = CookieReply::new_checked(data) {
        assert_eq!(
            (kind, data.len()),
            (Some(MessageType::CookieReply), COOKIE_REPLY_LEN)
        );
        let mut b = CookieReply::new_init([0u8; COOKIE_REPLY_LEN]).expect("exact length");
        b.set_receiver(m.receiver());
        b.nonce_mut().copy_from_slice(m.nonce());
        b.encrypted_cookie_mut()
            .copy_from_slice(m.encrypted_cookie());
        assert_eq!(b.as_bytes(), data, "cookie reply rebuilds from its fields");
    }

    if let Ok(m) = Data::new_checked(data) {
        assert_eq!(kind, Some(MessageType::Data));
        assert!(data.len() >= DATA_MIN_LEN);
        assert_eq!(m.payload().len(), data.len() - DATA_HEADER_LEN);
        let mut copy = vec![0u8; data.len()];
        let mut b = Data::new_init(&mut copy[..], m.receiver(), m.counter()).expect("has room");
        b.payload_mut().copy_from_slice(m.payload());
        assert_eq!(copy, data, "data message rebuilds from its fields");
    } else if kind == Some(MessageType::Data) {
        assert!(
            data.len() < DATA_MIN_LEN,
            "only a short data message is refused"
        );
    }
}
