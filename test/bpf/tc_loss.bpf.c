// SPDX-License-Identifier: GPL-2.0
/* Test-only packet loss for tc clsact (this machine has no sch_netem): drops IPv4 packets at
 * random, loss_per_mille of them (default 20 = 2 %). Attached with `tc filter ... bpf da obj`. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "GPL";

#define TC_ACT_OK 0
#define TC_ACT_SHOT 2
#define ETH_P_IP 0x0800

SEC("tc")
int bpfp_test_loss(struct __sk_buff *skb)
{
	if (skb->protocol != bpf_htons(ETH_P_IP))
		return TC_ACT_OK;
	return bpf_get_prandom_u32() % 1000 < 20 ? TC_ACT_SHOT : TC_ACT_OK;
}
