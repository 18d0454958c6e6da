/**
 * The tcp_buffer tuner: grows tcp_rmem/tcp_wmem max when sockets' buffers approach it (never for
 * application-locked sockets, never near memory pressure, braked while buffer size and latency
 * correlate), grows tcp_mem under pressure within nfbp/4, and enters and leaves the low-memory
 * settings; under SYN-queue overflow grows tcp_max_syn_backlog or turns syncookies on
 * (tcp_syn_backlog.ts). Decisions are the pure rules of tcp_buffer_rules.ts against live values.
 */
import { CorrelationTable } from "../tuning/correlation.ts";
import { INT_MAX } from "../tuning/domain.ts";
import { kernelDefaultTcpBufferMax, socketBufferCeiling } from "./tcp_buffer_limits.ts";
import { freeBufferPagesOrZero } from "../kernel/proc/zoneinfo.ts";
import type { BpfpEvent } from "../tuning/event.ts";
import { type LearningRate, shiftOf } from "../tuning/learning_rate.ts";
import { changeDecision } from "../tuning/proposal.ts";
import type { TunerContext, TunerDefinition, TunerMetric } from "../tuning/tuner.ts";
import { SynBacklogWatch } from "./tcp_syn_backlog.ts";
import {
  type BufferSettle,
  type NeedSample,
  RcvbufSettle,
  SndbufSettle,
} from "./tcp_buffer_settle.ts";
import { changeTiming as ct } from "../daemon/change_timing.ts";
import { describeNetns, GLOBAL_NETNS, netnsKey } from "../kernel/netns.ts";
import { forgetNetnsKeys } from "../kernel/netns_keyed.ts";
import { kernelVersion, pageSize, tcpAllocatedPages } from "../kernel/memory.ts";
import { tracepointChain } from "../tuning/hook_chains.ts";
import { readTogether } from "../tuning/context.ts";
import { RecentValue } from "../tuning/recent_value.ts";
import type { HookDecl } from "../kernel/hooks.ts";
import tcpBufferObject from "../../dist/bpf/tcp_buffer.bpf.o" with { type: "bytes" };
import { contract } from "../../dist/bpf/tcp_buffer.contract.ts";
import { configBytes, readPayload } from "../tuning/contract.ts";
import { u32Key } from "../libbpf/map.ts";
import {
  bufferDecision,
  classifyTcpMemory,
  type Decision,
  enterLowMemory,
  leaveLowMemory,
  type LowMemoryChange,
  lowMemoryChanges,
  type MemoryState,
  moderateRcvbufDecision,
  SYSCTL,
  TCP_BUFFER_SCENARIOS,
  TCP_BUFFER_TUNABLES,
  TCP_BUFFER_TUNER,
  tcpMemDecisions,
} from "./tcp_buffer_rules.ts";

const KIND = contract.kinds;

/** Where the tuner watches the kernel: each a tracepoint-first chain (programs in the BPF object). */
const RCV_CHAIN = tracepointChain({
  name: "rcvbuf",
  description: "receive buffer auto-tuning (socket rcvbuf approaching tcp_rmem max)",
  tracepoint: "tcp/tcp_rcv_space_adjust",
  func: "tcp_rcv_space_adjust",
  prefix: "bpfp_tb_rcv",
});
const TCP_BUFFER_HOOKS: HookDecl[] = [
  {
    ...RCV_CHAIN,
    // 6.17+: fires only when auto-tuning grows a buffer (once per RTT per growing socket) rather
    // than on every read; older kernels fall back to tcp_rcv_space_adjust.
    candidates: [
      { kind: "tp_btf", target: "tcp_rcvbuf_grow", program: "bpfp_tb_rcvgrow_btf" },
      ...RCV_CHAIN.candidates,
    ],
  },
  tracepointChain({
    name: "sndbuf",
    description: "send buffer growth (socket sndbuf approaching tcp_wmem max)",
    tracepoint: "tcp/tcp_probe",
    func: "tcp_sndbuf_expand",
    prefix: "bpfp_tb_snd",
    optional: true,
  }),
  tracepointChain({
    name: "mem_pressure",
    description: "TCP memory pressure and exhaustion (allocated pages near tcp_mem)",
    tracepoint: "sock/sock_exceed_buf_limit",
    func: "tcp_enter_memory_pressure",
    prefix: "bpfp_tb_mem",
    // The buffer hooks check memory too; this one only makes pressure visible sooner.
    optional: true,
  }),
  tracepointChain({
    name: "syn_queue",
    description: "listener SYN queues at what the kernel admits (SYN-ACK retransmits)",
    tracepoint: "tcp/tcp_retransmit_synack",
    func: "tcp_syn_flood_action",
    prefix: "bpfp_tb_syn",
    // Without it the SYN-queue counters of the watched namespaces are polled instead.
    optional: true,
  }),
];

