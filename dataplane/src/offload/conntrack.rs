//! The kernel's connection tracking over netlink (ctnetlink, NETLINK_NETFILTER): its events
//! and dumps read as [`Conn`]s, and the two requests the offload thread sends (a dump, and an
//! update that extends an entry's timeout and makes its TCP window tracking liberal).
//!
//! Messages are netlink headers, a `nfgenmsg`, then attributes (length, type, value padded to
//! four bytes); tuples and protocol info are nested attributes. Values the kernel writes in
//! network byte order (addresses, ports, status, timeout) are read as such. Only what the
//! offload needs is parsed: IPv4 and IPv6 tuples of TCP, UDP and ICMP/ICMPv6 echo (the
//! identifier as the source port and the type as the destination port, as in [`Tuple`]), the
//! status bits, the TCP state.

use super::tuple::{Tuple, ICMP, ICMPV6, TCP, UDP};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The netlink family.
pub const NETLINK_NETFILTER: isize = 12;
/// Multicast groups (`enum nfnetlink_groups`).
pub const GROUP_NEW: u32 = 1;
pub const GROUP_UPDATE: u32 = 2;
pub const GROUP_DESTROY: u32 = 3;

const NFNL_SUBSYS_CTNETLINK: u16 = 1;
const IPCTNL_MSG_CT_NEW: u16 = 0;
const IPCTNL_MSG_CT_GET: u16 = 1;
const IPCTNL_MSG_CT_DELETE: u16 = 2;

const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_CREATE: u16 = 0x400;
const NLM_F_DUMP: u16 = 0x300;
const NLA_TYPE_MASK: u16 = 0x3fff;
const NLA_F_NESTED: u16 = 0x8000;
const AF_UNSPEC: u8 = 0;
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;

const CTA_TUPLE_ORIG: u16 = 1;
const CTA_TUPLE_REPLY: u16 = 2;
const CTA_STATUS: u16 = 3;
const CTA_PROTOINFO: u16 = 4;
const CTA_TIMEOUT: u16 = 7;
const CTA_TUPLE_IP: u16 = 1;
const CTA_TUPLE_PROTO: u16 = 2;
const CTA_IP_V4_SRC: u16 = 1;
const CTA_IP_V4_DST: u16 = 2;
const CTA_IP_V6_SRC: u16 = 3;
const CTA_IP_V6_DST: u16 = 4;
const CTA_PROTO_NUM: u16 = 1;
const CTA_PROTO_SRC_PORT: u16 = 2;
const CTA_PROTO_DST_PORT: u16 = 3;
const CTA_PROTO_ICMP_ID: u16 = 4;
const CTA_PROTO_ICMP_TYPE: u16 = 5;
const CTA_PROTO_ICMP_CODE: u16 = 6;
const CTA_PROTO_ICMPV6_ID: u16 = 7;
const CTA_PROTO_ICMPV6_TYPE: u16 = 8;
const CTA_PROTO_ICMPV6_CODE: u16 = 9;
const CTA_PROTOINFO_TCP: u16 = 1;
const CTA_PROTOINFO_TCP_STATE: u16 = 1;
const CTA_PROTOINFO_TCP_FLAGS_ORIGINAL: u16 = 4;
const CTA_PROTOINFO_TCP_FLAGS_REPLY: u16 = 5;

/// `IPS_SEEN_REPLY`: packets went both ways.
pub const STATUS_SEEN_REPLY: u32 = 1 << 1;
/// `IPS_DYING`: being destroyed.
pub const STATUS_DYING: u32 = 1 << 9;
/// `TCP_CONNTRACK_ESTABLISHED`.
pub const TCP_ESTABLISHED: u8 = 3;
/// `IP_CT_TCP_FLAG_BE_LIBERAL`: accept any sequence number. Set on offloaded flows, as the
/// kernel's own flow offload does: the kernel no longer sees the segments in between, and
/// must not call the flow's FIN or RST out of window (it would then not translate it).
const TCP_FLAG_BE_LIBERAL: u8 = 0x08;

/// What happened to a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Created.
    New,
    /// Changed (status, protocol state), or listed by a dump.
    Update,
    Destroy,
}

