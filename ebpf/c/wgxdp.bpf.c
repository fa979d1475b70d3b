// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * wgxdp's XDP programs. They only steer: the work happens in the AF_XDP workers.
 *
 *  wan_steer     WireGuard data messages (type 4) to our listen port, IPv4 or IPv6 outer,
 *                go to the AF_XDP socket of the receive queue. Everything else passes to the
 *                kernel: handshakes (types 1-3) reach the control process's UDP socket.
 *  lan_steer     IP packets whose destination is some peer's allowed IP, and not this host,
 *                go to the LAN-side AF_XDP socket. ARP, ND, multicast and host traffic pass.
 *  onearm_steer  Both decisions on one interface (cloud egress nodes).
 *
 * A packet that is neither WireGuard data for us nor for a peer may be the return traffic of a
 * flow the data path carries itself (flow offload, docs/egress.md): its tuple is in `flows`,
 * and it goes to the AF_XDP socket of the port it arrived on.
 *
 * Each decision increments one per-CPU counter (`stats`, enum wgxdp_verdict in abi.h).
 * Parsing is deliberately conservative: anything unusual passes to the kernel, which
 * handles it correctly if slowly.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "abi.h"

/* Echo message types (linux/icmp.h and icmpv6.h pull in libc headers a BPF target lacks). */
#define ICMP_ECHOREPLY 0
#define ICMP_ECHO 8
#define ICMPV6_ECHO_REQUEST 128
#define ICMPV6_ECHO_REPLY 129

char LICENSE[] SEC("license") = "Dual MIT/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct wgxdp_config);
	__uint(max_entries, 1);
} config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, WGXDP_VERDICT_MAX);
} stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, WGXDP_MAX_QUEUES);
} xsks_wan SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, WGXDP_MAX_QUEUES);
} xsks_lan SEC(".maps");

/* All peers' allowed IPs; the value is the peer's id (informational here). */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct wgxdp_lpm_v4);
	__type(value, __u32);
	__uint(max_entries, WGXDP_MAX_PEER_PREFIXES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} peer_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct wgxdp_lpm_v6);
	__type(value, __u32);
	__uint(max_entries, WGXDP_MAX_PEER_PREFIXES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} peer_v6 SEC(".maps");

/*
 * This host's own addresses (every interface's, kept in step by the loader): LAN traffic to
 * them is never steered, and WireGuard data is steered only if addressed to one of them.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, __u8);
	__uint(max_entries, WGXDP_MAX_LOCAL_ADDRS);
} local_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct in6_addr);
	__type(value, __u8);
	__uint(max_entries, WGXDP_MAX_LOCAL_ADDRS);
} local_v6 SEC(".maps");

/* Offloaded flows' reply tuples, kept by the data path's offload thread. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct wgxdp_flow);
	__type(value, __u8);
	__uint(max_entries, WGXDP_MAX_FLOWS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} flows SEC(".maps");

static __always_inline int count(enum wgxdp_verdict v, int action)
{
	__u32 key = v;
	__u64 *c = bpf_map_lookup_elem(&stats, &key);

	if (c)
		*c += 1;
	return action;
}

static __always_inline int redirect(void *xsks, struct xdp_md *ctx,
				    enum wgxdp_verdict ok, enum wgxdp_verdict no_socket,
				    int fallback)
{
	/*
	 * `fallback` when no socket is bound on this queue: ciphertext may pass to the kernel
	 * (it reaches nothing that opens it), plaintext for a peer must not (the kernel would
	 * route it unencrypted).
	 */
	int action = bpf_redirect_map(xsks, ctx->rx_queue_index, fallback);

	return count(action == XDP_REDIRECT ? ok : no_socket, action);
}

/*
 * Where the UDP header starts (not yet bounds-checked), or a verdict saying why there is none;
 * and whether the packet is addressed to this host (not passing through it).
 */
struct l4 {
	struct udphdr *udp;
	enum wgxdp_verdict why;
	int local;
};

