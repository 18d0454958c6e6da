// SPDX-License-Identifier: GPL-2.0
/* tcp_buffer tuner: notices sockets whose buffers approach the namespace's tcp_rmem/tcp_wmem max
 * and TCP memory approaching tcp_mem, and tells userspace (rate-limited per netns and kind)
 * with what the kernel tried to grow the buffer to, so userspace grows the limit in proportion;
 * it re-reads the live sysctls and decides. Hot hooks read through the typed tp_btf context and
 * bail out on the cheapest test first. Each hook exists in four flavours, tried in the
 * order src/tuners/tcp_buffer.ts declares: tp_btf, classic tracepoint, fentry, kprobe; only
 * the flavour the probe chose is loaded. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "bpfpilot_common.bpf.h"
#include "bpfpilot_sock.bpf.h"

char LICENSE[] SEC("license") = "GPL";

enum tb_kind {
	TB_RMEM_NEAR_MAX = 1,
	TB_WMEM_NEAR_MAX = 2,
	TB_MEM_PRESSURE = 3,
	TB_MEM_EXHAUSTION = 4,
	TB_MEM_EXCEEDED = 5,
	TB_SYN_QUEUE_FULL = 6,
};

union tb_payload {
	struct {		/* TB_RMEM_NEAR_MAX, TB_WMEM_NEAR_MAX */
		__u64 buf;	/* sk_rcvbuf / sk_sndbuf */
		__u64 limit;	/* tcp_rmem[2] / tcp_wmem[2] */
		__u64 srtt_us;
		__u64 userlocks;
		__u64 want;	/* the size the kernel tried to grow the buffer to; 0: unknown */
		__u64 used;	/* the buffer the path's delivery rate needs per srtt (rcv: the
				 * arrival rate, rcv_arrived_need; snd: in send-buffer truesize,
				 * snd_need); 0: unknown */
	} buffer;
	struct {		/* TB_MEM_* */
		__u64 allocated; /* pages (4 KiB quanta before 5.16) */
		__u64 tcp_mem[3];
	} mem;
	struct {		/* TB_SYN_QUEUE_FULL */
		__u64 qlen;		/* half-open requests queued on the listener */
		__u64 max_ack_backlog;	/* the listener's backlog (listen() capped by somaxconn) */
		__u64 max_syn_backlog;	/* the netns's tcp_max_syn_backlog */
		__u64 syncookies;	/* the netns's tcp_syncookies */
		__u64 port;		/* the listener's local port */
	} syn;
};

struct tb_params {
	__u64 lr_shift;		/* act within limit >> shift of the limit; 2..6 */
};

BPFP_CONTRACT(tcp_buffer, 2, enum tb_kind, union tb_payload, struct tb_params)

/* params.lr_shift: learning-rate shift (act within limit >> shift of the limit; 2..6). */
static __always_inline int nearly_full(long val, long limit, __u64 shift)
{
	if (shift < 2 || shift > 6)
		shift = 2;
	return limit > 0 && val >= limit - (limit >> shift);
}

/* Read once per hit, past the cheap tests, and passed down. A hit costs mostly the memory it
 * touches (cache and TLB misses between hits, not instructions): tests first use the loosest
 * shift any configuration allows (2), so a buffer far from the max is turned away without
 * reading the config map. */
static __always_inline __u64 lr_shift(void)
{
	struct bpfp_config *cfg = bpfp_cfg();
	return cfg ? bpfp_params(cfg)->lr_shift : 2;
}

/* tcp_mem (pages) and pages allocated, from the protocol the socket uses. */
static __always_inline int read_mem(struct sock *sk, long *allocated, long mem[3])
{
	struct proto *prot = BPF_CORE_READ(sk, __sk_common.skc_prot);
	atomic_long_t *alloc = BPF_CORE_READ(prot, memory_allocated);
	long *sysctl_mem = BPF_CORE_READ(prot, sysctl_mem);

	if (!alloc || !sysctl_mem)
		return -1;
	if (bpf_probe_read_kernel(allocated, sizeof(*allocated), &alloc->counter))
		return -1;
	if (bpf_probe_read_kernel(mem, 3 * sizeof(long), sysctl_mem))
		return -1;
	return 0;
}

