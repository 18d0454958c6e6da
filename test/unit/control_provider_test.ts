/**
 * DaemonControlProvider against a fake daemon (tuner lists, statistics, in-memory sysctls) and a
 * real journal in a temporary directory: tuner states and reasons, tunables per namespace with
 * managed/overridden, enable/disable through overrides, summary, rollback plan, metrics.
 */
import assert from "node:assert/strict";
import { ControlError } from "../../src/daemon/control/protocol.ts";
import { DISABLE_COMM, disabledByControl } from "../../src/daemon/control_overrides.ts";
import { DaemonControlProvider, type ProviderDaemon } from "../../src/daemon/control_provider.ts";
import { Journal, type NetnsCookieOf } from "../../src/daemon/journal.ts";
import {
  type MetricsNetns,
  type MetricsSnapshot,
  renderMetrics,
} from "../../src/daemon/metrics.ts";
import { DaemonStats } from "../../src/daemon/stats.ts";
import { netnsRegistry, useNetnsRegistry } from "../../src/kernel/netns.ts";
import { NetnsRegistry } from "../../src/kernel/netns_registry.ts";
import type { SysctlIO } from "../../src/daemon/sysctl_io.ts";
import type { TunerDefinition } from "../../src/tuning/tuner.ts";
import { findSamples, parseOpenMetrics } from "../support/openmetrics.ts";

const RMEM = "net.ipv4.tcp_rmem";
const MEM = "net.ipv4.tcp_mem";
const UDP = "net.core.rmem_max";
/** Namespace keys no real namespace has, so they are shown as their keys. */
const NS = "ns:4000000001";
const GONE = "ns:4000000002";

function def(name: string, tunables: TunerDefinition["tunables"], hooks: string[]) {
  return {
    name,
    id: 1,
    description: name,
    tunables,
    scenarios: [{ id: 1, name: "need to increase TCP buffer size(s)", description: "grow it" }],
    hooks: hooks.map((h) => ({ name: h, description: h, candidates: [] })),
    create: () => ({}),
  } satisfies TunerDefinition;
}

const SYSCTL_DEF = def("sysctl", [], ["sysctl_write"]);
const TCP_DEF = def("tcp_buffer", [
  { sysctl: RMEM, values: 3, scope: "netns" },
  { sysctl: MEM, values: 3, scope: "global" },
], ["rcvbuf", "sndbuf"]);
const UDP_DEF = def("udp_buffer", [{ sysctl: UDP, values: 1, scope: "global" }], ["udp_rcv"]);
const NEIGH_DEF = def("neigh_table", [{
  sysctl: "net.ipv4.neigh.default.gc_thresh3",
  values: 1,
  scope: "netns",
}], []);

/** In-memory sysctls; `visits`: the namespace of each readMany (one visit of it). */
function fakeIO(): SysctlIO & { values: Map<string, number[]>; visits: string[] } {
  const values = new Map<string, number[]>([
    [`global|${RMEM}`, [4096, 131072, 6291456]],
    [`${NS}|${RMEM}`, [4096, 16384, 65536]],
    [`global|${MEM}`, [100, 200, 300]],
    [`global|${UDP}`, [212992]],
    ["global|net.ipv4.neigh.default.gc_thresh3", [1024]],
  ]);
  const visits: string[] = [];
  const read = (sysctl: string, netns: string) => values.get(`${netns}|${sysctl}`) ?? null;
  return {
    values,
    visits,
    read,
    readMany: (sysctls, netns) => (visits.push(netns), sysctls.map((s) => read(s, netns))),
    write: (sysctl, netns, v) => void values.set(`${netns}|${sysctl}`, [...v]),
  };
}

interface Fixture {
  daemon: ProviderDaemon;
  provider: DaemonControlProvider;
  journal: Journal;
  io: ReturnType<typeof fakeIO>;
  stats: DaemonStats;
  /** `netns|sysctl` keys the provider told the rate gate to forget. */
  forgotten: string[];
}

