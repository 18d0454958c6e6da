// SPDX-License-Identifier: GPL-2.0
/* tcp_buffer tuner: notices sockets whose buffers approach the namespace's tcp_rmem/tcp_wmem max
 * and TCP memory approaching tcp_mem, and tells userspace (rate-limited per netns and kind),
 * which re-reads the live sysctls and decides. Each hook exists in four flavours, tried in the
 * order src/tuners/tcp_buffer.ts declares: tp_btf, classic tracepoint, fentry, kprobe; only
 * the flavour the probe chose is loaded. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "bpfpilot_common.bpf.h"
#include "bpfpilot_sock.bpf.h"

char LICENSE[] SEC("license") = "GPL";

enum tb_kind {
	TB_RMEM_NEAR_MAX = 1,
	TB_WMEM_NEAR_MAX = 2,
	TB_MEM_PRESSURE = 3,
	TB_MEM_EXHAUSTION = 4,
	TB_MEM_EXCEEDED = 5,
};

union tb_payload {
	struct {		/* TB_RMEM_NEAR_MAX, TB_WMEM_NEAR_MAX */
		__u64 buf;	/* sk_rcvbuf / sk_sndbuf */
		__u64 limit;	/* tcp_rmem[2] / tcp_wmem[2] */
		__u64 srtt_us;
		__u64 userlocks;
	} buffer;
	struct {		/* TB_MEM_* */
		__u64 allocated; /* pages (4 KiB quanta before 5.16) */
		__u64 tcp_mem[3];
	} mem;
};

struct tb_params {
	__u64 lr_shift;		/* act within limit >> shift of the limit; 2..6 */
};

BPFP_CONTRACT(tcp_buffer, 2, enum tb_kind, union tb_payload, struct tb_params)

/* params.lr_shift: learning-rate shift (act within limit >> shift of the limit; 2..6). */
static __always_inline int nearly_full(long val, long limit, __u64 shift)
{
	if (shift < 2 || shift > 6)
		shift = 2;
	return limit > 0 && val >= limit - (limit >> shift);
}

static __always_inline __u64 lr_shift(void)
{
	struct bpfp_config *cfg = bpfp_cfg();
	return cfg ? bpfp_params(cfg)->lr_shift : 2;
}

/* tcp_mem (pages) and pages allocated, from the protocol the socket uses. */
static __always_inline int read_mem(struct sock *sk, long *allocated, long mem[3])
{
	struct proto *prot = BPF_CORE_READ(sk, __sk_common.skc_prot);
	atomic_long_t *alloc = BPF_CORE_READ(prot, memory_allocated);
	long *sysctl_mem = BPF_CORE_READ(prot, sysctl_mem);

	if (!alloc || !sysctl_mem)
		return -1;
	if (bpf_probe_read_kernel(allocated, sizeof(*allocated), &alloc->counter))
		return -1;
	if (bpf_probe_read_kernel(mem, 3 * sizeof(long), sysctl_mem))
		return -1;
	return 0;
}

static __always_inline void emit_mem(__u16 kind, __u64 netns, long allocated, long mem[3])
{
	struct bpfp_event *e;
	__u32 n = bpfp_rate_limit(0, kind); /* tcp_mem is global: one key for all namespaces */

	if (!n)
		return;
	e = bpfp_event_reserve(BPFP_TUNER_ID, kind, netns, n);
	if (!e)
		return;
	bpfp_payload(e)->mem.allocated = allocated;
	bpfp_payload(e)->mem.tcp_mem[0] = mem[0];
	bpfp_payload(e)->mem.tcp_mem[1] = mem[1];
	bpfp_payload(e)->mem.tcp_mem[2] = mem[2];
	bpfp_event_submit(e);
}

/* bpftune's tcp_nearly_out_of_memory: exhaustion first, then pressure. */
static __always_inline int check_mem(struct sock *sk, __u64 netns, int force)
{
	long allocated = 0, mem[3] = {};

	if (read_mem(sk, &allocated, mem))
		return 0;
	if (nearly_full(allocated, mem[2], lr_shift())) {
		emit_mem(TB_MEM_EXHAUSTION, netns, allocated, mem);
		return 1;
	}
	if (force || nearly_full(allocated, mem[1], lr_shift())) {
		emit_mem(TB_MEM_PRESSURE, netns, allocated, mem);
		return 1;
	}
	return 0;
}

static __always_inline void check_buffer(struct sock *sk, int rcv)
{
	struct bpfp_event *e;
	struct net *net;
	__u64 netns;
	__u32 locks, n;
	__u16 kind;
	int buf, limit;

	if (!sk)
		return;
	bpfp_stat_add(BPFP_STAT_HITS, 1);
	/* Applications that set SO_RCVBUF/SO_SNDBUF chose their size: they never drive growth. */
	locks = bpfp_sk_userlocks(sk);
	if (locks & (rcv ? BPFP_SOCK_RCVBUF_LOCK : BPFP_SOCK_SNDBUF_LOCK)) {
		bpfp_stat_add(BPFP_STAT_SKIPPED, 1);
		return;
	}
	net = bpfp_sk_net(sk);
	netns = bpfp_net_inum(net);
	if (check_mem(sk, netns, 0))
		return; /* no buffer growth near memory pressure */
	if (rcv) {
		buf = BPF_CORE_READ(sk, sk_rcvbuf);
		limit = BPF_CORE_READ(net, ipv4.sysctl_tcp_rmem[2]);
	} else {
		buf = BPF_CORE_READ(sk, sk_sndbuf);
		limit = BPF_CORE_READ(net, ipv4.sysctl_tcp_wmem[2]);
	}
	if (!nearly_full(buf, limit, lr_shift()))
		return;
	/* The send buffer grows eagerly with cwnd (at once to the max on loopback's 64 KiB MSS):
	 * only a full one, data queued up to its size, means the application is held back. */
	if (!rcv && !nearly_full(BPF_CORE_READ(sk, sk_wmem_queued), buf, lr_shift())) {
		bpfp_stat_add(BPFP_STAT_SKIPPED, 1);
		return;
	}
	kind = rcv ? TB_RMEM_NEAR_MAX : TB_WMEM_NEAR_MAX;
	n = bpfp_rate_limit(netns, kind);
	if (!n)
		return;
	e = bpfp_event_reserve(BPFP_TUNER_ID, kind, netns, n);
	if (!e)
		return;
	bpfp_payload(e)->buffer.buf = buf;
	bpfp_payload(e)->buffer.limit = limit;
	bpfp_payload(e)->buffer.srtt_us = BPF_CORE_READ((struct tcp_sock *)sk, srtt_us) >> 3;
	bpfp_payload(e)->buffer.userlocks = locks;
	bpfp_event_submit(e);
}

