import assert from "node:assert/strict";
import {
  failRatePercent,
  FRAG_SYSCTL,
  fragDecision,
  type FragInput,
  fragNearlyFull,
  IP_FRAG_SCENARIOS,
  IP_FRAG_THRESH_CEILING,
  IP_FRAG_TUNABLES,
  nextPollDelay,
  POLL_MAX_MS,
  POLL_MIN_MS,
} from "../../src/tuners/ip_frag_rules.ts";

const base: FragInput = {
  sysctl: FRAG_SYSCTL.v4,
  high: 4194304,
  low: 3145728,
  memory: 4194304,
  failuresCorrelate: false,
  rate: 4,
};

Deno.test("bpftune's tunables and scenario names; IPv6 optional", () => {
  assert.deepEqual(IP_FRAG_TUNABLES.map((t) => [t.sysctl, !!t.optional]), [
    ["net.ipv4.ipfrag_high_thresh", false],
    ["net.ipv6.ip6frag_high_thresh", true],
  ]);
  assert.deepEqual(IP_FRAG_SCENARIOS.map((s) => s.name), [
    "need to increase IP fragmentation high threshold",
    "need to decrease IP fragmentation high threshold",
  ]);
});

Deno.test("fragment memory near the threshold grows it with bpftune's line", () => {
  const d = fragDecision(base);
  assert.equal(d?.kind, "change");
  if (d?.kind !== "change") return;
  assert.deepEqual([d.proposal.from, d.proposal.to], [[4194304], [5242880]]);
  assert.equal(d.proposal.scenario, "need to increase IP fragmentation high threshold");
  assert.equal(
    d.proposal.reason,
    "Due to approaching fragmentation maximum threshold change net.ipv4.ipfrag_high_thresh " +
      "from (4194304) -> (5242880)",
  );
});

Deno.test("memory well below the threshold: nothing", () => {
  assert.equal(fragDecision({ ...base, memory: 1_000_000 }), null);
  assert.equal(fragNearlyFull(0, 4194304, 4), false);
  assert.equal(fragNearlyFull(3_200_000, 4194304, 4), true);
  assert.equal(fragNearlyFull(100, 0, 4), false);
});

Deno.test("growth stops at the 64 MiB ceiling and says so", () => {
  const near = fragDecision({ ...base, high: 60_000_000, memory: 60_000_000 });
  assert.ok(near?.kind === "change" && near.proposal.to[0] === IP_FRAG_THRESH_CEILING);
  assert.deepEqual(fragDecision({ ...base, high: IP_FRAG_THRESH_CEILING, memory: 67_000_000 }), {
    kind: "at-ceiling",
    sysctl: FRAG_SYSCTL.v4,
    value: [IP_FRAG_THRESH_CEILING],
    ceiling: IP_FRAG_THRESH_CEILING,
  });
});

Deno.test("failures correlating with growth shrink the threshold, never below low_thresh", () => {
  const d = fragDecision({ ...base, failuresCorrelate: true });
  assert.ok(d?.kind === "change");
  if (d?.kind !== "change") return;
  assert.equal(d.proposal.scenario, "need to decrease IP fragmentation high threshold");
  assert.deepEqual(d.proposal.to, [3145728]);
  const floor = fragDecision({ ...base, failuresCorrelate: true, low: 4000000 });
  assert.ok(floor?.kind === "change" && floor.proposal.to[0] === 4000000);
  assert.equal(fragDecision({ ...base, failuresCorrelate: true, low: base.high }), null);
});

Deno.test("failure rate never divides by zero (bpftune bug)", () => {
  assert.equal(failRatePercent(5, 0), 0);
  assert.equal(failRatePercent(0, 0), 0);
  assert.equal(failRatePercent(25, 100), 25);
  assert.equal(failRatePercent(300, 100), 100);
  assert.equal(failRatePercent(-1, 100), 0);
});

Deno.test("the poll runs at 1 Hz while fragments are queued and backs off to 1/8 Hz", () => {
  assert.equal(nextPollDelay(POLL_MAX_MS, true), POLL_MIN_MS);
  let d = POLL_MIN_MS;
  const seen = [];
  for (let i = 0; i < 5; i++) seen.push(d = nextPollDelay(d, false));
  assert.deepEqual(seen, [2000, 4000, 8000, 8000, 8000]);
  assert.equal(nextPollDelay(NaN, false), 2000);
});

Deno.test("the poll's evidence: fragments refused (not timed out) count as the threshold reached", () => {
  const d = fragDecision({ ...base, high: 24576, low: 16384, memory: 0, refused: 270 });
  assert.ok(d?.kind === "change" && d.proposal.to[0] === 30720);
  assert.equal(fragDecision({ ...base, memory: 0, refused: 0 }), null);
  assert.equal(fragDecision({ ...base, memory: 0, refused: -3 }), null);
});