function withProvider(
  options: {
    advise?: boolean;
    onlyNetns?: string | null;
    metricsNetns?: MetricsNetns;
    /** The journal's namespace cookies (default: none; undefined: not identified now). */
    netnsCookie?: NetnsCookieOf;
  },
  body: (f: Fixture) => void | Promise<void>,
) {
  return async () => {
    const dir = Deno.makeTempDirSync({ prefix: "bpfp-provider-" });
    const journal = Journal.open(dir, { netnsCookie: options.netnsCookie });
    const stats = new DaemonStats();
    const io = fakeIO();
    const forgotten: string[] = [];
    const daemon: ProviderDaemon = {
      gate: { forget: (netns, sysctl) => void forgotten.push(`${netns}|${sysctl}`) },
      opts: {
        advise: options.advise ?? false,
        onlyNetns: options.onlyNetns ?? null,
        metricsNetns: options.metricsNetns,
      },
      startedAt: new Date("2026-01-02T03:04:05Z"),
      stats,
      journal,
      reportReads: io,
      loaded: [
        {
          def: SYSCTL_DEF,
          attached: [{ hook: "sysctl_write", kind: "cgroup", target: "sysctl", program: "p" }],
          missing: [],
        },
        {
          def: TCP_DEF,
          attached: [{
            hook: "rcvbuf",
            kind: "tp_btf",
            target: "tcp_rcv_space_adjust",
            program: "q",
          }],
          missing: [{ hook: "sndbuf", reason: "not traceable" }],
        },
      ],
      unavailable: [{ def: UDP_DEF, reason: "hook udp_rcv cannot attach on this kernel" }],
      disabled: ["neigh_table"],
      definitions: [SYSCTL_DEF, TCP_DEF, UDP_DEF, NEIGH_DEF],
      describeScenario: (_t, s) => (s.startsWith("need") ? "grow it" : ""),
    };
    try {
      await body({
        daemon,
        provider: new DaemonControlProvider(daemon),
        journal,
        io,
        stats,
        forgotten,
      });
    } finally {
      journal.close();
      Deno.removeSync(dir, { recursive: true });
    }
  };
}

function stateOf(p: DaemonControlProvider, name: string) {
  const t = p.tuners().find((x) => x.name === name);
  assert.ok(t, `tuner ${name} listed`);
  return t;
}

function assertControlError(fn: () => unknown, code: string, message: RegExp) {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ControlError, String(e));
    assert.equal(e.code, code);
    assert.match(e.message, message);
    return true;
  });
}

Deno.test(
  "provider tuners: every known tuner with its state and reason",
  withProvider({}, ({ provider }) => {
    const tuners = provider.tuners();
    assert.deepEqual(tuners.map((t) => [t.name, t.state]), [
      ["sysctl", "active"],
      ["tcp_buffer", "active"],
      ["udp_buffer", "unavailable"],
      ["neigh_table", "disabled"],
    ]);
    assert.match(
      stateOf(provider, "tcp_buffer").reason,
      /hooks: rcvbuf \(tp_btf\).*without optional sndbuf/,
    );
    assert.match(stateOf(provider, "sysctl").reason, /notice the administrator/);
    assert.equal(
      stateOf(provider, "udp_buffer").reason,
      "hook udp_rcv cannot attach on this kernel",
    );
    assert.match(stateOf(provider, "neigh_table").reason, /--disable or --allow/);
  }),
);

Deno.test(
  "provider tuners: advise mode, and manual once the admin took a sysctl over",
  withProvider({ advise: true }, ({ provider, journal }) => {
    assert.equal(stateOf(provider, "tcp_buffer").state, "advise");
    assert.match(stateOf(provider, "tcp_buffer").reason, /changes nothing/);
    journal.markOverride({
      netns: NS,
      sysctl: RMEM,
      tuner: "tcp_buffer",
      pid: 4321,
      comm: "sysctl",
    });
    const t = stateOf(provider, "tcp_buffer");
    assert.equal(t.state, "manual");
    assert.match(
      t.reason,
      new RegExp(`admin changed ${RMEM} in netns ${NS} \\(pid 4321, sysctl\\)`),
    );
    assert.match(t.reason, /until 'enable net\.ipv4\.tcp_rmem'/);
    // The admin's write is not a `disable`: nothing is switched off everywhere.
    assert.equal(disabledByControl(journal, RMEM), false);
  }),
);

