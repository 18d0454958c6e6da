import assert from "node:assert/strict";
import { type AdviceResult, type AdviseRunner, OBSERVED_TUNERS } from "../../src/audit/advise.ts";
import type { ApplyHook } from "../../src/audit/apply.ts";
import type { AuditReport } from "../../src/audit/report.ts";
import type { Clock } from "../../src/audit/window.ts";
import { formatAuditValue } from "../../src/audit/values.ts";
import {
  type AuditDeps,
  type AuditOptions,
  parseDuration,
  renderCheckList,
  runAudit,
} from "../../src/cli/audit.ts";

const has = (tuner: string) => OBSERVED_TUNERS.includes(tuner);

Deno.test("--list-checks explains every observation row the report can have", () => {
  const list = renderCheckList();
  assert.ok(OBSERVED_TUNERS.length >= 1);
  for (const t of OBSERVED_TUNERS) {
    const id = `BPFP-OBSERVE-${t.toUpperCase().replace(/_/g, "-")}`;
    assert.match(list, new RegExp(`^${id}  \\(the ${t} tuner`, "m"));
  }
  // Only tuners this build ships: each listed row is one the report can hold.
  const listed = [...list.matchAll(/^BPFP-OBSERVE-(\S+)/gm)].map((m) => m[1]);
  assert.equal(listed.length, OBSERVED_TUNERS.length);
});
import { findSamples, parseOpenMetrics } from "../support/openmetrics.ts";

// ---- a fake /proc tree ----------------------------------------------------------------------

const QUIET_SYSCTLS: Record<string, string> = {
  "kernel.hostname": "testbox",
  "kernel.osrelease": "6.18.0-test",
  "net.ipv4.tcp_rmem": "4096\t131072\t33554432",
  "net.ipv4.tcp_wmem": "4096\t16384\t4194304",
  "net.ipv4.tcp_mem": "100000\t200000\t300000",
  "net.ipv4.tcp_moderate_rcvbuf": "1",
  "net.ipv4.tcp_syncookies": "1",
  "net.core.somaxconn": "4096",
  "net.core.netdev_max_backlog": "1000",
  "net.core.netdev_budget": "300",
  "net.core.high_order_alloc_disable": "0",
  "net.core.rmem_max": "212992",
  "net.ipv4.udp_mem": "100000\t200000\t300000",
  "net.ipv4.ipfrag_high_thresh": "4194304",
  "net.ipv4.neigh.default.gc_thresh3": "1024",
};

interface ProcSpec {
  sysctls?: Record<string, string>;
  softnetDropped?: number;
  udpRcvbufErrors?: number;
}

function writeProc(root: string, spec: ProcSpec = {}): void {
  const sysctls = { ...QUIET_SYSCTLS, ...spec.sysctls };
  for (const [name, value] of Object.entries(sysctls)) {
    const path = `${root}/sys/${name.replaceAll(".", "/")}`;
    Deno.mkdirSync(path.slice(0, path.lastIndexOf("/")), { recursive: true });
    Deno.writeTextFileSync(path, `${value}\n`);
  }
  Deno.mkdirSync(`${root}/net/stat`, { recursive: true });
  const hex = (n: number) => n.toString(16).padStart(8, "0");
  Deno.writeTextFileSync(
    `${root}/net/snmp`,
    "Ip: Forwarding ReasmTimeout ReasmReqds ReasmFails\nIp: 1 0 0 0\n" +
      "Udp: InDatagrams RcvbufErrors MemErrors\n" +
      `Udp: 100 ${spec.udpRcvbufErrors ?? 0} 0\n`,
  );
  Deno.writeTextFileSync(
    `${root}/net/netstat`,
    "TcpExt: RcvPruned OfoPruned TCPRcvQDrop TCPMemoryPressures TCPAbortOnMemory TCPReqQFullDrop ListenOverflows\n" +
      "TcpExt: 0 0 0 0 0 0 0\n",
  );
  Deno.writeTextFileSync(
    `${root}/net/softnet_stat`,
    `${hex(1000)} ${
      hex(spec.softnetDropped ?? 0)
    } 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000\n`,
  );
  Deno.writeTextFileSync(`${root}/net/stat/arp_cache`, "entries table_fulls\n00000002 00000000\n");
  Deno.writeTextFileSync(`${root}/net/sockstat`, "TCP: inuse 1 mem 5\nUDP: inuse 0 mem 0\n");
  Deno.writeTextFileSync(`${root}/meminfo`, "MemTotal:       16384000 kB\n");
}

