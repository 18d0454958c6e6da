/**
 * When the daemon's change records reach the disk. They are appended (write(2)) before each
 * sysctl write and not fdatasync'ed there (journal.ts, "Durability"); the tick calls tick() once a
 * second, and while records wait it starts one fdatasync of the log in the background (the
 * runtime's blocking pool: the main thread, and the events it handles, never wait for the disk)
 * at most every LOG_SYNC_EVERY_MS. Close syncs what is left (Journal.close).
 *
 * Why 5 s: it is ext4's default commit interval, what the file system itself risks for every other
 * file's metadata; a power loss then takes at most the last ~6 s of history (5 s and a tick); and
 * under a stream of changes (8-10 a second at 100 namespaces) it is one fdatasync per 40-50 changes
 * instead of one per batch.
 */

/** The longest records wait between syncs, while some wait (see the header). */
export const LOG_SYNC_EVERY_MS = 5000;

/** What is synced (the Journal). */
export interface SyncableLog {
  hasUnsynced(): boolean;
  syncLogInBackground(): Promise<void>;
}

export class DeferredLogSync {
  /** When the last sync started (-Infinity: none yet, so the first waiting record goes at once). */
  #last = -Infinity;
  #running: Promise<void> | null = null;

  constructor(
    private readonly log: SyncableLog,
    /** A failed sync (the records stay owed: tried again a period later). */
    private readonly onError: (e: unknown) => void,
    private readonly everyMs = LOG_SYNC_EVERY_MS,
  ) {}

  /** From the tick: starts a sync when records wait, none runs, and the last began everyMs ago. */
  tick(now: number): boolean {
    if (this.#running || now - this.#last < this.everyMs || !this.log.hasUnsynced()) return false;
    this.#last = now;
    this.#running = this.log.syncLogInBackground()
      .catch((e) => this.onError(e))
      .finally(() => this.#running = null);
    return true;
  }

  /** Resolves once no sync runs (before the journal closes, which syncs the rest itself). */
  settled(): Promise<void> {
    return this.#running ?? Promise.resolve();
  }
}
