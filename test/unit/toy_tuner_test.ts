/**
 * The toy tuner of docs/adding-a-tuner.md, end to end without a kernel: its BPF object agrees
 * with its TypeScript (the contract check), and its glue turns an event into a proposal.
 */
import assert from "node:assert/strict";
import { checkTunerContract } from "../../src/tuning/contract_check.ts";
import { toyTuner } from "../toy/toy.ts";
import { fakeObject, startTuner } from "../support/fake_context.ts";

Deno.test("toy tuner: the contract check passes for the guide's example", () => {
  assert.deepEqual(checkTunerContract(toyTuner), []);
});

Deno.test("toy tuner: a listen backlog near somaxconn proposes growing somaxconn", () => {
  const t = startTuner(toyTuner);
  t.ctx.set("net.core.somaxconn", [4096]);
  t.event({ kind: toyTuner.contract!.kinds.TOY_LISTEN, values: [4000n] });
  t.event({ kind: toyTuner.contract!.kinds.TOY_LISTEN, values: [10n] });
  assert.deepEqual(t.ctx.proposals.map((p) => [p.tuner, p.sysctl, p.from, p.to]), [
    ["toy", "net.core.somaxconn", [4096], [5120]],
  ]);
  const { object, writes } = fakeObject();
  t.tuner.configure?.(object);
  const min = toyTuner.contract!.params.min_backlog.offset;
  assert.equal(new DataView(writes.get("bpfp_config")!.buffer).getBigUint64(min, true), 128n);
});
