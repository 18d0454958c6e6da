/**
 * Where every hook hit went, for the exit summary and metrics: each hit lands in exactly one
 * bucket, so the buckets add up to the hits. The BPF side counts hits past each hook's cheap
 * tests and five outcomes (bpf/include/bpfpilot.h enum bpfp_stat); a hit with none of them found
 * no limit near, which the programs do not count separately. Hits the cheap tests turn away (most
 * of them on a hot hook) cost no counter: the kernel's run_cnt has them
 * (kernel.bpf_stats_enabled=1, `bpftool prog show`).
 */

/** The BPF side's counters, summed over CPUs. */
export interface KernelCounters {
  /** Hits past the hook's cheap tests. */
  hits: number;
  emitted: number;
  suppressed: number;
  dropped: number;
  skipped: number;
  /** Not sent: userspace muted the key (nothing the event could change; event_mutes.ts). */
  muted: number;
}

export interface EventBuckets {
  hits: number;
  /** Nothing near a limit: no event needed. */
  quiet: number;
  /** Filtered (e.g. an application chose its own buffer size). */
  filtered: number;
  /** Folded into a later event by the rate limiter. */
  folded: number;
  /** Sent to userspace as events. */
  sent: number;
  /** Lost to a full ring buffer. */
  lost: number;
  /** Not sent: userspace had muted them (nothing they could change). */
  muted: number;
}

/**
 * Splits the hits into buckets. Counters are read outcome-first, hits last, so a hit still in
 * flight shows as quiet; a negative `quiet` means a program counted an outcome without its hit
 * (a bug, shown rather than hidden).
 */
export function eventBuckets(k: KernelCounters): EventBuckets {
  const outcomes = k.skipped + k.suppressed + k.emitted + k.dropped + k.muted;
  return {
    hits: k.hits,
    quiet: k.hits - outcomes,
    filtered: k.skipped,
    folded: k.suppressed,
    sent: k.emitted,
    lost: k.dropped,
    muted: k.muted,
  };
}

/** "# Events: ..." for the exit summary; `received` is what userspace decoded. */
export function eventsLine(tuner: string, b: EventBuckets, received: number): string {
  const n = String;
  return `# Events: tuner '${tuner}' hooks fired ${n(b.hits)} times past their cheap tests = ` +
    `${n(b.quiet)} with no limit near + ${n(b.filtered)} filtered + ${n(b.folded)} folded by ` +
    `the rate limiter + ` +
    `${n(b.sent)} sent as events + ${n(b.lost)} lost to a full ring buffer + ${n(b.muted)} ` +
    `muted (nothing they could change); ` +
    `${n(received)} events reached userspace`;
}
