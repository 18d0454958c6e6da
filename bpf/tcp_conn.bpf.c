// SPDX-License-Identifier: GPL-2.0
/* tcp_conn tuner: per-connection congestion control from a sockops program attached to the
 * cgroup given with -c. The learning happens in userspace (src/tuners/tcp_conn_learner.ts): it
 * writes each path's choice into tc_paths, keyed by (netns, remote address). Here:
 *  - at ESTABLISHED, a connection to a path with a choice gets it (or, 1 in `explore`, a random
 *    algorithm of the path's candidate mask: the epsilon of bpftune's epsilon-greedy learner);
 *    a socket whose algorithm the application (or another program) already set is left alone;
 *  - at RETRANS, a connection whose retransmissions exceed segs_out >> loss_shift (1/64), once
 *    it has sent at least 1 << loss_shift segments, is switched to BBR once;
 *  - at TCP_CLOSE, one sample (min RTT, delivery rate, algorithm, retransmissions) is sent to
 *    userspace, one connection per path per interval (the event's count says how many
 *    connections it stands for). bpftune sampled at FIN_WAIT1/CLOSE_WAIT, with data still in
 *    flight and the loss switch possibly still to come; at TCP_CLOSE the counters are final.
 * Cost: a connection makes a dozen or more sockops calls without any callback flag (connect,
 * timeout and window init, ECN, established). The sampled connection is picked at ESTABLISHED
 * (the rate limiter decides there): only it gets an entry in tc_socks, a getsockopt of its
 * algorithm and the state callbacks (each state change is a call). The others get the
 * retransmission callback only, which costs nothing until a segment is retransmitted, and need no
 * entry: the loss check reads the context, and asks for the current algorithm only once it fires.
 * Advise mode (config flags) never calls setsockopt: it reports what it would have done.
 * Connections in a namespace other than --netns's, or where the administrator changed the
 * congestion control sysctls (tc_hands_off), are left alone from ESTABLISHED on.
 * Only context fields and stable helpers are used; the netns comes from the socket through
 * bpf_skc_to_tcp_sock (5.9+). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "bpfpilot_common.bpf.h"
#include "bpfpilot_rl_percpu.bpf.h"

char LICENSE[] SEC("license") = "GPL";

#define TC_ALG_MAX 8
#define TC_NAME_LEN 16
#define TC_NO_ALG 0xff

#define SOL_TCP 6
#define TCP_CONGESTION 13
#define AF_INET 2
#define AF_INET6 10
#define TCP_CLOSE 7

/* config.flags */
#define TC_CFG_ADVISE 1

/* Per-socket flags, also sent in the sample (userspace reads them). */
#define TC_F_LEARNED 1     /* the path's choice was applied */
#define TC_F_EXPLORED 2    /* a random candidate was applied */
#define TC_F_FORCED 4      /* switched to BBR for loss */
#define TC_F_APP 8         /* the application had chosen: left alone */
#define TC_F_ADVISE 16     /* nothing was applied (advise mode): the flags say what would be */
#define TC_F_ECN 32        /* ECN negotiated */
#define TC_F_IS_BBR 64     /* currently running bbr (no loss switch needed) */

/* Counter slots of tc_counts (summed over CPUs in userspace). */
#define TC_C_CHOSEN 0      /* + alg index: connections given that algorithm */
#define TC_C_FORCED 8      /* switched to BBR for loss */
#define TC_C_EXPLORED 9
#define TC_C_APP 10
#define TC_C_UNKNOWN 11    /* no choice yet for the path: kernel default */
#define TC_C_FAILED 12     /* setsockopt refused */
#define TC_C_RETRANS 13    /* RETRANS_CB calls (the loss check's inputs are counted, not guessed) */
#define TC_C_LOSSY 14      /* of those, over the loss threshold */
#define TC_C_CB_REFUSED 15 /* bpf_sock_ops_cb_flags_set could not set a callback flag */
#define TC_C_HANDS_OFF 16  /* left alone: the admin took tcp_conn over there, or not --netns's */
#define TC_C_MAX 24

struct tc_path_key {
	__u64 netns;          /* ns.inum of the socket's namespace */
	__u8 addr[16];        /* remote address; IPv4 as ::ffff:a.b.c.d */
};

