/**
 * Decides whether a proposal may be written now, per (netns, sysctl): a change that reverses the
 * previous one's direction (or follows a reversal: oscillation) waits out the cool-down; one that
 * continues in the same direction on fresh evidence waits only the short growth gap, so a limit
 * far too small grows in a few seconds instead of one step per cool-down. Identical proposals
 * are coalesced (the same change is never applied or logged twice), and "can't
 * grow, at ceiling" reported once per situation instead of on every event (bpftune #155, #93).
 *
 * Time is passed in (`now`, milliseconds on any monotonic clock), so callers and tests control it.
 * The key is the sysctl and the netns the write lands in, not the tuner: two tuners sharing a
 * sysctl (high_order_alloc_disable) share its cool-down instead of fighting over it.
 */

import { type Proposal, sameChange, sameValues } from "../tuning/proposal.ts";
import { forgetNetnsKeys } from "../kernel/netns_keyed.ts";

export const DEFAULT_COOLDOWN_MS = 5000;
/**
 * Between two changes in the same direction. Below the kernel-side event interval (tcp_buffer:
 * 500 ms from one event to the next, counted from the event, not from the change it led to): a
 * growth turned away here may not come back soon (tcp_rcvbuf_grow fires only when auto-tuning
 * tries to grow). A proposal marked `fresh` (its evidence was seen at the value the previous
 * change wrote) does not wait for it at all.
 */
export const DEFAULT_GROWTH_GAP_MS = 250;

export type GateVerdict =
  /** Write it, then call settle() with the outcome. */
  | { kind: "apply" }
  /** `to` equals `from`: there is nothing to write. */
  | { kind: "noop" }
  /** The same change was already applied, or is being applied, for this key. */
  | { kind: "duplicate" }
  /** Another change for this key was admitted and not yet settled. */
  | { kind: "in-flight" }
  /**
   * A change for this key happened less than the cool-down (or, continuing in the same
   * direction, the growth gap) ago. `repeat` is true when this is
   * the same proposal as the previous refused one, so callers can log deferrals once.
   */
  | { kind: "cooling-down"; until: number; repeat: boolean };

export interface RateGateOptions {
  /**
   * Minimum time between two changes of one sysctl in one netns that go in opposite directions
   * (or any change after such a reversal, and after a failed write); default 5000 ms.
   */
  cooldownMs?: number;
  /** Minimum time between two changes in the same direction; default min(250 ms, cooldownMs). */
  growthGapMs?: number;
}

/** +1 when every value grows or stays, -1 when every value shrinks or stays, 0 when mixed. */
export function directionOf(p: Pick<Proposal, "from" | "to">): -1 | 0 | 1 {
  let up = false, down = false;
  p.to.forEach((v, i) => {
    if (v > p.from[i]) up = true;
    else if (v < p.from[i]) down = true;
  });
  return up && !down ? 1 : down && !up ? -1 : 0;
}

interface KeyState {
  pending?: Proposal;
  lastApplied?: Proposal;
  /** When the last change (or failed write) settled; -Infinity before any. */
  settledAt: number;
  /** The full cool-down applies to the next change whatever its direction (failed write). */
  fullCooldown: boolean;
  /** Directions of the last two applied changes, most recent first. */
  directions: number[];
  deferred?: Proposal;
  ceilingSituation?: string;
}

export class RateGate {
  readonly cooldownMs: number;
  readonly growthGapMs: number;
  readonly #keys = new Map<string, KeyState>();

  constructor(options: RateGateOptions = {}) {
    const ms = options.cooldownMs ?? DEFAULT_COOLDOWN_MS;
    if (typeof ms !== "number" || !Number.isFinite(ms) || ms < 0) {
      throw new RangeError(
        `invalid cool-down ${JSON.stringify(ms)}: use a non-negative number of milliseconds ` +
          `(default ${DEFAULT_COOLDOWN_MS})`,
      );
    }
    this.cooldownMs = ms;
    const gap = options.growthGapMs ?? Math.min(DEFAULT_GROWTH_GAP_MS, ms);
    if (typeof gap !== "number" || !Number.isFinite(gap) || gap < 0) {
      throw new RangeError(
        `invalid growth gap ${JSON.stringify(gap)}: use a non-negative number of milliseconds`,
      );
    }
    this.growthGapMs = Math.min(gap, ms);
  }

