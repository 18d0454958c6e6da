/** Human-readable report: findings first (what to do), then every check's status and reason. */
import type { AuditReport } from "./report.ts";
import { CHECK_STATUSES, type Evidence, type Finding, SEVERITIES } from "./types.ts";
import { findingKey } from "./advice_findings.ts";
import { formatAuditValue } from "./values.ts";

export function renderText(r: AuditReport): string {
  const out: string[] = [];
  out.push(`bpfpilot audit of ${r.host} (kernel ${r.kernel}) at ${r.generatedAt}`);
  out.push(`Source: ${r.source.kind === "live" ? "live system" : `saved dump ${r.source.path}`}`);
  out.push(`Window: ${describeWindow(r)}`);
  out.push("");
  const f = r.summary.findings;
  const counts = SEVERITIES.filter((s) => f[s] > 0).map((s) => `${f[s]} ${s}`).join(", ");
  out.push(
    r.findings.length === 0 ? "Findings: none" : `Findings: ${r.findings.length} (${counts})`,
  );
  for (const finding of r.findings) {
    out.push("");
    out.push(...renderFinding(finding, r));
  }
  out.push("");
  out.push("Checks:");
  const idWidth = Math.max(...r.checks.map((c) => c.id.length), 0);
  for (const c of r.checks) {
    out.push(`  ${c.status.padEnd(10)}  ${c.id.padEnd(idWidth)}  ${c.reason}`);
  }
  if (r.tuners.some((t) => t.status === "active")) {
    out.push("");
    out.push(
      "Tuners observed: " +
        r.tuners.filter((t) => t.status === "active").map((t) => t.tuner).join(", "),
    );
  }
  if (r.warnings.length > 0) {
    out.push("");
    out.push("Warnings:");
    for (const w of r.warnings) out.push(`  ${w}`);
  }
  out.push("");
  const cs = r.summary.checks;
  out.push(
    `Result: ${r.findings.length} finding(s); checks: ` +
      CHECK_STATUSES.map((s) => `${cs[s]} ${s}`).join(", ") + `. Exit code ${r.exitCode}.`,
  );
  return out.join("\n") + "\n";
}

function describeWindow(r: AuditReport): string {
  const w = r.window;
  if (w.observation === "off") return w.reason;
  return `${w.observedSeconds} s of ${w.requestedSeconds} s requested; tuners: ${w.observation} (${w.reason})`;
}

function renderFinding(f: Finding, r: AuditReport): string[] {
  const lines = [`[${f.severity.toUpperCase()}] ${f.id}: ${f.title}`];
  const row = (label: string, text: string) => lines.push(`  ${label.padEnd(12)} ${text}`);
  row("tunable", f.tunable);
  if (f.netns !== "host") row("netns", f.netns);
  if (f.remote !== undefined) row("path", `to ${f.remote}`);
  row("current", formatAuditValue(f.current, f.tunable));
  row("recommended", formatAuditValue(f.recommended, f.tunable));
  renderEvidence(f.evidence).forEach((text, i) => row(i === 0 ? "evidence" : "", text));
  row("apply with", f.sysctlW ?? f.applyHint ?? "no sysctl applies it");
  const applied = r.applied?.find((a) => findingKey(a) === findingKey(f));
  if (applied !== undefined) {
    const verdict = applied.applied ? "yes" : applied.appliable ? "NO" : "no";
    row("applied", `${verdict}: ${applied.message}`);
  }
  return lines;
}

/** One line per observation; a counter's since-boot and window counts share a line. */
export function renderEvidence(evidence: readonly Evidence[]): string[] {
  const lines = new Map<string, string[]>();
  for (const e of evidence) {
    const parts = lines.get(e.observed) ?? [];
    if (e.count !== null) {
      parts.push(
        e.period === "since-boot" ? `${e.count} since boot` : `${e.count} during the window`,
      );
    }
    lines.set(e.observed, parts);
  }
  return [...lines].map(([observed, parts]) =>
    parts.length === 0 ? observed : `${observed}: ${parts.join(", ")}`
  );
}
