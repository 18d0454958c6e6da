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