struct tc_path_choice {
	__u32 alg;            /* index into tc_algs */
	__u32 mask;           /* candidates for exploration (bit = index into tc_algs) */
};

struct tc_alg_name {
	char name[TC_NAME_LEN];
};

/* The sampled connection's state, from ESTABLISHED to its sample at TCP_CLOSE. */
struct tc_sock {
	char initial[TC_NAME_LEN]; /* algorithm at ESTABLISHED, after our choice */
	struct tc_path_key key;
	__u32 flags;
	__u32 count;               /* connections the sample stands for (the rate limiter's count) */
};

enum tc_kind {
	TC_SAMPLE = 1,
};

/* One closed connection. */
struct tc_sample {
	__u32 addr[4];          /* remote address, network order; IPv4 as ::ffff:a.b.c.d */
	char initial[TC_NAME_LEN];
	__u32 min_rtt_us;
	__u32 flags;
	__u32 rate_delivered;   /* packets delivered in the last rate sample */
	__u32 rate_interval_us;
	__u32 mss;
	__u32 total_retrans;
	__u32 segs_out;
	__u32 srtt_us;          /* smoothed RTT << 3, as the kernel keeps it */
};

union tc_payload {
	struct tc_sample sample;
};

struct tc_params {
	__u64 bbr;         /* index of bbr in tc_algs, TC_NO_ALG if the kernel has none */
	__u64 explore;     /* explore one connection in this many (bpftune: 20) */
	__u64 loss_shift;  /* switch to BBR when total_retrans > segs_out >> loss_shift (6) */
	__u64 only_netns;  /* --netns: ns.inum of the only namespace tuned; 0 = every one */
	__u64 hands_off;   /* keys in tc_hands_off (userspace keeps it): 0 spares the lookups */
};

BPFP_CONTRACT(tcp_conn, 7, enum tc_kind, union tc_payload, struct tc_params)

/* Written by userspace only; LRU bounds it even if userspace lags behind. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct tc_path_key);
	__type(value, struct tc_path_choice);
} tc_paths SEC(".maps");

/* Namespaces (ns.inum) whose congestion control settings the administrator changed (bpftune
 * §2.11): their connections are left alone. Key 0: every namespace. Written by userspace. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u64);
	__type(value, __u8);
} tc_hands_off SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, TC_ALG_MAX);
	__type(key, __u32);
	__type(value, struct tc_alg_name);
} tc_algs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TC_C_MAX);
	__type(key, __u32);
	__type(value, __u64);
} tc_counts SEC(".maps");

/* The sampled connections (one per path per interval), by socket cookie, from ESTABLISHED to
 * their sample at TCP_CLOSE. A preallocated LRU hash, not socket storage: creating a socket's
 * storage allocated and charged memory inside the program (~5 us a sample here). Per-CPU LRU
 * lists: the common list's global lock and its batched moves of free entries cost ~1 us a sample
 * here (an entry made on one CPU and deleted on another is fine). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__uint(map_flags, BPF_F_NO_COMMON_LRU);
	__type(key, __u64);
	__type(value, struct tc_sock);
} tc_socks SEC(".maps");

static __always_inline void count(__u32 slot)
{
	__u64 *v = bpf_map_lookup_elem(&tc_counts, &slot);
	if (v)
		__sync_fetch_and_add(v, 1);
}

/* A parameter, or its default where userspace left it 0. */
#define param(cfg, name, dflt) ((cfg) && bpfp_params(cfg)->name ? bpfp_params(cfg)->name : (dflt))

/* Remote address as 16 bytes (IPv4 mapped) and the socket's netns; -1 for loopback and other
 * families (tested first: no helper call for them). */
static __always_inline int remote_key(struct bpf_sock_ops *ops, struct bpf_sock *sk,
				      struct tcp_sock **tpp, struct tc_path_key *key)
{
	struct tcp_sock *tp;
	__u32 a[4];

