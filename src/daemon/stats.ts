/**
 * What the daemon did, for the exit summary, the control socket and metrics: scenario counts per
 * (tuner, scenario, sysctl, netns), changes per (netns, sysctl) with first and last values, and
 * events seen and dropped per tuner.
 */

export interface ScenarioCount {
  tuner: string;
  scenario: string;
  sysctl: string;
  netns: string;
  count: number;
}

export interface ChangeRecord {
  tuner: string;
  sysctl: string;
  netns: string;
  /** The value before this run's first change. */
  first: number[];
  /** The value after this run's last change. */
  last: number[];
  changes: number;
}

export interface TunerEventStats {
  events: number;
  /** Hook hits folded by the kernel-side rate limiter (each event stands for `count` hits). */
  folded: number;
  /** Events lost because the ring buffer was full (read from the object's stats map). */
  dropped: number;
  decodeErrors: number;
  /** Muted events handed back when the override they were muted for ended (event_mutes.ts). */
  rehandled: number;
}

export class DaemonStats {
  readonly scenarios = new Map<string, ScenarioCount>();
  readonly changes = new Map<string, ChangeRecord>();
  readonly events = new Map<string, TunerEventStats>();

  countScenario(tuner: string, scenario: string, sysctl: string, netns: string): void {
    const key = `${tuner}\0${scenario}\0${sysctl}\0${netns}`;
    const s = this.scenarios.get(key) ?? { tuner, scenario, sysctl, netns, count: 0 };
    s.count++;
    this.scenarios.set(key, s);
  }

  recordChange(tuner: string, sysctl: string, netns: string, from: number[], to: number[]): void {
    const key = `${netns}\0${sysctl}`;
    const c = this.changes.get(key) ??
      { tuner, sysctl, netns, first: [...from], last: [...to], changes: 0 };
    c.last = [...to];
    c.changes++;
    this.changes.set(key, c);
  }

  tunerEvents(tuner: string): TunerEventStats {
    let s = this.events.get(tuner);
    if (!s) {
      s = { events: 0, folded: 0, dropped: 0, decodeErrors: 0, rehandled: 0 };
      this.events.set(tuner, s);
    }
    return s;
  }
}
