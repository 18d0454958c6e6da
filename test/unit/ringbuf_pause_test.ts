import assert from "node:assert/strict";
import {
  BUSY_GAP_MS,
  BUSY_WITHIN_MS,
  MIN_GAP_MS,
  pauseAfterDrain,
} from "../../src/libbpf/ringbuf.ts";

Deno.test("ring buffer pause: a lone wake-up waits only the short gap", () => {
  assert.equal(pauseAfterDrain(Infinity), MIN_GAP_MS);
  assert.equal(pauseAfterDrain(BUSY_WITHIN_MS), MIN_GAP_MS);
  assert.equal(pauseAfterDrain(5_000), MIN_GAP_MS);
});

Deno.test("ring buffer pause: back-to-back wake-ups are batched for longer", () => {
  assert.ok(BUSY_GAP_MS > MIN_GAP_MS);
  assert.equal(pauseAfterDrain(MIN_GAP_MS), BUSY_GAP_MS);
  assert.equal(pauseAfterDrain(BUSY_WITHIN_MS - 1), BUSY_GAP_MS);
});

Deno.test("ring buffer pause: minGapMs 0 (tests, benchmarks) never pauses", () => {
  assert.equal(pauseAfterDrain(1, 0), 0);
  assert.equal(pauseAfterDrain(Infinity, 0), 0);
  // A caller's gap longer than the busy one is kept.
  assert.equal(pauseAfterDrain(1, 500), 500);
});