	if (ops->family == AF_INET) {
		a[0] = 0;
		a[1] = 0;
		a[2] = bpf_htonl(0xffff);
		a[3] = ops->remote_ip4;
	} else if (ops->family == AF_INET6) {
		a[0] = ops->remote_ip6[0];
		a[1] = ops->remote_ip6[1];
		a[2] = ops->remote_ip6[2];
		a[3] = ops->remote_ip6[3];
		if (!a[0] && !a[1] && !a[2] && a[3] == bpf_htonl(1))
			return -1; /* ::1 */
	} else {
		return -1;
	}
	if (a[2] == bpf_htonl(0xffff) && !a[0] && !a[1] && (bpf_ntohl(a[3]) >> 24) == 127)
		return -1; /* loopback has no path to learn */
	__builtin_memcpy(key->addr, a, sizeof(a));
	tp = bpf_skc_to_tcp_sock(sk);
	if (!tp)
		return -1;
	/* A typed pointer: plain (relocated) loads, no bpf_probe_read_kernel calls. */
	key->netns = tp->inet_conn.icsk_inet.sk.__sk_common.skc_net.net->ns.inum;
	*tpp = tp;
	return 0;
}

/* The rate limiter's key for a path: one sample per path per interval. */
static __always_inline __u64 path_rl_key(const struct tc_path_key *key)
{
	return key->netns ^ *(__u64 *)&key->addr[8] ^ *(__u64 *)&key->addr[0];
}

/* Did someone set this socket's algorithm explicitly (TCP_CONGESTION)? Field exists on 5.9+. */
static __always_inline int app_chose(struct tcp_sock *tp)
{
	struct inet_connection_sock *icsk = &tp->inet_conn;

	if (!bpf_core_field_exists(icsk->icsk_ca_setsockopt))
		return 0;
	return BPF_CORE_READ_BITFIELD_PROBED(icsk, icsk_ca_setsockopt);
}

static __always_inline int is_bbr(const char *name)
{
	return name[0] == 'b' && name[1] == 'b' && name[2] == 'r' && name[3] == 0;
}

/* The socket's current algorithm, by typed loads from its ops (as bpf_getsockopt(TCP_CONGESTION)
 * copies it, without the helper call: on a connection sampled now and then, its code and the
 * socket-option path it walks are out of the caches). */
static __always_inline void alg_name(struct tcp_sock *tp, char name[TC_NAME_LEN])
{
	const struct tcp_congestion_ops *ca = tp->inet_conn.icsk_ca_ops;

	if (!ca) {
		__builtin_memset(name, 0, TC_NAME_LEN);
		return;
	}
	((__u64 *)name)[0] = *(const __u64 *)&ca->name[0];
	((__u64 *)name)[1] = *(const __u64 *)&ca->name[8];
}

/* A random algorithm of `mask`, or `dflt` when the mask is empty. */
static __always_inline __u32 explore(__u32 mask, __u32 dflt)
{
	__u32 start = bpf_get_prandom_u32() % TC_ALG_MAX;

#pragma unroll
	for (int i = 0; i < TC_ALG_MAX; i++) {
		__u32 idx = (start + i) % TC_ALG_MAX;
		if (mask & (1u << idx))
			return idx;
	}
	return dflt;
}

static __always_inline int set_alg(struct bpf_sock_ops *ops, __u32 idx)
{
	struct tc_alg_name *n;
	__u32 i = idx;

	n = bpf_map_lookup_elem(&tc_algs, &i);
	if (!n || !n->name[0])
		return -1;
	return bpf_setsockopt(ops, SOL_TCP, TCP_CONGESTION, n->name, TC_NAME_LEN);
}

/* Is this namespace none of ours: not --netns's, or taken over by the administrator? */
static __always_inline int hands_off(struct bpfp_config *cfg, __u64 netns)
{
	__u64 only = param(cfg, only_netns, 0), every = 0;

	if (only && only != netns)
		return 1;
	if (!param(cfg, hands_off, 0))
		return 0;
	return bpf_map_lookup_elem(&tc_hands_off, &netns) || bpf_map_lookup_elem(&tc_hands_off, &every);
}

