// SPDX-License-Identifier: GPL-2.0
/* neigh_table tuner: notices the ARP/ND table nearing gc_thresh3 when a neighbour is created (or
 * failing to create one because the table is full), and nearly empty when one is released, and
 * tells userspace (rate-limited per family and kind), which re-reads the thresholds and decides.
 * The tables are global: one per family for every namespace, so the rate-limit key ignores the
 * namespace; the event still names the device's namespace so a container's pressure is logged as
 * such. The kernel limits gc_entries (entries that garbage collection may drop), not entries:
 * permanent entries do not count towards gc_thresh3 since 4.19, so gc_entries is read where it
 * exists. Flavours per hook in the order src/tuners/neigh_table.ts declares them. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "bpfpilot_common.bpf.h"
#include "bpfpilot_sock.bpf.h"

char LICENSE[] SEC("license") = "GPL";

#define NT_AF_INET 2
#define NT_AF_INET6 10
#define NT_IFNAMSIZ 16

enum nt_kind {
	NT_NEAR_FULL = 1,  /* created (or refused) near gc_thresh3 */
	NT_NEAR_EMPTY = 2, /* released with the table nearly empty */
};

/* Event flags. */
#define NT_FLAG_ALLOC_FAILED 1 /* the neighbour could not be created: the table was full */
#define NT_FLAG_NO_THRESH 2    /* thresholds from userspace's copy (classic tracepoint) */

union nt_payload {
	struct {
		__u64 family;	   /* AF_INET, AF_INET6 */
		__u64 entries;	   /* gc_entries (entries before 4.19) */
		__u64 thresh[3];   /* gc_thresh1..3 */
		__u64 ifindex;	   /* 0: unknown */
		char dev[NT_IFNAMSIZ]; /* "": unknown */
	} table;
};

struct nt_params {
	__u64 lr_shift;	     /* act within limit >> shift of the limit; 2..6 */
	__u64 floor_arp;     /* ARP thresh3 at or below which releases are not reported */
	__u64 thresh3_arp;   /* gc_thresh3 for the classic tracepoint, which cannot read it */
	__u64 thresh3_nd;
	__u64 floor_nd;
};

BPFP_CONTRACT(neigh_table, 3, enum nt_kind, union nt_payload, struct nt_params)

static __always_inline __u64 param_or(__u64 v, __u64 dflt)
{
	return v ? v : dflt;
}

static __always_inline __u64 lr_shift(void)
{
	struct bpfp_config *cfg = bpfp_cfg();
	__u64 shift = cfg ? bpfp_params(cfg)->lr_shift : 2;
	return shift < 2 || shift > 6 ? 2 : shift;
}

/* The release threshold (floor) or classic-tracepoint thresh3 of a family, default 1024. */
static __always_inline long family_floor(long family)
{
	struct bpfp_config *cfg = bpfp_cfg();
	if (!cfg)
		return 1024;
	return param_or(family == NT_AF_INET6 ? bpfp_params(cfg)->floor_nd :
						bpfp_params(cfg)->floor_arp, 1024);
}

static __always_inline long family_thresh3(long family)
{
	struct bpfp_config *cfg = bpfp_cfg();
	if (!cfg)
		return 1024;
	return param_or(family == NT_AF_INET6 ? bpfp_params(cfg)->thresh3_nd :
						bpfp_params(cfg)->thresh3_arp, 1024);
}

static __always_inline int nearly_full_by(long val, long limit, __u64 shift)
{
	return limit > 0 && val >= limit - (limit >> shift);
}

static __always_inline int nearly_full(long val, long limit)
{
	return nearly_full_by(val, limit, lr_shift());
}

static __always_inline int nearly_empty(long val, long limit)
{
	return val <= (limit >> lr_shift());
}

/* `btf`: typed pointers (tp_btf, fentry), read with plain loads (RD). */
static __always_inline int table_entries(struct neigh_table *tbl, int btf)
{
	if (bpf_core_field_exists(tbl->gc_entries))
		return RD(btf, tbl, gc_entries.counter);
	return RD(btf, tbl, entries.counter);
}

static __always_inline void emit(__u16 kind, __u16 flags, struct net_device *dev, long family,
				 long entries, long t1, long t2, long t3)
{
	struct bpfp_event *e;
	__u64 netns = 0;
	/* One key per family and kind: the table is the same whichever namespace filled it. */
	__u32 rl_kind = kind * 16 + (family == NT_AF_INET6), n;

	n = bpfp_rate_limit(0, rl_kind);
	if (!n)
		return;
	if (dev)
		netns = bpfp_net_inum(BPF_CORE_READ(dev, nd_net.net));
	e = bpfp_event_reserve(BPFP_TUNER_ID, kind, netns, n, 0, rl_kind);
	if (!e)
		return;
	e->flags = flags;
	bpfp_payload(e)->table.family = family;
	bpfp_payload(e)->table.entries = entries;
	bpfp_payload(e)->table.thresh[0] = t1;
	bpfp_payload(e)->table.thresh[1] = t2;
	bpfp_payload(e)->table.thresh[2] = t3;
	if (dev) {
		bpfp_payload(e)->table.ifindex = BPF_CORE_READ(dev, ifindex);
		bpf_core_read_str(bpfp_payload(e)->table.dev, NT_IFNAMSIZ, &dev->name);
	}
	bpfp_event_submit(e);
}