static __always_inline void emit_mem(__u16 kind, __u64 netns, long allocated, long mem[3])
{
	struct bpfp_event *e;
	__u32 n = bpfp_rate_limit(0, kind); /* tcp_mem is global: one key for all namespaces */

	if (!n)
		return;
	e = bpfp_event_reserve(BPFP_TUNER_ID, kind, netns, n, 0, kind);
	if (!e)
		return;
	bpfp_payload(e)->mem.allocated = allocated;
	bpfp_payload(e)->mem.tcp_mem[0] = mem[0];
	bpfp_payload(e)->mem.tcp_mem[1] = mem[1];
	bpfp_payload(e)->mem.tcp_mem[2] = mem[2];
	bpfp_event_submit(e);
}

/* bpftune's tcp_nearly_out_of_memory: exhaustion first, then pressure. `shift`: lr_shift(). */
static __always_inline int check_mem(struct sock *sk, __u64 netns, int force, __u64 shift)
{
	long allocated = 0, mem[3] = {};

	if (read_mem(sk, &allocated, mem))
		return 0;
	if (nearly_full(allocated, mem[2], shift)) {
		emit_mem(TB_MEM_EXHAUSTION, netns, allocated, mem);
		return 1;
	}
	if (force || nearly_full(allocated, mem[1], shift)) {
		emit_mem(TB_MEM_PRESSURE, netns, allocated, mem);
		return 1;
	}
	return 0;
}

/* SOCK_NOSPACE in socket->flags (bit 2 since 2.6): the application found the send buffer full. */
#define BPFP_SOCK_NOSPACE 2

/* Receive side: the rate-limit key's kind also names the max the socket ran into (KiB), so the
 * first socket to reach a max userspace just changed is reported at once, not up to an interval
 * later. A receive buffer held at a max grows again only when one period's data beats the
 * socket's record (tcp_rcv_space_adjust), which a window-limited flow does seconds apart: a
 * raise that comes after it stopped climbing is lost. Events at the same max keep the pace. */
static __always_inline __u32 rl_kind_of(__u16 kind, long limit)
{
	if (kind != TB_RMEM_NEAR_MAX)
		return kind;
	return kind | ((__u32)(limit >> 10) & 0xffffff) << 8;
}

/* Rate limit first, then the memory check (several probe reads): a folded hit costs neither.
 * Once a trimmed max has settled, userspace mutes the key up to the need it would act on
 * (tcp_buffer_rules.ts growthNeed): the evidence is the path's need, so only a socket with a
 * bigger need is sent, at once. Also from a socket above the max (grown before the trim): its
 * need is the arrival rate per round trip, the path's, not its buffer's; muting it whatever it
 * measured left a max trimmed on a slow-start need (0.46-0.67x the path's) where it was. */
static __always_inline void emit_buffer(struct sock *sk, __u16 kind, __u64 netns, long buf,
					long limit, long want, long used, __u32 srtt, __u32 locks,
					__u64 shift)
{
	struct bpfp_event *e;
	__u32 rl_kind = rl_kind_of(kind, limit);
	__u32 n = bpfp_rate_limit_need(netns, rl_kind, used < 0 ? 0 : used);

	if (!n)
		return;
	if (check_mem(sk, netns, 0, shift))
		return; /* no buffer growth near memory pressure */
	e = bpfp_event_reserve(BPFP_TUNER_ID, kind, netns, n, netns, rl_kind);
	if (!e)
		return;
	bpfp_payload(e)->buffer.buf = buf;
	bpfp_payload(e)->buffer.limit = limit;
	bpfp_payload(e)->buffer.srtt_us = srtt >> 3;
	bpfp_payload(e)->buffer.userlocks = locks;
	bpfp_payload(e)->buffer.want = want;
	bpfp_payload(e)->buffer.used = used;
	bpfp_event_submit(e);
}

/* Buffer bytes for a window of `win` bytes: tcp_space_from_win (scaling_ratio since 6.6, else
 * tcp_adv_win_scale 1: half the buffer is window). */
