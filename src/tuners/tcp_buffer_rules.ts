/**
 * The tcp_buffer tuner's decisions as pure functions on plain numbers: live sysctl values and
 * observations in, a proposed change (or "at its ceiling", or nothing) out. No I/O, no clock;
 * cool-down and coalescing are the rate gate's job, the latency brake comes from correlation.ts.
 *
 * Scenario names, descriptions and the reason lines keep bpftune's wording so logs look the
 * same; the logic keeps bpftune's intent and fixes its listed bugs: growth is clamped to explicit
 * ceilings instead of running to INT_MAX, tcp_mem never shrinks through a "growth", the
 * "shrink per-socket maxima when tcp_mem cannot grow" path is reachable, leaving low memory
 * restores exactly what entering changed, and high_order_alloc_disable (host-only) is global.
 */

import {
  BOOLEAN_DOMAIN,
  clampGrowth,
  clampShrink,
  domainLookup,
  INT_MAX,
  POSITIVE_INT_DOMAIN,
  SYN_BACKLOG_DOMAIN,
  SYNCOOKIES_DOMAIN,
  withinDomain,
} from "../tuning/domain.ts";
import { type LearningRate, nearlyFull, shrink } from "../tuning/learning_rate.ts";
import { proportionalGrowth } from "../tuning/growth.ts";
import type { Decision, RuleProposal } from "../tuning/proposal.ts";
import type { ScenarioDecl, TunableDecl } from "../tuning/tuner.ts";
import { tcpMemCeilings } from "./tcp_buffer_limits.ts";

/**
 * After a trim, growth needs a round trip that needed more than this times the need the trimmed
 * max was sized for.
 */
export const FRESH_MARGIN = 1.25;
/** A trimmed max holds this many times the path's need (losses, RTT jitter): tcp_buffer_settle. */
export const TRIM_HEADROOM = 1.5;
/**
 * A receive socket the kernel is growing whose arrival rate per round trip is at least this share
 * of its buffer fills its window within a round trip or two (slow start doubles it each one): the
 * max is grown to twice the buffer the kernel gives it now (bufferDecision).
 */
export const FILLS_WINDOW = 0.5;
/**
 * A receive max no trim has settled grows only for a socket whose arrival rate per round trip (as
 * buffer) is more than this share of it: the max holds its window back. Below it a larger max
 * would go unused. Loopback's flows need 16-95 KB a round trip while the kernel's auto-tuning asks
 * for MBs of headroom: the max of every namespace with traffic grew in 25 % steps and was trimmed
 * back 5 s later, thousands of changes a minute at 1,000 namespaces. Half, as FILLS_WINDOW: slow
 * start measures 0.3 then 0.6 of the max the round trips before its window is full (~1x), and a
 * quarter let a loopback flow at the default 128 KiB buffer (131 KB a round trip) grow a 512 KiB
 * max.
 */
export const WINDOW_LIMITED_SHARE = 0.5;

export const TCP_BUFFER_TUNER = "tcp_buffer";

export const SYSCTL = {
  wmem: "net.ipv4.tcp_wmem",
  rmem: "net.ipv4.tcp_rmem",
  mem: "net.ipv4.tcp_mem",
  moderateRcvbuf: "net.ipv4.tcp_moderate_rcvbuf",
  noMetricsSave: "net.ipv4.tcp_no_metrics_save",
  noSsthreshMetricsSave: "net.ipv4.tcp_no_ssthresh_metrics_save",
  highOrderAllocDisable: "net.core.high_order_alloc_disable",
  syncookies: "net.ipv4.tcp_syncookies",
  maxSynBacklog: "net.ipv4.tcp_max_syn_backlog",
  maxOrphans: "net.ipv4.tcp_max_orphans",
} as const;

/**
 * bpftune's ten tunables, in its order. Differences: high_order_alloc_disable exists only in the
 * host namespace, so it is global (bpftune wrote it inside containers and failed); tcp_syncookies
 * is optional (absent without CONFIG_SYN_COOKIES; bpftune set the flag in the wrong field).
 * Domains: a minimum of 1 is where writing 0 would not mean "a small value": tcp_rmem/tcp_wmem
 * reject 0 (extra1 = 1), tcp_mem 0 starves TCP entirely, a 0 SYN backlog is silently raised.
 */