/* A neighbour is being created in `tbl` (failed = the table refused it). The cheap test first:
 * the loosest shift any configuration allows (2), from the table alone, before the counter
 * (BPFP_STAT_HITS) and the config read. */
static __always_inline void on_create(struct neigh_table *tbl, struct net_device *dev, int failed,
				      int btf)
{
	long entries, t3;

	if (!tbl)
		return;
	entries = table_entries(tbl, btf);
	t3 = RD(btf, tbl, gc_thresh3);
	if (!failed && !nearly_full_by(entries, t3, 2))
		return;
	bpfp_stat_add(BPFP_STAT_HITS, 1);
	if (!failed && !nearly_full(entries, t3))
		return;
	emit(NT_NEAR_FULL, failed ? NT_FLAG_ALLOC_FAILED : 0, dev, BPF_CORE_READ(tbl, family),
	     entries, BPF_CORE_READ(tbl, gc_thresh1), BPF_CORE_READ(tbl, gc_thresh2), t3);
}

/* A neighbour of `tbl` is being released. Counted (BPFP_STAT_HITS) past the cheap test. */
static __always_inline void on_release(struct neighbour *n, int btf)
{
	struct neigh_table *tbl;
	long family, entries, t3;

	if (!n)
		return;
	tbl = RD(btf, n, tbl);
	if (!tbl)
		return;
	family = RD(btf, tbl, family);
	t3 = RD(btf, tbl, gc_thresh3);
	/* Only a table grown past where the tuner started can shrink (params floor_arp, floor_nd). */
	if (t3 <= family_floor(family))
		return;
	bpfp_stat_add(BPFP_STAT_HITS, 1);
	entries = table_entries(tbl, btf);
	if (!nearly_empty(entries, t3))
		return;
	emit(NT_NEAR_EMPTY, 0, BPF_CORE_READ(n, dev), family, entries,
	     BPF_CORE_READ(tbl, gc_thresh1), BPF_CORE_READ(tbl, gc_thresh2), t3);
}

/* --- creation: the neigh_create tracepoint (n is NULL when the table was full) --- */

SEC("tp_btf/neigh_create")
int BPF_PROG(bpfp_nt_cre_btf, struct neigh_table *tbl, struct net_device *dev, const void *pkey,
	     const struct neighbour *n)
{
	on_create(tbl, dev, n == NULL, 1);
	return 0;
}

SEC("raw_tp/neigh_create")
int BPF_PROG(bpfp_nt_cre_raw, struct neigh_table *tbl, struct net_device *dev, const void *pkey,
	     const struct neighbour *n)
{
	on_create(tbl, dev, n == NULL, 0);
	return 0;
}

SEC("tp/neigh/neigh_create")
int bpfp_nt_cre_tp(struct trace_event_raw_neigh_create *ctx)
{
	long family, entries, t3;
	int failed;

	/* No table in this record: its entry count, and gc_thresh3 from userspace's copy. */
	family = BPF_CORE_READ(ctx, family);
	entries = BPF_CORE_READ(ctx, entries);
	failed = !BPF_CORE_READ(ctx, created);
	t3 = family_thresh3(family);
	if (!failed && !nearly_full_by(entries, t3, 2))
		return 0;
	bpfp_stat_add(BPFP_STAT_HITS, 1);
	if (!failed && !nearly_full(entries, t3))
		return 0;
	emit(NT_NEAR_FULL, NT_FLAG_NO_THRESH | (failed ? NT_FLAG_ALLOC_FAILED : 0), NULL, family,
	     entries, 0, 0, t3);
	return 0;
}

/* __neigh_create (exported, so not inlined) runs before the allocation: entries as they are. */
SEC("fentry/__neigh_create")
int BPF_PROG(bpfp_nt_cre_fe, struct neigh_table *tbl, const void *pkey, struct net_device *dev)
{
	on_create(tbl, dev, 0, 1);
	return 0;
}

SEC("kprobe/__neigh_create")
int BPF_KPROBE(bpfp_nt_cre_kp, struct neigh_table *tbl, const void *pkey, struct net_device *dev)
{
	on_create(tbl, dev, 0, 0);
	return 0;
}

/* --- release: neigh_cleanup_and_release, or bpftune's neigh_remove_one (may be inlined) --- */

SEC("tp_btf/neigh_cleanup_and_release")
int BPF_PROG(bpfp_nt_rel_btf, struct neighbour *n)
{
	on_release(n, 1);
	return 0;
}

SEC("raw_tp/neigh_cleanup_and_release")
int BPF_PROG(bpfp_nt_rel_raw, struct neighbour *n)
{
	on_release(n, 0);
	return 0;
}

SEC("fentry/neigh_remove_one")
int BPF_PROG(bpfp_nt_rel_fe, struct neighbour *n)
{
	on_release(n, 1);
	return 0;
}

SEC("kprobe/neigh_remove_one")
int BPF_KPROBE(bpfp_nt_rel_kp, struct neighbour *n)
{
	on_release(n, 0);
	return 0;
}