static __always_inline struct l4 find_udp(void *l3, void *end, __u16 proto)
{
	struct l4 r = { 0, WAN_PASS_NOT_IP, 0 };

	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = l3;
		__u32 ihl;

		if ((void *)(ip + 1) > end) {
			r.why = WAN_PASS_MALFORMED;
			return r;
		}
		ihl = ip->ihl * 4;
		if (ip->version != 4 || ihl < sizeof(*ip) || l3 + ihl > end) {
			r.why = WAN_PASS_MALFORMED;
			return r;
		}
		if (ip->protocol != IPPROTO_UDP) {
			r.why = WAN_PASS_NOT_UDP;
			return r;
		}
		/* More-fragments set or a non-zero offset. */
		if (ip->frag_off & bpf_htons(0x3fff)) {
			r.why = WAN_PASS_FRAGMENT;
			return r;
		}
		r.udp = l3 + ihl;
		{
			__u32 dst = ip->daddr;

			r.local = bpf_map_lookup_elem(&local_v4, &dst) != 0;
		}
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = l3;

		if ((void *)(ip6 + 1) > end || ip6->version != 6) {
			r.why = WAN_PASS_MALFORMED;
			return r;
		}
		if (ip6->nexthdr == IPPROTO_FRAGMENT) {
			r.why = WAN_PASS_FRAGMENT;
			return r;
		}
		/* Extension headers are legal but rare on WireGuard traffic: the kernel takes them. */
		if (ip6->nexthdr != IPPROTO_UDP) {
			r.why = WAN_PASS_NOT_UDP;
			return r;
		}
		r.udp = (void *)(ip6 + 1);
		{
			struct in6_addr dst = ip6->daddr;

			r.local = bpf_map_lookup_elem(&local_v6, &dst) != 0;
		}
	}
	/* The caller checks the UDP header's bounds where it reads it: the verifier tracks a
	 * bounds check only on the register that is later dereferenced. */
	return r;
}

/*
 * The WAN decision. With *done set, returns the XDP action (counted). With *done clear, the
 * packet is not WireGuard data for us and the return value is the verdict that explains why,
 * not yet counted: the one-armed program goes on to judge it as LAN traffic instead.
 */
static __always_inline int wan_decide(struct xdp_md *ctx, int *done)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct wgxdp_config *cfg;
	__u32 zero = 0;
	struct l4 l4;
	__u8 *wg;

	*done = 1;
	if ((void *)(eth + 1) > end)
		return count(WAN_PASS_MALFORMED, XDP_PASS);
	cfg = bpf_map_lookup_elem(&config, &zero);
	if (!cfg || !cfg->listen_port)
		return count(WAN_PASS_UNCONFIGURED, XDP_PASS);
	l4 = find_udp(eth + 1, end, eth->h_proto);
	if (!l4.udp) {
		*done = 0;
		return l4.why;
	}
	if ((void *)(l4.udp + 1) > end)
		return count(WAN_PASS_MALFORMED, XDP_PASS);
	if (l4.udp->dest != cfg->listen_port) {
		*done = 0;
		return WAN_PASS_OTHER_PORT;
	}
	/* To our port but for another host (routed through this one): not ours to take. */
	if (!l4.local)
		return count(WAN_PASS_TRANSIT, XDP_PASS);
	wg = (__u8 *)(l4.udp + 1);
	if ((void *)(wg + 4) > end)
		return count(WAN_PASS_NOT_WG, XDP_PASS);
	/* The 32-bit header word: type, then three reserved zero bytes. */
	if (wg[1] | wg[2] | wg[3])
		return count(WAN_PASS_NOT_WG, XDP_PASS);
	if (wg[0] >= 1 && wg[0] <= 3)
		return count(WAN_PASS_HANDSHAKE, XDP_PASS);
	if (wg[0] != 4)
		return count(WAN_PASS_NOT_WG, XDP_PASS);
	/* 16-byte header and a 16-byte tag at least (a keepalive). */
	if ((void *)(wg + 32) > end)
		return count(WAN_PASS_SHORT_DATA, XDP_PASS);
	return redirect(&xsks_wan, ctx, WAN_REDIRECT, WAN_NO_SOCKET, XDP_PASS);
}

/*
 * The ports of an offloaded flow's L4 header at `l4` (protocol `proto`), into `key`; 0 if the
 * packet is not one a flow's fast path carries. TCP SYN, FIN and RST are not (connection
 * tracking's state machine opens and closes the flow with them), and of ICMP only echo
 * requests and replies are: errors quote a packet whose headers only the kernel translates.
 * An echo message's identifier is its "source port" and its type its "destination port".
 */
