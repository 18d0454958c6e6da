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

/**
 * What namespaces now gone saw and had changed, folded per (tuner, scenario, sysctl) and (tuner,
 * sysctl): their own records go when they do, so a host whose containers come and go keeps the
 * daemon's memory, its exit summary and every metrics scrape bounded, while the counts stay.
 */
export interface GoneNamespaces {
  /** How many namespaces with a record were folded in. */
  namespaces: number;
  scenarios: Map<string, Omit<ScenarioCount, "netns">>;
  changes: Map<string, { tuner: string; sysctl: string; changes: number; namespaces: number }>;
}

export class DaemonStats {
  readonly scenarios = new Map<string, ScenarioCount>();
  readonly changes = new Map<string, ChangeRecord>();
  readonly events = new Map<string, TunerEventStats>();
  readonly gone: GoneNamespaces = { namespaces: 0, scenarios: new Map(), changes: new Map() };

  /** Folds the records of namespaces that are gone into `gone` (one pass over the records). */
  forgetNetns(gone: ReadonlySet<string>): void {
    if (gone.size === 0) return;
    const folded = new Set<string>();
    for (const [key, s] of this.scenarios) {
      if (!gone.has(s.netns)) continue;
      this.scenarios.delete(key);
      folded.add(s.netns);
      const k = `${s.tuner}\0${s.scenario}\0${s.sysctl}`;
      const g = this.gone.scenarios.get(k) ??
        { tuner: s.tuner, scenario: s.scenario, sysctl: s.sysctl, count: 0 };
      g.count += s.count;
      this.gone.scenarios.set(k, g);
    }
    for (const [key, c] of this.changes) {
      if (!gone.has(c.netns)) continue;
      this.changes.delete(key);
      folded.add(c.netns);
      const k = `${c.tuner}\0${c.sysctl}`;
      const g = this.gone.changes.get(k) ??
        { tuner: c.tuner, sysctl: c.sysctl, changes: 0, namespaces: 0 };
      g.changes += c.changes;
      g.namespaces++;
      this.gone.changes.set(k, g);
    }
    this.gone.namespaces += folded.size;
  }

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
