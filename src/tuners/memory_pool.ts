/**
 * Growing a protocol memory pool (tcp_mem, udp_mem: min pressure max, in pages) under memory
 * pressure or near exhaustion, within bpftune's bounds (min < nfbp/16, pressure < nfbp/8,
 * max <= nfbp/4). Pure: live values in, the new triple out.
 */
import { clampGrowth } from "../tuning/domain.ts";
import { tcpMemCeilings } from "./tcp_buffer_limits.ts";
import { grow, type LearningRate } from "../tuning/learning_rate.ts";

export type PoolState = "near-exhaustion" | "under-pressure" | "near-pressure";

/**
 * The pool after growth: near exhaustion only the max grows; under (or near) pressure all three,
 * each within its cap. No element is ever lowered and min <= pressure <= max holds afterwards.
 * bpftune's UDP version left min/pressure uninitialised (written as 0) when they were already
 * above their caps; here an element at or above its cap simply stays where it is.
 */
export function grownPool(
  pool: readonly [number, number, number] | readonly number[],
  state: PoolState,
  freeBufferPages: number,
  rate: LearningRate,
): [number, number, number] {
  const caps = tcpMemCeilings(freeBufferPages);
  const [min, pressure, max] = pool;
  const newMax = clampGrowth(max, grow(max, rate), caps.max);
  if (state === "near-exhaustion") return [min, pressure, newMax];
  let newPressure = pressure < caps.pressure
    ? clampGrowth(pressure, grow(pressure, rate), caps.pressure)
    : pressure;
  let newMin = min < caps.min ? clampGrowth(min, grow(min, rate), caps.min) : min;
  newPressure = Math.min(newPressure, Math.max(pressure, newMax));
  newMin = Math.min(newMin, Math.max(min, newPressure));
  return [newMin, newPressure, newMax];
}
