import assert from "node:assert/strict";
import type { Proposal } from "../../src/tuning/proposal.ts";
import {
  DEFAULT_COOLDOWN_MS,
  DEFAULT_GROWTH_GAP_MS,
  directionOf,
  RateGate,
} from "../../src/daemon/rate_gate.ts";

function rmem(from: number, to: number, netns = "1", sysctl = "net.ipv4.tcp_rmem"): Proposal {
  return {
    tuner: "tcp_buffer",
    scenario: "need to increase TCP buffer size(s)",
    sysctl,
    netns,
    from: [4096, 131072, from],
    to: [4096, 131072, to],
    reason: `grow ${from} -> ${to}`,
  };
}

/** Admits and settles as applied; returns the verdict kind of admit. */
function applyAt(gate: RateGate, p: Proposal, now: number): string {
  const verdict = gate.admit(p, now);
  if (verdict.kind === "apply") assert.equal(gate.settle(p, "applied", now), true);
  return verdict.kind;
}

Deno.test("default cool-down is 5 s", () => {
  assert.equal(DEFAULT_COOLDOWN_MS, 5000);
  assert.equal(new RateGate().cooldownMs, 5000);
});

Deno.test("cool-down: no change in the other direction until the cool-down has passed", () => {
  const gate = new RateGate({ cooldownMs: 5000 });
  assert.equal(applyAt(gate, rmem(100, 125), 1000), "apply");
  const next = rmem(125, 110);
  assert.deepEqual(gate.admit(next, 1001), { kind: "cooling-down", until: 6000, repeat: false });
  assert.deepEqual(gate.admit(next, 5999), { kind: "cooling-down", until: 6000, repeat: true });
  assert.deepEqual(gate.admit(next, 6000), { kind: "apply" }); // exactly at the boundary
});

Deno.test("growth on fresh evidence: the short gap, not the cool-down", () => {
  const gate = new RateGate({ cooldownMs: 5000 });
  assert.equal(DEFAULT_GROWTH_GAP_MS, 250);
  assert.equal(gate.growthGapMs, 250);
  assert.equal(applyAt(gate, rmem(100, 400), 1000), "apply");
  assert.deepEqual(gate.admit(rmem(400, 1600), 1249), {
    kind: "cooling-down",
    until: 1250,
    repeat: false,
  });
  assert.equal(applyAt(gate, rmem(400, 1600), 1250), "apply");
  assert.equal(applyAt(gate, rmem(1600, 3200), 1500), "apply");
  assert.equal(new RateGate({ cooldownMs: 200 }).growthGapMs, 200, "never above the cool-down");
});

Deno.test("growth on evidence seen at the value the last change wrote: no gap at all", () => {
  const gate = new RateGate({ cooldownMs: 5000 });
  assert.equal(applyAt(gate, rmem(100, 400), 1000), "apply");
  assert.equal(applyAt(gate, { ...rmem(400, 1600), fresh: true }, 1001), "apply");
  assert.equal(gate.admit(rmem(1600, 3200), 1002).kind, "cooling-down", "not fresh: the gap");
  // A reversal waits out the cool-down, fresh or not.
  assert.deepEqual(gate.admit({ ...rmem(1600, 800), fresh: true }, 1002), {
    kind: "cooling-down",
    until: 6001,
    repeat: false,
  });
});

Deno.test("oscillation: after a reversal every change waits out the cool-down", () => {
  const gate = new RateGate({ cooldownMs: 5000 });
  assert.equal(applyAt(gate, rmem(100, 200), 0), "apply");
  assert.equal(gate.admit(rmem(200, 150), 600).kind, "cooling-down", "a reversal waits");
  assert.equal(applyAt(gate, rmem(200, 150), 5000), "apply");
  assert.equal(gate.admit(rmem(150, 120), 5600).kind, "cooling-down", "right after a reversal");
  assert.equal(applyAt(gate, rmem(150, 120), 10_000), "apply");
  assert.equal(applyAt(gate, rmem(120, 100), 10_500), "apply", "settled in one direction again");
});