/* --- receive side: tcp_rcv_space_adjust (DRS grows sk_rcvbuf toward tcp_rmem[2]) --- */

SEC("tp_btf/tcp_rcv_space_adjust")
int BPF_PROG(bpfp_tb_rcv_btf, struct sock *sk)
{
	check_buffer(sk, 1);
	return 0;
}

SEC("tp/tcp/tcp_rcv_space_adjust")
int bpfp_tb_rcv_tp(struct trace_event_raw_tcp_event_sk *ctx)
{
	check_buffer((struct sock *)BPF_CORE_READ(ctx, skaddr), 1);
	return 0;
}

SEC("fentry/tcp_rcv_space_adjust")
int BPF_PROG(bpfp_tb_rcv_fe, struct sock *sk)
{
	check_buffer(sk, 1);
	return 0;
}

SEC("kprobe/tcp_rcv_space_adjust")
int BPF_KPROBE(bpfp_tb_rcv_kp, struct sock *sk)
{
	check_buffer(sk, 1);
	return 0;
}

/* --- send side: tcp_probe (every ACK) or tcp_sndbuf_expand (may be inlined) --- */

SEC("tp_btf/tcp_probe")
int BPF_PROG(bpfp_tb_snd_btf, struct sock *sk, struct sk_buff *skb)
{
	check_buffer(sk, 0);
	return 0;
}

SEC("tp/tcp/tcp_probe")
int bpfp_tb_snd_tp(struct trace_event_raw_tcp_probe *ctx)
{
	/* skaddr joined tcp_probe's record in later kernels; without it this flavour is blind. */
	if (!bpf_core_field_exists(ctx->skaddr)) {
		bpfp_stat_add(BPFP_STAT_HITS, 1); /* every outcome follows its hit */
		bpfp_stat_add(BPFP_STAT_SKIPPED, 1);
		return 0;
	}
	check_buffer((struct sock *)BPF_CORE_READ(ctx, skaddr), 0);
	return 0;
}

SEC("fentry/tcp_sndbuf_expand")
int BPF_PROG(bpfp_tb_snd_fe, struct sock *sk)
{
	check_buffer(sk, 0);
	return 0;
}

SEC("kprobe/tcp_sndbuf_expand")
int BPF_KPROBE(bpfp_tb_snd_kp, struct sock *sk)
{
	check_buffer(sk, 0);
	return 0;
}

/* --- memory pressure: a socket exceeded its protocol's memory limits --- */

static __always_inline void mem_exceeded(struct sock *sk)
{
	if (!sk || bpfp_sk_protocol(sk) != BPFP_IPPROTO_TCP)
		return;
	bpfp_stat_add(BPFP_STAT_HITS, 1);
	check_mem(sk, bpfp_net_inum(bpfp_sk_net(sk)), 1);
}

SEC("tp_btf/sock_exceed_buf_limit")
int BPF_PROG(bpfp_tb_mem_btf, struct sock *sk, struct proto *prot, long allocated, int kind)
{
	mem_exceeded(sk);
	return 0;
}

SEC("tp/sock/sock_exceed_buf_limit")
int bpfp_tb_mem_tp(struct trace_event_raw_sock_exceed_buf_limit *ctx)
{
	long allocated, mem[3];
	char name[4];

	/* No socket pointer in this record: the protocol name and the limits it carries. */
	BPF_CORE_READ_STR_INTO(&name, ctx, name);
	if (name[0] != 'T' || name[1] != 'C' || name[2] != 'P')
		return 0;
	bpfp_stat_add(BPFP_STAT_HITS, 1);
	allocated = BPF_CORE_READ(ctx, allocated);
	mem[0] = BPF_CORE_READ(ctx, sysctl_mem[0]);
	mem[1] = BPF_CORE_READ(ctx, sysctl_mem[1]);
	mem[2] = BPF_CORE_READ(ctx, sysctl_mem[2]);
	emit_mem(nearly_full(allocated, mem[2], lr_shift()) ? TB_MEM_EXHAUSTION : TB_MEM_PRESSURE, 0,
		 allocated, mem);
	return 0;
}

SEC("fentry/tcp_enter_memory_pressure")
int BPF_PROG(bpfp_tb_mem_fe, struct sock *sk)
{
	mem_exceeded(sk);
	return 0;
}

SEC("kprobe/tcp_enter_memory_pressure")
int BPF_KPROBE(bpfp_tb_mem_kp, struct sock *sk)
{
	mem_exceeded(sk);
	return 0;
}
