/**
 * Every tuner bpfpilot ships, in load order. A new tuner is `src/tuners/<name>.ts` (its
 * definition, hooks and handlers, embedding `dist/bpf/<name>.bpf.o`), `bpf/<name>.bpf.c`, and one
 * line here.
 */
import type { TunerDefinition } from "../daemon/tuner.ts";
import { sysctlTuner } from "./sysctl.ts";
import { tcpBufferTuner } from "./tcp_buffer.ts";

export const TUNERS: readonly TunerDefinition[] = [sysctlTuner, tcpBufferTuner];

/** Accepts bpftune's plugin file names too: `tcp_buffer_tuner.so` means `tcp_buffer`. */
export function normalizeTunerName(name: string): string {
  return name.replace(/\.so$/, "").replace(/_tuner$/, "");
}