static __always_inline __u64 space_from_win(struct tcp_sock *tp, int btf, __u64 win)
{
	if (bpf_core_field_exists(tp->scaling_ratio)) {
		__u8 ratio = RD(btf, tp, scaling_ratio);
		if (ratio)
			return (win << 8) / ratio;
	}
	return win << 1;
}

/* The receive buffer the kernel's auto-tuning (tcp_rcvbuf_grow / tcp_rcv_space_adjust) is about
 * to ask for: twice what the application read in the last RTT, plus the slow-start allowance,
 * turned from window into buffer bytes (mirrors net/ipv4/tcp_input.c); 0 when not growing.
 * `*used`: the buffer the path's delivery rate needs for one smoothed RTT (`srtt_us`, 0: unknown),
 * without the 2x auto-tuning adds for losses. The period's data alone is no measure of it: the
 * period (the receive-RTT estimate, or longer until the next read) runs long on a queued path. */
static __always_inline long rcv_want(struct tcp_sock *tp, int btf, __u32 srtt_us, long *used)
{
	__u64 elapsed = RD(btf, tp, tcp_mstamp) - RD(btf, tp, rcvq_space.time);
	__u32 copied_seq = RD(btf, tp, copied_seq);
	__u32 space = RD(btf, tp, rcvq_space.space);
	__u32 copied = copied_seq - RD(btf, tp, rcvq_space.seq);
	__u32 inq = RD(btf, tp, rcv_nxt) - copied_seq;
	__u64 win, grow;

	*used = 0;
	if (inq < copied)
		copied -= inq;
	if (!space || copied <= space || copied > (1U << 30))
		return 0;
	*used = space_from_win(tp, btf, srtt_us && elapsed > srtt_us ?
					(__u64)copied * srtt_us / elapsed : copied);
	win = ((__u64)copied << 1) + 16 * (__u64)RD(btf, tp, advmss);
	grow = win * (copied - space) / space;
	win += grow << 1;
	return space_from_win(tp, btf, win);
}

/* Receive side, per socket: bytes that arrived (tp->bytes_received) since a mark, to measure the
 * delivery rate. Bytes read per period are no measure of it: a receiver that fell behind reads its
 * backlog in one period (1.7 MB in 51 ms on the bench's 100 Mbit/s link), which set a trimmed
 * max at 4.7x the need. Keyed by the socket's address, checked against its ports (addresses are
 * reused); LRU: the marks of sockets that stopped reporting make room (an event without a
 * measure falls back to the period's data). A hash rather than socket storage, which tracing programs
 * get only since 5.11 and classic tracepoints never. */
struct tb_rcv_mark {
	__u64 bytes;	/* tp->bytes_received at `at` */
	__u64 at;	/* tp->tcp_mstamp, us */
	__u64 used;	/* the last measure (buffer bytes for one srtt at the arrival rate); 0: none */
	__u32 ports;	/* skc_portpair of the socket the mark is for */
	__u32 pad;	/* initialised: the verifier reads the whole value */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct tb_rcv_mark);
} tb_rcv_marks SEC(".maps");

/* The buffer the arrival rate needs for one smoothed RTT `srtt_us`, measured over at least 7/8 of
 * an srtt since the socket's mark (which then moves to now); the last such measure, or 0 while
 * there is none (no mark yet, or srtt unknown). Not a whole srtt: the grow hook's hits come one
 * auto-tuning period apart, a period lasts the receiver's RTT estimate, which jitters around srtt
 * (50.2-52 ms periods against a 51.2 ms srtt on the test's queued path); a hit a little short of
 * srtt returned the previous measure and the next one averaged slow start's last period with the
 * first at the max, so a window-limited flow needing the whole 512 KiB max per round trip was
 * heard as needing about 400 KB, below the mute (437 KB) of that settled max, and no later period
 * beat its record to be heard again (issue 9). Scaled up by 8/7 at most. */
