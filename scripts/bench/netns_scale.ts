/**
 * Namespaces at container scale (issue 10): 1, 100 and 1,000 network namespaces of our own,
 * present before the daemon starts (the bundle, every tuner, watching every namespace: no
 * --netns), with loopback TCP flows rotating over all of them (test/support/netns_crowd.py: one
 * process entering each with setns, so 1,000 namespaces get traffic on 2 cores). Per step:
 * `bpfpilot rollback` of one journal entry per namespace (a real write in each, restoring the
 * kernel's default tcp_rmem, with which every daemon then starts), the daemon's
 * start-up (as the packaged unit starts it, with the daemon's own breakdown by phase; at the last
 * step also from a root shell, which re-executes once to drop capabilities), then over a window
 * under traffic its CPU, the kernel side's BPF time, hook hits and events reaching userspace,
 * userspace CPU per event, open fds and RSS, and after those one metrics answer (its time and
 * series), one `query tunables`, one `query status` and one `tunables --netns all` (time,
 * rows). After the last step the namespaces are deleted while the daemon runs: fds and RSS once
 * it has rescanned.
 * The daemon runs with -R: it really tunes (per-namespace sysctls of our own namespaces, and a
 * host-wide one only under host memory pressure) and puts every change back on exit; a daemon
 * killed by Ctrl-C is rolled back from its journal by the cleanup.
 */
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { NetnsCrowd } from "../../test/support/netns_crowd.ts";
import { Journal } from "../../src/daemon/journal.ts";
import { requestControl } from "../../src/daemon/control/client.ts";
import { netnsCookieOf, ownNetnsInum, useNetnsRegistry } from "../../src/kernel/netns.ts";
import { NetnsRegistry } from "../../src/kernel/netns_registry.ts";
import { allStatsMaps, readAllHookStats, statsDelta } from "./bpf_stats.ts";
import { inCgroup } from "./cgroup.ts";
import { onCleanup } from "./cleanup.ts";
import { asUnitStarts, BenchDaemon, daemonArgv } from "./daemon_process.ts";
import { costDelta, enableBpfStats, readProgCosts } from "./prog_stats.ts";
import { type CpuUse, cpuWindow, memoryKb, openFds } from "./proc.ts";
import { fmtMb, fmtMs, fmtPct, fmtRate, judged, row, section, sleep } from "./report.ts";
import { tempDir } from "./tempdir.ts";

export interface NetnsBenchConfig {
  /** Namespace counts, one step each (BPFPILOT_BENCH_NETNS_STEPS, default 1,100,1000). */
  steps: number[];
  /** Traffic before the window (BPFPILOT_BENCH_NETNS_WARMUP_S): growth settles first. */
  warmupS: number;
  /** The measurement window under traffic (BPFPILOT_BENCH_NETNS_S). */
  windowS: number;
  /** Wait after deleting the namespaces, for the daemon's rescan (BPFPILOT_BENCH_NETNS_FORGET_S). */
  forgetS: number;
  /** The daemon's --metrics-netns (BPFPILOT_BENCH_NETNS_METRICS; null: its default). */
  metricsNetns: string | null;
}

