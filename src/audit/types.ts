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

/**
 * A finding's value, typed: a numeric sysctl's fields (one number for a scalar such as somaxconn,
 * three for a triple such as tcp_rmem, 32-bit words for a CPU mask), or text (a congestion-control
 * name). JSON keeps the type (an array of numbers or a string); OpenMetrics carries text in a label.
 */
export type AuditValue = number[] | string;

export interface Finding {
  /** Stable ID, e.g. BPFP-TCP-RMEM-MAX. Unique per (id, netns) in a report. */
  id: string;
  severity: Severity;
  title: string;
  /**
   * The sysctl to change, e.g. net.ipv4.tcp_rmem; for a per-connection choice bpftune's pseudo
   * tunable (net.persock.tcp.congestion_control).
   */
  tunable: string;
  /** "host" for the initial network namespace, else the namespace as the tuner names it. */
  netns: string;
  /** A per-path finding's remote address (tcp_conn); absent for a sysctl's. */
  remote?: string;
  current: AuditValue;
  recommended: AuditValue;
  evidence: Evidence[];
  /** The command that applies the recommendation; null when no sysctl does (see applyHint). */
  sysctlW: string | null;
  /** With sysctlW null: what makes the change instead (--apply does not). */
  applyHint?: string;
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
