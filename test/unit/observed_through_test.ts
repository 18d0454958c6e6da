/** What a loaded tuner says it observes through: hooks, or the poll that runs instead. */
import assert from "node:assert/strict";
import { observedThrough } from "../../src/daemon/tuner_loader.ts";
import { ipFragTuner } from "../../src/tuners/ip_frag.ts";

const POLL = /instead of frag4: a poll of \/proc\/net\/sockstat FRAG memory/;

Deno.test("observedThrough: a tuner whose hooks are all missing names its poll, never nothing", () => {
  const t = {
    def: ipFragTuner,
    attached: [],
    missing: [{ hook: "frag4", reason: "EPERM" }, { hook: "frag6", reason: "EPERM" }],
  };
  for (const detail of [true, false]) {
    const text = observedThrough(t, detail);
    assert.match(text, POLL);
    assert.match(text, /instead of frag6: a poll of \/proc\/net\/sockstat6 FRAG6 memory/);
  }
});

Deno.test("observedThrough: attached hooks first, with or without their targets", () => {
  const t = {
    def: ipFragTuner,
    attached: [{ hook: "frag4", kind: "fentry", target: "ip_defrag", program: "bpfp_if_v4_fe" }],
    missing: [{ hook: "frag6", reason: "EPERM" }],
  };
  assert.match(observedThrough(t, true), /^frag4 via fentry ip_defrag, instead of frag6: a poll/);
  assert.match(observedThrough(t, false), /^frag4 \(fentry\), instead of frag6: a poll/);
  assert.equal(observedThrough({ ...t, missing: [] }, false), "frag4 (fentry)");
  assert.equal(observedThrough({ ...t, attached: [], missing: [] }, false), "no hook attached");
});
