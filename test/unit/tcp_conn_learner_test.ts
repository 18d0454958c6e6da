import assert from "node:assert/strict";
import {
  candidates,
  CongestionLearner,
  connectionCost,
  type ConnSample,
  deliveryRate,
  formatAddress,
  LOSS_COST,
  ranWith,
  rlUpdate,
  SAMPLE_FLAG,
} from "../../src/tuners/tcp_conn_learner.ts";

const AVAILABLE = ["reno", "cubic", "bbr"];

function sample(over: Partial<ConnSample> = {}): ConnSample {
  return {
    netns: "global",
    addr: "10.0.0.2",
    initial: "cubic",
    flags: 0,
    minRttUs: 100,
    rate: 1_000_000,
    retrans: 0,
    segsOut: 1000,
    ...over,
  };
}

function learner(random = () => 0, capacity = 16) {
  return new CongestionLearner({ available: AVAILABLE, capacity, shift: 2, random });
}

Deno.test("rlUpdate: the first sample sets the value, later ones move a 1/2^shift of the way", () => {
  assert.equal(rlUpdate(0, 800, 2), 800);
  assert.equal(rlUpdate(800, 0, 2), 600);
  assert.equal(rlUpdate(600, 1000, 2), 700);
  assert.equal(rlUpdate(700, 700, 2), 700);
});

Deno.test("cost: RTT inflation plus rate shortfall in millionths, never negative", () => {
  const path = { minRttUs: 100, maxRate: 1000 };
  assert.equal(connectionCost({ minRttUs: 100, algMaxRate: 1000 }, path), 0);
  assert.equal(connectionCost({ minRttUs: 150, algMaxRate: 1000 }, path), 500_000);
  assert.equal(connectionCost({ minRttUs: 100, algMaxRate: 250 }, path), 750_000);
  assert.equal(connectionCost({ minRttUs: 200, algMaxRate: 500 }, path), 1_500_000);
  assert.equal(connectionCost({ minRttUs: 50, algMaxRate: 1000 }, { minRttUs: 0, maxRate: 0 }), 0);
});

Deno.test("candidates: what the kernel offers, never dctcp unless the path is ECN-clean", () => {
  assert.deepEqual(candidates(["reno", "cubic", "bbr"], false), ["cubic", "bbr", "reno"]);
  assert.deepEqual(candidates(["reno", "cubic", "dctcp", "bbr"], false), ["cubic", "bbr", "reno"]);
  assert.deepEqual(candidates(["reno", "cubic", "dctcp"], true), ["cubic", "reno", "dctcp"]);
  assert.deepEqual(candidates(["cubic", "prague", "bpf_dctcp"], false), ["cubic"]);
  const many = ["a", "b", "c", "d", "e", "f", "g", "h", "bbr", "cubic"];
  assert.deepEqual(candidates(many, false), ["cubic", "bbr", "a", "b", "c", "d", "e", "f"]);
});

Deno.test("no choice before the 4th connection to a path, then every untried algorithm first", () => {
  const l = learner(() => 0);
  for (let i = 0; i < 3; i++) assert.equal(l.observe(sample()).path.choice, null);
  const o = l.observe(sample());
  assert.equal(o.changed, true);
  // cubic was measured (cost 0: it is the path's best so far), bbr and reno are untried (0):
  // a three-way tie, broken by the injected random number.
  assert.ok(AVAILABLE.includes(o.path.choice!));
  assert.equal(o.path.algorithms.get("cubic")!.count, 4);
  assert.equal(o.path.instances, 4);
});

Deno.test("learns the algorithm with the lower RTT inflation and the higher delivery rate", () => {
  const l = learner(() => 0.99);
  // Slow and inflated with cubic, fast and tight with bbr, reno in between.
  const run = (alg: string, minRttUs: number, rate: number) =>
    l.observe(sample({ initial: alg, minRttUs, rate }));
  for (let i = 0; i < 6; i++) {
    run("cubic", 300, 400_000);
    run("bbr", 100, 1_000_000);
    run("reno", 200, 600_000);
  }
  const path = l.paths()[0];
  const m = (a: string) => path.algorithms.get(a)!.metric;
  assert.ok(
    m("bbr") < m("reno") && m("reno") < m("cubic"),
    `${m("bbr")} ${m("reno")} ${m("cubic")}`,
  );
  assert.equal(path.choice, "bbr");
  assert.ok(path.algorithms.get("bbr")!.greedy > 0);
});

