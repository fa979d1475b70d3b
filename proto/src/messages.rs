//! The four WireGuard messages (whitepaper §5.4.2–§5.4.7) as typed, checked views.
//!
//! Each view wraps a caller buffer (`T: AsRef<[u8]>`); `new_checked` validates the length and
//! the 32-bit header word (type and three zero reserved bytes, which the kernel compares as one
//! little-endian word) so that accessors cannot go out of bounds. Field offsets are named once
//! in `field` and nowhere else.

use crate::crypto::{MAC_LEN, TAG_LEN, XNONCE_LEN};

/// Message type numbers, as the first byte of every message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum MessageType {
    Initiation = 1,
    Response = 2,
    CookieReply = 3,
    Data = 4,
}

impl MessageType {
    /// Classifies a datagram by its header word; `None` for unknown types or non-zero
    /// reserved bytes (both dropped by the kernel without further work).
    pub fn of(datagram: &[u8]) -> Option<Self> {
        let word: [u8; 4] = datagram.get(field::HEADER)?.try_into().ok()?;
        match u32::from_le_bytes(word) {
            1 => Some(Self::Initiation),
            2 => Some(Self::Response),
            3 => Some(Self::CookieReply),
            4 => Some(Self::Data),
            _ => None,
        }
    }
}

/// Field ranges of every message. `HEADER` is the type byte plus three reserved bytes.
pub mod field {
    use core::ops::Range;
    pub const HEADER: Range<usize> = 0..4;

    pub mod initiation {
        use core::ops::Range;
        pub const SENDER: Range<usize> = 4..8;
        pub const EPHEMERAL: Range<usize> = 8..40;
        pub const STATIC: Range<usize> = 40..88;
        pub const TIMESTAMP: Range<usize> = 88..116;
        pub const MAC1: Range<usize> = 116..132;
        pub const MAC2: Range<usize> = 132..148;
        pub const LEN: usize = MAC2.end;
    }

    pub mod response {
        use core::ops::Range;
        pub const SENDER: Range<usize> = 4..8;
        pub const RECEIVER: Range<usize> = 8..12;
        pub const EPHEMERAL: Range<usize> = 12..44;
        pub const EMPTY: Range<usize> = 44..60;
        pub const MAC1: Range<usize> = 60..76;
        pub const MAC2: Range<usize> = 76..92;
        pub const LEN: usize = MAC2.end;
    }

    pub mod cookie_reply {
        use core::ops::Range;
        pub const RECEIVER: Range<usize> = 4..8;
        pub const NONCE: Range<usize> = 8..32;
        pub const COOKIE: Range<usize> = 32..64;
        pub const LEN: usize = COOKIE.end;
    }

    pub mod data {
        use core::ops::{Range, RangeFrom};
        pub const RECEIVER: Range<usize> = 4..8;
        pub const COUNTER: Range<usize> = 8..16;
        pub const PAYLOAD: RangeFrom<usize> = 16..;
        pub const HEADER_LEN: usize = PAYLOAD.start;
    }
}

/// Sizes of the fixed messages and the data message overhead.
pub const INITIATION_LEN: usize = field::initiation::LEN;
pub const RESPONSE_LEN: usize = field::response::LEN;
pub const COOKIE_REPLY_LEN: usize = field::cookie_reply::LEN;
pub const DATA_HEADER_LEN: usize = field::data::HEADER_LEN;
/// A data message is at least its header and a tag: an empty plaintext is a keepalive.
pub const DATA_MIN_LEN: usize = DATA_HEADER_LEN + TAG_LEN;
/// Bytes a data message adds around the padded plaintext.
pub const DATA_OVERHEAD: usize = DATA_HEADER_LEN + TAG_LEN;

/// Why bytes were not a well-formed message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("wrong length for this message type")]
    Length,
    #[error("header is not this message type (or reserved bytes are set)")]
    Type,
}

fn read_u32(b: &[u8], r: core::ops::Range<usize>) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[r]);
    u32::from_le_bytes(w)
}

fn header_word(t: MessageType) -> [u8; 4] {
    (t as u32).to_le_bytes()
}

fn array<const N: usize>(b: &[u8], r: core::ops::Range<usize>) -> &[u8; N] {
    // Every range in `field` has the length of the array it is read as.
    b[r].try_into()
        .unwrap_or_else(|_| unreachable!("field range length mismatch"))
}

fn array_mut<const N: usize>(b: &mut [u8], r: core::ops::Range<usize>) -> &mut [u8; N] {
    (&mut b[r])
        .try_into()
        .unwrap_or_else(|_| unreachable!("field range length mismatch"))
}

