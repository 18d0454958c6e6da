import assert from "node:assert/strict";
import { applyDecisions, readTogether } from "../../src/tuning/context.ts";
import type { Decision } from "../../src/tuning/proposal.ts";
import { sysctlTuner } from "../../src/tuners/sysctl.ts";
import { TUNERS } from "../../src/tuners/registry.ts";
import { FakeTunerContext } from "../support/fake_context.ts";

const change = (sysctl: string, to: number): Decision => ({
  kind: "change",
  proposal: { scenario: "s", sysctl, from: [1], to: [to], reason: "r" },
});

Deno.test("apply: changes become proposals of the tuner in the netns, at-ceiling is reported, nulls skipped", () => {
  const ctx = new FakeTunerContext("toy");
  ctx.accept = (p) => p.sysctl !== "b";
  const applied = applyDecisions(ctx, "toy", [
    null,
    change("b", 2),
    { kind: "at-ceiling", sysctl: "c", value: [9], ceiling: 9 },
    { kind: "needs-more", sysctl: "d", need: 7 },
    change("a", 3),
  ], "ns1");
  assert.equal(applied, true);
  assert.deepEqual(ctx.proposals.map((p) => [p.tuner, p.netns, p.sysctl, p.to]), [
    ["toy", "ns1", "b", [2]],
    ["toy", "ns1", "a", [3]],
  ]);
  assert.deepEqual(ctx.ceilings, [{ sysctl: "c", netns: "ns1", value: [9], ceiling: 9 }]);
  assert.deepEqual(ctx.needs, [{ sysctl: "d", netns: "ns1", need: 7 }]);
  assert.equal(applyDecisions(ctx, "toy", [change("b", 2)], "ns1"), false, "refused: not applied");
});

Deno.test("the admin-override detector is always on by its definition, no other tuner is", () => {
  assert.equal(sysctlTuner.alwaysOn, true);
  assert.deepEqual(TUNERS.filter((t) => t.alwaysOn).map((t) => t.name), ["sysctl"]);
});

Deno.test("readTogether: one readMany visit where offered, else one read() per sysctl", () => {
  const calls: string[] = [];
  const read = (s: string, ns: string) => (calls.push(`read ${ns} ${s}`), s === "a" ? [1] : null);
  assert.deepEqual(readTogether({ read }, ["a", "b"], "ns:7"), [[1], null]);
  assert.deepEqual(calls, ["read ns:7 a", "read ns:7 b"]);
  calls.length = 0;
  const readMany = (ss: readonly string[], ns: string) => (
    calls.push(`readMany ${ns} ${ss.join(",")}`), ss.map(() => [2])
  );
  assert.deepEqual(readTogether({ read, readMany }, ["a", "b"], "ns:7"), [[2], [2]]);
  assert.deepEqual(calls, ["readMany ns:7 a,b"]);
});
