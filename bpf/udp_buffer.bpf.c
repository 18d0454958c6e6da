// SPDX-License-Identifier: GPL-2.0
/* udp_buffer tuner: reports UDP datagrams dropped at a full socket receive queue (-ENOMEM:
 * sk_rcvbuf reached, drives rmem_default/rmem_max) and for lack of UDP memory (-ENOBUFS or a UDP
 * socket exceeding udp_mem, drives udp_mem), rate-limited per (netns, kind). Userspace re-reads
 * the live sysctls and decides. Hooks fire on drops only, but a flood drops every datagram: the
 * rate limiter's per-CPU fast path answers most of them (bpfpilot_rl_percpu.bpf.h).
 * Sockets whose application set SO_RCVBUF are skipped in the kernel: they chose their size. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "bpfpilot_common.bpf.h"
#include "bpfpilot_rl_percpu.bpf.h"
#include "bpfpilot_sock.bpf.h"

char LICENSE[] SEC("license") = "GPL";

#define BPFP_IPPROTO_UDP 17
#define BPFP_ENOMEM 12
#define BPFP_ENOBUFS 105
#define BPFP_SK_MEM_RECV 1

enum ub_kind {
	UB_RCVQ_FULL = 1,
	UB_MEM_PRESSURE = 2,
};

union ub_payload {
	struct {		/* UB_RCVQ_FULL */
		__u64 rcvbuf;	/* sk_rcvbuf */
		__u64 rmem_alloc; /* bytes queued */
		__u64 userlocks;
		__u64 err;	/* ENOMEM: receive buffer full; ENOBUFS: UDP memory */
	} rcvq;
	struct {		/* UB_MEM_PRESSURE */
		__u64 allocated; /* pages */
		__u64 udp_mem[3];
	} mem;
};

struct ub_params {
	__u64 reserved;		/* none yet: decisions are taken in userspace */
};

BPFP_CONTRACT(udp_buffer, 5, enum ub_kind, union ub_payload, struct ub_params)

static __always_inline void emit_mem(__u64 netns, long allocated, long mem0, long mem1, long mem2)
{
	struct bpfp_event *e;
	__u32 n = bpfp_rate_limit_percpu(0, UB_MEM_PRESSURE); /* udp_mem is global: one key */

	if (!n)
		return;
	e = bpfp_event_reserve(BPFP_TUNER_ID, UB_MEM_PRESSURE, netns, n, 0, UB_MEM_PRESSURE);
	if (!e)
		return;
	bpfp_payload(e)->mem.allocated = allocated;
	bpfp_payload(e)->mem.udp_mem[0] = mem0;
	bpfp_payload(e)->mem.udp_mem[1] = mem1;
	bpfp_payload(e)->mem.udp_mem[2] = mem2;
	bpfp_event_submit(e);
}

/* UDP's allocated pages and udp_mem, through the socket's protocol. */
static __always_inline void check_mem(struct sock *sk, __u64 netns)
{
	struct proto *prot = BPF_CORE_READ(sk, __sk_common.skc_prot);
	atomic_long_t *alloc = BPF_CORE_READ(prot, memory_allocated);
	long *sysctl_mem = BPF_CORE_READ(prot, sysctl_mem);
	long allocated = 0, mem[3] = {};

	if (!alloc || !sysctl_mem)
		return;
	if (bpf_probe_read_kernel(&allocated, sizeof(allocated), &alloc->counter) ||
	    bpf_probe_read_kernel(mem, sizeof(mem), sysctl_mem))
		return;
	emit_mem(netns, allocated, mem[0], mem[1], mem[2]);
}

/* A datagram could not be queued to sk: rc is -ENOMEM (receive buffer full) or -ENOBUFS (UDP
 * memory exhausted). Under a flood this runs per datagram: `btf` (typed pointers: tp_btf) reads
 * fields with plain loads, and the socket's own fields come before its namespace's. */