function withProc(spec: ProcSpec, fn: (root: string) => Promise<void>): () => Promise<void> {
  return async () => {
    const root = Deno.makeTempDirSync({ prefix: "bpfpilot-audit-proc-" });
    try {
      writeProc(root, spec);
      await fn(root);
    } finally {
      Deno.removeSync(root, { recursive: true });
    }
  };
}

// ---- fake dependencies ----------------------------------------------------------------------

function fakeClock(): Clock & { t: number } {
  const clock = {
    t: 0,
    now: () => clock.t,
    sleep: async (ms: number, signal: AbortSignal) => {
      await new Promise((resolve) => setTimeout(resolve, 0));
      if (!signal.aborted) clock.t += ms;
    },
  };
  return clock;
}

interface Captured extends AuditDeps {
  out: string[];
  err: string[];
}

function fakeDeps(root: string, o: Partial<AuditDeps> & { tty?: boolean } = {}): Captured {
  const out: string[] = [];
  const err: string[] = [];
  return {
    runner: () => Promise.resolve({ proposals: [], tuners: [] }),
    clock: fakeClock(),
    wallNow: () => new Date("2026-01-02T03:04:05.000Z"),
    stdout: { write: (s) => out.push(s) },
    stderr: { write: (s) => err.push(s), isTTY: o.tty ?? false, columns: 80 },
    isRoot: () => true,
    procRoot: root,
    ...o,
    out,
    err,
  };
}

async function auditJson(root: string, options: AuditOptions, o: Partial<AuditDeps> = {}) {
  const deps = fakeDeps(root, o);
  const code = await runAudit({ ...options, json: true }, deps);
  return { code, report: JSON.parse(deps.out.join("")) as AuditReport, deps };
}

// ---- tests ----------------------------------------------------------------------------------

Deno.test(
  "cli: a quiet machine exits 0 in every format",
  withProc({}, async (root) => {
    const text = fakeDeps(root);
    assert.equal(await runAudit({ duration: 0 }, text), 0);
    assert.match(text.out.join(""), /^Findings: none$/m);
    assert.match(text.out.join(""), /Exit code 0\.$/m);
    const { code, report } = await auditJson(root, { duration: 0 });
    assert.equal(code, 0);
    assert.equal(report.exitCode, 0);
    assert.equal(report.schema, "bpfpilot-audit");
    assert.equal(report.schemaVersion, 1);
    assert.equal(report.host, "testbox");
    assert.equal(report.kernel, "6.18.0-test");
    assert.equal(report.window.observation, "off");
    assert.ok(
      report.checks.filter((c) => c.id.startsWith("BPFP-OBSERVE-")).every((c) =>
        c.status === "skip"
      ),
    );
  }),
);

Deno.test(
  "cli: findings exit 1 in text, JSON and OpenMetrics alike; --exit-zero makes all three 0",
  withProc({ softnetDropped: 40, udpRcvbufErrors: 7 }, async (root) => {
    const prom = `${root}/audit.prom`;
    for (const exitZero of [false, true]) {
      const want = exitZero ? 0 : 1;
      const text = fakeDeps(root);
      assert.equal(await runAudit({ duration: 0, exitZero, prometheus: prom }, text), want);
      assert.match(text.out.join(""), new RegExp(`Exit code ${want}\\.$`, "m"));
      const metrics = parseOpenMetrics(Deno.readTextFileSync(prom));
      assert.equal(findSamples(metrics, "bpfpilot_audit_exit_code")[0].value, want);
      const { code, report } = await auditJson(root, { duration: 0, exitZero });
      assert.equal(code, want);
      assert.equal(report.exitCode, want);
    }
  }),
);

