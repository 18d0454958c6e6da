/**
 * The net_buffer tuner's glue on the fake TunerContext: events and softnet_stat readings in,
 * proposals out (growth, the flow-limit mask, the correlation shrink, the poll fallback, advise
 * mode), plus its contract with the compiled object.
 */
import assert from "node:assert/strict";
import { checkTunerContract } from "../../src/tuning/contract_check.ts";
import { decodeEvent, encodeEvent } from "../../src/tuning/event.ts";
import { normalizeTunerName } from "../../src/tuning/names.ts";
import { NetBufferTuner, netBufferTuner, SOFTNET_POLL_MS } from "../../src/tuners/net_buffer.ts";
import { NB_SYSCTL } from "../../src/tuners/net_buffer_rules.ts";
import type { SoftnetRow } from "../../src/kernel/proc/softnet.ts";
import { SchedulerWait } from "../../src/kernel/proc/sched_wait.ts";
import { FakeTunerContext } from "../support/fake_context.ts";

const KIND = netBufferTuner.contract!.kinds;

function row(cpu: number, dropped: number, timeSqueeze: number): SoftnetRow {
  return { cpu, processed: 0, dropped, timeSqueeze, flowLimitCount: 0 };
}

/** A tuner with softnet_stat and CPU pressure under the test's control. */
function setup(opts: { hooks?: string[]; advise?: boolean; release?: string } = {}) {
  const ctx = new FakeTunerContext("net_buffer");
  ctx.advise = opts.advise ?? false;
  ctx.set(NB_SYSCTL.maxBacklog, [8])
    .set(NB_SYSCTL.flowLimit, [0, 0])
    .set(NB_SYSCTL.budget, [300])
    .set(NB_SYSCTL.budgetUsecs, [8000])
    .set(NB_SYSCTL.highOrderAllocDisable, [0]);
  const softnet = { rows: [row(0, 0, 0), row(1, 0, 0)] };
  const psi = { total: 0 };
  const wait = new SchedulerWait((p) =>
    p === "/proc/pressure/cpu" ? `some avg10=0 total=${psi.total}\n` : null
  );
  const tuner = new NetBufferTuner(ctx, {
    softnet: () => softnet.rows.map((r) => ({ ...r })),
    wait,
    release: opts.release ?? "6.18.0",
  });
  tuner.onAttached(opts.hooks ?? ["backlog_drop", "napi_poll"]);
  const event = (kind: number, values: bigint[], count = 1) =>
    tuner.onEvent(decodeEvent(encodeEvent({ tuner: 8, kind, values, count })));
  return { ctx, tuner, softnet, psi, event };
}

const changes = (ctx: FakeTunerContext) => ctx.proposals.map((p) => [p.sysctl, p.from, p.to]);

Deno.test("net_buffer: the contract check passes; bpftune's .so name selects it", () => {
  assert.deepEqual(checkTunerContract(netBufferTuner), []);
  assert.equal(normalizeTunerName("net_buffer_tuner.so"), "net_buffer");
  assert.equal(netBufferTuner.id, 8);
});

Deno.test("net_buffer: backlog drops grow netdev_max_backlog and set that CPU's flow limit", () => {
  const t = setup();
  t.event(KIND.NB_BACKLOG_DROP, [33n], 40);
  assert.deepEqual(changes(t.ctx), [
    [NB_SYSCTL.maxBacklog, [8], [16]],
    [NB_SYSCTL.flowLimit, [0, 0], [2, 0]],
  ]);
  // The flow limit is already on for CPU 33: only the backlog grows again.
  t.ctx.clock += 1000;
  t.event(KIND.NB_BACKLOG_DROP, [33n], 40);
  assert.deepEqual(changes(t.ctx).slice(2), [[NB_SYSCTL.maxBacklog, [16], [32]]]);
});

Deno.test("net_buffer: the flow limit goes to the CPU whose backlog dropped (RPS), per softnet_stat", () => {
  const t = setup();
  t.softnet.rows[1].dropped = 9; // CPU 0 ran the hook, CPU 1's backlog was full
  t.event(KIND.NB_BACKLOG_DROP, [0n], 9);
  assert.deepEqual(changes(t.ctx)[1], [NB_SYSCTL.flowLimit, [0, 0], [0, 2]]);
});

Deno.test("net_buffer: bpftune's threshold, 1/32 of the backlog per minute, gates growth", () => {
  const t = setup();
  t.ctx.set(NB_SYSCTL.maxBacklog, [1000]);
  t.event(KIND.NB_BACKLOG_DROP, [0n], 20);
  assert.equal(t.ctx.proposals.length, 0);
  t.ctx.clock += 30_000;
  t.event(KIND.NB_BACKLOG_DROP, [0n], 11); // 31 in the last minute
  assert.deepEqual(changes(t.ctx)[0], [NB_SYSCTL.maxBacklog, [1000], [2000]]); // 31 drops: 4 steps
  // The window restarted with the growth; drops older than a minute do not count.
  t.ctx.clock += 61_000;
  t.event(KIND.NB_BACKLOG_DROP, [0n], 30);
  assert.equal(t.ctx.proposals.filter((p) => p.sysctl === NB_SYSCTL.maxBacklog).length, 1);
});