export const TCP_BUFFER_TUNABLES: TunableDecl[] = [
  { sysctl: SYSCTL.wmem, values: 3, scope: "netns", domain: POSITIVE_INT_DOMAIN },
  { sysctl: SYSCTL.rmem, values: 3, scope: "netns", domain: POSITIVE_INT_DOMAIN },
  // An unsigned long vector in pages: the safe-integer bound is ours, not the kernel's.
  {
    sysctl: SYSCTL.mem,
    values: 3,
    scope: "global",
    domain: { min: 1, max: Number.MAX_SAFE_INTEGER },
  },
  { sysctl: SYSCTL.moderateRcvbuf, values: 1, scope: "netns", domain: BOOLEAN_DOMAIN },
  { sysctl: SYSCTL.noMetricsSave, values: 1, scope: "netns", domain: BOOLEAN_DOMAIN },
  { sysctl: SYSCTL.noSsthreshMetricsSave, values: 1, scope: "netns", domain: BOOLEAN_DOMAIN },
  { sysctl: SYSCTL.highOrderAllocDisable, values: 1, scope: "global", domain: BOOLEAN_DOMAIN },
  {
    sysctl: SYSCTL.syncookies,
    values: 1,
    scope: "netns",
    optional: true,
    domain: SYNCOOKIES_DOMAIN,
  },
  { sysctl: SYSCTL.maxSynBacklog, values: 1, scope: "netns", domain: SYN_BACKLOG_DOMAIN },
  { sysctl: SYSCTL.maxOrphans, values: 1, scope: "global", domain: POSITIVE_INT_DOMAIN },
];

const domainOf = domainLookup([{ tunables: TCP_BUFFER_TUNABLES }]);

/** Scenario ids, as in bpftune's tcp_buffer_tuner.h. */
export const SCENARIO = {
  bufferIncrease: 0,
  bufferDecrease: 1,
  bufferDecreaseLatency: 2,
  memPressure: 3,
  memExhaustion: 4,
  moderateRcvbufEnable: 5,
  lowMemEnter: 6,
  lowMemLeave: 7,
  synBacklogIncrease: 8,
  synBacklogDecrease: 9,
  syncookiesEnable: 10,
  syncookiesDisable: 11,
  maxOrphansIncrease: 12,
} as const;

/** bpftune's scenario table, verbatim (including its "furthern" typo) for log compatibility. */
export const TCP_BUFFER_SCENARIOS: readonly ScenarioDecl[] = [
  {
    id: 0,
    name: "need to increase TCP buffer size(s)",
    description: "Need to increase buffer size(s) to maximize throughput",
  },
  {
    id: 1,
    name: "need to decrease TCP buffer size(s)",
    description: "Need to decrease buffer size(s) to reduce memory utilization",
  },
  {
    id: 2,
    name: "need to decrease TCP buffer size due to latency",
    description: "Latency is starting to correlate with buffer size increases, so decrease " +
      "buffer size to avoid this effect",
  },
  {
    id: 3,
    name: "approaching TCP memory pressure",
    description: "Since memory pressure/exhaustion are unstable system states, adjust tcp " +
      "memory-related tunables",
  },
  {
    id: 4,
    name: "approaching TCP memory exhaustion",
    description: "Since memory exhaustion is a highly unstable state, adjust TCP memory-related " +
      "tunables to avoid exhaustion",
  },
  {
    id: 5,
    name: "match receive buffer size with throughput needs",
    description: "Since we are tuning rcvbuf max size, ensure auto-tuning of rcvbuf size for the " +
      "connection is enabled to pick optimal rcvbuf size",
  },
  {
    id: 6,
    name: "set tunable on entering low-memory state",
    description: "In low-memory situations, avoid activities like skb high order allocations, " +
      "per-path TCP metric collection which can lead to overheads",
  },
  {
    id: 7,
    name: "unset tunable set earlier in low-memory state",
    description: "Due to easing of memory strain, unset tunables to allow skb high order " +
      "allocations, (re)-enable TCP metrics collection etc",
  },
  {
    id: 8,
    name: "increase maximum syn backlog under load since syncookies are disabled",
    description: "Due to the fact that syncookies are disabled and we are seeing a large number " +
      "of legitimate-seeming TCP connections, increase TCP maximum SYN backlog queue length",
  },
  {
    id: 9,
    name: "decrease maximum syn backlog due to large numbers of uncompleted connections",
    description: "A large number of connection requests (SYNs) uncorrelated with connection " +
      "establishment suggest a more cautious approach to handling pending connections to " +
      "avoid Denial of Service attacks",
  },
  {
    id: 10,
    name: "enable syncookies as furthern SYN backlog increases do not help",
    description: "SYN flood conditions have been detected, but further increases to SYN backlog " +
      "are not advisable; try using syncookies instead",
  },
  {
    id: 11,
    name: "disable syncookies as they are ineffective",
    description: "TCP syncookies are not effective; none have been validated successfully",
  },
  { id: 12, name: "increase max number of orphaned sockets", description: "" },
];