Deno.test(
  "cli: text, JSON and OpenMetrics report the same findings and check statuses",
  withProc({
    softnetDropped: 40,
    udpRcvbufErrors: 7,
    sysctls: { "net.ipv4.tcp_moderate_rcvbuf": "0", "net.ipv4.tcp_rmem": "4096 87380 1048576" },
  }, async (root) => {
    const prom = `${root}/audit.prom`;
    const { report } = await auditJson(root, { duration: 0 });
    const text = fakeDeps(root);
    await runAudit({ duration: 0, prometheus: prom }, text);
    const out = text.out.join("");
    const metrics = parseOpenMetrics(Deno.readTextFileSync(prom));

    const fromJson = report.findings.map((f) =>
      `${f.severity} ${f.id} ${f.netns} ${formatAuditValue(f.recommended)}`
    ).sort();
    assert.equal(fromJson.length, 4);
    // Text: "[SEVERITY] ID: title" then an aligned "recommended" row.
    const fromText = [
      ...out.matchAll(/^\[(\w+)\] (\S+): .*\n(?: {2}.*\n)*? {2}recommended +(.*)$/gm),
    ]
      .map((m) => `${m[1].toLowerCase()} ${m[2]} host ${m[3]}`).sort();
    assert.deepEqual(fromText, fromJson);
    const findings = findSamples(metrics, "bpfpilot_audit_finding");
    const fromProm = findings.map((s) => {
      const rec = findSamples(metrics, "bpfpilot_audit_finding_recommended_value", {
        id: s.labels.id,
        netns: s.labels.netns,
      })
        .sort((a, b) => Number(a.labels.field) - Number(b.labels.field)).map((r) => r.value);
      return `${s.labels.severity} ${s.labels.id} ${s.labels.netns} ${rec.join(" ")}`;
    }).sort();
    assert.deepEqual(fromProm, fromJson);

    const statusJson = report.checks.map((c) => `${c.id}=${c.status}`).sort();
    const statusText = [...out.matchAll(/^ {2}(pass|finding|skip|needs-root) +(BPFP-\S+) /gm)].map((
      m,
    ) => `${m[2]}=${m[1]}`).sort();
    const statusProm = findSamples(metrics, "bpfpilot_audit_check_status").map((s) =>
      `${s.labels.id}=${s.labels.status}`
    ).sort();
    assert.deepEqual(statusText, statusJson);
    assert.deepEqual(statusProm, statusJson);
    // Severity and status tallies agree too.
    for (const sev of ["critical", "warning", "info"] as const) {
      assert.equal(
        findSamples(metrics, "bpfpilot_audit_findings", { severity: sev })[0].value,
        report.summary.findings[sev],
      );
    }
    // Every finding's ID has a check row with status "finding".
    for (const f of report.findings) {
      assert.equal(report.checks.find((c) => c.id === f.id)?.status, "finding");
    }
  }),
);

