import assert from "node:assert/strict";
import {
  CorrelationTable,
  DecayingCorrelation,
  DEFAULT_HALF_LIFE_MS,
  DEFAULT_MIN_SAMPLES,
  DEFAULT_THRESHOLD,
} from "../../src/tuning/correlation.ts";

/** Deterministic pseudo-random numbers in [0, 1) (a 32-bit LCG), so tests are repeatable. */
function lcg(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

/** Reference: weighted Pearson computed directly from all points. */
function weightedPearson(points: { x: number; y: number; w: number }[]): number {
  const W = points.reduce((s, p) => s + p.w, 0);
  const mx = points.reduce((s, p) => s + p.w * p.x, 0) / W;
  const my = points.reduce((s, p) => s + p.w * p.y, 0) / W;
  let sxx = 0, syy = 0, sxy = 0;
  for (const p of points) {
    sxx += p.w * (p.x - mx) ** 2;
    syy += p.w * (p.y - my) ** 2;
    sxy += p.w * (p.x - mx) * (p.y - my);
  }
  return sxy / Math.sqrt(sxx * syy);
}

const close = (actual: number, expected: number, eps: number, what: string) =>
  assert.ok(Math.abs(actual - expected) <= eps, `${what}: ${actual} vs ${expected}`);

Deno.test("defaults: 60 s half-life, 10 samples, bpftune's 0.75 threshold", () => {
  assert.equal(DEFAULT_HALF_LIFE_MS, 60_000);
  assert.equal(DEFAULT_MIN_SAMPLES, 10);
  assert.equal(DEFAULT_THRESHOLD, 0.75);
  const c = new DecayingCorrelation();
  assert.equal(c.halfLifeMs, 60_000);
  assert.equal(c.threshold, 0.75);
});

Deno.test("perfect positive and negative linear relations", () => {
  const up = new DecayingCorrelation();
  const down = new DecayingCorrelation();
  for (let i = 0; i < 20; i++) {
    up.observe(1000 + i * 10, 50 + i * 3, i * 100);
    down.observe(1000 + i * 10, 500 - i * 3, i * 100);
  }
  close(up.correlation(2000), 1, 1e-9, "up");
  close(down.correlation(2000), -1, 1e-9, "down");
  assert.equal(up.brakes(2000), true);
  assert.equal(down.brakes(2000), false); // falling RTT with bigger buffers is no reason to brake
});

Deno.test("no correlation before the minimum sample weight (exactly at it, it counts)", () => {
  const c = new DecayingCorrelation({ minSamples: 10 });
  for (let i = 0; i < 9; i++) c.observe(i, i, 0);
  assert.equal(c.weight(0), 9);
  assert.equal(c.correlation(0), 0);
  assert.equal(c.brakes(0), false);
  c.observe(9, 9, 0);
  assert.equal(c.weight(0), 10);
  close(c.correlation(0), 1, 1e-12, "at 10 samples");
  assert.equal(c.brakes(0), true);
});

Deno.test("a constant series has no correlation (bpftune: variance 0 -> 0)", () => {
  const flatX = new DecayingCorrelation();
  const flatY = new DecayingCorrelation();
  for (let i = 0; i < 30; i++) {
    flatX.observe(6291456, 100 + i, i);
    flatY.observe(6291456 + i * 4096, 250, i);
  }
  assert.equal(flatX.correlation(30), 0);
  assert.equal(flatY.correlation(30), 0);
});

Deno.test("threshold is strict: r just above brakes, r below does not", () => {
  // y = x + noise with r computed by the reference; choose thresholds around it
  const rnd = lcg(7);
  const points: { x: number; y: number }[] = [];
  for (let i = 0; i < 200; i++) {
    const x = i;
    points.push({ x, y: x + (rnd() - 0.5) * 150 });
  }
  const r = weightedPearson(points.map((p) => ({ ...p, w: 1 })));
  assert.ok(r > 0.5 && r < 0.95, `fixture r ${r}`);
  const above = new DecayingCorrelation({ halfLifeMs: Infinity, threshold: r - 1e-6 });
  const below = new DecayingCorrelation({ halfLifeMs: Infinity, threshold: r + 1e-6 });
  for (const p of points) {
    above.observe(p.x, p.y, 0);
    below.observe(p.x, p.y, 0);
  }
  assert.equal(above.brakes(0), true);
  assert.equal(below.brakes(0), false);
});

Deno.test("without decay it equals plain Pearson; with decay, the weighted Pearson", () => {
  const rnd = lcg(42);
  const plain = new DecayingCorrelation({ halfLifeMs: Infinity });
  const decaying = new DecayingCorrelation({ halfLifeMs: 5000 });
  const seen: { x: number; y: number; t: number }[] = [];
  for (let i = 0; i < 300; i++) {
    const t = i * 97;
    const x = 4_000_000 + rnd() * 2_000_000_000; // byte counts up to ~2^31
    const y = 20_000 + (x / 1e6) * 3 + rnd() * 4000 * (i % 3); // srtt_us, partly related
    plain.observe(x, y, t);
    decaying.observe(x, y, t);
    seen.push({ x, y, t });
  }
  const now = 300 * 97 + 1234;
  close(plain.correlation(now), weightedPearson(seen.map((p) => ({ ...p, w: 1 }))), 1e-9, "plain");
  const weighted = seen.map((p) => ({ ...p, w: 2 ** (-(now - p.t) / 5000) }));
  close(decaying.correlation(now), weightedPearson(weighted), 1e-9, "decayed");
  const expectedWeight = weighted.reduce((s, p) => s + p.w, 0);
  close(decaying.weight(now), expectedWeight, 1e-9, "weight");
});

Deno.test("weight halves every half-life", () => {
  const c = new DecayingCorrelation({ halfLifeMs: 1000 });
  for (let i = 0; i < 40; i++) c.observe(i, i, 0);
  close(c.weight(0), 40, 1e-12, "t=0");
  close(c.weight(1000), 20, 1e-12, "t=1 half-life");
  close(c.weight(3000), 5, 1e-12, "t=3 half-lives");
});

Deno.test("the brake engages, then releases as the window decays when no data comes", () => {
  const decaying = new DecayingCorrelation({ halfLifeMs: 10_000 });
  const endless = new DecayingCorrelation({ halfLifeMs: Infinity }); // bpftune's behaviour
  for (let i = 0; i < 40; i++) {
    // buffer max grows step by step, RTT follows: a "bad period"
    const t = i * 250;
    decaying.observe(6291456 + i * 1572864, 2000 + i * 400, t);
    endless.observe(6291456 + i * 1572864, 2000 + i * 400, t);
  }
  assert.equal(decaying.brakes(10_000), true);
  // 40 samples at ~t=5..10 s; weight drops below 10 after two more half-lives or so
  assert.equal(decaying.brakes(25_000), true);
  assert.equal(decaying.brakes(40_000), false);
  assert.ok(decaying.weight(40_000) < 10);
  assert.equal(endless.brakes(10 * 60_000), true); // never forgets
});

Deno.test("the brake releases when later observations are uncorrelated", () => {
  const c = new DecayingCorrelation({ halfLifeMs: 5000 });
  for (let i = 0; i < 50; i++) c.observe(1e6 + i * 1e5, 1000 + i * 50, i * 100);
  assert.equal(c.brakes(5000), true);
  const rnd = lcg(3);
  let t = 5000;
  for (let i = 0; i < 400; i++) {
    t += 100;
    c.observe(1e6 + rnd() * 5e6, 1000 + rnd() * 2500, t); // independent noise
  }
  assert.ok(c.weight(t) >= 10);
  assert.ok(Math.abs(c.correlation(t)) < 0.3, `r ${c.correlation(t)}`);
  assert.equal(c.brakes(t), false);
});

Deno.test("reading at a time is idempotent and a clock stepping back does not age or rejuvenate", () => {
  const a = new DecayingCorrelation({ halfLifeMs: 1000 });
  const b = new DecayingCorrelation({ halfLifeMs: 1000 });
  for (let i = 0; i < 20; i++) {
    a.observe(i, i * i, i * 10);
    b.observe(i, i * i, i * 10);
  }
  a.correlation(500);
  a.correlation(500);
  a.weight(800);
  close(a.weight(1500), b.weight(1500), 1e-12, "same weight via intermediate reads");
  close(a.correlation(1500), b.correlation(1500), 1e-12, "same r via intermediate reads");
  const before = a.weight(1500);
  assert.equal(a.weight(1000), before); // earlier time: no change
  a.observe(100, 100, 1000); // late observation counts at the current window time
  close(a.weight(1500), before + 1, 1e-12, "late observation");
});

Deno.test("non-finite observations are ignored and do not poison the window", () => {
  const c = new DecayingCorrelation();
  for (let i = 0; i < 12; i++) c.observe(i, 2 * i, 0);
  assert.equal(c.observe(NaN, 1, 0), false);
  assert.equal(c.observe(1, Infinity, 0), false);
  assert.equal(c.observe(1, 1, NaN), false);
  assert.equal(c.weight(0), 12);
  close(c.correlation(0), 1, 1e-12, "still 1");
});

Deno.test("a long silence empties the window and it restarts cleanly", () => {
  const c = new DecayingCorrelation({ halfLifeMs: 1000 });
  for (let i = 0; i < 20; i++) c.observe(i, i, 0);
  assert.equal(c.weight(1_000_000), 0);
  for (let i = 0; i < 20; i++) c.observe(i, -i, 1_000_000);
  close(c.correlation(1_000_000), -1, 1e-12, "new data only");
});

Deno.test("reset empties the window", () => {
  const c = new DecayingCorrelation();
  for (let i = 0; i < 20; i++) c.observe(i, i, 0);
  c.reset();
  assert.equal(c.weight(0), 0);
  assert.equal(c.correlation(0), 0);
});

Deno.test("invalid options are rejected with a clear error", () => {
  const bad: [object, string][] = [
    [{ halfLifeMs: 0 }, "half-life"],
    [{ halfLifeMs: -5 }, "half-life"],
    [{ halfLifeMs: NaN }, "half-life"],
    [{ minSamples: 1 }, "minimum sample"],
    [{ minSamples: NaN }, "minimum sample"],
    [{ threshold: 1 }, "threshold"],
    [{ threshold: -0.1 }, "threshold"],
    [{ threshold: NaN }, "threshold"],
  ];
  for (const [options, word] of bad) {
    assert.throws(
      () => new DecayingCorrelation(options),
      (e: unknown) => e instanceof RangeError && e.message.includes(word),
      JSON.stringify(options),
    );
    assert.throws(() => new CorrelationTable(options), RangeError);
  }
});

Deno.test("CorrelationTable keeps one record per (tuner, netns, tunable)", () => {
  const table = new CorrelationTable({ halfLifeMs: 1000 });
  const rmem = table.get("tcp_buffer", "1", "net.ipv4.tcp_rmem");
  assert.equal(table.get("tcp_buffer", "1", "net.ipv4.tcp_rmem"), rmem);
  // bpftune's ip_frag id 0/1 collided with tcp_wmem/tcp_rmem; names keep them apart
  const frag = table.get("ip_frag", "1", "net.ipv4.ipfrag_high_thresh");
  assert.notEqual(frag, rmem);
  for (let i = 0; i < 12; i++) rmem.observe(i, i, 0);
  assert.equal(frag.weight(0), 0);
  assert.equal(table.get("tcp_buffer", "10", "net.ipv4.tcp_rmem").weight(0), 0);
  assert.equal(table.size, 3);
  table.forgetNetns(new Set(["1", "2"]));
  assert.equal(table.size, 1);
  assert.notEqual(table.get("tcp_buffer", "1", "net.ipv4.tcp_rmem"), rmem);
  assert.equal(table.get("tcp_buffer", "1", "net.ipv4.tcp_rmem").halfLifeMs, 1000);
});
