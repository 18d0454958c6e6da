// Harness self-test objects (kernel-matrix --smoke): one tiny program per hook kind, built with
// -DONLY=<n> into one object each. No vmlinux.h: nothing here dereferences a kernel struct, so the
// objects load unchanged on every kernel and test only the hook kinds themselves.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} hits SEC(".maps");

static __always_inline void bump(void)
{
	__u32 k = 0;
	__u64 *v = bpf_map_lookup_elem(&hits, &k);
	if (v)
		__sync_fetch_and_add(v, 1);
}

#if ONLY == 1
SEC("tp_btf/tcp_rcv_space_adjust")
int h_tp_btf(unsigned long long *ctx) { bump(); return 0; }
#elif ONLY == 2
SEC("fentry/tcp_rcv_space_adjust")
int h_fentry(unsigned long long *ctx) { bump(); return 0; }
#elif ONLY == 3
SEC("kprobe/tcp_rcv_space_adjust")
int h_kprobe(void *ctx) { bump(); return 0; }
#elif ONLY == 4
SEC("tracepoint/tcp/tcp_rcv_space_adjust")
int h_tracepoint(void *ctx) { bump(); return 0; }
#endif