Deno.test("net_buffer: a full NAPI poll with time_squeeze risen grows budget and usecs", () => {
  const t = setup();
  t.event(KIND.NB_NAPI_FULL, [0n, 64n, 64n]);
  assert.equal(t.ctx.proposals.length, 0, "no squeeze since the baseline: nothing");
  t.softnet.rows[1].timeSqueeze = 1;
  t.ctx.clock += 1000;
  t.event(KIND.NB_NAPI_FULL, [1n, 64n, 64n]);
  assert.deepEqual(changes(t.ctx), [
    [NB_SYSCTL.budget, [300], [375]],
    [NB_SYSCTL.budgetUsecs, [8000], [10000]],
  ]);
  assert.match(t.ctx.proposals[0].reason, /To maximize # packets processed per NAPI cycle/);
});

Deno.test("net_buffer: scheduler wait rising with the budget shrinks it (correlation)", () => {
  const t = setup();
  t.ctx.set(NB_SYSCTL.budget, [300]);
  let squeeze = 0;
  // Each round: a squeeze, the budget grows, and tasks wait longer in proportion.
  for (let i = 0; i < 14; i++) {
    squeeze += 1;
    t.softnet.rows[0].timeSqueeze = squeeze;
    const budget = t.ctx.read(NB_SYSCTL.budget, "global")![0];
    t.psi.total += budget * 100; // µs waited per second, proportional to the budget
    t.ctx.clock += 1000;
    t.event(KIND.NB_NAPI_FULL, [0n, 64n, 64n]);
  }
  const last = t.ctx.proposals.at(-2)!;
  assert.equal(last.scenario, "need to decrease # of packets processed per NAPI poll");
  assert.ok(last.to[0] < last.from[0], JSON.stringify(last));
  const m = t.tuner.metrics().find((x) => x.name === "net_buffer_scheduler_wait_percent");
  assert.ok(m && m.value > 0);
});

Deno.test("net_buffer: without hooks, softnet_stat is polled every 2 s for drops and squeezes", () => {
  const t = setup({ hooks: [] });
  t.tuner.onTick();
  assert.equal(t.ctx.proposals.length, 0);
  t.softnet.rows[1].dropped = 5;
  t.softnet.rows[0].timeSqueeze = 2;
  t.ctx.clock += 100;
  t.tuner.onTick();
  assert.equal(t.ctx.proposals.length, 0, "bounded: not before the poll interval");
  t.ctx.clock += SOFTNET_POLL_MS;
  t.tuner.onTick();
  assert.deepEqual(changes(t.ctx), [
    [NB_SYSCTL.maxBacklog, [8], [14]], // 5 drops: three steps
    [NB_SYSCTL.flowLimit, [0, 0], [0, 2]],
    [NB_SYSCTL.budget, [300], [450]], // 2 squeezes: two steps
    [NB_SYSCTL.budgetUsecs, [8000], [12000]],
  ]);
  assert.match(t.tuner.summary().join("\n"), /polls of \/proc\/net\/softnet_stat/);
});

Deno.test("net_buffer: high_order_alloc_disable=1 is reset at start on >= 5.14 only", () => {
  for (const [release, expect] of [["6.1.0", [[1], [0]]], ["5.10.0", null]] as const) {
    const ctx = new FakeTunerContext("net_buffer");
    ctx.set(NB_SYSCTL.highOrderAllocDisable, [1]);
    const tuner = new NetBufferTuner(ctx, {
      softnet: () => null,
      wait: new SchedulerWait(() => null),
      release,
    });
    tuner.onAttached([]);
    const p = ctx.proposals.find((x) => x.sysctl === NB_SYSCTL.highOrderAllocDisable);
    assert.deepEqual(p ? [p.from, p.to] : null, expect, release);
    assert.match(ctx.lines.map((l) => l.msg).join("\n"), /no scheduler wait signal/);
  }
});

Deno.test("net_buffer: advise mode proposes without changing the live values", () => {
  const t = setup({ advise: true });
  t.event(KIND.NB_BACKLOG_DROP, [0n], 10);
  assert.deepEqual(changes(t.ctx)[0], [NB_SYSCTL.maxBacklog, [8], [16]]);
  assert.deepEqual(t.ctx.read(NB_SYSCTL.maxBacklog, "global"), [8]);
});

Deno.test("net_buffer: metrics and summary count what was seen", () => {
  const t = setup();
  t.event(KIND.NB_BACKLOG_DROP, [0n], 7);
  const byName = Object.fromEntries(t.tuner.metrics().map((m) => [m.name, m.value]));
  assert.equal(byName.net_buffer_backlog_drops, 7);
  assert.match(t.tuner.summary()[0], /7 backlog drops/);
});

Deno.test("net_buffer: bpftune's admin-disable list (§2.11) is what the override detector watches", async () => {
  const { TUNERS } = await import("../../src/tuners/registry.ts");
  const managed = new Set(TUNERS.flatMap((t) => t.tunables.map((x) => x.sysctl)));
  for (
    const name of [
      "net.core.netdev_max_backlog",
      "net.core.flow_limit_cpu_bitmap",
      "net.core.netdev_budget",
      "net.core.netdev_budget_usecs",
      "net.core.high_order_alloc_disable",
    ]
  ) {
    assert.ok(managed.has(name), name);
    assert.ok(netBufferTuner.tunables.some((t) => t.sysctl === name), name);
  }
});
