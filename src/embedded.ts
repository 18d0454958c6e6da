/**
 * The compiled BPF objects, embedded in the program (bytes imports): nothing is looked up on disk
 * at run time. `deno task build:bpf` produces them under dist/bpf/.
 */
import probe from "../dist/bpf/probe.bpf.o" with { type: "bytes" };
import sysctl from "../dist/bpf/sysctl.bpf.o" with { type: "bytes" };
import tcp_buffer from "../dist/bpf/tcp_buffer.bpf.o" with { type: "bytes" };

export const BPF_OBJECTS = { probe, sysctl, tcp_buffer } as const;
export type BpfObjectName = keyof typeof BPF_OBJECTS;
