/**
 * The net_buffer tuner (bpftune's net_buffer_tuner, bpftune-behaviour.md §2.6): grows
 * net.core.netdev_max_backlog when packets are dropped at a full per-CPU input backlog (and turns
 * the flow limit on for the CPU that dropped), grows netdev_budget / netdev_budget_usecs when
 * NAPI softirq runs end with work left (softnet_stat time_squeeze), shrinks them again when the
 * scheduler's wait share rises with the budget, and sets high_order_alloc_disable to 0 at start on
 * kernels >= 5.14. Every sysctl is host-wide (init_net only).
 *
 * Signals: skb:kfree_skb with reason CPU_BACKLOG (tp_btf, else the classic tracepoint); where the
 * kernel has no drop reasons (5.10) a bounded poll of /proc/net/softnet_stat's dropped column
 * instead (bpftune's kretprobe on enqueue_to_backlog needs kprobes, absent here, and the function
 * is often inlined). napi:napi_poll with work == budget says a NAPI instance had more work: the
 * tuner then reads softnet_stat's time_squeeze; without the tracepoint, the same poll. Scheduler
 * wait: CPU pressure (PSI), else /proc/schedstat as bpftune; with neither, budgets only grow.
 * `bpfpilot support` names the poll as each hook's fallback.
 *
 * bpftune bugs fixed: the flow-limit mask is the kernel's hex CPU mask for any CPU (not decimal
 * `1 << cpu`), each drop counts once, and growth is bounded (net_buffer_rules.ts domains).
 */
import type { BpfpEvent } from "../tuning/event.ts";
import type { LearningRate } from "../tuning/learning_rate.ts";
import type { TunerContext, TunerDefinition, TunerMetric } from "../tuning/tuner.ts";
import type { HookDecl } from "../kernel/hooks.ts";
import { GLOBAL_NETNS } from "../kernel/netns.ts";
import { cpuMaskWordCount, possibleCpus } from "../kernel/cpumask.ts";
import { readSoftnetStat, type SoftnetRow, softnetTotal } from "../kernel/proc/softnet.ts";
import { SchedulerWait } from "../kernel/proc/sched_wait.ts";
import { DecayingCorrelation } from "../tuning/correlation.ts";
import netBufferObject from "../../dist/bpf/net_buffer.bpf.o" with { type: "bytes" };
import { contract } from "../../dist/bpf/net_buffer.contract.ts";
import { configBytes, readPayload } from "../tuning/contract.ts";
import { u32Key } from "../libbpf/map.ts";
import {
  BACKLOG_DROP_WINDOW_MS,
  backlogDecision,
  backlogDropThreshold,
  budgetDecisions,
  flowLimitDecision,
  highOrderAllocDecision,
  NB_SYSCTL,
  NET_BUFFER_SCENARIOS,
  netBufferTunables,
} from "./net_buffer_rules.ts";

const KIND = contract.kinds;

/** Two events a second per (CPU, kind) at most: the rate gate's growth gap is 500 ms. */
const RATE_LIMIT_NS = 500_000_000n;
/** How often /proc/net/softnet_stat is read for a hook that did not attach. */
export const SOFTNET_POLL_MS = 2000;

const DROP_POLL = "a poll of /proc/net/softnet_stat's dropped column (every 2 s)";
const SQUEEZE_POLL = "a poll of /proc/net/softnet_stat's time_squeeze column (every 2 s)";

const NET_BUFFER_HOOKS: HookDecl[] = [
  {
    name: "backlog_drop",
    description: "packets dropped at a full per-CPU input backlog (kfree_skb reason CPU_BACKLOG)",
    optional: true,
    fallback: DROP_POLL,
    candidates: [
      { kind: "tp_btf", target: "kfree_skb", program: "bpfp_nb_drop_btf" },
      { kind: "tracepoint", target: "skb/kfree_skb", program: "bpfp_nb_drop_tp" },
    ],
  },
  {
    name: "napi_poll",
    description: "NAPI polls that used their whole weight (then softnet_stat time_squeeze)",
    optional: true,
    fallback: SQUEEZE_POLL,
    candidates: [
      { kind: "tp_btf", target: "napi_poll", program: "bpfp_nb_napi_btf" },
      { kind: "tracepoint", target: "napi/napi_poll", program: "bpfp_nb_napi_tp" },
    ],
  },
];

export const netBufferTuner: TunerDefinition = {
  name: contract.tuner,
  id: contract.id,
  contract,
  description: "grows netdev_max_backlog on backlog drops and the NAPI budget on time squeezes",
  object: netBufferObject,
  tunables: netBufferTunables(cpuMaskWordCount(possibleCpus())),
  scenarios: [...NET_BUFFER_SCENARIOS],
  hooks: NET_BUFFER_HOOKS,
  create: (ctx) => new NetBufferTuner(ctx),
};