static __always_inline int flow_ports(struct wgxdp_flow *key, __u8 *l4, void *end, __u8 proto)
{
	if ((void *)(l4 + 8) > end)
		return 0;
	if (proto == IPPROTO_TCP) {
		/* The flags byte; SYN 0x02, FIN 0x01, RST 0x04. */
		if ((void *)(l4 + 14) > end || (l4[13] & 0x07))
			return 0;
	} else if (proto == IPPROTO_ICMP || proto == IPPROTO_ICMPV6) {
		if (l4[1] != 0)
			return 0;
		if (proto == IPPROTO_ICMP ? (l4[0] != ICMP_ECHOREPLY && l4[0] != ICMP_ECHO)
					  : (l4[0] != ICMPV6_ECHO_REQUEST && l4[0] != ICMPV6_ECHO_REPLY))
			return 0;
		__builtin_memcpy(&key->sport, l4 + 4, 2);
		key->dport = bpf_htons(l4[0]);
		return 1;
	} else if (proto != IPPROTO_UDP) {
		return 0;
	}
	__builtin_memcpy(&key->sport, l4, 2);
	__builtin_memcpy(&key->dport, l4 + 2, 2);
	return 1;
}

/*
 * An offloaded flow's return packet (an IPv4 or IPv6 packet whose tuple is in `flows`) goes
 * to the queue's socket in `xsks`; returns the counted action, or -1 for any other packet.
 * What the kernel's connection tracking must see passes: fragments (only it reassembles),
 * IPv6 extension headers, the TCP flags and ICMP messages `flow_ports` refuses, and packets
 * longer than the tunnel's MTU (it fragments them or reports the MTU, as for kernel
 * WireGuard's traffic).
 */
static __always_inline int flow_return(struct xdp_md *ctx, void *xsks, enum wgxdp_verdict ok,
				       enum wgxdp_verdict no_socket)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct wgxdp_flow key = {};
	struct wgxdp_config *cfg;
	__u32 zero = 0;

	cfg = bpf_map_lookup_elem(&config, &zero);
	if (!cfg || !cfg->flow_mtu)
		return -1;
	if ((void *)(eth + 1) > end)
		return -1;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);

		if ((void *)(ip + 1) > end || ip->version != 4 || ip->ihl < 5)
			return -1;
		if ((ip->frag_off & bpf_htons(0x3fff)) || bpf_ntohs(ip->tot_len) > cfg->flow_mtu)
			return -1;
		if (!flow_ports(&key, (__u8 *)ip + ip->ihl * 4, end, ip->protocol) ||
		    ip->protocol == IPPROTO_ICMPV6)
			return -1;
		__builtin_memcpy(key.saddr, &ip->saddr, 4);
		__builtin_memcpy(key.daddr, &ip->daddr, 4);
		key.proto = ip->protocol;
		key.family = 4;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > end || ip6->version != 6)
			return -1;
		if (bpf_ntohs(ip6->payload_len) + sizeof(*ip6) > cfg->flow_mtu)
			return -1;
		if (!flow_ports(&key, (__u8 *)(ip6 + 1), end, ip6->nexthdr) ||
		    ip6->nexthdr == IPPROTO_ICMP)
			return -1;
		__builtin_memcpy(key.saddr, &ip6->saddr, 16);
		__builtin_memcpy(key.daddr, &ip6->daddr, 16);
		key.proto = ip6->nexthdr;
		key.family = 6;
	} else {
		return -1;
	}
	if (!bpf_map_lookup_elem(&flows, &key))
		return -1;
	return redirect(xsks, ctx, ok, no_socket, XDP_PASS);
}

SEC("xdp")
int wan_steer(struct xdp_md *ctx)
{
	int done;
	int r = wan_decide(ctx, &done);
	int f;

	if (done)
		return r;
	f = flow_return(ctx, &xsks_wan, WAN_FLOW_REDIRECT, WAN_FLOW_NO_SOCKET);
	return f >= 0 ? f : count(r, XDP_PASS);
}

static __always_inline int is_local_v6(struct in6_addr *a)
{
	return bpf_map_lookup_elem(&local_v6, a) != 0;
}

/*
 * What the LAN program would pass to the kernel (addressed to this host, or to no peer) may be
 * an offloaded flow's return packet arriving on a two-armed gateway's LAN port: with `flows`,
 * it goes to the LAN socket instead. The peers' traffic, the common case, is not looked up.
 */
static __always_inline int lan_pass(struct xdp_md *ctx, int flows, enum wgxdp_verdict why)
{
	int f = flows ? flow_return(ctx, &xsks_lan, LAN_FLOW_REDIRECT, LAN_FLOW_NO_SOCKET) : -1;

	return f >= 0 ? f : count(why, XDP_PASS);
}

/*
 * Plaintext for a peer: to the LAN socket, unless the kernel translates LAN traffic
 * (WGXDP_F_LAN_VIA_KERNEL): then it passes to the kernel, which routes it into the gateway's
 * own interface, unless it is an offloaded flow's.
 */