macro_rules! fixed_message {
    ($name:ident, $ty:expr, $len:expr) => {
        #[derive(Debug, Clone)]
        pub struct $name<T: AsRef<[u8]>> {
            buffer: T,
        }

        impl<T: AsRef<[u8]>> $name<T> {
            /// Checks the exact length and header word.
            pub fn new_checked(buffer: T) -> Result<Self, MessageError> {
                let b = buffer.as_ref();
                if b.len() != $len {
                    return Err(MessageError::Length);
                }
                if b[field::HEADER] != header_word($ty) {
                    return Err(MessageError::Type);
                }
                Ok(Self { buffer })
            }

            pub fn into_inner(self) -> T {
                self.buffer
            }

            pub fn as_bytes(&self) -> &[u8] {
                self.buffer.as_ref()
            }
        }

        impl<T: AsRef<[u8]> + AsMut<[u8]>> $name<T> {
            /// Wraps a buffer of exactly the message's length and writes the header word; the
            /// other fields are left for the caller to fill.
            pub fn new_init(mut buffer: T) -> Result<Self, MessageError> {
                let b = buffer.as_mut();
                if b.len() != $len {
                    return Err(MessageError::Length);
                }
                b[field::HEADER].copy_from_slice(&header_word($ty));
                Ok(Self { buffer })
            }
        }
    };
}

fixed_message!(Initiation, MessageType::Initiation, INITIATION_LEN);
fixed_message!(Response, MessageType::Response, RESPONSE_LEN);
fixed_message!(CookieReply, MessageType::CookieReply, COOKIE_REPLY_LEN);

macro_rules! getters {
    ($name:ident, $module:ident { $( $get:ident, $get_mut:ident : $n:expr => $f:ident; )* } $( u32 $gu:ident, $su:ident => $fu:ident; )*) => {
        impl<T: AsRef<[u8]>> $name<T> {
            $( pub fn $get(&self) -> &[u8; $n] { array(self.buffer.as_ref(), field::$module::$f) } )*
            $( pub fn $gu(&self) -> u32 { read_u32(self.buffer.as_ref(), field::$module::$fu) } )*
        }
        impl<T: AsRef<[u8]> + AsMut<[u8]>> $name<T> {
            $( pub fn $get_mut(&mut self) -> &mut [u8; $n] { array_mut(self.buffer.as_mut(), field::$module::$f) } )*
            $( pub fn $su(&mut self, v: u32) { self.buffer.as_mut()[field::$module::$fu].copy_from_slice(&v.to_le_bytes()) } )*
        }
    };
}

getters!(Initiation, initiation {
    ephemeral, ephemeral_mut: 32 => EPHEMERAL;
    encrypted_static, encrypted_static_mut: 32 + TAG_LEN => STATIC;
    encrypted_timestamp, encrypted_timestamp_mut: 12 + TAG_LEN => TIMESTAMP;
    mac1, mac1_mut: MAC_LEN => MAC1;
    mac2, mac2_mut: MAC_LEN => MAC2;
} u32 sender, set_sender => SENDER;);

getters!(Response, response {
    ephemeral, ephemeral_mut: 32 => EPHEMERAL;
    encrypted_nothing, encrypted_nothing_mut: TAG_LEN => EMPTY;
    mac1, mac1_mut: MAC_LEN => MAC1;
    mac2, mac2_mut: MAC_LEN => MAC2;
} u32 sender, set_sender => SENDER; u32 receiver, set_receiver => RECEIVER;);

getters!(CookieReply, cookie_reply {
    nonce, nonce_mut: XNONCE_LEN => NONCE;
    encrypted_cookie, encrypted_cookie_mut: MAC_LEN + TAG_LEN => COOKIE;
} u32 receiver, set_receiver => RECEIVER;);

/// The bytes covered by mac1 and mac2 of a handshake message: everything before the field.
/// `msg` must be a checked initiation or response (mac1 and mac2 are its last 32 bytes).
pub fn mac1_covered(msg: &[u8]) -> &[u8] {
    &msg[..msg.len() - 2 * MAC_LEN]
}

pub fn mac2_covered(msg: &[u8]) -> &[u8] {
    &msg[..msg.len() - MAC_LEN]
}

/// A transport data message: header, then the encrypted padded packet and its tag.
#[derive(Debug, Clone)]
pub struct Data<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Data<T> {
    /// Checks the header word and that at least a header and a tag are present. The kernel
    /// accepts any length from there (the plaintext is padded, but that is not checkable).
    pub fn new_checked(buffer: T) -> Result<Self, MessageError> {
        let b = buffer.as_ref();
        if b.len() < DATA_MIN_LEN {
            return Err(MessageError::Length);
        }
        if b[field::HEADER] != header_word(MessageType::Data) {
            return Err(MessageError::Type);
        }
        Ok(Self { buffer })
    }