static __always_inline long rcv_arrived_need(struct sock *sk, struct tcp_sock *tp, int btf,
					     __u32 srtt_us)
{
	__u64 key = (__u64)(unsigned long)sk;
	__u64 now = RD(btf, tp, tcp_mstamp), bytes = RD(btf, tp, bytes_received), span, got;
	__u32 ports = RD(btf, sk, __sk_common.skc_portpair);
	struct tb_rcv_mark *m = bpf_map_lookup_elem(&tb_rcv_marks, &key);

	if (!m || m->ports != ports || bytes < m->bytes || now < m->at) {
		struct tb_rcv_mark fresh = { .bytes = bytes, .at = now, .ports = ports };

		bpf_map_update_elem(&tb_rcv_marks, &key, &fresh, BPF_ANY);
		return 0;
	}
	span = now - m->at;
	got = bytes - m->bytes;
	if (srtt_us && span >= srtt_us - (srtt_us >> 3)) {
		/* srtt_us < 2^29: below 2^34 bytes the product fits in 64 bits */
		got = got < (1ULL << 34) ? got * srtt_us / span : got / span * srtt_us;
		m->used = space_from_win(tp, btf, got);
		m->bytes = bytes;
		m->at = now;
	}
	return m->used;
}

/* Receive side. The cheapest test first: only sockets whose rcvbuf is near the namespace's
 * tcp_rmem max go further (most hits are not). `grow_hook`: the hook fires only when the kernel
 * grows the buffer (tcp_rcvbuf_grow), so "near" is judged by what it wants, not what it has. */
static __always_inline void check_rcv(struct sock *sk, int btf, int grow_hook)
{
	struct tcp_sock *tp;
	struct net *net;
	long buf, limit, want, used, arrived;
	__u32 locks, srtt;
	__u64 netns, shift;

	if (!sk)
		return;
	net = RD(btf, sk, __sk_common.skc_net.net);
	buf = RD(btf, sk, sk_rcvbuf);
	limit = RD(btf, net, ipv4.sysctl_tcp_rmem[2]);
	if (!grow_hook && !nearly_full(buf, limit, 2))
		return;
	bpfp_stat_add(BPFP_STAT_HITS, 1); /* past the cheap test: not before (BPFP_STAT_HITS) */
	shift = lr_shift();
	if (!grow_hook && !nearly_full(buf, limit, shift))
		return;
	tp = btf ? bpf_skc_to_tcp_sock(sk) : (struct tcp_sock *)sk;
	if (!tp)
		return;
	srtt = RD(btf, tp, srtt_us);
	want = rcv_want(tp, btf, srtt >> 3, &used);
	arrived = rcv_arrived_need(sk, tp, btf, srtt >> 3);
	if (arrived)
		used = arrived;
	if (grow_hook && !nearly_full(want > buf ? want : buf, limit, shift))
		return;
	/* Applications that set SO_RCVBUF chose their size: they never drive growth. */
	locks = btf ? bpfp_sk_userlocks_typed(sk) : bpfp_sk_userlocks(sk);
	if (locks & BPFP_SOCK_RCVBUF_LOCK) {
		bpfp_stat_add(BPFP_STAT_SKIPPED, 1);
		return;
	}
	netns = RD(btf, net, ns.inum);
	emit_buffer(sk, TB_RMEM_NEAR_MAX, netns, buf, limit, want, used, srtt, locks, shift);
}

/* The send buffer the path needs: the delivery rate (the kernel's saved rate sample, as
 * tcp_info's delivery_rate) times the smoothed RTT `srtt_us` (what is in flight at that rate), in
 * truesize per segment as tcp_sndbuf_expand counts it; 0: no sample yet. A socket held by its
 * buffer delivers less than the path could, so it is a lower bound there. Not the minimum RTT: a
 * path whose delay is mostly queueing on the ACK side (the bench's) once in a while gets an
 * unqueued sample, and a need from it (1/50 of the real one) trimmed a live transfer to 10 %. */
static __always_inline long snd_need(struct tcp_sock *tp, int btf, long per_mss, __u32 srtt_us)
{
	__u32 delivered, interval_us;

	if (!bpf_core_field_exists(tp->rate_delivered) ||
	    !bpf_core_field_exists(tp->rate_interval_us))
		return 0;
	delivered = RD(btf, tp, rate_delivered);
	interval_us = RD(btf, tp, rate_interval_us);
	if (!delivered || !interval_us || !srtt_us)
		return 0;
	return (__u64)delivered * per_mss * srtt_us / interval_us;
}

