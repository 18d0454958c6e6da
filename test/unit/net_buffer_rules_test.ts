import assert from "node:assert/strict";
import {
  backlogDecision,
  backlogDropThreshold,
  BUDGET_DOMAIN,
  BUDGET_USECS_DOMAIN,
  budgetDecisions,
  type BudgetInput,
  type Decision,
  flowLimitDecision,
  highOrderAllocDecision,
  kernelAtLeast,
  MAX_BACKLOG_DOMAIN,
  NB_SYSCTL,
  NET_BUFFER_SCENARIOS,
  netBufferTunables,
} from "../../src/tuners/net_buffer_rules.ts";
import {
  parseCpuPressureTotal,
  parseSchedstatTotals,
  pressureWaitPercent,
  schedstatWaitPercent,
  SchedulerWait,
} from "../../src/kernel/proc/sched_wait.ts";

function changed(d: Decision | null | undefined): [string, number[], number[]] | null {
  return d?.kind === "change" ? [d.proposal.sysctl, d.proposal.from, d.proposal.to] : null;
}

Deno.test("backlog: drops grow netdev_max_backlog, more drops further, at most 4x", () => {
  const one = backlogDecision({ maxBacklog: 1000, drops: 1, rate: 4 });
  assert.deepEqual(changed(one), [NB_SYSCTL.maxBacklog, [1000], [1250]]);
  assert.equal(
    one?.kind === "change" && one.proposal.reason,
    "Due to excessive drops, change net.core.netdev_max_backlog from (1000) -> (1250)",
  );
  assert.equal(one?.kind === "change" && one.proposal.scenario, NET_BUFFER_SCENARIOS[0].name);
  assert.deepEqual(changed(backlogDecision({ maxBacklog: 1000, drops: 12, rate: 4 }))![2], [2000]);
  assert.deepEqual(changed(backlogDecision({ maxBacklog: 1000, drops: 1e6, rate: 4 }))![2], [2000]);
  // A slower learning rate takes smaller steps.
  assert.deepEqual(changed(backlogDecision({ maxBacklog: 1000, drops: 1, rate: 0 }))![2], [1015]);
  // A tiny backlog still grows.
  assert.deepEqual(changed(backlogDecision({ maxBacklog: 1, drops: 1, rate: 4 }))![2], [2]);
  assert.deepEqual(changed(backlogDecision({ maxBacklog: 8, drops: 100, rate: 4 }))![2], [16]);
});

Deno.test("backlog: no drops, bad input: nothing; bounded by the domain's ceiling", () => {
  assert.equal(backlogDecision({ maxBacklog: 1000, drops: 0, rate: 4 }), null);
  assert.equal(backlogDecision({ maxBacklog: -1, drops: 5, rate: 4 }), null);
  assert.equal(backlogDecision({ maxBacklog: 1000, drops: NaN, rate: 4 }), null);
  const near = backlogDecision({ maxBacklog: 200000, drops: 100, rate: 4 });
  assert.deepEqual(changed(near)![2], [MAX_BACKLOG_DOMAIN.max]);
  assert.deepEqual(backlogDecision({ maxBacklog: 262144, drops: 5, rate: 4 }), {
    kind: "at-ceiling",
    sysctl: NB_SYSCTL.maxBacklog,
    value: [262144],
    ceiling: 262144,
  });
  assert.deepEqual(
    backlogDecision({ maxBacklog: 400000, drops: 5, rate: 4 })?.kind,
    "at-ceiling",
    "an admin value above the ceiling is never lowered by growth",
  );
});

Deno.test("backlog: bpftune's threshold is 1/32 of the backlog per minute, at least one drop", () => {
  assert.equal(backlogDropThreshold(1000), 31);
  assert.equal(backlogDropThreshold(8), 1);
  assert.equal(backlogDropThreshold(1), 1);
});