/** Whether NS is identified now (the test of a waiting override). */
let identified = false;

Deno.test(
  "provider: an admin override waiting for its namespace to be identified is shown; enable ends it",
  withProvider({
    netnsCookie: (ns) => ns === NS ? (identified ? 5n : undefined) : null,
  }, ({ provider, journal }) => {
    journal.markOverride({ netns: NS, sysctl: RMEM, tuner: "tcp_buffer", pid: 7, comm: "sysctl" });
    assert.deepEqual(journal.overrides(), [], "not recorded: its namespace is not identified");
    assert.equal(journal.isOverridden(NS, RMEM), true, "it holds meanwhile");
    const t = stateOf(provider, "tcp_buffer");
    assert.equal(t.state, "manual");
    assert.match(
      t.reason,
      new RegExp(
        `admin changed ${RMEM} in netns ${NS} \\(pid 7, sysctl\\) at \\S+, not recorded yet: ` +
          `waiting for its namespace to be identified`,
      ),
    );
    const row = provider.tunables().find((r) => r.netns === NS);
    assert.deepEqual([row?.managed, row?.overridden], [false, true]);
    assert.ok(provider.status().some((s) => s.netns === NS), "its namespace's row is shown");
    const r = provider.enable(RMEM);
    assert.equal(r.changed, true);
    assert.match(r.message, /1 override\(s\) cleared/);
    assert.equal(journal.isOverridden(NS, RMEM), false, "enable ends the wait");
    identified = true;
    assert.equal(journal.placePendingOverrides(), 0, "and it is not recorded later");
    assert.deepEqual(journal.overrides(), []);
    assert.equal(stateOf(provider, "tcp_buffer").state, "active");
  }),
);

Deno.test(
  "provider tunables: one row per namespace the daemon knows; managed and overridden per row",
  withProvider({}, ({ provider, journal }) => {
    // The daemon changed something in NS; GONE is in the journal but cannot be read any more.
    journal.recordOriginal(NS, RMEM, "tcp_buffer", [4096, 16384, 65536]);
    journal.recordOriginal(GONE, RMEM, "tcp_buffer", [1, 2, 3]);
    journal.markOverride({ netns: NS, sysctl: RMEM, tuner: "tcp_buffer", pid: 7, comm: "sysctl" });
    const rows = provider.tunables().map((
      t,
    ) => [t.tuner, t.name, t.netns ?? "global", t.managed, t.overridden]);
    assert.deepEqual(rows, [
      ["tcp_buffer", RMEM, "global", true, false],
      ["tcp_buffer", RMEM, NS, false, true],
      ["tcp_buffer", MEM, "global", true, false],
      ["udp_buffer", UDP, "global", false, false], // unavailable: not managed
      ["neigh_table", "net.ipv4.neigh.default.gc_thresh3", "global", false, false], // off at start
    ]);
    const status = provider.status();
    assert.deepEqual(status.find((s) => s.netns === NS), {
      tuner: "tcp_buffer",
      name: RMEM,
      values: [4096, 16384, 65536],
      netns: NS,
    });
    assert.ok(status.every((s) => s.netns !== GONE), "a namespace that is gone has no live value");
  }),
);