/// A connection as an event or a dump describes it (of the protocols [`Tuple`] covers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conn {
    pub kind: Kind,
    /// The first packet's direction (the client's).
    pub orig: Tuple,
    /// The answer's direction, after translation: its destination is the translated source.
    pub reply: Tuple,
    pub status: u32,
    /// The TCP state, where the message carries it (dumps do; events only when it changed).
    pub tcp_state: Option<u8>,
}

/// One netlink attribute: its type (flags cleared) and value.
fn attrs(mut buf: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        let len = usize::from(u16::from_ne_bytes([*buf.first()?, *buf.get(1)?]));
        let kind = u16::from_ne_bytes([*buf.get(2)?, *buf.get(3)?]);
        if len < 4 || len > buf.len() {
            return None;
        }
        let value = &buf[4..len];
        buf = buf.get(align(len)..).unwrap_or(&[]);
        Some((kind & NLA_TYPE_MASK, value))
    })
}

fn align(n: usize) -> usize {
    (n + 3) & !3
}

fn find(buf: &[u8], kind: u16) -> Option<&[u8]> {
    attrs(buf).find(|&(k, _)| k == kind).map(|(_, v)| v)
}

fn be16(v: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes(v.get(..2)?.try_into().ok()?))
}

fn be32(v: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(v.get(..4)?.try_into().ok()?))
}

fn v4(v: &[u8]) -> Option<IpAddr> {
    Some(Ipv4Addr::from(<[u8; 4]>::try_from(v.get(..4)?).ok()?).into())
}

fn v6(v: &[u8]) -> Option<IpAddr> {
    Some(Ipv6Addr::from(<[u8; 16]>::try_from(v.get(..16)?).ok()?).into())
}

/// The attributes that carry an echo flow's identifier, type and code, by protocol.
fn echo_attrs(proto: u8) -> Option<[u16; 3]> {
    match proto {
        ICMP => Some([CTA_PROTO_ICMP_ID, CTA_PROTO_ICMP_TYPE, CTA_PROTO_ICMP_CODE]),
        ICMPV6 => Some([
            CTA_PROTO_ICMPV6_ID,
            CTA_PROTO_ICMPV6_TYPE,
            CTA_PROTO_ICMPV6_CODE,
        ]),
        _ => None,
    }
}

fn tuple(nested: &[u8]) -> Option<Tuple> {
    let ip = find(nested, CTA_TUPLE_IP)?;
    let l4 = find(nested, CTA_TUPLE_PROTO)?;
    let proto = *find(l4, CTA_PROTO_NUM)?.first()?;
    let (src, dst) = match (find(ip, CTA_IP_V4_SRC), find(ip, CTA_IP_V6_SRC)) {
        (Some(s), None) => (v4(s)?, v4(find(ip, CTA_IP_V4_DST)?)?),
        (None, Some(s)) => (v6(s)?, v6(find(ip, CTA_IP_V6_DST)?)?),
        _ => return None,
    };
    let (sport, dport) = match (proto, echo_attrs(proto)) {
        (TCP | UDP, _) => (
            be16(find(l4, CTA_PROTO_SRC_PORT)?)?,
            be16(find(l4, CTA_PROTO_DST_PORT)?)?,
        ),
        // Echo flows of the family's own ICMP; their code is always 0.
        (_, Some([id, kind, code])) if (proto == ICMPV6) == src.is_ipv6() => {
            if *find(l4, code)?.first()? != 0 {
                return None;
            }
            let kind = *find(l4, kind)?.first()?;
            let echo = Tuple {
                proto,
                src,
                dst,
                sport: 0,
                dport: kind.into(),
            };
            // Only echo requests and replies (a timestamp request is tracked too).
            if echo.reversed().dport == echo.dport {
                return None;
            }
            (be16(find(l4, id)?)?, kind.into())
        }
        _ => return None,
    };
    Some(Tuple {
        proto,
        src,
        dst,
        sport,
        dport,
    })
}

/// What one netlink message says: a connection, the end of a dump, an error, or nothing the
/// offload reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message {
    Conn(Conn),
    Done,
    /// An error answer (errno, positive); 0 is an acknowledgement.
    Error(i32),
    Other,
}

