/**
 * Kernel-side "don't resend": after a tuner handled an event, when every decision it led to could
 * change nothing (the value is at its ceiling, the sysctl is cooling down, the administrator took
 * it over, the policy refuses it), the event's rate-limit key is muted in the BPF object's
 * `bpfp_ratelimit` map, so the kernel stops sending events for it; hits are counted as muted
 * (BPFP_STAT_MUTED) instead. A cool-down mute ends by itself at its deadline; the others last
 * until the state changes: a change written in the namespace, an admin write, the end of an
 * override, a configuration reload; and, by default, a minute at most, so a tuner that learns
 * from its events (tcp_buffer's latency brake, net_buffer's scheduler-wait correlation) still sees
 * one a minute. The table here remembers what was muted and why, so those changes unmute exactly
 * the keys they concern; it is bounded (a full table mutes nothing more).
 *
 * In advise mode nothing changes the value, so an advice, once reported, would come back with
 * every event (the rate limiter's two a second per key) only to be found a repeat: it mutes its
 * key like a value at its ceiling, until the value changes (the administrator's write), a reload
 * or the minute's recheck, which also lets evidence that moved make a different advice.
 *
 * A decision that only more evidence could change (tcp_buffer's settled max: only a socket whose
 * path needs more than the max was trimmed for grows it) mutes the key up to that need: the kernel
 * keeps hits whose evidence is at most it, and sends a bigger one at once (bpfp_rl_val.mute_need;
 * its last_ns is written as 0, so the rate limiter's interval does not hold that one back).
 *
 * Some signals come once: a receive buffer that reached its max is reported when the kernel tries
 * to grow it, and a flow held there does not try again. A hit muted while an override is ending
 * (`enable` from the state directory is seen at the next tick) is lost for good, so when an
 * override ends the last event muted for it is handed back (`rehandle`), at most a minute old.
 */
import { GLOBAL_NETNS } from "../kernel/netns.ts";

/** What became of one decision a tuner made while handling an event. */
export type Outcome =
  /** A change was written (or the namespace changed otherwise): not muted, and unmutes. */
  | { kind: "changed"; netns: string }
  | { kind: "at-ceiling"; netns: string; sysctl: string }
  /** Taken over by the administrator; `sysctl` undefined: the whole tuner in that namespace. */
  | { kind: "overridden"; netns: string; sysctl?: string }
  /** The operator's policy refuses it (configuration file, sysctl.d pin, `--netns`). */
  | { kind: "refused"; netns: string; sysctl: string }
  | { kind: "cooling-down"; netns: string; sysctl: string; untilMs: number }
  /** Unchanged unless an event's evidence (its need, bytes) exceeds `need` (> 0). */
  | { kind: "needs-more"; netns: string; sysctl: string; need: number }
  /**
   * Advice (advise mode, an advise-only policy) reported now or already: the same advice until
   * the value changes, so not news before then.
   */
  | { kind: "advised"; netns: string; sysctl: string }
  /** Anything else (duplicate, in flight, failed write): keeps the key unmuted. */
  | { kind: "other" };

/** An override that keeps a key muted, re-checked until it ends. */
export interface OverrideCause {
  tuner: string;
  netns: string;
  sysctl?: string;
}

export interface MuteVerdict {
  /** null: until the state changes; else the end of the cool-down (ms, the outcomes' clock). */
  untilMs: number | null;
  /** Namespaces (keys) whose change ends the mute. */
  netns: string[];
  /** Overrides among the causes. */
  overrides: { netns: string; sysctl?: string }[];
  /** 0: every hit is muted; else only hits whose evidence is at most this (the least need). */
  need: number;
  reason: string;
}

/**
 * Whether an event whose decisions ended in `outcomes` may be muted, and until when: only when it
 * led to at least one decision and none of them changed or could change anything now. With a
 * cool-down among them the mute ends when the first cool-down does (a change may follow then);
 * with decisions that more evidence could change, only hits with no more than the least of their
 * needs are muted.
 */