/* Send side, bpftune's tcp_sndbuf_expand signal: the send buffer reaches tcp_wmem max when the
 * kernel tries to grow it. The kernel grows it (tcp_new_space) only for an application that found
 * it full (SOCK_NOSPACE) while the congestion window is not. A hit costs mostly the memory it
 * touches: the socket's own fields first (a half-empty send queue ends most hits there), then
 * its namespace's max, then the struct socket with the flag. A connection that has not yet had
 * data acknowledged is skipped: its buffer has its initial size (loopback's 64 KiB MSS sizes it
 * to the max at once). */
static __always_inline void check_snd(struct sock *sk, int btf, int expanding)
{
	struct tcp_sock *tp;
	struct socket *sock;
	struct net *net;
	long buf, limit, want, per_mss, need;
	__u32 locks, cwnd, in_flight, srtt;
	__u64 netns, shift;

	if (!sk)
		return;
	buf = RD(btf, sk, sk_sndbuf);
	/* An application blocked on a full buffer leaves at least half of it queued (it is woken
	 * below two thirds): two loads from the socket itself, in cache on this path. */
	if (!expanding && RD(btf, sk, sk_wmem_queued) < (buf >> 1))
		return;
	net = RD(btf, sk, __sk_common.skc_net.net);
	limit = RD(btf, net, ipv4.sysctl_tcp_wmem[2]);
	if (!nearly_full(buf, limit, 2)) /* the loosest shift: no config read yet */
		return;
	if (!expanding) {
		sock = RD(btf, sk, sk_socket);
		if (!sock || !(RD(btf, sock, flags) & (1UL << BPFP_SOCK_NOSPACE)))
			return;
	}
	bpfp_stat_add(BPFP_STAT_HITS, 1); /* past the cheap tests: not before (BPFP_STAT_HITS) */
	shift = lr_shift();
	if (!nearly_full(buf, limit, shift))
		return;
	/* Typed access to tcp_sock fields needs the checked cast (a helper call): past the tests. */
	tp = btf ? bpf_skc_to_tcp_sock(sk) : (struct tcp_sock *)sk;
	if (!tp || !RD(btf, tp, bytes_acked))
		return;
	cwnd = RD(btf, tp, snd_cwnd);
	in_flight = RD(btf, tp, packets_out) - RD(btf, tp, sacked_out) - RD(btf, tp, lost_out) +
		    RD(btf, tp, retrans_out);
	if (!expanding && in_flight >= cwnd)
		return; /* the network, not the buffer, holds it back */
	/* tcp_sndbuf_expand's size: two segments' truesize per packet the window allows. */
	per_mss = RD(btf, tp, mss_cache) + 320 + 384;
	want = 2 * per_mss * (long)(cwnd > 10 ? cwnd : 10);
	locks = btf ? bpfp_sk_userlocks_typed(sk) : bpfp_sk_userlocks(sk);
	if (locks & BPFP_SOCK_SNDBUF_LOCK) {
		bpfp_stat_add(BPFP_STAT_SKIPPED, 1);
		return;
	}
	netns = RD(btf, net, ns.inum);
	srtt = RD(btf, tp, srtt_us);
	need = snd_need(tp, btf, per_mss, srtt >> 3);
	emit_buffer(sk, TB_WMEM_NEAR_MAX, netns, buf, limit, want, need, srtt, locks, shift);
}

/* --- receive side: tcp_rcvbuf_grow (6.17+: only when auto-tuning grows a buffer), else
 * tcp_rcv_space_adjust (every read; the cheap test bails out early) --- */

SEC("tp_btf/tcp_rcvbuf_grow")
int BPF_PROG(bpfp_tb_rcvgrow_btf, struct sock *sk, int time)
{
	check_rcv(sk, 1, 1);
	return 0;
}

SEC("tp_btf/tcp_rcv_space_adjust")
int BPF_PROG(bpfp_tb_rcv_btf, struct sock *sk)
{
	check_rcv(sk, 1, 0);
	return 0;
}

