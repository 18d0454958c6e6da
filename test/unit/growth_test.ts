import assert from "node:assert/strict";
import { proportionalGrowth } from "../../src/tuning/growth.ts";

Deno.test("proportional growth: at least bpftune's step", () => {
  assert.equal(proportionalGrowth({ current: 65536, rate: 4 }), 81920);
  assert.equal(proportionalGrowth({ current: 65536, rate: 0 }), 66560);
  assert.equal(proportionalGrowth({ current: 65536, wanted: 70000, rate: 4 }), 81920);
});

Deno.test("proportional growth: as far as the kernel wanted, at most 4x per change", () => {
  assert.equal(proportionalGrowth({ current: 65536, wanted: 200_000, rate: 4 }), 200_000);
  assert.equal(
    proportionalGrowth({ current: 65536, wanted: 200_000, headroom: true, rate: 4 }),
    250_000,
  );
  assert.equal(proportionalGrowth({ current: 65536, wanted: 10_000_000, rate: 4 }), 262144);
  assert.equal(
    proportionalGrowth({ current: 65536, wanted: 10_000_000, rate: 4, maxFactor: 2 }),
    131072,
  );
});

Deno.test("proportional growth: more steps the more hits, when nothing says how far", () => {
  const at = (hits: number) => proportionalGrowth({ current: 1000, hits, rate: 4 });
  assert.deepEqual([1, 2, 3, 4, 8, 1000].map(at), [1250, 1500, 1500, 1750, 2000, 2000]);
});

Deno.test("proportional growth: implausible inputs change nothing or are ignored", () => {
  assert.equal(proportionalGrowth({ current: 0, wanted: 100, rate: 4 }), 0);
  assert.equal(proportionalGrowth({ current: -5, rate: 4 }), -5);
  assert.equal(proportionalGrowth({ current: 1000, wanted: NaN, rate: 4 }), 1250);
  assert.equal(proportionalGrowth({ current: 1000, wanted: Infinity, rate: 4 }), 1250);
  // past 2^31: division, not shifts
  assert.equal(proportionalGrowth({ current: 6e9, wanted: 9e9, rate: 4 }), 9e9);
});
