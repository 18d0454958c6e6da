/** The SYN-backlog glue on a fake context: SYN-queue events and counters in, proposals out. */
import assert from "node:assert/strict";
import { contract } from "../../dist/bpf/tcp_buffer.contract.ts";
import { FAULT_MEMORY_PRESSURE, tcpBufferTuner } from "../../src/tuners/tcp_buffer.ts";
import type { MemoryState } from "../../src/tuners/tcp_buffer_rules.ts";
import {
  MAX_SYN_NAMESPACES,
  SynBacklogWatch,
  type SynQueueFull,
} from "../../src/tuners/tcp_syn_backlog.ts";
import { NO_SYN_COUNTERS, type SynCounters } from "../../src/tuners/tcp_syn_backlog_rules.ts";
import { FakeTunerContext, startTuner } from "../support/fake_context.ts";

const BACKLOG = "net.ipv4.tcp_max_syn_backlog", COOKIES = "net.ipv4.tcp_syncookies";
const NS = "ns:4026532001";
const FULL: SynQueueFull = {
  qlen: 12,
  max_ack_backlog: 4096,
  max_syn_backlog: 16,
  syncookies: 0,
  port: 8080,
};

function watch(opts: { memory?: MemoryState; cookies?: number; backlog?: number } = {}) {
  const ctx = new FakeTunerContext("tcp_buffer");
  ctx.set(BACKLOG, [opts.backlog ?? 256], NS).set(COOKIES, [opts.cookies ?? 0], NS);
  let counters: SynCounters = {
    ...NO_SYN_COUNTERS,
    passiveOpens: 0,
    listenDrops: 0,
    listenOverflows: 0,
  };
  const w = new SynBacklogWatch({
    ctx,
    rate: 4,
    memory: () => opts.memory ?? "normal",
    counters: () => counters,
  });
  const set = (c: Partial<SynCounters>) => counters = { ...counters, ...c };
  return { ctx, w, set };
}

const summarise = (ctx: FakeTunerContext) =>
  ctx.proposals.map((p) => [p.netns, p.sysctl, p.from[0], p.to[0]]);

Deno.test("SYN queue overflow grows tcp_max_syn_backlog in the listener's namespace", () => {
  const { ctx, w } = watch();
  w.onQueueFull(NS, FULL, 3);
  assert.deepEqual(summarise(ctx), [[NS, BACKLOG, 256, 320]]);
  assert.deepEqual(w.metrics().map((m) => [m.name, m.labels, m.value]), [
    ["tcp_buffer_syn_queue_overflows", { netns: NS }, 3],
  ]);
  assert.deepEqual(w.summary(), [`# tcp_buffer: 3 SYN queue overflows in 1 namespace(s) (${NS})`]);
});

Deno.test("SYN queue overflow under memory pressure turns syncookies on, then leaves it", () => {
  const { ctx, w, set } = watch({ memory: "near-pressure" });
  w.onQueueFull(NS, FULL, 1);
  assert.deepEqual(summarise(ctx), [[NS, COOKIES, 0, 1]]);
  // cookies answer floods now; the next overflow changes nothing while they work
  set({ syncookiesFailed: 10, syncookiesRecv: 5 });
  w.onQueueFull(NS, { ...FULL, syncookies: 1 }, 1);
  assert.equal(ctx.proposals.length, 1);
});

Deno.test("cookies we turned on are turned off once 1024 failed since then and none validated", () => {
  const { ctx, w, set } = watch({ memory: "near-pressure" });
  set({ syncookiesFailed: 50_000, syncookiesRecv: 7 }); // since boot: not ours to judge
  w.onQueueFull(NS, FULL, 1);
  set({ syncookiesFailed: 51_023 });
  w.onQueueFull(NS, FULL, 1);
  assert.equal(ctx.proposals.length, 1, "1023 failures since: not yet");
  set({ syncookiesFailed: 51_024 });
  w.onQueueFull(NS, FULL, 1);
  assert.deepEqual(summarise(ctx), [[NS, COOKIES, 0, 1], [NS, COOKIES, 1, 0]]);
  assert.match(ctx.proposals[1].reason, /^Due to receiving 1024 invalid syncookies and no valid/);
});

Deno.test("cookies the admin or the kernel default turned on are never turned off", () => {
  const { ctx, w, set } = watch({ cookies: 1 });
  set({ syncookiesFailed: 99_999, syncookiesRecv: 0 });
  for (let i = 0; i < 3; i++) w.onQueueFull(NS, FULL, 1);
  assert.deepEqual(ctx.proposals, []);
});

