/** The audit report: the one value every output format (text, JSON, OpenMetrics) renders. */
import type { TunerAdviceStatus } from "./advise.ts";
import type { ApplyOutcome } from "./apply.ts";
import {
  CHECK_STATUSES,
  type CheckResult,
  type CheckStatus,
  type Finding,
  SEVERITIES,
  type Severity,
} from "./types.ts";
import type { ObservationState } from "./window.ts";

export const REPORT_SCHEMA = "bpfpilot-audit";
export const REPORT_SCHEMA_VERSION = 1;

/**
 * Exit codes, the same whatever the output format:
 * 0 nothing to recommend (or --exit-zero, or --apply applied everything),
 * 1 findings (with --apply: findings no sysctl write applies, left as they were),
 * 2 error (bad usage, unreadable input, a failed --apply).
 */
export const EXIT_OK = 0;
export const EXIT_FINDINGS = 1;
export const EXIT_ERROR = 2;

export interface AuditReport {
  schema: typeof REPORT_SCHEMA;
  schemaVersion: typeof REPORT_SCHEMA_VERSION;
  /** ISO 8601 time the audit finished. */
  generatedAt: string;
  bpfpilotVersion: string;
  host: string;
  kernel: string;
  source: { kind: "live" } | { kind: "file"; path: string };
  window: {
    requestedSeconds: number;
    observedSeconds: number;
    observation: ObservationState;
    reason: string;
  };
  tuners: TunerAdviceStatus[];
  checks: CheckResult[];
  findings: Finding[];
  /** Outcome of --apply per finding; null without --apply. */
  applied: ApplyOutcome[] | null;
  /** Problems that did not stop the audit: skipped dump lines, a failed observation. */
  warnings: string[];
  summary: {
    findings: Record<Severity, number>;
    checks: Record<CheckStatus, number>;
  };
  exitCode: number;
}

export function summarise(
  checks: readonly CheckResult[],
  findings: readonly Finding[],
): AuditReport["summary"] {
  const bySeverity = Object.fromEntries(SEVERITIES.map((s) => [s, 0])) as Record<Severity, number>;
  for (const f of findings) bySeverity[f.severity]++;
  const byStatus = Object.fromEntries(CHECK_STATUSES.map((s) => [s, 0])) as Record<
    CheckStatus,
    number
  >;
  for (const c of checks) byStatus[c.status]++;
  return { findings: bySeverity, checks: byStatus };
}

/** The exit code for a report; see EXIT_* above. */
export function exitCodeFor(
  findings: readonly Finding[],
  applied: readonly ApplyOutcome[] | null,
  exitZero: boolean,
): number {
  if (applied !== null) {
    if (applied.some((a) => a.appliable && !a.applied)) return EXIT_ERROR;
    return applied.some((a) => !a.appliable) && !exitZero ? EXIT_FINDINGS : EXIT_OK;
  }
  return findings.length > 0 && !exitZero ? EXIT_FINDINGS : EXIT_OK;
}
