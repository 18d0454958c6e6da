// SPDX-License-Identifier: GPL-2.0
/* A program the verifier must reject (a hash map value used without the NULL check): the binding has
 * to turn that into a clear error and the process must stay up. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} vals SEC(".maps");

SEC("tp_btf/sched_process_exec")
int bpfp_bad_unchecked(void *ctx)
{
	__u32 k = 0;
	__u64 *v = bpf_map_lookup_elem(&vals, &k);
	return *v; /* no NULL check: rejected */
}

/* The same hook done right: where the rejected flavour above was chosen, this one is next. */
SEC("tp_btf/sched_process_exec")
int bpfp_bad_fixed(void *ctx)
{
	return 0;
}