  /** Until when a change in direction `dir` must wait. */
  #waitUntil(state: KeyState, dir: number, fresh: boolean): number {
    const [last, before] = state.directions;
    const continuing = !state.fullCooldown && dir !== 0 && dir === last &&
      (before === undefined || before === last);
    return state.settledAt + (continuing ? (fresh ? 0 : this.growthGapMs) : this.cooldownMs);
  }

  admit(proposal: Proposal, now: number): GateVerdict {
    if (sameValues(proposal.from, proposal.to)) return { kind: "noop" };
    const state = this.#state(proposal.netns, proposal.sysctl);
    if (state.pending) {
      return sameChange(state.pending, proposal) ? { kind: "duplicate" } : { kind: "in-flight" };
    }
    if (state.lastApplied && sameChange(state.lastApplied, proposal)) return { kind: "duplicate" };
    // The same move from the same value, only a revised target (proportional growth follows the
    // evidence): nothing changed since it was decided (advise mode, or a write that did not
    // take), so it is not news either.
    const last = state.lastApplied;
    if (
      last && last.sysctl === proposal.sysctl && sameValues(last.from, proposal.from) &&
      directionOf(last) === directionOf(proposal)
    ) {
      return { kind: "duplicate" };
    }
    const until = this.#waitUntil(state, directionOf(proposal), proposal.fresh === true);
    if (now < until) {
      const repeat = state.deferred !== undefined && sameChange(state.deferred, proposal);
      state.deferred = proposal;
      return { kind: "cooling-down", until, repeat };
    }
    state.pending = proposal;
    state.deferred = undefined;
    return { kind: "apply" };
  }

  /**
   * Records the outcome of an admitted proposal. Failures also start the cool-down, so a write
   * the kernel keeps refusing is not retried at event rate. Returns false (and changes nothing)
   * when the proposal is not the one admitted for its key.
   */
  settle(proposal: Proposal, outcome: "applied" | "failed", now: number): boolean {
    const state = this.#keys.get(keyOf(proposal.netns, proposal.sysctl));
    if (!state?.pending || !sameChange(state.pending, proposal)) return false;
    state.pending = undefined;
    state.settledAt = now;
    state.fullCooldown = outcome === "failed";
    if (outcome === "applied") {
      state.lastApplied = proposal;
      state.ceilingSituation = undefined;
      state.directions = [directionOf(proposal), ...state.directions].slice(0, 2);
    }
    return true;
  }

  /**
   * A change was impossible because `value` is at `ceiling`. Returns true when this situation
   * is new and should be logged; false while it stays the same. A different value or ceiling
   * (e.g. the admin lowered it), clearAtCeiling() or an applied change make it new again.
   */
  reportAtCeiling(
    netns: string,
    sysctl: string,
    value: readonly number[],
    ceiling: number,
  ): boolean {
    const state = this.#state(netns, sysctl);
    const situation = `${value.join(" ")} @ ${ceiling}`;
    if (state.ceilingSituation === situation) return false;
    state.ceilingSituation = situation;
    return true;
  }

  /** The value left its ceiling: the next time it is reached is reported again. */
  clearAtCeiling(netns: string, sysctl: string): void {
    const state = this.#keys.get(keyOf(netns, sysctl));
    if (state) state.ceilingSituation = undefined;
  }

  /** Forget one key (e.g. after a rollback wrote the initial value back). */
  forget(netns: string, sysctl: string): void {
    this.#keys.delete(keyOf(netns, sysctl));
  }

  /** Forget every key of the namespaces that went away (one pass), so state stays bounded. */
  forgetNetns(gone: ReadonlySet<string>): void {
    forgetNetnsKeys(this.#keys, gone);
  }

  /** Number of (netns, sysctl) keys held; for tests and metrics. */
  get size(): number {
    return this.#keys.size;
  }

  #state(netns: string, sysctl: string): KeyState {
    const key = keyOf(netns, sysctl);
    let state = this.#keys.get(key);
    if (!state) {
      state = { settledAt: -Infinity, fullCooldown: false, directions: [] };
      this.#keys.set(key, state);
    }
    return state;
  }
}

function keyOf(netns: string, sysctl: string): string {
  return `${netns}\u0000${sysctl}`;
}
