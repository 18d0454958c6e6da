import assert from "node:assert/strict";
import type { AdviceResult, AdviseRunner } from "../../src/audit/advise.ts";
import { unavailableRunner } from "../../src/audit/advise.ts";
import {
  type Clock,
  observeWindow,
  RUNNER_GRACE_MS,
  type WindowOptions,
} from "../../src/audit/window.ts";

/**
 * A virtual clock: sleep yields to the event loop once, then advances time by the full amount
 * unless aborted meanwhile, so a 60 s window runs in milliseconds and races resolve as in real time.
 */
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

const EMPTY: AdviceResult = {
  proposals: [],
  tuners: [{ tuner: "tcp_buffer", status: "active", reason: "" }],
};

function opts(o: Partial<WindowOptions>): WindowOptions {
  return {
    durationMs: 6_000,
    runner: () => Promise.resolve(EMPTY),
    isRoot: true,
    signal: new AbortController().signal,
    onProgress: () => {},
    clock: fakeClock(),
    ...o,
  };
}

Deno.test("window: a completed observation runs the whole duration and reports progress to 1", async () => {
  const progress: number[] = [];
  let asked: number | undefined;
  const runner: AdviseRunner = (o) => {
    asked = o.durationMs;
    return Promise.resolve(EMPTY);
  };
  const w = await observeWindow(opts({ runner, onProgress: (f) => progress.push(f) }));
  assert.equal(asked, 6_000);
  assert.equal(w.state, "completed");
  assert.equal(w.observedSeconds, 6);
  assert.deepEqual(w.advice, EMPTY);
  assert.equal(progress.at(-1), 1);
  assert.ok(progress.every((f, i) => i === 0 || f >= progress[i - 1]), "progress never goes back");
});

Deno.test("window: without root the runner is not started but the clock still runs", async () => {
  let called = false;
  const clock = fakeClock();
  const w = await observeWindow(opts({
    isRoot: false,
    clock,
    runner: () => {
      called = true;
      return Promise.resolve(EMPTY);
    },
  }));
  assert.equal(called, false);
  assert.equal(w.state, "needs-root");
  assert.match(w.reason, /needs root/);
  assert.equal(clock.t, 6_000);
});

Deno.test("window: the stand-in runner reports the observation unavailable", async () => {
  const w = await observeWindow(opts({ runner: unavailableRunner }));
  assert.equal(w.state, "unavailable");
  assert.equal(w.reason, "observation unavailable: daemon not built yet");
  assert.equal(w.observedSeconds, 6);
});

Deno.test("window: a failing runner is reported, not thrown", async () => {
  const w = await observeWindow(
    opts({ runner: () => Promise.reject(new Error("BPF load failed")) }),
  );
  assert.equal(w.state, "failed");
  assert.equal(w.reason, "observation failed: BPF load failed");
  assert.equal(w.advice, null);
});

Deno.test("window: Ctrl-C cuts the window short and the runner is told to stop", async () => {
  const abort = new AbortController();
  const clock = fakeClock();
  let runnerSignal: AbortSignal | undefined;
  const runner: AdviseRunner = (o) => {
    runnerSignal = o.signal;
    return new Promise((resolve) => o.signal.addEventListener("abort", () => resolve(EMPTY)));
  };
  const w = await observeWindow(opts({
    clock,
    runner,
    signal: abort.signal,
    onProgress: (f) => {
      if (f >= 0.25) abort.abort();
    },
  }));
  assert.equal(w.state, "cut-short");
  assert.equal(w.observedSeconds, 1.5);
  assert.equal(runnerSignal?.aborted, true);
});

Deno.test("window: a runner that overruns is stopped after the grace period", async () => {
  const clock = fakeClock();
  const runner: AdviseRunner = (o) =>
    new Promise((resolve) => o.signal.addEventListener("abort", () => resolve(EMPTY)));
  const w = await observeWindow(opts({ clock, runner }));
  assert.equal(w.state, "completed");
  assert.equal(clock.t, 6_000 + RUNNER_GRACE_MS);
});

Deno.test("window: a runner that never returns is reported as failed", async () => {
  const w = await observeWindow(opts({ runner: () => new Promise<AdviceResult>(() => {}) }));
  assert.equal(w.state, "failed");
  assert.match(w.reason, /did not stop/);
});

Deno.test("window: the runner's own progress moves the bar ahead of the clock", async () => {
  const progress: number[] = [];
  const runner: AdviseRunner = (o) => {
    o.onProgress(0.9);
    o.onProgress(Number.NaN); // ignored, not propagated
    return Promise.resolve(EMPTY);
  };
  await observeWindow(opts({ runner, onProgress: (f) => progress.push(f) }));
  assert.ok(progress[0] >= 0.9);
  assert.ok(progress.every((f) => f >= 0 && f <= 1 && !Number.isNaN(f)));
});
