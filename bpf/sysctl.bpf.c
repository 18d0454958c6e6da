// SPDX-License-Identifier: GPL-2.0
/* sysctl tuner (admin-override detection): every sysctl write by a process in the watched cgroup
 * is reported with the writer's pid, command and network namespace, except bpfpilot's own writes
 * (params.own_tgid = the daemon's tgid). The program always allows the write: it only watches.
 * Attached with a link, so it goes away with the daemon even after kill -9. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "bpfpilot_common.bpf.h"

char LICENSE[] SEC("license") = "GPL";

enum sy_kind {
	SY_WRITE = 1,
};

/* event flags */
#define SY_FLAG_NO_WRITER 1

union sy_payload {
	struct {
		char name[BPFP_DATA_LEN];	/* relative to /proc/sys, e.g. "net/ipv4/tcp_rmem" */
	} write;
	struct {			/* SY_FLAG_NO_WRITER */
		char name[40];
		char value[24];		/* the written text: enough for 3 numbers */
	} no_writer;
};

struct sy_params {
	__u64 own_tgid;		/* the daemon: its own writes are not reported */
};

BPFP_CONTRACT(sysctl, 1, enum sy_kind, union sy_payload, struct sy_params)

SEC("cgroup/sysctl")
int bpfp_sy_write(struct bpf_sysctl *ctx)
{
	struct bpfp_config *cfg = bpfp_cfg();
	struct task_struct *task;
	struct bpfp_event *e;
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;

	if (!ctx->write)
		return 1;
	if (cfg && bpfp_params(cfg)->own_tgid == tgid)
		return 1;
	bpfp_stat_add(BPFP_STAT_HITS, 1);
	e = bpfp_event_reserve(BPFP_TUNER_ID, SY_WRITE, 0, 1);
	if (!e)
		return 1;
	bpf_sysctl_get_name(ctx, bpfp_payload(e)->write.name, sizeof(bpfp_payload(e)->write.name), 0);
	task = (struct task_struct *)bpf_get_current_task();
	e->netns = BPF_CORE_READ(task, nsproxy, net_ns, ns.inum);
	bpfp_event_submit(e);
	return 1;
}

/* Fallback for kernels whose cgroup/sysctl programs may call none of the current-task helpers
 * (5.10: no bpf_get_current_pid_tgid, comm or task): only the sysctl's name and the new value.
 * Userspace then cannot tell the writer; it recognises its own writes by name, value and time. */
SEC("cgroup/sysctl")
int bpfp_sy_write_nt(struct bpf_sysctl *ctx)
{
	struct bpfp_event *e;
	__u32 zero = 0;
	__u64 *hits;

	if (!ctx->write)
		return 1;
	hits = bpf_map_lookup_elem(&bpfp_stats, &zero);
	if (hits)
		__sync_fetch_and_add(hits, 1);
	e = bpf_ringbuf_reserve(&bpfp_events, sizeof(*e), 0);
	if (!e) {
		bpfp_stat_add(BPFP_STAT_DROPPED, 1);
		return 1;
	}
	__builtin_memset(e, 0, sizeof(*e));
	e->version = BPFP_EVENT_VERSION;
	e->tuner = BPFP_TUNER_ID;
	e->kind = SY_WRITE;
	e->flags = SY_FLAG_NO_WRITER;
	e->count = 1;
	e->ts_ns = bpf_ktime_get_ns();
	bpf_sysctl_get_name(ctx, bpfp_payload(e)->no_writer.name,
			    sizeof(bpfp_payload(e)->no_writer.name), 0);
	bpf_sysctl_get_new_value(ctx, bpfp_payload(e)->no_writer.value,
				 sizeof(bpfp_payload(e)->no_writer.value));
	bpfp_event_submit(e);
	return 1;
}