const STARTED = /^(bpfpilot: )?bpfpilot started \(/;
/** The daemon's own account of its start (BPFPILOT_START_TIMING=1), right after STARTED. */
const START_TIMING = /start-up took (\d+) ms since this program image began: (.*)$/;
/** The daemon's change-path accounting line (BPFPILOT_CHANGE_TIMING=1 in the environment). */
const CHANGE_TIMING = /(change timing over .*)$/;
/** Bytes per flow: enough for the send buffer to grow near tcp_wmem's max on loopback. */
const FLOW_BYTES = 256 * 1024;
const RMEM = "net.ipv4.tcp_rmem";
/**
 * The kernel's default tcp_rmem: what the rollback step restores in every namespace, so each
 * step's daemon starts with it whatever the host's value (new namespaces copy the host's).
 */
const DEFAULT_RMEM = [4096, 131072, 6291456];
/** The value the rollback step writes into every namespace before `bpfpilot rollback`. */
const WRITTEN_RMEM = [4096, 131072, 7340032];

/** A crowd of namespaces deleted by the cleanup too (by name: only the ones it added). */
function crowdOf(n: number): { crowd: NetnsCrowd; ms: number; remove: () => Promise<void> } {
  const t0 = performance.now();
  const crowd = NetnsCrowd.create(`b${n}`, n);
  const ms = performance.now() - t0;
  const remove = onCleanup(`delete ${n} namespaces ${crowd.prefix}-*`, () => crowd.remove());
  return { crowd, ms, remove };
}

/**
 * Rotating loopback flows over every namespace of the crowd until `seconds` pass, from the
 * bench's cgroup (the daemon's sockops program is there).
 */
function traffic(crowd: NetnsCrowd, seconds: number) {
  const child = crowd.loop(FLOW_BYTES, seconds, inCgroup);
  const output = child.output();
  const stop = onCleanup(`kill flow loop ${child.pid}`, async () => {
    try {
      child.kill("SIGKILL");
    } catch {
      // exited already
    }
    await output;
  });
  return {
    /** Flows done and failed over the whole run (waits for its end). */
    async result(): Promise<{ flows: number; failed: number; ms: number }> {
      const out = await output;
      await stop();
      const text = new TextDecoder().decode(out.stdout).trim();
      if (!out.success || !text) throw new Error(`the flow loop exited ${out.code}: no result`);
      return JSON.parse(text);
    },
  };
}

/** Sum of bpfpilot_events_total (events received by the tuners) from the daemon's metrics. */
async function eventsReceived(
  socketPath: string,
): Promise<{ events: number; dropped: number; changes: number; byTuner: Map<string, number> }> {
  const r = await requestControl({ verb: "metrics" }, { socketPath, timeoutMs: 10_000 });
  if (!r.ok) throw new Error(`query metrics: ${r.error.message}`);
  const text = String(r.data);
  const sum = (family: string) =>
    [...text.matchAll(new RegExp(`^${family}\\{[^}]*\\} (\\d+)`, "gm"))]
      .reduce((s, m) => s + Number(m[1]), 0);
  const byTuner = new Map<string, number>();
  for (const m of text.matchAll(/^bpfpilot_events_total\{[^}]*tuner="([^"]+)"[^}]*\} (\d+)/gm)) {
    byTuner.set(m[1], (byTuner.get(m[1]) ?? 0) + Number(m[2]));
  }
  return {
    byTuner,
    events: sum("bpfpilot_events_total"),
    dropped: sum("bpfpilot_events_dropped_total"),
    changes: sum("bpfpilot_tunable_changes_total"),
  };
}

/**
 * One `query metrics` answer: wall time from request to parsed reply, its series (sample lines)
 * and how many of them are bpfpilot_tunable_value (the family that grows with namespaces).
 */
async function metricsAnswer(
  socketPath: string,
): Promise<{ ms: number; series: number; values: number }> {
  const t0 = performance.now();
  const r = await requestControl({ verb: "metrics" }, { socketPath, timeoutMs: 30_000 });
  const ms = performance.now() - t0;
  if (!r.ok) throw new Error(`query metrics: ${r.error.message}`);
  const samples = String(r.data).split("\n").filter((l) => l !== "" && !l.startsWith("#"));
  const values = samples.filter((l) => l.startsWith("bpfpilot_tunable_value{")).length;
  return { ms, series: samples.length, values };
}

/**
 * One `query tunables` and one `query status` answer (their default), then `tunables --netns
 * all`: wall time from request to parsed reply and the rows (tunables, or status's live values)
 * each listed.
 */
