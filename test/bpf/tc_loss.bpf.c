// SPDX-License-Identifier: GPL-2.0
/* Test-only packet loss for tc clsact (this machine has no sch_netem): drops 2 % of IPv4 packets
 * at random. Attach it at the receiver's ingress (`tc filter add dev X ingress bpf da obj`): at
 * the sender's egress a drop is returned to TCP as NET_XMIT_DROP, which enters CWR and sends the
 * segment again as new data, so nothing is ever retransmitted. */
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