Deno.test("floods without accepted connections shrink the backlog: PassiveOpens is counted", () => {
  const big = { ...FULL, max_ack_backlog: 65535 };
  const attack = watch({ backlog: 4096 });
  for (let i = 0; i < 12; i++) {
    attack.ctx.clock += 500;
    attack.w.onQueueFull(NS, big, 1);
  }
  const scenarios = attack.ctx.proposals.map((p) => p.scenario);
  // ten samples before the correlation counts (bpftune's CORR_MIN_SAMPLES)
  assert.equal(scenarios.length, 12, JSON.stringify(scenarios));
  assert.equal(new Set(scenarios.slice(0, 9)).size, 1);
  assert.equal(
    scenarios[0],
    "increase maximum syn backlog under load since syncookies are disabled",
  );
  assert.equal(
    scenarios.at(-1),
    "decrease maximum syn backlog due to large numbers of uncompleted connections",
  );

  // the same floods while connections are accepted (bpftune counted none, so it shrank here too)
  const busy = watch({ backlog: 4096 });
  for (let i = 0; i < 12; i++) {
    busy.ctx.clock += 500;
    busy.set({ passiveOpens: 100 * (i + 1) + (i % 3) });
    busy.w.onQueueFull(NS, big, 1);
  }
  assert.ok(
    busy.ctx.proposals.every((p) => p.to[0] > p.from[0]),
    JSON.stringify(summarise(busy.ctx)),
  );
});

Deno.test("growth stops where 3/4 of tcp_max_syn_backlog covers the listen backlog", () => {
  const { ctx, w } = watch({ backlog: 1000 });
  w.onQueueFull(NS, { ...FULL, max_ack_backlog: 128 }, 1);
  assert.deepEqual(ctx.proposals, []);
  assert.deepEqual(ctx.ceilings, [{ sysctl: BACKLOG, netns: NS, value: [1000], ceiling: 171 }]);
});

Deno.test("without the hook, SYN-queue drops in the watched namespace are polled once a second", () => {
  const { ctx, w, set } = watch();
  ctx.watched = [NS];
  w.hooked = false;
  w.onTick(); // first reading: the baseline
  set({ listenDrops: 40, listenOverflows: 40 }); // accept-queue overflows only
  ctx.clock += 1000;
  w.onTick();
  assert.deepEqual(ctx.proposals, []);
  set({ listenDrops: 45 });
  ctx.clock += 500;
  w.onTick(); // too soon: not read
  assert.deepEqual(ctx.proposals, []);
  ctx.clock += 500;
  w.onTick();
  assert.deepEqual(summarise(ctx), [[NS, BACKLOG, 256, 320]]);
  assert.equal(w.metrics()[0].value, 5);
});

Deno.test("the namespaces remembered are bounded, least recently flooded forgotten first", () => {
  const { ctx, w } = watch();
  for (let i = 0; i <= MAX_SYN_NAMESPACES; i++) {
    ctx.set(BACKLOG, [256], `ns:${i}`);
    w.onQueueFull(`ns:${i}`, FULL, 1);
  }
  const names = w.metrics().map((m) => m.labels.netns);
  assert.equal(names.length, MAX_SYN_NAMESPACES);
  assert.ok(!names.includes("ns:0") && names.includes(`ns:${MAX_SYN_NAMESPACES}`));
});

Deno.test("tcp_buffer: a SYN_QUEUE_FULL event reaches the SYN rules; the fault simulates pressure", () => {
  const t = startTuner(tcpBufferTuner);
  t.ctx.set("net.ipv4.tcp_mem", [2 ** 40, 2 ** 41, 2 ** 42]);
  t.ctx.set(BACKLOG, [16], NS).set(COOKIES, [0], NS);
  const values = [12n, 1024n, 16n, 0n, 8080n];
  const netns = 4026532001n;
  t.event({ kind: contract.kinds.TB_SYN_QUEUE_FULL, netns, values });
  assert.deepEqual(summarise(t.ctx), [[NS, BACKLOG, 16, 20]]);
  t.ctx.faults.add(FAULT_MEMORY_PRESSURE);
  t.event({ kind: contract.kinds.TB_SYN_QUEUE_FULL, netns, values });
  assert.deepEqual(summarise(t.ctx).at(-1), [NS, COOKIES, 0, 1]);
});
