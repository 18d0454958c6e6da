/** Shared pieces of the static checks: reading values, counter deltas, evidence, limits. */
import type { CounterSnapshot } from "../counters.ts";
import type { CheckOutcome, Evidence, Finding, Severity } from "../types.ts";
import { formatValues, parseNumbers, sysctlWLine } from "../values.ts";
import type { CheckDefinition, CheckInput } from "./input.ts";

export type Read<T> = { ok: true; value: T } | { ok: false; outcome: CheckOutcome };

/** Reads a numeric sysctl; a missing one makes the check "skip", an unreadable one "needs-root" or "skip". */
export function readNumeric(input: CheckInput, name: string, fields = 1): Read<number[]> {
  const got = input.sysctls.get(name);
  switch (got.kind) {
    case "missing":
      return {
        ok: false,
        outcome: {
          status: "skip",
          reason: input.sysctls.origin === "file"
            ? `${name} is not in the dump (this kernel lacks it, or the dump is partial)`
            : `${name} does not exist on this kernel`,
        },
      };
    case "denied":
      return {
        ok: false,
        outcome: input.isRoot
          ? { status: "skip", reason: `${name} is not readable even as root` }
          : { status: "needs-root", reason: `reading ${name} needs root; run with sudo` },
      };
    case "unreadable":
      return {
        ok: false,
        outcome: { status: "skip", reason: `${name} unreadable (${got.detail})` },
      };
    case "value": {
      const values = parseNumbers(got.value, name);
      if (values === null || values.length !== fields) {
        return {
          ok: false,
          outcome: {
            status: "skip",
            reason: `${name} = "${got.value}" is not ${fields} integer field(s)`,
          },
        };
      }
      return { ok: true, value: values };
    }
  }
}

/** A cumulative kernel counter: its value since boot and, with a window, its increase during it. */
export interface CounterReading {
  sinceBoot: number;
  /** Increase during the window; null without a window or when the counter wrapped/reset. */
  window: number | null;
}

export type CounterGetter = (snapshot: CounterSnapshot) => number | undefined;

export function readCounter(input: CheckInput, get: CounterGetter): CounterReading | null {
  if (input.counters === null) return null;
  const now = get(input.counters);
  if (now === undefined) return null;
  const before = input.baseline === null ? undefined : get(input.baseline);
  const window = before === undefined || now < before ? null : now - before;
  return { sinceBoot: now, window };
}

/** Sum of counters that may each be absent; undefined only when all are absent. */
export function sumDefined(...values: (number | undefined)[]): number | undefined {
  let total: number | undefined;
  for (const v of values) if (v !== undefined) total = (total ?? 0) + v;
  return total;
}

/** A counter that has only counted before the window is an old incident: downgrade it to info. */
export function severityFor(base: Severity, reading: CounterReading): Severity {
  return reading.window === 0 ? "info" : base;
}

/** Prefer the window's count (recent) over the since-boot count for deciding and rating. */
export function recentCount(reading: CounterReading): number {
  return reading.window ?? reading.sinceBoot;
}

export function counterEvidence(observed: string, reading: CounterReading): Evidence[] {
  const out: Evidence[] = [{ observed, count: reading.sinceBoot, period: "since-boot" }];
  if (reading.window !== null) out.push({ observed, count: reading.window, period: "window" });
  return out;
}

export function currentEvidence(observed: string): Evidence {
  return { observed, count: null, period: "current" };
}

/** "in N s" phrase for reasons; empty without a window. */
export function describeCounter(reading: CounterReading, windowSeconds: number): string {
  return reading.window === null
    ? `${reading.sinceBoot} since boot`
    : `${reading.sinceBoot} since boot, ${reading.window} in the last ${windowSeconds} s`;
}

/** Doubles a limit, at least to `floor`, never past `ceiling`, never below the current value. */
export function raiseLimit(current: number, ceiling: number, floor = 0): number {
  return Math.max(current, Math.min(ceiling, Math.max(current * 2, floor)));
}

export function finding(
  def: CheckDefinition,
  severity: Severity,
  current: number[],
  recommended: number[],
  evidence: Evidence[],
): Finding {
  return {
    id: def.id,
    severity,
    title: def.title,
    tunable: def.tunable,
    netns: "host",
    current,
    recommended,
    evidence,
    sysctlW: sysctlWLine(def.tunable, recommended),
    sources: ["static"],
  };
}

export function outcome(reason: string, f: Finding): CheckOutcome {
  return { status: "finding", reason, finding: f };
}

export function pass(reason: string): CheckOutcome {
  return { status: "pass", reason };
}

export function skip(reason: string): CheckOutcome {
  return { status: "skip", reason };
}

export const OFFLINE_REASON = "needs live kernel counters; --from audits sysctl values only";

/** Why a counter is unavailable: offline, or the kernel/file does not have it. */
export function noCounterReason(input: CheckInput, what: string): string {
  return input.counters === null ? OFFLINE_REASON : `${what} is not available on this kernel`;
}

export { formatValues };
