/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * What the XDP programs and userspace share. Mirrored by ebpf/src/abi.rs (#[repr(C)]); a
 * Rust test checks the two agree on sizes, offsets and values. Change both together.
 */
#ifndef WGXDP_ABI_H
#define WGXDP_ABI_H

#include <linux/types.h>

/* Index 0 of the `config` array map. Written by the loader, read on every packet. */
struct wgxdp_config {
	__u16 listen_port;   /* WireGuard UDP port, network byte order; 0 = steer nothing */
	__u16 flags;         /* WGXDP_F_* */
	__u16 flow_mtu;      /* offloaded flows' return packets up to this IP length are steered;
	                        0 = none (no flow offload) */
	__u16 reserved;
};

/* One-armed mode: the same interface carries WireGuard and plaintext for peers. */
#define WGXDP_F_ONE_ARMED 1
/*
 * The kernel translates clients' traffic out of the LAN port (the operator NATs towards it):
 * plaintext for peers passes to the kernel too, unless it is an offloaded flow's, so that its
 * connection tracking sees both directions of every LAN flow.
 */
#define WGXDP_F_LAN_VIA_KERNEL 2

/* Keys of the peer-prefix LPM tries (kept in step with every peer's AllowedIPs). */
struct wgxdp_lpm_v4 {
	__u32 prefixlen;
	__u8 addr[4];
};

struct wgxdp_lpm_v6 {
	__u32 prefixlen;
	__u8 addr[16];
};

/*
 * Key of the `flows` hash: an offloaded flow's reply tuple (the internet host to the
 * gateway's translated address), as in the packet's headers (network byte order). An IPv4
 * address fills the first 4 bytes of its field, the rest zero. For ICMP and ICMPv6 echo
 * messages, `sport` is the identifier and `dport` the message type (htons(type)).
 */
struct wgxdp_flow {
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport;
	__u16 dport;
	__u8 proto;
	__u8 family;     /* 4 or 6 */
	__u8 pad[2];
};

/*
 * Verdicts, one per-CPU counter each (`stats` map index). A verdict says what the program
 * decided and why; userspace sums the CPUs.
 */
enum wgxdp_verdict {
	/* WAN program */
	WAN_REDIRECT = 0,        /* data message to our port, sent to the queue's AF_XDP socket */
	WAN_NO_SOCKET,           /* ... but no socket is bound on this queue: passed */
	WAN_PASS_HANDSHAKE,      /* WireGuard types 1-3: for the control process's UDP socket */
	WAN_PASS_NOT_WG,         /* UDP to our port that is no WireGuard message */
	WAN_PASS_SHORT_DATA,     /* type 4 but shorter than header + tag */
	WAN_PASS_OTHER_PORT,     /* UDP to another port */
	WAN_PASS_NOT_UDP,        /* IP but not UDP (or IPv6 extension headers) */
	WAN_PASS_FRAGMENT,       /* IP fragment: only the kernel can reassemble */
	WAN_PASS_NOT_IP,         /* ARP, VLAN and anything else */
	WAN_PASS_MALFORMED,      /* truncated or bad IP header */
	WAN_PASS_UNCONFIGURED,   /* no listen port set yet */
	WAN_PASS_TRANSIT,        /* to our port, but addressed to another host: routed through */
	/* LAN program */
	LAN_REDIRECT,            /* destination is a peer's allowed IP */
	LAN_NO_SOCKET,           /* ... but no socket on this queue: dropped, never routed plain */
	LAN_PASS_LOCAL,          /* addressed to this host */
	LAN_PASS_MULTICAST,      /* broadcast, multicast, link-local */
	LAN_PASS_ND,             /* IPv6 neighbour discovery / router messages */
	LAN_PASS_NO_PEER,        /* no peer owns the destination: the kernel routes it */
	LAN_PASS_NOT_IP,         /* ARP and the rest */
	LAN_PASS_MALFORMED,
	/* WAN and one-armed programs, for packets that are not WireGuard data for us */
	WAN_FLOW_REDIRECT,       /* an offloaded flow's return packet, sent to the AF_XDP socket */
	WAN_FLOW_NO_SOCKET,      /* ... but no socket on this queue: passed (the kernel translates) */
	/* LAN program: an offloaded flow's return packet arriving on a two-armed gateway's LAN */
	LAN_FLOW_REDIRECT,
	LAN_FLOW_NO_SOCKET,
	LAN_PASS_VIA_KERNEL,     /* for a peer, but LAN traffic goes through the kernel (its NAT) */
	WGXDP_VERDICT_MAX,
};

#define WGXDP_MAX_QUEUES 64
#define WGXDP_MAX_PEER_PREFIXES (1 << 20)
#define WGXDP_MAX_LOCAL_ADDRS 256
#define WGXDP_MAX_FLOWS (1 << 17)

#endif