/// The messages in one datagram read from the socket.
pub fn messages(mut buf: &[u8]) -> impl Iterator<Item = Message> + '_ {
    std::iter::from_fn(move || {
        let len = u32::from_ne_bytes(buf.get(..4)?.try_into().ok()?) as usize;
        if len < 16 || len > buf.len() {
            return None;
        }
        let (msg, rest) = buf.split_at(len);
        buf = rest.get(align(len) - len..).unwrap_or(&[]);
        Some(message(msg))
    })
}

fn message(msg: &[u8]) -> Message {
    let kind = u16::from_ne_bytes([msg[4], msg[5]]);
    let flags = u16::from_ne_bytes([msg[6], msg[7]]);
    match kind {
        NLMSG_DONE => return Message::Done,
        NLMSG_ERROR => {
            let errno = msg
                .get(16..20)
                .map_or(0, |e| i32::from_ne_bytes(e.try_into().unwrap_or([0; 4])));
            return Message::Error(-errno);
        }
        _ => {}
    }
    if kind >> 8 != NFNL_SUBSYS_CTNETLINK {
        return Message::Other;
    }
    let kind = match kind & 0xff {
        IPCTNL_MSG_CT_NEW if flags & NLM_F_CREATE != 0 => Kind::New,
        // Changes, and a dump's answers (NLM_F_MULTI): the connection as it is now.
        IPCTNL_MSG_CT_NEW => Kind::Update,
        IPCTNL_MSG_CT_DELETE => Kind::Destroy,
        _ => return Message::Other,
    };
    // The netlink header (16 bytes), then the nfgenmsg (4).
    let Some(body) = msg.get(20..) else {
        return Message::Other;
    };
    let conn = (|| {
        Some(Conn {
            kind,
            orig: tuple(find(body, CTA_TUPLE_ORIG)?)?,
            reply: tuple(find(body, CTA_TUPLE_REPLY)?)?,
            status: find(body, CTA_STATUS).and_then(be32).unwrap_or(0),
            tcp_state: find(body, CTA_PROTOINFO)
                .and_then(|p| find(p, CTA_PROTOINFO_TCP))
                .and_then(|t| find(t, CTA_PROTOINFO_TCP_STATE))
                .and_then(|s| s.first().copied()),
        })
    })();
    conn.map_or(Message::Other, Message::Conn)
}

/// Builds one request: header, nfgenmsg, attributes.
struct Request {
    buf: Vec<u8>,
    /// Where each open nested attribute starts.
    open: Vec<usize>,
}

impl Request {
    fn new(msg: u16, flags: u16, seq: u32, family: u8) -> Self {
        let mut buf = Vec::with_capacity(128);
        buf.extend_from_slice(&0u32.to_ne_bytes());
        buf.extend_from_slice(&((NFNL_SUBSYS_CTNETLINK << 8) | msg).to_ne_bytes());
        buf.extend_from_slice(&(NLM_F_REQUEST | flags).to_ne_bytes());
        buf.extend_from_slice(&seq.to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes());
        // nfgenmsg: family (the tuples' for a request that names one), version 0, resource
        // id 0.
        buf.extend_from_slice(&[family, 0, 0, 0]);
        Self {
            buf,
            open: Vec::new(),
        }
    }

    fn attr(&mut self, kind: u16, value: &[u8]) -> &mut Self {
        let len = u16::try_from(4 + value.len()).unwrap_or(u16::MAX);
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(value);
        self.buf.resize(align(self.buf.len()), 0);
        self
    }

    fn begin(&mut self, kind: u16) -> &mut Self {
        self.open.push(self.buf.len());
        self.buf.extend_from_slice(&[0, 0]);
        self.buf
            .extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
        self
    }

    fn end(&mut self) -> &mut Self {
        if let Some(at) = self.open.pop() {
            let len = u16::try_from(self.buf.len() - at).unwrap_or(u16::MAX);
            self.buf[at..at + 2].copy_from_slice(&len.to_ne_bytes());
        }
        self
    }