async function queryAnswers(socketPath: string): Promise<Record<QueryKind, QueryFigure>> {
  const one = async (verb: "tunables" | "status", netns?: string): Promise<QueryFigure> => {
    const t0 = performance.now();
    const r = await requestControl({ verb, netns }, { socketPath, timeoutMs: 30_000 });
    const ms = performance.now() - t0;
    if (!r.ok) throw new Error(`query ${verb}: ${r.error.message}`);
    const rows = (verb === "status" ? (r.data as { tunables: unknown[] }).tunables : r.data) as {
      netns?: string;
    }[];
    return { ms, rows: rows.length, namespaces: new Set(rows.map((x) => x.netns)).size };
  };
  return {
    tunables: await one("tunables"),
    status: await one("status"),
    "tunables --netns all": await one("tunables", "all"),
  };
}

type QueryKind = "tunables" | "status" | "tunables --netns all";

interface QueryFigure {
  ms: number;
  rows: number;
  /** Namespaces the rows name (the host's included). */
  namespaces: number;
}

/**
 * `bpfpilot rollback` of one tcp_rmem entry per namespace, each really written there first and
 * journalled with its cookie as the daemon does. Exec to reaped exit.
 */
function timeRollback(argv: string[], crowd: NetnsCrowd): { ms: number; restored: number } {
  const dir = tempDir("nsrb");
  const reg = new NetnsRegistry({ ownInum: ownNetnsInum() });
  reg.discover();
  useNetnsRegistry(reg);
  const wrote = crowd.flows(1, WRITTEN_RMEM.join(" "));
  if (wrote.failed) throw new Error(`writing tcp_rmem: ${JSON.stringify(wrote)}`);
  const j = Journal.open(dir, { netnsCookie: netnsCookieOf });
  for (const inode of crowd.inodes()) {
    const ns = `ns:${inode}`;
    j.recordOriginal(ns, RMEM, "tcp_buffer", DEFAULT_RMEM, WRITTEN_RMEM);
    j.recordWritten(ns, RMEM, WRITTEN_RMEM);
  }
  j.close();
  const t0 = performance.now();
  const r = spawnSync(argv[0], [...argv.slice(1), "rollback", "--state-dir", dir], {
    encoding: "utf8",
    timeout: 120_000,
  });
  const ms = performance.now() - t0;
  const m = /restored (\d+) value/.exec(r.stdout);
  if (r.status !== 0 || !m) {
    throw new Error(`bpfpilot rollback exited ${r.status}: ${r.stdout}${r.stderr}`.trim());
  }
  return { ms, restored: Number(m[1]) };
}

/** Where the daemon says its start went: ms from its runtime's time origin, phase by phase. */
interface StartBreakdown {
  totalMs: number;
  phases: string;
}

interface StepFigures {
  n: number;
  startMs: number;
  breakdown: StartBreakdown | null;
  /** The same start from a root shell (it re-executes itself to drop capabilities): last step. */
  shellStartMs: number | null;
  stopMs: number;
  fdsStart: number;
  rssStartKb: number;
  fds: number;
  rssKb: number;
  anonKb: number;
  /** Daemon CPU with the namespaces present and no traffic of ours. */
  idle: CpuUse;
  cpu: CpuUse;
  bpfNs: number;
  bpfRuns: number;
  hitsPerS: number;
  emittedPerS: number;
  mutedPerS: number;
  changesPerS: number;
  eventsPerS: number;
  /** Events that reached the tuners within the CPU window (metrics read at its two ends). */
  windowEvents: number;
  /** The window's events by tuner, the busiest first ("tcp_buffer 80, tcp_conn 28"). */
  eventsByTuner: string;
  dropped: number;
  flowsPerS: number;
  failedFlows: number;
  /** The daemon's own change-path accounting in the window (BPFPILOT_CHANGE_TIMING=1). */
  changeTiming: string[];
  /** One metrics answer once the window's figures are taken (its cost stays out of them). */
  metrics: { ms: number; series: number; values: number };
  /** `query tunables`, `query status` and `tunables --netns all`, after the metrics answer. */
  queries: Record<QueryKind, QueryFigure>;
}

/** The state directory every daemon of the section shares (its probe cache stays warm). */
function sharedStateDir(argv: string[]): string {
  const dir = tempDir("ns");
  // Registered before any daemon, so it runs after they are killed (cleanup is LIFO): a daemon
  // killed by Ctrl-C never rolled back its changes itself.
  onCleanup(`roll back the daemons' changes (${dir})`, () => {
    spawnSync(argv[0], [...argv.slice(1), "rollback", "--state-dir", dir], { timeout: 60_000 });
  });
  return dir;
}

