/**
 * The net_buffer tuner's decisions as pure functions on plain numbers (bpftune-behaviour.md §2.6):
 * live sysctl values and observations in, proposed changes (or "at its ceiling") out. The audit's
 * receive-path checks (src/audit/checks/netdev.ts) call the same functions.
 *
 * Scenario names and reason lines keep bpftune's wording. Fixed bpftune bugs: the flow-limit
 * bitmap is written as the hex CPU mask the kernel parses, for any CPU (bpftune wrote `1 << cpu`
 * in decimal, wrong from CPU 4 on and overflowing past 31); each drop counts once (bpftune counted
 * twice); growth is bounded (bpftune grew netdev_max_backlog and netdev_budget up to INT_MAX).
 */
import { type LearningRate } from "../tuning/learning_rate.ts";
import { shrink } from "../tuning/learning_rate.ts";
import { proportionalGrowth } from "../tuning/growth.ts";
import { changeDecision, type Decision } from "../tuning/proposal.ts";
import { BOOLEAN_DOMAIN, clampShrink, type ValueDomain } from "../tuning/domain.ts";
import type { ScenarioDecl, TunableDecl } from "../tuning/tuner.ts";
import { cpuInMask, describeCpus, formatCpuMask, withCpu } from "../kernel/cpumask.ts";

export type { Decision };

export const NET_BUFFER_TUNER = "net_buffer";

export const NB_SYSCTL = {
  maxBacklog: "net.core.netdev_max_backlog",
  flowLimit: "net.core.flow_limit_cpu_bitmap",
  budget: "net.core.netdev_budget",
  budgetUsecs: "net.core.netdev_budget_usecs",
  highOrderAllocDisable: "net.core.high_order_alloc_disable",
} as const;

/**
 * Packets queued per CPU at most. The upper bound: each queued skb holds its buffer (2-4 KiB of
 * truesize for an MTU-sized packet), so a full 256 Ki backlog pins about 1 GiB per CPU, and at
 * 1 Mpps it is a quarter of a second of queueing delay; past that, drops are a CPU-capacity
 * problem (spread the load with RPS/RSS), not a queue length one. 0 would drop every packet.
 */
export const MAX_BACKLOG_DOMAIN: ValueDomain = { min: 1, max: 262144 };
/**
 * Packets one softirq run (net_rx_action) may process. The upper bound: ten times the kernel's
 * default 300; a run that long keeps user tasks off the CPU for milliseconds, and
 * netdev_budget_usecs stops the run first anyway. 0 would process nothing per run.
 */
export const BUDGET_DOMAIN: ValueDomain = { min: 1, max: 3000 };
/**
 * Microseconds one softirq run may last. The upper bound is bpftune's: beyond 50 ms "is
 * excessive" (the CPU serves nothing else meanwhile; ksoftirqd takes over anyway).
 */
export const BUDGET_USECS_DOMAIN: ValueDomain = { min: 1, max: 50000 };
/** 32-bit words of a CPU mask, most significant first (cpumask.ts). */
export const CPU_MASK_DOMAIN: ValueDomain = { min: 0, max: 0xffff_ffff };

/**
 * Shrinking never goes under the kernel's defaults: netdev_budget 300, netdev_budget_usecs two
 * jiffies (2000 at HZ 1000, 8000 at HZ 250). Newer kernels also refuse a netdev_budget_usecs
 * under two jiffies (EINVAL), so the tuner passes the value it found at start as the usecs floor
 * when that is higher (BudgetInput.usecsFloor): HZ is not visible from userspace.
 */
export const BUDGET_FLOOR = 300;
export const BUDGET_USECS_FLOOR = 2000;

/**
 * bpftune grows the backlog once the drops of the last minute reach 1/32 of it (its shift 5,
 * independent of the learning rate).
 */
export const BACKLOG_DROP_SHIFT = 5;
export const BACKLOG_DROP_WINDOW_MS = 60_000;

/** bpftune's five tunables, all host-wide (init_net only). `maskWords`: 32-bit groups the
 * kernel prints for flow_limit_cpu_bitmap on this machine (cpumask.ts cpuMaskWordCount). */
export function netBufferTunables(maskWords: number): TunableDecl[] {
  return [
    { sysctl: NB_SYSCTL.maxBacklog, values: 1, scope: "global", domain: MAX_BACKLOG_DOMAIN },
    {
      sysctl: NB_SYSCTL.flowLimit,
      values: maskWords,
      scope: "global",
      optional: true, // CONFIG_NET_FLOW_LIMIT
      domain: CPU_MASK_DOMAIN,
    },
    { sysctl: NB_SYSCTL.budget, values: 1, scope: "global", domain: BUDGET_DOMAIN },
    { sysctl: NB_SYSCTL.budgetUsecs, values: 1, scope: "global", domain: BUDGET_USECS_DOMAIN },
    { sysctl: NB_SYSCTL.highOrderAllocDisable, values: 1, scope: "global", domain: BOOLEAN_DOMAIN },
  ];
}

