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

/** Legacy mode prefers each hook's fallback kinds: the chain is tried from its end. */
export function orderCandidates(decl: HookDecl, legacy: boolean): HookCandidate[] {
  return legacy ? [...decl.candidates].reverse() : decl.candidates;
}

export function describeCandidate(c: { kind: AttachKind; target: string }): string {
  return `${c.kind}:${c.target}`;
}