    fn tuple(&mut self, kind: u16, t: &Tuple) -> &mut Self {
        self.begin(kind).begin(CTA_TUPLE_IP);
        match (t.src, t.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => self
                .attr(CTA_IP_V4_SRC, &s.octets())
                .attr(CTA_IP_V4_DST, &d.octets()),
            (s, d) => self
                .attr(CTA_IP_V6_SRC, &v6_octets(s))
                .attr(CTA_IP_V6_DST, &v6_octets(d)),
        };
        self.end()
            .begin(CTA_TUPLE_PROTO)
            .attr(CTA_PROTO_NUM, &[t.proto]);
        match echo_attrs(t.proto) {
            Some([id, kind, code]) => self
                .attr(id, &t.sport.to_be_bytes())
                .attr(kind, &[t.dport as u8])
                .attr(code, &[0]),
            None => self
                .attr(CTA_PROTO_SRC_PORT, &t.sport.to_be_bytes())
                .attr(CTA_PROTO_DST_PORT, &t.dport.to_be_bytes()),
        };
        self.end().end()
    }

    fn finish(mut self) -> Vec<u8> {
        let len = u32::try_from(self.buf.len()).unwrap_or(u32::MAX);
        self.buf[..4].copy_from_slice(&len.to_ne_bytes());
        self.buf
    }
}