Deno.test("a connection switched to BBR for loss is BBR's sample and counts against its start", () => {
  const l = learner(() => 0);
  const forced = sample({ initial: "cubic", flags: SAMPLE_FLAG.forced, retrans: 40 });
  assert.equal(ranWith(forced), "bbr");
  for (let i = 0; i < 4; i++) l.observe(forced);
  const path = l.paths()[0];
  assert.equal(path.forced, 4);
  assert.equal(path.ran.get("bbr"), 4);
  assert.equal(path.algorithms.get("bbr")!.count, 4);
  assert.equal(path.algorithms.get("cubic")!.metric, LOSS_COST);
  // reno is still untried (0), so it is tried next; cubic is not.
  assert.equal(path.choice, "bbr");
  const l2 = learner(() => 0.99);
  for (let i = 0; i < 4; i++) l2.observe(forced);
  assert.equal(l2.paths()[0].choice, "reno", "untried reno is next in line, never cubic");
});

Deno.test("advise mode: a would-be switch is counted, but the sample is the algorithm that ran", () => {
  const s = sample({ initial: "cubic", flags: SAMPLE_FLAG.forced | SAMPLE_FLAG.advise });
  assert.equal(ranWith(s), "cubic");
  const l = learner();
  l.observe(s);
  const path = l.paths()[0];
  assert.equal(path.forced, 1);
  assert.equal(path.algorithms.get("cubic")!.count, 1);
  assert.equal(path.algorithms.has("bbr"), false);
});

Deno.test("paths are keyed by remote address and namespace, not shared, and bounded (LRU)", () => {
  const l = learner(() => 0, 2);
  l.observe(sample({ addr: "10.0.0.2" }));
  l.observe(sample({ addr: "10.0.0.3" }));
  l.observe(sample({ addr: "10.0.0.2" })); // most recently used now
  const o = l.observe(sample({ addr: "10.0.0.4" }));
  assert.equal(o.evicted?.addr, "10.0.0.3");
  assert.equal(l.size, 2);
  assert.deepEqual(l.paths().map((p) => p.addr), ["10.0.0.2", "10.0.0.4"]);
  l.observe(sample({ addr: "10.0.0.4", netns: "ns:4026532000" }));
  assert.equal(l.paths().filter((p) => p.addr === "10.0.0.4").length, 2, "per namespace");
});

Deno.test("an algorithm that is not a candidate (dctcp on an unknown path) is not learned", () => {
  const l = new CongestionLearner({
    available: ["cubic", "dctcp"],
    capacity: 4,
    shift: 2,
    random: () => 0,
  });
  for (let i = 0; i < 5; i++) l.observe(sample({ initial: "dctcp" }));
  const path = l.paths()[0];
  assert.equal(path.algorithms.has("dctcp"), false);
  assert.equal(path.ran.get("dctcp"), 5);
  assert.equal(path.choice, "cubic");
});

Deno.test("delivery rate and address text", () => {
  assert.equal(deliveryRate(10, 1000, 1448), 14_480_000);
  assert.equal(deliveryRate(10, 0, 1448), 0);
  const v4 = new Uint8Array(16);
  v4.set([0xff, 0xff, 10, 77, 1, 2], 10);
  assert.equal(formatAddress(v4), "10.77.1.2");
  const v6 = new Uint8Array(16);
  v6.set([0x20, 0x01, 0x0d, 0xb8], 0);
  v6[15] = 1;
  assert.equal(formatAddress(v6), "2001:db8::1");
  const lo = new Uint8Array(16);
  lo[15] = 1;
  assert.equal(formatAddress(lo), "::1");
});
