/**
 * `deno task bench`: prints figures (never asserts). Sections grow with the product; each row says
 * what it measured and how, with the target next to it. Run as root on an otherwise idle machine.
 *
 * Sections (BPFPILOT_BENCH_SECTIONS=foundation,lifecycle,hooks,throughput picks some):
 *   foundation  libbpf binding, hook probe, bundle start
 *   lifecycle   daemon exec to hooks attached (cold and warm probe cache), idle RSS/CPU, SIGTERM
 *   hooks       daemon CPU, events to userspace and kernel cost per hit while a tcp_buffer hook
 *               fires ~10k/s; then cost per hit of the other tuners' hot hooks (UDP drops, TCP
 *               connections, neighbour churn)
 *   throughput  iperf3 over a constrained veth link with and without the daemon, settle time
 *   lossy       iperf3 over that link with 2 % loss: bbr (tcp_conn's choice there) vs cubic
 *   journal     cost of recording one change (1 and 1,000 entries), durable writes per change
 *   shutdown    SIGTERM to exit with 10,000 journal records
 *   changepath  one change end to end (applier, journal, kept /proc/sys file, log lines) 1,000
 *               times in a namespace of its own: main-thread CPU cold and warm, and by stage
 *               (scripts/bench/change_path.ts)
 *   netns       1, 100, 1,000 namespaces under loopback traffic: start, CPU, BPF time, events,
 *               µs per event, fds, RSS, metrics and query tunables/status answers, rollback of
 *               one entry per namespace (the daemon watches every namespace, with -R:
 *               scripts/bench/netns_scale.ts)
 * Durations (seconds): BPFPILOT_BENCH_IDLE_S (60), BPFPILOT_BENCH_LOAD_S (10),
 *   BPFPILOT_BENCH_IPERF_S (8), BPFPILOT_BENCH_TUNE_S (45), BPFPILOT_BENCH_SETTLE_S (10),
 *   BPFPILOT_BENCH_NETNS_S (15), BPFPILOT_BENCH_NETNS_WARMUP_S (5), BPFPILOT_BENCH_NETNS_FORGET_S
 *   (15); BPFPILOT_BENCH_NETNS_STEPS=1,100,1000 (namespace counts);
 *   BPFPILOT_BENCH_NETNS_METRICS=all runs the netns daemon with --metrics-netns all (default:
 *   the daemon's own default) to compare the metrics answer.
 * BPFPILOT_BENCH_DAEMON_LOG=<file>: the tuning daemon of the throughput section runs with --debug
 * and its log (seconds from the transfer's start, line) is written there; the send side's to
 * <file>.wmem. The netns section's daemons write theirs (info, seconds from each one's exec) to
 * <file>.<what it was> as each stops; with a <file> ending in .debug they run with --debug (a
 * diagnosis run: their CPU figures then include the debug lines).
 * Everything it creates (namespaces, a cgroup, processes, temp dirs) is removed and the probe cache
 * restored, also on error and Ctrl-C. Nothing attaches to the root cgroup: the daemons' cgroup
 * programs (-c) and the empty sockops floor go on a child cgroup of the benchmark's own
 * (bpfp-bench-<pid> under the cgroup2 mount), in which every workload runs from its start
 * (bench/cgroup.ts). The host's own network namespace is never tuned: every daemon runs
 * with --netns on a namespace of the benchmark's own, and with --advise (never writes) or
 * --rollback (undoes its changes on exit, host-wide tcp_mem included). The exception is the
 * netns section, whose daemon watches every namespace (the point of it): it runs with --rollback,
 * and one killed by Ctrl-C is rolled back from its journal by the cleanup. A section that leaves
 * a tuner's host sysctl changed fails, naming it, and the value is put back (bench/host_guard.ts).
 */
import { spawnSync } from "node:child_process";
import { dirname, join, resolve } from "node:path";
import { cleanupOnSignals, interrupted, runCleanups } from "./bench/cleanup.ts";
import { foundationSection } from "./bench/foundation.ts";
import { watchHostSysctls } from "./bench/host_guard.ts";
import { hookLoadSection } from "./bench/hook_load.ts";
import { journalSection } from "./bench/journal.ts";
import { changePathSection } from "./bench/change_path.ts";
import { lifecycleSection } from "./bench/lifecycle.ts";
import { envSeconds, row } from "./bench/report.ts";
import { shutdownSection } from "./bench/shutdown.ts";
import { throughputSection } from "./bench/throughput.ts";
import { lossyPathSection } from "./bench/lossy_path.ts";
import { netnsScaleSection } from "./bench/netns_scale.ts";

const ROOT = resolve(dirname(new URL(import.meta.url).pathname), "..");
const DENO = join(ROOT, "node_modules/.bin/deno");
const ALL = [
  "foundation",
  "lifecycle",
  "hooks",
  "throughput",
  "lossy",
  "journal",
  "shutdown",
  "netns",
  "changepath",
];