static __always_inline void established(struct bpf_sock_ops *ops, struct bpf_sock *sk,
					struct bpfp_config *cfg)
{
	struct tc_path_key key = {};
	struct tc_path_choice *choice;
	struct tcp_sock *tp;
	struct tc_sock s = {};
	__u64 cookie;
	int advise = cfg && (cfg->flags & TC_CFG_ADVISE);
	__u64 bbr = param(cfg, bbr, TC_NO_ALG);
	__u32 alg, flags = 0, want = 0, n;

	bpfp_stat_add(BPFP_STAT_HITS, 1);
	if (remote_key(ops, sk, &tp, &key))
		return;
	if (hands_off(cfg, key.netns)) {
		count(TC_C_HANDS_OFF);
		return;
	}
	if (advise)
		flags |= TC_F_ADVISE;
	choice = bpf_map_lookup_elem(&tc_paths, &key);
	if (app_chose(tp)) {
		flags |= TC_F_APP;
		count(TC_C_APP);
	} else if (!choice) {
		count(TC_C_UNKNOWN);
	} else {
		alg = choice->alg;
		flags |= TC_F_LEARNED;
		if (bpf_get_prandom_u32() % param(cfg, explore, 20) == 0) {
			alg = explore(choice->mask, alg);
			flags |= TC_F_EXPLORED;
			count(TC_C_EXPLORED);
		}
		if (alg < TC_ALG_MAX) {
			if (advise || set_alg(ops, alg) == 0) {
				count(TC_C_CHOSEN + alg);
				if (!advise && alg == bbr)
					flags |= TC_F_IS_BBR;
			} else {
				count(TC_C_FAILED);
			}
		}
	}
	/* The loss check, for every connection that could still be switched to BBR. One already on
	 * it by another choice than ours (the kernel default) is found when the check fires. */
	if (!(flags & (TC_F_APP | TC_F_IS_BBR)) && bbr < TC_ALG_MAX)
		want |= BPF_SOCK_OPS_RETRANS_CB_FLAG;
	/* Per-CPU fast path: most connections of a busy path are folded from this CPU's memory. */
	n = bpfp_rate_limit_percpu(path_rl_key(&key), TC_SAMPLE);
	if (n) {
		/* The path's sample for this interval: this connection reports at its close. */
		alg_name(tp, s.initial);
		if (is_bbr(s.initial))
			flags |= TC_F_IS_BBR;
		if (ops->ecn_flags & 1 /* TCP_ECN_OK */)
			flags |= TC_F_ECN;
		s.flags = flags;
		s.count = n;
		s.key = key;
		cookie = bpf_get_socket_cookie(ops);
		if (!bpf_map_update_elem(&tc_socks, &cookie, &s, BPF_ANY))
			want |= BPF_SOCK_OPS_STATE_CB_FLAG;
	}
	/* Active and passive sockets alike; a non-zero return names flags this kernel lacks. */
	if (want && bpf_sock_ops_cb_flags_set(ops, want))
		count(TC_C_CB_REFUSED);
}

static __always_inline void retransmitted(struct bpf_sock_ops *ops, struct bpf_sock *sk,
					  struct bpfp_config *cfg)
{
	__u64 bbr = param(cfg, bbr, TC_NO_ALG);
	char cur[TC_NAME_LEN];
	struct tcp_sock *tp;
	struct tc_sock *s;
	__u32 allowed;
	__u64 cookie;

	/* total_retrans already counts this retransmission (the kernel adds it before sending)
	 * and segs_out counts every segment sent, retransmissions included. The ratio only rises at a
	 * retransmission, so checking here sees each of its peaks. Before 1 << loss_shift segments
	 * are sent there is no rate to judge: one early retransmission (a tail-loss probe or an RTO
	 * after the receiver stalled for a few ms, on a clean path) would exceed "1/64" on its own,
	 * and bpftune switched such connections to BBR. */
	count(TC_C_RETRANS);
	allowed = ops->segs_out >> param(cfg, loss_shift, 6);
	if (!allowed || ops->total_retrans <= allowed)
		return;
	count(TC_C_LOSSY);
	if (bbr >= TC_ALG_MAX)
		return;
	tp = bpf_skc_to_tcp_sock(sk);
	if (!tp)
		return;
	alg_name(tp, cur);
	/* Already on BBR (the kernel default, say): nothing to switch. */
	if (!is_bbr(cur)) {
		if (!(cfg && (cfg->flags & TC_CFG_ADVISE)) && set_alg(ops, bbr)) {
			count(TC_C_FAILED);
			return;
		}
		cookie = bpf_get_socket_cookie(ops);
		s = bpf_map_lookup_elem(&tc_socks, &cookie);
		if (s)
			s->flags |= TC_F_FORCED;
		count(TC_C_FORCED);
		count(TC_C_CHOSEN + bbr);
	}
	/* Done with retransmissions: only the close (if this is the sampled one) is still of
	 * interest. */
	bpf_sock_ops_cb_flags_set(ops, ops->bpf_sock_ops_cb_flags & ~BPF_SOCK_OPS_RETRANS_CB_FLAG);
}

