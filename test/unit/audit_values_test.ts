/**
 * Typed audit values: a sysctl's numbers and a per-connection choice's text go through findings,
 * merging, every renderer and --apply without turning into NaN, "0" or a sysctl write.
 */
import assert from "node:assert/strict";
import { findingKey, mergeFindings } from "../../src/audit/advice_findings.ts";
import { notAppliable, sysctlValues } from "../../src/audit/apply.ts";
import { journalApplyHook } from "../../src/audit/journal_apply.ts";
import { renderJson } from "../../src/audit/render_json.ts";
import { renderOpenMetrics } from "../../src/audit/render_openmetrics.ts";
import { renderText } from "../../src/audit/render_text.ts";
import { EXIT_ERROR, EXIT_FINDINGS, EXIT_OK, exitCodeFor } from "../../src/audit/report.ts";
import type { Finding } from "../../src/audit/types.ts";
import { formatAuditValue, sameAuditValue } from "../../src/audit/values.ts";
import { auditReport } from "../support/audit_report.ts";
import { findSamples, parseOpenMetrics } from "../support/openmetrics.ts";

const CC = "net.persock.tcp.congestion_control";

function pathFinding(remote: string, current: string, recommended: string): Finding {
  return {
    id: "BPFP-TCP-CONN-LOSSY-PATH",
    severity: "warning",
    title: "tcp_conn: specify TCP congestion control algorithm",
    tunable: CC,
    netns: "host",
    remote,
    current,
    recommended,
    evidence: [{
      observed: "tcp_conn: 3 of 9 sampled connections lossy",
      count: 3,
      period: "window",
    }],
    sysctlW: null,
    applyHint: "run bpfpilot with the tcp_conn tuner",
    sources: ["observed"],
  };
}

const RMEM_FINDING: Finding = {
  id: "BPFP-TCP-RMEM-MAX",
  severity: "warning",
  title: "t",
  tunable: "net.ipv4.tcp_rmem",
  netns: "host",
  current: [4096, 131072, 6291456],
  recommended: [4096, 131072, 12582912],
  evidence: [],
  sysctlW: 'sysctl -w net.ipv4.tcp_rmem="4096 131072 12582912"',
  sources: ["static"],
};

Deno.test("values: text prints as is, numbers as the kernel reads them; equality keeps the type", () => {
  assert.equal(formatAuditValue("bbr"), "bbr");
  assert.equal(formatAuditValue([4096, 131072, 6291456]), "4096 131072 6291456");
  assert.ok(sameAuditValue("bbr", "bbr"));
  assert.ok(!sameAuditValue("bbr", "cubic"));
  assert.ok(!sameAuditValue("1", [1]));
  assert.ok(sameAuditValue([1, 2, 3], [1, 2, 3]));
  assert.ok(!sameAuditValue([1, 2], [1, 2, 3]));
});

Deno.test("values: per-path findings are told apart by their remote address, and merge without numbers", () => {
  const a = pathFinding("10.0.0.1", "reno", "bbr");
  const b = pathFinding("10.0.0.2", "reno", "bbr");
  assert.notEqual(findingKey(a), findingKey(b));
  const merged = mergeFindings([RMEM_FINDING], [b, a]);
  assert.deepEqual(merged.map((f) => f.remote ?? "-"), ["10.0.0.1", "10.0.0.2", "-"]);
  // The same path reported twice: one finding, both pieces of evidence, the text untouched.
  const twice = mergeFindings([a], [{
    ...a,
    evidence: [{ observed: "x", count: 1, period: "window" }],
  }]);
  assert.equal(twice.length, 1);
  assert.equal(twice[0].recommended, "bbr");
  assert.equal(twice[0].evidence.length, 2);
});

