/** A small, complete audit report for renderer tests; override any field. */
import type { AuditReport } from "../../src/audit/report.ts";

export function auditReport(overrides: Partial<AuditReport> = {}): AuditReport {
  return {
    schema: "bpfpilot-audit",
    schemaVersion: 1,
    generatedAt: "2026-01-02T03:04:05.000Z",
    bpfpilotVersion: "0.1.0",
    host: 'web"01\\prod\nx',
    kernel: "6.18.0",
    source: { kind: "live" },
    window: { requestedSeconds: 60, observedSeconds: 60, observation: "unavailable", reason: "x" },
    tuners: [],
    checks: [
      { id: "BPFP-TCP-RMEM-MAX", title: "t", status: "finding", reason: "r" },
      { id: "BPFP-UDP-MEM-PRESSURE", title: "t", status: "skip", reason: "r" },
    ],
    findings: [{
      id: "BPFP-TCP-RMEM-MAX",
      severity: "warning",
      title: "t",
      tunable: "net.ipv4.tcp_rmem",
      netns: 'ns "a"',
      current: [4096, 131072, 6291456],
      recommended: [4096, 131072, 12582912],
      evidence: [],
      sysctlW: "",
      sources: ["static"],
    }],
    applied: null,
    warnings: [],
    summary: {
      findings: { critical: 0, warning: 1, info: 0 },
      checks: { pass: 0, finding: 1, skip: 1, "needs-root": 0 },
    },
    exitCode: 1,
    ...overrides,
  };
}
