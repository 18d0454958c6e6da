// SPDX-License-Identifier: GPL-2.0
/* Attach-kind probes: one trivial program per attach kind. src/kernel/probe.ts loads exactly one of
 * them at a time, aimed at a hook's real target (bpf_program__set_attach_target or the attach
 * call), and attaches it for real: libbpf's program-type probe says "no" to tracing programs
 * that do load, and BTF presence does not mean attachable, so only a real load tells. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

SEC("tp_btf")
int bpfp_pr_tp_btf(void *ctx) { return 0; }

SEC("raw_tp")
int bpfp_pr_raw_tp(void *ctx) { return 0; }

SEC("tracepoint")
int bpfp_pr_tp(void *ctx) { return 0; }

SEC("fentry")
int bpfp_pr_fentry(void *ctx) { return 0; }

SEC("kprobe")
int bpfp_pr_kprobe(void *ctx) { return 0; }

SEC("sockops")
int bpfp_pr_sockops(struct bpf_sock_ops *ctx) { return 1; }

SEC("cgroup/sysctl")
int bpfp_pr_sysctl(struct bpf_sysctl *ctx) { return 1; }

/* Helper probe: bpf_map_lookup_percpu_elem exists from 5.19 only (bpftrace's field incident). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} pr_percpu SEC(".maps");

SEC("tracepoint")
int bpfp_pr_percpu(void *ctx)
{
	__u32 k = 0;
	bpf_map_lookup_percpu_elem(&pr_percpu, &k, 0);
	return 0;
}
