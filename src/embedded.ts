/**
 * The probe object, embedded in the program (bytes import): nothing is looked up on disk at run
 * time. Tuners embed their own objects the same way (see src/tuning/tuner.ts). `deno task
 * build:bpf` produces them under dist/bpf/.
 */
import probe from "../dist/bpf/probe.bpf.o" with { type: "bytes" };

export const BPF_OBJECTS = { probe } as const;
