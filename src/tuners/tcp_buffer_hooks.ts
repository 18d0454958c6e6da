/** Where the tcp_buffer tuner watches the kernel (programs in bpf/tcp_buffer.bpf.c). */
import type { HookDecl } from "../kernel/hooks.ts";
import { tracepointChain } from "./hook_chains.ts";

export const TCP_BUFFER_HOOKS: HookDecl[] = [
  tracepointChain({
    name: "rcvbuf",
    description: "receive buffer auto-tuning (socket rcvbuf approaching tcp_rmem max)",
    tracepoint: "tcp/tcp_rcv_space_adjust",
    func: "tcp_rcv_space_adjust",
    prefix: "bpfp_tb_rcv",
  }),
  tracepointChain({
    name: "sndbuf",
    description: "send buffer growth (socket sndbuf approaching tcp_wmem max)",
    tracepoint: "tcp/tcp_probe",
    func: "tcp_sndbuf_expand",
    prefix: "bpfp_tb_snd",
    optional: true,
  }),
  tracepointChain({
    name: "mem_pressure",
    description: "TCP memory pressure and exhaustion (allocated pages near tcp_mem)",
    tracepoint: "sock/sock_exceed_buf_limit",
    func: "tcp_enter_memory_pressure",
    prefix: "bpfp_tb_mem",
    // The buffer hooks check memory too; this one only makes pressure visible sooner.
    optional: true,
  }),
];