Deno.test(
  "provider tunables: each namespace read in one visit; one failing there, the others still show",
  withProvider({}, ({ provider, journal, io }) => {
    journal.recordOriginal(NS, RMEM, "tcp_buffer", [4096, 16384, 65536]);
    const rows = () => provider.tunables().map((t) => `${t.name}@${t.netns ?? "global"}`);
    const all = rows();
    assert.deepEqual(io.visits.sort(), ["global", NS], "one visit of each namespace");
    io.visits.length = 0;
    io.readMany = (sysctls, netns) => {
      if (netns === "global") throw new Error("EIO"); // one of them unreadable now
      return sysctls.map((s) => io.read(s, netns));
    };
    const read = io.read;
    io.read = (s, netns) => {
      if (s === MEM) throw new Error("EIO");
      return read(s, netns);
    };
    assert.deepEqual(rows(), all.filter((r) => r !== `${MEM}@global`));
  }),
);

Deno.test(
  "provider tunables/status/metrics: the journal's overrides copied once per request, any scope",
  withProvider({}, async ({ provider, journal }) => {
    journal.recordOriginal(NS, RMEM, "tcp_buffer", [4096, 16384, 65536]);
    journal.markOverride({ netns: NS, sysctl: RMEM, tuner: "tcp_buffer", pid: 7, comm: "sysctl" });
    const overrides = journal.overrides.bind(journal);
    let copies = 0;
    journal.overrides = () => (copies++, overrides());
    const once = async (what: string, request: () => unknown) => {
      copies = 0;
      const rows = await request();
      assert.ok(Array.isArray(rows) ? rows.length > 0 : rows, `${what} answers`);
      assert.equal(copies, 1, `${what}: one copy of the overrides`);
    };
    for (const scope of [undefined, "changed", "all", NS, "global"]) {
      await once(`tunables(${scope})`, () => provider.tunables(scope));
      await once(`status(${scope})`, () => provider.status(scope));
    }
    await once("metrics", () => provider.metrics());
    // What the one copy decides is what separate copies did: the override shows in NS's row.
    assert.deepEqual(
      provider.tunables().filter((t) => t.netns === NS).map((t) => [t.name, t.overridden]),
      [[RMEM, true]],
    );
  }),
);

Deno.test(
  "provider tunables: with --netns only that namespace and host-wide sysctls are managed",
  withProvider({ onlyNetns: NS }, ({ provider }) => {
    const managed = provider.tunables().filter((t) => t.managed).map((t) =>
      `${t.name}@${t.netns ?? "global"}`
    );
    assert.deepEqual(managed, [`${RMEM}@${NS}`, `${MEM}@global`]);
  }),
);

Deno.test(
  "provider disable/enable of a sysctl: recorded as a `disable` override, everywhere, and cleared",
  withProvider({}, ({ provider, journal }) => {
    const off = provider.disable("net/ipv4/tcp_rmem");
    assert.deepEqual(
      { target: off.target, kind: off.kind, state: off.state, changed: off.changed },
      { target: RMEM, kind: "sysctl", state: "unmanaged", changed: true },
    );
    assert.match(off.message, /no longer changes it in any namespace/);
    const [o] = journal.overrides();
    assert.deepEqual([o.netns, o.sysctl, o.tuner, o.pid, o.comm], [
      "any", // every namespace
      RMEM,
      "tcp_buffer",
      0,
      DISABLE_COMM,
    ]);
    assert.equal(disabledByControl(journal, RMEM), true);
    assert.equal(disabledByControl(journal, MEM), false);
    assert.equal(provider.disable(RMEM).changed, false, "a second disable changes nothing");
    // Switched off in every namespace, but the tuner still runs for its other sysctls.
    journal.recordOriginal(NS, RMEM, "tcp_buffer", [4096, 16384, 65536]);
    assert.ok(
      provider.tunables().filter((t) => t.name === RMEM).every((t) => !t.managed && !t.overridden),
    );
    const t = stateOf(provider, "tcp_buffer");
    assert.equal(t.state, "active");
    assert.match(t.reason, /disabled: net\.ipv4\.tcp_rmem/);

    const on = provider.enable(RMEM);
    assert.equal(on.changed, true);
    assert.equal(on.state, "managed");
    assert.deepEqual(journal.overrides(), []);
    assert.equal(provider.enable(RMEM).changed, false);
  }),
);