Deno.test("flow limit: the drop's CPU is added to the hex mask, CPU 10 and CPUs >= 32", () => {
  const d = flowLimitDecision([0], [10]);
  assert.deepEqual(changed(d), [NB_SYSCTL.flowLimit, [0], [1024]]);
  assert.equal(
    d?.kind === "change" && d.proposal.reason,
    "To prioritize small flows, change net.core.flow_limit_cpu_bitmap from (0) -> (400) " +
      "(CPUs none -> 10)",
  );
  assert.equal(d?.kind === "change" && d.proposal.scenario, "need to set per-cpu bitmap value");
  const high = flowLimitDecision([0, 0, 1], [70]);
  assert.deepEqual(changed(high)![2], [64, 0, 1]);
  assert.match((high as { proposal: { reason: string } }).proposal.reason, /CPUs 0 -> 0,70/);
  assert.equal(flowLimitDecision([1024], [10]), null, "already on");
  assert.deepEqual(changed(flowLimitDecision([0, 1], [0, 1, 33])), [
    NB_SYSCTL.flowLimit,
    [0, 1],
    [2, 3],
  ]);
  assert.equal(flowLimitDecision([0], [32]), null, "no such CPU in a one-word mask");
});

const budget: BudgetInput = {
  budget: 300,
  budgetUsecs: 8000,
  squeezes: 1,
  waitCorrelates: false,
  rate: 4,
};

Deno.test("budget: squeezes grow netdev_budget then netdev_budget_usecs, bpftune's wording", () => {
  const ds = budgetDecisions(budget);
  assert.deepEqual(ds.map(changed), [
    [NB_SYSCTL.budget, [300], [375]],
    [NB_SYSCTL.budgetUsecs, [8000], [10000]],
  ]);
  assert.equal(
    ds[0].kind === "change" && ds[0].proposal.reason,
    "To maximize # packets processed per NAPI cycle, change net.core.netdev_budget from (300) " +
      "-> (375)",
  );
  assert.equal(ds[0].kind === "change" && ds[0].proposal.scenario, NET_BUFFER_SCENARIOS[2].name);
  assert.deepEqual(budgetDecisions({ ...budget, squeezes: 0 }), []);
  assert.deepEqual(budgetDecisions({ ...budget, squeezes: 500 }).map((d) => changed(d)![2]), [
    [600],
    [16000],
  ]);
});

Deno.test("budget: bounded by 3000 packets and bpftune's 50 ms; at-ceiling reported", () => {
  const ds = budgetDecisions({ ...budget, budget: 2900, budgetUsecs: 48000 });
  assert.deepEqual(ds.map((d) => changed(d)![2]), [[BUDGET_DOMAIN.max], [BUDGET_USECS_DOMAIN.max]]);
  const top = budgetDecisions({ ...budget, budget: 3000, budgetUsecs: 50000 });
  assert.deepEqual(top.map((d) => d.kind), ["at-ceiling", "at-ceiling"]);
});

Deno.test("budget: scheduler wait correlating with the budget shrinks both, not under defaults", () => {
  const ds = budgetDecisions({ ...budget, budget: 1000, budgetUsecs: 16000, waitCorrelates: true });
  assert.deepEqual(ds.map(changed), [
    [NB_SYSCTL.budget, [1000], [750]],
    [NB_SYSCTL.budgetUsecs, [16000], [12000]],
  ]);
  assert.equal(ds[0].kind === "change" && ds[0].proposal.scenario, NET_BUFFER_SCENARIOS[3].name);
  const floor = budgetDecisions({
    ...budget,
    budget: 320,
    budgetUsecs: 2100,
    waitCorrelates: true,
  });
  assert.deepEqual(floor.map((d) => changed(d)![2]), [[300], [2000]]);
  assert.deepEqual(
    budgetDecisions({ ...budget, budget: 300, budgetUsecs: 2000, waitCorrelates: true }),
    [],
  );
  // The value found at start is the floor when higher (the kernel refuses < 2 jiffies).
  assert.deepEqual(
    budgetDecisions({
      ...budget,
      budget: 300,
      budgetUsecs: 9000,
      waitCorrelates: true,
      usecsFloor: 8000,
    })
      .map((d) => changed(d)![2]),
    [[8000]],
  );
  // An admin's smaller value is never raised by a "shrink".
  assert.deepEqual(
    budgetDecisions({ ...budget, budget: 100, budgetUsecs: 1000, waitCorrelates: true }),
    [],
  );
});