fn v6_octets(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// A request to list every connection, of both families.
pub fn dump_request(seq: u32) -> Vec<u8> {
    Request::new(IPCTNL_MSG_CT_GET, NLM_F_DUMP, seq, AF_UNSPEC).finish()
}

/// A request that sets the timeout of the connection whose original tuple is `orig` to
/// `timeout_s` from now (as a packet through the kernel would have), and for TCP makes its
/// window tracking liberal in both directions.
pub fn refresh_request(orig: &Tuple, timeout_s: u32, seq: u32) -> Vec<u8> {
    let family = if orig.src.is_ipv6() {
        AF_INET6
    } else {
        AF_INET
    };
    let mut r = Request::new(IPCTNL_MSG_CT_NEW, 0, seq, family);
    r.tuple(CTA_TUPLE_ORIG, orig)
        .attr(CTA_TIMEOUT, &timeout_s.to_be_bytes());
    if orig.proto == TCP {
        let liberal = [TCP_FLAG_BE_LIBERAL, TCP_FLAG_BE_LIBERAL];
        r.begin(CTA_PROTOINFO)
            .begin(CTA_PROTOINFO_TCP)
            .attr(CTA_PROTOINFO_TCP_FLAGS_ORIGINAL, &liberal)
            .attr(CTA_PROTOINFO_TCP_FLAGS_REPLY, &liberal)
            .end()
            .end();
    }
    r.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(proto: u8, a: [u8; 4], b: [u8; 4], sp: u16, dp: u16) -> Tuple {
        Tuple {
            proto,
            src: Ipv4Addr::from(a).into(),
            dst: Ipv4Addr::from(b).into(),
            sport: sp,
            dport: dp,
        }
    }

    fn t6(proto: u8, a: u16, b: u16, sp: u16, dp: u16) -> Tuple {
        Tuple {
            proto,
            src: Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, a).into(),
            dst: Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, b).into(),
            sport: sp,
            dport: dp,
        }
    }

    /// An event as the kernel builds one (ctnetlink_conntrack_event: tuples, then status,
    /// timeout, protocol info), with this module's own builder.
    fn event(msg: u16, flags: u16, c: &Conn) -> Vec<u8> {
        let family = if c.orig.src.is_ipv6() {
            AF_INET6
        } else {
            AF_INET
        };
        let mut r = Request::new(msg, flags, 0, family);
        r.tuple(CTA_TUPLE_ORIG, &c.orig)
            .tuple(CTA_TUPLE_REPLY, &c.reply)
            .attr(CTA_STATUS, &c.status.to_be_bytes())
            .attr(CTA_TIMEOUT, &120u32.to_be_bytes());
        if let Some(s) = c.tcp_state {
            r.begin(CTA_PROTOINFO)
                .begin(CTA_PROTOINFO_TCP)
                .attr(CTA_PROTOINFO_TCP_STATE, &[s])
                .attr(CTA_PROTOINFO_TCP_FLAGS_ORIGINAL, &[0, 0])
                .end()
                .end();
        }
        let mut b = r.finish();
        // Events carry no REQUEST flag.
        let f = u16::from_ne_bytes([b[6], b[7]]) & !NLM_F_REQUEST;
        b[6..8].copy_from_slice(&f.to_ne_bytes());
        b
    }

    #[test]
    fn events_and_dump_answers_parse_into_connections() {
        let conn = Conn {
            kind: Kind::New,
            orig: t(TCP, [198, 19, 0, 2], [198, 18, 0, 250], 40000, 443),
            reply: t(TCP, [198, 18, 0, 250], [198, 18, 0, 1], 443, 61000),
            status: STATUS_SEEN_REPLY | (1 << 2) | (1 << 3),
            tcp_state: Some(TCP_ESTABLISHED),
        };
        let mut datagram = event(IPCTNL_MSG_CT_NEW, NLM_F_CREATE, &conn);
        let update = Conn {
            kind: Kind::Update,
            tcp_state: None,
            ..conn
        };
        datagram.extend(event(IPCTNL_MSG_CT_NEW, 0, &update));
        let gone = Conn {
            kind: Kind::Destroy,
            ..conn
        };
        datagram.extend(event(IPCTNL_MSG_CT_DELETE, 0, &gone));
        let udp = Conn {
            kind: Kind::Update,
            orig: t(UDP, [198, 19, 0, 3], [198, 18, 0, 250], 5353, 53),
            reply: t(UDP, [198, 18, 0, 250], [198, 18, 0, 1], 53, 5353),
            status: STATUS_SEEN_REPLY,
            tcp_state: None,
        };
        // A dump's answer: NLM_F_MULTI.
        datagram.extend(event(IPCTNL_MSG_CT_NEW, 0x2, &udp));
        // IPv6 (NAT66), and echo flows of both families: a ping through MASQUERADE whose
        // identifier 7 became 9.
        let tcp6 = Conn {
            kind: Kind::Update,
            orig: t6(TCP, 2, 0xfa, 40000, 443),
            reply: t6(TCP, 0xfa, 1, 443, 61000),
            ..conn
        };
        let ping = Conn {
            orig: t(ICMP, [198, 19, 0, 2], [198, 18, 0, 250], 7, 8),
            reply: t(ICMP, [198, 18, 0, 250], [198, 18, 0, 1], 9, 0),
            tcp_state: None,
            ..udp
        };
        let ping6 = Conn {
            orig: t6(ICMPV6, 2, 0xfa, 7, 128),
            reply: t6(ICMPV6, 0xfa, 1, 7, 129),
            ..ping
        };
        for c in [&tcp6, &ping, &ping6] {
            datagram.extend(event(IPCTNL_MSG_CT_NEW, 0x2, c));
        }
        let got: Vec<_> = messages(&datagram).collect();
        assert_eq!(
            got,
            vec![
                Message::Conn(conn),
                Message::Conn(update),
                Message::Conn(gone),
                Message::Conn(udp),
                Message::Conn(tcp6),
                Message::Conn(ping),
                Message::Conn(ping6),
            ]
        );
    }

    #[test]
    fn other_protocols_truncated_and_foreign_messages_are_not_connections() {
        let gre = Conn {
            kind: Kind::New,
            orig: t(47, [1, 1, 1, 1], [2, 2, 2, 2], 0, 0),
            reply: t(47, [2, 2, 2, 2], [1, 1, 1, 1], 0, 0),
            status: 0,
            tcp_state: None,
        };
        let m = event(IPCTNL_MSG_CT_NEW, NLM_F_CREATE, &gre);
        assert_eq!(messages(&m).collect::<Vec<_>>(), vec![Message::Other]);
        // ICMP that is not echo (a timestamp request and its reply), and ICMPv6 over IPv4.
        let timestamp = Conn {
            orig: t(ICMP, [1, 1, 1, 1], [2, 2, 2, 2], 5, 13),
            reply: t(ICMP, [2, 2, 2, 2], [1, 1, 1, 1], 5, 14),
            ..gre
        };
        let m = event(IPCTNL_MSG_CT_NEW, NLM_F_CREATE, &timestamp);
        assert_eq!(messages(&m).collect::<Vec<_>>(), vec![Message::Other]);
        let mixed = Conn {
            orig: t(ICMPV6, [1, 1, 1, 1], [2, 2, 2, 2], 5, 128),
            reply: t(ICMPV6, [2, 2, 2, 2], [1, 1, 1, 1], 5, 129),
            ..gre
        };
        let m = event(IPCTNL_MSG_CT_NEW, NLM_F_CREATE, &mixed);
        assert_eq!(messages(&m).collect::<Vec<_>>(), vec![Message::Other]);
        let icmp = gre;
        let tcp = Conn {
            orig: t(TCP, [1, 1, 1, 1], [2, 2, 2, 2], 1, 2),
            reply: t(TCP, [2, 2, 2, 2], [1, 1, 1, 1], 2, 1),
            ..icmp
        };
        let whole = event(IPCTNL_MSG_CT_NEW, NLM_F_CREATE, &tcp);
        // Cut anywhere: never a panic, never a connection with made-up fields.
        for cut in 0..whole.len() {
            for m in messages(&whole[..cut]) {
                assert!(!matches!(m, Message::Conn(_)), "cut at {cut}: {m:?}");
            }
        }
        // An error answer, and the end of a dump.
        let mut err = vec![0u8; 36];
        err[..4].copy_from_slice(&36u32.to_ne_bytes());
        err[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
        err[16..20].copy_from_slice(&(-2i32).to_ne_bytes());
        let mut done = vec![0u8; 20];
        done[..4].copy_from_slice(&20u32.to_ne_bytes());
        done[4..6].copy_from_slice(&NLMSG_DONE.to_ne_bytes());
        err.extend(done);
        assert_eq!(
            messages(&err).collect::<Vec<_>>(),
            vec![Message::Error(2), Message::Done]
        );
    }

    proptest::proptest! {
        /// Whatever a datagram holds, reading it ends without a panic.
        #[test]
        fn any_bytes_are_read_without_a_panic(b in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            for m in messages(&b) {
                let _ = m;
            }
        }
    }

    #[test]
    fn a_refresh_names_the_original_tuple_and_makes_tcp_liberal() {
        let orig = t(TCP, [198, 19, 0, 2], [198, 18, 0, 250], 40000, 443);
        let m = refresh_request(&orig, 300, 7);
        assert_eq!(
            u32::from_ne_bytes(m[..4].try_into().unwrap()) as usize,
            m.len()
        );
        assert_eq!(u16::from_ne_bytes([m[4], m[5]]), 0x100);
        let body = &m[20..];
        assert_eq!(tuple(find(body, CTA_TUPLE_ORIG).unwrap()), Some(orig));
        assert_eq!(find(body, CTA_TIMEOUT).and_then(be32), Some(300));
        let tcp = find(find(body, CTA_PROTOINFO).unwrap(), CTA_PROTOINFO_TCP).unwrap();
        assert_eq!(
            find(tcp, CTA_PROTOINFO_TCP_FLAGS_ORIGINAL),
            Some(&[8u8, 8][..])
        );
        assert_eq!(
            find(tcp, CTA_PROTOINFO_TCP_FLAGS_REPLY),
            Some(&[8u8, 8][..])
        );
        let udp = refresh_request(&Tuple { proto: UDP, ..orig }, 120, 8);
        assert!(find(&udp[20..], CTA_PROTOINFO).is_none());
        assert_eq!(udp[16], AF_INET);
        // IPv6: the family names the tuple's; echo: identifier, type and code.
        let ping6 = t6(ICMPV6, 2, 0xfa, 7, 128);
        let m = refresh_request(&ping6, 30, 9);
        assert_eq!(m[16], AF_INET6);
        let body = &m[20..];
        assert_eq!(tuple(find(body, CTA_TUPLE_ORIG).unwrap()), Some(ping6));
        let l4 = find(find(body, CTA_TUPLE_ORIG).unwrap(), CTA_TUPLE_PROTO).unwrap();
        assert_eq!(find(l4, CTA_PROTO_ICMPV6_ID), Some(&7u16.to_be_bytes()[..]));
        assert_eq!(find(l4, CTA_PROTO_ICMPV6_TYPE), Some(&[128u8][..]));
        assert_eq!(find(l4, CTA_PROTO_ICMPV6_CODE), Some(&[0u8][..]));
        assert!(find(l4, CTA_PROTO_SRC_PORT).is_none());
        // The dump lists both families.
        let d = dump_request(9);
        assert_eq!(d[16], AF_UNSPEC);
        assert_eq!(u16::from_ne_bytes([d[4], d[5]]), 0x101);
        assert_eq!(u16::from_ne_bytes([d[6], d[7]]), NLM_F_REQUEST | NLM_F_DUMP);
    }
}
