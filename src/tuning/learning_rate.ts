/**
 * bpftune's learning rate (`-r 0..4`): one power-of-two fraction that is both the "nearly at the
 * limit" margin and the growth step. Rate r uses shift 6 - r, i.e. 1/64, 1/32, 1/16, 1/8, 1/4.
 *
 * Arithmetic is done with division, not `>>`: JavaScript shifts truncate to 32 bits, and tcp_mem
 * values (pages, a `long` sysctl) can exceed 2^31.
 */

export const LEARNING_RATES = [0, 1, 2, 3, 4] as const;
export type LearningRate = typeof LEARNING_RATES[number];
export const DEFAULT_LEARNING_RATE: LearningRate = 4;

export class LearningRateError extends Error {
  constructor(readonly input: unknown) {
    super(
      `invalid learning rate ${JSON.stringify(String(input))}: use a whole number from 0 to 4 ` +
        `(0 acts within 1/64 of a limit and grows by 1/64; 1 = 1/32, 2 = 1/16, 3 = 1/8, ` +
        `4 = 1/4, the default)`,
    );
    this.name = "LearningRateError";
  }
}

export function isLearningRate(value: unknown): value is LearningRate {
  return typeof value === "number" && (LEARNING_RATES as readonly number[]).includes(value);
}

/** Validates a `-r` argument (CLI text or a number from a config file). */
export function parseLearningRate(input: string | number): LearningRate {
  if (typeof input === "number") {
    if (isLearningRate(input)) return input;
    throw new LearningRateError(input);
  }
  const text = input.trim();
  if (!/^[0-4]$/.test(text)) throw new LearningRateError(input);
  return Number(text) as LearningRate;
}

export function shiftOf(rate: LearningRate): number {
  return 6 - rate;
}

/** `value >> shift` for any non-negative safe integer. */
export function fractionOf(value: number, rate: LearningRate): number {
  return Math.floor(value / 2 ** shiftOf(rate));
}

/** bpftune NEARLY_FULL: at or over the limit, or within the rate's fraction of it. */
export function nearlyFull(value: number, limit: number, rate: LearningRate): boolean {
  return value >= limit || value + fractionOf(limit, rate) >= limit;
}

/** bpftune NEARLY_EMPTY: at or under the rate's fraction of the limit. */
export function nearlyEmpty(value: number, limit: number, rate: LearningRate): boolean {
  return value <= fractionOf(limit, rate);
}

/** bpftune GROW_BY_DELTA: value + value * fraction (rounded down). */
export function grow(value: number, rate: LearningRate): number {
  return value + fractionOf(value, rate);
}

/** bpftune SHRINK_BY_DELTA: value - value * fraction (rounded down). */
export function shrink(value: number, rate: LearningRate): number {
  return value - fractionOf(value, rate);
}
