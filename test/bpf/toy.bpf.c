// SPDX-License-Identifier: GPL-2.0
/* The toy tuner of docs/adding-a-tuner.md (built and checked by the unit suite, never shipped):
 * reports listening sockets whose backlog asks for more than net.core.somaxconn allows. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "bpfpilot_common.bpf.h"
#include "bpfpilot_sock.bpf.h"

char LICENSE[] SEC("license") = "GPL";

enum toy_kind {
	TOY_LISTEN = 1,
};

union toy_payload {
	struct {
		__u64 backlog;	/* sk_max_ack_backlog: min(listen() backlog, somaxconn) */
	} listen;
};

struct toy_params {
	__u64 min_backlog;	/* ignore smaller backlogs */
};

BPFP_CONTRACT(toy, 99, enum toy_kind, union toy_payload, struct toy_params)

static __always_inline void on_state(struct sock *sk, int newstate)
{
	struct bpfp_config *cfg = bpfp_cfg();
	struct bpfp_event *e;
	__u64 netns;
	__u32 backlog, n;

	if (!sk || newstate != 10 /* TCP_LISTEN */ || !cfg)
		return;
	bpfp_stat_add(BPFP_STAT_HITS, 1);
	backlog = BPF_CORE_READ(sk, sk_max_ack_backlog);
	if (backlog < bpfp_params(cfg)->min_backlog)
		return;
	netns = bpfp_net_inum(bpfp_sk_net(sk));
	n = bpfp_rate_limit(netns, TOY_LISTEN);
	if (!n)
		return;
	e = bpfp_event_reserve(BPFP_TUNER_ID, TOY_LISTEN, netns, n, netns, TOY_LISTEN);
	if (!e)
		return;
	bpfp_payload(e)->listen.backlog = backlog;
	bpfp_event_submit(e);
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(bpfp_toy_btf, struct sock *sk, int oldstate, int newstate)
{
	on_state(sk, newstate);
	return 0;
}

SEC("tp/sock/inet_sock_set_state")
int bpfp_toy_tp(struct trace_event_raw_inet_sock_set_state *ctx)
{
	on_state((struct sock *)BPF_CORE_READ(ctx, skaddr), BPF_CORE_READ(ctx, newstate));
	return 0;
}
