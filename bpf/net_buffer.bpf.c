// SPDX-License-Identifier: GPL-2.0
/* net_buffer tuner: reports packets dropped at a full per-CPU input backlog (skb:kfree_skb with
 * reason CPU_BACKLOG: drives netdev_max_backlog and the flow-limit CPU mask) and NAPI polls that
 * used their whole weight (napi:napi_poll work == budget: userspace then checks softnet_stat's
 * time_squeeze and drives netdev_budget[_usecs]). Rate-limited per (CPU, kind); the folded hit
 * count says how many drops or full polls an event stands for. Userspace decides.
 *
 * Both hooks are hot: kfree_skb fires for every dropped packet of any reason and napi_poll for
 * every NAPI poll. Each program tests its condition first, from the context only, and returns
 * before any map access. No drop reasons (5.10): the reason relocation fails, the program fails
 * to load and userspace polls /proc/net/softnet_stat instead. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "bpfpilot_common.bpf.h"

char LICENSE[] SEC("license") = "GPL";

enum nb_kind {
	NB_BACKLOG_DROP = 1,
	NB_NAPI_FULL = 2,
};

union nb_payload {
	struct {		/* NB_BACKLOG_DROP */
		__u64 cpu;	/* the CPU whose backlog was full */
	} drop;
	struct {		/* NB_NAPI_FULL */
		__u64 cpu;
		__u64 work;	/* packets the poll processed */
		__u64 budget;	/* the poll's weight */
	} napi;
};

struct nb_params {
	__u64 reserved;		/* none: decisions are taken in userspace */
};

BPFP_CONTRACT(net_buffer, 8, enum nb_kind, union nb_payload, struct nb_params)

/* Rate-limit key per CPU: the flow-limit mask is per CPU, so one CPU's drops must not hide
 * another's. The netns slot of the key holds the CPU (all of this is host-wide). */
static __always_inline void emit(__u32 kind, __u64 work, __u64 budget)
{
	__u32 cpu = bpf_get_smp_processor_id();
	struct bpfp_event *e;
	__u32 n;

	bpfp_stat_add(BPFP_STAT_HITS, 1);
	n = bpfp_rate_limit(cpu, kind);
	if (!n)
		return;
	e = bpfp_event_reserve(BPFP_TUNER_ID, kind, 0, n, cpu, kind);
	if (!e)
		return;
	if (kind == NB_BACKLOG_DROP) {
		bpfp_payload(e)->drop.cpu = cpu;
	} else {
		bpfp_payload(e)->napi.cpu = cpu;
		bpfp_payload(e)->napi.work = work;
		bpfp_payload(e)->napi.budget = budget;
	}
	bpfp_event_submit(e);
}

/* --- backlog drops: skb:kfree_skb with reason SKB_DROP_REASON_CPU_BACKLOG --- */

SEC("tp_btf/kfree_skb")
int BPF_PROG(bpfp_nb_drop_btf, struct sk_buff *skb, void *location, enum skb_drop_reason reason)
{
	/* The enum value from the running kernel's BTF; no such value: relocation fails, no load. */
	if (reason != bpf_core_enum_value(enum skb_drop_reason, SKB_DROP_REASON_CPU_BACKLOG))
		return 0;
	emit(NB_BACKLOG_DROP, 0, 0);
	return 0;
}

SEC("tp/skb/kfree_skb")
int bpfp_nb_drop_tp(struct trace_event_raw_kfree_skb *ctx)
{
	/* A direct context load at the relocated offset (no field: relocation fails, no load). */
	if (ctx->reason != bpf_core_enum_value(enum skb_drop_reason, SKB_DROP_REASON_CPU_BACKLOG))
		return 0;
	emit(NB_BACKLOG_DROP, 0, 0);
	return 0;
}

/* --- NAPI polls that used their whole weight: more work was left for the next one --- */

SEC("tp_btf/napi_poll")
int BPF_PROG(bpfp_nb_napi_btf, struct napi_struct *napi, int work, int budget)
{
	if (work < budget || budget <= 0)
		return 0;
	emit(NB_NAPI_FULL, work, budget);
	return 0;
}

SEC("tp/napi/napi_poll")
int bpfp_nb_napi_tp(struct trace_event_raw_napi_poll *ctx)
{
	int work = ctx->work, budget = ctx->budget;

	if (work < budget || budget <= 0)
		return 0;
	emit(NB_NAPI_FULL, work, budget);
	return 0;
}