/** bpftune TCP_SYN_BACKLOG_MIN: the SYN backlog is never shrunk below this. */
export const TCP_SYN_BACKLOG_MIN = 128;

export type Triple = readonly number[];

/**
 * TCP memory state, most severe first: allocated pages nearly at tcp_mem[2], the kernel's own
 * memory-pressure flag, allocated pages nearly at tcp_mem[1], or none of these.
 */
export type MemoryState = "near-exhaustion" | "under-pressure" | "near-pressure" | "normal";

/** bpftune's wording for each state, used in reason lines. */
export const MEMORY_STATE_LABEL: Readonly<Record<MemoryState, string>> = {
  "near-exhaustion": "near memory exhaustion",
  "under-pressure": "under memory pressure",
  "near-pressure": "near memory pressure",
  normal: "normal memory conditions",
};

export type { Decision };

function scenarioName(id: number): string {
  return TCP_BUFFER_SCENARIOS[id].name;
}

export function isCount(v: unknown): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
}

function isTriple(v: Triple | undefined): v is Triple {
  return v !== undefined && v.length === 3 && v.every(isCount);
}

/** A change, or null when it is none or would write a value the sysctl does not take plainly. */
export function change(
  scenario: number,
  sysctl: string,
  from: readonly number[],
  to: readonly number[],
  reason: string,
): Decision | null {
  if (from.every((v, i) => v === to[i]) || !withinDomain(domainOf(sysctl), to)) return null;
  return {
    kind: "change",
    proposal: { scenario: scenarioName(scenario), sysctl, from: [...from], to: [...to], reason },
  };
}

/** bpftune's line: "Due to <why> change <sysctl>(min default max) from (a b c) -> (d e f)". */
export function vectorReason(
  why: string,
  sysctl: string,
  fields: string,
  from: readonly number[],
  to: readonly number[],
): string {
  return `Due to ${why} change ${sysctl}(${fields}) from (${from.join(" ")}) -> (${to.join(" ")})`;
}

/** Classifies TCP memory use; null when the inputs are not plausible kernel values. */
export function classifyTcpMemory(input: {
  tcpMem: Triple;
  allocatedPages: number;
  underPressure?: boolean;
  rate: LearningRate;
}): MemoryState | null {
  const { tcpMem, allocatedPages, rate } = input;
  if (!isTriple(tcpMem) || tcpMem.some((v) => v === 0) || !isCount(allocatedPages)) return null;
  if (nearlyFull(allocatedPages, tcpMem[2], rate)) return "near-exhaustion";
  if (input.underPressure) return "under-pressure";
  if (nearlyFull(allocatedPages, tcpMem[1], rate)) return "near-pressure";
  return "normal";
}

