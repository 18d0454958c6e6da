/* Maps and helpers every bpfpilot object includes: the events ring buffer, per-CPU stats, the
 * rate limiter and read-only configuration. No global or static scratch: events are built in ring
 * buffer memory (reserve/submit) or on the stack. */
#ifndef BPFPILOT_COMMON_BPF_H
#define BPFPILOT_COMMON_BPF_H

#include <bpf/bpf_endian.h>
#include "bpfpilot.h"

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} bpfp_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, BPFP_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} bpfp_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct bpfp_rl_key);
	__type(value, struct bpfp_rl_val);
} bpfp_ratelimit SEC(".maps");

/* Written by userspace after load, before attach (an ARRAY rather than .rodata so no BTF datasec
 * offsets have to be computed on the TS side). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct bpfp_config);
} bpfp_config SEC(".maps");

static __always_inline struct bpfp_config *bpfp_cfg(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&bpfp_config, &zero);
}

/* One tuner's contract with its TypeScript side, declared once, here in C:
 *   BPFP_CONTRACT(tcp_buffer, 2, enum tb_kind, union tb_payload, struct tb_params);
 * names the tuner and its id (BPFP_TUNER_ID), its event kinds, its payload (a union with one
 * struct per event shape, written through bpfp_payload(e)) and its parameters (the config map's
 * param area, read through bpfp_params(cfg)), with the shared structs userspace reads or writes
 * (event, config, the rate limiter's key and value). The never-called function below carries all of it
 * into the object's BTF, from which scripts/build_bpf.ts generates dist/bpf/<name>.contract.ts;
 * test/unit/contract_test.ts checks both against each other. Not loaded, so it costs nothing. */