export interface NetBufferOptions {
  /** /proc/net/softnet_stat, parsed (tests inject it). */
  softnet?: () => SoftnetRow[] | null;
  wait?: SchedulerWait;
  /** Kernel release for the high-order rule. */
  release?: string;
}

export class NetBufferTuner {
  readonly #rate: LearningRate;
  readonly #softnet: () => SoftnetRow[] | null;
  readonly #wait: SchedulerWait;
  readonly #release: string;
  /** Budget (x) against scheduler wait percent (y): bpftune's correlation, decaying here. */
  readonly #waitCorrelation = new DecayingCorrelation();
  #hooked = new Set<string>();
  /** Backlog drops of the last minute, for bpftune's 1/32-of-the-backlog threshold. */
  #dropWindow: { at: number; count: number }[] = [];
  /** Per-CPU dropped counters and the time_squeeze total at the last softnet_stat read. */
  #lastDropped = new Map<number, number>();
  #lastSqueeze: number | null = null;
  #nextPoll = 0;
  #lastWaitPercent: number | null = null;
  /** netdev_budget_usecs at start: the shrink floor (the kernel may refuse less). */
  #usecsAtStart: number | undefined;
  readonly #totals = { drops: 0, squeezes: 0, fullPolls: 0, softnetPolls: 0 };

  constructor(private readonly ctx: TunerContext, opts: NetBufferOptions = {}) {
    this.#rate = ctx.learningRate as LearningRate;
    this.#softnet = opts.softnet ?? (() => readSoftnetStat());
    this.#wait = opts.wait ?? new SchedulerWait();
    this.#release = opts.release ?? Deno.osRelease();
  }

  configure(obj: import("../libbpf/object.ts").BpfObject): void {
    obj.map("bpfp_config").update(
      u32Key(0),
      configBytes(contract, { rl_interval_ns: RATE_LIMIT_NS }),
    );
  }