/** Test switch (BPFPILOT_FAULT_INJECT): TCP memory reads as near pressure. */
export const FAULT_MEMORY_PRESSURE = "tcp_buffer:memory-pressure";

const SOCK_SNDBUF_LOCK = 1, SOCK_RCVBUF_LOCK = 2;
/**
 * Kernel-side rate limit per (netns, kind): two events a second, the pace of consecutive growth
 * (the rate gate's growth gap); each event costs userspace ~2 ms of CPU.
 */
const RATE_LIMIT_NS = 500_000_000n;
/**
 * How long buffer decisions reuse the host's tcp_mem and allocated TCP pages: events of many
 * namespaces share one read a second (the mem_pressure hook reports pressure at once anyway).
 */
const HOST_MEMORY_MAX_AGE_MS = 1000;
/**
 * A growth after a trim that the cool-down held back is tried again at the first tick after the
 * cool-down, and again after each further one, for this long.
 */
const DEFERRED_MAX_MS = 60_000;

/**
 * A growth of a settled max the rate gate deferred (the cool-down after the trim). Only the
 * cool-down's refusals are kept: an override or the policy would refuse it again at every try.
 */
interface DeferredGrowth {
  decision: Decision;
  sysctl: string;
  netns: string;
  /** The max it grows from: another live value means the evidence is stale. */
  from: number;
  sample: NeedSample;
  at: number;
  /** When the cool-down that held it back ends: not tried (nor read) before. */
  until: number;
}

export const tcpBufferTuner: TunerDefinition = {
  name: TCP_BUFFER_TUNER,
  id: contract.id,
  description: "grows TCP buffer limits and tcp_mem when they get in the way",
  object: tcpBufferObject,
  contract,
  tunables: TCP_BUFFER_TUNABLES,
  scenarios: [...TCP_BUFFER_SCENARIOS],
  hooks: TCP_BUFFER_HOOKS,
  create: (ctx) => new TcpBufferTuner(ctx),
};

class TcpBufferTuner {
  readonly #rate: LearningRate;
  readonly #page = pageSize();
  readonly #nfbp: number;
  readonly #floors: { rmem: number; wmem: number };
  readonly #correlation = new CorrelationTable();
  /** What entering low memory changed (host namespace), to put back exactly that. */
  #lowMemory: LowMemoryChange[] | null = null;
  /** Before 5.16 the kernel's memory_allocated counts 4 KiB quanta rather than pages. */
  readonly #allocatedInQuanta: boolean;
  readonly #syn: SynBacklogWatch;
  /** Bring a grown tcp_rmem / tcp_wmem max down near the path's need once traffic is steady. */
  readonly #settle = { rcv: new RcvbufSettle(), snd: new SndbufSettle() };
  /** tcp_mem and allocated pages as buffer decisions consult them (not what tcp_mem grows from). */
  readonly #tcpMem: RecentValue<number[] | null>;
  readonly #allocatedPages: RecentValue<number | null>;
  /**
   * Growths of a trimmed max deferred by the cool-down after the trim, by sysctl and namespace.
   * Their evidence may not come again for long: a receive socket reports only when a period's
   * data beats its record (a bench run's came back 29 s later, the max below the need till then).
   */
  readonly #deferred = new Map<string, DeferredGrowth>();

