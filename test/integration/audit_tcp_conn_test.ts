/**
 * `bpfpilot audit` observing the tcp_conn tuner for real: the sandbox's namespace has two paths to
 * a server namespace, one losing 2 % of its packets (test/support/two_paths.ts), and sends
 * connections from the sandbox's child cgroup (`audit --cgroup`) during the window. The lossy
 * path gets a BPFP-TCP-CONN-LOSSY-PATH finding (current reno, recommended bbr, its retransmission
 * ratio), the clean path none; JSON keeps the text values, the OpenMetrics textfile carries them
 * as labels; the namespace's congestion control is left as it was, and --apply leaves the
 * per-connection choice alone (exit 1, nothing written to the journal).
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { IS_ROOT } from "../support/kernel.ts";
import { LAUNCHER } from "../support/daemon.ts";
import { findSamples, parseOpenMetrics } from "../support/openmetrics.ts";
import { type Sandbox, withSandbox } from "../support/sandbox.ts";
import { CLEAN, CLIENT_DEFAULT, LOSSY, TwoPaths } from "../support/two_paths.ts";
import type { AuditReport } from "../../src/audit/report.ts";

const WINDOW_SECONDS = 15;
const BYTES = 1 << 20;

/** Runs an audit while connections go out over both paths, batch after batch, until it ends. */
async function auditUnderTraffic(
  paths: TwoPaths,
  sb: Sandbox,
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string; connections: number }> {
  const child = new Deno.Command(LAUNCHER, {
    args: [
      "audit",
      "--duration",
      `${WINDOW_SECONDS}`,
      "--netns",
      sb.ns.name,
      "--cgroup",
      sb.cg.path,
      ...args,
    ],
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let ended = false;
  const output = child.output().finally(() => ended = true);
  let connections = 0;
  try {
    while (!ended) {
      const run = await paths.send(sb, 10, BYTES);
      connections += 10 - run.failed;
    }
  } catch (e) {
    // The audit, attached for its whole window, must not outlive the sandbox.
    try {
      child.kill("SIGKILL");
    } catch { /* ended */ }
    await output;
    throw e;
  }
  const out = await output;
  const dec = new TextDecoder();
  return {
    code: out.code,
    stdout: dec.decode(out.stdout),
    stderr: dec.decode(out.stderr),
    connections,
  };
}

Deno.test({
  name: "audit: tcp_conn's loss rule names the lossy path (reno -> bbr), not the clean one; " +
    "JSON and OpenMetrics keep the text; nothing changed; --apply leaves it",
  ignore: !IS_ROOT,
  async fn() {
    const dir = mkdtempSync(join(tmpdir(), "bpfp-audit-conn-"));
    try {
      await withSandbox("atc", async (sb) => {
        const paths = TwoPaths.create(sb.ns, "atc");
        try {
          await paths.startSink();
          const prom = join(dir, "bpfpilot_audit.prom");
          const r = await auditUnderTraffic(paths, sb, ["--json", "--prometheus", prom]);
          assert.equal(r.code, 1, r.stderr);
          const report = JSON.parse(r.stdout) as AuditReport;
          const observe = report.checks.find((c) => c.id === "BPFP-OBSERVE-TCP-CONN");
          assert.equal(observe?.status, "pass", JSON.stringify(report.checks));
          const conn = report.findings.filter((f) => f.id.startsWith("BPFP-TCP-CONN-"));
          console.log(
            `${r.connections} connections during the window; tcp_conn findings:\n` +
              conn.map((f) =>
                `  ${f.id} ${f.remote}: ${f.current} -> ${f.recommended}; ` +
                f.evidence.map((e) => e.observed).join("; ")
              ).join("\n"),
          );
          const lossy = conn.find((f) => f.remote === LOSSY);
          assert.ok(lossy, `a finding for the lossy path: ${JSON.stringify(conn)}`);
          assert.equal(lossy.id, "BPFP-TCP-CONN-LOSSY-PATH");
          assert.equal(lossy.severity, "warning");
          assert.equal(lossy.netns, sb.ns.name);
          assert.equal(lossy.tunable, "net.persock.tcp.congestion_control");
          assert.equal(lossy.current, CLIENT_DEFAULT, "JSON keeps the algorithm as text");
          assert.equal(lossy.recommended, "bbr");
          assert.equal(lossy.sysctlW, null, "no sysctl sets a path's algorithm");
          const seen = lossy.evidence.map((e) => e.observed).join("\n");
          assert.match(
            seen,
            /^tcp_conn: \d+ of \d+ sampled connections retransmitted more than 1\/64/m,
          );
          const ratio = Number(seen.match(/retransmitted ([\d.]+) % of the segments sent/)?.[1]);
          assert.ok(ratio > 0, `a retransmission ratio for the lossy path: ${seen}`);
          assert.ok(
            !conn.some((f) => f.remote === CLEAN && f.id === "BPFP-TCP-CONN-LOSSY-PATH"),
            "the clean path is not reported lossy",
          );
          assert.ok(
            !conn.some((f) => ["dctcp", "bpf_dctcp", "prague"].includes(f.recommended as string)),
            "no datacenter-only algorithm for these paths",
          );

          const metrics = parseOpenMetrics(readFileSync(prom, "utf8"));
          const rec = findSamples(metrics, "bpfpilot_audit_finding_recommended_info", {
            remote: LOSSY,
          });
          assert.deepEqual(rec.map((s) => [s.labels.value, s.value]), [["bbr", 1]]);
          assert.equal(
            findSamples(metrics, "bpfpilot_audit_finding_recommended_value", { remote: LOSSY })
              .length,
            0,
            "a text value is never a numeric sample",
          );

          // Advice only: the namespace's default is what the test set.
          const cc = sb.ns.exec(["sysctl", "-n", "net.ipv4.tcp_congestion_control"]).trim();
          assert.equal(cc, CLIENT_DEFAULT);

          // --apply: the per-connection choice is left (exit 1, not 2); nothing is journaled.
          const state = join(dir, "state");
          const applied = await auditUnderTraffic(paths, sb, [
            "--json",
            "--apply",
            "--state-dir",
            state,
          ]);
          const ar = JSON.parse(applied.stdout) as AuditReport;
          const left = ar.applied?.find((a) => a.id === "BPFP-TCP-CONN-LOSSY-PATH");
          assert.ok(left, JSON.stringify(ar.applied));
          assert.deepEqual([left.applied, left.appliable], [false, false]);
          assert.match(left.message, /--apply leaves it/);
          // Host findings are outside --netns, so refused (exit 2); otherwise exit 1 for this one.
          const refused = ar.applied!.some((a) => a.appliable && !a.applied);
          assert.equal(applied.code, refused ? 2 : 1, applied.stderr);
        } finally {
          paths.close();
        }
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
});
