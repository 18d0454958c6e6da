/* Socket field reads that must load on every supported kernel (5.10 .. 7.x). Layout-dependent
 * fields go through CO-RE: sk_userlocks and sk_protocol were 4- and 8-bit bitfields before 6.9
 * and 5.6 and are plain integers after, so they are read with BPF_CORE_READ_BITFIELD_PROBED,
 * which relocates byte offset, size and shifts for either layout. */
#ifndef BPFPILOT_SOCK_BPF_H
#define BPFPILOT_SOCK_BPF_H

/* Field reads: tp_btf programs get typed pointers and read fields with plain loads (~1 ns each);
 * the classic tracepoint, raw_tp and kprobe flavours go through bpf_probe_read_kernel (~20 ns).
 * `btf` is a compile-time constant in every caller, so clang drops the other branch. */
#define RD(btf, p, ...) ((btf) ? (p)->__VA_ARGS__ : BPF_CORE_READ(p, __VA_ARGS__))

#define BPFP_SOCK_SNDBUF_LOCK 1
#define BPFP_SOCK_RCVBUF_LOCK 2
#define BPFP_IPPROTO_TCP 6

static __always_inline __u32 bpfp_sk_userlocks(struct sock *sk)
{
	return BPF_CORE_READ_BITFIELD_PROBED(sk, sk_userlocks);
}

/* The same relocated read through a typed (tp_btf/fentry) pointer: a plain load, no helper call;
 * the verifier lets a typed load cover a bitfield's storage unit. */
static __always_inline __u32 bpfp_sk_userlocks_typed(struct sock *sk)
{
	return BPF_CORE_READ_BITFIELD(sk, sk_userlocks);
}

static __always_inline __u32 bpfp_sk_protocol(struct sock *sk)
{
	return BPF_CORE_READ_BITFIELD_PROBED(sk, sk_protocol);
}

static __always_inline struct net *bpfp_sk_net(struct sock *sk)
{
	return BPF_CORE_READ(sk, __sk_common.skc_net.net);
}

/* The namespace's inode number: the same number userspace sees in /proc/<pid>/ns/net. */
static __always_inline __u64 bpfp_net_inum(struct net *net)
{
	return BPF_CORE_READ(net, ns.inum);
}

#endif