SEC("tp/tcp/tcp_rcv_space_adjust")
int bpfp_tb_rcv_tp(struct trace_event_raw_tcp_event_sk *ctx)
{
	check_rcv((struct sock *)BPF_CORE_READ(ctx, skaddr), 0, 0);
	return 0;
}

SEC("fentry/tcp_rcv_space_adjust")
int BPF_PROG(bpfp_tb_rcv_fe, struct sock *sk)
{
	check_rcv(sk, 1, 0);
	return 0;
}

SEC("kprobe/tcp_rcv_space_adjust")
int BPF_KPROBE(bpfp_tb_rcv_kp, struct sock *sk)
{
	check_rcv(sk, 0, 0);
	return 0;
}

/* --- send side: tcp_probe (every received segment: bails out on the SOCK_NOSPACE test) or
 * tcp_sndbuf_expand itself (may be inlined) --- */

SEC("tp_btf/tcp_probe")
int BPF_PROG(bpfp_tb_snd_btf, struct sock *sk, struct sk_buff *skb)
{
	check_snd(sk, 1, 0);
	return 0;
}

SEC("tp/tcp/tcp_probe")
int bpfp_tb_snd_tp(struct trace_event_raw_tcp_probe *ctx)
{
	/* skaddr joined tcp_probe's record in later kernels; without it this flavour is blind. */
	if (!bpf_core_field_exists(ctx->skaddr)) {
		bpfp_stat_add(BPFP_STAT_HITS, 1); /* every outcome follows its hit */
		bpfp_stat_add(BPFP_STAT_SKIPPED, 1);
		return 0;
	}
	check_snd((struct sock *)BPF_CORE_READ(ctx, skaddr), 0, 0);
	return 0;
}

SEC("fentry/tcp_sndbuf_expand")
int BPF_PROG(bpfp_tb_snd_fe, struct sock *sk)
{
	check_snd(sk, 1, 1);
	return 0;
}

SEC("kprobe/tcp_sndbuf_expand")
int BPF_KPROBE(bpfp_tb_snd_kp, struct sock *sk)
{
	check_snd(sk, 0, 1);
	return 0;
}

/* --- memory pressure: a socket exceeded its protocol's memory limits --- */

static __always_inline void mem_exceeded(struct sock *sk)
{
	if (!sk || bpfp_sk_protocol(sk) != BPFP_IPPROTO_TCP)
		return;
	bpfp_stat_add(BPFP_STAT_HITS, 1);
	check_mem(sk, bpfp_net_inum(bpfp_sk_net(sk)), 1, lr_shift());
}

SEC("tp_btf/sock_exceed_buf_limit")
int BPF_PROG(bpfp_tb_mem_btf, struct sock *sk, struct proto *prot, long allocated, int kind)
{
	mem_exceeded(sk);
	return 0;
}

SEC("tp/sock/sock_exceed_buf_limit")
int bpfp_tb_mem_tp(struct trace_event_raw_sock_exceed_buf_limit *ctx)
{
	long allocated, mem[3];
	char name[4];

	/* No socket pointer in this record: the protocol name and the limits it carries. */
	BPF_CORE_READ_STR_INTO(&name, ctx, name);
	if (name[0] != 'T' || name[1] != 'C' || name[2] != 'P')
		return 0;
	bpfp_stat_add(BPFP_STAT_HITS, 1);
	allocated = BPF_CORE_READ(ctx, allocated);
	mem[0] = BPF_CORE_READ(ctx, sysctl_mem[0]);
	mem[1] = BPF_CORE_READ(ctx, sysctl_mem[1]);
	mem[2] = BPF_CORE_READ(ctx, sysctl_mem[2]);
	emit_mem(nearly_full(allocated, mem[2], lr_shift()) ? TB_MEM_EXHAUSTION : TB_MEM_PRESSURE, 0,
		 allocated, mem);
	return 0;
}

SEC("fentry/tcp_enter_memory_pressure")
int BPF_PROG(bpfp_tb_mem_fe, struct sock *sk)
{
	mem_exceeded(sk);
	return 0;
}

