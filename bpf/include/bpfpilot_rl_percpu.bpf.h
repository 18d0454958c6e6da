/* A per-CPU fast path in front of the shared rate limiter, for hooks that fire per packet under a
 * flood (udp_buffer's drops): the shared path costs a clock read (~95 ns under kvm-clock), a hash
 * lookup and an atomic add on a line every CPU writes. Each CPU keeps the last decision per key
 * (folded or muted, and until when) and answers the hits it covers from its own memory, timed by
 * jiffies (a plain load); the first hit past it, or after userspace muted or unmuted any key (it
 * bumps bpfp_rl_epoch then), takes the shared path. Same results as bpfp_rate_limit(): hits are
 * counted as suppressed or muted one by one; hits folded here are sent with this CPU's next hit
 * that reaches the shared map (or added to the shared value then), never lost from the counts. */
#ifndef BPFPILOT_RL_PERCPU_BPF_H
#define BPFPILOT_RL_PERCPU_BPF_H

#include "bpfpilot_common.bpf.h"

#define BPFP_RL_SLOTS 16	/* keys cached per CPU, by hash: a collision only costs a lookup */
/* A jiffy is at most this long (HZ >= 100) until this CPU has timed its own (bpfp_rl_tick). */
#define BPFP_RL_JIFFY_NS_MAX 10000000ULL
/* Ticks over which a CPU times a jiffy: the estimate's error is below 1 / this. */
#define BPFP_RL_TIMING_TICKS 100
/* A cached decision is re-checked at least this often, whatever userspace asked. */
#define BPFP_RL_HOLD_NS 1000000000ULL

struct bpfp_rl_slot {
	__u64 netns;	/* the key the decision is for */
	__u32 kind;
	__u32 muted;	/* hits before until_j are muted (else folded) */
	__u64 until_j;	/* the decision holds while jiffies < until_j */
	__u64 epoch;	/* bpfp_rl_epoch when it was taken */
	__u64 folded;	/* hits folded here since, not yet in the shared value */
};

struct bpfp_rl_cpu {
	__u64 ref_ns;	/* a (ktime, jiffies) pair from this CPU's first shared-path hit */
	__u64 ref_j;
	__u64 jiffy_ns;	/* upper bound of a jiffy's length from it; 0: not timed yet */
	struct bpfp_rl_slot slot[BPFP_RL_SLOTS];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct bpfp_rl_cpu);
} bpfp_rl_cpu SEC(".maps");

/* Bumped by userspace after each write to bpfp_ratelimit (src/daemon/mute_writer.ts). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} bpfp_rl_epoch SEC(".maps");

/* An upper bound of a jiffy's length in ns. Between two readings d ticks apart at least d - 1
 * whole jiffies passed, so elapsed / (d - 1) bounds one from above; HZ >= 100 until d is large. */
static __always_inline __u64 bpfp_rl_jiffy_ns(struct bpfp_rl_cpu *c, __u64 now, __u64 j)
{
	if (!c->ref_ns) {
		c->ref_ns = now;
		c->ref_j = j;
	} else if (!c->jiffy_ns && j - c->ref_j > BPFP_RL_TIMING_TICKS) {
		c->jiffy_ns = (now - c->ref_ns) / (j - c->ref_j - 1);
	}
	return c->jiffy_ns && c->jiffy_ns < BPFP_RL_JIFFY_NS_MAX ? c->jiffy_ns
								  : BPFP_RL_JIFFY_NS_MAX;
}

/* Hits a slot folded for another key go to that key's shared value (sent with its next event). */
static __always_inline void bpfp_rl_flush(struct bpfp_rl_slot *s)
{
	struct bpfp_rl_key key = { .netns = s->netns, .kind = s->kind };
	struct bpfp_rl_val *val;

	if (!s->folded)
		return;
	val = bpf_map_lookup_elem(&bpfp_ratelimit, &key);
	if (val)
		__sync_fetch_and_add(&val->folded, s->folded);
	s->folded = 0;
}

static __always_inline __u32 bpfp_rl_shared(struct bpfp_rl_cpu *c, struct bpfp_rl_slot *s,
					    __u64 netns, __u32 kind, __u64 j, __u64 epoch)
{
	struct bpfp_rl_quiet quiet;
	__u64 now = bpf_ktime_get_ns(), hold;
	__u32 carried = 0, n;

	if (s->netns == netns && s->kind == kind) {
		carried = (__u32)s->folded;
		s->folded = 0;
	} else {
		bpfp_rl_flush(s);
	}
	n = bpfp_rate_limit_at(netns, kind, now, carried, &quiet);
	hold = quiet.until_ns > now ? quiet.until_ns - now : 0;
	if (hold > BPFP_RL_HOLD_NS)
		hold = BPFP_RL_HOLD_NS;
	/* A hit while jiffies < j + q comes less than q jiffies after now: before now + hold. */
	s->until_j = j + hold / bpfp_rl_jiffy_ns(c, now, j);
	s->netns = netns;
	s->kind = kind;
	s->muted = quiet.muted;
	s->epoch = epoch;
	return n;
}

/* bpfp_rate_limit() with the per-CPU fast path in front: same return value and statistics. */
static __always_inline __u32 bpfp_rate_limit_percpu(__u64 netns, __u32 kind)
{
	__u32 zero = 0;
	struct bpfp_rl_cpu *c = bpf_map_lookup_elem(&bpfp_rl_cpu, &zero);
	__u64 *epoch = bpf_map_lookup_elem(&bpfp_rl_epoch, &zero);
	struct bpfp_rl_slot *s;
	__u64 j, ep;

	if (!c || !epoch)
		return bpfp_rate_limit(netns, kind);
	/* Read before the shared value: a mute written after it makes this decision stale. */
	ep = *(volatile __u64 *)epoch;
	j = bpf_jiffies64();
	s = &c->slot[(netns ^ kind) & (BPFP_RL_SLOTS - 1)];
	if (s->netns != netns || s->kind != kind || s->epoch != ep || j >= s->until_j)
		return bpfp_rl_shared(c, s, netns, kind, j, ep);
	if (s->muted) {
		bpfp_stat_add(BPFP_STAT_MUTED, 1);
		return 0;
	}
	__sync_fetch_and_add(&s->folded, 1);
	bpfp_stat_add(BPFP_STAT_SUPPRESSED, 1);
	return 0;
}

#endif
