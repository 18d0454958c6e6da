/**
 * The ip_frag tuner's decisions as pure functions (bpftune-behaviour.md §2.3): fragment memory
 * and the live high threshold in, a proposed change (or "at its ceiling") out.
 *
 * Scenario names, descriptions and the "Due to approaching fragmentation maximum threshold" line
 * keep bpftune's wording. Fixed bpftune bugs: the failure rate never divides by zero (no
 * reassembly requests: rate 0); growth has an upper bound (bpftune had none), see
 * IP_FRAG_THRESH_CEILING; a decrease never goes below ipfrag_low_thresh (the kernel rejects such a
 * write); the failure correlation is kept per (tuner, netns, sysctl) instead of colliding with
 * tcp_buffer's records.
 */
import { clampGrowth, clampShrink } from "../tuning/domain.ts";
import { grow, type LearningRate, nearlyFull, shrink } from "../tuning/learning_rate.ts";
import type { ScenarioDecl, TunableDecl } from "../tuning/tuner.ts";
import { changeDecision, type Decision } from "../tuning/proposal.ts";
import { POSITIVE_INT_DOMAIN } from "../tuning/domain.ts";

export type { Decision };

export const IP_FRAG_TUNER = "ip_frag";

export const FRAG_SYSCTL = {
  v4: "net.ipv4.ipfrag_high_thresh",
  v6: "net.ipv6.ip6frag_high_thresh",
  v4Low: "net.ipv4.ipfrag_low_thresh",
  v6Low: "net.ipv6.ip6frag_low_thresh",
} as const;

/**
 * Growth stops at 64 MiB per namespace (16x the kernel's 4 MiB default). Reassembly memory is
 * unswappable kernel memory that any remote sender can fill with fragments that never complete
 * (the classic fragment flood): bpftune's unbounded growth let such a flood claim ever more of it.
 * 64 MiB still holds ~45,000 full-size fragments in flight, far beyond legitimate use.
 */
export const IP_FRAG_THRESH_CEILING = 64 * 1024 * 1024;

/**
 * Per-namespace sysctls (each namespace has its own reassembly memory; namespaces owned by
 * another user namespace do not expose them, and the tuner says so). IPv6 is optional: absent
 * when IPv6 is disabled (bpftune issue #72: the tuner failed to load).
 */
export const IP_FRAG_TUNABLES: TunableDecl[] = [
  { sysctl: FRAG_SYSCTL.v4, values: 1, scope: "netns", domain: POSITIVE_INT_DOMAIN },
  {
    sysctl: FRAG_SYSCTL.v6,
    values: 1,
    scope: "netns",
    optional: true,
    domain: POSITIVE_INT_DOMAIN,
  },
];

export const IP_FRAG_SCENARIO = { increase: 0, decrease: 1 } as const;

/** bpftune's scenario table, verbatim. */
export const IP_FRAG_SCENARIOS: readonly ScenarioDecl[] = [
  {
    id: 0,
    name: "need to increase IP fragmentation high threshold",
    description: "this allows additional memory to be used to accommodate more defragmentation.",
  },
  {
    id: 1,
    name: "need to decrease IP fragmentation high threshold",
    description: "as we increased fragmentation high threshold we saw a correlation in " +
      "reassembly failures; this indicates that we received more invalid fragments as we added " +
      "memory to process them.  As such, further increases are likely to be ineffective so " +
      "reduce high threshold.",
  },
];

function isCount(v: unknown): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
}

/** Reassembly failures per 100 requests over an interval; 0 without requests (bpftune: 1/0). */
export function failRatePercent(fails: number, reqds: number): number {
  if (!isCount(fails) || !isCount(reqds) || reqds === 0) return 0;
  return Math.min(100, Math.floor((fails * 100) / reqds));
}

/** bpftune's test: fragment memory within the learning rate's fraction of the threshold. */
export function fragNearlyFull(memory: number, high: number, rate: LearningRate): boolean {
  return isCount(memory) && isCount(high) && high > 0 && nearlyFull(memory, high, rate);
}

export interface FragInput {
  sysctl: typeof FRAG_SYSCTL.v4 | typeof FRAG_SYSCTL.v6;
  /** Live high threshold of the namespace, bytes. */
  high: number;
  /** Live low threshold (null if unreadable): a decrease never goes below it. */
  low: number | null;
  /** Fragment memory in use now, bytes (fqdir->mem, or sockstat FRAG memory). */
  memory: number;
  /**
   * Fragments refused other than by timeout since the last look (ReasmFails - ReasmTimeout; the
   * poll's evidence, as memory comes and goes between two looks); 0 or absent for hook events.
   */
  refused?: number;
  /** Failure rate correlates with threshold increases (DecayingCorrelation.brakes()). */
  failuresCorrelate: boolean;
  rate: LearningRate;
  ceiling?: number;
}

/**
 * Fragment memory near the high threshold (or fragments refused): grow it (bpftune IP_FRAG_THRESHOLD_INCREASE) up to
 * the ceiling, or, while reassembly failures rise with it, shrink it (..._DECREASE).
 */
export function fragDecision(input: FragInput): Decision | null {
  const { sysctl, high, rate } = input;
  if (!isCount(high) || high === 0) return null;
  const refused = isCount(input.refused) ? input.refused : 0;
  if (refused === 0 && !fragNearlyFull(input.memory, high, rate)) return null;
  const reason = (to: number) =>
    `Due to approaching fragmentation maximum threshold change ${sysctl} from (${high}) -> (${to})`;
  if (input.failuresCorrelate) {
    const floor = isCount(input.low) ? input.low : 0;
    const to = clampShrink(high, shrink(high, rate), floor);
    if (to === high) return null;
    return changeDecision({
      scenario: IP_FRAG_SCENARIOS[IP_FRAG_SCENARIO.decrease].name,
      sysctl,
      from: [high],
      to: [to],
      reason: reason(to),
    });
  }
  const ceiling = Math.min(input.ceiling ?? IP_FRAG_THRESH_CEILING, IP_FRAG_THRESH_CEILING);
  if (high >= ceiling) return { kind: "at-ceiling", sysctl, value: [high], ceiling };
  const to = clampGrowth(high, grow(high, rate), ceiling);
  return changeDecision({
    scenario: IP_FRAG_SCENARIOS[IP_FRAG_SCENARIO.increase].name,
    sysctl,
    from: [high],
    to: [to],
    reason: reason(to),
  });
}

/** How long the poll waits before looking again: 1 s while fragments are queued, else backs off. */
export const POLL_MIN_MS = 1000;
export const POLL_MAX_MS = 8000;

export function nextPollDelay(previousMs: number, fragmentsQueued: boolean): number {
  if (fragmentsQueued) return POLL_MIN_MS;
  const prev = Number.isFinite(previousMs) && previousMs > 0 ? previousMs : POLL_MIN_MS;
  return Math.min(POLL_MAX_MS, Math.max(POLL_MIN_MS, prev * 2));
}
