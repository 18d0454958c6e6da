/**
 * Settling a grown tcp_rmem or tcp_wmem max near what the path needs. Growth follows the kernel's
 * auto-tuning: receive auto-tuning asks for twice the last period's data plus a slow-start
 * allowance, send buffer expansion for two segments' truesize per packet of the congestion window.
 * Quick, but it overshoots (on the bench's 50 ms, 100 Mbit/s link to 3-15 MB of rmem and 2.5-9.5
 * MB of wmem where about 1 MB gives full rate). A stop during growth does not work: in slow start
 * the data per round trip is far below what the path will need, and a socket held at the max asks
 * again only seconds later (docs/performance-history.md). So growth stays as it is, and once the
 * namespace is steady (no socket near the max for STEADY_MS) the max comes down to TRIM_HEADROOM x
 * the path's need, from the last NEED_SAMPLES events' `used` (the buffer the delivery rate fills in
 * one round trip); each side's SettlePolicy says which of them count and when a quiet namespace
 * may still be growing. Live receive buffers keep their size (the kernel reads tcp_rmem[2] only
 * to grow one); a send buffer is set to at most tcp_wmem[2] whenever the kernel expands it, so a
 * sender above a trimmed max comes down to it then (why the send need uses srtt); never below the
 * max before the growth (an admin's or the kernel's value), and only while the max is still the
 * one this tuner set. Afterwards growth needs fresh evidence (bufferDecision's settledNeed): a
 * round trip's need above the settled one, from any socket; sockets that grew before the trim
 * would otherwise grow it back on their buffer size alone (oscillation). Per namespace;
 * `now` is passed in.
 */
import {
  change,
  type Decision,
  SCENARIO,
  SYSCTL,
  TRIM_HEADROOM,
  vectorReason,
} from "./tcp_buffer_rules.ts";

export { TRIM_HEADROOM };

/** Events whose `used` make the need. */
export const NEED_SAMPLES = 5;
/** A socket whose `used` reaches this share of its buffer is held back by its window. */
export const WINDOW_LIMITED = 0.85;
/** A socket whose buffer reaches this share of the max sits at the max. */
export const AT_MAX = 0.9;
/** No socket near the max for this long: the growth is over. */
export const STEADY_MS = 5000;
/** Only a max above this many times the trim target is trimmed (no change for a few percent). */
export const TRIM_SLACK = 1.25;
/** A trim not possible yet (or refused) is looked at again after this, doubling up to the max. */
const RETRY_MS = 1000, RETRY_MAX_MS = 60_000;
/** A namespace without events for this long is forgotten. */
export const FORGET_MS = 600_000;

/**
 * One event's figures, bytes: `used` (0: unknown), the socket's buffer and the max then, and what
 * the kernel was growing the buffer to (0 or absent: unknown).
 */
export interface NeedSample {
  used: number;
  buf: number;
  limit: number;
  want?: number;
}

/** What differs between the receive and the send side. */
export interface SettlePolicy {
  sysctl: typeof SYSCTL.rmem | typeof SYSCTL.wmem;
  /** The path's need from the episode's recent samples (oldest first), bytes; 0: unknown. */
  needOf(samples: readonly NeedSample[]): number;
  /** The latest event's socket may not be done growing although the namespace went quiet. */
  mayStillGrow(last: NeedSample): boolean;
}

/** The socket had window to spare: its `used` is the path's rate, not what its window let through. */
const hasSpare = (s: NeedSample) => s.used < WINDOW_LIMITED * s.buf;

/**
 * Receive side: `used` is the arrival rate per srtt (tcp_buffer.bpf.c rcv_arrived_need; a socket's
 * first event may carry its period's read data instead). The need is the median of the samples of
 * sockets with window to spare (`used` below WINDOW_LIMITED x their buffer: one the window holds
 * back shows its window, not the path's rate, and one above its buffer read a backlog; one spike
 * does not move the median; the upper one of two), or the latest where higher (a flow still
 * speeding up reports less at each earlier event). Sockets held back by their window after the
 * latest one with window to spare show that the flow has sped up since: the path needs at least
 * what they delivered, up to their buffer (a slow-start sample followed only by window-limited ones
 * trimmed a 1.56 MB max to the 64 KiB before the growth, 12x below full rate). Where no sample had
 * window to spare, that lower bound is the need (before, nothing was trimmed at all: loopback's
 * short flows are held by their own buffer at every grow hit, and the grown max stayed); a trim
 * below the real need is undone by the next round trip that needs 1.25x more (bufferDecision).
 * Not while the latest socket sat at the max held back by its window: it goes quiet (auto-tuning
 * waits for more data per period than the window lets through) without being done growing; also
 * where the event is the grow that took it there (the kernel grew it to the max right after) and
 * the max holds less than TRIM_HEADROOM x its need: a held socket whose want was above the max was
 * trimmed to 1.5x its old buffer, 0.46x the need, while it sat at the max at half the path's rate
 * for 45 s. (Not by the want alone: loopback's carries 16 segments of 64 KB of headroom, above a 6
 * MB max for a flow needing 16-95 KB, and most of the netns bench's namespaces kept a grown max.) One at
 * (or above) the max with window to spare is not held by it: a bench run whose transfer reached a
 * 1.42 MB max needing 0.78 MB a round trip was never trimmed (the max it had asked for stayed at
 * 5.7 MB, 7x the need), nor was one grown above a trimmed max whose need grew it again.
 */