    pub fn receiver(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::data::RECEIVER)
    }

    pub fn counter(&self) -> u64 {
        let mut w = [0u8; 8];
        w.copy_from_slice(&self.buffer.as_ref()[field::data::COUNTER]);
        u64::from_le_bytes(w)
    }

    /// Ciphertext and tag.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::data::PAYLOAD]
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Data<T> {
    /// Writes a data header into a buffer that has room for header and tag.
    pub fn new_init(mut buffer: T, receiver: u32, counter: u64) -> Result<Self, MessageError> {
        let b = buffer.as_mut();
        if b.len() < DATA_MIN_LEN {
            return Err(MessageError::Length);
        }
        b[field::HEADER].copy_from_slice(&header_word(MessageType::Data));
        b[field::data::RECEIVER].copy_from_slice(&receiver.to_le_bytes());
        b[field::data::COUNTER].copy_from_slice(&counter.to_le_bytes());
        Ok(Self { buffer })
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::data::PAYLOAD]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sizes_match_the_whitepaper() {
        assert_eq!(INITIATION_LEN, 148);
        assert_eq!(RESPONSE_LEN, 92);
        assert_eq!(COOKIE_REPLY_LEN, 64);
        assert_eq!(DATA_MIN_LEN, 32);
    }

    #[test]
    fn classify_by_header_word() {
        assert_eq!(
            MessageType::of(&[1, 0, 0, 0]),
            Some(MessageType::Initiation)
        );
        assert_eq!(MessageType::of(&[4, 0, 0, 0, 9]), Some(MessageType::Data));
        assert_eq!(MessageType::of(&[4, 0, 1, 0]), None, "reserved byte set");
        assert_eq!(MessageType::of(&[5, 0, 0, 0]), None);
        assert_eq!(MessageType::of(&[1, 0, 0]), None);
    }

    #[test]
    fn checked_views_refuse_wrong_length_and_type() {
        let mut buf = [0u8; 148];
        assert_eq!(
            Initiation::new_checked(&buf[..]).err(),
            Some(MessageError::Type)
        );
        buf[0] = 1;
        assert!(Initiation::new_checked(&buf[..]).is_ok());
        assert_eq!(
            Initiation::new_checked(&buf[..147]).err(),
            Some(MessageError::Length)
        );
        assert_eq!(
            Response::new_checked(&buf[..92]).err(),
            Some(MessageError::Type)
        );
        assert_eq!(
            Data::new_checked(&[4u8, 0, 0, 0][..]).err(),
            Some(MessageError::Length)
        );
    }

    #[test]
    fn fields_round_trip() {
        let mut r = Response::new_init([0u8; RESPONSE_LEN]).unwrap();
        r.set_sender(0x01020304);
        r.set_receiver(0xa0b0c0d0);
        r.ephemeral_mut().fill(0xee);
        r.mac1_mut().fill(0x11);
        let bytes = r.into_inner();
        assert_eq!(
            &bytes[..12],
            &[2, 0, 0, 0, 4, 3, 2, 1, 0xd0, 0xc0, 0xb0, 0xa0]
        );
        let r = Response::new_checked(&bytes[..]).unwrap();
        assert_eq!((r.sender(), r.receiver()), (0x01020304, 0xa0b0c0d0));
        assert_eq!(r.ephemeral(), &[0xee; 32]);
        assert_eq!(r.mac1(), &[0x11; 16]);
        assert_eq!(mac1_covered(r.as_bytes()).len(), 60);
        assert_eq!(mac2_covered(r.as_bytes()).len(), 76);

        let mut d = [0u8; 40];
        Data::new_init(&mut d[..], 7, 0x1122334455667788).unwrap();
        let d = Data::new_checked(&d[..]).unwrap();
        assert_eq!(
            (d.receiver(), d.counter(), d.payload().len()),
            (7, 0x1122334455667788, 24)
        );
    }

    proptest! {
        #[test]
        fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = MessageType::of(&bytes);
            if let Ok(m) = Initiation::new_checked(&bytes[..]) {
                let _ = (m.sender(), m.ephemeral(), m.encrypted_static(), m.encrypted_timestamp(), m.mac1(), m.mac2());
            }
            if let Ok(m) = Response::new_checked(&bytes[..]) {
                let _ = (m.sender(), m.receiver(), m.ephemeral(), m.encrypted_nothing(), m.mac1(), m.mac2());
            }
            if let Ok(m) = CookieReply::new_checked(&bytes[..]) {
                let _ = (m.receiver(), m.nonce(), m.encrypted_cookie());
            }
            if let Ok(m) = Data::new_checked(&bytes[..]) {
                let _ = (m.receiver(), m.counter(), m.payload());
            }
        }
    }
}
