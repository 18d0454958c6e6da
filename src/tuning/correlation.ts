/**
 * Pearson correlation over an exponentially decaying window, for the latency brake: when a
 * buffer limit and the smoothed RTT rise together, growing the buffer is adding queueing delay.
 *
 * bpftune sums n, Σx, Σy, Σx², Σy², Σxy forever (one bad period brakes forever, and the u64
 * sums can wrap). Here every observation's weight halves each `halfLifeMs`, and the sums are
 * kept centred (West's weighted update), which stays accurate for byte counts near 2^31.
 * With no new observations the effective sample weight decays below `minSamples`, so the brake
 * releases by itself; new uncorrelated observations release it too.
 */

import { forgetNetnsKeys } from "../kernel/netns_keyed.ts";

/** Default half-life of an observation's weight. */
export const DEFAULT_HALF_LIFE_MS = 60_000;
/** bpftune CORR_MIN_SAMPLES: fewer (effective) samples than this give correlation 0. */
export const DEFAULT_MIN_SAMPLES = 10;
/** bpftune CORR_THRESHOLD, the value its code compares against (its README says 0.7). */
export const DEFAULT_THRESHOLD = 0.75;

export interface CorrelationOptions {
  /** Half-life of an observation's weight in ms; Infinity keeps bpftune's endless memory. */
  halfLifeMs?: number;
  /** Minimum effective (decayed) sample weight before a correlation is reported. */
  minSamples?: number;
  /** brakes() is true when the correlation is strictly above this. */
  threshold?: number;
}

/** Below this weight the window is empty and restarts cleanly. */
const NEGLIGIBLE_WEIGHT = 1e-12;
/** Relative variance under which a series counts as constant (no correlation defined). */
const CONSTANT_RELATIVE_VARIANCE = 1e-12;

export class DecayingCorrelation {
  readonly halfLifeMs: number;
  readonly minSamples: number;
  readonly threshold: number;
  #weight = 0;
  #meanX = 0;
  #meanY = 0;
  #cxx = 0;
  #cyy = 0;
  #cxy = 0;
  #at: number | undefined;

  constructor(options: CorrelationOptions = {}) {
    const halfLife = options.halfLifeMs ?? DEFAULT_HALF_LIFE_MS;
    const minSamples = options.minSamples ?? DEFAULT_MIN_SAMPLES;
    const threshold = options.threshold ?? DEFAULT_THRESHOLD;
    if (typeof halfLife !== "number" || Number.isNaN(halfLife) || halfLife <= 0) {
      throw new RangeError(
        `invalid correlation half-life ${JSON.stringify(halfLife)}: use a positive number of ` +
          `milliseconds (default ${DEFAULT_HALF_LIFE_MS})`,
      );
    }
    if (!Number.isFinite(minSamples) || minSamples < 2) {
      throw new RangeError(
        `invalid minimum sample count ${JSON.stringify(minSamples)}: use a number >= 2 ` +
          `(default ${DEFAULT_MIN_SAMPLES})`,
      );
    }
    if (!Number.isFinite(threshold) || threshold < 0 || threshold >= 1) {
      throw new RangeError(
        `invalid correlation threshold ${JSON.stringify(threshold)}: use a number from 0 up to ` +
          `(not including) 1 (default ${DEFAULT_THRESHOLD})`,
      );
    }
    this.halfLifeMs = halfLife;
    this.minSamples = minSamples;
    this.threshold = threshold;
  }

  /** Adds one (x, y) pair seen at `now` (ms). Non-finite input is ignored; returns false. */
  observe(x: number, y: number, now: number): boolean {
    if (!Number.isFinite(x) || !Number.isFinite(y) || !Number.isFinite(now)) return false;
    this.#decayTo(now);
    this.#weight += 1;
    const dx = x - this.#meanX;
    const dy = y - this.#meanY;
    this.#meanX += dx / this.#weight;
    this.#meanY += dy / this.#weight;
    this.#cxx += dx * (x - this.#meanX);
    this.#cyy += dy * (y - this.#meanY);
    this.#cxy += dx * (y - this.#meanY);
    return true;
  }

  /** Effective sample weight at `now`: each observation counts 2^(-age / half-life). */
  weight(now: number): number {
    this.#decayTo(now);
    return this.#weight;
  }

  /** Pearson r of the decayed window in [-1, 1]; 0 with too few samples or a constant series. */
  correlation(now: number): number {
    this.#decayTo(now);
    if (this.#weight < this.minSamples) return 0;
    const varX = this.#cxx / this.#weight;
    const varY = this.#cyy / this.#weight;
    if (
      varX <= CONSTANT_RELATIVE_VARIANCE * Math.max(1, this.#meanX * this.#meanX) ||
      varY <= CONSTANT_RELATIVE_VARIANCE * Math.max(1, this.#meanY * this.#meanY)
    ) {
      return 0;
    }
    const r = this.#cxy / Math.sqrt(this.#cxx * this.#cyy);
    return Math.max(-1, Math.min(1, r));
  }

  /** True while x and y correlate above the threshold: stop growing the buffer. */
  brakes(now: number): boolean {
    return this.correlation(now) > this.threshold;
  }

  reset(): void {
    this.#weight =
      this.#meanX =
      this.#meanY =
      this.#cxx =
      this.#cyy =
      this.#cxy =
        0;
    this.#at = undefined;
  }

  /** Ages the window to `now`. A clock that steps back does not age it (nor rejuvenate it). */
  #decayTo(now: number): void {
    if (!Number.isFinite(now)) return;
    if (this.#at === undefined) {
      this.#at = now;
      return;
    }
    const age = now - this.#at;
    if (age <= 0) return;
    this.#at = now;
    const factor = 2 ** (-age / this.halfLifeMs);
    this.#weight *= factor;
    this.#cxx *= factor;
    this.#cyy *= factor;
    this.#cxy *= factor;
    if (this.#weight < NEGLIGIBLE_WEIGHT) {
      this.reset();
      this.#at = now;
    }
  }
}

/**
 * One correlation per (tuner, netns, tunable). bpftune keyed its shared map by (tunable index,
 * netns) only, so ip_frag's records collided with tcp_buffer's.
 */
export class CorrelationTable {
  readonly #records = new Map<string, DecayingCorrelation>();

  constructor(readonly options: CorrelationOptions = {}) {
    new DecayingCorrelation(options); // validate once, up front
  }

  get(tuner: string, netns: string, tunable: string): DecayingCorrelation {
    const key = `${netns}\u0000${tuner}\u0000${tunable}`;
    let record = this.#records.get(key);
    if (!record) {
      record = new DecayingCorrelation(this.options);
      this.#records.set(key, record);
    }
    return record;
  }

  /** Drops every record of the namespaces that went away, in one pass. */
  forgetNetns(gone: ReadonlySet<string>): void {
    forgetNetnsKeys(this.#records, gone);
  }

  get size(): number {
    return this.#records.size;
  }
}
