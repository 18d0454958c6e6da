/**
 * The udp_buffer tuner (bpftune's udp_buffer_tuner, bpftune-behaviour.md §2.9): grows
 * net.core.rmem_default (and rmem_max with it) when UDP sockets without SO_RCVBUF drop datagrams
 * at a full receive queue, and net.ipv4.udp_mem when UDP memory nears pressure or exhaustion.
 * All three sysctls are host-wide: a container's drops grow the host's values, logged as such.
 *
 * bpftune bugs fixed here: udp_mem growth never writes an uninitialised 0 into min/pressure
 * (memory_pool.ts); the drop rate per 1000 datagrams never divides by zero (no datagrams: 0);
 * growth is bounded to [8 KiB, 256 MiB] before anything is written, and rmem_default never ends
 * above rmem_max; bpftune refused to run in legacy mode, this tuner falls back to raw_tp.
 * Decisions are the pure rules of udp_buffer_rules.ts against live values.
 */
import type { BpfpEvent } from "../tuning/event.ts";
import { freeBufferPagesOrZero } from "../kernel/proc/zoneinfo.ts";
import { type LearningRate } from "../tuning/learning_rate.ts";
import type { TunerContext, TunerDefinition } from "../tuning/tuner.ts";
import type { HookDecl } from "../kernel/hooks.ts";
import { GLOBAL_NETNS, netnsKey } from "../kernel/netns.ts";
import { counter } from "../kernel/proc/snmp.ts";
import { readNetnsCounters } from "../kernel/proc/netns_counters.ts";
import udpBufferObject from "../../dist/bpf/udp_buffer.bpf.o" with { type: "bytes" };
import { contract } from "../../dist/bpf/udp_buffer.contract.ts";
import { configBytes, readPayload } from "../tuning/contract.ts";
import { u32Key } from "../libbpf/map.ts";
import {
  classifyUdpMemory,
  type Decision,
  dropRateLine,
  rcvqFullDecisions,
  UDP_BUFFER_SCENARIOS,
  UDP_BUFFER_TUNABLES,
  UDP_SYSCTL,
  udpMemDecision,
} from "./udp_buffer_rules.ts";

const KIND = contract.kinds;

const SOCK_RCVBUF_LOCK = 2;
const ENOBUFS = 105;
/** One event a second per (netns, kind): the cool-down allows one change a second at most. */
const RATE_LIMIT_NS = 1_000_000_000n;

const UDP_BUFFER_HOOKS: HookDecl[] = [
  {
    name: "udp_rcvq",
    description: "UDP datagrams dropped at a full socket receive queue or for lack of UDP memory",
    candidates: [
      // The socket is an argument: SO_RCVBUF-locked sockets are filtered in the kernel.
      { kind: "tp_btf", target: "udp_fail_queue_rcv_skb", program: "bpfp_ub_rcv_btf" },
      // skb:kfree_skb with reason SOCKET_RCVBUFF/PROTO_MEM and its rx_sk argument (6.11+).
      { kind: "tp_btf", target: "kfree_skb", program: "bpfp_ub_rcv_drop" },
      // bpftune's legacy attach point; the classic tracepoint has no socket and is not used.
      { kind: "raw_tp", target: "udp_fail_queue_rcv_skb", program: "bpfp_ub_rcv_raw" },
    ],
  },
  {
    name: "udp_mem",
    description: "UDP memory over udp_mem (a UDP socket's receive allocation refused)",
    optional: true, // -ENOBUFS drops on udp_rcvq report memory trouble too
    candidates: [
      { kind: "tp_btf", target: "sock_exceed_buf_limit", program: "bpfp_ub_mem_btf" },
      { kind: "tracepoint", target: "sock/sock_exceed_buf_limit", program: "bpfp_ub_mem_tp" },
    ],
  },
];

export const udpBufferTuner: TunerDefinition = {
  name: contract.tuner,
  id: contract.id,
  contract,
  description: "grows rmem_default/rmem_max and udp_mem when UDP drops datagrams for lack of room",
  object: udpBufferObject,
  tunables: UDP_BUFFER_TUNABLES,
  scenarios: [...UDP_BUFFER_SCENARIOS],
  hooks: UDP_BUFFER_HOOKS,
  create: (ctx) => new UdpBufferTuner(ctx),
};

/** UDP counters of one namespace at the last look, for drop rates over an interval. */
interface UdpSample {
  inDatagrams: number;
  drops: number;
}

function sumDefined(...xs: (number | undefined)[]): number | undefined {
  const d = xs.filter((x): x is number => x !== undefined);
  return d.length ? d.reduce((a, b) => a + b, 0) : undefined;
}

class UdpBufferTuner {
  readonly #rate: LearningRate;
  readonly #nfbp: number;
  readonly #samples = new Map<string, UdpSample>();
  #drivenBy = new Set<string>();
  /** Namespaces of #drivenBy that are gone (counted, no longer named). */
  #drivenByGone = 0;

  constructor(private readonly ctx: TunerContext) {
    this.#rate = ctx.learningRate as LearningRate;
    this.#nfbp = freeBufferPagesOrZero((m) => ctx.log.warn(m), "udp_mem");
  }

  configure(obj: import("../libbpf/object.ts").BpfObject): void {
    obj.map("bpfp_config").update(
      u32Key(0),
      configBytes(contract, { rl_interval_ns: RATE_LIMIT_NS }),
    );
  }