export function muteVerdict(outcomes: readonly Outcome[], muteAdvice = true): MuteVerdict | null {
  if (outcomes.length === 0) return null;
  let untilMs: number | null = null, need = 0;
  const netns = new Set<string>(), reasons = new Set<string>();
  const overrides: MuteVerdict["overrides"] = [];
  for (const o of outcomes) {
    if (o.kind === "changed" || o.kind === "other") return null;
    if (o.kind === "advised" && !muteAdvice) return null;
    netns.add(o.netns);
    reasons.add(o.kind);
    if (o.kind === "cooling-down") untilMs = Math.min(untilMs ?? Infinity, o.untilMs);
    if (o.kind === "overridden") overrides.push({ netns: o.netns, sysctl: o.sysctl });
    if (o.kind === "needs-more") {
      if (!Number.isSafeInteger(o.need) || o.need <= 0) return null;
      need = need === 0 ? o.need : Math.min(need, o.need);
    }
  }
  return { untilMs, netns: [...netns], overrides, need, reason: [...reasons].join(", ") };
}

/** Where mutes are written: the tuner's BPF object. */
export interface MuteWriter {
  /**
   * Mutes the key: nothing sent before `untilNs` (bpf_ktime_get_ns clock; null: until cleared);
   * `need` > 0: only hits whose evidence is at most it (0, absent: every hit). False when it could
   * not be written (the key then stays unmuted).
   */
  mute(
    tuner: string,
    rlNetns: bigint,
    rlKind: number,
    lastNs: bigint,
    untilNs: bigint | null,
    need?: number,
  ): boolean;
  unmute(tuner: string, rlNetns: bigint, rlKind: number): void;
}

export interface MutedEvent {
  rlNetns: bigint;
  rlKind: number;
  /** bpf_ktime_get_ns() of the event: the clock the kernel compares the deadline with. */
  tsNs: bigint;
}

interface Entry {
  tuner: string;
  rlNetns: bigint;
  rlKind: number;
  netns: readonly string[];
  overrides: readonly { netns: string; sysctl?: string }[];
  /** When the kernel ends the mute by itself (ms), or null. */
  untilMs: number | null;
  reason: string;
}

export interface EventMutesOptions {
  /** Most keys muted at once (default 16384; 4096 per tuner object's LRU map). */
  limit?: number;
  /**
   * A cool-down ending sooner than this is left to the rate limiter (default 1000 ms: its usual
   * interval); muting for it would save no event.
   */
  minCooldownMs?: number;
  /**
   * The longest a key stays muted without a change (default 60000 ms); null: until the state
   * changes, however long.
   */
  recheckMs?: number | null;
  /**
   * Whether advice mutes its key (default true); false: every repeat reaches the tuner and the
   * proposal observer (the audit counts them as evidence).
   */
  muteAdvice?: boolean;
}

export class EventMutes<E extends MutedEvent = MutedEvent> {
  readonly #entries = new Map<string, Entry & { event: E }>();
  /** Entries muted for an override: heldByOverrides, asked every tick, without a scan. */
  #forOverrides = 0;
  /**
   * No entry's untilMs is below this (a lower bound: an entry that goes only raises the true
   * minimum): pruneExpired, every tick, scans only once one may have expired.
   */
  #expiresAt = Infinity;
  readonly #limit: number;
  readonly #minCooldownMs: number;
  readonly #recheckMs: number | null;
  readonly #muteAdvice: boolean;

  constructor(private readonly writer: MuteWriter, options: EventMutesOptions = {}) {
    this.#muteAdvice = options.muteAdvice ?? true;
    this.#limit = options.limit ?? 16384;
    this.#minCooldownMs = options.minCooldownMs ?? 1000;
    this.#recheckMs = options.recheckMs === undefined ? 60_000 : options.recheckMs;
  }

