import assert from "node:assert/strict";
import {
  DEFAULT_LEARNING_RATE,
  fractionOf,
  grow,
  isLearningRate,
  type LearningRate,
  LearningRateError,
  nearlyEmpty,
  nearlyFull,
  parseLearningRate,
  shiftOf,
  shrink,
} from "../../src/tuning/learning_rate.ts";

// rate -> [shift, denominator]
const RATES: [LearningRate, number, number][] = [
  [0, 6, 64],
  [1, 5, 32],
  [2, 4, 16],
  [3, 3, 8],
  [4, 2, 4],
];

Deno.test("default learning rate is 4 (1/4), like bpftune", () => {
  assert.equal(DEFAULT_LEARNING_RATE, 4);
  assert.equal(fractionOf(1000, DEFAULT_LEARNING_RATE), 250);
});

Deno.test("each rate maps to shift 6 - rate and fraction 1/2^shift", () => {
  for (const [rate, shift, denominator] of RATES) {
    assert.equal(shiftOf(rate), shift, `rate ${rate}`);
    assert.equal(fractionOf(denominator * 1000, rate), 1000, `rate ${rate}`);
    assert.equal(fractionOf(denominator * 1000 + denominator - 1, rate), 1000, `rate ${rate}`);
    assert.equal(fractionOf(denominator - 1, rate), 0, `rate ${rate}`);
  }
});

Deno.test("nearlyFull: exactly at the threshold acts, one below does not", () => {
  for (const [rate, , denominator] of RATES) {
    const limit = denominator * 100; // fraction of the limit = 100
    assert.equal(nearlyFull(limit - 100, limit, rate), true, `rate ${rate} at threshold`);
    assert.equal(nearlyFull(limit - 101, limit, rate), false, `rate ${rate} one below`);
    assert.equal(nearlyFull(limit, limit, rate), true, `rate ${rate} at limit`);
    assert.equal(nearlyFull(limit + 5, limit, rate), true, `rate ${rate} over limit`);
  }
});

Deno.test("nearlyFull: the margin differs per rate (1.5625 % at rate 0, 25 % at rate 4)", () => {
  const limit = 6400;
  assert.equal(nearlyFull(6300, limit, 0), true);
  assert.equal(nearlyFull(6299, limit, 0), false);
  assert.equal(nearlyFull(4800, limit, 4), true);
  assert.equal(nearlyFull(4799, limit, 4), false);
  assert.equal(nearlyFull(4800, limit, 3), false);
});

Deno.test("nearlyEmpty: at the fraction is empty, one above is not", () => {
  assert.equal(nearlyEmpty(250, 1000, 4), true);
  assert.equal(nearlyEmpty(251, 1000, 4), false);
  assert.equal(nearlyEmpty(100, 6400, 0), true);
  assert.equal(nearlyEmpty(101, 6400, 0), false);
  assert.equal(nearlyEmpty(0, 0, 4), true);
});

Deno.test("grow and shrink move by the rate's fraction, rounded down", () => {
  const cases: [LearningRate, number, number, number][] = [
    // rate, value, grown, shrunk
    [4, 6291456, 7864320, 4718592], // bpftune issue #155's tcp_rmem step
    [4, 1000, 1250, 750],
    [4, 1001, 1251, 751],
    [0, 6400, 6500, 6300],
    [0, 63, 63, 63], // below 2^shift nothing moves
    [2, 160, 170, 150],
    [4, 0, 0, 0],
  ];
  for (const [rate, value, grown, shrunk] of cases) {
    assert.equal(grow(value, rate), grown, `grow(${value}, ${rate})`);
    assert.equal(shrink(value, rate), shrunk, `shrink(${value}, ${rate})`);
  }
});

Deno.test("arithmetic stays exact past 2^31 and 2^32 (where JS >> would wrap)", () => {
  const big = 3_000_000_000; // > 2^31: (big >> 2) is negative in JS
  assert.equal(fractionOf(big, 4), 750_000_000);
  assert.equal(grow(big, 4), 3_750_000_000);
  assert.equal(shrink(big, 4), 2_250_000_000);
  const huge = 2 ** 45 + 12345;
  assert.equal(grow(huge, 0), huge + Math.floor(huge / 64));
  assert.equal(nearlyFull(huge - Math.floor(huge / 4), huge, 4), true);
  assert.equal(nearlyFull(huge - Math.floor(huge / 4) - 1, huge, 4), false);
});

Deno.test("parseLearningRate accepts 0..4 as text or number", () => {
  for (const [rate] of RATES) {
    assert.equal(parseLearningRate(String(rate)), rate);
    assert.equal(parseLearningRate(rate), rate);
  }
  assert.equal(parseLearningRate(" 3 "), 3);
});

Deno.test("parseLearningRate rejects everything else with a clear error", () => {
  const bad: (string | number)[] = [
    "5",
    "-1",
    "1.5",
    "",
    " ",
    "abc",
    "4x",
    "04",
    "0x1",
    "1e0",
    5,
    -1,
    1.5,
    NaN,
    Infinity,
  ];
  for (const input of bad) {
    assert.throws(
      () => parseLearningRate(input),
      (e: unknown) =>
        e instanceof LearningRateError &&
        e.message.includes(JSON.stringify(String(input))) &&
        e.message.includes("from 0 to 4"),
      `input ${JSON.stringify(input)}`,
    );
  }
});

Deno.test("isLearningRate is a type guard for 0..4 only", () => {
  assert.equal(isLearningRate(0), true);
  assert.equal(isLearningRate(4), true);
  assert.equal(isLearningRate(5), false);
  assert.equal(isLearningRate("4"), false);
  assert.equal(isLearningRate(2.5), false);
});