export interface BufferInput {
  sysctl: typeof SYSCTL.rmem | typeof SYSCTL.wmem;
  /** Live tcp_rmem / tcp_wmem of the socket's netns: min default max, bytes. */
  live: Triple;
  /** The socket's sk_rcvbuf / sk_sndbuf, bytes. */
  observed: number;
  /**
   * The size the kernel tried to grow the buffer to (receive auto-tuning's target, the send
   * buffer expansion's), bytes; 0 when unknown. Growth goes this far in one change.
   */
  wanted?: number;
  /**
   * The buffer the path's delivery rate needs for one round trip (without the 2x auto-tuning adds
   * for losses; send side: in send-buffer truesize), bytes; 0 when unknown.
   */
  used?: number;
  /**
   * The need (a `used`) the max was trimmed to once traffic was steady (tcp_buffer_settle.ts), or
   * 0: growth then needs a socket (within the max or above it) whose round trip needed more than
   * FRESH_MARGIN times it, and than FRESH_MARGIN times what the max holds (max / TRIM_HEADROOM).
   */
  settledNeed?: number;
  /** Hook hits the event stands for (how often sockets ran into the max). */
  hits?: number;
  /**
   * The max the socket ran into (the event's), bytes; undefined: unknown. Another value than the
   * live max is stale evidence (a change since replaced it: the kernel reports the first socket
   * to reach the new one at once), and decides nothing; the live max itself is fresh evidence,
   * which the rate gate lets grow it again without waiting.
   */
  limitSeen?: number;
  /** SO_RCVBUF / SO_SNDBUF set by the application: the kernel does not auto-tune it. */
  userLocked: boolean;
  memory: MemoryState;
  /** DecayingCorrelation.brakes() for (buffer max, srtt) of this sysctl and netns. */
  latencyBrake: boolean;
  rate: LearningRate;
  /** Growth ceiling in bytes (e.g. socketBufferCeiling()); INT_MAX applies in any case. */
  ceiling?: number;
  /** A latency decrease never takes the max below this (the kernel's default max). */
  shrinkFloor: number;
}

/**
 * After a trim that settled at `settledNeed`, the least need per round trip (a `used`, bytes) that
 * grows the max `max` again is one above this: FRESH_MARGIN times what the max was sized for (the
 * settled need, or max / TRIM_HEADROOM where the trim stopped at its floor). Whole bytes: a need
 * (an integer) exceeds it exactly when it exceeds the real threshold. The kernel mutes the
 * namespace's buffer events up to it (tcp_buffer.bpf.c emit_buffer), so a settled namespace's
 * sockets stay quiet until one needs more.
 */
export function growthNeed(max: number, settledNeed: number): number {
  return Math.max(1, Math.floor(Math.max(settledNeed, max / TRIM_HEADROOM) * FRESH_MARGIN));
}

/**
 * Before any trim, the least need per round trip (a `used`, bytes) that grows the receive max
 * `max` is one above this (WINDOW_LIMITED_SHARE of it). The kernel mutes the namespace's receive
 * events at that max up to it, as for growthNeed.
 */
export function windowLimitedNeed(max: number): number {
  return Math.max(1, Math.floor(max * WINDOW_LIMITED_SHARE));
}

/**
 * The least a receive socket the kernel is growing (to `wanted`, from its buffer `observed`) will
 * ask for at its next growth, where the raise must already be in place; 0 where unknown. The
 * kernel grows a receive buffer when one period's data beats the socket's record and sets the
 * record even when the max clamps the growth; the hook fires before that, so this event's raise
 * always lands after its socket was clamped at the old max. The next growth asks for twice a
 * period's data (auto-tuning is one round trip late), so a socket that fills its window asks for
 * at least twice the buffer it has; a max below that clamps it again within 25 % of where it sat,
 * and there, window-limited, its period's data beats the record only by noise: a bench transfer
 * clamped at 374 KB (the raise to the kernel's want, 1.25x the 299 KB it sat at, not 2x) beat it
 * again 38 s later, at 47 Mbit/s of 91 till then. Only for a socket whose arrival rate per round
 * trip is FILLS_WINDOW of its buffer (loopback's flows need 16-95 KB in MBs: their want is
 * headroom, not data) and that sits at or below the max (one grown above it before a trim is not
 * held by it).
 */
function nextReceiveWant(input: BufferInput, max: number, used: number): number {
  const wanted = isCount(input.wanted) ? input.wanted : 0;
  const buf = input.observed;
  if (input.sysctl !== SYSCTL.rmem || wanted <= buf || buf > max) return 0;
  if (used < FILLS_WINDOW * buf) return 0;
  return 2 * Math.min(wanted, max);
}

