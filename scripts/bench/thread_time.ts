/**
 * Where a stretch of the main thread's wall time went, from what the kernel counts for the thread
 * (/proc/thread-self/schedstat: time run and time waited on a run queue; status: voluntary context
 * switches). The rest of the wall time is either asleep in the kernel (the thread switched out by
 * itself: I/O, a lock) or, when it never switched out, time it was current but not running in its
 * own account: the hypervisor running another guest's or the host's work (steal), or interrupts
 * on its CPU. Marks are read outside the timed stretch (each read costs ~10-20 µs of run time).
 */

export interface ThreadMark {
  /** ns run, ns waited on a run queue (schedstat's first two fields). */
  runNs: number;
  waitNs: number;
  /** voluntary_ctxt_switches of the thread. */
  voluntary: number;
}

/** One stretch, ms by cause (their sum is the wall time, the residual clamped at 0). */
export interface TimeSplit {
  wall: number;
  running: number;
  /** Runnable, another task on the CPU (V8's own workers, dd, kworkers, other processes). */
  waiting: number;
  /** Switched out by itself (a voluntary switch): blocked in the kernel. */
  asleep: number;
  /** Neither run, waited nor switched out: steal or interrupts. */
  other: number;
}

export function threadMark(): ThreadMark {
  const [run, wait] = Deno.readTextFileSync("/proc/thread-self/schedstat").split(" ").map(Number);
  const m = Deno.readTextFileSync("/proc/thread-self/status").match(
    /^voluntary_ctxt_switches:\s+(\d+)/m,
  );
  return { runNs: run, waitNs: wait, voluntary: m ? Number(m[1]) : 0 };
}

/** Splits `wallMs` between two marks taken around it (see the header). */
export function splitTime(wallMs: number, before: ThreadMark, after: ThreadMark): TimeSplit {
  const running = Math.min(wallMs, (after.runNs - before.runNs) / 1e6);
  const waiting = Math.min(wallMs - running, (after.waitNs - before.waitNs) / 1e6);
  const rest = Math.max(0, wallMs - running - waiting);
  const slept = after.voluntary > before.voluntary;
  return { wall: wallMs, running, waiting, asleep: slept ? rest : 0, other: slept ? 0 : rest };
}

/** The splits summed. */
export function sumSplits(xs: readonly TimeSplit[]): TimeSplit {
  const sum: TimeSplit = { wall: 0, running: 0, waiting: 0, asleep: 0, other: 0 };
  for (const x of xs) {
    for (const k of Object.keys(sum) as (keyof TimeSplit)[]) sum[k] += x[k];
  }
  return sum;
}
