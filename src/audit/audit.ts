/**
 * Runs one audit: reads the sysctl source, observes the window, evaluates the static checks,
 * merges in the tuners' advice, optionally applies, and returns the report.
 */
import { VERSION } from "../version.ts";
import { adviceFindings, findingKey, mergeFindings } from "./advice_findings.ts";
import { type AdviseRunner, OBSERVED_TUNERS, type TunerAdviceStatus } from "./advise.ts";
import { type ApplyHook, type ApplyOutcome, notAppliable, sysctlValues } from "./apply.ts";
import { STATIC_CHECKS } from "./checks/registry.ts";
import { connectionFindings, MAX_PATH_FINDINGS } from "./connection_findings.ts";
import type { CheckDefinition, CheckInput } from "./checks/input.ts";
import type { CounterSnapshot } from "./counters.ts";
import { AuditError } from "./errors.ts";
import {
  type AuditReport,
  exitCodeFor,
  REPORT_SCHEMA,
  REPORT_SCHEMA_VERSION,
  summarise,
} from "./report.ts";
import type { SysctlSource } from "./sysctl_source.ts";
import type { CheckResult, Finding } from "./types.ts";
import { type Clock, observeWindow, type WindowResult } from "./window.ts";

export type AuditSource =
  | {
    kind: "live";
    sysctls: SysctlSource;
    readCounters: () => CounterSnapshot;
    host: string;
    kernel: string;
  }
  | { kind: "file"; path: string; sysctls: SysctlSource };

export interface AuditParams {
  source: AuditSource;
  durationSeconds: number;
  runner: AdviseRunner;
  /** Present with --apply. */
  apply: ApplyHook | null;
  exitZero: boolean;
  isRoot: boolean;
  clock: Clock;
  /** Wall clock for the report's timestamp. */
  wallNow(): Date;
  signal: AbortSignal;
  onProgress(fraction: number): void;
  checks?: readonly CheckDefinition[];
  /** Notes about the input (e.g. skipped dump lines), carried into the report. */
  warnings?: readonly string[];
}

export async function performAudit(p: AuditParams): Promise<AuditReport> {
  const { source } = p;
  const live = source.kind === "live";
  let window: WindowResult = { state: "off", reason: "", observedSeconds: 0, advice: null };
  let baseline: CounterSnapshot | null = null;
  let counters: CounterSnapshot | null = null;
  if (live) {
    if (p.durationSeconds > 0) {
      baseline = source.readCounters();
      window = await observeWindow({
        durationMs: p.durationSeconds * 1000,
        runner: p.runner,
        isRoot: p.isRoot,
        signal: p.signal,
        onProgress: p.onProgress,
        clock: p.clock,
      });
    } else {
      window.reason = "no observation window (--duration 0): static checks only";
    }
    counters = source.readCounters();
  } else {
    window.reason = "offline audit of a saved dump (--from): sysctl checks only";
  }

  const kernel = live ? source.kernel : valueOr(source.sysctls, "kernel.osrelease", "unknown");
  const host = live ? source.host : valueOr(source.sysctls, "kernel.hostname", "unknown");
  const input: CheckInput = {
    sysctls: source.sysctls,
    counters,
    baseline: window.observedSeconds > 0 ? baseline : null,
    windowSeconds: window.observedSeconds,
    kernelRelease: kernel === "unknown" ? null : kernel,
    isRoot: p.isRoot,
  };

  const checks: CheckResult[] = [];
  const staticFindings: Finding[] = [];
  for (const def of p.checks ?? STATIC_CHECKS) {
    const outcome = evaluateSafely(def, input);
    checks.push({ id: def.id, title: def.title, status: outcome.status, reason: outcome.reason });
    if (outcome.status === "finding") staticFindings.push(outcome.finding);
  }

  const paths = connectionFindings(window.advice?.connections ?? []);
  const observed = window.advice === null
    ? []
    : [...adviceFindings(window.advice.proposals, source.sysctls), ...paths.findings];
  const findings = mergeFindings(staticFindings, observed);
  reconcileChecks(checks, observed);
  const tuners = tunerStatuses(window);
  checks.push(...observationChecks(window, tuners, observed, paths.omitted));

  let applied: ApplyOutcome[] | null = null;
  if (p.apply !== null) applied = await applyFindings(p.apply, findings);

  return {
    schema: REPORT_SCHEMA,
    schemaVersion: REPORT_SCHEMA_VERSION,
    generatedAt: p.wallNow().toISOString(),
    bpfpilotVersion: VERSION,
    host,
    kernel,
    source: source.kind === "live" ? { kind: "live" } : { kind: "file", path: source.path },
    window: {
      requestedSeconds: live ? p.durationSeconds : 0,
      observedSeconds: window.observedSeconds,
      observation: window.state,
      reason: window.reason,
    },
    tuners,
    checks,
    findings,
    applied,
    warnings: [...(p.warnings ?? []), ...(window.state === "failed" ? [window.reason] : [])],
    summary: summarise(checks, findings),
    exitCode: exitCodeFor(findings, applied, p.exitZero),
  };
}