  onEvent(ev: BpfpEvent): void {
    if (ev.kind === KIND.UB_RCVQ_FULL) {
      const p = readPayload(ev.data, contract.payload.rcvq);
      if (p.err === ENOBUFS) return this.#memory(null, true);
      return this.#rcvqFull(ev, p);
    }
    if (ev.kind === KIND.UB_MEM_PRESSURE) {
      return this.#memory(readPayload(ev.data, contract.payload.mem).allocated, true);
    }
  }

  summary(): string[] {
    if (this.#drivenBy.size === 0 && this.#drivenByGone === 0) return [];
    const from = [
      ...this.#drivenBy,
      ...(this.#drivenByGone ? [`${this.#drivenByGone} namespace(s) gone since`] : []),
    ];
    return [
      `# udp_buffer: receive-queue drops came from ${from.join(", ")}; ` +
      `rmem_default, rmem_max and udp_mem are host-wide, so changes apply to every namespace`,
    ];
  }

  onNetnsGone(gone: ReadonlySet<string>): void {
    for (const netns of gone) {
      this.#samples.delete(netns);
      if (this.#drivenBy.delete(netns)) this.#drivenByGone++;
    }
  }

  /** In order; rmem_default must not pass rmem_max, so a refused rmem_max change ends it. */
  #apply(decisions: (Decision | null)[]): boolean {
    let applied = false;
    for (const d of decisions) {
      const ok = this.ctx.apply([d], GLOBAL_NETNS);
      applied ||= ok;
      if (!ok && d?.kind === "change" && d.proposal.sysctl === UDP_SYSCTL.rmemMax) break;
    }
    return applied;
  }

  /** UDP's memory state now (host), from sockstat when the event did not carry it. */
  #memoryState(allocated: number | null, underPressure: boolean) {
    const udpMem = this.ctx.read(UDP_SYSCTL.mem, GLOBAL_NETNS);
    const pages = allocated ??
      counter(readNetnsCounters(GLOBAL_NETNS, ["sockstat"]).sockstat, "UDP", "mem") ?? null;
    if (!udpMem || pages === null) return { udpMem, pages, state: null };
    const state = classifyUdpMemory({
      udpMem,
      allocatedPages: pages,
      underPressure,
      rate: this.#rate,
    });
    return { udpMem, pages, state };
  }

  #memory(allocated: number | null, underPressure: boolean): void {
    if (this.#nfbp === 0) return;
    const { udpMem, pages } = this.#memoryState(allocated, underPressure);
    if (!udpMem || pages === null) return;
    this.#apply([udpMemDecision({
      udpMem,
      allocatedPages: pages,
      underPressure,
      freeBufferPages: this.#nfbp,
      rate: this.#rate,
    })]);
  }

  /** Datagrams in and dropped at full receive buffers since the last look (IPv4 + IPv6). */
  #dropsSinceLast(netns: string): UdpSample | null {
    const c = readNetnsCounters(netns, ["snmp", "snmp6"]);
    const inDatagrams = sumDefined(
      counter(c.snmp, "Udp", "InDatagrams"),
      c.snmp6?.get("Udp6InDatagrams"),
    );
    const drops = sumDefined(
      counter(c.snmp, "Udp", "RcvbufErrors"),
      c.snmp6?.get("Udp6RcvbufErrors"),
    );
    if (inDatagrams === undefined || drops === undefined) return null;
    const last = this.#samples.get(netns) ?? { inDatagrams: 0, drops: 0 };
    this.#samples.set(netns, { inDatagrams, drops });
    return {
      inDatagrams: Math.max(0, inDatagrams - last.inDatagrams),
      drops: Math.max(0, drops - last.drops),
    };
  }

  #rcvqFull(ev: BpfpEvent, p: { rcvbuf: number; rmem_alloc: number; userlocks: number }): void {
    const rmemMax = this.ctx.read(UDP_SYSCTL.rmemMax, GLOBAL_NETNS)?.[0];
    const rmemDefault = this.ctx.read(UDP_SYSCTL.rmemDefault, GLOBAL_NETNS)?.[0];
    if (rmemMax === undefined || rmemDefault === undefined) return;
    const netns = netnsKey(ev.netns);
    const rcvbuf = p.rcvbuf;
    const locks = p.userlocks;
    if (this.ctx.log.debugEnabled) {
      this.ctx.log.debug(
        `UDP receive queue full: sk_rcvbuf ${rcvbuf}, queued ${p.rmem_alloc} (pid ${ev.pid} ` +
          `${ev.comm}, userlocks ${locks}, ${ev.count} drops)`,
      );
    }
    const { state } = this.#memoryState(null, false);
    const decisions = rcvqFullDecisions({
      rmemMax,
      rmemDefault,
      observedRcvbuf: rcvbuf,
      userLocked: (locks & SOCK_RCVBUF_LOCK) !== 0,
      memory: state ?? "normal",
      rate: this.#rate,
      hits: ev.count,
    });
    if (decisions.length === 0) return;
    const sample = this.#dropsSinceLast(netns);
    if (sample) {
      this.ctx.log.notice(dropRateLine(String(ev.netns), sample.inDatagrams, sample.drops));
    }
    if (this.#apply(decisions) && netns !== GLOBAL_NETNS) this.#drivenBy.add(netns);
  }
}
