/**
 * How far to raise a limit the kernel ran into, in proportion to the evidence: bpftune grows by a
 * fixed fraction per event (1/4 at the default rate), so a limit 16 times too small takes a dozen
 * changes and, with a cool-down between them, a minute. Here one change goes as far as the
 * kernel showed it wanted to go (e.g. the buffer size auto-tuning asked for, the memory in use),
 * with a little headroom, and further the more sockets ran into the limit when it did not say.
 * Shared by every tuner that grows a limit (tcp_buffer, udp_buffer, ...).
 */
import { fractionOf, grow, type LearningRate } from "./learning_rate.ts";

export interface GrowthEvidence {
  /** The limit now. */
  current: number;
  /**
   * What the kernel tried to reach past the limit (same unit); 0 or less than `current` when not
   * known. The result covers it, plus the rate's fraction of headroom when `headroom` is set.
   */
  wanted?: number;
  /** Add the rate's fraction of `wanted` on top (for evidence that is a bare minimum). */
  headroom?: boolean;
  /** How many times the limit was hit since the last decision (hook hits, drops, sockets). */
  hits?: number;
  rate: LearningRate;
  /** One change never multiplies the limit by more than this (default 4). */
  maxFactor?: number;
}

/** At most this many of bpftune's steps for many hits without a `wanted` figure. */
const MAX_HIT_STEPS = 4;

/**
 * The next value of a limit: at least bpftune's step (`grow`), at least `wanted` (plus headroom),
 * and with no `wanted`, one more step for each doubling of `hits` (up to 4 steps); never more
 * than `maxFactor` times the current value. The caller clamps to the tunable's ceiling.
 */
export function proportionalGrowth(e: GrowthEvidence): number {
  const { current, rate } = e;
  if (!Number.isSafeInteger(current) || current <= 0) return current;
  let target = grow(current, rate);
  const wanted = e.wanted ?? 0;
  if (Number.isFinite(wanted) && wanted > current) {
    target = Math.max(target, Math.ceil(wanted) + (e.headroom ? fractionOf(wanted, rate) : 0));
  } else if ((e.hits ?? 0) > 1) {
    const steps = Math.min(MAX_HIT_STEPS, Math.floor(Math.log2(e.hits!)) + 1);
    target = Math.max(target, current + steps * Math.max(1, fractionOf(current, rate)));
  }
  const cap = current * (e.maxFactor ?? 4);
  return Math.floor(Math.min(target, cap));
}