Deno.test("high_order_alloc_disable: 1 -> 0 from 5.14 on, as bpftune at start", () => {
  assert.deepEqual(changed(highOrderAllocDecision(1, "6.18.0")), [
    NB_SYSCTL.highOrderAllocDisable,
    [1],
    [0],
  ]);
  assert.ok(changed(highOrderAllocDecision(1, "5.14.0-1")));
  assert.equal(highOrderAllocDecision(1, "5.13.19"), null);
  assert.equal(highOrderAllocDecision(1, "5.10.0-21-amd64"), null);
  assert.equal(highOrderAllocDecision(0, "6.1.0"), null);
  assert.equal(highOrderAllocDecision(1, null), null);
  assert.equal(kernelAtLeast("7.3.0", 5, 14), true);
  assert.equal(kernelAtLeast("garbage", 5, 14), null);
});

Deno.test("scheduler wait: CPU pressure and schedstat as percentages", () => {
  assert.equal(pressureWaitPercent(1_000_000, 1_500_000, 1000), 50);
  assert.equal(pressureWaitPercent(null, 5, 1000), null);
  assert.equal(pressureWaitPercent(10, 5, 1000), null);
  assert.equal(pressureWaitPercent(0, 5_000_000, 1000), 100);
  assert.equal(schedstatWaitPercent({ run: 100, wait: 10 }, { run: 300, wait: 60 }), 25);
  assert.equal(schedstatWaitPercent({ run: 100, wait: 10 }, { run: 100, wait: 60 }), null);
});

Deno.test("scheduler wait: PSI first, schedstat next, none says so", () => {
  assert.equal(
    parseCpuPressureTotal("some avg10=1.00 avg60=0 avg300=0 total=3589414819\nfull total=0\n"),
    3589414819,
  );
  const schedstat = "version 15\ntimestamp 1\ncpu0 0 0 0 0 0 0 1000 100 5\n" +
    "cpu1 0 0 0 0 0 0 3000 300 5\ndomain0 3 0\n";
  assert.deepEqual(parseSchedstatTotals(schedstat), { run: 4000, wait: 400 });
  let psi = 0;
  const files: Record<string, () => string | null> = {
    "/proc/pressure/cpu": () => `some avg10=0 total=${psi}\n`,
    "/proc/schedstat": () => schedstat,
  };
  const w = new SchedulerWait((p) => files[p]?.() ?? null);
  assert.equal(w.source, "cpu pressure (/proc/pressure/cpu)");
  assert.equal(w.sample(0), null, "the first sample is a baseline");
  psi = 250_000; // 250 ms of waiting in one second
  assert.equal(w.sample(1000), 25);
  const old = new SchedulerWait((p) => p === "/proc/schedstat" ? schedstat : null);
  assert.equal(old.source, "/proc/schedstat");
  assert.equal(new SchedulerWait(() => null).source, null);
  assert.equal(new SchedulerWait(() => null).sample(5), null);
});

Deno.test("tunables: host-wide, with domains; the mask has one word per 32 CPUs", () => {
  const t = netBufferTunables(3);
  assert.deepEqual(t.map((x) => [x.sysctl, x.scope]), [
    [NB_SYSCTL.maxBacklog, "global"],
    [NB_SYSCTL.flowLimit, "global"],
    [NB_SYSCTL.budget, "global"],
    [NB_SYSCTL.budgetUsecs, "global"],
    [NB_SYSCTL.highOrderAllocDisable, "global"],
  ]);
  assert.equal(t[1].values, 3);
  assert.equal(t[1].domain?.max, 0xffff_ffff);
  assert.deepEqual(NET_BUFFER_SCENARIOS.map((s) => s.id), [0, 1, 2, 3, 4]);
});