/** The 1-minute load average: start and CPU figures move with it on a shared machine. */
function loadAverage(): string {
  return readFileSync("/proc/loadavg", "utf8").split(" ")[0];
}

/** How the daemon is started: as the packaged unit does, and as root from a shell. */
interface Launch {
  /** With the unit's capability bounding set (asUnitStarts): nothing left to drop. */
  unit: string[];
  /** Every capability: the daemon re-executes itself once to drop them. */
  shell: string[];
}

/** Exec to "bpfpilot started", with the daemon's own breakdown of where the time went. */
async function startDaemon(
  argv: string[],
  dir: string,
  extra: string[] = [],
): Promise<{ d: BenchDaemon; ms: number; breakdown: StartBreakdown | null }> {
  // A diagnosis run's daemon logs at debug (BPFPILOT_BENCH_DAEMON_LOG=<file>.debug: its figures
  // then include the debug lines' cost).
  const debug = Deno.env.get("BPFPILOT_BENCH_DAEMON_LOG")?.endsWith(".debug") ? ["--debug"] : [];
  const d = new BenchDaemon(
    argv,
    ["run", "--stderr", "-R", "--state-dir", dir, ...debug, ...extra],
    {
      BPFPILOT_START_TIMING: "1",
    },
  );
  const started = await d.waitFor(STARTED);
  const timing = await d.waitFor(START_TIMING, 5000).catch(() => null);
  const m = timing && START_TIMING.exec(timing.text);
  const breakdown = m ? { totalMs: Number(m[1]), phases: m[2] } : null;
  return { d, ms: started.at - d.spawnedAt, breakdown };
}

async function stopDaemon(d: BenchDaemon, what: string): Promise<number> {
  const stop = await d.stop(60_000);
  const logTo = Deno.env.get("BPFPILOT_BENCH_DAEMON_LOG");
  if (logTo) d.saveLog(`${logTo}.${what.replace(/[^a-z0-9]+/gi, "-")}`);
  if (stop.code !== 0) throw new Error(`daemon exited ${stop.code} on SIGTERM (${what})`);
  return stop.exitMs;
}

/**
 * Starts the daemon with the crowd present, measures an idle window, then a window under
 * traffic; leaves it running.
 */
