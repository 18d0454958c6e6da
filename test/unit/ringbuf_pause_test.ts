import assert from "node:assert/strict";
import {
  BUSY_GAP_MS,
  BUSY_WITHIN_MS,
  MIN_GAP_MS,
  pauseAfterDrain,
} from "../../src/libbpf/ringbuf.ts";

Deno.test("ring buffer pause: a lone wake-up (after a long wait) waits only the short gap", () => {
  assert.equal(pauseAfterDrain(Infinity), MIN_GAP_MS);
  assert.equal(pauseAfterDrain(BUSY_WITHIN_MS), MIN_GAP_MS);
  assert.equal(pauseAfterDrain(5_000), MIN_GAP_MS);
});

Deno.test("ring buffer pause: events waiting when the reader looks again are a stream, batched longer", () => {
  assert.ok(BUSY_GAP_MS > MIN_GAP_MS);
  assert.equal(pauseAfterDrain(0), BUSY_GAP_MS);
  assert.equal(pauseAfterDrain(BUSY_WITHIN_MS - 1), BUSY_GAP_MS);
});

Deno.test("ring buffer pause: one namespace's growth events (2/s) stay lone ones", () => {
  // The kernel sends a (namespace, kind) at most every 500 ms: after a short pause the reader
  // waits ~475 ms for the next one, so one namespace's growth is not slowed.
  assert.equal(pauseAfterDrain(500 - MIN_GAP_MS), MIN_GAP_MS);
});

Deno.test("ring buffer pause: minGapMs 0 (tests, benchmarks) never pauses", () => {
  assert.equal(pauseAfterDrain(1, 0), 0);
  assert.equal(pauseAfterDrain(Infinity, 0), 0);
  // A caller's gap longer than the busy one is kept.
  assert.equal(pauseAfterDrain(1, 2 * BUSY_GAP_MS), 2 * BUSY_GAP_MS);
});
