/* Shared by every bpfpilot BPF object: the one event format (versioned, parsed with DataView in
 * src/tuning/event.ts), per-CPU statistics and the kernel-side rate limiter. Keep the layout in
 * sync with src/tuning/event.ts; bump BPFP_EVENT_VERSION on any change. */
#ifndef BPFPILOT_H
#define BPFPILOT_H

#define BPFP_EVENT_VERSION 2
#define BPFP_DATA_LEN 64
#define BPFP_COMM_LEN 16

/* 128 bytes, no implicit padding. */
struct bpfp_event {
	__u16 version;   /* BPFP_EVENT_VERSION */
	__u16 tuner;     /* tuner id, see src/tuners/registry.ts */
	__u16 kind;      /* tuner-specific event kind (usually a tunable or scenario) */
	__u16 flags;
	__u32 pid;       /* tgid that caused the event (sysctl writer, socket owner) */
	__u32 count;     /* raw hook hits folded into this event by the rate limiter */
	__u64 netns;     /* network namespace cookie (or inode number where no cookie) */
	__u64 ts_ns;     /* bpf_ktime_get_ns() */
	union {
		__u64 v[BPFP_DATA_LEN / 8];
		char s[BPFP_DATA_LEN];
	} data;
	char comm[BPFP_COMM_LEN];
	__u64 rl_netns;  /* the rate-limit key this event was let through under (struct bpfp_rl_key): */
	__u32 rl_kind;   /* what userspace mutes when nothing it could receive changes anything */
	__u32 rl_pad;
};

/* Per-CPU statistics slots, summed over CPUs in userspace. */
enum bpfp_stat {
	/* Hook hits past the hook's cheap tests, those that turn away most hits from the context,
	 * the socket and its namespace's limit alone: hits they turn away cost no counter (an
	 * atomic add into per-CPU memory that is cold between hits). The kernel's run_cnt
	 * (kernel.bpf_stats_enabled=1, bpftool prog show) counts every invocation. */
	BPFP_STAT_HITS = 0,
	BPFP_STAT_EMITTED = 1,     /* events submitted to the ring buffer */
	BPFP_STAT_SUPPRESSED = 2,  /* folded by the rate limiter */
	BPFP_STAT_DROPPED = 3,     /* ring buffer full: event lost */
	BPFP_STAT_SKIPPED = 4,     /* filtered (e.g. application-locked socket) */
	BPFP_STAT_MUTED = 5,       /* not sent: userspace muted the rate-limit key (see bpfp_rl_val) */
	BPFP_STAT_MAX = 8,
};

/* Rate-limiter key: one emission per (netns, kind) per interval. */
struct bpfp_rl_key {
	__u64 netns;
	__u32 kind;
	__u32 pad;
};

/* mute_until_ns: userspace's "don't resend" (at its ceiling, cooling down, overridden). Hits
 * before it are counted as muted and dropped; 0 = not muted, BPFP_MUTED_UNTIL_CLEARED = until
 * userspace deletes the entry (the limit or the state changed). Same clock as bpf_ktime_get_ns.
 * mute_need: 0 mutes every hit; else only hits whose evidence (bpfp_rate_limit_need: tcp_buffer's
 * need per round trip) is at most this, so a bigger one still gets through at once. */
#define BPFP_MUTED_UNTIL_CLEARED 0xffffffffffffffffULL
struct bpfp_rl_val {
	__u64 last_ns;
	__u64 folded;  /* hits folded since last emission, atomically added */
	__u64 mute_until_ns;
	__u64 mute_need;
};

/* Userspace-written configuration, one entry in each object's `config` array map. */
struct bpfp_config {
	__u64 rl_interval_ns;  /* minimum gap between two events for one rate-limit key; 0 = 1 s */
	__u32 filter_tgid;     /* only this tgid's events pass (tests, benchmarks); 0 = all */
	__u32 flags;           /* tuner-specific switches */
	__u64 param[6];        /* tuner-specific thresholds */
};

#endif
