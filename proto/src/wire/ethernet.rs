//! Ethernet II frames (IEEE 802.3 with an EtherType).
//!
//! No VLAN handling: a tagged frame reports [`EtherType::VLAN`] and its payload starts at the
//! tag, so a caller that does not expect tags drops it as an unknown protocol.

use super::{read, read_u16, write_u16, WireError};

mod field {
    use core::ops::Range;

    pub const DESTINATION: Range<usize> = 0..6;
    pub const SOURCE: Range<usize> = 6..12;
    pub const ETHERTYPE: Range<usize> = 12..14;
    pub const PAYLOAD: usize = ETHERTYPE.end;
}

/// Length of the Ethernet II header (no FCS; the NIC strips it).
pub const HEADER_LEN: usize = field::PAYLOAD;

/// A 48-bit MAC address, in wire order.
pub type MacAddr = [u8; 6];

/// An EtherType (IEEE registry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EtherType(pub u16);

impl EtherType {
    pub const IPV4: Self = Self(0x0800);
    pub const ARP: Self = Self(0x0806);
    /// An IEEE 802.1Q tag follows, then the real EtherType.
    pub const VLAN: Self = Self(0x8100);
    pub const IPV6: Self = Self(0x86dd);
    /// IEEE 802.1ad (Q-in-Q) service tag.
    pub const QINQ: Self = Self(0x88a8);
}

/// A view of an Ethernet II frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Wraps `buffer` without checking it; getters panic if it is shorter than the header.
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps `buffer` after checking that it holds the header.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let frame = Self::new_unchecked(buffer);
        frame.check_len()?;
        Ok(frame)
    }

    /// Checks that the buffer holds the 14-byte header.
    pub fn check_len(&self) -> Result<(), WireError> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn dst_addr(&self) -> MacAddr {
        read(self.buffer.as_ref(), field::DESTINATION)
    }

    pub fn src_addr(&self) -> MacAddr {
        read(self.buffer.as_ref(), field::SOURCE)
    }

    pub fn ethertype(&self) -> EtherType {
        EtherType(read_u16(self.buffer.as_ref(), field::ETHERTYPE))
    }

    /// Everything after the header (including any padding to the 60-byte minimum frame).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    pub fn set_dst_addr(&mut self, addr: MacAddr) {
        self.buffer.as_mut()[field::DESTINATION].copy_from_slice(&addr);
    }

    pub fn set_src_addr(&mut self, addr: MacAddr) {
        self.buffer.as_mut()[field::SOURCE].copy_from_slice(&addr);
    }

    pub fn set_ethertype(&mut self, ethertype: EtherType) {
        write_u16(self.buffer.as_mut(), field::ETHERTYPE, ethertype.0);
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{captured, Ipv4Packet};
    use proptest::prelude::*;

    const DST: MacAddr = [0x02, 0x00, 0x00, 0x00, 0x00, 0x02];
    const SRC: MacAddr = [0x02, 0x00, 0x00, 0x00, 0x00, 0x01];

    fn frame_hex(ethertype: &str, payload: &str) -> Vec<u8> {
        hex::decode(format!("020000000002020000000001{ethertype}{payload}")).unwrap()
    }

    #[test]
    fn known_frame() {
        let bytes = frame_hex("0800", captured::IPV4_UDP);
        let frame = EthernetFrame::new_checked(&bytes[..]).unwrap();
        assert_eq!(frame.dst_addr(), DST);
        assert_eq!(frame.src_addr(), SRC);
        assert_eq!(frame.ethertype(), EtherType::IPV4);
        assert_eq!(frame.payload(), &captured::bytes(captured::IPV4_UDP)[..]);
        assert!(Ipv4Packet::new_checked(frame.payload()).is_ok());
    }

    #[test]
    fn vlan_tag_is_reported_not_parsed() {
        // 802.1Q tag (VID 5) then IPv4.
        let bytes = frame_hex("8100", "00050800");
        let frame = EthernetFrame::new_checked(&bytes[..]).unwrap();
        assert_eq!(frame.ethertype(), EtherType::VLAN);
        assert_eq!(frame.payload(), &[0x00, 0x05, 0x08, 0x00]);
    }

    #[test]
    fn setters_round_trip() {
        let mut bytes = [0u8; HEADER_LEN + 2];
        let mut frame = EthernetFrame::new_unchecked(&mut bytes[..]);
        frame.set_dst_addr(DST);
        frame.set_src_addr(SRC);
        frame.set_ethertype(EtherType::IPV6);
        frame.payload_mut().copy_from_slice(&[0xab, 0xcd]);
        assert_eq!(bytes.to_vec(), frame_hex("86dd", "abcd"));
    }

    #[test]
    fn truncation_table() {
        let bytes = frame_hex("86dd", "");
        for len in 0..HEADER_LEN {
            assert_eq!(
                EthernetFrame::new_checked(&bytes[..len]),
                Err(WireError::Truncated),
                "len {len}"
            );
        }
        let frame = EthernetFrame::new_checked(&bytes[..]).unwrap();
        assert!(frame.payload().is_empty());
    }

    proptest! {
        #[test]
        fn checked_view_never_panics(data in proptest::collection::vec(any::<u8>(), 0..40)) {
            if let Ok(frame) = EthernetFrame::new_checked(&data[..]) {
                let _ = (frame.dst_addr(), frame.src_addr(), frame.ethertype());
                prop_assert_eq!(frame.payload().len(), data.len() - HEADER_LEN);
            } else {
                prop_assert!(data.len() < HEADER_LEN);
            }
        }
    }
}
