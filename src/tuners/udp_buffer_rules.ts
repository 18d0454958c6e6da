/**
 * The udp_buffer tuner's decisions as pure functions on plain numbers (bpftune-behaviour.md
 * §2.9): live sysctl values and observations in, proposed changes (or "at its ceiling") out.
 *
 * Scenario names and reason lines keep bpftune's wording. Fixed bpftune bugs: udp_mem growth
 * never writes 0 into min/pressure (bpftune left them uninitialised when they were already above
 * their caps; see memory_pool.ts), the drop rate never divides by zero (no datagrams: rate 0),
 * and rmem_default never grows past rmem_max (rmem_max follows, within [8 KiB, 256 MiB]).
 * Sockets whose application set SO_RCVBUF never drive growth: they chose their size.
 */
import { type LearningRate, nearlyFull } from "../tuning/learning_rate.ts";
import { proportionalGrowth } from "../tuning/growth.ts";
import { changeDecision, type Decision } from "../tuning/proposal.ts";
import { POSITIVE_INT_DOMAIN, type ValueDomain } from "../tuning/domain.ts";
import type { ScenarioDecl, TunableDecl } from "../tuning/tuner.ts";
import { grownPool } from "./memory_pool.ts";
import {
  classifyTcpMemory as classifyPool,
  MEMORY_STATE_LABEL,
  type MemoryState,
} from "./tcp_buffer_rules.ts";

export type { Decision, MemoryState };

export const UDP_BUFFER_TUNER = "udp_buffer";

export const UDP_SYSCTL = {
  mem: "net.ipv4.udp_mem",
  rmemMax: "net.core.rmem_max",
  rmemDefault: "net.core.rmem_default",
} as const;

/** bpftune's UDP_BUFFER_MIN / UDP_BUFFER_MAX: receive buffer sizes outside are never written. */
export const UDP_BUFFER_MIN = 8192;
export const UDP_BUFFER_MAX = 268435456;

const UDP_MEM_DOMAIN: ValueDomain = { min: 1, max: Number.MAX_SAFE_INTEGER };

/** bpftune's three tunables; all are host-wide (read-only or absent inside other namespaces). */
export const UDP_BUFFER_TUNABLES: TunableDecl[] = [
  // Pages, an unsigned long vector: the safe-integer bound is ours; 0 would starve UDP.
  { sysctl: UDP_SYSCTL.mem, values: 3, scope: "global", domain: UDP_MEM_DOMAIN },
  { sysctl: UDP_SYSCTL.rmemMax, values: 1, scope: "global", domain: POSITIVE_INT_DOMAIN },
  { sysctl: UDP_SYSCTL.rmemDefault, values: 1, scope: "global", domain: POSITIVE_INT_DOMAIN },
];

export const UDP_SCENARIO = {
  bufferIncrease: 0,
  bufferDecrease: 1,
  memPressure: 2,
  memExhaustion: 3,
} as const;

/** bpftune's scenario table, verbatim. */
export const UDP_BUFFER_SCENARIOS: readonly ScenarioDecl[] = [
  {
    id: 0,
    name: "need to increase UDP buffer size(s)",
    description: "Need to increase buffer size(s) to maximize throughput and reduce loss",
  },
  {
    id: 1,
    name: "need to decrease UDP buffer size(s)",
    description: "Need to decrease buffer size(s) to reduce memory utilization",
  },
  {
    id: 2,
    name: "approaching UDP memory pressure",
    description: "Since memory pressure/exhaustion are unstable system states, adjust UDP " +
      "memory-related tunables",
  },
  {
    id: 3,
    name: "approaching UDP memory exhaustion",
    description: "Since memory exhaustion is a highly unstable state, adjust UDP memory-related " +
      "tunables to avoid exhaustion",
  },
];

function isCount(v: unknown): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
}

function change(
  scenario: number,
  sysctl: string,
  from: number[],
  to: number[],
  reason: string,
): Decision {
  return changeDecision({
    scenario: UDP_BUFFER_SCENARIOS[scenario].name,
    sysctl,
    from,
    to,
    reason,
  });
}

/** bpftune's rmem line: "Due to <why> change <sysctl> from <a> -> <b>". */
function scalarReason(why: string, sysctl: string, from: number, to: number): string {
  return `Due to ${why} change ${sysctl} from ${from} -> ${to}`;
}

const INCREASE_WHY = "need to increase receive buffer size to maximize throughput";

/**
 * A receive-buffer size after drops at `current`: the shared proportional growth (more drops, a
 * bigger step), within [UDP_BUFFER_MIN, UDP_BUFFER_MAX]. The tuner grows rmem_default (and
 * rmem_max with it) this far; audit recommends it for rmem_max.
 */
export function udpBufferTarget(current: number, hits: number | undefined, rate: LearningRate) {
  return Math.min(
    UDP_BUFFER_MAX,
    Math.max(UDP_BUFFER_MIN, proportionalGrowth({ current, hits, rate })),
  );
}

