import assert from "node:assert/strict";
import { ChangeTiming, type CpuClock } from "../../src/daemon/change_timing.ts";

/** A fake CPU clock: the thread's and the process's times, moved by the test. */
function fakeClock() {
  const now = { thread: 0, process: 0 };
  const clock: CpuClock = (which) => now[which];
  const spend = (ns: number, otherThreads = 0) => {
    now.thread += ns;
    now.process += ns + otherThreads;
  };
  return { clock, spend };
}

Deno.test("change timing: stages sum their CPU and count, nested ones inclusive", () => {
  const { clock, spend } = fakeClock();
  const t = new ChangeTiming(clock);
  for (let i = 0; i < 2; i++) {
    const n = t.time("wake-up", () => {
      spend(100_000);
      return t.time("event", () => {
        spend(300_000);
        return i;
      });
    });
    assert.equal(n, i, "time() returns its function's result");
  }
  spend(100_000, 200_000);
  const line = t.report(5);
  assert.match(line, /^change timing over 5\.0 s: main thread 0\.9 ms, process 1\.1 ms/);
  assert.match(line, /other threads 0\.2 ms/);
  assert.match(line, /event 0\.6 ms\/2 \(300 µs each\)/);
  assert.match(line, /wake-up 0\.8 ms\/2 \(400 µs each\)/);
});

Deno.test("change timing: a stage that throws is stopped all the same", () => {
  const { clock, spend } = fakeClock();
  const t = new ChangeTiming(clock);
  assert.throws(
    () =>
      t.time("sync", () => {
        spend(2_000_000);
        throw new Error("fdatasync failed");
      }),
    /fdatasync failed/,
  );
  spend(1_000_000); // after the stage: not its
  t.time("sync", () => spend(1_000_000));
  assert.match(t.report(1), /; sync 3\.0 ms\/2 \(1500 µs each\)$/);
});

Deno.test("change timing: a report covers only what ran since the previous one", () => {
  const { clock, spend } = fakeClock();
  const t = new ChangeTiming(clock);
  t.time("tick", () => spend(1_000_000));
  t.report(1);
  spend(2_000_000);
  assert.equal(
    t.report(1),
    "change timing over 1.0 s: main thread 2.0 ms, process 2.0 ms (other threads 0.0 ms); " +
      "no stage ran",
  );
});
