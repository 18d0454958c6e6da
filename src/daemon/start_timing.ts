/**
 * Where start-up time goes, phase by phase, for one log line once the daemon has started (debug;
 * BPFPILOT_START_TIMING=1 logs it at info, for the bench): the runtime and bundle before the
 * daemon ran, the journal, the namespaces, the probe, the tuners' objects, the servers.
 */
export interface StartPhase {
  name: string;
  ms: number;
  detail?: string;
}

export class StartTiming {
  readonly phases: StartPhase[] = [];
  readonly #now: () => number;
  #last: number;

  /**
   * `now` counts from this program image's start (performance.now(): Deno's time origin), so
   * the first phase is what ran before the daemon: runtime, bundle, command line.
   */
  constructor(now: () => number = () => performance.now()) {
    this.#now = now;
    this.#last = now();
    this.phases.push({ name: "runtime, bundle and arguments", ms: this.#last });
  }

  /** Ends the phase that ran since the previous mark. */
  mark(name: string, detail?: string): void {
    const t = this.#now();
    this.phases.push({ name, ms: t - this.#last, ...(detail ? { detail } : {}) });
    this.#last = t;
  }

  get totalMs(): number {
    return this.phases.reduce((s, p) => s + p.ms, 0);
  }

  /** "start-up took 812 ms: runtime, bundle and arguments 230 ms, journal 4 ms, ...". */
  describe(): string {
    const parts = this.phases.map((p) =>
      `${p.name} ${p.ms.toFixed(0)} ms${p.detail ? ` (${p.detail})` : ""}`
    );
    return `start-up took ${this.totalMs.toFixed(0)} ms since this program image began: ` +
      parts.join(", ");
  }
}
