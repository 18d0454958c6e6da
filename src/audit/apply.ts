/**
 * `--apply`: the audit hands its findings to a hook that writes them. The daemon connects the
 * hook to its journal so that `bpfpilot rollback` can undo what the audit applied.
 */
import type { Finding } from "./types.ts";

export interface ApplyOutcome {
  id: string;
  netns: string;
  tunable: string;
  applied: boolean;
  /** What was written, or why not (cause and fix). */
  message: string;
}

/** Applies every finding's recommendation; one outcome per finding, in order. Rejects only when nothing could be attempted. */
export type ApplyHook = (findings: readonly Finding[]) => Promise<ApplyOutcome[]>;
