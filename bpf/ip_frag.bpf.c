// SPDX-License-Identifier: GPL-2.0
/* ip_frag tuner: on each fragment entering reassembly, reports when the namespace's fragment
 * memory (fqdir->mem) nears its high threshold (bpftune's NEARLY_FULL test), rate-limited per
 * (netns, family). The kernel has no reassembly tracepoint, so these hooks are kernel functions
 * (fentry, else kprobe); where neither attaches the userspace tuner polls /proc instead. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "bpfpilot_common.bpf.h"
#include "bpfpilot_sock.bpf.h"

char LICENSE[] SEC("license") = "GPL";

enum if_kind {
	IF_NEAR_FULL_V4 = 1,
	IF_NEAR_FULL_V6 = 2,
};

union if_payload {
	struct {		/* IF_NEAR_FULL_* */
		__u64 memory;	/* fqdir->mem, bytes */
		__u64 high_thresh;
	} fqdir;
};

struct if_params {
	__u64 lr_shift;		/* act within high >> shift of the threshold; 2..6 */
};

BPFP_CONTRACT(ip_frag, 4, enum if_kind, union if_payload, struct if_params)

static __always_inline void check_fqdir(struct net *net, struct fqdir *fq, __u16 kind)
{
	struct bpfp_config *cfg = bpfp_cfg();
	__u64 shift = cfg ? bpfp_params(cfg)->lr_shift : 2;
	struct bpfp_event *e;
	long mem, high;
	__u64 netns;
	__u32 n;

	if (!net || !fq)
		return;
	bpfp_stat_add(BPFP_STAT_HITS, 1);
	mem = BPF_CORE_READ(fq, mem.counter);
	high = BPF_CORE_READ(fq, high_thresh);
	if (shift < 2 || shift > 6)
		shift = 2;
	if (high <= 0 || mem < high - (high >> shift))
		return;
	netns = bpfp_net_inum(net);
	n = bpfp_rate_limit(netns, kind);
	if (!n)
		return;
	e = bpfp_event_reserve(BPFP_TUNER_ID, kind, netns, n, netns, kind);
	if (!e)
		return;
	bpfp_payload(e)->fqdir.memory = mem;
	bpfp_payload(e)->fqdir.high_thresh = high;
	bpfp_event_submit(e);
}

static __always_inline void defrag4(struct net *net)
{
	check_fqdir(net, BPF_CORE_READ(net, ipv4.fqdir), IF_NEAR_FULL_V4);
}

/* ipv6_frag_rcv gets only the skb: the namespace is the receiving device's. */
static __always_inline void defrag6(struct sk_buff *skb)
{
	struct net *net = BPF_CORE_READ(skb, dev, nd_net.net);

	check_fqdir(net, BPF_CORE_READ(net, ipv6.fqdir), IF_NEAR_FULL_V6);
}

SEC("fentry/ip_defrag")
int BPF_PROG(bpfp_if_v4_fe, struct net *net)
{
	defrag4(net);
	return 0;
}

SEC("kprobe/ip_defrag")
int BPF_KPROBE(bpfp_if_v4_kp, struct net *net)
{
	defrag4(net);
	return 0;
}

SEC("fentry/ipv6_frag_rcv")
int BPF_PROG(bpfp_if_v6_fe, struct sk_buff *skb)
{
	defrag6(skb);
	return 0;
}

SEC("kprobe/ipv6_frag_rcv")
int BPF_KPROBE(bpfp_if_v6_kp, struct sk_buff *skb)
{
	defrag6(skb);
	return 0;
}
