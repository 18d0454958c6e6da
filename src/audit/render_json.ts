/** Machine-readable report: one JSON document, schema "bpfpilot-audit" version 1. */
import type { AuditReport } from "./report.ts";

export function renderJson(r: AuditReport): string {
  return JSON.stringify(r, null, 2) + "\n";
}