static __always_inline void closing(struct bpf_sock_ops *ops, struct bpf_sock *sk)
{
	struct tc_sample *smp;
	struct bpfp_event *e;
	struct tc_sock *s;
	__u64 cookie;

	if (ops->args[1] != TCP_CLOSE)
		return;
	/* Only the sampled connections have the state callbacks, and an entry. */
	cookie = bpf_get_socket_cookie(ops);
	s = bpf_map_lookup_elem(&tc_socks, &cookie);
	if (!s)
		return;
	/* Not bpfp_event_reserve: sockops may not read the current task (and runs in softirq). */
	e = bpf_ringbuf_reserve(&bpfp_events, sizeof(*e), 0);
	if (!e) {
		bpfp_stat_add(BPFP_STAT_DROPPED, 1);
		bpf_map_delete_elem(&tc_socks, &cookie);
		return;
	}
	__builtin_memset(e, 0, sizeof(*e));
	e->version = BPFP_EVENT_VERSION;
	e->tuner = BPFP_TUNER_ID;
	e->kind = TC_SAMPLE;
	e->count = s->count;
	e->netns = s->key.netns;
	e->rl_netns = path_rl_key(&s->key);
	e->rl_kind = TC_SAMPLE;
	e->ts_ns = bpf_ktime_get_ns();
	smp = &bpfp_payload(e)->sample;
	__builtin_memcpy(smp->addr, s->key.addr, sizeof(s->key.addr));
	__builtin_memcpy(smp->initial, s->initial, TC_NAME_LEN);
	smp->flags = s->flags;
	smp->min_rtt_us = ops->rtt_min;
	smp->srtt_us = ops->srtt_us;
	smp->rate_delivered = ops->rate_delivered;
	smp->rate_interval_us = ops->rate_interval_us;
	smp->mss = ops->mss_cache;
	smp->total_retrans = ops->total_retrans;
	smp->segs_out = ops->segs_out;
	/* No wake-up of the reader: it runs inside this program's time (an interrupt and a task
	 * wake-up, ~25 us measured here, 2 us per connection at 100 samples/s) and learning can
	 * wait for the reader's next wake-up or its 1 s poll. Unless the ring fills up. */
	bpf_ringbuf_submit(e, bpf_ringbuf_query(&bpfp_events, BPF_RB_AVAIL_DATA) >
				      bpf_ringbuf_query(&bpfp_events, BPF_RB_RING_SIZE) / 4 ?
			      BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP);
	bpfp_stat_add(BPFP_STAT_EMITTED, 1);
	bpf_map_delete_elem(&tc_socks, &cookie);
}

/* Most calls are ops this program ignores (a connection makes a dozen or more: connect, timeout
 * and window init, ECN, each state change): the op first, the config only where it is used. */
SEC("sockops")
int bpfp_tc_sockops(struct bpf_sock_ops *ops)
{
	struct bpf_sock *sk;

	switch (ops->op) {
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		sk = ops->sk;
		if (sk)
			established(ops, sk, bpfp_cfg());
		break;
	case BPF_SOCK_OPS_RETRANS_CB:
		sk = ops->sk;
		if (sk)
			retransmitted(ops, sk, bpfp_cfg());
		break;
	case BPF_SOCK_OPS_STATE_CB:
		sk = ops->sk;
		if (sk)
			closing(ops, sk);
		break;
	}
	return 1;
}