Deno.test("values: JSON keeps the types (numbers stay numbers, text stays text)", () => {
  const doc = JSON.parse(
    renderJson(auditReport({ findings: [RMEM_FINDING, pathFinding("10.0.0.1", "reno", "bbr")] })),
  );
  assert.deepEqual(doc.findings[0].recommended, [4096, 131072, 12582912]);
  assert.equal(doc.findings[1].current, "reno");
  assert.equal(doc.findings[1].recommended, "bbr");
  assert.equal(doc.findings[1].remote, "10.0.0.1");
  assert.equal(doc.findings[1].sysctlW, null);
});

Deno.test("values: OpenMetrics carries text in an info label, never as a NaN sample", () => {
  const text = renderOpenMetrics(
    auditReport({ findings: [RMEM_FINDING, pathFinding("10.0.0.1", "reno", "bbr")] }),
  );
  assert.ok(!/\bNaN\b/.test(text), text);
  const m = parseOpenMetrics(text);
  const cur = findSamples(m, "bpfpilot_audit_finding_current_info", { remote: "10.0.0.1" });
  assert.deepEqual(cur.map((s) => [s.labels.value, s.labels.tunable, s.value]), [["reno", CC, 1]]);
  const rec = findSamples(m, "bpfpilot_audit_finding_recommended_info", { remote: "10.0.0.1" });
  assert.deepEqual(rec.map((s) => s.labels.value), ["bbr"]);
  // Numeric fields only for the numeric finding.
  const fields = findSamples(m, "bpfpilot_audit_finding_recommended_value");
  assert.deepEqual(fields.map((s) => s.labels.id), Array(3).fill("BPFP-TCP-RMEM-MAX"));
  assert.equal(findSamples(m, "bpfpilot_audit_finding", { remote: "10.0.0.1" }).length, 1);
});

Deno.test("values: the text report names the path and what applies a per-connection choice", () => {
  const f = pathFinding("10.0.0.1", "reno", "bbr");
  const out = renderText(auditReport({ findings: [f], applied: [notAppliable(f)] }));
  assert.match(out, /path +to 10\.0\.0\.1/);
  assert.match(out, /current +reno/);
  assert.match(out, /recommended +bbr/);
  assert.match(out, /apply with +run bpfpilot with the tcp_conn tuner/);
  assert.match(out, /applied +no: left as is: run bpfpilot with the tcp_conn tuner/);
});

Deno.test("values: --apply leaves a per-connection choice alone; it stays a finding (exit 1), not a failure", async () => {
  const f = pathFinding("10.0.0.1", "reno", "bbr");
  assert.equal(sysctlValues(f), null);
  assert.deepEqual(sysctlValues(RMEM_FINDING), {
    current: RMEM_FINDING.current,
    recommended: RMEM_FINDING.recommended,
  });
  const left = notAppliable(f);
  assert.equal(left.applied, false);
  assert.equal(left.appliable, false);
  assert.equal(left.remote, "10.0.0.1");
  const done = { ...notAppliable(RMEM_FINDING), applied: true, appliable: true };
  const failed = { ...done, applied: false };
  assert.equal(exitCodeFor([f], [left], false), EXIT_FINDINGS);
  assert.equal(exitCodeFor([f], [left], true), EXIT_OK);
  assert.equal(exitCodeFor([RMEM_FINDING, f], [done, left], false), EXIT_FINDINGS);
  assert.equal(exitCodeFor([RMEM_FINDING], [done], false), EXIT_OK);
  assert.equal(exitCodeFor([RMEM_FINDING, f], [failed, left], false), EXIT_ERROR);

  // The journal hook, handed one anyway, neither writes nor records it.
  const dir = Deno.makeTempDirSync({ prefix: "bpfp-values-" });
  try {
    const writes: string[] = [];
    const hook = journalApplyHook({
      stateDir: dir,
      io: { read: () => [0], write: (s) => void writes.push(s) },
    });
    const [out] = await hook([f]);
    assert.equal(out.appliable, false);
    assert.deepEqual(writes, []);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