export const NB_SCENARIO = {
  backlogIncrease: 0,
  flowLimitSet: 1,
  budgetIncrease: 2,
  budgetDecrease: 3,
  highOrderEnable: 4,
} as const;

/** bpftune's scenario table, verbatim. */
export const NET_BUFFER_SCENARIOS: readonly ScenarioDecl[] = [
  {
    id: 0,
    name: "need to increase max backlog size",
    description: "Need to increase backlog size to prevent drops for faster connection",
  },
  {
    id: 1,
    name: "need to set per-cpu bitmap value",
    description: "Need to set flow limit per-cpu to prioritize small flows",
  },
  {
    id: 2,
    name: "need to increase # of packets processed per NAPI poll",
    description: "Need to increase number of packets processed across network devices during " +
      "NAPI poll to use all of net.core.netdev_budget_usecs",
  },
  {
    id: 3,
    name: "need to decrease # of packets processed per NAPI poll",
    description: "Need to decrease netdev_budget[_usecs] since the ratio of time spent waiting " +
      "to run versus time spent running for tasks has increased as we have increased netdev " +
      "budget. This indicates either our budget increases directly let to increased wait times " +
      "for other tasks, or that general load has increased; either way spending too much time " +
      "in NAPI processing will hurt system performance.",
  },
  {
    id: 4,
    name: "need to enable high-order allocation for skb page frags",
    description: "Since Linux 5.14, high-order allocation contention is gone: keep " +
      "net.core.high_order_alloc_disable at 0 for performance",
  },
];

function isCount(v: unknown): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
}

function change(scenario: number, sysctl: string, from: number[], to: number[], reason: string) {
  return changeDecision({
    scenario: NET_BUFFER_SCENARIOS[scenario].name,
    sysctl,
    from,
    to,
    reason,
  });
}

/** Drops in bpftune's window that call for growth: 1/32 of the backlog (at least one). */
export function backlogDropThreshold(maxBacklog: number): number {
  return Math.max(1, Math.floor(maxBacklog / 2 ** BACKLOG_DROP_SHIFT));
}

export interface BacklogInput {
  maxBacklog: number;
  /** Packets dropped at a full per-CPU backlog since the last decision (the evidence). */
  drops: number;
  rate: LearningRate;
}

/**
 * Packets were dropped because a CPU's input backlog held netdev_max_backlog packets: grow it
 * (scenario 0), further the more drops there were, never past MAX_BACKLOG_DOMAIN.max.
 */
export function backlogDecision(input: BacklogInput): Decision | null {
  const { maxBacklog, drops, rate } = input;
  if (!isCount(maxBacklog) || !isCount(drops) || drops === 0 || maxBacklog === 0) return null;
  const ceiling = MAX_BACKLOG_DOMAIN.max;
  if (maxBacklog >= ceiling) {
    return { kind: "at-ceiling", sysctl: NB_SYSCTL.maxBacklog, value: [maxBacklog], ceiling };
  }
  // Tiny backlogs: one step of a fraction of 8 is 2; go at least one packet further.
  const grown = Math.max(
    maxBacklog + 1,
    proportionalGrowth({ current: maxBacklog, hits: drops, rate }),
  );
  const to = Math.min(ceiling, grown);
  return change(
    NB_SCENARIO.backlogIncrease,
    NB_SYSCTL.maxBacklog,
    [maxBacklog],
    [to],
    `Due to excessive drops, change ${NB_SYSCTL.maxBacklog} from (${maxBacklog}) -> (${to})`,
  );
}

/**
 * Backlog drops on `cpus` while their flow limit is off: turn it on for them (scenario 1), so
 * that one big flow cannot fill a backlog for the small ones. The mask is the kernel's 32-bit
 * words; CPUs beyond it (not possible here) or already in it change nothing.
 */