Deno.test(
  "cli: --from audits a saved `sysctl -a` dump without root and without /proc",
  async () => {
    const dir = Deno.makeTempDirSync({ prefix: "bpfpilot-audit-from-" });
    try {
      let dump: string;
      try {
        const res = new Deno.Command("sysctl", { args: ["-a"], stdout: "piped", stderr: "null" })
          .outputSync();
        dump = new TextDecoder().decode(res.stdout);
      } catch {
        dump = Object.entries(QUIET_SYSCTLS).map(([k, v]) => `${k} = ${v}`).join("\n") + "\n";
      }
      // The dump is this machine's, with auto-tuning switched off in the copy only.
      dump = dump.replace(
        /^net\.ipv4\.tcp_moderate_rcvbuf = .*$/m,
        "net.ipv4.tcp_moderate_rcvbuf = 0",
      );
      if (!/tcp_moderate_rcvbuf = 0/.test(dump)) dump += "net.ipv4.tcp_moderate_rcvbuf = 0\n";
      Deno.writeTextFileSync(`${dir}/host.sysctl`, dump);
      const { code, report } = await auditJson(`${dir}/no-proc-here`, {
        from: `${dir}/host.sysctl`,
      }, {
        isRoot: () => false,
        runner: () => Promise.reject(new Error("the window must not run for --from")),
      });
      assert.equal(code, 1);
      assert.deepEqual(report.source, { kind: "file", path: `${dir}/host.sysctl` });
      assert.equal(report.window.observation, "off");
      assert.ok(report.findings.some((f) => f.id === "BPFP-TCP-MODERATE-RCVBUF"));
      const skipped = report.checks.filter((c) => c.status === "skip").map((c) => c.id);
      assert.ok(skipped.includes("BPFP-NETDEV-BACKLOG-DROPS"), "counter checks skip offline");
      assert.equal(report.checks.filter((c) => c.status === "needs-root").length, 0);
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
);

Deno.test(
  "cli: usage errors and unreadable input exit 2 with cause and fix (and a JSON error document)",
  withProc({}, async (root) => {
    const cases: [AuditOptions, Partial<AuditDeps>, RegExp][] = [
      [{ from: `${root}/x`, duration: 5 }, {}, /--from audits a saved dump/],
      [
        { from: `${root}/x`, apply: true },
        { apply: () => Promise.resolve([]) },
        /--apply cannot be combined with --from/,
      ],
      [{ apply: true, duration: 0 }, {}, /--apply is not available in this build/],
      [
        { apply: true, duration: 0 },
        { apply: () => Promise.resolve([]), isRoot: () => false },
        /needs root/,
      ],
      [
        { from: `${root}/missing.sysctl` },
        {},
        /does not exist; pass a file made with `sysctl -a > FILE`/,
      ],
      [
        { duration: 0, prometheus: `${root}/no/such/dir/a.prom` },
        {},
        /cannot write --prometheus .*directory does not exist/,
      ],
    ];
    for (const [options, o, message] of cases) {
      const deps = fakeDeps(root, o);
      assert.equal(await runAudit(options, deps), 2, String(message));
      assert.match(deps.err.join(""), message);
      assert.doesNotMatch(deps.err.join(""), /\n\s+at /, "no stack trace");
      const json = fakeDeps(root, o);
      assert.equal(await runAudit({ ...options, json: true }, json), 2);
      const doc = JSON.parse(json.out.join(""));
      assert.equal(doc.exitCode, 2);
      assert.match(doc.error.message, message);
    }
  }),
);

Deno.test(
  "cli: an unwritable --prometheus path fails before the window starts",
  withProc({}, async (root) => {
    let ran = false;
    const deps = fakeDeps(root, {
      runner: () => {
        ran = true;
        return Promise.resolve({ proposals: [], tuners: [] });
      },
    });
    assert.equal(await runAudit({ duration: 30, prometheus: `${root}/missing/a.prom` }, deps), 2);
    assert.equal(ran, false);
    assert.equal(deps.out.join(""), "");
  }),
);

Deno.test(
  "cli: --prometheus replaces the file atomically and leaves no temp file",
  withProc({ softnetDropped: 1 }, async (root) => {
    const dir = `${root}/textfile`;
    Deno.mkdirSync(dir);
    Deno.writeTextFileSync(`${dir}/bpfpilot_audit.prom`, "old content\n");
    assert.equal(
      await runAudit({ duration: 0, prometheus: `${dir}/bpfpilot_audit.prom` }, fakeDeps(root)),
      1,
    );
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["bpfpilot_audit.prom"]);
    const text = Deno.readTextFileSync(`${dir}/bpfpilot_audit.prom`);
    assert.ok(text.endsWith("# EOF\n"));
    assert.equal(Deno.statSync(`${dir}/bpfpilot_audit.prom`).mode! & 0o777, 0o644);
  }),
);

Deno.test(
  "cli: --apply hands the findings to the hook; all applied exits 0, any failure exits 2",
  withProc({ softnetDropped: 40, udpRcvbufErrors: 7 }, async (root) => {
    let seen: (string | null)[] = [];
    const ok: ApplyHook = (findings) => {
      seen = findings.map((f) => f.sysctlW);
      return Promise.resolve(
        findings.map((f) => ({
          id: f.id,
          netns: f.netns,
          tunable: f.tunable,
          applied: true,
          appliable: true,
          message: "written, journal #1",
        })),
      );
    };
    const good = await auditJson(root, { duration: 0, apply: true }, { apply: ok });
    assert.equal(good.code, 0);
    assert.deepEqual(seen.sort(), [
      "sysctl -w net.core.netdev_max_backlog=2000",
      "sysctl -w net.core.rmem_max=372736", // the udp_buffer tuner's growth for 7 drops
    ]);
    assert.ok(good.report.applied?.every((a) => a.applied));

    const partial: ApplyHook = (findings) =>
      Promise.resolve([{
        id: findings[0].id,
        netns: "host",
        tunable: findings[0].tunable,
        applied: true,
        appliable: true,
        message: "ok",
      }]);
    const bad = await auditJson(root, { duration: 0, apply: true }, { apply: partial });
    assert.equal(bad.code, 2, "a finding without an outcome counts as not applied");
    assert.equal(bad.report.applied?.filter((a) => !a.applied).length, 1);

    const text = fakeDeps(root, { apply: partial });
    assert.equal(await runAudit({ duration: 0, apply: true }, text), 2);
    assert.match(text.out.join(""), /applied +NO: the apply hook reported no outcome/);

    const throwing = fakeDeps(root, { apply: () => Promise.reject(new Error("journal locked")) });
    assert.equal(await runAudit({ duration: 0, apply: true }, throwing), 2);
    assert.match(throwing.err.join(""), /--apply failed before changing anything: journal locked/);
  }),
);

Deno.test(
  "cli: no progress output when stderr is not a TTY; a bar that is erased when it is",
  withProc({}, async (root) => {
    const quiet = fakeDeps(root, { tty: false });
    assert.equal(await runAudit({ duration: 2 }, quiet), 0);
    assert.equal(quiet.err.join(""), "");
    const tty = fakeDeps(root, { tty: true });
    assert.equal(await runAudit({ duration: 2 }, tty), 0);
    const drawn = tty.err.join("");
    assert.match(drawn, /\robserving \[#+-*\] +\d+% \d+\/2 s/);
    assert.match(drawn, /100% 2\/2 s/);
    assert.ok(drawn.endsWith("\r\x1b[2K"), "the bar is erased before the report");
    assert.doesNotMatch(tty.out.join(""), /observing/, "the bar never reaches stdout");
  }),
);

Deno.test(
  "cli: a window measures counter deltas and merges the tuners' advice",
  withProc({ softnetDropped: 5 }, async (root) => {
    const runner: AdviseRunner = () => {
      // Traffic during the window: 45 more backlog drops.
      writeProc(root, { softnetDropped: 50 });
      const advice: AdviceResult = {
        proposals: [{
          tuner: "net_buffer",
          scenario: "need to increase max backlog size",
          sysctl: "net.core.netdev_max_backlog",
          netns: "host",
          from: [1000],
          to: [1250],
          reason: "Due to excessive drops",
          count: 12,
        }, {
          tuner: "tcp_buffer",
          scenario: "need to increase TCP buffer size(s)",
          sysctl: "net.ipv4.tcp_rmem",
          netns: "host",
          from: [4096, 131072, 6291456],
          to: [4096, 131072, 7864320],
          reason: "need to increase max buffer size to maximize throughput",
          count: 3,
        }],
        tuners: [
          { tuner: "net_buffer", status: "active", reason: "" },
          { tuner: "tcp_buffer", status: "active", reason: "" },
          {
            tuner: "udp_buffer",
            status: "unavailable",
            reason: "udp_fail_queue_rcv_skb not traceable",
          },
        ],
      };
      return Promise.resolve(advice);
    };
    const { code, report } = await auditJson(root, { duration: 10 }, { runner });
    assert.equal(code, 1);
    assert.equal(report.window.observation, "completed");
    assert.equal(report.window.observedSeconds, 10);
    const backlog = report.findings.find((f) => f.id === "BPFP-NETDEV-BACKLOG-DROPS")!;
    assert.deepEqual(backlog.sources, ["static", "observed"]);
    assert.deepEqual(backlog.recommended, [2000], "the higher of static 2000 and observed 1250");
    const counts = backlog.evidence.filter((e) => e.count !== null).map((e) => [e.period, e.count]);
    assert.deepEqual(counts, [["since-boot", 50], ["window", 45], ["window", 12]]);
    const rmem = report.findings.find((f) => f.id === "BPFP-TCP-RMEM-MAX")!;
    assert.deepEqual(rmem.sources, ["observed"]);
    assert.equal(report.checks.find((c) => c.id === "BPFP-TCP-RMEM-MAX")?.status, "finding");
    const observe = Object.fromEntries(
      report.checks.filter((c) => c.id.startsWith("BPFP-OBSERVE-")).map((c) => [c.id, c.status]),
    );
    assert.equal(observe["BPFP-OBSERVE-NET-BUFFER"], "pass");
    assert.equal(observe["BPFP-OBSERVE-UDP-BUFFER"], "skip");
    // A row for each tuner this build has; none for one it does not have yet.
    assert.equal(observe["BPFP-OBSERVE-TCP-CONN"], has("tcp_conn") ? "skip" : undefined);
    assert.equal(observe["BPFP-OBSERVE-NOSUCH"], undefined);
    assert.equal(
      new Set(report.findings.map((f) => `${f.id}/${f.netns}`)).size,
      report.findings.length,
      "no duplicates",
    );
  }),
);

Deno.test(
  "cli: tcp_conn's per-path advice is a finding with text values; --apply leaves it (exit 1)",
  withProc({}, async (root) => {
    const runner: AdviseRunner = () =>
      Promise.resolve({
        proposals: [],
        connections: [{
          rule: "lossy-path",
          scenario: "specify TCP congestion control algorithm",
          setting: "net.persock.tcp.congestion_control",
          netns: "host",
          remote: "192.0.2.7",
          current: "cubic",
          recommended: "bbr",
          reason: "4 of 9 sampled connections retransmitted more than 1/64 of the segments they " +
            "sent: would switch them to bbr",
          observations: ["retransmitted 3.10 % of the segments sent (310 of 10000)"],
          connections: 9,
        }],
        tuners: [{ tuner: "tcp_conn", status: "active", reason: "" }],
      });
    const { code, report } = await auditJson(root, { duration: 5 }, { runner });
    assert.equal(code, 1);
    const f = report.findings.find((f) => f.id === "BPFP-TCP-CONN-LOSSY-PATH");
    assert.ok(f, JSON.stringify(report.findings));
    assert.deepEqual([f.remote, f.current, f.recommended, f.sysctlW], [
      "192.0.2.7",
      "cubic",
      "bbr",
      null,
    ]);
    const row = report.checks.find((c) => c.id === "BPFP-OBSERVE-TCP-CONN");
    assert.match(row?.reason ?? "", /proposed: BPFP-TCP-CONN-LOSSY-PATH/);

    let handed: string[] = [];
    const apply: ApplyHook = (findings) => {
      handed = findings.map((f) => f.id);
      return Promise.resolve([]);
    };
    const applied = await auditJson(root, { duration: 5, apply: true }, { runner, apply });
    assert.deepEqual(handed, [], "no sysctl write is attempted for a per-connection choice");
    assert.equal(applied.code, 1, "the finding stays: exit 1, not the failure exit 2");
    const out = applied.report.applied?.find((a) => a.id === "BPFP-TCP-CONN-LOSSY-PATH");
    assert.deepEqual([out?.applied, out?.appliable, out?.remote], [false, false, "192.0.2.7"]);
  }),
);

Deno.test(
  "cli: without root the observation checks say needs-root and the exit code ignores them",
  withProc({}, async (root) => {
    const { code, report } = await auditJson(root, { duration: 3 }, { isRoot: () => false });
    assert.equal(code, 0);
    assert.equal(report.window.observation, "needs-root");
    const observe = report.checks.filter((c) => c.id.startsWith("BPFP-OBSERVE-"));
    assert.equal(observe.length, OBSERVED_TUNERS.length);
    assert.ok(observe.every((c) => c.status === "needs-root"));
    assert.equal(report.summary.checks["needs-root"], observe.length);
  }),
);

Deno.test(
  "cli: the stand-in runner reports the observation unavailable but the window still runs",
  withProc({}, async (root) => {
    const { unavailableRunner } = await import("../../src/audit/advise.ts");
    const { code, report } = await auditJson(root, { duration: 2 }, { runner: unavailableRunner });
    assert.equal(code, 0);
    assert.equal(report.window.observation, "unavailable");
    assert.equal(report.window.reason, "observation unavailable: daemon not built yet");
    assert.equal(report.window.observedSeconds, 2);
  }),
);

Deno.test(
  "cli: --quiet prints nothing on a clean run and the full report when there are findings",
  async () => {
    const root = Deno.makeTempDirSync({ prefix: "bpfpilot-audit-proc-" });
    try {
      writeProc(root);
      const clean = fakeDeps(root);
      assert.equal(await runAudit({ duration: 0, quiet: true }, clean), 0);
      assert.equal(clean.out.join(""), "");
      writeProc(root, { softnetDropped: 3 });
      const dirty = fakeDeps(root);
      assert.equal(await runAudit({ duration: 0, quiet: true }, dirty), 1);
      assert.match(dirty.out.join(""), /BPFP-NETDEV-BACKLOG-DROPS/);
      const json = fakeDeps(root);
      writeProc(root, { softnetDropped: 0 });
      assert.equal(await runAudit({ duration: 0, quiet: true, json: true }, json), 0);
      assert.equal(JSON.parse(json.out.join("")).exitCode, 0, "--json always prints its document");
    } finally {
      Deno.removeSync(root, { recursive: true });
    }
  },
);

Deno.test("cli: --list-checks describes every check", async () => {
  const deps = fakeDeps("/nonexistent");
  assert.equal(await runAudit({ listChecks: true }, deps), 0);
  const out = deps.out.join("");
  for (
    const id of ["BPFP-TCP-RMEM-MAX", "BPFP-NETDEV-BACKLOG-DROPS", "BPFP-NEIGH6-TABLE-OVERFLOW"]
  ) {
    assert.match(out, new RegExp(`^${id} `, "m"));
  }
});

Deno.test("cli: --duration accepts 0..86400 seconds and refuses anything else", () => {
  assert.equal(parseDuration("0"), 0);
  assert.equal(parseDuration("60"), 60);
  assert.equal(parseDuration("1.5"), 1.5);
  assert.equal(parseDuration("90s"), 90);
  for (const bad of ["", "-1", "abc", "86401", "Infinity", "NaN"]) {
    assert.throws(() => parseDuration(bad), /expected seconds from 0 to 86400/, bad);
  }
});

Deno.test("audit: a check that throws becomes that check's skip; the others still run", async () => {
  const { performAudit } = await import("../../src/audit/audit.ts");
  const { dumpSysctls } = await import("../../src/audit/sysctl_source.ts");
  const { STATIC_CHECKS } = await import("../../src/audit/checks/registry.ts");
  const broken = {
    ...STATIC_CHECKS[0],
    id: "BPFP-TEST-BROKEN",
    evaluate(): never {
      throw new Error("boom");
    },
  };
  const report = await performAudit({
    source: {
      kind: "file",
      path: "x",
      sysctls: dumpSysctls(new Map([["net.ipv4.tcp_moderate_rcvbuf", "0"]])),
    },
    durationSeconds: 0,
    runner: () => Promise.reject(new Error("not used")),
    apply: null,
    exitZero: false,
    isRoot: false,
    clock: fakeClock(),
    wallNow: () => new Date(0),
    signal: new AbortController().signal,
    onProgress: () => {},
    checks: [broken, ...STATIC_CHECKS],
  });
  const row = report.checks.find((c) => c.id === "BPFP-TEST-BROKEN")!;
  assert.equal(row.status, "skip");
  assert.equal(row.reason, "check failed internally: boom");
  assert.deepEqual(report.findings.map((f) => f.id), ["BPFP-TCP-MODERATE-RCVBUF"]);
  assert.equal(report.exitCode, 1);
  assert.equal(report.host, "unknown");
});
