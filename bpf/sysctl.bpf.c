// SPDX-License-Identifier: GPL-2.0
/* sysctl tuner (admin-override detection): every sysctl write by a process in the watched cgroup
 * is reported with the writer's pid, command and network namespace, except bpfpilot's own writes
 * (config.param[0] = the daemon's tgid). The program always allows the write: it only watches.
 * Attached with a link, so it goes away with the daemon even after kill -9. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "bpfpilot_common.bpf.h"

char LICENSE[] SEC("license") = "GPL";

#define TUNER_SYSCTL 1
#define SY_WRITE 1

SEC("cgroup/sysctl")
int bpfp_sy_write(struct bpf_sysctl *ctx)
{
	struct bpfp_config *cfg = bpfp_cfg();
	struct task_struct *task;
	struct bpfp_event *e;
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;

	if (!ctx->write)
		return 1;
	if (cfg && cfg->param[0] == tgid)
		return 1;
	bpfp_stat_add(BPFP_STAT_HITS, 1);
	e = bpfp_event_reserve(TUNER_SYSCTL, SY_WRITE, 0, 1);
	if (!e)
		return 1;
	/* Full name relative to /proc/sys, e.g. "net/ipv4/tcp_rmem". */
	bpf_sysctl_get_name(ctx, e->data.s, sizeof(e->data.s), 0);
	task = (struct task_struct *)bpf_get_current_task();
	e->netns = BPF_CORE_READ(task, nsproxy, net_ns, ns.inum);
	bpfp_event_submit(e);
	return 1;
}

/* Fallback for kernels whose cgroup programs may not call bpf_get_current_task (5.10 and
 * older): no namespace in the event; userspace looks the writer's namespace up by pid. */
SEC("cgroup/sysctl")
int bpfp_sy_write_nt(struct bpf_sysctl *ctx)
{
	struct bpfp_config *cfg = bpfp_cfg();
	struct bpfp_event *e;
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;

	if (!ctx->write)
		return 1;
	if (cfg && cfg->param[0] == tgid)
		return 1;
	bpfp_stat_add(BPFP_STAT_HITS, 1);
	e = bpfp_event_reserve(TUNER_SYSCTL, SY_WRITE, 0, 1);
	if (!e)
		return 1;
	bpf_sysctl_get_name(ctx, e->data.s, sizeof(e->data.s), 0);
	bpfp_event_submit(e);
	return 1;
}