  constructor(private readonly ctx: TunerContext) {
    this.#rate = ctx.learningRate as LearningRate;
    this.#nfbp = freeBufferPagesOrZero((m) => ctx.log.warn(m), "tcp_mem");
    const k = kernelVersion();
    this.#floors = kernelDefaultTcpBufferMax(this.#nfbp, this.#page, k);
    this.#allocatedInQuanta = k.major < 5 || (k.major === 5 && k.minor < 16);
    const now = () => ctx.now();
    this.#tcpMem = new RecentValue(
      () => ctx.read(SYSCTL.mem, GLOBAL_NETNS),
      HOST_MEMORY_MAX_AGE_MS,
      now,
    );
    this.#allocatedPages = new RecentValue(tcpAllocatedPages, HOST_MEMORY_MAX_AGE_MS, now);
    this.#syn = new SynBacklogWatch({
      ctx,
      rate: this.#rate,
      memory: () => this.#memoryState(false),
    });
  }

  onAttached(hooks: readonly string[]): void {
    this.#syn.hooked = hooks.includes("syn_queue");
  }

  configure(obj: import("../libbpf/object.ts").BpfObject): void {
    const cfg = configBytes(contract, {
      rl_interval_ns: RATE_LIMIT_NS,
      lr_shift: shiftOf(this.#rate),
    });
    obj.map("bpfp_config").update(u32Key(0), cfg);
  }

  onEvent(ev: BpfpEvent): void {
    switch (ev.kind) {
      case KIND.TB_RMEM_NEAR_MAX:
      case KIND.TB_WMEM_NEAR_MAX:
        return this.#buffer(ev);
      case KIND.TB_MEM_PRESSURE:
      case KIND.TB_MEM_EXHAUSTION:
      case KIND.TB_MEM_EXCEEDED:
        return this.#memory(ev);
      case KIND.TB_SYN_QUEUE_FULL:
        return this.#syn.onQueueFull(
          netnsKey(ev.netns),
          readPayload(ev.data, contract.payload.syn),
          ev.count,
        );
    }
  }

  metrics(): TunerMetric[] {
    return this.#syn.metrics();
  }

  summary(): string[] {
    return this.#syn.summary();
  }

  onNetnsGone(gone: ReadonlySet<string>): void {
    this.#correlation.forgetNetns(gone);
    // A deferred growth's namespace key may name another namespace soon (its inode reused).
    forgetNetnsKeys(this.#deferred, gone);
    this.#settle.rcv.forgetNetns(gone);
    this.#settle.snd.forgetNetns(gone);
    this.#syn.forgetNetns(gone);
  }

  onTick(): void {
    this.#syn.onTick();
    for (const settle of Object.values(this.#settle)) {
      ct ? ct.time("tcp_buffer trim", () => this.#trim(settle)) : this.#trim(settle);
    }
    if (this.#deferred.size > 0) this.#retryDeferred();
    if (!this.#lowMemory) return;
    if (this.#memoryState(false) !== "normal") return;
    const live: Record<string, number | null> = {};
    for (const c of this.#lowMemory) {
      live[c.sysctl] = this.ctx.read(c.sysctl, GLOBAL_NETNS)?.[0] ?? null;
    }
    this.ctx.apply(leaveLowMemory(this.#lowMemory, live).map(changeDecision), GLOBAL_NETNS);
    this.#lowMemory = null;
  }

  #trim(settle: BufferSettle): void {
    const now = this.ctx.now();
    for (const netns of settle.due(now)) {
      const trim = settle.trim(netns, this.ctx.read(settle.policy.sysctl, netns), now);
      if (trim?.kind !== "change") continue;
      const apply = () => this.ctx.apply([trim], netns);
      const applied = ct ? ct.time("tcp_buffer trim apply", apply) : apply();
      settle.trimmed(netns, applied, trim.proposal.to[2], now);
    }
  }

  #retryDeferred(): void {
    const now = this.ctx.now();
    for (const [key, d] of this.#deferred) {
      const old = now - d.at > DEFERRED_MAX_MS;
      if (!old && now < d.until) continue; // still cooling down
      const live = old ? null : this.ctx.read(d.sysctl, d.netns);
      if (!live || live[2] !== d.from) {
        this.#deferred.delete(key); // old, gone, or changed since: the evidence is stale
        continue;
      }
      if (!this.ctx.apply([d.decision], d.netns)) {
        // Another cool-down (a change meanwhile): wait for it; refused otherwise: given up.
        const until = this.ctx.coolingDownUntil?.(d.sysctl, d.netns) ?? null;
        if (until === null) this.#deferred.delete(key);
        else d.until = until;
        continue;
      }
      this.#deferred.delete(key);
      const rcv = d.sysctl === SYSCTL.rmem;
      const to = d.decision.kind === "change" ? d.decision.proposal.to[2] : d.from;
      (rcv ? this.#settle.rcv : this.#settle.snd).grew(d.netns, d.from, to, d.sample, now);
      const moderate = rcv ? this.ctx.read(SYSCTL.moderateRcvbuf, d.netns)?.[0] : undefined;
      if (moderate !== undefined) this.ctx.apply([moderateRcvbufDecision(moderate)], d.netns);
    }
  }

  #memoryState(underPressure: boolean, tcpMem = this.#tcpMem.get()): MemoryState | null {
    if (this.ctx.faultInjected?.(FAULT_MEMORY_PRESSURE)) return "near-pressure";
    const pages = this.#allocatedPages.get();
    if (!tcpMem || pages === null) return null;
    return classifyTcpMemory({ tcpMem, allocatedPages: pages, underPressure, rate: this.#rate });
  }

  #buffer(ev: BpfpEvent): void {
    const rcv = ev.kind === KIND.TB_RMEM_NEAR_MAX;
    const p = readPayload(ev.data, contract.payload.buffer);
    const sysctl = rcv ? SYSCTL.rmem : SYSCTL.wmem;
    const netns = netnsKey(ev.netns);
    // One visit of the namespace: the live value, and whether a grown rmem max would be used.
    const names = rcv ? [sysctl, SYSCTL.moderateRcvbuf] : [sysctl];
    const [live, moderateNow] = ct
      ? ct.time("tcp_buffer read", () => readTogether(this.ctx, names, netns))
      : readTogether(this.ctx, names, netns);
    if (!live) {
      if (this.ctx.log.debugEnabled) {
        this.ctx.log.debug(
          `${sysctl}: event of ${describeNetns(netns)} dropped: cannot read it there`,
        );
      }
      return;
    }
    const now = this.ctx.now();
    const srtt = p.srtt_us;
    const corr = this.#correlation.get(TCP_BUFFER_TUNER, netns, sysctl);
    if (srtt > 0) corr.observe(live[2], srtt, now);
    const settle = rcv ? this.#settle.rcv : this.#settle.snd;
    const sample = { used: p.used, buf: p.buf, limit: p.limit, want: p.want };
    settle.observe(netns, sample, now);
    const tcpMem = this.#tcpMem.get();
    const memory = this.#memoryState(false, tcpMem) ?? "normal";
    const locks = p.userlocks;
    if (this.ctx.log.debugEnabled) {
      this.ctx.log.debug(
        `${sysctl} in ${describeNetns(netns)}: socket buffer ${p.buf} near max ${p.limit}, ` +
          `kernel wanted ${p.want || "?"}, ` +
          `delivery rate needs ${p.used || "?"} per round trip ` +
          `(pid ${ev.pid} ${ev.comm}, srtt ${srtt} us, userlocks ${locks}, ${ev.count} hits)` +
          (!rcv || p.limit === live[2] ? "" : `; the max is ${live[2]} now: nothing to decide`),
      );
    }
    const settledNeed = settle.settledNeed(netns);
    const decision = bufferDecision({
      sysctl,
      live,
      observed: p.buf,
      wanted: p.want,
      used: p.used,
      settledNeed,
      hits: ev.count,
      // The kernel reports the first socket at a new rmem max at once (tcp_buffer.bpf.c).
      limitSeen: rcv ? p.limit : undefined,
      userLocked: (locks & (rcv ? SOCK_RCVBUF_LOCK : SOCK_SNDBUF_LOCK)) !== 0,
      memory,
      latencyBrake: corr.brakes(now),
      rate: this.#rate,
      ceiling: tcpMem ? socketBufferCeiling(tcpMem[2], this.#page) : INT_MAX,
      shrinkFloor: rcv ? this.#floors.rmem : this.#floors.wmem,
    });
    const growth = decision?.kind === "change" && decision.proposal.to[2] > live[2]
      ? decision.proposal.to[2]
      : 0;
    const key = `${netns}\0${sysctl}`; // netns first: forgetNetnsKeys
    if (!this.ctx.apply([decision], netns)) {
      // After a trim, a growth waits out the cool-down (a reversal); its evidence is kept. One
      // refused for another reason (an override, the policy) is not: waiting would not lift it.
      const until = growth && settledNeed > 0
        ? this.ctx.coolingDownUntil?.(sysctl, netns) ?? null
        : null;
      if (until !== null) {
        const from = live[2];
        this.#deferred.set(key, {
          decision: decision!,
          sysctl,
          netns,
          from,
          sample,
          at: now,
          until,
        });
      } else if (growth) this.#deferred.delete(key);
      return;
    }
    this.#deferred.delete(key);
    if (growth) settle.grew(netns, live[2], growth, sample, now);
    if (!rcv) return;
    // A larger rmem max only helps if receive auto-tuning is on (read before the write above,
    // which did not touch it).
    const moderate = moderateNow?.[0];
    if (moderate !== undefined) this.ctx.apply([moderateRcvbufDecision(moderate)], netns);
  }

  #memory(ev: BpfpEvent): void {
    const tcpMem = this.ctx.read(SYSCTL.mem, GLOBAL_NETNS); // live: a change of it starts here
    if (!tcpMem || this.#nfbp === 0) return;
    const raw = readPayload(ev.data, contract.payload.mem).allocated;
    const allocated = this.#allocatedInQuanta ? Math.ceil((raw * 4096) / this.#page) : raw;
    const underPressure = ev.kind === KIND.TB_MEM_EXCEEDED;
    const bufferShrink = [SYSCTL.rmem, SYSCTL.wmem].flatMap((sysctl) => {
      const live = this.ctx.read(sysctl, GLOBAL_NETNS);
      const floor = sysctl === SYSCTL.rmem ? this.#floors.rmem : this.#floors.wmem;
      return live ? [{ sysctl, live, floor }] : [];
    });
    this.ctx.apply(
      tcpMemDecisions({
        tcpMem,
        allocatedPages: allocated,
        underPressure,
        freeBufferPages: this.#nfbp,
        rate: this.#rate,
        bufferShrink,
      }),
      GLOBAL_NETNS,
    );
    this.#tcpMem.forget(); // changed, perhaps: buffer decisions read it again
    const memory = classifyTcpMemory({
      tcpMem,
      allocatedPages: allocated,
      underPressure,
      rate: this.#rate,
    });
    if (memory === "near-exhaustion" && !this.#lowMemory) this.#enterLowMemory();
  }

  #enterLowMemory(): void {
    const read = (s: string) => this.ctx.read(s, GLOBAL_NETNS)?.[0] ?? null;
    const rules = enterLowMemory({
      noMetricsSave: read(SYSCTL.noMetricsSave),
      noSsthreshMetricsSave: read(SYSCTL.noSsthreshMetricsSave),
      highOrderAllocDisable: read(SYSCTL.highOrderAllocDisable),
      maxSynBacklog: read(SYSCTL.maxSynBacklog),
    }, this.#rate);
    const applied = rules.filter((r) => this.ctx.apply([changeDecision(r)], GLOBAL_NETNS));
    this.#lowMemory = lowMemoryChanges(applied);
  }
}
