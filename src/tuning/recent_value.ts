/**
 * A host-wide value (tcp_mem, /proc/net/sockstat) read at most once per `maxAgeMs`: events of
 * many namespaces arrive several a second and each would otherwise read it again. Only for
 * what a decision consults (memory state, ceilings), never for a value a change starts from: the
 * journal's original must be the live value.
 */
export class RecentValue<T> {
  #read: { at: number; value: T } | null = null;

  constructor(
    private readonly readNow: () => T,
    private readonly maxAgeMs: number,
    private readonly now: () => number,
  ) {}

  /** The value read less than `maxAgeMs` ago (a clock going back reads again), else read now. */
  get(): T {
    const t = this.now();
    const r = this.#read;
    if (r && t >= r.at && t - r.at < this.maxAgeMs) return r.value;
    const value = this.readNow();
    this.#read = { at: t, value };
    return value;
  }

  /** The next get() reads: the value was just changed (by us). */
  forget(): void {
    this.#read = null;
  }
}
