/**
 * The SYN-backlog part of the tcp_buffer tuner: per namespace, what SYN-queue overflows were seen,
 * how they go with accepted connections, and whether bpfpilot turned syncookies on there; each
 * overflow is decided by tcp_syn_backlog_rules.ts and written in the listener's namespace
 * (tcp_max_syn_backlog and tcp_syncookies are per namespace).
 *
 * Signals: the BPF hook (SYN-ACK retransmits of a listener whose queue is at what the kernel
 * admits) is the trigger; the namespace's /proc/net/netstat and snmp counters are read only then.
 * Without the hook, the watched namespaces' counters are polled once a second: SYN-queue drops
 * (ListenDrops that were not ListenOverflows) count as an overflow.
 */
import { DecayingCorrelation } from "../tuning/correlation.ts";
import type { LearningRate } from "../tuning/learning_rate.ts";
import type { TunerContext, TunerMetric } from "../tuning/tuner.ts";
import { readNetnsCounters } from "../kernel/proc/netns_counters.ts";
import { type MemoryState, SYSCTL } from "./tcp_buffer_rules.ts";
import {
  type SynCounters,
  synCounters,
  synCountersSince,
  synFloodDecision,
  synQueueDrops,
} from "./tcp_syn_backlog_rules.ts";

/** Namespaces remembered at once; the least recently flooded is forgotten first. */
export const MAX_SYN_NAMESPACES = 256;
/** The fallback poll reads a namespace's counters at most this often. */
export const SYN_POLL_INTERVAL_MS = 1000;

/** What the BPF event says of the overflowing listener. */
export interface SynQueueFull {
  qlen: number;
  max_ack_backlog: number;
  max_syn_backlog: number;
  syncookies: number;
  port: number;
}

interface NetnsSynState {
  /** SYN-queue overflows seen (hook hits, or drops when polling), cumulative. */
  floods: number;
  /** (floods, accepted connections) at each overflow: bpftune's correlation, counted right. */
  accepts: DecayingCorrelation;
  /** Counters when bpfpilot turned syncookies on here; null when it did not. */
  cookiesOnAt: SynCounters | null;
  /** The fallback poll's last reading. */
  polled: SynCounters | null;
}

export interface SynBacklogDeps {
  ctx: TunerContext;
  rate: LearningRate;
  /** TCP's memory state now (host-wide); null when unreadable. */
  memory(): MemoryState | null;
  /** A namespace's SYN counters; default: its /proc/net/netstat and /proc/net/snmp. */
  counters?(netns: string): SynCounters;
}

function readSynCounters(netns: string): SynCounters {
  const c = readNetnsCounters(netns, ["netstat", "snmp"]);
  return synCounters(c.netstat, c.snmp);
}

export class SynBacklogWatch {
  readonly #ctx: TunerContext;
  readonly #deps: SynBacklogDeps;
  readonly #counters: (netns: string) => SynCounters;
  readonly #netns = new Map<string, NetnsSynState>();
  #hooked = true;
  #polledAt = -Infinity;

  /** Namespaces that are gone: their counters and correlation go. */
  forgetNetns(gone: ReadonlySet<string>): void {
    for (const netns of gone) this.#netns.delete(netns);
  }

  constructor(deps: SynBacklogDeps) {
    this.#ctx = deps.ctx;
    this.#deps = deps;
    this.#counters = deps.counters ?? readSynCounters;
  }

  /** Whether the BPF hook attached; without it onTick() polls the watched namespaces. */
  set hooked(on: boolean) {
    this.#hooked = on;
  }

  /** The BPF hook saw a listener's SYN queue at what the kernel admits, `hits` times. */
  onQueueFull(netns: string, full: SynQueueFull, hits: number): void {
    if (this.#ctx.log.debugEnabled) {
      this.#ctx.log.debug(
        `SYN queue of listener on port ${full.port} holds ${full.qlen} requests (backlog ` +
          `${full.max_ack_backlog}, tcp_max_syn_backlog ${full.max_syn_backlog}, tcp_syncookies ` +
          `${full.syncookies}, ${hits} hits)`,
      );
    }
    this.#overflow(netns, hits, full.max_ack_backlog, this.#counters(netns));
  }

  /** Once a second: without the hook, SYN-queue drops in the watched namespaces. */
  onTick(): void {
    if (this.#hooked) return;
    const now = this.#ctx.now();
    if (now - this.#polledAt < SYN_POLL_INTERVAL_MS) return;
    this.#polledAt = now;
    for (const netns of this.#ctx.watchedNetns()) {
      const st = this.#state(netns);
      const c = this.#counters(netns);
      const before = st.polled;
      st.polled = c;
      const drops = before ? synQueueDrops(synCountersSince(before, c)) : null;
      if (drops) this.#overflow(netns, drops, null, c);
    }
  }

  #state(netns: string): NetnsSynState {
    let st = this.#netns.get(netns);
    if (st) {
      this.#netns.delete(netns); // re-inserted last: the map's order is recency
    } else {
      st = { floods: 0, accepts: new DecayingCorrelation(), cookiesOnAt: null, polled: null };
      if (this.#netns.size >= MAX_SYN_NAMESPACES) {
        this.#netns.delete(this.#netns.keys().next().value!);
      }
    }
    this.#netns.set(netns, st);
    return st;
  }

  #overflow(netns: string, hits: number, listenBacklog: number | null, c: SynCounters): void {
    const ctx = this.#ctx;
    const st = this.#state(netns);
    const now = ctx.now();
    st.floods += hits;
    if (c.passiveOpens !== null) st.accepts.observe(st.floods, c.passiveOpens, now);
    const backlog = ctx.read(SYSCTL.maxSynBacklog, netns)?.[0];
    if (backlog === undefined) return;
    const decision = synFloodDecision({
      maxSynBacklog: backlog,
      syncookies: ctx.read(SYSCTL.syncookies, netns)?.[0] ?? null,
      cookiesSinceOn: st.cookiesOnAt ? synCountersSince(st.cookiesOnAt, c) : null,
      memory: this.#deps.memory() ?? "normal",
      acceptCorrelation: st.accepts.weight(now) >= st.accepts.minSamples
        ? st.accepts.correlation(now)
        : null,
      listenBacklog,
      rate: this.#deps.rate,
    });
    if (!ctx.apply([decision], netns) || decision?.kind !== "change") return;
    const { sysctl, to } = decision.proposal;
    if (sysctl === SYSCTL.syncookies) st.cookiesOnAt = to[0] === 0 ? null : c;
  }

  /** Overflows seen per namespace (a counter). */
  metrics(): TunerMetric[] {
    return [...this.#netns].map(([netns, st]) => ({
      name: "tcp_buffer_syn_queue_overflows",
      type: "counter",
      help: "Listener SYN queues seen at what the kernel admits (tcp_max_syn_backlog's 3/4 with " +
        "syncookies off, or the listen backlog).",
      labels: { netns },
      value: st.floods,
    }));
  }

  /** One line when SYN queues overflowed. */
  summary(): string[] {
    const flooded = [...this.#netns].filter(([, st]) => st.floods > 0);
    if (flooded.length === 0) return [];
    const total = flooded.reduce((n, [, st]) => n + st.floods, 0);
    return [
      `# tcp_buffer: ${total} SYN queue overflows in ${flooded.length} namespace(s) ` +
      `(${flooded.map(([ns]) => ns).join(", ")})`,
    ];
  }
}