Deno.test(
  "provider disable/enable of a tuner: every tunable switched off, state disabled, then active",
  withProvider({}, ({ provider, journal, forgotten }) => {
    const off = provider.disable("tcp_buffer_tuner.so"); // bpftune's plugin name works too
    assert.equal(off.target, "tcp_buffer");
    assert.equal(off.state, "disabled");
    assert.deepEqual(journal.overrides().map((o) => o.sysctl).sort(), [MEM, RMEM]);
    assert.equal(stateOf(provider, "tcp_buffer").state, "disabled");
    assert.match(stateOf(provider, "tcp_buffer").reason, /'enable tcp_buffer' resumes/);
    assert.ok(provider.tunables().filter((t) => t.tuner === "tcp_buffer").every((t) => !t.managed));

    // enable also clears what the admin did to the tuner's sysctls.
    journal.markOverride({ netns: NS, sysctl: RMEM, tuner: "tcp_buffer", pid: 9, comm: "sysctl" });
    const on = provider.enable("tcp_buffer");
    assert.equal(on.state, "active");
    assert.equal(on.changed, true);
    assert.match(on.message, /3 override\(s\) cleared/);
    assert.deepEqual(journal.overrides(), []);
    // The rate gate starts afresh for every sysctl of the tuner in every namespace it knows.
    assert.deepEqual(forgotten.sort(), [
      `global|${MEM}`,
      `global|${RMEM}`,
      `${NS}|${MEM}`,
      `${NS}|${RMEM}`,
    ]);
  }),
);

Deno.test(
  "provider enable/disable refusals: unknown names, the sysctl tuner, tuners that cannot run",
  withProvider({}, ({ provider, journal }) => {
    assertControlError(
      () => provider.disable("ghost"),
      "not-found",
      /no tuner or sysctl named 'ghost'; tuners: sysctl, tcp_buffer/,
    );
    assertControlError(
      () => provider.enable("net.ipv4.tcp_fin_timeout"),
      "not-found",
      /no tuner manages net\.ipv4\.tcp_fin_timeout/,
    );
    assertControlError(
      () => provider.disable("sysctl"),
      "bad-args",
      /nothing to disable; to stop it, restart bpfpilot with --disable sysctl/,
    );
    assertControlError(
      () => provider.enable("udp_buffer"),
      "failed",
      /unavailable on this kernel: hook udp_rcv/,
    );
    assertControlError(
      () => provider.enable("neigh_table"),
      "failed",
      /restart bpfpilot without that option/,
    );
    assertControlError(() => provider.disable("net..ipv4"), "bad-args", /./);
    assert.deepEqual(journal.overrides(), [], "refusals record nothing");
  }),
);

Deno.test(
  "provider summary and rollback plan: from the statistics and the journal, restoring nothing",
  withProvider({}, ({ provider, journal, stats, io }) => {
    stats.countScenario("tcp_buffer", "need to increase TCP buffer size(s)", RMEM, NS);
    stats.countScenario("tcp_buffer", "need to increase TCP buffer size(s)", RMEM, NS);
    stats.recordChange("tcp_buffer", RMEM, NS, [4096, 16384, 65536], [4096, 16384, 81920]);
    journal.recordOriginal(NS, RMEM, "tcp_buffer", [4096, 16384, 65536], [4096, 16384, 81920]);
    journal.recordWritten(NS, RMEM, [4096, 16384, 81920]);
    io.values.set(`${NS}|${RMEM}`, [4096, 16384, 81920]);
    // At its original already: not part of the plan.
    journal.recordOriginal("global", MEM, "tcp_buffer", [100, 200, 300], [100, 200, 400]);

    const summary = provider.summary();
    assert.equal(summary.since, "2026-01-02T03:04:05.000Z");
    assert.deepEqual(summary.scenarios, [{
      tuner: "tcp_buffer",
      tunable: RMEM,
      scenario: "need to increase TCP buffer size(s)",
      description: "grow it",
      count: 2,
      netns: NS,
    }]);
    assert.deepEqual(summary.changes, [{
      tuner: "tcp_buffer",
      sysctl: RMEM,
      initial: [4096, 16384, 65536],
      current: [4096, 16384, 81920],
      changes: 1,
      netns: NS,
    }]);

    assert.deepEqual(provider.rollback(), [{
      tuner: "tcp_buffer",
      sysctl: RMEM,
      original: [4096, 16384, 65536],
      current: [4096, 16384, 81920],
      netns: NS,
    }]);
    assert.deepEqual(io.values.get(`${NS}|${RMEM}`), [4096, 16384, 81920], "nothing restored");
    assert.equal(journal.changedEntries().length, 2, "the journal is untouched");
  }),
);

