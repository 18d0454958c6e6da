/** What /proc says about one process: memory high-water marks and CPU time consumed. */
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";

let ticksPerSecond: number | null = null;

/** USER_HZ (utime/stime unit); 100 on every Linux we run on, asked once to be sure. */
export function clockTicks(): number {
  if (ticksPerSecond === null) {
    try {
      ticksPerSecond = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim());
    } catch {
      ticksPerSecond = 100;
    }
    if (!Number.isFinite(ticksPerSecond) || ticksPerSecond <= 0) ticksPerSecond = 100;
  }
  return ticksPerSecond;
}

/** The "<name>: <n> kB" fields of a /proc file, by name, as a function that throws on a missing one. */
function kbFields(path: string): (name: string) => number {
  const text = readFileSync(path, "utf8");
  return (name) => {
    const m = text.match(new RegExp(`^${name}:\\s+(\\d+) kB`, "m"));
    if (!m) throw new Error(`${path} has no ${name}`);
    return Number(m[1]);
  };
}

/** VmRSS, VmHWM and the RSS split (anonymous vs file-backed) from /proc/<pid>/status, in kB. */
export function memoryKb(pid: number): { rss: number; hwm: number; anon: number; file: number } {
  const field = kbFields(`/proc/${pid}/status`);
  return {
    rss: field("VmRSS"),
    hwm: field("VmHWM"),
    anon: field("RssAnon"),
    file: field("RssFile"),
  };
}

/**
 * From /proc/<pid>/smaps_rollup, in kB: resident pages other processes map too (Shared_Clean +
 * Shared_Dirty: another Deno's copy of the runtime, libc) and the proportional set size (each
 * shared page split among the processes that map it).
 */
export function sharingKb(pid: number): { shared: number; pss: number } {
  const field = kbFields(`/proc/${pid}/smaps_rollup`);
  return { shared: field("Shared_Clean") + field("Shared_Dirty"), pss: field("Pss") };
}

/** Open file descriptors of the process (entries of /proc/<pid>/fd). */
export function openFds(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** utime + stime of the whole process (all threads, live and exited), in clock ticks. */
export function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // The command name may contain spaces and parentheses: fields start after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return Number(fields[11]) + Number(fields[12]); // fields 14 and 15 of proc(5)
}

/** Time on CPU of the live threads in ns (schedstat): finer than ticks, for short windows. */
export function runtimeNs(pid: number): number {
  let sum = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      sum += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "utf8").split(" ")[0]);
    } catch {
      // thread exited between readdir and read
    }
  }
  return sum;
}

export interface CpuUse {
  seconds: number;
  /** utime+stime delta as a percentage of one core over the window. */
  pctTicks: number;
  /** schedstat delta as a percentage of one core (ns resolution). */
  pctSched: number;
  ticks: number;
}

/** Starts a CPU-time window on pid; the returned function ends it. */
export function cpuWindow(pid: number): () => CpuUse {
  const t0 = performance.now(), ticks0 = cpuTicks(pid), ns0 = runtimeNs(pid);
  return () => {
    const seconds = (performance.now() - t0) / 1000;
    const ticks = cpuTicks(pid) - ticks0;
    const ns = runtimeNs(pid) - ns0;
    return {
      seconds,
      ticks,
      pctTicks: (ticks / clockTicks()) / seconds * 100,
      pctSched: ns / 1e9 / seconds * 100,
    };
  };
}
