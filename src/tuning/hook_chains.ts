/** Builders for the usual preference chains, so tuner files declare hooks in one line each. */
import type { HookCandidate, HookDecl } from "../kernel/hooks.ts";

/**
 * A tracepoint-first chain: tp_btf, then the classic tracepoint, then fentry and kprobe on a
 * kernel function (unstable: may be renamed or inlined). Program names follow
 * `<prefix>_btf`, `_tp`, `_fe`, `_kp`.
 */
export function tracepointChain(opts: {
  name: string;
  description: string;
  tracepoint: string; // "category/name"
  func: string;
  prefix: string;
  optional?: boolean;
}): HookDecl {
  const tp = opts.tracepoint.split("/")[1];
  const candidates: HookCandidate[] = [
    { kind: "tp_btf", target: tp, program: `${opts.prefix}_btf` },
    { kind: "tracepoint", target: opts.tracepoint, program: `${opts.prefix}_tp` },
    { kind: "fentry", target: opts.func, program: `${opts.prefix}_fe` },
    { kind: "kprobe", target: opts.func, program: `${opts.prefix}_kp` },
  ];
  return { name: opts.name, description: opts.description, optional: opts.optional, candidates };
}