Deno.test(
  "provider metrics: values per namespace, changes, scenarios summed, events and hooks per tuner",
  withProvider({}, async ({ provider, stats, journal }) => {
    journal.recordOriginal(NS, RMEM, "tcp_buffer", [4096, 16384, 65536]);
    stats.recordChange("tcp_buffer", RMEM, NS, [4096, 16384, 65536], [4096, 16384, 81920]);
    stats.recordChange("tcp_buffer", RMEM, NS, [4096, 16384, 81920], [4096, 16384, 65536]);
    stats.countScenario("tcp_buffer", "need to increase TCP buffer size(s)", RMEM, NS);
    stats.countScenario("tcp_buffer", "need to increase TCP buffer size(s)", RMEM, "global");
    const ev = stats.tunerEvents("tcp_buffer");
    ev.events = 42;
    ev.dropped = 3;

    const snap = await provider.metrics();
    assert.ok(snap.process.residentBytes > 0 && snap.process.cpuSeconds >= 0);
    const families = parseOpenMetrics(renderMetrics(snap));
    const value = (labels: Record<string, string>) =>
      findSamples(families, "bpfpilot_tunable_value", labels).map((s) => s.value);
    assert.deepEqual(value({ sysctl: RMEM, netns: NS, index: "2" }), [65536]);
    assert.deepEqual(value({ sysctl: RMEM, netns: "global", index: "2" }), [6291456]);
    assert.deepEqual(
      findSamples(families, "bpfpilot_tunable_changes_total", { sysctl: RMEM, netns: NS }).map((
        s,
      ) => s.value),
      [2],
    );
    assert.deepEqual(
      findSamples(families, "bpfpilot_scenario_total").map((s) => [s.labels.tuner, s.value]),
      [["tcp_buffer", 2]],
    );
    assert.deepEqual(
      findSamples(families, "bpfpilot_events_total").map((s) => [s.labels.tuner, s.value]),
      [["sysctl", 0], ["tcp_buffer", 42]],
    );
    assert.deepEqual(
      findSamples(families, "bpfpilot_events_dropped_total", { tuner: "tcp_buffer" }).map((s) =>
        s.value
      ),
      [3],
    );
    assert.deepEqual(
      findSamples(families, "bpfpilot_hook_info").map((s) =>
        `${s.labels.tuner}/${s.labels.hook}/${s.labels.kind}=${s.value}`
      ),
      [
        "sysctl/sysctl_write/cgroup=1",
        "tcp_buffer/rcvbuf/tp_btf=1",
        "tcp_buffer/sndbuf/none=0",
        "udp_buffer/udp_rcv/none=0",
      ],
    );
  }),
);

/** Namespaces of the --metrics-netns tests: one bpfpilot only saw, one it owns a change in. */
const SEEN = "ns:4000000003";
const OWNED = "ns:4000000004";
const THRESH = "net.ipv4.neigh.default.gc_thresh3";

/**
 * NS: tcp_rmem changed since start; SEEN: a scenario, no change; OWNED: a journalled change of
 * gc_thresh3 from an earlier run. Every sysctl is readable everywhere.
 */
