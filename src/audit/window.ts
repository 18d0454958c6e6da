/**
 * The observation window: the tuners run in advise mode (through the injected runner) while the
 * clock runs, so counter deltas cover the whole window even when the tuners cannot run.
 */
import type { AdviceResult, AdviseRunner } from "./advise.ts";

export type ObservationState =
  /** --duration 0 or --from: no window. */
  | "off"
  /** The tuners observed the whole window. */
  | "completed"
  /** Interrupted (Ctrl-C): findings cover the part that ran. */
  | "cut-short"
  /** The runner reported it cannot observe (reason says why); counters still cover the window. */
  | "unavailable"
  /** Loading BPF programs needs root; counters still cover the window. */
  | "needs-root"
  /** The runner failed; counters still cover the window. */
  | "failed";

export interface WindowResult {
  state: ObservationState;
  reason: string;
  observedSeconds: number;
  advice: AdviceResult | null;
}

export interface Clock {
  /** Milliseconds, monotonic enough for measuring the window. */
  now(): number;
  /** Resolves after `ms`, or early when `signal` aborts. */
  sleep(ms: number, signal: AbortSignal): Promise<void>;
}

/** How often the progress bar advances. */
const TICK_MS = 250;
/** How long a runner may overrun the window before it is asked to stop. */
export const RUNNER_GRACE_MS = 10_000;

export const realClock: Clock = {
  now: () => performance.now(),
  sleep: (ms, signal) =>
    new Promise((resolve) => {
      if (signal.aborted) return resolve();
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        signal.removeEventListener("abort", done);
        resolve();
      }
      signal.addEventListener("abort", done, { once: true });
    }),
};

export interface WindowOptions {
  durationMs: number;
  runner: AdviseRunner;
  /** Without root the runner is not started (it would fail to load BPF programs). */
  isRoot: boolean;
  signal: AbortSignal;
  onProgress(fraction: number): void;
  clock: Clock;
}

type Settled = { ok: true; value: AdviceResult } | { ok: false; error: unknown };

export async function observeWindow(opts: WindowOptions): Promise<WindowResult> {
  const { clock, durationMs } = opts;
  const start = clock.now();
  let runnerFraction = 0;
  const progress = () =>
    opts.onProgress(Math.min(1, Math.max((clock.now() - start) / durationMs, runnerFraction)));

  // The runner gets its own signal so an overrunning runner can be stopped without Ctrl-C.
  const stopRunner = new AbortController();
  const forward = () => stopRunner.abort();
  opts.signal.addEventListener("abort", forward, { once: true });
  let settled: Settled | null = null;
  const running = opts.isRoot
    ? opts.runner({
      durationMs,
      onProgress: (f) => {
        runnerFraction = Number.isFinite(f) ? Math.max(0, Math.min(1, f)) : 0;
        progress();
      },
      signal: stopRunner.signal,
    }).then(
      (value) => settled = { ok: true, value },
      (error) => settled = { ok: false, error },
    )
    : Promise.resolve();

  let windowEnd = start;
  try {
    while (!opts.signal.aborted) {
      const elapsed = clock.now() - start;
      if (elapsed >= durationMs) break;
      await clock.sleep(Math.min(TICK_MS, durationMs - elapsed), opts.signal);
      progress();
    }
    windowEnd = clock.now();
    if (opts.isRoot && settled === null) {
      const grace = new AbortController();
      await Promise.race([running, clock.sleep(RUNNER_GRACE_MS, grace.signal)]);
      grace.abort();
      if (settled === null) {
        stopRunner.abort();
        const grace2 = new AbortController();
        await Promise.race([running, clock.sleep(RUNNER_GRACE_MS, grace2.signal)]);
        grace2.abort();
      }
    }
  } finally {
    opts.signal.removeEventListener("abort", forward);
  }

  const observedSeconds = Math.round(Math.min(windowEnd - start, Math.max(durationMs, 0)) / 100) /
    10;
  const cut = opts.signal.aborted;
  if (!opts.isRoot) {
    return {
      state: "needs-root",
      reason: "observing with the tuners' BPF programs needs root; counters were still compared " +
        "over the window (run with sudo for tuner advice)",
      observedSeconds,
      advice: null,
    };
  }
  const result = settled as Settled | null;
  if (result === null) {
    return {
      state: "failed",
      reason: `the tuners did not stop within ${RUNNER_GRACE_MS / 1000} s after the window`,
      observedSeconds,
      advice: null,
    };
  }
  if (!result.ok) {
    const msg = result.error instanceof Error ? result.error.message : String(result.error);
    return { state: "failed", reason: `observation failed: ${msg}`, observedSeconds, advice: null };
  }
  if (result.value.unavailable !== undefined) {
    return {
      state: "unavailable",
      reason: result.value.unavailable,
      observedSeconds,
      advice: result.value,
    };
  }
  return {
    state: cut ? "cut-short" : "completed",
    reason: cut ? `interrupted after ${observedSeconds} s` : `observed for ${observedSeconds} s`,
    observedSeconds,
    advice: result.value,
  };
}
