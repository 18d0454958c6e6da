/** Writes event mutes (event_mutes.ts) into each tuner object's rate-limiter map. */
import type { BpfObject } from "../libbpf/object.ts";
import { MUTED_UNTIL_CLEARED, mutedValue, rateLimitKey, RL_MAP } from "../tuning/rate_limit.ts";
import type { MuteWriter } from "./event_mutes.ts";

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
      return true;
    } catch (e) {
      onError(`tuner ${tuner}: could not ${what} an event key: ${(e as Error).message}`);
      return false;
    }
  };
  return {
    mute: (tuner, rlNetns, rlKind, lastNs, untilNs) =>
      write(tuner, "mute", (obj) =>
        obj.map(RL_MAP).update(
          rateLimitKey(rlNetns, rlKind),
          mutedValue(lastNs, untilNs ?? MUTED_UNTIL_CLEARED),
        )),
    // Deleting the entry: the next hit finds none and is sent at once, as a first one is.
    unmute: (tuner, rlNetns, rlKind) => {
      write(tuner, "unmute", (obj) => obj.map(RL_MAP).delete(rateLimitKey(rlNetns, rlKind)));
    },
  };
}