function valueOr(sysctls: SysctlSource, name: string, fallback: string): string {
  const got = sysctls.get(name);
  return got.kind === "value" && got.value !== "" ? got.value : fallback;
}

/** A bug in one check must not sink the audit: it becomes that check's "skip" with the error. */
function evaluateSafely(def: CheckDefinition, input: CheckInput) {
  try {
    return def.evaluate(input);
  } catch (e) {
    return {
      status: "skip" as const,
      reason: `check failed internally: ${e instanceof Error ? e.message : e}`,
    };
  }
}

/** A static check whose ID the tuners reported becomes a finding too, so checks and findings agree. */
function reconcileChecks(checks: CheckResult[], observed: readonly Finding[]) {
  for (const f of observed) {
    const row = checks.find((c) => c.id === f.id);
    const note = `observed during the window: ${f.evidence[0]?.observed ?? f.title}` +
      (f.netns === "host" ? "" : ` (netns ${f.netns})`);
    if (row === undefined) {
      checks.push({ id: f.id, title: f.title, status: "finding", reason: note });
    } else if (row.status !== "finding") {
      row.status = "finding";
      row.reason = `${note}; statically: ${row.reason}`;
    }
  }
}

function tunerStatuses(window: WindowResult): TunerAdviceStatus[] {
  const reported = window.advice?.tuners ?? [];
  const names = [
    ...OBSERVED_TUNERS,
    ...reported.map((t) => t.tuner).filter((n) => !OBSERVED_TUNERS.includes(n as never)),
  ];
  return names.map((tuner) => {
    const r = reported.find((t) => t.tuner === tuner);
    if (r !== undefined) return r;
    const reason = window.state === "off"
      ? "no observation window"
      : window.state === "completed" || window.state === "cut-short"
      ? "not reported by the tuners' runner"
      : window.reason;
    return { tuner, status: "unavailable", reason };
  });
}

/** The check ID of a tuner's observation row: BPFP-OBSERVE-TCP-BUFFER. */
export function observeCheckId(tuner: string): string {
  return `BPFP-OBSERVE-${tuner.toUpperCase().replace(/[^A-Z0-9]+/g, "-")}`;
}

/** One check row per tuner, so missing observation (no root, unsupported kernel) is visible. */
function observationChecks(
  window: WindowResult,
  tuners: readonly TunerAdviceStatus[],
  observed: readonly Finding[],
  omittedPaths: number,
): CheckResult[] {
  return tuners.map((t) => {
    const id = observeCheckId(t.tuner);
    const title = `Observation by the ${t.tuner} tuner`;
    if (window.state === "needs-root") {
      return { id, title, status: "needs-root", reason: window.reason };
    }
    if (t.status === "unavailable") return { id, title, status: "skip", reason: t.reason };
    const mine = observed.filter((f) =>
      f.evidence.some((e) => e.observed.startsWith(`${t.tuner}: `))
    );
    const ids = [...new Set(mine.map((f) => f.id))];
    const more = omittedPaths > 0 && mine.some((f) => f.remote !== undefined)
      ? ` (the busiest ${MAX_PATH_FINDINGS} paths; ${omittedPaths} more not listed)`
      : "";
    return {
      id,
      title,
      status: "pass",
      reason: ids.length === 0
        ? `active for ${window.observedSeconds} s; nothing to change`
        : `active for ${window.observedSeconds} s; proposed: ${ids.join(", ")}${more}`,
    };
  });
}

async function applyFindings(
  apply: ApplyHook,
  findings: readonly Finding[],
): Promise<ApplyOutcome[]> {
  if (findings.length === 0) return [];
  // Only sysctl findings go to the hook; a per-connection choice is left with what makes it.
  const writable = findings.filter((f) => sysctlValues(f) !== null);
  let outcomes: ApplyOutcome[] = [];
  try {
    if (writable.length > 0) outcomes = await apply(writable);
  } catch (e) {
    throw new AuditError(
      `--apply failed before changing anything: ${e instanceof Error ? e.message : e}`,
    );
  }
  // Every finding gets an outcome, even if the hook forgot one: unreported means not applied.
  return findings.map((f) =>
    sysctlValues(f) === null
      ? notAppliable(f)
      : outcomes.find((o) => findingKey(o) === findingKey(f)) ?? {
        id: f.id,
        netns: f.netns,
        tunable: f.tunable,
        applied: false,
        appliable: true,
        message: "the apply hook reported no outcome for this finding",
      }
  );
}
