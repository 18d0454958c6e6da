/**
 * The settle episodes as they were before the due queue (src/tuners/tcp_buffer_settle.ts): due()
 * scans every episode. Kept only as the reference the queue's answers are compared with
 * (test/unit/tcp_buffer_settle_test.ts); the rules come from the real module.
 */
import {
  FORGET_MS,
  NEED_SAMPLES,
  type NeedSample,
  type SettlePolicy,
  STEADY_MS,
  TRIM_HEADROOM,
  TRIM_SLACK,
} from "../../src/tuners/tcp_buffer_settle.ts";
import {
  change,
  type Decision,
  SCENARIO,
  vectorReason,
} from "../../src/tuners/tcp_buffer_rules.ts";

const RETRY_MS = 1000, RETRY_MAX_MS = 60_000;

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

export class ScanSettle {
  readonly #episodes = new Map<string, Episode>();

  constructor(readonly policy: SettlePolicy) {}

  /** Every event of `netns` about this side's max. */
  observe(netns: string, sample: NeedSample, now: number): void {
    const e = this.#episodes.get(netns);
    if (!e) return;
    e.lastEventAt = now;
    remember(e, sample);
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
  }

  /** Namespaces whose growth may be over now (the tuner reads their live value for trim()). */
  due(now: number): string[] {
    const out: string[] = [];
    for (const [netns, e] of this.#episodes) {
      if (now - e.lastEventAt >= FORGET_MS) this.#episodes.delete(netns);
      else if (!e.settledNeed && now - e.lastEventAt >= STEADY_MS && now >= e.retryAt) {
        out.push(netns);
      }
    }
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
  }
}

function later(e: Episode, now: number): void {
  e.retryAt = now + e.retryMs;
  e.retryMs = Math.min(RETRY_MAX_MS, e.retryMs * 2);
}

function remember(e: Episode, s: NeedSample): void {
  if (![s.used, s.buf, s.limit].every(Number.isSafeInteger) || s.used <= 0) return;
  e.samples.push({ used: s.used, buf: s.buf, limit: s.limit });
  if (e.samples.length > NEED_SAMPLES) e.samples.shift();
}
