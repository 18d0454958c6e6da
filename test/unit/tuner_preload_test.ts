import assert from "node:assert/strict";
import { preloadLimit, runLimited } from "../../src/daemon/tuner_preload.ts";

Deno.test("runLimited: never more than the limit at once, every job once, results in order", async () => {
  let running = 0, most = 0;
  const started: number[] = [];
  const jobs = [0, 1, 2, 3, 4].map((i) => async () => {
    started.push(i);
    most = Math.max(most, ++running);
    await new Promise((r) => setTimeout(r, 5 - i)); // later jobs finish sooner
    running--;
    return i * 10;
  });
  assert.deepEqual(await Promise.all(runLimited(jobs, 2)), [0, 10, 20, 30, 40]);
  assert.equal(most, 2);
  assert.deepEqual(started, [0, 1, 2, 3, 4], "started in order");
});

Deno.test("runLimited: a failing job rejects its own promise only", async () => {
  const [a, b] = runLimited([() => Promise.reject(new Error("no")), () => Promise.resolve(7)], 1);
  await assert.rejects(a, /no/);
  assert.equal(await b, 7);
});

Deno.test("preloadLimit: one load per CPU, between 1 and 4", () => {
  assert.deepEqual([0, 1, 2, 3, 64].map(preloadLimit), [1, 1, 2, 3, 4]);
});