async function measureStep(
  launch: Launch,
  dir: string,
  crowd: NetnsCrowd,
  cfg: NetnsBenchConfig,
  last: boolean,
): Promise<{ d: BenchDaemon; figures: Omit<StepFigures, "stopMs"> }> {
  let shellStartMs = null;
  const extra = cfg.metricsNetns ? ["--metrics-netns", cfg.metricsNetns] : [];
  if (last) {
    const shell = await startDaemon(launch.shell, dir, extra);
    await stopDaemon(shell.d, `${crowd.size} namespaces, started from a shell`);
    shellStartMs = shell.ms;
  }
  const { d, ms: startMs, breakdown } = await startDaemon(launch.unit, dir, extra);
  const fdsStart = openFds(d.pid), rssStartKb = memoryKb(d.pid).rss;
  const maps = allStatsMaps(d.pid);
  const socketPath = `${dir}/control.sock`;
  const idleWindow = cpuWindow(d.pid), idleAt = performance.now();
  await sleep(cfg.windowS * 1000);
  const idle = idleWindow();
  const idleTiming = d.matching(CHANGE_TIMING, idleAt).map((l) => CHANGE_TIMING.exec(l.text)![1]);

  const flows = traffic(crowd, cfg.warmupS + cfg.windowS + 2);
  await sleep(cfg.warmupS * 1000);
  const s0 = readAllHookStats(maps), c0 = readProgCosts(d.pid);
  // The event counts are read right at the CPU window's two ends (the daemon answers each query
  // before the window opens or after it closes: their CPU is outside it).
  const m0 = await eventsReceived(socketPath), tm0 = performance.now();
  const window = cpuWindow(d.pid), t0 = performance.now();
  await sleep(cfg.windowS * 1000);
  const cpu = window();
  const timing = d.matching(CHANGE_TIMING, t0).map((l) => CHANGE_TIMING.exec(l.text)![1]);
  const m1 = await eventsReceived(socketPath), eventsS = (performance.now() - tm0) / 1000;
  const costs = costDelta(c0, readProgCosts(d.pid));
  const hooks = statsDelta(s0, readAllHookStats(maps));
  const statsS = (performance.now() - t0) / 1000;
  const fds = openFds(d.pid), mem = memoryKb(d.pid);
  const f = await flows.result();
  const metrics = await metricsAnswer(socketPath);
  const queries = await queryAnswers(socketPath);
  return {
    d,
    figures: {
      n: crowd.size,
      startMs,
      breakdown,
      shellStartMs,
      fdsStart,
      rssStartKb,
      fds,
      rssKb: mem.rss,
      anonKb: mem.anon,
      idle,
      cpu,
      bpfNs: costs.reduce((s, c) => s + c.runNs, 0),
      bpfRuns: costs.reduce((s, c) => s + c.runs, 0),
      hitsPerS: hooks.hits / statsS,
      emittedPerS: hooks.emitted / statsS,
      mutedPerS: hooks.muted / statsS,
      changesPerS: (m1.changes - m0.changes) / eventsS,
      eventsPerS: (m1.events - m0.events) / eventsS,
      windowEvents: m1.events - m0.events,
      eventsByTuner: [...m1.byTuner].map(([t, n]) => [t, n - (m0.byTuner.get(t) ?? 0)] as const)
        .filter(([, n]) => n > 0).sort((a, b) => b[1] - a[1]).map(([t, n]) => `${t} ${n}`)
        .join(", ") || "none",
      dropped: m1.dropped - m0.dropped,
      flowsPerS: f.flows / (f.ms / 1000),
      failedFlows: f.failed,
      changeTiming: [...idleTiming.map((l) => `idle: ${l}`), ...timing],
      metrics,
      queries,
    },
  };
}

