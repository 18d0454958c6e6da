/**
 * The daemon's fixed costs: exec to every hook attached (the "bpfpilot started" line), with and
 * without the probe cache; RSS and CPU while idle; SIGTERM to reaped exit.
 */
import { BenchDaemon, daemonArgv } from "./daemon_process.ts";
import { removeProbeCache } from "./host_guard.ts";
import { BenchNetns } from "./netns.ts";
import { cpuWindow, memoryKb, sharingKb } from "./proc.ts";
import { privateRuntimeArgv } from "./private_runtime.ts";
import { fmtMb, fmtMs, fmtPct, judged, median, row, section, sleep, withTarget } from "./report.ts";
import { tempDir } from "./tempdir.ts";

const STARTED = /^(bpfpilot: )?bpfpilot started \(/;
const WARM_RUNS = 3;

async function start(argv: string[], args: string[]): Promise<{ d: BenchDaemon; ms: number }> {
  const d = new BenchDaemon(argv, args);
  const line = await d.waitFor(STARTED);
  return { d, ms: line.at - d.spawnedAt };
}

async function stopChecked(d: BenchDaemon): Promise<number> {
  const r = await d.stop();
  if (r.code !== 0) {
    throw new Error(`daemon exited ${r.code}${r.signal ? ` (${r.signal})` : ""} on SIGTERM, not 0`);
  }
  return r.exitMs;
}

/** CPU over `idleS` seconds of a daemon left alone, then its memory. */
async function idleFor(pid: number, idleS: number) {
  const cpu = cpuWindow(pid);
  await sleep(idleS * 1000);
  return { use: cpu(), mem: memoryKb(pid), sharing: sharingKb(pid) };
}

export async function lifecycleSection(root: string, idleS: number): Promise<void> {
  section(`daemon: start, idle ${idleS} s, stop`);
  const { argv, what } = daemonArgv(root);
  const ns = BenchNetns.create("idle");
  // --advise: same hooks, objects and event path, but no sysctl write can reach the host, even
  // if other TCP traffic on it brings tcp_mem near pressure during the idle minute.
  const args = ["run", "--stderr", "--advise", "--netns", ns.name, "--state-dir", tempDir("idle")];
  const how = `exec of 'deno run ${what} run --stderr --advise --netns <own ns> -c <own ` +
    "cgroup>' to the line on its pipe";

  removeProbeCache();
  const cold = await start(argv, args);
  const coldExit = await stopChecked(cold.d);
  row("exec -> 'bpfpilot started', no probe cache", fmtMs(cold.ms), withTarget("≤ 150 ms", how));

  const warm: number[] = [], quickExits = [coldExit];
  let last: BenchDaemon | null = null;
  for (let i = 0; i < WARM_RUNS; i++) {
    const r = await start(argv, args);
    warm.push(r.ms);
    if (i < WARM_RUNS - 1) quickExits.push(await stopChecked(r.d));
    else last = r.d;
  }
  row(
    `exec -> 'bpfpilot started', probe cache warm`,
    fmtMs(median(warm)),
    withTarget(
      "≤ 150 ms",
      `median of ${WARM_RUNS} (${warm.map((x) => x.toFixed(0)).join(", ")} ms); ` +
        "probe cache (in its --state-dir) from the run before",
    ),
  );

  const d = last!;
  const { use, mem, sharing } = await idleFor(d.pid, idleS);
  row(
    `idle RSS (VmRSS) after ${idleS} s, runtime shared with this bench`,
    fmtMb(mem.rss),
    "[not judged: see the own-copy row] /proc/<pid>/status, no traffic in its namespace; " +
      `RssAnon ${fmtMb(mem.anon)}, RssFile ${fmtMb(mem.file)} (mostly the deno executable's ` +
      `pages); ${fmtMb(sharing.shared)} of it mapped by other processes too (this bench's own ` +
      `Deno is the same file: start-up pages it shares stay), PSS ${fmtMb(sharing.pss)}`,
  );
  row(`idle peak RSS (VmHWM)`, fmtMb(mem.hwm), withTarget("≤ 48 MB", "start included"));
  row(
    `idle CPU over ${idleS} s`,
    fmtPct(use.pctTicks),
    `utime+stime delta ${use.ticks} ticks of /proc/<pid>/stat; ` +
      `schedstat: ${fmtPct(use.pctSched)} of a core`,
  );
  const idleExit = await stopChecked(d);
  row(
    "SIGTERM -> exit, idle",
    fmtMs(idleExit),
    withTarget(
      "≤ 300 ms",
      `kill() to waitpid reaping it, exit status 0; right after start: ` +
        `${quickExits.map((x) => x.toFixed(0)).join(", ")} ms`,
    ),
  );
  await ownRuntimeIdle(argv, args, idleS);
  await ns.delete();
}

/**
 * Idle RSS as the product runs: from a runtime file no other process maps (the Debian package's
 * /usr/lib/bpfpilot/deno, a compiled binary), so the start-up pages it gives back
 * (src/daemon/startup_pages.ts) leave memory rather than staying for this bench's own Deno.
 */
async function ownRuntimeIdle(argv: string[], args: string[], idleS: number): Promise<void> {
  const d = new BenchDaemon(privateRuntimeArgv(argv), args);
  try {
    await d.waitFor(STARTED);
    const { use, mem, sharing } = await idleFor(d.pid, idleS);
    row(
      `idle RSS (VmRSS) after ${idleS} s, own copy of the runtime`,
      fmtMb(mem.rss),
      judged(
        "≤ 48 MB",
        mem.rss <= 48 * 1024,
        `as installed (a runtime file only the daemon maps); RssAnon ${fmtMb(mem.anon)}, ` +
          `RssFile ${fmtMb(mem.file)}, ${fmtMb(sharing.shared)} shared, PSS ` +
          `${fmtMb(sharing.pss)}; idle CPU ${fmtPct(use.pctTicks)} (pages coming back included)`,
      ),
    );
    row(
      `idle peak RSS (VmHWM), own copy`,
      fmtMb(mem.hwm),
      judged("≤ 48 MB", mem.hwm <= 48 * 1024, "start included"),
    );
  } finally {
    await stopChecked(d);
  }
}