#define BPFP_CONTRACT(name_, id_, kinds_t, payload_t, params_t)					\
	enum bpfp_tuner { BPFP_TUNER_ID = id_ };						\
	typedef payload_t bpfp_payload_t;							\
	typedef params_t bpfp_params_t;								\
	_Static_assert(sizeof(payload_t) <= BPFP_DATA_LEN, #payload_t " exceeds the event payload"); \
	_Static_assert(sizeof(params_t) <= sizeof(((struct bpfp_config *)0)->param),		\
		       #params_t " exceeds bpfp_config.param");					\
	struct bpfp_contract_##name_ {								\
		enum bpfp_tuner id;								\
		kinds_t kind;									\
		payload_t payload;								\
		params_t params;								\
		struct bpfp_event event;							\
		struct bpfp_config config;							\
		struct bpfp_rl_key rl_key;							\
		struct bpfp_rl_val rl_val;							\
	};											\
	__attribute__((used)) int bpfp_contract_##name_(struct bpfp_contract_##name_ *c)	\
	{											\
		return 0;									\
	}

/* The event's payload as this tuner's union, the config's param area as its parameters. */
#define bpfp_payload(e) ((bpfp_payload_t *)(e)->data.s)
#define bpfp_params(cfg) ((bpfp_params_t *)(cfg)->param)

static __always_inline void bpfp_stat_add(__u32 slot, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(&bpfp_stats, &slot);
	if (v)
		__sync_fetch_and_add(v, n);
}

/* What the limiter decided for a key it sends nothing for: no hit is sent before until_ns (same
 * clock as its `now`), and the hits until then are muted (else folded). A per-CPU cache in front
 * of the shared map (bpfpilot_rl_percpu.bpf.h) keeps it. */
struct bpfp_rl_quiet {
	__u64 until_ns;
	__u32 muted;
};

/* bpfp_rate_limit() at `now`, for a hit with `evidence` (bpfp_rate_limit_need; 0: none) that also
 * carries `carried` hits folded elsewhere (per CPU) and are not yet in the shared value: they are
 * sent with this hit, or folded with it. */
static __always_inline __u32 bpfp_rate_limit_ev(__u64 netns, __u32 kind, __u64 now, __u32 carried,
						__u64 evidence, struct bpfp_rl_quiet *quiet)
{
	struct bpfp_rl_key key = { .netns = netns, .kind = kind };
	struct bpfp_rl_val *val, init = {};
	struct bpfp_config *cfg = bpfp_cfg();
	__u64 interval = cfg && cfg->rl_interval_ns ? cfg->rl_interval_ns : 1000000000ULL;
	__u32 folded;

	quiet->until_ns = now + interval;
	quiet->muted = 0;
	val = bpf_map_lookup_elem(&bpfp_ratelimit, &key);
	if (!val) {
		init.last_ns = now;
		bpf_map_update_elem(&bpfp_ratelimit, &key, &init, BPF_NOEXIST);
		return 1 + carried;
	}
	/* Muted: one compare on the value already looked up; cheaper than a fold (no atomic add).
	 * A mute up to a need lets a hit with more evidence through, timed from last_ns (which
	 * userspace writes as 0 with such a mute: at once). */
	if (now < val->mute_until_ns && (!val->mute_need || evidence <= val->mute_need)) {
		bpfp_stat_add(BPFP_STAT_MUTED, 1);
		if (carried)
			__sync_fetch_and_add(&val->folded, carried);
		quiet->until_ns = val->mute_until_ns;
		quiet->muted = 1;
		return 0;
	}
	/* Compared, not subtracted: a last_ns just ahead of `now` (another CPU's, or userspace's from
	 * an event's time stamp) is inside the interval, not 2^64 ns past it. */
	if (now < val->last_ns + interval) {
		__sync_fetch_and_add(&val->folded, 1 + carried);
		bpfp_stat_add(BPFP_STAT_SUPPRESSED, 1);
		quiet->until_ns = val->last_ns + interval;
		return 0;
	}
	/* Plain read and reset: atomic exchange needs 5.12+ and we load on 5.10. A concurrent fold may
	 * be lost from this event's count; the per-CPU stats keep the exact totals. */
	val->last_ns = now;
	folded = (__u32)val->folded;
	val->folded = 0;
	return 1 + folded + carried;
}

/* Without evidence: a mute up to a need mutes every hit (the per-CPU fast path's callers). */
static __always_inline __u32 bpfp_rate_limit_at(__u64 netns, __u32 kind, __u64 now, __u32 carried,
						struct bpfp_rl_quiet *quiet)
{
	return bpfp_rate_limit_ev(netns, kind, now, carried, 0, quiet);
}

/* Returns the number of hits this emission stands for (>= 1), or 0 when the event must be folded
 * into a later one or userspace muted the key (nothing it would receive could change anything).
 * Racy by design between CPUs only in who wins the emission: folded hits are counted with atomic
 * adds, so none are lost from the totals. */
static __always_inline __u32 bpfp_rate_limit(__u64 netns, __u32 kind)
{
	struct bpfp_rl_quiet unused;

	return bpfp_rate_limit_at(netns, kind, bpf_ktime_get_ns(), 0, &unused);
}

/* bpfp_rate_limit() for a hit whose `evidence` (> 0; 0: unknown) userspace may have muted the key
 * up to (mute_need): what it would not act on stays in the kernel, more is sent at once. */
static __always_inline __u32 bpfp_rate_limit_need(__u64 netns, __u32 kind, __u64 evidence)
{
	struct bpfp_rl_quiet unused;

	return bpfp_rate_limit_ev(netns, kind, bpf_ktime_get_ns(), 0, evidence, &unused);
}

/* Reserve an event in the ring buffer with the common header filled in; NULL (and counted) when
 * the buffer is full. rl_netns/rl_kind: the key bpfp_rate_limit() let it through under, which
 * userspace mutes when the event can change nothing. */
static __always_inline struct bpfp_event *bpfp_event_reserve(__u16 tuner, __u16 kind, __u64 netns,
							    __u32 count, __u64 rl_netns,
							    __u32 rl_kind)
{
	struct bpfp_event *e = bpf_ringbuf_reserve(&bpfp_events, sizeof(*e), 0);
	if (!e) {
		bpfp_stat_add(BPFP_STAT_DROPPED, 1);
		return NULL;
	}
	__builtin_memset(e, 0, sizeof(*e));
	e->version = BPFP_EVENT_VERSION;
	e->tuner = tuner;
	e->kind = kind;
	e->count = count;
	e->netns = netns;
	e->rl_netns = rl_netns;
	e->rl_kind = rl_kind;
	e->ts_ns = bpf_ktime_get_ns();
	e->pid = bpf_get_current_pid_tgid() >> 32;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	return e;
}

static __always_inline void bpfp_event_submit(struct bpfp_event *e)
{
	bpf_ringbuf_submit(e, 0);
	bpfp_stat_add(BPFP_STAT_EMITTED, 1);
}

static __always_inline int bpfp_tgid_filtered(void)
{
	struct bpfp_config *cfg = bpfp_cfg();
	return cfg && cfg->filter_tgid && (bpf_get_current_pid_tgid() >> 32) != cfg->filter_tgid;
}

#endif