function printStep(s: StepFigures, cfg: NetnsBenchConfig, firstStartMs: number): void {
  const at = `${s.n.toLocaleString("en")} ns`;
  const perNs = s.flowsPerS / s.n;
  const w = s.cpu.seconds;
  const how = "as the packaged unit starts it (its capability bounding set, through setpriv: " +
    `nothing to drop, no re-exec); namespaces present before; probe cache warm; load average ` +
    loadAverage();
  row(
    `${at}: daemon start (exec -> started)`,
    fmtMs(s.startMs),
    s.n >= 1000
      ? judged(
        "≤ 1 s with 1,000 namespaces",
        s.startMs <= 1000,
        `${how}; ${fmtMs(s.startMs - firstStartMs)} over the first step's`,
      )
      : `[target at 1,000 namespaces] ${how}`,
  );
  if (s.breakdown) {
    row(
      `${at}: where the start went`,
      `${fmtMs(s.breakdown.totalMs)} in the daemon`,
      `its own account (BPFPILOT_START_TIMING=1): ${s.breakdown.phases}; the other ` +
        `${fmtMs(s.startMs - s.breakdown.totalMs)}: exec to the runtime's time origin and the pipe`,
    );
  }
  if (s.shellStartMs !== null) {
    row(
      `${at}: daemon start from a root shell`,
      fmtMs(s.shellStartMs),
      "every capability held: it re-executes itself once to drop them (a second runtime start)",
    );
  }
  row(
    `${at}: daemon CPU, idle`,
    fmtPct(s.idle.pctTicks),
    `utime+stime of /proc/<pid>/stat over ${s.idle.seconds.toFixed(1)} s right after start, ` +
      `no traffic of ours (schedstat ${fmtPct(s.idle.pctSched)})`,
  );
  row(
    `${at}: daemon CPU under traffic`,
    fmtPct(s.cpu.pctTicks),
    (s.n === 100
      ? judged("≤ 1 % of a core at 100 namespaces", s.cpu.pctTicks <= 1, "")
      : "[target at 100 namespaces] ") +
      `utime+stime over ${w.toFixed(1)} s (schedstat ${fmtPct(s.cpu.pctSched)}); ` +
      `${fmtRate(s.flowsPerS, "flows/s")} of ${FLOW_BYTES / 1024} KiB rotating over every ` +
      `namespace (${fmtRate(perNs, "/s")} each), ${s.failedFlows} failed, after ` +
      `${cfg.warmupS} s of warm-up`,
  );
  row(
    `${at}: kernel-side BPF time`,
    s.bpfRuns ? `${(s.bpfNs / s.bpfRuns).toFixed(0)} ns/hit` : "n/a",
    `run_time_ns / run_cnt over every program of the daemon (bpf_stats): ` +
      `${fmtPct(s.bpfNs / 1e9 / w * 100)} of a core in all, ${s.bpfRuns} runs`,
  );
  row(
    `${at}: hook hits/s`,
    fmtRate(s.hitsPerS, "hits/s"),
    `bpfp_stats hits (past each hook's cheap tests; run_cnt has every call) of every tuner ` +
      `object (the host's other TCP included); ` +
      `${fmtRate(s.emittedPerS, "/s")} emitted to the ring buffers, ` +
      `${fmtRate(s.mutedPerS, "/s")} muted (nothing they could change), the rest filtered or ` +
      `folded in the kernel`,
  );
  row(
    `${at}: events reaching userspace/s`,
    fmtRate(s.eventsPerS, "events/s"),
    `bpfpilot_events_total (query metrics) delta (${s.eventsByTuner}); ${s.dropped} dropped; ` +
      `${fmtRate(s.changesPerS, "changes/s")} made (bpfpilot_tunable_changes_total: each a ` +
      `journal write and a sysctl write in its namespace)`,
  );
  const events = s.windowEvents;
  const cpuS = s.cpu.pctSched / 100 * w, idleS = s.idle.pctSched / 100 * w;
  const usPerEvent = events >= 1 ? cpuS / events * 1e6 : null;
  row(
    `${at}: userspace CPU per event`,
    usPerEvent === null ? "n/a" : `${usPerEvent.toFixed(0)} µs`,
    judged(
      "≤ 200 µs",
      usPerEvent === null ? null : usPerEvent <= 200,
      usPerEvent === null
        ? "no events reached userspace in the window"
        : `all of the daemon's CPU in the window under traffic (schedstat, every thread: ` +
          `events, the changes they made, periodic work, runtime) / the ${events} events that ` +
          `reached the tuners in that same window (bpfpilot_events_total at its two ends); ` +
          `above the idle window's CPU: ` +
          `${(Math.max(0, cpuS - idleS) / events * 1e6).toFixed(0)} µs per event`,
    ),
  );
  for (const line of s.changeTiming) row(`${at}: change path (its own account)`, "", line);
  row(
    `${at}: metrics answer`,
    fmtMs(s.metrics.ms),
    `one query metrics (request to parsed reply), after the window's figures; ` +
      `${s.metrics.series} series (sample lines), ${s.metrics.values} of them ` +
      `bpfpilot_tunable_value; --metrics-netns ${cfg.metricsNetns ?? "default (changed)"}`,
  );
  for (const [what, q] of Object.entries(s.queries)) {
    row(
      `${at}: query ${what} answer`,
      fmtMs(q.ms),
      `one query ${what} (request to parsed reply), after the metrics answer; ` +
        `${q.rows} rows in ${q.namespaces} namespace(s)`,
    );
  }
  row(
    `${at}: open fds`,
    `${s.fds}`,
    `/proc/<pid>/fd after the window; ${s.fdsStart} right after start`,
  );
  row(
    `${at}: RSS`,
    fmtMb(s.rssKb),
    `VmRSS after the window (RssAnon ${fmtMb(s.anonKb)}); ${fmtMb(s.rssStartKb)} after start`,
  );
  row(
    `${at}: SIGTERM -> exit (-R)`,
    fmtMs(s.stopMs),
    "the daemon puts back its own changes in these namespaces on the way out",
  );
}

