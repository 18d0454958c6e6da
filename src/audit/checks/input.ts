/** What a static check sees: sysctl values, counter snapshots and facts about the run. */
import type { CounterSnapshot } from "../counters.ts";
import type { SysctlSource } from "../sysctl_source.ts";
import type { CheckOutcome } from "../types.ts";

export interface CheckInput {
  sysctls: SysctlSource;
  /** Counters at the end of the window (or now); null offline (--from), where none exist. */
  counters: CounterSnapshot | null;
  /** Counters at the start of the observation window; null without a window. */
  baseline: CounterSnapshot | null;
  /** Length of the observation window in seconds; 0 without one. */
  windowSeconds: number;
  /** `uname -r` of the audited kernel; null when unknown (a dump without kernel.osrelease). */
  kernelRelease: string | null;
  isRoot: boolean;
}

export interface CheckDefinition {
  /** Stable ID; never reused for a different meaning. */
  id: string;
  title: string;
  /** The sysctl a finding recommends changing. */
  tunable: string;
  /** What the check compares and why; printed by --list-checks. */
  rationale: string;
  /** Whether the check can say anything from a `sysctl -a` dump alone. */
  offline: boolean;
  evaluate(input: CheckInput): CheckOutcome;
}
