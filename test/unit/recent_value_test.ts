import assert from "node:assert/strict";
import { RecentValue } from "../../src/tuning/recent_value.ts";

function counted(maxAgeMs: number) {
  let clock = 0, reads = 0;
  const v = new RecentValue(() => ++reads, maxAgeMs, () => clock);
  return { v, reads: () => reads, at: (t: number) => void (clock = t) };
}

Deno.test("RecentValue: read once, reused until it is maxAgeMs old", () => {
  const c = counted(1000);
  assert.equal(c.v.get(), 1);
  c.at(999);
  assert.equal(c.v.get(), 1);
  c.at(1000);
  assert.equal(c.v.get(), 2);
  assert.equal(c.reads(), 2);
});

Deno.test("RecentValue: a null read is kept like any value; forget() reads again", () => {
  let reads = 0;
  const v = new RecentValue(() => (reads++, null), 1000, () => 5);
  assert.equal(v.get(), null);
  assert.equal(v.get(), null);
  assert.equal(reads, 1);
  v.forget();
  v.get();
  assert.equal(reads, 2);
});

Deno.test("RecentValue: a clock that goes back reads again", () => {
  const c = counted(1000);
  c.at(5000);
  c.v.get();
  c.at(4000);
  assert.equal(c.v.get(), 2);
});
