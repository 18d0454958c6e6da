/**
 * inNetns never nests into another namespace: the inner call would return to the daemon's own
 * namespace before the outer one is done, and the rest of the outer work would land there.
 */
import assert from "node:assert/strict";
import { GLOBAL_NETNS, inNetns } from "../../src/kernel/netns.ts";

Deno.test("inNetns: the same namespace nests, another one is refused before anything runs", () => {
  assert.equal(inNetns(GLOBAL_NETNS, () => inNetns(GLOBAL_NETNS, () => 7)), 7);
  let ran = false;
  assert.throws(
    () => inNetns(GLOBAL_NETNS, () => inNetns("ns:1", () => ran = true)),
    /internal error: entering network namespace ns:1 from inside another/,
  );
  assert.equal(ran, false);
  assert.equal(inNetns(GLOBAL_NETNS, () => "after"), "after", "left cleanly after the refusal");
});
