/** The audit's vocabulary: checks, their statuses and the findings they produce. */

export type Severity = "info" | "warning" | "critical";
export const SEVERITIES: readonly Severity[] = ["critical", "warning", "info"];

/** pass: nothing to recommend; finding: see findings; skip: this kernel lacks what the check reads; needs-root: run as root to evaluate it. */
export type CheckStatus = "pass" | "finding" | "skip" | "needs-root";
export const CHECK_STATUSES: readonly CheckStatus[] = ["pass", "finding", "skip", "needs-root"];

/** One piece of evidence: what was observed, and how often over which period. */
export interface Evidence {
  observed: string;
  /** How many times (events, drops, proposals); null for a static value comparison. */
  count: number | null;
  /** since-boot: a cumulative kernel counter; window: during the observation window; current: a value read now. */
  period: "since-boot" | "window" | "current";
}

export interface Finding {
  /** Stable ID, e.g. BPFP-TCP-RMEM-MAX. Unique per (id, netns) in a report. */
  id: string;
  severity: Severity;
  title: string;
  /** The sysctl to change, e.g. net.ipv4.tcp_rmem. */
  tunable: string;
  /** "host" for the initial network namespace, else the namespace as the tuner names it. */
  netns: string;
  current: number[];
  recommended: number[];
  evidence: Evidence[];
  /** The command that applies the recommendation. */
  sysctlW: string;
  /** static: from the sysctl/counter checks; observed: proposed by a tuner during the window. */
  sources: ("static" | "observed")[];
}

export interface CheckResult {
  id: string;
  title: string;
  status: CheckStatus;
  reason: string;
}

/** The outcome of one check: a finding carries the recommendation. */
export type CheckOutcome =
  | { status: "pass" | "skip" | "needs-root"; reason: string }
  | { status: "finding"; reason: string; finding: Finding };