  /**
   * After `tuner` handled `ev` at `nowMs`: mutes the event's key when its outcomes allow it.
   * Returns the verdict applied, or null when the key stays unmuted.
   */
  afterEvent(
    tuner: string,
    ev: E,
    outcomes: readonly Outcome[],
    nowMs: number,
  ): MuteVerdict | null {
    const v = muteVerdict(outcomes, this.#muteAdvice);
    if (!v) return null;
    if (v.untilMs !== null && v.untilMs - nowMs < this.#minCooldownMs) return null;
    const key = keyOf(tuner, ev.rlNetns, ev.rlKind);
    if (!this.#entries.has(key) && this.#entries.size >= this.#limit) {
      this.pruneExpired(nowMs);
      if (this.#entries.size >= this.#limit) return null;
    }
    const recheck = this.#recheckMs === null ? null : nowMs + this.#recheckMs;
    const untilMs = v.untilMs === null ? recheck : Math.min(v.untilMs, recheck ?? Infinity);
    const untilNs = untilMs === null ? null : ev.tsNs + BigInt(Math.round((untilMs - nowMs) * 1e6));
    // Up to a need, the hit the tuner waits for (more evidence) goes at once, not an interval
    // after this event (last_ns 0): in slow start the next round trip (50 ms on the bench's path)
    // shows more, and a flow then held at the max beats its record only seconds apart.
    const lastNs = v.need > 0 ? 0n : ev.tsNs;
    if (!this.writer.mute(tuner, ev.rlNetns, ev.rlKind, lastNs, untilNs, v.need)) return null;
    const old = this.#entries.get(key);
    if (old) this.#forOverrides -= old.overrides.length > 0 ? 1 : 0;
    this.#entries.set(key, {
      tuner,
      rlNetns: ev.rlNetns,
      rlKind: ev.rlKind,
      netns: v.netns,
      overrides: v.overrides,
      untilMs,
      reason: v.reason,
      event: ev,
    });
    this.#forOverrides += v.overrides.length > 0 ? 1 : 0;
    if (untilMs !== null) this.#expiresAt = Math.min(this.#expiresAt, untilMs);
    return v;
  }

  /**
   * Something changed in namespace `netns` (a write of ours or the administrator's): every key
   * muted for it is unmuted; a change of the host's (global) values or in every namespace
   * (`all`) unmutes every key.
   */
  changed(netns: string, all = false): number {
    const everything = all || netns === GLOBAL_NETNS;
    return this.#unmuteWhere((e) => everything || e.netns.includes(netns));
  }

  /**
   * Namespaces that are gone: every key muted for one of them is unmuted, in one pass (their
   * inodes may come back as other namespaces'; a changed() each was a pass per namespace).
   */
  forgetNetns(gone: ReadonlySet<string>): number {
    if (gone.size === 0) return 0;
    return this.#unmuteWhere((e) => e.netns.some((n) => gone.has(n)));
  }

  /** A configuration reload: ceilings and policies may differ; everything is looked at again. */
  clearAll(): number {
    return this.#unmuteWhere(() => true);
  }

  /**
   * Unmutes keys muted for overrides of which none is still in force; `rehandle` receives the last
   * event muted under each (it may carry what the kernel will not send again).
   */
  recheckOverrides(
    stillOverridden: (cause: OverrideCause) => boolean,
    rehandle?: (tuner: string, ev: E) => void,
  ): number {
    const known = new Map<string, boolean>();
    const holds = (c: OverrideCause) => {
      const k = `${c.tuner}\0${c.netns}\0${c.sysctl ?? ""}`;
      let v = known.get(k);
      if (v === undefined) known.set(k, v = stillOverridden(c));
      return v;
    };
    const ended: (Entry & { event: E })[] = [];
    const n = this.#unmuteWhere((e) => {
      const end = e.overrides.length > 0 &&
        !e.overrides.some((o) => holds({ tuner: e.tuner, ...o }));
      if (end) ended.push(e);
      return end;
    });
    // After the table is settled: handling an event may mute its key again.
    for (const e of ended) rehandle?.(e.tuner, e.event);
    return n;
  }

  /** Whether any key is muted for an override (so recheckOverrides has work). */
  get heldByOverrides(): boolean {
    return this.#forOverrides > 0;
  }

  /** Forgets mutes the kernel already ended by itself. */
  pruneExpired(nowMs: number): void {
    if (nowMs < this.#expiresAt) return;
    let next = Infinity;
    for (const [key, e] of this.#entries) {
      if (e.untilMs === null) continue;
      if (e.untilMs <= nowMs) this.#delete(key, e);
      else next = Math.min(next, e.untilMs);
    }
    this.#expiresAt = next;
  }

  get size(): number {
    return this.#entries.size;
  }

  /** What is muted, for tests and diagnostics. */
  entries(): { tuner: string; rlNetns: bigint; rlKind: number; reason: string }[] {
    return [...this.#entries.values()].map(({ tuner, rlNetns, rlKind, reason }) => ({
      tuner,
      rlNetns,
      rlKind,
      reason,
    }));
  }

  #unmuteWhere(match: (e: Entry & { event: E }) => boolean): number {
    let n = 0;
    for (const [key, e] of this.#entries) {
      if (!match(e)) continue;
      this.#delete(key, e);
      this.writer.unmute(e.tuner, e.rlNetns, e.rlKind);
      n++;
    }
    return n;
  }

  #delete(key: string, e: Entry): void {
    this.#entries.delete(key);
    if (e.overrides.length > 0) this.#forOverrides--;
  }
}

function keyOf(tuner: string, rlNetns: bigint, rlKind: number): string {
  return `${tuner}\0${rlNetns}\0${rlKind}`;
}
