/**
 * `bpfpilot audit` as cron runs it: a subprocess on this machine, static checks only and a
 * short window, offline from a `sysctl -a` capture, and without root. Checks the exit code is
 * the same in every format and that the audit changed no sysctl (see auditWritingNothing).
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join, resolve } from "node:path";
import { STATIC_CHECKS } from "../../src/audit/checks/registry.ts";
import { readCounters } from "../../src/audit/counters.ts";
import { IS_ROOT } from "../support/kernel.ts";
import { findSamples, parseOpenMetrics } from "../support/openmetrics.ts";

const ROOT = resolve(new URL(".", import.meta.url).pathname, "../..");
const DENO = join(ROOT, "node_modules/.bin/deno");
const ENTRY = join(ROOT, "src/cli/audit_main.ts");

/** Every sysctl the checks read or the tuners may propose (bpftune-behaviour.md §2.11). */
const WATCHED = [
  ...STATIC_CHECKS.map((c) => c.tunable),
  "net.ipv4.tcp_no_metrics_save",
  "net.ipv4.tcp_max_syn_backlog",
  "net.core.netdev_budget_usecs",
  "net.core.flow_limit_cpu_bitmap",
  "net.core.rmem_default",
  "net.core.wmem_max",
  "net.ipv4.neigh.default.gc_thresh1",
  "net.ipv4.neigh.default.gc_thresh2",
];

function snapshot(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of WATCHED) {
    try {
      out[name] = Deno.readTextFileSync(`/proc/sys/${name.replaceAll(".", "/")}`);
    } catch {
      out[name] = "<absent>";
    }
  }
  return out;
}

const HAVE_STRACE = spawnSync("strace", ["-V"]).status === 0;

/**
 * Runs the audit and proves it wrote no sysctl. With strace: no /proc/sys file was opened for
 * writing by the audit or its children (exact, and immune to other tests changing sysctls
 * meanwhile). Without strace: the watched sysctls read the same before and after.
 */
function auditWritingNothing(args: string[]) {
  const before = snapshot();
  if (!HAVE_STRACE) {
    const r = audit(args);
    assert.deepEqual(snapshot(), before, "the audit must not change any sysctl");
    return r;
  }
  const trace = Deno.makeTempFileSync({ prefix: "bpfpilot-audit-strace-" });
  try {
    const r = audit(args, { strace: trace });
    const opens = Deno.readTextFileSync(trace).split("\n").filter((l) => l.includes('"/proc/sys/'));
    assert.ok(opens.length > 0, "strace saw the sysctl reads");
    const writes = opens.filter((l) => /O_WRONLY|O_RDWR|O_CREAT|O_TRUNC/.test(l));
    assert.deepEqual(writes, [], "the audit opened sysctls for writing");
    const after = snapshot();
    const changed = Object.keys(before).filter((k) => before[k] !== after[k]);
    if (changed.length > 0) {
      console.warn(`changed meanwhile by another process: ${changed.join(", ")}`);
    }
    return r;
  } finally {
    Deno.removeSync(trace);
  }
}

function audit(
  args: string[],
  opts: { user?: string; env?: Record<string, string>; strace?: string } = {},
) {
  if (opts.strace !== undefined) {
    return spawnSync("strace", [
      "-f",
      "-qq",
      "-e",
      "trace=open,openat,openat2",
      "-o",
      opts.strace,
      DENO,
      "run",
      "-A",
      ENTRY,
      ...args,
    ], {
      encoding: "utf8",
      env: { ...Deno.env.toObject(), NO_COLOR: "1" },
      cwd: ROOT,
      timeout: 60_000,
    });
  }
  const cmd = opts.user === undefined ? DENO : "setpriv";
  const argv = opts.user === undefined ? ["run", "-A", ENTRY, ...args] : [
    `--reuid=${opts.user}`,
    `--regid=${opts.user}`,
    "--clear-groups",
    DENO,
    "run",
    "-A",
    ENTRY,
    ...args,
  ];
  return spawnSync(cmd, argv, {
    encoding: "utf8",
    env: { ...Deno.env.toObject(), NO_COLOR: "1", ...opts.env },
    cwd: ROOT,
    timeout: 60_000,
  });
}