/**
 * A socket's buffer is nearly at the tcp_rmem/tcp_wmem max: grow the max (bpftune
 * TCP_BUFFER_INCREASE), or, while latency correlates with the max, shrink it towards the floor
 * (TCP_BUFFER_DECREASE_LATENCY). Locked sockets and low memory never drive growth.
 */
export function bufferDecision(input: BufferInput): Decision | null {
  const { sysctl, live, observed, rate } = input;
  if (!isTriple(live) || live[2] === 0 || !isCount(observed)) return null;
  if (input.userLocked || input.memory !== "normal") return null;
  const max = live[2];
  if (input.limitSeen !== undefined && input.limitSeen !== max) return null;
  const used = isCount(input.used) ? input.used : 0;
  let wanted = isCount(input.wanted) ? input.wanted : 0;
  if (!nearlyFull(Math.max(observed, wanted), max, rate)) return null;

  if (input.latencyBrake) {
    // bpftune never shrinks the max to or below the default ([1]); we also keep the kernel's.
    const target = clampShrink(max, shrink(max, rate), Math.max(input.shrinkFloor, live[1] + 1));
    const to = [live[0], live[1], target];
    return change(
      SCENARIO.bufferDecreaseLatency,
      sysctl,
      live,
      to,
      vectorReason(
        "correlation between buffer size increase and latency",
        sysctl,
        "min default max",
        live,
        to,
      ),
    );
  }

  // Trimmed near the need: only a round trip that needed clearly more than the max was sized
  // for is fresh evidence; a socket's buffer is none (sockets grown before the trim sit above the
  // max and auto-tuning still asks for more). Its measured need is, above the max too: it is the
  // arrival rate per round trip, the path's; a trim on a need measured in slow start (0.46-0.67x
  // the path's) was never undone while only sockets the max held could grow it. A max trimmed
  // back to its floor (the max before the growth) is sized for floor / TRIM_HEADROOM, whatever the
  // need: on loopback (a 40 KB need, a 6 MB floor) a need measured above the trimmed-to one grew
  // it again, and the next trim took it back, every few seconds in every namespace.
  const settled = isCount(input.settledNeed) ? input.settledNeed : 0;
  if (settled > 0) {
    const need = growthNeed(max, settled);
    if (used <= need) return { kind: "needs-more", sysctl, need };
    // At least what the settle would leave for that need (a socket above the max may not want
    // more: one step from a max trimmed to 0.6x the need left it below 1.5x the need).
    wanted = Math.max(wanted, Math.ceil(TRIM_HEADROOM * used));
  } else if (sysctl === SYSCTL.rmem && used > 0) {
    // Unknown (0: no measure yet, older kernels' hooks between growths) keeps following the kernel.
    const need = windowLimitedNeed(max);
    if (used <= need) return { kind: "needs-more", sysctl, need };
  }
  wanted = Math.max(wanted, nextReceiveWant(input, max, used));
  const ceiling = Math.min(input.ceiling ?? INT_MAX, INT_MAX);
  if (max >= ceiling) return { kind: "at-ceiling", sysctl, value: [...live], ceiling };
  // As far as the kernel wanted to go (auto-tuning's target already has its own headroom), or
  // more steps the more often sockets hit the max when it did not say.
  const grown = proportionalGrowth({ current: max, wanted, hits: input.hits, rate });
  const to = [live[0], live[1], clampGrowth(max, grown, ceiling)];
  const grow = change(
    SCENARIO.bufferIncrease,
    sysctl,
    live,
    to,
    vectorReason(
      "need to increase max buffer size to maximize throughput",
      sysctl,
      "min default max",
      live,
      to,
    ),
  );
  if (grow?.kind === "change" && input.limitSeen === max) grow.proposal.fresh = true;
  return grow;
}

