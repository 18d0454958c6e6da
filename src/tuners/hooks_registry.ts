/**
 * Every tuner's hook declarations, importable without loading any tuner code, so `bpfpilot
 * support` can probe the full matrix cheaply.
 */
import type { TunerHooks } from "../kernel/probe.ts";
import { SYSCTL_HOOKS } from "./sysctl_hooks.ts";
import { TCP_BUFFER_HOOKS } from "./tcp_buffer_hooks.ts";

export const TUNER_HOOKS: TunerHooks[] = [
  { tuner: "sysctl", hooks: SYSCTL_HOOKS },
  { tuner: "tcp_buffer", hooks: TCP_BUFFER_HOOKS },
];