  onAttached(hooks: readonly string[]): void {
    this.#hooked = new Set(hooks);
    this.#usecsAtStart = this.ctx.read(NB_SYSCTL.budgetUsecs, GLOBAL_NETNS)?.[0];
    this.#squeezes(this.#readSoftnet()?.rows ?? null); // baselines: only increases count
    this.#wait.sample(this.ctx.now());
    this.ctx.log.info(
      this.#wait.source
        ? `net_buffer: scheduler wait from ${this.#wait.source} (shrinks the NAPI budget when ` +
          `it rises with it)`
        : "net_buffer: no scheduler wait signal (neither /proc/pressure/cpu nor /proc/schedstat); " +
          "the NAPI budget only grows",
    );
    const highOrder = this.ctx.read(NB_SYSCTL.highOrderAllocDisable, GLOBAL_NETNS)?.[0];
    if (highOrder !== undefined) {
      this.ctx.apply([highOrderAllocDecision(highOrder, this.#release)], GLOBAL_NETNS);
    }
  }

  onEvent(ev: BpfpEvent): void {
    if (ev.kind === KIND.NB_BACKLOG_DROP) {
      // The full backlog is the target CPU's, which with RPS is not the CPU that ran the hook:
      // softnet_stat's per-CPU dropped counters say which; the hook's CPU when they do not.
      const { cpu } = readPayload(ev.data, contract.payload.drop);
      const seen = this.#readSoftnet();
      this.#backlogDrops(Math.max(1, ev.count), seen?.dropCpus.length ? seen.dropCpus : [cpu]);
    } else if (ev.kind === KIND.NB_NAPI_FULL) {
      this.#totals.fullPolls += Math.max(1, ev.count);
      this.#squeezes(this.#readSoftnet()?.rows ?? null);
    }
  }

  /** The bounded poll, only for the hooks that did not attach. */
  onTick(): void {
    const pollDrops = !this.#hooked.has("backlog_drop");
    const pollSqueeze = !this.#hooked.has("napi_poll");
    if (!pollDrops && !pollSqueeze) return;
    const now = this.ctx.now();
    if (now < this.#nextPoll) return;
    this.#nextPoll = now + SOFTNET_POLL_MS;
    this.#totals.softnetPolls++;
    const seen = this.#readSoftnet();
    if (!seen) return;
    if (pollDrops && seen.drops > 0) this.#backlogDrops(seen.drops, seen.dropCpus);
    if (pollSqueeze) this.#squeezes(seen.rows, true);
  }

  summary(): string[] {
    const t = this.#totals;
    const out = [
      `# net_buffer: ${t.drops} backlog drops and ${t.squeezes} time squeezes seen; scheduler ` +
      `wait from ${this.#wait.source ?? "nowhere (budgets only grew)"}`,
    ];
    const polled = NET_BUFFER_HOOKS.filter((h) => !this.#hooked.has(h.name)).map((h) => h.name);
    if (polled.length) {
      out.push(
        `# net_buffer: ${t.softnetPolls} polls of /proc/net/softnet_stat (no ${
          polled.join(", ")
        } hook)`,
      );
    }
    return out;
  }

  metrics(): TunerMetric[] {
    const m = (name: string, type: TunerMetric["type"], help: string, value: number) => ({
      name: `net_buffer_${name}`,
      type,
      help,
      labels: {},
      value,
    });
    const t = this.#totals;
    const out = [
      m(
        "backlog_drops",
        "counter",
        "Packets seen dropped at a full per-CPU input backlog.",
        t.drops,
      ),
      m("time_squeezes", "counter", "NAPI softirq runs seen ending with work left.", t.squeezes),
      m("full_napi_polls", "counter", "NAPI polls reported using their whole weight.", t.fullPolls),
      m(
        "softnet_polls",
        "counter",
        "Reads of /proc/net/softnet_stat by the fallback poll.",
        t.softnetPolls,
      ),
    ];
    if (this.#lastWaitPercent !== null) {
      out.push(m(
        "scheduler_wait_percent",
        "gauge",
        "Share of time tasks waited for a CPU at the last NAPI budget decision.",
        this.#lastWaitPercent,
      ));
    }
    return out;
  }

  /** softnet_stat now, with the CPUs whose dropped counter rose since the last read and how much. */
  #readSoftnet(): { rows: SoftnetRow[]; dropCpus: number[]; drops: number } | null {
    const rows = this.#softnet();
    if (!rows) return null;
    const dropCpus: number[] = [];
    let drops = 0;
    for (const r of rows) {
      if (r.dropped === undefined) continue;
      const last = this.#lastDropped.get(r.cpu);
      if (last !== undefined && r.dropped > last) {
        dropCpus.push(r.cpu);
        drops += r.dropped - last;
      }
      this.#lastDropped.set(r.cpu, r.dropped);
    }
    return { rows, dropCpus, drops };
  }

  #backlogDrops(count: number, cpus: number[]): void {
    const now = this.ctx.now();
    this.#totals.drops += count;
    this.#dropWindow = this.#dropWindow.filter((d) => now - d.at < BACKLOG_DROP_WINDOW_MS);
    this.#dropWindow.push({ at: now, count });
    const drops = this.#dropWindow.reduce((s, d) => s + d.count, 0);
    const maxBacklog = this.ctx.read(NB_SYSCTL.maxBacklog, GLOBAL_NETNS)?.[0];
    if (maxBacklog === undefined || drops < backlogDropThreshold(maxBacklog)) return;
    if (this.ctx.log.debugEnabled) {
      this.ctx.log.debug(
        `${drops} backlog drops in the last minute on CPUs ${cpus.join(",")} with ` +
          `netdev_max_backlog ${maxBacklog}`,
      );
    }
    // Growth first: the drop window restarts only when the backlog really grew.
    if (this.ctx.apply([backlogDecision({ maxBacklog, drops, rate: this.#rate })], GLOBAL_NETNS)) {
      this.#dropWindow = [];
    }
    const mask = this.ctx.read(NB_SYSCTL.flowLimit, GLOBAL_NETNS);
    if (mask) this.ctx.apply([flowLimitDecision(mask, cpus)], GLOBAL_NETNS);
  }

  /** time_squeeze rose since the last read: the NAPI budget ran out with work left. */
  #squeezes(rows: SoftnetRow[] | null, polled = false): void {
    const total = rows ? softnetTotal(rows, "timeSqueeze") : undefined;
    if (total === undefined) return;
    const last = this.#lastSqueeze;
    this.#lastSqueeze = total;
    if (last === null || total <= last) return;
    const squeezes = total - last;
    this.#totals.squeezes += squeezes;
    const budget = this.ctx.read(NB_SYSCTL.budget, GLOBAL_NETNS)?.[0];
    const budgetUsecs = this.ctx.read(NB_SYSCTL.budgetUsecs, GLOBAL_NETNS)?.[0];
    if (budget === undefined || budgetUsecs === undefined) return;
    const now = this.ctx.now();
    const wait = this.#wait.sample(now);
    if (wait !== null) {
      this.#lastWaitPercent = wait;
      this.#waitCorrelation.observe(budget, wait, now);
    }
    const waitCorrelates = this.#waitCorrelation.brakes(now);
    if (this.ctx.log.debugEnabled) {
      this.ctx.log.debug(
        `${squeezes} time squeezes${polled ? " (polled)" : ""} with netdev_budget ${budget}, ` +
          `netdev_budget_usecs ${budgetUsecs}; scheduler wait ${wait?.toFixed(1) ?? "unknown"} %` +
          (waitCorrelates ? ", rising with the budget" : ""),
      );
    }
    this.ctx.apply(
      budgetDecisions({
        budget,
        budgetUsecs,
        squeezes,
        waitCorrelates,
        rate: this.#rate,
        usecsFloor: this.#usecsAtStart,
      }),
      GLOBAL_NETNS,
    );
  }
}