static __always_inline void queue_failed(struct sock *sk, int rc, int btf)
{
	struct bpfp_event *e;
	struct net *net;
	__u64 netns;
	__u32 locks, n;

	if (!sk || (rc != -BPFP_ENOMEM && rc != -BPFP_ENOBUFS))
		return;
	bpfp_stat_add(BPFP_STAT_HITS, 1);
	if (rc == -BPFP_ENOBUFS) {
		check_mem(sk, bpfp_net_inum(bpfp_sk_net(sk)));
		return;
	}
	locks = btf ? bpfp_sk_userlocks_typed(sk) : bpfp_sk_userlocks(sk);
	if (locks & BPFP_SOCK_RCVBUF_LOCK) {
		bpfp_stat_add(BPFP_STAT_SKIPPED, 1);
		return;
	}
	net = RD(btf, sk, __sk_common.skc_net.net);
	netns = RD(btf, net, ns.inum);
	n = bpfp_rate_limit_percpu(netns, UB_RCVQ_FULL);
	if (!n)
		return;
	e = bpfp_event_reserve(BPFP_TUNER_ID, UB_RCVQ_FULL, netns, n, netns, UB_RCVQ_FULL);
	if (!e)
		return;
	bpfp_payload(e)->rcvq.rcvbuf = RD(btf, sk, sk_rcvbuf);
	bpfp_payload(e)->rcvq.rmem_alloc = RD(btf, sk, sk_backlog.rmem_alloc.counter);
	bpfp_payload(e)->rcvq.userlocks = locks;
	bpfp_payload(e)->rcvq.err = -rc;
	bpfp_event_submit(e);
}

/* --- receive queue full: udp_fail_queue_rcv_skb (IPv6 too from 6.4 on) --- */

SEC("tp_btf/udp_fail_queue_rcv_skb")
int BPF_PROG(bpfp_ub_rcv_btf, int rc, struct sock *sk)
{
	queue_failed(sk, rc, 1);
	return 0;
}

/* Same tracepoint for kernels or modes without tp_btf (bpftune's legacy raw_tracepoint). */
SEC("raw_tp/udp_fail_queue_rcv_skb")
int BPF_PROG(bpfp_ub_rcv_raw, int rc, struct sock *sk)
{
	queue_failed(sk, rc, 0);
	return 0;
}

/* Drops with reason SOCKET_RCVBUFF / PROTO_MEM and the receiving socket (rx_sk, 6.11+; the
 * verifier rejects the fourth argument on older kernels, so this flavour then fails to load). */
SEC("tp_btf/kfree_skb")
int BPF_PROG(bpfp_ub_rcv_drop, struct sk_buff *skb, void *location, enum skb_drop_reason reason,
	     struct sock *rx_sk)
{
	if (reason == bpf_core_enum_value(enum skb_drop_reason, SKB_DROP_REASON_SOCKET_RCVBUFF)) {
		if (rx_sk && bpfp_sk_protocol(rx_sk) == BPFP_IPPROTO_UDP)
			queue_failed(rx_sk, -BPFP_ENOMEM, 1);
	} else if (reason == bpf_core_enum_value(enum skb_drop_reason, SKB_DROP_REASON_PROTO_MEM)) {
		if (rx_sk && bpfp_sk_protocol(rx_sk) == BPFP_IPPROTO_UDP)
			queue_failed(rx_sk, -BPFP_ENOBUFS, 1);
	}
	return 0;
}

/* --- UDP memory: a UDP socket's receive allocation exceeded udp_mem --- */

SEC("tp_btf/sock_exceed_buf_limit")
int BPF_PROG(bpfp_ub_mem_btf, struct sock *sk, struct proto *prot, long allocated, int kind)
{
	if (!sk || kind != BPFP_SK_MEM_RECV || bpfp_sk_protocol(sk) != BPFP_IPPROTO_UDP)
		return 0;
	bpfp_stat_add(BPFP_STAT_HITS, 1);
	check_mem(sk, bpfp_net_inum(bpfp_sk_net(sk)));
	return 0;
}

SEC("tp/sock/sock_exceed_buf_limit")
int bpfp_ub_mem_tp(struct trace_event_raw_sock_exceed_buf_limit *ctx)
{
	char name[4];

	/* No socket pointer in this record: the protocol name and the limits it carries. */
	BPF_CORE_READ_STR_INTO(&name, ctx, name);
	if (name[0] != 'U' || name[1] != 'D' || name[2] != 'P' || name[3] != 0)
		return 0;
	if (bpf_core_field_exists(ctx->kind) && BPF_CORE_READ(ctx, kind) != BPFP_SK_MEM_RECV)
		return 0;
	bpfp_stat_add(BPFP_STAT_HITS, 1);
	emit_mem(0, BPF_CORE_READ(ctx, allocated), BPF_CORE_READ(ctx, sysctl_mem[0]),
		 BPF_CORE_READ(ctx, sysctl_mem[1]), BPF_CORE_READ(ctx, sysctl_mem[2]));
	return 0;
}
