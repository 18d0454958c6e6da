/**
 * tcp_conn's audit advice comes from the tuner's own rules (the loss rule, the learner's choice,
 * the ECN-clean candidate list), and becomes one finding per path with text values.
 */
import assert from "node:assert/strict";
import {
  CONNECTION_FINDINGS,
  connectionFindings,
  MAX_PATH_FINDINGS,
} from "../../src/audit/connection_findings.ts";
import { CONGESTION_SETTING, pathAdvice } from "../../src/tuners/tcp_conn_advice.ts";
import {
  candidates,
  CongestionLearner,
  type ConnSample,
  type PathRecord,
  SAMPLE_FLAG,
} from "../../src/tuners/tcp_conn_learner.ts";
import type { ConnectionAdvice } from "../../src/tuning/tuner.ts";

const AVAILABLE = ["reno", "cubic", "bbr", "dctcp"];

function learner(random = () => 0) {
  return new CongestionLearner({ available: AVAILABLE, capacity: 16, shift: 2, random });
}

function sample(over: Partial<ConnSample> = {}): ConnSample {
  return {
    netns: "global",
    addr: "10.0.0.2",
    initial: "reno",
    flags: SAMPLE_FLAG.advise,
    minRttUs: 100,
    rate: 1_000_000,
    retrans: 0,
    segsOut: 1000,
    ...over,
  };
}

/** The path after `n` connections, every `lossyEvery`-th one over the loss threshold. */
function observed(l: CongestionLearner, n: number, lossyEvery = 0, addr = "10.0.0.2") {
  let path: PathRecord | null = null;
  for (let i = 0; i < n; i++) {
    const lossy = lossyEvery > 0 && i % lossyEvery === 0;
    path = l.observe(sample({
      addr,
      flags: SAMPLE_FLAG.advise | (lossy ? SAMPLE_FLAG.forced : 0),
      retrans: lossy ? 40 : 0,
    })).path;
  }
  return path!;
}

Deno.test("advice: a lossy path is the loss rule's: switch to bbr, with the ratio and what ran", () => {
  const l = learner();
  const path = observed(l, 10, 2);
  const a = pathAdvice(path, l.candidatesFor(path));
  assert.ok(a);
  assert.equal(a.rule, "lossy-path");
  assert.equal(a.current, "reno");
  assert.equal(a.recommended, "bbr");
  assert.match(a.reason, /5 of 10 sampled connections retransmitted more than 1\/64/);
  assert.match(
    a.observations.join("\n"),
    /retransmitted 2\.00 % of the segments sent \(200 of 10000\)/,
  );
  assert.match(
    a.observations.join("\n"),
    /10 connections to 10\.0\.0\.2, 10 sampled \(they ran 10 reno\)/,
  );
});

Deno.test("advice: a few switched connections do not make a path lossy (its ratio under 1/64)", () => {
  const l = learner();
  // 2 of 100 over the line (40 retransmissions each), 0.08 % of the path's segments.
  const path = observed(l, 100, 50);
  assert.equal(path.forced, 2);
  const a = pathAdvice(path, l.candidatesFor(path));
  assert.notEqual(a?.rule, "lossy-path", JSON.stringify(a));
});

Deno.test("advice: a clean path gets the learner's choice only when it differs from what ran", () => {
  const l = learner();
  const path = observed(l, 6);
  // Untried algorithms count as 0: the learner's choice is an untried candidate, not reno.
  assert.ok(path.choice !== null && path.choice !== "reno");
  const a = pathAdvice(path, l.candidatesFor(path));
  assert.ok(a);
  assert.equal(a.rule, "learned-choice");
  assert.equal(a.recommended, path.choice);
  assert.match(a.reason, /would choose .* after 6 connections/);
  // Too few connections to choose: nothing to say.
  const young = observed(learner(), 2, 0, "10.0.0.3");
  assert.equal(pathAdvice(young, candidates(AVAILABLE, false)), null);
  // The choice is what ran: nothing to say.
  assert.equal(pathAdvice({ ...path, choice: "reno" }, l.candidatesFor(path)), null);
});

Deno.test("advice: dctcp is never recommended for a path not known to be ECN-clean", () => {
  const l = learner();
  const path = observed(l, 6);
  assert.ok(!l.candidatesFor(path).includes("dctcp"), "the learner never offers it there");
  const forced = { ...path, choice: "dctcp" };
  assert.equal(pathAdvice(forced, l.candidatesFor(path)), null);
  // An ECN-clean path may get it: the same rule, the other way round.
  const clean = { ...forced, ecnClean: true };
  assert.equal(pathAdvice(clean, l.candidatesFor(clean))?.recommended, "dctcp");
});

function advice(remote: string, connections: number, rule = "lossy-path"): ConnectionAdvice {
  return {
    rule,
    scenario: "specify TCP congestion control algorithm",
    setting: CONGESTION_SETTING,
    netns: "host",
    remote,
    current: "reno",
    recommended: "bbr",
    reason: "would switch them to bbr",
    observations: ["retransmitted 2.00 %"],
    connections,
  };
}

Deno.test("findings: one per path, text values, no sysctl -w line, evidence from the tuner", () => {
  const { findings, omitted } = connectionFindings([advice("10.0.0.2", 30)]);
  assert.equal(omitted, 0);
  assert.equal(findings.length, 1);
  const [f] = findings;
  assert.equal(f.id, CONNECTION_FINDINGS["lossy-path"].id);
  assert.equal(f.severity, "warning");
  assert.equal(f.tunable, CONGESTION_SETTING);
  assert.equal(f.remote, "10.0.0.2");
  assert.equal(f.current, "reno");
  assert.equal(f.recommended, "bbr");
  assert.equal(f.sysctlW, null);
  assert.match(f.applyHint ?? "", /--apply leaves it/);
  assert.equal(f.evidence[0].observed, "tcp_conn: would switch them to bbr");
  assert.equal(
    connectionFindings([advice("10.0.0.4", 9, "learned-choice")]).findings[0].severity,
    "info",
  );
});

Deno.test("findings: bounded to the busiest paths; the rest are counted", () => {
  const many = Array.from({ length: MAX_PATH_FINDINGS + 5 }, (_, i) => advice(`10.0.1.${i}`, i));
  const { findings, omitted } = connectionFindings(many);
  assert.equal(findings.length, MAX_PATH_FINDINGS);
  assert.equal(omitted, 5);
  assert.equal(findings[0].remote, `10.0.1.${MAX_PATH_FINDINGS + 4}`);
  assert.ok(!findings.some((f) => f.remote === "10.0.1.0"));
});