export const RCVBUF_POLICY: SettlePolicy = {
  sysctl: SYSCTL.rmem,
  needOf(samples) {
    const spare = samples.filter(hasSpare).map((s) => s.used);
    const sorted = [...spare].sort((a, b) => a - b);
    const since = samples.slice(samples.findLastIndex(hasSpare) + 1);
    const held = since.map((s) => Math.min(s.used, s.buf));
    if (spare.length === 0) return Math.max(0, ...held);
    return Math.max(sorted[Math.floor(sorted.length / 2)], spare.at(-1)!, ...held);
  },
  mayStillGrow: (last) =>
    !hasSpare(last) &&
    (last.buf >= AT_MAX * last.limit ||
      ((last.want ?? 0) >= AT_MAX * last.limit && TRIM_HEADROOM * last.used > last.limit)),
};

/**
 * Send side: every event comes from a socket its buffer holds back (the application found it
 * full while the congestion window had room), whose `used` (delivery rate x srtt, in send-buffer
 * truesize) is a lower bound of the need there: the need is the largest recent one. Quiet is enough: a socket held by its
 * buffer fires on every ACK, so no event for STEADY_MS means none is held any more.
 */
export const SNDBUF_POLICY: SettlePolicy = {
  sysctl: SYSCTL.wmem,
  needOf: (samples) => Math.max(0, ...samples.map((s) => s.used)),
  mayStillGrow: () => false,
};

interface Episode {
  /** The max before this tuner's first growth: the trim's floor. */
  origin: number;
  /** The max this tuner's last change left; trimmed only while the live value is this. */
  setTo: number;
  /** The last NEED_SAMPLES events with a known `used`, oldest first. */
  samples: NeedSample[];
  lastEventAt: number;
  /** Set once trimmed (or found close enough): the need the max settled at. */
  settledNeed: number;
  retryAt: number;
  retryMs: number;
}

export class BufferSettle {
  readonly #episodes = new Map<string, Episode>();
  /**
   * No episode needs due() before this (a lower bound: events and retries only move an episode's
   * time later; a growth may bring it earlier and lowers it). The tick asks every second: while
   * nothing can be due it answers without a look at every episode.
   */
  #wakeAt = Infinity;

  constructor(readonly policy: SettlePolicy) {}

  /** Every event of `netns` about this side's max. */
  observe(netns: string, sample: NeedSample, now: number): void {
    const e = this.#episodes.get(netns);
    if (!e) return;
    e.lastEventAt = now;
    remember(e, sample);
  }

  /** Namespaces that are gone: their episodes end (no trim is ever written there). */
  forgetNetns(gone: ReadonlySet<string>): void {
    for (const netns of gone) this.#episodes.delete(netns);
  }

  /** The need the max was trimmed to (bufferDecision's settledNeed), or 0. */
  settledNeed(netns: string): number {
    return this.#episodes.get(netns)?.settledNeed ?? 0;
  }

  /**
   * This tuner grew the max of `netns` from `from` to `to` on an event with `sample` (which
   * observe() saw already when an episode was under way): one starts, or goes on.
   */
  grew(netns: string, from: number, to: number, sample: NeedSample, now: number): void {
    const e = this.#episodes.get(netns);
    if (e) {
      Object.assign(e, { setTo: to, settledNeed: 0, lastEventAt: now, retryMs: RETRY_MS });
      this.#wakeAt = Math.min(this.#wakeAt, wakeAt(e));
      return;
    }
    const started: Episode = {
      origin: from,
      setTo: to,
      samples: [],
      lastEventAt: now,
      settledNeed: 0,
      retryAt: 0,
      retryMs: RETRY_MS,
    };
    remember(started, sample);
    this.#episodes.set(netns, started);
    this.#wakeAt = Math.min(this.#wakeAt, wakeAt(started));
  }

