import assert from "node:assert/strict";
import { StartTiming } from "../../src/daemon/start_timing.ts";

Deno.test("start timing: the first phase is what ran before it, then one phase per mark", () => {
  let now = 230;
  const t = new StartTiming(() => now);
  now += 4;
  t.mark("journal");
  now += 410.4;
  t.mark("tuners", "2 at a time");
  assert.deepEqual(t.phases.map((p) => [p.name, Math.round(p.ms)]), [
    ["runtime, bundle and arguments", 230],
    ["journal", 4],
    ["tuners", 410],
  ]);
  assert.equal(Math.round(t.totalMs), 644);
  assert.equal(
    t.describe(),
    "start-up took 644 ms since this program image began: runtime, bundle and arguments 230 ms, " +
      "journal 4 ms, tuners 410 ms (2 at a time)",
  );
});