function seenAndChanged({ io, stats, journal }: Fixture): void {
  for (const ns of [NS, SEEN, OWNED]) {
    io.values.set(`${ns}|${RMEM}`, [4096, 16384, 65536]);
    io.values.set(`${ns}|${THRESH}`, [1024]);
  }
  stats.recordChange("tcp_buffer", RMEM, NS, [4096, 16384, 65536], [4096, 16384, 81920]);
  stats.countScenario("tcp_buffer", "need to increase TCP buffer size(s)", RMEM, SEEN);
  journal.recordOriginal(OWNED, THRESH, "neigh_table", [1024]);
  journal.recordWritten(OWNED, THRESH, [2048]);
}

/** `netns sysctl` of every tunable_value series (index 0), sorted. */
function valueSeries(snap: MetricsSnapshot): string[] {
  return findSamples(parseOpenMetrics(renderMetrics(snap)), "bpfpilot_tunable_value", {
    index: "0",
  }).map((s) => `${s.labels.netns} ${s.labels.sysctl}`).sort();
}

Deno.test(
  "provider metrics by default: the host's every tunable, elsewhere only what bpfpilot changed",
  withProvider({}, async (f) => {
    seenAndChanged(f);
    // Every sysctl each namespace visit reads (the fake's read never fails: no single reads).
    const reads: string[] = [];
    const readMany = f.io.readMany!;
    f.io.readMany = (sysctls, netns) => {
      reads.push(...sysctls.map((s) => `${netns} ${s}`));
      return readMany(sysctls, netns);
    };
    assert.deepEqual(valueSeries(await f.provider.metrics()), [
      `global ${UDP}`,
      `global ${THRESH}`,
      `global ${MEM}`,
      `global ${RMEM}`,
      `${NS} ${RMEM}`,
      `${OWNED} ${THRESH}`,
    ]);
    assert.ok(!reads.some((r) => r.startsWith(SEEN)), `SEEN never read: ${reads.join(", ")}`);
    assert.equal(reads.filter((r) => r.startsWith(NS)).join(), `${NS} ${RMEM}`);
    // `tunables --netns all` keeps the full view.
    const listed = f.provider.tunables("all").filter((t) => t.netns === SEEN).map((t) => t.name);
    assert.deepEqual(listed.sort(), [THRESH, RMEM]);
  }),
);

Deno.test(
  "provider metrics with --metrics-netns all: every tunable of every namespace it knows",
  withProvider({ metricsNetns: "all" }, async (f) => {
    seenAndChanged(f);
    const series = valueSeries(await f.provider.metrics());
    for (const ns of [NS, SEEN, OWNED]) {
      assert.deepEqual(series.filter((s) => s.startsWith(`${ns} `)), [
        `${ns} ${THRESH}`,
        `${ns} ${RMEM}`,
      ]);
    }
    assert.equal(series.length, 4 + 6);
  }),
);

/** `netns sysctl` of each row, sorted. */
function rowKeys(rows: { name: string; netns?: string }[]): string[] {
  return rows.map((r) => `${r.netns ?? "global"} ${r.name}`).sort();
}

const HOST_ROWS = [`global ${MEM}`, `global ${RMEM}`, `global ${THRESH}`, `global ${UDP}`].sort();

Deno.test(
  "provider tunables/status by default: the host's every tunable, elsewhere what bpfpilot did",
  withProvider({}, (f) => {
    seenAndChanged(f);
    // ADMIN: the administrator's write of tcp_rmem there (an override), nothing else.
    const ADMIN = "ns:4000000005";
    f.io.values.set(`${ADMIN}|${RMEM}`, [4096, 16384, 70000]);
    f.io.values.set(`${ADMIN}|${THRESH}`, [1024]);
    f.journal.markOverride({ netns: ADMIN, sysctl: RMEM, tuner: "tcp_buffer", pid: 7, comm: "x" });
    f.provider.disable(THRESH); // an override of every namespace ("any") shows none of them
    f.io.visits.length = 0;
    const expected = [...HOST_ROWS, `${ADMIN} ${RMEM}`, `${NS} ${RMEM}`, `${OWNED} ${THRESH}`];
    assert.deepEqual(rowKeys(f.provider.tunables()), expected.sort());
    assert.deepEqual(rowKeys(f.provider.status()), expected);
    assert.deepEqual(rowKeys(f.provider.status("changed")), expected);
    assert.ok(!f.io.visits.includes(SEEN), "a namespace with nothing to show is never entered");
    // all: every tunable of every namespace the daemon knows, as before.
    const all = rowKeys(f.provider.tunables("all"));
    for (const ns of [NS, SEEN, OWNED, ADMIN]) {
      assert.deepEqual(all.filter((r) => r.startsWith(`${ns} `)), [
        `${ns} ${THRESH}`,
        `${ns} ${RMEM}`,
      ]);
    }
    assert.deepEqual(rowKeys(f.provider.status("all")), all);
    // global: the host's only.
    assert.deepEqual(rowKeys(f.provider.tunables("global")), HOST_ROWS);
  }),
);

