import assert from "node:assert/strict";
import { splitTime, sumSplits, threadMark } from "../../scripts/bench/thread_time.ts";

const mark = (runMs: number, waitMs: number, voluntary: number) => ({
  runNs: runMs * 1e6,
  waitNs: waitMs * 1e6,
  voluntary,
});

Deno.test("splitTime: the rest of the wall time is asleep only when the thread switched out itself", () => {
  const slept = splitTime(10, mark(1, 2, 5), mark(3, 5, 6));
  assert.deepEqual(slept, { wall: 10, running: 2, waiting: 3, asleep: 5, other: 0 });
  // No voluntary switch: the thread was current but not running in its own account (steal, irqs).
  const stolen = splitTime(10, mark(1, 2, 5), mark(3, 5, 5));
  assert.deepEqual(stolen, { wall: 10, running: 2, waiting: 3, asleep: 0, other: 5 });
});

Deno.test("splitTime: counts read around the stretch never make the parts exceed the wall time", () => {
  const s = splitTime(1, mark(0, 0, 0), mark(1.02, 0.5, 0));
  assert.deepEqual(s.running, 1);
  assert.deepEqual(s.waiting, 0);
  assert.deepEqual(s.asleep + s.other, 0);
});

Deno.test("sumSplits adds each cause; threadMark reads this thread's counters", () => {
  const sum = sumSplits([
    splitTime(4, mark(0, 0, 0), mark(1, 1, 1)),
    splitTime(2, mark(0, 0, 0), mark(2, 0, 0)),
  ]);
  assert.deepEqual(sum, { wall: 6, running: 3, waiting: 1, asleep: 2, other: 0 });
  // A small-integer sum allocates nothing: no scavenge, whose helper threads the main thread
  // waits for (a voluntary switch; the float sum this was once failed that way under load). Run
  // once before the marks, so its compiles and page faults are done by then.
  // 30 ms at least: the run time a thread reads of itself moves at scheduler ticks.
  const busy = () => {
    let x = 0;
    const end = performance.now() + 30;
    do for (let i = 0; i < 1e5; i++) x = (x + i) | 0; while (performance.now() < end);
    return x;
  };
  busy();
  const a = threadMark();
  const x = busy();
  const b = threadMark();
  assert.deepEqual(x !== 0, true);
  assert.deepEqual(b.runNs > a.runNs, true);
  assert.ok(b.voluntary - a.voluntary < 5, "a busy loop does not sleep");
});
