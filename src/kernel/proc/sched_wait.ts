/**
 * How long runnable tasks wait for a CPU, as a share of time: the signal that says a bigger NAPI
 * budget is taking the CPU from tasks. Two sources, the first that exists wins:
 * - /proc/pressure/cpu (PSI, CONFIG_PSI): "some ... total=<µs>", time in which at least one task
 *   waited for a CPU; the share of wall time since the last sample.
 * - /proc/schedstat (CONFIG_SCHEDSTATS, bpftune's source): per-CPU run and wait nanoseconds
 *   (fields 7 and 8 after "cpuN"); bpftune's Σwait·100/Σrun since the last sample.
 */

/**
 * Scheduler wait as a percentage of a CPU-second, from two readings of /proc/pressure/cpu "some
 * total" (microseconds some task waited for a CPU) `elapsedMs` apart; null without a reading.
 */
export function pressureWaitPercent(
  before: number | null,
  after: number | null,
  elapsedMs: number,
): number | null {
  if (before === null || after === null || elapsedMs <= 0 || after < before) return null;
  return Math.min(100, ((after - before) / 1000 / elapsedMs) * 100);
}

/** bpftune's Σwait·100/Σrun over every CPU, from two /proc/schedstat readings; null if none. */
export function schedstatWaitPercent(
  before: { run: number; wait: number } | null,
  after: { run: number; wait: number } | null,
): number | null {
  if (!before || !after) return null;
  const run = after.run - before.run, wait = after.wait - before.wait;
  return run > 0 && wait >= 0 ? (wait * 100) / run : null;
}

export type SchedWaitSource = "cpu pressure (/proc/pressure/cpu)" | "/proc/schedstat";

/** PSI's cumulative "some" microseconds; null when the text has none. */
export function parseCpuPressureTotal(text: string): number | null {
  const m = /^some\b.*\btotal=(\d+)/m.exec(text);
  return m ? Number(m[1]) : null;
}

/** Σrun and Σwait nanoseconds over every "cpuN" line; null without one. */
export function parseSchedstatTotals(text: string): { run: number; wait: number } | null {
  let run = 0, wait = 0, cpus = 0;
  for (const line of text.split("\n")) {
    const f = line.trim().split(/\s+/);
    if (!/^cpu\d+$/.test(f[0]) || f.length < 9) continue;
    const r = Number(f[7]), w = Number(f[8]);
    if (!Number.isFinite(r) || !Number.isFinite(w)) continue;
    run += r;
    wait += w;
    cpus++;
  }
  return cpus ? { run, wait } : null;
}

function readOrNull(path: string): string | null {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return null;
  }
}

/** Samples the scheduler-wait share since the previous sample. */
export class SchedulerWait {
  readonly source: SchedWaitSource | null;
  #last: { at: number; psi: number | null; stat: { run: number; wait: number } | null } | null =
    null;

  constructor(private readonly read: (path: string) => string | null = readOrNull) {
    this.source = this.#psi() !== null
      ? "cpu pressure (/proc/pressure/cpu)"
      : this.#stat() !== null
      ? "/proc/schedstat"
      : null;
  }

  #psi(): number | null {
    const t = this.read("/proc/pressure/cpu");
    return t === null ? null : parseCpuPressureTotal(t);
  }

  #stat(): { run: number; wait: number } | null {
    const t = this.read("/proc/schedstat");
    return t === null ? null : parseSchedstatTotals(t);
  }

  /** Percent of time tasks waited for a CPU since the last call (`nowMs` monotonic); null first. */
  sample(nowMs: number): number | null {
    if (this.source === null) return null;
    const psi = this.source === "/proc/schedstat" ? null : this.#psi();
    const stat = this.source === "/proc/schedstat" ? this.#stat() : null;
    const last = this.#last;
    this.#last = { at: nowMs, psi, stat };
    if (!last) return null;
    return this.source === "/proc/schedstat"
      ? schedstatWaitPercent(last.stat, stat)
      : pressureWaitPercent(last.psi, psi, nowMs - last.at);
  }
}