/** A comma-separated list of positive integers from the environment, or the default. */
function envCounts(name: string, fallback: number[]): number[] {
  const raw = Deno.env.get(name);
  if (raw === undefined || raw === "") return fallback;
  const counts = raw.split(",").map((s) => Number(s.trim()));
  if (!counts.every((n) => Number.isInteger(n) && n > 0)) {
    throw new Error(`${name} must be positive whole numbers separated by commas, not '${raw}'`);
  }
  return counts;
}

function config() {
  const picked = (Deno.env.get("BPFPILOT_BENCH_SECTIONS") ?? "").split(",").map((s) => s.trim())
    .filter(Boolean);
  const unknown = picked.filter((s) => !ALL.includes(s));
  if (unknown.length) {
    throw new Error(
      `BPFPILOT_BENCH_SECTIONS: unknown section(s) ${unknown.join(", ")}; known: ${ALL.join(", ")}`,
    );
  }
  return {
    sections: picked.length ? picked : ALL,
    idleS: envSeconds("BPFPILOT_BENCH_IDLE_S", 60),
    loadS: envSeconds("BPFPILOT_BENCH_LOAD_S", 10),
    iperfS: envSeconds("BPFPILOT_BENCH_IPERF_S", 8),
    tuneS: envSeconds("BPFPILOT_BENCH_TUNE_S", 45),
    settleS: envSeconds("BPFPILOT_BENCH_SETTLE_S", 10),
    netns: {
      steps: envCounts("BPFPILOT_BENCH_NETNS_STEPS", [1, 100, 1000]),
      windowS: envSeconds("BPFPILOT_BENCH_NETNS_S", 15),
      warmupS: envSeconds("BPFPILOT_BENCH_NETNS_WARMUP_S", 5),
      forgetS: envSeconds("BPFPILOT_BENCH_NETNS_FORGET_S", 15),
      metricsNetns: Deno.env.get("BPFPILOT_BENCH_NETNS_METRICS") || null,
    },
  };
}

/** The tools a section needs, or the first one missing. */
function missingTool(tools: string[]): string | null {
  for (const t of tools) {
    if (spawnSync("sh", ["-c", `command -v ${t}`]).status !== 0) return t;
  }
  return null;
}

function configOrExit(): ReturnType<typeof config> {
  try {
    return config();
  } catch (e) {
    console.error(`bench: ${(e as Error).message}`);
    Deno.exit(2);
  }
}

const cfg = configOrExit();
if (Deno.uid() !== 0) {
  console.error("bench: needs root (BPF programs, network namespaces); run it with sudo");
  Deno.exit(1);
}

console.log("bpfpilot benchmark", new Date().toISOString(), Deno.osRelease());
cleanupOnSignals();
// The daemon sections run the bundle, as installed: build it from this checkout first.
const build = spawnSync(DENO, ["run", "-A", join(ROOT, "scripts/build.ts"), "--quiet"], {
  encoding: "utf8",
});
if (build.status !== 0) {
  row("build dist/bpfpilot.js", "failed", `${build.stderr.trim()} (daemon rows use the old one)`);
}
const sections: [string, string[], () => Promise<void> | void][] = [
  ["foundation", [], () => foundationSection(ROOT, DENO)],
  ["lifecycle", ["ip", "bpftool"], () => lifecycleSection(ROOT, cfg.idleS)],
  ["hooks", ["ip", "bpftool"], () => hookLoadSection(ROOT, cfg.loadS)],
  ["throughput", ["ip", "tc", "iperf3", "ss"], () => throughputSection(ROOT, cfg)],
  ["lossy", ["ip", "tc", "iperf3", "ss"], () => lossyPathSection(ROOT, cfg.iperfS)],
  ["journal", [], () => journalSection(ROOT, DENO)],
  ["shutdown", ["ip"], () => shutdownSection(ROOT)],
  ["netns", ["ip", "bpftool", "python3", "setpriv"], () => netnsScaleSection(ROOT, cfg.netns)],
  ["changepath", ["ip"], () => changePathSection(ROOT, DENO)],
];
let failed = 0;
for (const [name, tools, run] of sections) {
  if (!cfg.sections.includes(name)) continue;
  const missing = missingTool(tools);
  if (missing) {
    row(`${name}: skipped`, "n/a", `${missing} is not installed (bash scripts/setup installs it)`);
    continue;
  }
  const t0 = performance.now();
  const moved = watchHostSysctls();
  try {
    await run();
  } catch (e) {
    if (interrupted()) break;
    failed++;
    row(`${name}: failed`, "n/a", (e as Error).message.split("\n").join("\n    "));
  } finally {
    await runCleanups(); // this section's namespaces, processes, probe cache, ...
  }
  const leaked = moved();
  if (leaked) {
    failed++;
    row(`${name}: left host sysctls changed`, "n/a", leaked);
  }
  console.log(`   (${name}: ${((performance.now() - t0) / 1000).toFixed(0)} s)`);
}
await runCleanups();
Deno.exit(interrupted()?.code ?? (failed ? 1 : 0));