export function flowLimitDecision(
  mask: readonly number[],
  cpus: readonly number[],
): Decision | null {
  let to: number[] = [...mask];
  for (const cpu of cpus) {
    if (cpuInMask(to, cpu)) continue;
    to = withCpu(to, cpu) ?? to;
  }
  if (to.every((w, i) => w === mask[i])) return null;
  return change(
    NB_SCENARIO.flowLimitSet,
    NB_SYSCTL.flowLimit,
    [...mask],
    to,
    `To prioritize small flows, change ${NB_SYSCTL.flowLimit} from (${formatCpuMask(mask)}) -> ` +
      `(${formatCpuMask(to)}) (CPUs ${describeCpus(mask)} -> ${describeCpus(to)})`,
  );
}

export interface BudgetInput {
  budget: number;
  budgetUsecs: number;
  /** softirq runs that ended with work left (softnet_stat time_squeeze) since the last look. */
  squeezes: number;
  /**
   * The scheduler's wait share has risen with the budget (correlation above bpftune's 0.75):
   * the budget is taking the CPU from tasks, so shrink instead.
   */
  waitCorrelates: boolean;
  rate: LearningRate;
  /** Shrink floor for netdev_budget_usecs when above BUDGET_USECS_FLOOR (see there). */
  usecsFloor?: number;
}

function budgetLine(sysctl: string, from: number, to: number): string {
  return `To maximize # packets processed per NAPI cycle, change ${sysctl} from (${from}) -> (${to})`;
}

/**
 * NAPI ran out of budget (time_squeeze rose): grow netdev_budget and netdev_budget_usecs
 * (scenario 2) within their domains; if scheduler wait correlates with the budget, shrink both
 * (scenario 3) down to the kernel defaults. Budget first, then usecs, as bpftune writes them.
 */
export function budgetDecisions(input: BudgetInput): Decision[] {
  const { budget, budgetUsecs: usecs, squeezes, rate } = input;
  if (!isCount(budget) || !isCount(usecs) || !isCount(squeezes) || budget === 0 || usecs === 0) {
    return [];
  }
  if (input.waitCorrelates) {
    const out: Decision[] = [];
    const b = clampShrink(budget, shrink(budget, rate), BUDGET_FLOOR);
    const usecsFloor = Math.max(
      BUDGET_USECS_FLOOR,
      isCount(input.usecsFloor) ? input.usecsFloor : 0,
    );
    const u = clampShrink(usecs, shrink(usecs, rate), usecsFloor);
    if (b < budget) {
      out.push(change(
        NB_SCENARIO.budgetDecrease,
        NB_SYSCTL.budget,
        [budget],
        [b],
        budgetLine(NB_SYSCTL.budget, budget, b),
      ));
    }
    if (u < usecs) {
      out.push(change(
        NB_SCENARIO.budgetDecrease,
        NB_SYSCTL.budgetUsecs,
        [usecs],
        [u],
        budgetLine(NB_SYSCTL.budgetUsecs, usecs, u),
      ));
    }
    return out;
  }
  if (squeezes === 0) return [];
  const grown = (current: number, domain: ValueDomain, sysctl: string): Decision | null => {
    if (current >= domain.max) {
      return { kind: "at-ceiling", sysctl, value: [current], ceiling: domain.max };
    }
    const to = Math.min(domain.max, proportionalGrowth({ current, hits: squeezes, rate }));
    if (to <= current) return null;
    return change(
      NB_SCENARIO.budgetIncrease,
      sysctl,
      [current],
      [to],
      budgetLine(sysctl, current, to),
    );
  };
  return [
    grown(budget, BUDGET_DOMAIN, NB_SYSCTL.budget),
    grown(usecs, BUDGET_USECS_DOMAIN, NB_SYSCTL.budgetUsecs),
  ].filter((d): d is Decision => d !== null);
}

/** Kernel release "5.14.0-foo" at least major.minor; null when the release is not a version. */
export function kernelAtLeast(
  release: string | null,
  major: number,
  minor: number,
): boolean | null {
  const m = release?.match(/^(\d+)\.(\d+)/);
  if (!m) return null;
  const [a, b] = [Number(m[1]), Number(m[2])];
  return a > major || (a === major && b >= minor);
}

/**
 * high_order_alloc_disable=1 on a kernel >= 5.14 only costs performance: set it to 0
 * (scenario 4), as bpftune does at start. Null when nothing is to change or the kernel's
 * version is unknown.
 */
export function highOrderAllocDecision(value: number, release: string | null): Decision | null {
  if (value !== 1 || kernelAtLeast(release, 5, 14) !== true) return null;
  return change(
    NB_SCENARIO.highOrderEnable,
    NB_SYSCTL.highOrderAllocDisable,
    [1],
    [0],
    `To maximize performance, set ${NB_SYSCTL.highOrderAllocDisable}=0 on more recent kernel ` +
      `since it is not needed as contention in high-order allocs is not present`,
  );
}
