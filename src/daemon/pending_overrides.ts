/**
 * Admin overrides noted while their namespace could not be identified (no path led to it then:
 * kernel/netns.ts netnsCookieOf gave no cookie). Recorded with the cookie the registry held, which
 * may be a dead namespace's, such an override would later be dropped as a reused inode's and the
 * administrator's namespace tuned after all; recorded without one, it would hold for whatever
 * namespace takes that inode later. So it waits here, in memory, and holds meanwhile (nothing is
 * tuned there), until the namespace is identified (Journal.placePendingOverrides, every daemon
 * tick) or for at most `maxAgeMs`: the registry looks again within seconds, and a namespace no
 * scan finds by then is gone or out of bpfpilot's reach (nothing can be written there either).
 */
import type { OverrideRecord } from "./journal_types.ts";

export class PendingOverrides {
  /** By namespace, sysctl and tuner (a later note replaces an earlier one), oldest first. */
  readonly #waiting = new Map<string, { record: OverrideRecord; sinceMs: number }>();

  constructor(readonly cap = 64, readonly maxAgeMs = 30_000) {}

  get size(): number {
    return this.#waiting.size;
  }

  /** Waits for its namespace; returns the oldest one pushed out when full (it is not recorded). */
  add(record: OverrideRecord, nowMs: number): OverrideRecord | undefined {
    const key = keyOf(record);
    this.#waiting.delete(key);
    this.#waiting.set(key, { record, sinceMs: nowMs });
    if (this.#waiting.size <= this.cap) return undefined;
    const [oldest, { record: out }] = this.#waiting.entries().next().value!;
    this.#waiting.delete(oldest);
    return out;
  }

  /** A note recorded after all (its namespace was identified meanwhile) ends the wait. */
  drop(record: Pick<OverrideRecord, "netns" | "sysctl" | "tuner">): void {
    this.#waiting.delete(keyOf(record));
  }

  /** Copies of the waiting overrides, oldest first (what the control socket shows). */
  list(): OverrideRecord[] {
    return [...this.#waiting.values()].map(({ record }) => ({ ...record }));
  }

  /** Ends the wait of those `which` selects (`enable`: never recorded then); returns how many. */
  dropWhere(which: (o: OverrideRecord) => boolean): number {
    let dropped = 0;
    for (const [key, { record }] of [...this.#waiting]) {
      if (which(record)) {
        this.#waiting.delete(key);
        dropped++;
      }
    }
    return dropped;
  }

  holds(netns: string, sysctl: string): boolean {
    if (this.#waiting.size === 0) return false;
    for (const { record } of this.#waiting.values()) {
      if (record.netns === netns && record.sysctl === sysctl) return true;
    }
    return false;
  }

  holdsTuner(netns: string, tuner: string): boolean {
    if (this.#waiting.size === 0) return false;
    for (const { record } of this.#waiting.values()) {
      if (record.netns === netns && record.tuner === tuner) return true;
    }
    return false;
  }

  /**
   * Each waiting override: `place` returns true when it was recorded (it stops waiting); one
   * not placed and older than maxAgeMs goes to `expired`.
   */
  retry(
    place: (record: OverrideRecord) => boolean,
    nowMs: number,
    expired: (record: OverrideRecord) => void,
  ): number {
    let placed = 0;
    for (const [key, { record, sinceMs }] of [...this.#waiting]) {
      if (place(record)) {
        placed++;
        this.#waiting.delete(key);
      } else if (nowMs - sinceMs >= this.maxAgeMs) {
        this.#waiting.delete(key);
        expired(record);
      }
    }
    return placed;
  }
}

function keyOf(o: Pick<OverrideRecord, "netns" | "sysctl" | "tuner">): string {
  return `${o.netns}\0${o.sysctl}\0${o.tuner}`;
}
