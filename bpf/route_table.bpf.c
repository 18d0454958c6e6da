// SPDX-License-Identifier: GPL-2.0
/* route_table tuner: notices a namespace's IPv6 destination cache nearing net.ipv6.route.max_size
 * (enforced for dst allocation up to Linux 6.2 only, and not on stable kernels with 6.3's removal
 * backported; userspace tells them apart by BTF) and tells userspace, rate-limited per
 * namespace. No tracepoint covers the dst garbage collector, so every flavour is a kernel
 * function: ip6_dst_gc (the allocation path calls it once entries pass gc_thresh; reached through
 * a function pointer, so never inlined), then bpftune's fib6_run_gc. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "bpfpilot_common.bpf.h"
#include "bpfpilot_sock.bpf.h"

char LICENSE[] SEC("license") = "GPL";

enum rt_kind {
	RT_NEAR_FULL = 1, /* the namespace's dst cache nears max_size */
};

union rt_payload {
	struct {
		__u64 entries;	 /* dst entries (the per-CPU counter's shared part) */
		__u64 max_size;	 /* net.ipv6.route.max_size */
		__u64 gc_thresh; /* net.ipv6.route.gc_thresh */
	} dst;
};

struct rt_params {
	__u64 lr_shift; /* act within limit >> shift of the limit; 2..6 */
};

BPFP_CONTRACT(route_table, 6, enum rt_kind, union rt_payload, struct rt_params)

static __always_inline __u64 lr_shift(void)
{
	struct bpfp_config *cfg = bpfp_cfg();
	__u64 shift = cfg ? bpfp_params(cfg)->lr_shift : 2;
	return shift < 2 || shift > 6 ? 2 : shift;
}

static __always_inline void check_net(struct net *net)
{
	struct bpfp_event *e;
	long entries, max_size;
	__u64 netns;
	__u32 n;

	if (!net)
		return;
	bpfp_stat_add(BPFP_STAT_HITS, 1);
	/* dst_entries_get_fast(): the per-CPU counter's shared part, what ip6_dst_gc compares. */
	entries = BPF_CORE_READ(net, ipv6.ip6_dst_ops.pcpuc_entries.count);
	max_size = BPF_CORE_READ(net, ipv6.sysctl.ip6_rt_max_size);
	if (max_size <= 0 || entries < max_size - (max_size >> lr_shift()))
		return;
	netns = bpfp_net_inum(net);
	n = bpfp_rate_limit(netns, RT_NEAR_FULL);
	if (!n)
		return;
	e = bpfp_event_reserve(BPFP_TUNER_ID, RT_NEAR_FULL, netns, n, netns, RT_NEAR_FULL);
	if (!e)
		return;
	bpfp_payload(e)->dst.entries = entries;
	bpfp_payload(e)->dst.max_size = max_size;
	bpfp_payload(e)->dst.gc_thresh = BPF_CORE_READ(net, ipv6.ip6_dst_ops.gc_thresh);
	bpfp_event_submit(e);
}

/* container_of(ops, struct net, ipv6.ip6_dst_ops), with the offset relocated by CO-RE. */
static __always_inline struct net *net_of_dst_ops(struct dst_ops *ops)
{
	if (!ops)
		return NULL;
	return (struct net *)((char *)ops - bpf_core_field_offset(struct net, ipv6.ip6_dst_ops));
}

SEC("fentry/ip6_dst_gc")
int BPF_PROG(bpfp_rt_gc_fe, struct dst_ops *ops)
{
	check_net(net_of_dst_ops(ops));
	return 0;
}

SEC("kprobe/ip6_dst_gc")
int BPF_KPROBE(bpfp_rt_gc_kp, struct dst_ops *ops)
{
	check_net(net_of_dst_ops(ops));
	return 0;
}

SEC("fentry/fib6_run_gc")
int BPF_PROG(bpfp_rt_fib_fe, unsigned long expires, struct net *net)
{
	check_net(net);
	return 0;
}

SEC("kprobe/fib6_run_gc")
int BPF_KPROBE(bpfp_rt_fib_kp, unsigned long expires, struct net *net)
{
	check_net(net);
	return 0;
}