export interface RcvqFullInput {
  rmemMax: number;
  rmemDefault: number;
  /** sk_rcvbuf of the socket whose receive queue overflowed, bytes. */
  observedRcvbuf: number;
  /** SO_RCVBUF set by the application (the kernel already filters these; checked again). */
  userLocked: boolean;
  /** UDP memory state: buffers never grow near pressure or exhaustion. */
  memory: MemoryState;
  rate: LearningRate;
  /** Drops folded into this event: more drops, a bigger step (the shared proportional growth). */
  hits?: number;
}

/**
 * A socket without SO_RCVBUF (so sized by rmem_default) dropped datagrams at a full receive
 * queue: grow rmem_default (bpftune's "increase UDP buffer size(s)"), and rmem_max with it
 * where the new default would pass it. A socket smaller than the current default predates an
 * earlier growth: it is no evidence for more. Changes come out in write order (max first).
 */
export function rcvqFullDecisions(input: RcvqFullInput): Decision[] {
  const { rmemMax, rmemDefault, observedRcvbuf: observed, rate } = input;
  if (!isCount(rmemMax) || !isCount(rmemDefault) || !isCount(observed)) return [];
  if (rmemMax === 0 || rmemDefault === 0) return [];
  if (input.userLocked || input.memory !== "normal") return [];
  if (!nearlyFull(observed, rmemDefault, rate)) return [];
  if (rmemDefault >= UDP_BUFFER_MAX) {
    return [{
      kind: "at-ceiling",
      sysctl: UDP_SYSCTL.rmemDefault,
      value: [rmemDefault],
      ceiling: UDP_BUFFER_MAX,
    }];
  }
  const target = udpBufferTarget(Math.max(rmemDefault, observed), input.hits, rate);
  if (target <= rmemDefault) return [];
  const out: Decision[] = [];
  if (target > rmemMax) {
    out.push(change(
      UDP_SCENARIO.bufferIncrease,
      UDP_SYSCTL.rmemMax,
      [rmemMax],
      [target],
      scalarReason(INCREASE_WHY, UDP_SYSCTL.rmemMax, rmemMax, target),
    ));
  }
  out.push(change(
    UDP_SCENARIO.bufferIncrease,
    UDP_SYSCTL.rmemDefault,
    [rmemDefault],
    [target],
    scalarReason(INCREASE_WHY, UDP_SYSCTL.rmemDefault, rmemDefault, target),
  ));
  return out;
}

/** UDP memory state from udp_mem and UDP's allocated pages; null on implausible input. */
export function classifyUdpMemory(input: {
  udpMem: readonly number[];
  allocatedPages: number;
  underPressure?: boolean;
  rate: LearningRate;
}): MemoryState | null {
  if (input.udpMem.length !== 3) return null;
  return classifyPool({
    tcpMem: input.udpMem as [number, number, number],
    allocatedPages: input.allocatedPages,
    underPressure: input.underPressure,
    rate: input.rate,
  });
}

export interface UdpMemInput {
  udpMem: readonly number[];
  allocatedPages: number;
  /** The kernel refused memory (-ENOBUFS, sock_exceed_buf_limit): at least "under pressure". */
  underPressure: boolean;
  /** nr_free_buffer_pages(); 0 (unknown) disables udp_mem growth. */
  freeBufferPages: number;
  rate: LearningRate;
}

/**
 * UDP memory nearly at udp_mem[1] or [2] (or the kernel refused memory): grow udp_mem as bpftune
 * does (scenarios "approaching UDP memory pressure/exhaustion"), within nfbp/16, /8, /4.
 */
export function udpMemDecision(input: UdpMemInput): Decision | null {
  const memory = classifyUdpMemory(input);
  if (memory === null || memory === "normal") return null;
  if (!isCount(input.freeBufferPages) || input.freeBufferPages === 0) return null;
  const from = [...input.udpMem];
  const to = grownPool(from, memory, input.freeBufferPages, input.rate);
  if (to.every((v, i) => v === from[i])) {
    return {
      kind: "at-ceiling",
      sysctl: UDP_SYSCTL.mem,
      value: from,
      ceiling: Math.floor(input.freeBufferPages / 4),
    };
  }
  const scenario = memory === "near-exhaustion"
    ? UDP_SCENARIO.memExhaustion
    : UDP_SCENARIO.memPressure;
  return change(
    scenario,
    UDP_SYSCTL.mem,
    from,
    to,
    `Due to ${MEMORY_STATE_LABEL[memory]} change ${UDP_SYSCTL.mem}(min pressure max) from ` +
      `(${from.join(" ")}) -> (${to.join(" ")})`,
  );
}

/**
 * Datagrams dropped at full receive buffers per 1000 datagrams that reached UDP (delivered plus
 * dropped), over an interval; 0 when none arrived. bpftune divided by InDatagrams alone and
 * crashed on 0.
 */
export function dropRatePerMille(inDatagrams: number, drops: number): number {
  if (!isCount(inDatagrams) || !isCount(drops)) return 0;
  const total = inDatagrams + drops;
  return total === 0 ? 0 : Math.round((drops * 1000) / total);
}

/** bpftune's NOTICE line, same fields and order. */
export function dropRateLine(netns: string, inDatagrams: number, drops: number): string {
  return `netns: ${netns} UDP in ${inDatagrams}, drops ${drops} drop rate ` +
    `${dropRatePerMille(inDatagrams, drops)}`;
}