SEC("kprobe/tcp_enter_memory_pressure")
int BPF_KPROBE(bpfp_tb_mem_kp, struct sock *sk)
{
	mem_exceeded(sk);
	return 0;
}

/* --- SYN queue: a listener's half-open requests reach what the kernel admits. With syncookies
 * off, tcp_conn_request drops SYNs from unproven peers once the queue holds 3/4 of
 * tcp_max_syn_backlog, and every SYN once it holds the listen backlog (tcp_syn_flood_action).
 * Those drops free the SYN with consume_skb (no kfree_skb drop reason exists for them;
 * TCP_LISTEN_OVERFLOW is the accept queue, which tcp_max_syn_backlog does not bound), so the
 * signal is the SYN-ACK retransmit timer: requests that sit unanswered for a retransmit timeout
 * are what fills the queue. It fires per lingering request, not per packet. --- */

static __always_inline void check_syn_queue(struct sock *sk, int btf)
{
	struct tcp_sock *tp;
	struct bpfp_event *e;
	struct net *net;
	__u32 qlen, max_ack, max_syn, limit, n;
	__u8 cookies;
	__u64 netns;

	if (!sk)
		return;
	bpfp_stat_add(BPFP_STAT_HITS, 1);
	net = RD(btf, sk, __sk_common.skc_net.net);
	cookies = RD(btf, net, ipv4.sysctl_tcp_syncookies);
	max_syn = RD(btf, net, ipv4.sysctl_max_syn_backlog);
	max_ack = RD(btf, sk, sk_max_ack_backlog);
	/* Typed access past struct sock needs the checked cast (a listener is a full tcp_sock). */
	tp = btf ? bpf_skc_to_tcp_sock(sk) : (struct tcp_sock *)sk;
	if (!tp)
		return;
	qlen = RD(btf, tp, inet_conn.icsk_accept_queue.qlen.counter);
	/* What the kernel admits without cookies: 3/4 of max_syn_backlog, the listen backlog. */
	limit = cookies ? max_ack : max_syn - (max_syn >> 2);
	if (limit > max_ack)
		limit = max_ack;
	if (qlen < limit)
		return;
	netns = RD(btf, net, ns.inum);
	n = bpfp_rate_limit(netns, TB_SYN_QUEUE_FULL);
	if (!n)
		return;
	e = bpfp_event_reserve(BPFP_TUNER_ID, TB_SYN_QUEUE_FULL, netns, n, netns,
			       TB_SYN_QUEUE_FULL);
	if (!e)
		return;
	bpfp_payload(e)->syn.qlen = qlen;
	bpfp_payload(e)->syn.max_ack_backlog = max_ack;
	bpfp_payload(e)->syn.max_syn_backlog = max_syn;
	bpfp_payload(e)->syn.syncookies = cookies;
	bpfp_payload(e)->syn.port = RD(btf, sk, __sk_common.skc_num);
	bpfp_event_submit(e);
}

SEC("tp_btf/tcp_retransmit_synack")
int BPF_PROG(bpfp_tb_syn_btf, const struct sock *sk, const struct request_sock *req)
{
	check_syn_queue((struct sock *)sk, 1);
	return 0;
}

SEC("tp/tcp/tcp_retransmit_synack")
int bpfp_tb_syn_tp(struct trace_event_raw_tcp_retransmit_synack *ctx)
{
	check_syn_queue((struct sock *)BPF_CORE_READ(ctx, skaddr), 0);
	return 0;
}

/* bpftune's attach point, for kernels where the tracepoints do not load: called when the queue is
 * full (or cookies are always on), before the SYN is dropped or answered with a cookie. */
SEC("fentry/tcp_syn_flood_action")
int BPF_PROG(bpfp_tb_syn_fe, const struct sock *sk, const char *proto)
{
	check_syn_queue((struct sock *)sk, 1);
	return 0;
}

SEC("kprobe/tcp_syn_flood_action")
int BPF_KPROBE(bpfp_tb_syn_kp, const struct sock *sk, const char *proto)
{
	check_syn_queue((struct sock *)sk, 0);
	return 0;
}