static __always_inline int lan_to_peer(struct xdp_md *ctx, int flows)
{
	struct wgxdp_config *cfg;
	__u32 zero = 0;

	cfg = bpf_map_lookup_elem(&config, &zero);
	if (cfg && (cfg->flags & WGXDP_F_LAN_VIA_KERNEL))
		return lan_pass(ctx, flows, LAN_PASS_VIA_KERNEL);
	return redirect(&xsks_lan, ctx, LAN_REDIRECT, LAN_NO_SOCKET, XDP_DROP);
}

static __always_inline int lan_decide(struct xdp_md *ctx, int flows)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > end)
		return count(LAN_PASS_MALFORMED, XDP_PASS);

	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);
		struct wgxdp_lpm_v4 key = { .prefixlen = 32 };
		__u32 dst;

		if ((void *)(ip + 1) > end || ip->version != 4)
			return count(LAN_PASS_MALFORMED, XDP_PASS);
		dst = ip->daddr;
		/* 224.0.0.0/4 multicast and the limited broadcast. */
		if ((bpf_ntohl(dst) >> 28) == 0xe || dst == 0xffffffff)
			return count(LAN_PASS_MULTICAST, XDP_PASS);
		if (bpf_map_lookup_elem(&local_v4, &dst))
			return lan_pass(ctx, flows, LAN_PASS_LOCAL);
		__builtin_memcpy(key.addr, &dst, 4);
		if (!bpf_map_lookup_elem(&peer_v4, &key))
			return lan_pass(ctx, flows, LAN_PASS_NO_PEER);
		return lan_to_peer(ctx, flows);
	}
	if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		struct wgxdp_lpm_v6 key = { .prefixlen = 128 };
		__u8 *d;

		if ((void *)(ip6 + 1) > end || ip6->version != 6)
			return count(LAN_PASS_MALFORMED, XDP_PASS);
		d = ip6->daddr.in6_u.u6_addr8;
		/* ff00::/8 multicast (all ND solicitations) and fe80::/10 link-local. */
		if (d[0] == 0xff || (d[0] == 0xfe && (d[1] & 0xc0) == 0x80))
			return count(LAN_PASS_MULTICAST, XDP_PASS);
		/* Unicast ND (solicitations to a cached address, redirects): the kernel's. */
		if (ip6->nexthdr == 58) {
			__u8 *icmp = (void *)(ip6 + 1);

			if ((void *)(icmp + 1) > end)
				return count(LAN_PASS_MALFORMED, XDP_PASS);
			if (icmp[0] >= 133 && icmp[0] <= 137)
				return count(LAN_PASS_ND, XDP_PASS);
		}
		if (is_local_v6(&ip6->daddr))
			return lan_pass(ctx, flows, LAN_PASS_LOCAL);
		__builtin_memcpy(key.addr, d, 16);
		if (!bpf_map_lookup_elem(&peer_v6, &key))
			return lan_pass(ctx, flows, LAN_PASS_NO_PEER);
		return lan_to_peer(ctx, flows);
	}
	return count(LAN_PASS_NOT_IP, XDP_PASS);
}

SEC("xdp")
int lan_steer(struct xdp_md *ctx)
{
	return lan_decide(ctx, 1);
}

/*
 * One interface for both: WireGuard data to our port goes to the socket first; any other
 * packet is judged as LAN traffic. The loader puts the queue's one socket in both maps, and
 * the worker tells the two kinds apart by the same test.
 */
SEC("xdp")
int onearm_steer(struct xdp_md *ctx)
{
	int done;
	int r = wan_decide(ctx, &done);
	int f;

	if (done)
		return r;
	f = flow_return(ctx, &xsks_wan, WAN_FLOW_REDIRECT, WAN_FLOW_NO_SOCKET);
	if (f >= 0)
		return f;
	return lan_decide(ctx, 0);
}

/*
 * Not the gateway's: the benchmarks' sink (bench/gateway). It drops UDP at the driver, so
 * that the sink's own network stack does not run on the sender's CPU (veth delivers in the
 * sender's context) and get billed to the gateway under test; veth still counts every frame
 * in its received packets. Everything else passes: the gateway under test must still
 * resolve the sink's address (ARP, ND).
 */
SEC("xdp")
int sink_drop(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > end)
		return XDP_PASS;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);

		if ((void *)(ip + 1) <= end && ip->protocol == IPPROTO_UDP)
			return XDP_DROP;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) <= end && ip6->nexthdr == IPPROTO_UDP)
			return XDP_DROP;
	}
	return XDP_PASS;
}
