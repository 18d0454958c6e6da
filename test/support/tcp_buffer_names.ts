/** The tcp_buffer rules tests' shared pieces: bpftune's scenario names, verbatim, and changeOf. */
import assert from "node:assert/strict";
import type { Decision, RuleProposal } from "../../src/tuning/proposal.ts";

/** bpftune's tcp_buffer scenario names, typed out (not taken from the table under test). */
export const NAME = {
  increase: "need to increase TCP buffer size(s)",
  decrease: "need to decrease TCP buffer size(s)",
  latency: "need to decrease TCP buffer size due to latency",
  pressure: "approaching TCP memory pressure",
  exhaustion: "approaching TCP memory exhaustion",
  moderate: "match receive buffer size with throughput needs",
  lowEnter: "set tunable on entering low-memory state",
  lowLeave: "unset tunable set earlier in low-memory state",
  synIncrease: "increase maximum syn backlog under load since syncookies are disabled",
  synDecrease: "decrease maximum syn backlog due to large numbers of uncompleted connections",
  cookiesOn: "enable syncookies as furthern SYN backlog increases do not help",
  cookiesOff: "disable syncookies as they are ineffective",
};

/** The proposal of a "change" decision; fails the test on anything else. */
export function changeOf(d: Decision | null | undefined): RuleProposal {
  assert.ok(d, "expected a decision, got none");
  assert.equal(d.kind, "change", `expected a change, got ${JSON.stringify(d)}`);
  return (d as { proposal: RuleProposal }).proposal;
}