Deno.test("direction of a change: up, down, or mixed", () => {
  assert.equal(directionOf({ from: [1, 2, 3], to: [1, 2, 4] }), 1);
  assert.equal(directionOf({ from: [1, 2, 3], to: [1, 1, 3] }), -1);
  assert.equal(directionOf({ from: [1, 2, 3], to: [2, 2, 2] }), 0);
  const gate = new RateGate({ cooldownMs: 5000 });
  const mixed = (from: number[], to: number[]) => ({ ...rmem(0, 0), from, to });
  assert.equal(applyAt(gate, mixed([1, 2, 9], [2, 3, 8]), 0), "apply");
  assert.equal(gate.admit(mixed([2, 3, 8], [3, 4, 7]), 600).kind, "cooling-down");
});

Deno.test("cool-down is per (netns, sysctl)", () => {
  const gate = new RateGate({ cooldownMs: 5000 });
  assert.equal(applyAt(gate, rmem(100, 125), 0), "apply");
  assert.equal(gate.admit(rmem(125, 156), 1).kind, "cooling-down");
  assert.equal(gate.admit(rmem(100, 125, "2"), 1).kind, "apply"); // other netns
  assert.equal(gate.admit(rmem(100, 125, "1", "net.ipv4.tcp_wmem"), 1).kind, "apply");
  assert.equal(gate.size, 3);
});

Deno.test("the cool-down is shared by tuners writing the same sysctl", () => {
  const gate = new RateGate({ cooldownMs: 5000 });
  const a: Proposal = {
    ...rmem(0, 1, "1", "net.core.high_order_alloc_disable"),
    from: [0],
    to: [1],
  };
  const b: Proposal = { ...a, tuner: "net_buffer", from: [1], to: [0] };
  assert.equal(applyAt(gate, a, 0), "apply");
  assert.equal(gate.admit(b, 10).kind, "cooling-down");
});

Deno.test("a cool-down of 0 allows back-to-back changes; invalid cool-downs are rejected", () => {
  const gate = new RateGate({ cooldownMs: 0 });
  assert.equal(applyAt(gate, rmem(100, 125), 0), "apply");
  assert.equal(applyAt(gate, rmem(125, 156), 0), "apply");
  for (const bad of [-1, NaN, Infinity]) {
    assert.throws(
      () => new RateGate({ cooldownMs: bad }),
      (e: unknown) => e instanceof RangeError && e.message.includes("non-negative"),
    );
  }
});

Deno.test("identical proposals coalesce: an applied change is never applied again", () => {
  const gate = new RateGate({ cooldownMs: 5000 });
  assert.equal(applyAt(gate, rmem(100, 125), 0), "apply");
  assert.equal(gate.admit(rmem(100, 125), 1).kind, "duplicate");
  assert.equal(gate.admit(rmem(100, 125), 60_000).kind, "duplicate"); // also after cool-down
  // the next step is a different change and goes through after the cool-down
  assert.equal(applyAt(gate, rmem(125, 156), 60_000), "apply");
  // an older change is no longer "the last one"; if live values really went back, it may apply
  assert.equal(gate.admit(rmem(100, 125), 120_000).kind, "apply");
});

Deno.test("while a write is in flight: same change coalesces, a different one waits", () => {
  const gate = new RateGate({ cooldownMs: 5000 });
  const p = rmem(100, 125);
  assert.equal(gate.admit(p, 0).kind, "apply");
  assert.equal(gate.admit(rmem(100, 125), 1).kind, "duplicate");
  assert.equal(gate.admit(rmem(100, 150), 1).kind, "in-flight");
  assert.equal(gate.settle(p, "applied", 2), true);
  assert.equal(gate.admit(rmem(125, 156), 3).kind, "cooling-down");
  assert.equal(gate.admit(rmem(125, 156), 502).kind, "apply", "growth again after the gap");
});

Deno.test("a failed write starts the cool-down but is not remembered as applied", () => {
  const gate = new RateGate({ cooldownMs: 5000 });
  const p = rmem(100, 125);
  assert.equal(gate.admit(p, 0).kind, "apply");
  assert.equal(gate.settle(p, "failed", 0), true);
  assert.equal(gate.admit(p, 4999).kind, "cooling-down");
  assert.equal(gate.admit(p, 5000).kind, "apply"); // retried, not treated as a duplicate
});