  /**
   * Whether due() must look at the episodes at `now`: not before the lower bound of their next
   * times (the scan that follows checks the exact conditions). A subclass answering true always
   * is the plain scan of every episode, which the bound must agree with (its unit test).
   */
  protected mayBeDue(now: number): boolean {
    return now >= this.#wakeAt;
  }

  /** Namespaces whose growth may be over now (the tuner reads their live value for trim()). */
  due(now: number): string[] {
    if (!this.mayBeDue(now)) return [];
    const out: string[] = [];
    let next = Infinity;
    for (const [netns, e] of this.#episodes) {
      if (now - e.lastEventAt >= FORGET_MS) {
        this.#episodes.delete(netns);
        continue;
      }
      if (!e.settledNeed && now - e.lastEventAt >= STEADY_MS && now >= e.retryAt) {
        out.push(netns);
      }
      next = Math.min(next, wakeAt(e)); // a due one's is now or earlier: looked at again
    }
    this.#wakeAt = next;
    return out;
  }

  /**
   * The trim for a due namespace with the live value `live` (null: gone), or null. Ends the
   * episode where there is nothing to trim: the max was changed by someone else, no event said
   * what the path needs, or the max is already close to the target; looks again later while the
   * latest socket may still be growing or no recent sample tells the need.
   */
  trim(netns: string, live: readonly number[] | null, now: number): Decision | null {
    const e = this.#episodes.get(netns);
    if (!e) return null;
    const last = e.samples.at(-1);
    if (!live || live.length !== 3 || live[2] !== e.setTo || !last) {
      this.#episodes.delete(netns);
      return null;
    }
    const needed = this.policy.needOf(e.samples);
    if (this.policy.mayStillGrow(last) || needed === 0) {
      later(e, now);
      return null;
    }
    const target = Math.max(Math.ceil(TRIM_HEADROOM * needed), e.origin, live[1] + 1);
    if (live[2] <= TRIM_SLACK * target) {
      e.settledNeed = needed;
      return null;
    }
    const to = [live[0], live[1], target];
    const why = `steady traffic needing about ${needed} bytes of buffer per round trip`;
    return change(
      SCENARIO.bufferDecrease,
      this.policy.sysctl,
      live,
      to,
      vectorReason(why, this.policy.sysctl, "min default max", live, to),
    );
  }

  /** The outcome of trim()'s change: applied (settled there) or refused (looked at later). */
  trimmed(netns: string, applied: boolean, to: number, now: number): void {
    const e = this.#episodes.get(netns);
    if (!e) return;
    if (applied) Object.assign(e, { setTo: to, settledNeed: this.policy.needOf(e.samples) });
    else later(e, now);
    this.#wakeAt = Math.min(this.#wakeAt, wakeAt(e));
  }
}

/**
 * A little before the first time due() acts on `e` as it is now (events and retries only move it
 * later): forgotten, or due while not settled. The margin keeps float rounding from making it
 * late; due() checks the exact conditions.
 */
function wakeAt(e: Episode): number {
  const forget = e.lastEventAt + FORGET_MS;
  const at = e.settledNeed
    ? forget
    : Math.min(forget, Math.max(e.lastEventAt + STEADY_MS, e.retryAt));
  return at - 1;
}

function later(e: Episode, now: number): void {
  e.retryAt = now + e.retryMs;
  e.retryMs = Math.min(RETRY_MAX_MS, e.retryMs * 2);
}

function remember(e: Episode, s: NeedSample): void {
  if (![s.used, s.buf, s.limit].every(Number.isSafeInteger) || s.used <= 0) return;
  const want = Number.isSafeInteger(s.want) && s.want! > 0 ? s.want! : 0;
  e.samples.push({ used: s.used, buf: s.buf, limit: s.limit, want });
  if (e.samples.length > NEED_SAMPLES) e.samples.shift();
}

/** Receive side (RCVBUF_POLICY). */
export class RcvbufSettle extends BufferSettle {
  constructor() {
    super(RCVBUF_POLICY);
  }
}

/** Send side (SNDBUF_POLICY). */
export class SndbufSettle extends BufferSettle {
  constructor() {
    super(SNDBUF_POLICY);
  }
}