function withTempDir(fn: (dir: string) => void) {
  const dir = Deno.makeTempDirSync({ prefix: "bpfpilot-audit-it-" });
  try {
    fn(dir);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

Deno.test("this machine's /proc gives the counters the checks rely on", () => {
  const c = readCounters();
  assert.notEqual(c.snmp, null);
  assert.notEqual(c.netstat, null);
  assert.ok(c.softnet !== null && c.softnet.length >= 1);
  assert.ok(c.memTotalBytes !== null && c.memTotalBytes > 0);
  assert.ok([4096, 16384, 65536].includes(c.pageSize));
});

Deno.test("audit --duration 0: text and JSON agree on the exit code; nothing changed", () => {
  const json = auditWritingNothing(["--duration", "0", "--json"]);
  const text = audit(["--duration", "0"]);
  assert.ok(json.status === 0 || json.status === 1, json.stderr);
  const report = JSON.parse(json.stdout);
  assert.equal(report.schema, "bpfpilot-audit");
  assert.equal(report.exitCode, json.status);
  assert.equal(json.status, report.findings.length > 0 ? 1 : 0);
  assert.equal(report.kernel, Deno.osRelease());
  assert.equal(text.status, json.status);
  assert.match(text.stdout, new RegExp(`Exit code ${json.status}\\.$`, "m"));
  assert.equal(json.stderr, "", "no progress or noise on a non-TTY stderr");
  // On this kernel every static check can be evaluated: none is skipped for a missing counter.
  const statics = report.checks.filter((c: { id: string }) => !c.id.startsWith("BPFP-OBSERVE-"));
  assert.deepEqual(statics.filter((c: { status: string }) => c.status === "skip"), []);
});

Deno.test("audit with a 1 s window writes a textfile that agrees, changes nothing, no stderr", () => {
  withTempDir((dir) => {
    const prom = join(dir, "bpfpilot_audit.prom");
    const r = auditWritingNothing(["--duration", "1", "--json", "--prometheus", prom]);
    assert.ok(r.status === 0 || r.status === 1, r.stderr);
    assert.equal(r.stderr, "");
    const report = JSON.parse(r.stdout);
    assert.equal(report.window.observedSeconds, 1);
    assert.equal(report.window.observation, "unavailable");
    const metrics = parseOpenMetrics(Deno.readTextFileSync(prom));
    assert.equal(findSamples(metrics, "bpfpilot_audit_exit_code")[0].value, r.status);
    const ids = findSamples(metrics, "bpfpilot_audit_finding").map((s) => s.labels.id).sort();
    assert.deepEqual(ids, report.findings.map((f: { id: string }) => f.id).sort());
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["bpfpilot_audit.prom"]);
  });
});

Deno.test("audit --from a `sysctl -a` capture: offline, exit code from its findings", () => {
  withTempDir((dir) => {
    const dumpPath = join(dir, "host.sysctl");
    const sh = spawnSync("sh", ["-c", `sysctl -a > '${dumpPath}' 2>/dev/null`]);
    if (sh.status !== 0 || Deno.statSync(dumpPath).size === 0) {
      // sysctl(8) absent: a hand-written dump stands in.
      Deno.writeTextFileSync(
        dumpPath,
        "kernel.osrelease = 6.1.0\nnet.ipv4.tcp_rmem = 4096\t131072\t6291456\n",
      );
    }
    const clean = auditWritingNothing(["--from", dumpPath, "--json"]);
    assert.ok(clean.status === 0 || clean.status === 1, clean.stderr);
    const report = JSON.parse(clean.stdout);
    assert.equal(report.exitCode, clean.status);
    assert.equal(report.source.kind, "file");

    // The same capture with receive-buffer auto-tuning off (in the file only) must exit 1.
    const edited = Deno.readTextFileSync(dumpPath).replace(
      /^net\.ipv4\.tcp_moderate_rcvbuf = .*$/m,
      "net.ipv4.tcp_moderate_rcvbuf = 0",
    );
    Deno.writeTextFileSync(
      dumpPath,
      /tcp_moderate_rcvbuf = 0/.test(edited)
        ? edited
        : edited + "net.ipv4.tcp_moderate_rcvbuf = 0\n",
    );
    const dirty = audit(["--from", dumpPath]);
    assert.equal(dirty.status, 1, dirty.stderr);
    assert.match(dirty.stdout, /BPFP-TCP-MODERATE-RCVBUF/);
    assert.match(dirty.stdout, /sysctl -w net\.ipv4\.tcp_moderate_rcvbuf=1/);
    assert.equal(audit(["--from", dumpPath, "--exit-zero"]).status, 0);
  });
});

Deno.test({
  name: "audit as an unprivileged user: --from works, a window reports needs-root",
  ignore: !IS_ROOT,
  fn() {
    withTempDir((dir) => {
      Deno.chmodSync(dir, 0o755);
      const dumpPath = join(dir, "host.sysctl");
      Deno.writeTextFileSync(
        dumpPath,
        "kernel.osrelease = 6.1.0\nnet.ipv4.tcp_moderate_rcvbuf = 0\n",
      );
      Deno.chmodSync(dumpPath, 0o644);
      const denoDir = join(dir, "deno");
      Deno.mkdirSync(denoDir);
      Deno.chownSync(denoDir, 65534, 65534);
      const env = { DENO_DIR: denoDir, HOME: dir };
      const offline = audit(["--from", dumpPath], { user: "65534", env });
      assert.equal(offline.status, 1, offline.stderr);
      const live = audit(["--duration", "1", "--json"], { user: "65534", env });
      assert.ok(live.status === 0 || live.status === 1, live.stderr);
      const report = JSON.parse(live.stdout);
      assert.equal(report.window.observation, "needs-root");
      const observe = report.checks.filter((c: { id: string }) => c.id.startsWith("BPFP-OBSERVE-"));
      assert.ok(
        observe.length > 0 && observe.every((c: { status: string }) => c.status === "needs-root"),
      );
      const apply = audit(["--duration", "0", "--apply"], { user: "65534", env });
      assert.equal(apply.status, 2);
      assert.match(apply.stderr, /--apply/);
    });
  },
});

Deno.test("audit usage: --help teaches and exits 0; bad options and bad input exit 2", () => {
  const help = audit(["--help"]);
  assert.equal(help.status, 0);
  assert.match(help.stdout, /Exit status/);
  assert.match(help.stdout, /--exit-zero/);
  assert.match(help.stdout, /sysctl -a > host\.sysctl/);
  const badDuration = audit(["--duration", "soon"]);
  assert.equal(badDuration.status, 2);
  assert.match(badDuration.stderr, /expected seconds/);
  const badOption = audit(["--bogus"]);
  assert.equal(badOption.status, 2);
  const missing = audit(["--from", "/nonexistent/host.sysctl", "--json"]);
  assert.equal(missing.status, 2);
  assert.equal(JSON.parse(missing.stdout).exitCode, 2);
  assert.doesNotMatch(missing.stderr, /\n\s+at /);
});
