/**
 * Says when a tuner's BPF events are lost to a full ring buffer (its decisions then lag what the
 * kernel saw): at once the first time, then at most once a period per tuner with the count since
 * the last report, never a line per lost event.
 */
import type { LogLike } from "../tuning/tuner.ts";

export const LOST_EVENTS_REPORT_MS = 60_000;

export class LostEventsReporter {
  #reported = new Map<string, { dropped: number; at: number }>();

  constructor(
    private readonly log: LogLike,
    private readonly now: () => number,
    private readonly periodMs = LOST_EVENTS_REPORT_MS,
  ) {}

  /** `dropped`: the tuner's lost-event counter now (it only grows). */
  observe(tuner: string, dropped: number): void {
    const last = this.#reported.get(tuner);
    const before = last?.dropped ?? 0;
    if (dropped <= before) return;
    const at = this.now();
    if (last && at - last.at < this.periodMs) return;
    const lost = dropped - before;
    this.log.warn(
      `tuner ${tuner} lost ${lost} BPF event(s) to a full ring buffer (${dropped} since start); ` +
        "its decisions may lag what the kernel saw",
      { event: "events_lost", tuner, lost, total: dropped },
    );
    this.#reported.set(tuner, { dropped, at });
  }
}

/**
 * A tuner's lost-event counter is read each tick that saw its events, else every this many ticks.
 * A ring buffer only loses an event when it is full, and the samples that filled it reach the
 * handler afterwards, so the tick after those reads the loss: as promptly as a read every tick
 * (the metrics, the line above, the daemon's lost-override check). The occasional read is for a
 * reserve that fails otherwise (a contended ring-buffer lock on recent kernels). A read is a
 * per-CPU map lookup, ~15 us: seven a second for nothing on an idle daemon.
 */
export const DROPPED_QUIET_EVERY_TICKS = 10;

/** When the tick reads a tuner's lost-event counter (see DROPPED_QUIET_EVERY_TICKS). */
export class LostEventsReads {
  #seenAt = new Map<string, number>();

  constructor(private readonly quietEvery = DROPPED_QUIET_EVERY_TICKS) {}

  /**
   * Whether tick number `tick` reads `tuner`'s counter, given the events it has seen so far
   * (handled or not: every sample its ring buffer gave); a yes is remembered as a read.
   */
  due(tuner: string, seen: number, tick: number): boolean {
    if (this.#seenAt.get(tuner) === seen && tick % this.quietEvery !== 0) return false;
    this.#seenAt.set(tuner, seen);
    return true;
  }
}
