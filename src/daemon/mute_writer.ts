/** Writes event mutes (event_mutes.ts) into each tuner object's rate-limiter map. */
import type { BpfObject } from "../libbpf/object.ts";
import { u32Key } from "../libbpf/mod.ts";
import {
  MUTED_UNTIL_CLEARED,
  mutedValue,
  nextEpoch,
  rateLimitKey,
  RL_EPOCH_MAP,
  RL_MAP,
} from "../tuning/rate_limit.ts";
import type { MuteWriter } from "./event_mutes.ts";

/**
 * After a write to the limiter's map, the per-CPU fast path's epoch (where the object has one):
 * the decisions each CPU cached from before it no longer hold.
 */
function bumpEpoch(obj: BpfObject): void {
  const epoch = obj.findMap(RL_EPOCH_MAP);
  epoch?.update(u32Key(0), nextEpoch(epoch.lookup(u32Key(0))));
}

/**
 * `objectOf` finds a tuner's loaded object; `onError` hears of a failed write (the key then stays
 * unmuted, or muted until its deadline: the table forgets it either way).
 */
export function bpfMuteWriter(
  objectOf: (tuner: string) => BpfObject | null,
  onError: (message: string) => void,
): MuteWriter {
  const write = (tuner: string, what: string, op: (obj: BpfObject) => void): boolean => {
    const obj = objectOf(tuner);
    if (!obj) return false;
    try {
      op(obj);
    } catch (e) {
      onError(`tuner ${tuner}: could not ${what} an event key: ${(e as Error).message}`);
      return false;
    }
    try {
      bumpEpoch(obj);
    } catch (e) {
      // The write stands; only the per-CPU caches lag, by their hold time (1 s) at most.
      onError(
        `tuner ${tuner}: ${what}d an event key, but the kernel's per-CPU copies keep the old ` +
          `state for up to a second: ${(e as Error).message}`,
      );
    }
    return true;
  };
  return {
    mute: (tuner, rlNetns, rlKind, lastNs, untilNs, need) =>
      write(tuner, "mute", (obj) =>
        obj.map(RL_MAP).update(
          rateLimitKey(rlNetns, rlKind),
          mutedValue(lastNs, untilNs ?? MUTED_UNTIL_CLEARED, BigInt(need ?? 0)),
        )),
    // Deleting the entry: the next hit finds none and is sent at once, as a first one is.
    unmute: (tuner, rlNetns, rlKind) => {
      write(tuner, "unmute", (obj) => obj.map(RL_MAP).delete(rateLimitKey(rlNetns, rlKind)));
    },
  };
}
