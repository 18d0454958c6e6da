/**
 * OpenMetrics textfile for node_exporter's textfile collector. Only gauges are used: the
 * collector parses the Prometheus text format, where OpenMetrics' counter and info families are
 * named differently; gauges read the same in both, and `# EOF` is a comment to the older parser.
 * Label cardinality is bounded: one series per check, per finding and per value field. A text
 * value (a congestion-control name) is never a sample (it would be NaN): it is the `value` label
 * of an info-style gauge that is always 1.
 */
import type { AuditReport } from "./report.ts";
import { CHECK_STATUSES, type Finding, SEVERITIES } from "./types.ts";

export const METRIC_PREFIX = "bpfpilot_audit_";

/** Escapes a label value: backslash, double quote and newline. */
export function escapeLabel(value: string): string {
  return value.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll("\n", "\\n");
}

function escapeHelp(text: string): string {
  return text.replaceAll("\\", "\\\\").replaceAll("\n", "\\n");
}

function labels(pairs: Record<string, string>): string {
  const entries = Object.entries(pairs);
  if (entries.length === 0) return "";
  return `{${entries.map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(",")}}`;
}

class Families {
  readonly lines: string[] = [];
  gauge(name: string, help: string, samples: [Record<string, string>, number][]) {
    const full = METRIC_PREFIX + name;
    this.lines.push(`# HELP ${full} ${escapeHelp(help)}`, `# TYPE ${full} gauge`);
    for (const [l, v] of samples) this.lines.push(`${full}${labels(l)} ${formatNumber(v)}`);
  }
}

function formatNumber(v: number): string {
  return Number.isFinite(v) ? String(v) : v > 0 ? "+Inf" : v < 0 ? "-Inf" : "NaN";
}

export function renderOpenMetrics(r: AuditReport): string {
  const m = new Families();
  m.gauge("run_info", "The audit run: audited host, kernel and source (always 1).", [[{
    host: r.host,
    kernel: r.kernel,
    source: r.source.kind,
    version: r.bpfpilotVersion,
  }, 1]]);
  m.gauge("timestamp_seconds", "Unix time the audit finished.", [[
    {},
    Date.parse(r.generatedAt) / 1000,
  ]]);
  m.gauge("window_seconds", "Length of the observation window that ran.", [[
    {},
    r.window.observedSeconds,
  ]]);
  m.gauge("exit_code", "Exit code of the audit: 0 nothing to recommend, 1 findings, 2 error.", [[
    {},
    r.exitCode,
  ]]);
  m.gauge("warnings", "Problems that did not stop the audit (see the text or JSON report).", [[
    {},
    r.warnings.length,
  ]]);
  m.gauge(
    "findings",
    "Number of findings by severity.",
    SEVERITIES.map((s) => [{ severity: s }, r.summary.findings[s]]),
  );
  m.gauge(
    "checks",
    "Number of checks by status.",
    CHECK_STATUSES.map((s) => [{ status: s }, r.summary.checks[s]]),
  );
  m.gauge(
    "check_status",
    "Status of each check: 1 for the status it has (pass, finding, skip, needs-root).",
    r.checks.map((c) => [{ id: c.id, status: c.status }, 1]),
  );
  m.gauge(
    "finding",
    "One series per finding (always 1), with its severity and tunable (and remote path).",
    r.findings.map((f) => [{ ...findingLabels(f), severity: f.severity }, 1]),
  );
  const fields = (pick: "current" | "recommended") =>
    r.findings.flatMap((f) => {
      const v = f[pick];
      if (typeof v === "string") return [];
      return v.map((x, i): [Record<string, string>, number] => [
        { ...findingLabels(f), field: String(i) },
        x,
      ]);
    });
  const texts = (pick: "current" | "recommended") =>
    r.findings.flatMap((f): [Record<string, string>, number][] => {
      const v = f[pick];
      return typeof v === "string" ? [[{ ...findingLabels(f), value: v }, 1]] : [];
    });
  m.gauge(
    "finding_current_value",
    "Current value of a finding's tunable, per field.",
    fields("current"),
  );
  m.gauge(
    "finding_recommended_value",
    "Recommended value of a finding's tunable, per field.",
    fields("recommended"),
  );
  m.gauge(
    "finding_current_info",
    "Current value of a finding whose value is text (e.g. a congestion-control name), in the " +
      "value label (always 1).",
    texts("current"),
  );
  m.gauge(
    "finding_recommended_info",
    "Recommended value of a finding whose value is text, in the value label (always 1).",
    texts("recommended"),
  );
  return m.lines.join("\n") + "\n# EOF\n";
}

/** The labels that tell one finding from another (remote only for a per-path finding). */
function findingLabels(f: Finding): Record<string, string> {
  return {
    id: f.id,
    netns: f.netns,
    tunable: f.tunable,
    ...(f.remote === undefined ? {} : { remote: f.remote }),
  };
}
