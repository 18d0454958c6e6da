/** Every tuner bpfpilot ships, in load order. A new tuner is one line here. */
import type { TunerDefinition } from "../daemon/tuner.ts";
import { type OverrideSink, sysctlTuner } from "./sysctl.ts";
import { tcpBufferTuner } from "./tcp_buffer.ts";

export function allTuners(overrides: OverrideSink): TunerDefinition[] {
  return [sysctlTuner(overrides), tcpBufferTuner];
}

export const TUNER_NAMES = ["sysctl", "tcp_buffer"] as const;

/** Accepts bpftune's plugin file names too: `tcp_buffer_tuner.so` means `tcp_buffer`. */
export function normalizeTunerName(name: string): string {
  return name.replace(/\.so$/, "").replace(/_tuner$/, "");
}