Deno.test("settle without a matching admit changes nothing", () => {
  const gate = new RateGate({ cooldownMs: 5000 });
  assert.equal(gate.settle(rmem(100, 125), "applied", 0), false);
  assert.equal(gate.admit(rmem(125, 156), 1).kind, "apply"); // no cool-down was started
  assert.equal(gate.settle(rmem(125, 999), "applied", 1), false); // not the admitted one
  assert.equal(gate.admit(rmem(125, 156), 2).kind, "duplicate"); // still pending
});

Deno.test("a proposal equal to the current value is no proposal", () => {
  const gate = new RateGate();
  assert.equal(gate.admit(rmem(125, 125), 0).kind, "noop");
  assert.equal(gate.admit(rmem(100, 125), 0).kind, "apply"); // and started nothing
});

Deno.test("at-ceiling is reported once per situation", () => {
  const gate = new RateGate();
  const at = [287901, 383868, 318926];
  assert.equal(gate.reportAtCeiling("1", "net.ipv4.tcp_mem", at, 318926), true);
  for (let i = 0; i < 5; i++) {
    assert.equal(gate.reportAtCeiling("1", "net.ipv4.tcp_mem", at, 318926), false);
  }
  // the admin lowered the value: a new situation
  const lowered = [287901, 383868, 300000];
  assert.equal(gate.reportAtCeiling("1", "net.ipv4.tcp_mem", lowered, 318926), true);
  assert.equal(gate.reportAtCeiling("1", "net.ipv4.tcp_mem", lowered, 318926), false);
  // the ceiling moved (memory added)
  assert.equal(gate.reportAtCeiling("1", "net.ipv4.tcp_mem", lowered, 400000), true);
  // another key is independent
  assert.equal(gate.reportAtCeiling("2", "net.ipv4.tcp_mem", lowered, 400000), true);
});

Deno.test("at-ceiling is reported again after clearAtCeiling or an applied change", () => {
  const gate = new RateGate({ cooldownMs: 0 });
  const at = [4096, 131072, 2147483647];
  assert.equal(gate.reportAtCeiling("1", "net.ipv4.tcp_rmem", at, 2147483647), true);
  gate.clearAtCeiling("1", "net.ipv4.tcp_rmem");
  assert.equal(gate.reportAtCeiling("1", "net.ipv4.tcp_rmem", at, 2147483647), true);
  assert.equal(applyAt(gate, rmem(2147483647, 1610612736), 0), "apply");
  assert.equal(gate.reportAtCeiling("1", "net.ipv4.tcp_rmem", at, 2147483647), true);
  assert.equal(gate.reportAtCeiling("1", "net.ipv4.tcp_rmem", at, 2147483647), false);
});

Deno.test("forgetNetns drops only those namespaces' state; forget drops one key", () => {
  const gate = new RateGate({ cooldownMs: 5000 });
  assert.equal(applyAt(gate, rmem(100, 125, "7"), 0), "apply");
  assert.equal(applyAt(gate, rmem(100, 125, "7", "net.ipv4.tcp_wmem"), 0), "apply");
  assert.equal(applyAt(gate, rmem(100, 125, "70"), 0), "apply"); // prefix of "7" must survive
  assert.equal(applyAt(gate, rmem(100, 125, "8"), 0), "apply");
  gate.forgetNetns(new Set(["7", "8"]));
  assert.equal(gate.size, 1);
  assert.equal(gate.admit(rmem(125, 156, "8"), 1).kind, "apply");
  assert.equal(gate.admit(rmem(125, 156, "7"), 1).kind, "apply");
  assert.equal(gate.admit(rmem(125, 156, "70"), 1).kind, "cooling-down");
  gate.forget("70", "net.ipv4.tcp_rmem");
  assert.equal(gate.admit(rmem(125, 156, "70"), 1).kind, "apply");
});

Deno.test("a revised target for the same move from the same value is a duplicate (advise mode)", () => {
  const gate = new RateGate({ cooldownMs: 5000 });
  assert.equal(applyAt(gate, rmem(100, 400), 0), "apply");
  // the value did not change (advise mode wrote nothing): a new target is not news
  assert.equal(gate.admit(rmem(100, 380), 10_000).kind, "duplicate");
  assert.equal(gate.admit(rmem(100, 90), 10_000).kind, "apply", "the other direction is");
});
