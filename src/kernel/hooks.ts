/**
 * Hook declarations: every hook is a preference chain of attach kinds. The probe picks the first
 * kind that really loads and attaches on this kernel and records why the others did not.
 */
import type { AttachKind } from "../libbpf/object.ts";

export type { AttachKind };

export interface HookCandidate {
  kind: AttachKind;
  /**
   * tp_btf/raw_tp: tracepoint name; tracepoint: "category/name"; fentry/kprobe: kernel function;
   * cgroup: the cgroup attach type, "sockops" or "sysctl".
   */
  target: string;
  /** Program in the tuner's BPF object that implements this candidate. */
  program: string;
}

export interface HookDecl {
  name: string;
  description: string;
  /** An optional hook that cannot attach leaves the tuner running with less insight. */
  optional?: boolean;
  /** What the tuner does instead when no candidate attaches (e.g. a bounded /proc poll). */
  fallback?: string;
  candidates: HookCandidate[];
}

export interface TryResult {
  kind: AttachKind;
  target: string;
  /** The candidate's program (several candidates may share a kind and target). */
  program?: string;
  ok: boolean;
  reason: string;
}

export interface HookChoice {
  tuner: string;
  hook: string;
  optional: boolean;
  chosen: AttachKind | null;
  target: string | null;
  program: string | null;
  tried: TryResult[];
}

/**
 * The order a hook's candidates are tried in. Legacy mode prefers the fallback kinds (the chain
 * from its end); `prefer` puts one kind first (to exercise a flavour, e.g. fentry, on purpose).
 */
export function orderCandidates(
  decl: HookDecl,
  legacy: boolean,
  prefer?: AttachKind | null,
): HookCandidate[] {
  const base = legacy ? [...decl.candidates].reverse() : decl.candidates;
  if (!prefer) return base;
  return [...base.filter((c) => c.kind === prefer), ...base.filter((c) => c.kind !== prefer)];
}

export const ATTACH_KINDS: readonly AttachKind[] = [
  "tp_btf",
  "tracepoint",
  "raw_tp",
  "fentry",
  "kprobe",
  "cgroup",
];

export function describeCandidate(c: { kind: AttachKind; target: string }): string {
  return `${c.kind}:${c.target}`;
}
