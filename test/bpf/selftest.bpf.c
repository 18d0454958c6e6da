// SPDX-License-Identifier: GPL-2.0
/* Test object for the libbpf binding's integration tests: a real tracepoint program that reports
 * TCP state changes of one port through the shared event format (param[1]: submitted without
 * waking the reader), a hash map counted with atomic adds, the shared per-CPU stats, and a
 * program whose kernel function does not exist (must be skipped while the rest loads). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "bpfpilot_common.bpf.h"

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, __u64);
} bpfp_state_counts SEC(".maps");

static __always_inline int report(struct sock *sk, int newstate)
{
	struct bpfp_config *cfg = bpfp_cfg();
	__u16 sport, dport;
	struct bpfp_event *e;
	__u32 key = newstate;
	__u64 one = 1, *cnt;

	if (!cfg)
		return 0;
	sport = BPF_CORE_READ(sk, __sk_common.skc_num);
	dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (sport != cfg->param[0] && dport != cfg->param[0])
		return 0;
	bpfp_stat_add(BPFP_STAT_HITS, 1);
	cnt = bpf_map_lookup_elem(&bpfp_state_counts, &key);
	if (cnt)
		__sync_fetch_and_add(cnt, 1);
	else
		bpf_map_update_elem(&bpfp_state_counts, &key, &one, BPF_NOEXIST);
	e = bpfp_event_reserve(0, newstate, 0, 1, 0, newstate);
	if (!e)
		return 0;
	e->data.v[0] = sport;
	e->data.v[1] = dport;
	e->data.v[2] = BPF_CORE_READ(sk, sk_rcvbuf);
	if (cfg->param[1]) { /* as tcp_conn's samples: the reader finds them at its next poll */
		bpf_ringbuf_submit(e, BPF_RB_NO_WAKEUP);
		return 0;
	}
	bpfp_event_submit(e);
	return 0;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(bpfp_st_state, struct sock *sk, int oldstate, int newstate)
{
	return report(sk, newstate);
}

/* The classic tracepoint flavour of the same hook (needs tracefs). */
SEC("tp/sock/inet_sock_set_state")
int bpfp_st_state_tp(struct trace_event_raw_inet_sock_set_state *ctx)
{
	return report((struct sock *)BPF_CORE_READ(ctx, skaddr), BPF_CORE_READ(ctx, newstate));
}

/* No kernel has this function: the loader must skip this program, not fail the object. */
SEC("fentry/bpfp_no_such_kernel_function")
int BPF_PROG(bpfp_st_missing)
{
	return 0;
}