Deno.test(
  "provider tunables with --netns: that namespace in full by default",
  withProvider({ onlyNetns: SEEN }, (f) => {
    seenAndChanged(f);
    const rows = rowKeys(f.provider.tunables());
    assert.deepEqual(rows.filter((r) => r.startsWith(`${SEEN} `)), [
      `${SEEN} ${THRESH}`,
      `${SEEN} ${RMEM}`,
    ]);
    assert.deepEqual(rows.filter((r) => r.startsWith(`${NS} `)), [`${NS} ${RMEM}`]);
  }),
);

Deno.test(
  "provider tunables/status of one namespace: by name, key or inode; unknown ones not found",
  withProvider({}, (f) => {
    seenAndChanged(f);
    // "blue": named, found by the registry's scan, never touched by bpfpilot.
    const BLUE = "ns:4000000006";
    f.io.values.set(`${BLUE}|${RMEM}`, [1, 2, 3]);
    const previous = netnsRegistry();
    const fs = {
      list: (dir: string) => dir === "/run/netns" ? ["blue"] : [],
      stat: (path: string) =>
        path === "/proc/self/ns/net"
          ? { dev: 4, ino: 1n }
          : path === "/run/netns/blue"
          ? { dev: 4, ino: 4000000006n }
          : null,
    };
    const registry = new NetnsRegistry({ fs, ownInum: 1n });
    registry.discover();
    useNetnsRegistry(registry);
    try {
      const blue = f.provider.tunables("blue");
      assert.deepEqual(blue.map((t) => [t.netns, t.name, t.values]), [["blue", RMEM, [1, 2, 3]]]);
      assert.deepEqual(rowKeys(f.provider.status("4000000006")), [`blue ${RMEM}`]);
      // A namespace the daemon knows, by the key answers show it with: every tunable there.
      const seen = [`${SEEN} ${THRESH}`, `${SEEN} ${RMEM}`];
      assert.deepEqual(rowKeys(f.provider.tunables(SEEN)), seen);
      assert.deepEqual(rowKeys(f.provider.status(SEEN.slice(3))), seen);
      assert.deepEqual(rowKeys(f.provider.tunables("global")), HOST_ROWS);
      for (const ghost of ["red", "ns:4000000099", "4000000099"]) {
        assertControlError(
          () => f.provider.tunables(ghost),
          "not-found",
          new RegExp(`no network namespace "${ghost}" known to bpfpilot; '--netns all' lists`),
        );
      }
    } finally {
      useNetnsRegistry(previous);
    }
  }),
);

Deno.test(
  "provider: a state file damaged while running is a clear `failed` answer, not a crash",
  withProvider({}, ({ provider, journal }) => {
    Deno.writeTextFileSync(journal.file, "{ not json");
    assertControlError(
      () => provider.tuners(),
      "failed",
      /state\.json is damaged: it is not valid JSON/,
    );
    assertControlError(() => provider.disable("tcp_buffer"), "failed", /damaged/);
    // The summary does not need the journal and still answers.
    assert.equal(provider.summary().changes.length, 0);
  }),
);
