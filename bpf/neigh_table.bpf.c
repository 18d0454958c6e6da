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

#define TUNER_NEIGH_TABLE 3
#define NT_AF_INET 2
#define NT_AF_INET6 10

/* Event kinds; keep in sync with src/tuners/neigh_table.ts (NT_KIND). */
enum {
	NT_NEAR_FULL = 1,
	NT_NEAR_EMPTY = 2,
};

/* Event flags. */
#define NT_FLAG_ALLOC_FAILED 1 /* the neighbour could not be created: the table was full */
#define NT_FLAG_NO_THRESH 2    /* thresholds from userspace's copy (classic tracepoint) */

/* Payload (ev.values): v[0] family, v[1] gc entries, v[2..4] gc_thresh1..3, v[5] ifindex,
 * then the device name in the last 16 bytes (data.s + 48). */
#define NT_DEV_OFFSET 48

/* config.param[0]: learning-rate shift (2..6); param[1], param[4]: the ARP and ND thresh3 at or
 * below which no nearly-empty event is sent (nothing to shrink); param[2], param[3]: the ARP and
 * ND gc_thresh3 for flavours that cannot read the table (classic tracepoint). */
static __always_inline __u64 cfg_param(int i, __u64 dflt)
{
	struct bpfp_config *cfg = bpfp_cfg();
	if (!cfg || i < 0 || i > 5)
		return dflt;
	return cfg->param[i] ? cfg->param[i] : dflt;
}

static __always_inline __u64 lr_shift(void)
{
	__u64 shift = cfg_param(0, 2);
	return shift < 2 || shift > 6 ? 2 : shift;
}

static __always_inline int nearly_full(long val, long limit)
{
	return limit > 0 && val >= limit - (limit >> lr_shift());
}

static __always_inline int nearly_empty(long val, long limit)
{
	return val <= (limit >> lr_shift());
}

static __always_inline int table_entries(struct neigh_table *tbl)
{
	if (bpf_core_field_exists(tbl->gc_entries))
		return BPF_CORE_READ(tbl, gc_entries.counter);
	return BPF_CORE_READ(tbl, entries.counter);
}

static __always_inline void emit(__u16 kind, __u16 flags, struct net_device *dev, long family,
				 long entries, long t1, long t2, long t3)
{
	struct bpfp_event *e;
	__u64 netns = 0;
	__u32 n;

	/* One key per family and kind: the table is the same whichever namespace filled it. */
	n = bpfp_rate_limit(0, kind * 16 + (family == NT_AF_INET6));
	if (!n)
		return;
	if (dev)
		netns = bpfp_net_inum(BPF_CORE_READ(dev, nd_net.net));
	e = bpfp_event_reserve(TUNER_NEIGH_TABLE, kind, netns, n);
	if (!e)
		return;
	e->flags = flags;
	e->data.v[0] = family;
	e->data.v[1] = entries;
	e->data.v[2] = t1;
	e->data.v[3] = t2;
	e->data.v[4] = t3;
	if (dev) {
		e->data.v[5] = BPF_CORE_READ(dev, ifindex);
		bpf_core_read_str(&e->data.s[NT_DEV_OFFSET], BPFP_DATA_LEN - NT_DEV_OFFSET, &dev->name);
	}
	bpfp_event_submit(e);
}

/* A neighbour is being created in `tbl` (failed = the table refused it). */
static __always_inline void on_create(struct neigh_table *tbl, struct net_device *dev, int failed)
{
	long entries, t3;

	if (!tbl)
		return;
	bpfp_stat_add(BPFP_STAT_HITS, 1);
	entries = table_entries(tbl);
	t3 = BPF_CORE_READ(tbl, gc_thresh3);
	if (!failed && !nearly_full(entries, t3))
		return;
	emit(NT_NEAR_FULL, failed ? NT_FLAG_ALLOC_FAILED : 0, dev, BPF_CORE_READ(tbl, family),
	     entries, BPF_CORE_READ(tbl, gc_thresh1), BPF_CORE_READ(tbl, gc_thresh2), t3);
}

/* A neighbour of `tbl` is being released. */
static __always_inline void on_release(struct neighbour *n)
{
	struct neigh_table *tbl;
	long family, entries, t3;

	if (!n)
		return;
	bpfp_stat_add(BPFP_STAT_HITS, 1);
	tbl = BPF_CORE_READ(n, tbl);
	if (!tbl)
		return;
	family = BPF_CORE_READ(tbl, family);
	t3 = BPF_CORE_READ(tbl, gc_thresh3);
	/* Only a table grown past where the tuner started can shrink (param[1] ARP, param[4] ND). */
	if (t3 <= (long)cfg_param(family == NT_AF_INET6 ? 4 : 1, 1024))
		return;
	entries = table_entries(tbl);
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
	on_create(tbl, dev, n == NULL);
	return 0;
}

SEC("raw_tp/neigh_create")
int BPF_PROG(bpfp_nt_cre_raw, struct neigh_table *tbl, struct net_device *dev, const void *pkey,
	     const struct neighbour *n)
{
	on_create(tbl, dev, n == NULL);
	return 0;
}

SEC("tp/neigh/neigh_create")
int bpfp_nt_cre_tp(struct trace_event_raw_neigh_create *ctx)
{
	long family, entries, t3;
	int failed;

	/* No table in this record: its entry count, and gc_thresh3 from userspace's copy. */
	bpfp_stat_add(BPFP_STAT_HITS, 1);
	family = BPF_CORE_READ(ctx, family);
	entries = BPF_CORE_READ(ctx, entries);
	failed = !BPF_CORE_READ(ctx, created);
	t3 = cfg_param(family == NT_AF_INET6 ? 3 : 2, 1024);
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
	on_create(tbl, dev, 0);
	return 0;
}

SEC("kprobe/__neigh_create")
int BPF_KPROBE(bpfp_nt_cre_kp, struct neigh_table *tbl, const void *pkey, struct net_device *dev)
{
	on_create(tbl, dev, 0);
	return 0;
}

/* --- release: neigh_cleanup_and_release, or bpftune's neigh_remove_one (may be inlined) --- */

SEC("tp_btf/neigh_cleanup_and_release")
int BPF_PROG(bpfp_nt_rel_btf, struct neighbour *n)
{
	on_release(n);
	return 0;
}

SEC("raw_tp/neigh_cleanup_and_release")
int BPF_PROG(bpfp_nt_rel_raw, struct neighbour *n)
{
	on_release(n);
	return 0;
}

SEC("fentry/neigh_remove_one")
int BPF_PROG(bpfp_nt_rel_fe, struct neighbour *n)
{
	on_release(n);
	return 0;
}

SEC("kprobe/neigh_remove_one")
int BPF_KPROBE(bpfp_nt_rel_kp, struct neighbour *n)
{
	on_release(n);
	return 0;
}
