// SPDX-License-Identifier: GPL-2.0
/* sysctl tuner (admin-override detection). Reports writes to the sysctls bpfpilot manages (the
 * daemon fills bpfp_sy_managed) by a privileged writer, folded per (namespace, sysctl), except
 * bpfpilot's own writes (params.own_tgid = the daemon's tgid). Everything else is filtered here,
 * so a user looping over writes in a namespace of their own cannot fill the ring buffer and hide
 * the administrator's write. The program always allows the write: it only watches. Attached with
 * a link, so it goes away with the daemon even after kill -9. */
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

#define SY_NAME_LEN 64
#define CAP_NET_ADMIN_BIT 12

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

/* Managed sysctl names relative to /proc/sys ("net/ipv4/tcp_rmem", NUL-padded) -> index >= 1,
 * filled by userspace before attach. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, char[SY_NAME_LEN]);
	__type(value, __u32);
} bpfp_sy_managed SEC(".maps");

/* The administrator: a writer whose credentials belong to the initial user namespace with
 * euid 0 or CAP_NET_ADMIN. Root inside a user namespace a user created is not. */
static __always_inline int writer_is_admin(struct task_struct *task)
{
	const struct cred *cred = BPF_CORE_READ(task, cred);
	__u32 caps_low = 0;

	if (BPF_CORE_READ(cred, user_ns, level) != 0)
		return 0;
	if (BPF_CORE_READ(cred, euid.val) == 0)
		return 1;
	/* kernel_cap_t is u32[2] before 6.3 and one u64 since: on little endian (bpfpilot's
	 * targets) bit 12 is in the first 4 bytes of both. */
	bpf_core_read(&caps_low, sizeof(caps_low), &cred->cap_effective);
	return (caps_low >> CAP_NET_ADMIN_BIT) & 1;
}

SEC("cgroup/sysctl")
int bpfp_sy_write(struct bpf_sysctl *ctx)
{
	struct bpfp_config *cfg = bpfp_cfg();
	struct task_struct *task;
	struct bpfp_event *e;
	char name[SY_NAME_LEN] = {};
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	__u32 *index, count, rl_kind;
	__u64 netns;

	if (!ctx->write)
		return 1;
	if (cfg && bpfp_params(cfg)->own_tgid == tgid)
		return 1;
	bpfp_stat_add(BPFP_STAT_HITS, 1);
	/* Full name relative to /proc/sys; a longer one (-E2BIG) is no sysctl we manage. */
	if (bpf_sysctl_get_name(ctx, name, sizeof(name), 0) < 0)
		goto skip;
	index = bpf_map_lookup_elem(&bpfp_sy_managed, name);
	if (!index)
		goto skip;
	task = (struct task_struct *)bpf_get_current_task();
	if (!writer_is_admin(task))
		goto skip;
	netns = BPF_CORE_READ(task, nsproxy, net_ns, ns.inum);
	/* One event per (namespace, sysctl) a second: one is all an override needs. */
	rl_kind = SY_WRITE | (*index << 8);
	count = bpfp_rate_limit(netns, rl_kind);
	if (!count)
		return 1;
	e = bpfp_event_reserve(BPFP_TUNER_ID, SY_WRITE, netns, count, netns, rl_kind);
	if (!e)
		return 1;
	__builtin_memcpy(bpfp_payload(e)->write.name, name, sizeof(name));
	bpfp_event_submit(e);
	return 1;
skip:
	bpfp_stat_add(BPFP_STAT_SKIPPED, 1);
	return 1;
}

/* Fallback for kernels whose cgroup/sysctl programs may call none of the current-task helpers
 * (5.10: no bpf_get_current_pid_tgid, comm or task): only the sysctl's name and the new value of
 * managed sysctls, not rate limited (userspace tells its own writes apart by value and time). It
 * cannot tell who writes. */
SEC("cgroup/sysctl")
int bpfp_sy_write_nt(struct bpf_sysctl *ctx)
{
	struct bpfp_event *e;
	char name[SY_NAME_LEN] = {};

	if (!ctx->write)
		return 1;
	bpfp_stat_add(BPFP_STAT_HITS, 1);
	if (bpf_sysctl_get_name(ctx, name, sizeof(name), 0) < 0 ||
	    !bpf_map_lookup_elem(&bpfp_sy_managed, name)) {
		bpfp_stat_add(BPFP_STAT_SKIPPED, 1);
		return 1;
	}
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
	__builtin_memcpy(bpfp_payload(e)->no_writer.name, name, sizeof(bpfp_payload(e)->no_writer.name));
	bpfp_payload(e)->no_writer.name[sizeof(bpfp_payload(e)->no_writer.name) - 1] = 0;
	bpf_sysctl_get_new_value(ctx, bpfp_payload(e)->no_writer.value,
				 sizeof(bpfp_payload(e)->no_writer.value));
	bpfp_event_submit(e);
	return 1;
}