export async function netnsScaleSection(root: string, cfg: NetnsBenchConfig): Promise<void> {
  section(
    `namespaces at scale: ${cfg.steps.join(", ")} namespaces under loopback traffic, ` +
      `${cfg.windowS} s windows (load average ${loadAverage()} at the start)`,
  );
  const { argv } = daemonArgv(root);
  const launch = { unit: asUnitStarts(root, argv), shell: argv };
  enableBpfStats();
  const dir = sharedStateDir(argv);
  // A first start fills the probe cache: every measured start is a warm one.
  await stopDaemon((await startDaemon(launch.unit, dir)).d, "probe cache warm-up");
  const rollbacks: { n: number; ms: number }[] = [];
  let firstStartMs: number | null = null;
  let prev: { remove: () => Promise<void> } | null = null;
  for (const [i, n] of cfg.steps.entries()) {
    await prev?.remove();
    const c = prev = crowdOf(n);
    const rb = timeRollback(argv, c.crowd);
    rollbacks.push({ n, ms: rb.ms });
    const last = i === cfg.steps.length - 1;
    const { d, figures } = await measureStep(launch, dir, c.crowd, cfg, last);
    let forgot: (() => void) | null = null;
    if (last) {
      const t0 = performance.now();
      await c.remove();
      const delMs = performance.now() - t0;
      prev = null;
      await sleep(cfg.forgetS * 1000);
      const fds = openFds(d.pid), mem = memoryKb(d.pid);
      const how = `${cfg.forgetS} s after deleting all ${n} namespaces (one ip -batch, ` +
        `${fmtMs(delMs)}) while it runs`;
      forgot = () => {
        row(`${n.toLocaleString("en")} ns deleted: open fds`, `${fds}`, how);
        row(
          `${n.toLocaleString("en")} ns deleted: RSS`,
          fmtMb(mem.rss),
          `VmRSS (RssAnon ${fmtMb(mem.anon)}), ${how}`,
        );
      };
    }
    firstStartMs ??= figures.startMs;
    printStep({ ...figures, stopMs: await stopDaemon(d, `${n} namespaces`) }, cfg, firstStartMs);
    row(
      `${n.toLocaleString("en")} ns: rollback of ${n} entr${n === 1 ? "y" : "ies"}`,
      fmtMs(rb.ms),
      (n >= 1000
        ? judged("≤ 1 s for 1,000 entries", rb.ms <= 1000, "")
        : "[target at 1,000 entries] ") +
        `exec of bpfpilot rollback to exit, restored ${rb.restored}: one tcp_rmem write in each ` +
        `namespace, journalled with its cookie; namespaces created in ${fmtMs(c.ms)}`,
    );
    forgot?.();
  }
  // Linear: the per-entry cost above the smallest step's stays about the same. A step whose
  // difference from the smallest is within the noise of a process start (Deno's alone varies by
  // ~100 ms) says nothing about its per-entry cost: the ratio is then not judged.
  if (rollbacks.length >= 3) {
    const base = rollbacks[0], noiseMs = 100;
    const per = rollbacks.slice(1).map((r) => (r.ms - base.ms) / (r.n - base.n));
    const ratio = per[per.length - 1] / Math.max(per[0], 1e-3);
    const within = rollbacks[1].ms - base.ms < noiseMs;
    const where = `over the ${base.n}-entry run, at ${
      rollbacks.slice(1).map((r) => r.n).join(" / ")
    } entries`;
    row(
      "rollback: cost per entry",
      per.map((p) => `${(p * 1000).toFixed(0)} µs`).join(" / "),
      judged(
        "linear",
        within ? null : ratio <= 2,
        within
          ? `${where}: not judged, the ${rollbacks[1].n}-entry run is within ${noiseMs} ms ` +
            `(start noise) of the ${base.n}-entry one`
          : `${where} (ratio ${ratio.toFixed(1)}; above 2 is superlinear)`,
      ),
    );
  }
}