/** After an rmem change: make sure receive auto-tuning is on, so the new max is used. */
export function moderateRcvbufDecision(live: number): Decision | null {
  if (live !== 0) return null;
  return change(
    SCENARIO.moderateRcvbufEnable,
    SYSCTL.moderateRcvbuf,
    [0],
    [1],
    `Because we are changing rcvbuf parameters, set '${SYSCTL.moderateRcvbuf}' to auto-tune ` +
      `receive buffer size to match the size required by the path for full throughput.`,
  );
}

export interface TcpMemInput {
  /** Live tcp_mem, pages. */
  tcpMem: Triple;
  /** TCP's allocated memory in pages (kernels < 5.16 count 4 KiB quanta: convert first). */
  allocatedPages: number;
  /** The kernel's tcp_memory_pressure flag is set. */
  underPressure?: boolean;
  /** nr_free_buffer_pages(), see src/kernel/proc/zoneinfo.ts freeBufferPages(). */
  freeBufferPages: number;
  rate: LearningRate;
  /**
   * Per-socket maxima to shrink when tcp_mem is near exhaustion and cannot grow any more
   * (bpftune intended this but never reached it): live values of the event's netns and floors.
   */
  bufferShrink?: { sysctl: typeof SYSCTL.rmem | typeof SYSCTL.wmem; live: Triple; floor: number }[];
}

/**
 * TCP memory is nearly at tcp_mem[1] or [2]: raise the limits (bpftune TCP_MEM_PRESSURE /
 * TCP_MEM_EXHAUSTION) within min < nfbp/16, pressure < nfbp/8, max <= nfbp/4, in proportion to
 * the memory in use (pressure and min to what is allocated plus headroom, max to twice that)
 * rather than by a fixed step. As bpftune does, the max becomes min(nfbp/4, grown max): an absurd
 * max (above nfbp/4) comes down to nfbp/4, but never below the new pressure threshold; min and
 * pressure are never lowered. Near exhaustion with tcp_mem[2] at its ceiling, the per-socket
 * maxima shrink instead (TCP_BUFFER_DECREASE).
 */
export function tcpMemDecisions(input: TcpMemInput): Decision[] {
  const { tcpMem, rate } = input;
  const memory = classifyTcpMemory(input);
  if (memory === null || memory === "normal") return [];
  if (!isCount(input.freeBufferPages) || input.freeBufferPages === 0) return [];
  const caps = tcpMemCeilings(input.freeBufferPages);
  const label = MEMORY_STATE_LABEL[memory];
  const [min, pressure, max] = tcpMem;
  const allocated = input.allocatedPages;
  const grownMax = proportionalGrowth({ current: max, wanted: 2 * allocated, rate });
  let newMax = Math.min(caps.max, grownMax);

  let to: number[];
  let scenario: number;
  if (memory === "near-exhaustion") {
    scenario = SCENARIO.memExhaustion;
    newMax = Math.max(newMax, pressure);
    to = [min, pressure, newMax];
  } else {
    scenario = SCENARIO.memPressure;
    let newPressure = pressure < caps.pressure
      ? clampGrowth(
        pressure,
        proportionalGrowth({ current: pressure, wanted: allocated, headroom: true, rate }),
        caps.pressure,
      )
      : pressure;
    // min keeps its proportion to pressure (the kernel's defaults are 2/3 of it).
    const minWanted = Math.floor(min * (newPressure / pressure));
    let newMin = min < caps.min
      ? clampGrowth(min, proportionalGrowth({ current: min, wanted: minWanted, rate }), caps.min)
      : min;
    newMax = Math.max(newMax, newPressure);
    newPressure = Math.min(newPressure, Math.max(pressure, newMax));
    newMin = Math.min(newMin, Math.max(min, newPressure));
    to = [newMin, newPressure, newMax];
  }

  const decisions: Decision[] = [];
  const grown = change(
    scenario,
    SYSCTL.mem,
    tcpMem,
    to,
    vectorReason(label, SYSCTL.mem, "min pressure max", tcpMem, to),
  );
  if (grown) return [grown];
  if (max >= caps.max) {
    decisions.push({
      kind: "at-ceiling",
      sysctl: SYSCTL.mem,
      value: [...tcpMem],
      ceiling: caps.max,
    });
  }
  if (memory !== "near-exhaustion") return decisions;
  for (const { sysctl, live, floor } of input.bufferShrink ?? []) {
    if (!isTriple(live) || live[2] === 0) continue;
    const target = clampShrink(live[2], shrink(live[2], rate), Math.max(floor, live[1] + 1));
    const next = [live[0], live[1], target];
    const shrunk = change(
      SCENARIO.bufferDecrease,
      sysctl,
      live,
      next,
      vectorReason(label, sysctl, "min default max", live, next),
    );
    if (shrunk) decisions.push(shrunk);
  }
  return decisions;
}

