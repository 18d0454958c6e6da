/**
 * `--apply`: the audit hands its findings to a hook that writes them. The daemon connects the
 * hook to its journal so that `bpfpilot rollback` can undo what the audit applied.
 */
import type { Finding } from "./types.ts";

export interface ApplyOutcome {
  id: string;
  netns: string;
  /** The finding's remote path, for a per-path finding. */
  remote?: string;
  tunable: string;
  applied: boolean;
  /**
   * false: no sysctl write applies this finding (a per-connection choice), so --apply left it;
   * it stays a finding (exit 1), not a failure (exit 2).
   */
  appliable: boolean;
  /** What was written, or why not (cause and fix). */
  message: string;
}

/** Applies every finding's recommendation; one outcome per finding, in order. Rejects only when nothing could be attempted. */
export type ApplyHook = (findings: readonly Finding[]) => Promise<ApplyOutcome[]>;

/** A finding's values when a sysctl write applies it; null for one no sysctl holds (text). */
export function sysctlValues(f: Finding): { current: number[]; recommended: number[] } | null {
  if (f.sysctlW === null || typeof f.current === "string" || typeof f.recommended === "string") {
    return null;
  }
  return { current: f.current, recommended: f.recommended };
}

/** The outcome for a finding --apply cannot apply: it says what does. */
export function notAppliable(f: Finding): ApplyOutcome {
  return {
    id: f.id,
    netns: f.netns,
    ...(f.remote === undefined ? {} : { remote: f.remote }),
    tunable: f.tunable,
    applied: false,
    appliable: false,
    message: `left as is: ${f.applyHint ?? `${f.tunable} is not a sysctl --apply can write`}`,
  };
}
