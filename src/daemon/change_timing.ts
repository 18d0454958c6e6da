/**
 * Where the change path's CPU goes, stage by stage (BPFPILOT_CHANGE_TIMING=1; off by default and
 * then nothing but a null check at each stage, see time()): the main thread's own CPU time
 * (CLOCK_THREAD_CPUTIME_ID) around each stage, summed, and beside it the whole process's
 * (CLOCK_PROCESS_CPUTIME_ID: V8's compiler and collector threads, the blocking pool's epoll_wait),
 * reported as one line per interval. Stages nest (a wake-up holds its events, an event its
 * proposals), so each is inclusive of the ones inside it.
 */
import { openLibc } from "../kernel/libc.ts";

const CLOCK_PROCESS_CPUTIME_ID = 2, CLOCK_THREAD_CPUTIME_ID = 3;

/** CPU time of a clock in ns; null where it cannot be read. */
export type CpuClock = (which: "thread" | "process") => number;

function libcCpuClock(): CpuClock | null {
  const libc = openLibc();
  if (!libc) return null;
  const ts = new BigInt64Array(2);
  const buf = new Uint8Array(ts.buffer);
  return (which) => {
    libc.clock_gettime(
      which === "thread" ? CLOCK_THREAD_CPUTIME_ID : CLOCK_PROCESS_CPUTIME_ID,
      buf,
    );
    return Number(ts[0]) * 1e9 + Number(ts[1]);
  };
}

interface StageTotal {
  ns: number;
  count: number;
}

export class ChangeTiming {
  readonly #clock: CpuClock;
  #stages = new Map<string, StageTotal>();
  #thread0: number;
  #process0: number;

  constructor(clock: CpuClock) {
    this.#clock = clock;
    this.#thread0 = clock("thread");
    this.#process0 = clock("process");
  }

  /**
   * `fn()`, its main-thread CPU time added to `stage` (also when it throws). Callers write
   * `changeTiming ? changeTiming.time("stage", () => f(x)) : f(x)`: the default then pays the
   * null check, no closure.
   */
  time<T>(stage: string, fn: () => T): T {
    const t0 = this.#clock("thread");
    try {
      return fn();
    } finally {
      const ns = this.#clock("thread") - t0;
      const s = this.#stages.get(stage);
      if (s) {
        s.ns += ns;
        s.count++;
      } else this.#stages.set(stage, { ns, count: 1 });
    }
  }

  /**
   * "change timing over 10.0 s: main thread 123.4 ms, process 150.2 ms (other threads 26.8 ms);
   * wake 80.1 ms/12 (6675 µs each), ..." since the previous report (or the start), then resets.
   */
  report(seconds: number): string {
    const thread = this.#clock("thread"), process = this.#clock("process");
    const dThread = thread - this.#thread0, dProcess = process - this.#process0;
    this.#thread0 = thread;
    this.#process0 = process;
    const ms = (ns: number) => (ns / 1e6).toFixed(1);
    const stages = [...this.#stages].map(([name, s]) =>
      `${name} ${ms(s.ns)} ms/${s.count} (${(s.ns / s.count / 1e3).toFixed(0)} µs each)`
    );
    this.#stages = new Map();
    return `change timing over ${seconds.toFixed(1)} s: main thread ${ms(dThread)} ms, ` +
      `process ${ms(dProcess)} ms (other threads ${ms(dProcess - dThread)} ms); ` +
      (stages.length ? stages.join(", ") : "no stage ran");
  }
}

function fromEnv(): ChangeTiming | null {
  try {
    if (Deno.env.get("BPFPILOT_CHANGE_TIMING") !== "1") return null;
  } catch {
    return null; // no env permission
  }
  const clock = libcCpuClock();
  return clock ? new ChangeTiming(clock) : null;
}

/** The daemon's accounting, or null (the default): every stage checks it first. */
export const changeTiming: ChangeTiming | null = fromEnv();