export type LowMemoryTransition = "enter" | "leave" | null;

/**
 * Low-memory mode is entered near exhaustion and left only once memory is back to normal (not
 * merely below exhaustion), so it does not flap; bpftune re-entered on every exhaustion event.
 */
export function lowMemoryTransition(
  inLowMemory: boolean,
  memory: MemoryState,
): LowMemoryTransition {
  if (!inLowMemory && memory === "near-exhaustion") return "enter";
  if (inLowMemory && memory === "normal") return "leave";
  return null;
}

/** Live values in the netns being switched; null where the sysctl is absent or not written. */
export interface LowMemoryLive {
  noMetricsSave: number | null;
  noSsthreshMetricsSave: number | null;
  /** Host namespace only: pass null for any other netns (the sysctl does not exist there). */
  highOrderAllocDisable: number | null;
  maxSynBacklog: number | null;
}

/**
 * Entering low memory: stop per-path metric caching and high-order skb allocations (each only
 * if currently 0) and shrink the SYN backlog (not below 128).
 */
export function enterLowMemory(live: LowMemoryLive, rate: LearningRate): RuleProposal[] {
  const proposals: RuleProposal[] = [];
  const reason = (sysctl: string) => `Due to low memory conditions, set '${sysctl}'`;
  const flags: [string, number | null][] = [
    [SYSCTL.noMetricsSave, live.noMetricsSave],
    [SYSCTL.noSsthreshMetricsSave, live.noSsthreshMetricsSave],
    [SYSCTL.highOrderAllocDisable, live.highOrderAllocDisable],
  ];
  for (const [sysctl, value] of flags) {
    if (value !== 0) continue;
    const d = change(SCENARIO.lowMemEnter, sysctl, [0], [1], reason(sysctl));
    if (d?.kind === "change") proposals.push(d.proposal);
  }
  const backlog = live.maxSynBacklog;
  if (isCount(backlog) && backlog > TCP_SYN_BACKLOG_MIN) {
    const target = clampShrink(backlog, shrink(backlog, rate), TCP_SYN_BACKLOG_MIN);
    const d = change(
      SCENARIO.lowMemEnter,
      SYSCTL.maxSynBacklog,
      [backlog],
      [target],
      reason(SYSCTL.maxSynBacklog),
    );
    if (d?.kind === "change") proposals.push(d.proposal);
  }
  return proposals;
}

/** What entering low memory changed (kept by the tuner per netns until it leaves). */
export interface LowMemoryChange {
  sysctl: string;
  before: number;
  set: number;
}

/** Builds the memo from the low-memory proposals that were actually applied. */
export function lowMemoryChanges(applied: readonly RuleProposal[]): LowMemoryChange[] {
  return applied.map((p) => ({ sysctl: p.sysctl, before: p.from[0], set: p.to[0] }));
}

/**
 * Leaving low memory: put back exactly what entering changed, and only where the value is still
 * the one we set. bpftune instead cleared all three flags wherever they were 1 (undoing an
 * admin's choice) and grew the SYN backlog from wherever it was.
 */
export function leaveLowMemory(
  changes: readonly LowMemoryChange[],
  live: Readonly<Record<string, number | null | undefined>>,
): RuleProposal[] {
  const proposals: RuleProposal[] = [];
  for (const { sysctl, before, set } of changes) {
    if (live[sysctl] !== set) continue;
    const d = change(
      SCENARIO.lowMemLeave,
      sysctl,
      [set],
      [before],
      `Due to leaving low memory conditions, set '${sysctl}'`,
    );
    if (d?.kind === "change") proposals.push(d.proposal);
  }
  return proposals;
}
