/**
 * Crash-safe record of what bpfpilot changed, so every change can be undone: the original value
 * of each sysctl before our first write, our last write, and the admin overrides that switched a
 * tuner off. It lives in `<dir>/state.json` (default /var/lib/bpfpilot) and survives restarts,
 * crashes and `kill -9`.
 *
 * Write protocol (per sysctl write):
 *   1. `recordOriginal(netns, sysctl, tuner, current, next)` (the CLI's writers) or `announce`
 *      (the daemon): stores `current` as the original the first time only, and `next` as the
 *      pending value; appended to the log with write(2) before the sysctl is written.
 *   2. write the sysctl.
 *   3. `recordWritten(netns, sysctl, next)`.
 * A crash between 1 and 3 is covered either way: the live value equals the original ("already
 * at original") or the pending value (restored like any other write).
 *
 * Durability. A record written with write(2) is in the page cache: every reader sees it, and it
 * survives `kill -9` and any crash of the process. Only a kernel crash or a power loss can lose
 * it, and those reset every sysctl too (kernel state does not survive a reboot): a change record
 * lost that way describes a change that is gone as well, so rollback never needs it. The daemon's
 * change records (`announce`, `recordWritten`, `recordNotWritten`, `pruneNetns`) are therefore
 * not fdatasync'ed on the event path: the daemon's tick syncs the log in the background at most
 * every 5 s while records wait (log_sync.ts), and `close()` syncs what is left. What that sync
 * bounds is history (the log of what was changed and why): a power loss takes at most the last
 * few seconds of it. Records that are decisions rather than a copy of volatile values are
 * fdatasync'ed before the call returns, as is everything appended before them: admin overrides
 * (`markOverride`, `clearOverrides`, `dropOverrides`: they hold across restarts and reboots) and
 * the CLI's own writers (`recordOriginal`: `audit --apply`; `forgetMany`: `rollback`).
 *
 * Values are stored as the caller gives them: integer sysctls as number arrays (`[4096, 131072,
 * 6291456]`), text sysctls (congestion control) as strings. Comparisons normalise both to the
 * space-separated text form, so a reader may return either.
 *
 * Files and locks (all in `dir`, which is created 0700):
 *   - `state.json` (0600): the state as of log record `logSeq`; replaced atomically (temp file
 *     in `dir`, fsync, rename, fsync dir) when the log is folded into it (compaction: when the
 *     log holds more records than twice the entries, at least 256, and when the journal closes
 *     after writing). When it is invalid it is never modified; every operation fails with a
 *     JournalError that says how to fix it, and `Journal.quarantine` moves it aside only when a
 *     user asks. Version 1 files (no log) are read as they are.
 *   - `state.log` (0600): every change since, one JSON line each (journal_log.ts): a change is
 *     one append, fdatasync'ed at once only as said above. The file's last line, if torn, is
 *     ignored; a run of NULs that starts a line (a power loss's hole) is skipped with a warning.
 *   - `state.lock`: exclusive flock held only around each read-modify-write (or one `batch`), so
 *     the daemon and a concurrent `bpfpilot rollback`/`enable` never lose each other's updates.
 *     Every change first catches up with the files under the lock; readers need no lock:
 *     `state.json` is only ever replaced by rename and the log only appended to or replaced by
 *     rename, and they read only what changed (a stat of each file when nothing did).
 *
 * A batch (`batch(fn)`: the daemon's handling of one wake-up's events, or one tick) takes the lock
 * once, at its first change, and holds it to its end: the files are caught up with once, and the
 * records that may wait (recordWritten, recordNotWritten, pruneNetns) wait in memory for the
 * batch's next append or its end. `announce` is recordOriginal for a batch that writes several
 * sysctls, without the fdatasync: its records wait too, and `appendAnnounced()` appends them all
 * with one write(2) before the batch writes any of those sysctls (the daemon's applier: one
 * append per wake-up, not per change).
 *   - `daemon.lock`: exclusive flock held for the daemon's lifetime (`claimDaemon`), with its pid
 *     inside. A second daemon fails with kind "busy"; the CLI can ask `Journal.daemonPid(dir)`
 *     before a rollback (rolling back under a running daemon races with its next write). The
 *     kernel drops both locks when the process dies, so `kill -9` leaves nothing stale.
 *
 * Folding in the background (`foldInBackground`: the daemon). A fold's fsyncs take 4-6 ms with an
 * idle disk and up to 0.55 s with a busy one: on the daemon's main thread they would stall the
 * events. So the daemon's folds run their disk work in the runtime's blocking pool
 * (journal_fold.ts), one at a time, while changes keep being appended to the log: under the lock,
 * once the log holds every record, the state is taken as of record S (the pieces of its text: each
 * entry's JSON as recorded, so only what changed is serialised again; ~0.6 ms at 1,000 entries);
 * the text is encoded a ~32 KB slice at a time, each written in the pool, and the temp file
 * fsynced there; under the lock it is renamed over state.json (readers then
 * skip the log's records up to S); the directory is fsynced in the pool; the log's records after
 * S are copied to a temp log and fsynced in the pool (again while records that may be on disk were
 * added meanwhile), and under the lock the few appended since, our own unsynced ones, are added
 * and the copy renamed over the log (those stay owed: the appender syncs the new log); then the
 * directory is fsynced (a durable append meanwhile fsyncs it itself). Each step under the lock
 * first checks that no other writer replaced either file; if one did, the fold gives up (that
 * writer folded). A crash between any two steps leaves the old state.json and the whole log, or
 * the new state.json and a log whose records up to S it skips; nothing is applied twice.
 * `settled()` awaits a fold in flight; close() stops one and folds at once, on the main thread (the
 * CLI). The daemon's stop calls `closeInBackground()`: the fold in flight finishes, what the log
 * holds then is folded the same way, off the main thread, and the rest of its records synced there.
 *
 * Beside this module: journal_types.ts (the records and options), journal_format.ts (the state
 * and its log records parsed, validated and serialised; no I/O), journal_files.ts (the files'
 * names, safe reads, atomic replacement, the lock), journal_log.ts (the log's reads and
 * appends) and journal_fold.ts (a background fold's file work).
 */

import { canonicalSysctlName } from "../kernel/sysctl.ts";
import { ANY_NETNS, GLOBAL_NETNS, NetnsGoneError } from "../kernel/netns.ts";
import { PendingOverrides } from "./pending_overrides.ts";
import { recordIsForReusedInode, recordIsFromEarlierBoot } from "./netns_reuse.ts";
import { readBootId } from "../kernel/boot_id.ts";
import { VERSION } from "../version.ts";
import {
  type FileStamp,
  LogAppender,
  type LogTail,
  readTail,
  replaceWithEmpty,
  sameStamp,
  stampOf,
} from "./journal_log.ts";
import { prepareStateDir, StateDirError, StateDirIoError } from "./state_dir.ts";
import { changeTiming as ct } from "./change_timing.ts";
import {
  type ChangedKeys,
  type FoldStep,
  type JournalEntry,
  JournalError,
  type JournalOptions,
  type JournalState,
  type NetnsBootField,
  type NetnsCookieField,
  type NetnsCookieOf,
  type OverrideRecord,
  type ReadLive,
  type RollbackPlan,
  STATE_FORMAT,
  STATE_VERSION,
  type SysctlValue,
} from "./journal_types.ts";
import {
  applyLogLine,
  capOverrides,
  checkNetns,
  checkTuner,
  copyValue,
  entryKey,
  type LogChange,
  parseState,
  sameValue,
  serializedOverrides,
  type SerializedParts,
  serializeState,
  statePieces,
  valueText,
} from "./journal_format.ts";
import {
  compactTimestamp,
  DAEMON_LOCK_FILE,
  exists,
  fsyncDir,
  ioError,
  LOCK_FILE,
  LOG_FILE,
  LOG_TEMP_PREFIX,
  readStateText,
  removeStaleTemps,
  STATE_FILE,
  takeLock,
  TEMP_PREFIX,
  withLock,
  writeAtomically,
} from "./journal_files.ts";
import {
  copyLines,
  copyLinesSync,
  fsyncDirInBackground,
  keepBlocks,
  removeQuietly,
  tempName,
  writeSyncedTemp,
} from "./journal_fold.ts";

// The journal's records and types, and helpers, as its users import them from here.
export * from "./journal_types.ts";
export { MAX_OVERRIDES, valueText } from "./journal_format.ts";
export { MAX_STATE_BYTES } from "./journal_files.ts";

export const DEFAULT_STATE_DIR = "/var/lib/bpfpilot";
/** Fold the log into state.json once it holds this many records, or twice the entries. */
const COMPACT_MIN_RECORDS = 256;

/** A batch under way (see Journal.batch). */
interface BatchState {
  /** It holds state.lock (and caught up with the files when it took it). */
  held: boolean;
  fresh: boolean;
  /** It caught up with the files once before taking the lock. */
  looked: boolean;
  /** Records not appended yet. */
  unsynced: string;
  /** Among them are announced ones (Journal.announce): appendAnnounced() owes their append. */
  owed: boolean;
  /** Announced records were dropped by a failed write: appendAnnounced() must refuse. */
  lost?: boolean;
}

/** A write failed: memory is read again from the files, and the waiting records are gone. */
function dropWaiting(b: BatchState): void {
  Object.assign(b, { fresh: false, unsynced: "", lost: b.lost || b.owed });
}

// ---------------------------------------------------------------------------------------------

/** What a background fold started from (Journal.#startFold). */
interface FoldBase {
  /** state.json as of log record `seq`, serialised: pieces of its text (statePieces). */
  pieces: string[];
  seq: number;
  /** The files it extends: state.json's version, the log's inode and the end of record `seq`. */
  snap: FileStamp | null;
  logIno: number;
  logEnd: number;
}

/** Copy rounds of the log's tail before the last one is fsynced on the main thread. */
const FOLD_COPY_ROUNDS = 4;

/** A stamp no file has: forces the next refresh to read everything again. */
const UNKNOWN: FileStamp = { ino: -1, size: -1, mtimeMs: -1 };

export class Journal {
  readonly file: string;
  /** The change log next to `file`. */
  readonly logFile: string;
  #state: JournalState;
  /** The version of state.json #state was read from. */
  #snap: FileStamp | null = UNKNOWN;
  /** The log inode read (null: none) and the offset after its last complete record. */
  #logIno: number | null = null;
  #logEnd = 0;
  /**
   * The log's size as last seen under the lock held now (its catching up, or our own append);
   * null when not known. Lets an append skip its fstat and seek (LogAppender.append).
   */
  #logSize: number | null = null;
  /** Records in the log (not yet in state.json), and how many of them this instance wrote. */
  #logRecords = 0;
  #appended = 0;
  /**
   * Each entry's JSON as last compared (#differs) or read (#reload, #applyLog): what the log says
   * of it, as every change of an entry is compared before its record is appended. A fold's
   * snapshot joins these instead of serialising every entry again (#serialize).
   */
  #compared = new WeakMap<JournalEntry, string>();
  /** The overrides' JSON as last serialised, and the #overridesVersion it is of. */
  #overridesJson: { version: number; list: OverrideRecord[]; lines: string[] } | null = null;
  /** Where each entry was in the list when last looked up (see #find). */
  #entryAt = new Map<string, number>();
  /** Each entry as last recorded, serialized: what a change is compared against. */
  #entryJson = new Map<string, string>();
  #now: () => Date;
  readonly #netnsCookie: NetnsCookieOf;
  readonly #entryNetnsCookie: NetnsCookieOf;
  /** Overrides noted while their namespace could not be identified (pending_overrides.ts). */
  readonly #pending = new PendingOverrides();
  readonly #warn: (message: string) => void;
  /** The holes in the log warned about (inode and range). */
  #holesWarned = new Set<string>();
  /** This boot's id (null: unknown), read once: see NetnsBootField. */
  readonly #boot: string | null;
  #daemonLock: Deno.FsFile | undefined;
  /** `state.lock` while this instance holds it (a change, or a batch from its first change on). */
  #lockFile: Deno.FsFile | undefined;
  /**
   * The daemon's `state.lock` (from claimDaemon on), kept open between holds with its inode: a
   * hold is then one flock, not an open, a flock and a close per wake-up.
   */
  #keptLock: { file: Deno.FsFile; ino: number } | undefined;
  #keepLock = false;
  /**
   * The batch under way: whether it holds the lock (and has caught up with the files since), and
   * the records it has not appended yet (none of them needs a sync).
   */
  #batch: BatchState | null = null;
  /** The log, kept open between appends. */
  readonly #log: LogAppender;
  /** Bumped whenever the overrides in memory may have changed (see overridesVersion()). */
  #overridesVersion = 0;
  /** Fold in the background (the daemon): see "Folding in the background". */
  readonly #foldInBackground: boolean;
  readonly #foldStep: (step: FoldStep) => void | Promise<void>;
  /** The background fold in flight (never two), and one due at the batch's end. */
  #fold: Promise<void> | null = null;
  #foldDue = false;
  /** No background fold before the log holds this many records (after a failed one). */
  #foldAfter = 0;
  #closed = false;
  #folds = 0;
  #longestFoldStep = 0;
  #longestSnapshot = 0;
  /**
   * The log's bytes below `end` on inode `ino` may be on disk (a sync of ours or another writer's
   * may have covered them); past it are only our own appends that no sync has covered yet. A
   * background fold's copy of the log fsyncs the first part before it replaces the log.
   */
  #mayBeSynced = { ino: -1, end: 0 };
  /** The directory fsync after a background fold replaced the log, while it runs. */
  #dirSync: Promise<void> | null = null;

  private constructor(readonly dir: string, opts: JournalOptions) {
    this.file = `${dir}/${STATE_FILE}`;
    this.logFile = `${dir}/${LOG_FILE}`;
    this.#log = new LogAppender(this.logFile);
    this.#now = opts.now ?? (() => new Date());
    this.#netnsCookie = opts.netnsCookie ?? (() => null);
    this.#entryNetnsCookie = opts.entryNetnsCookie ?? this.#netnsCookie;
    this.#boot = (opts.bootId ?? readBootId)();
    this.#warn = opts.warn ?? ((m) => console.error(`bpfpilot: warning: ${m}`));
    this.#foldInBackground = opts.foldInBackground ?? false;
    this.#foldStep = opts.foldStep ?? (() => {});
    this.#state = this.#emptyState();
    this.refresh();
  }

  /** Opens (creating the directory 0700 if needed) and validates the state file. */
  static open(dir: string = DEFAULT_STATE_DIR, opts: JournalOptions = {}): Journal {
    try {
      prepareStateDir(dir, { create: opts.create ?? true });
    } catch (e) {
      if (e instanceof StateDirError) throw new JournalError(e.kind, dir, e.message);
      if (e instanceof StateDirIoError) throw ioError(e.action, e.path, e.cause);
      throw e;
    }
    const journal = new Journal(dir, opts);
    try {
      withLock(dir, () => removeStaleTemps(dir, Journal.#runningDaemon(dir)));
    } catch (err) {
      throw ioError("clean up temporary files in", dir, err);
    }
    return journal;
  }

  /**
   * Moves a bad state file aside to `state.json.corrupt-<timestamp>` (an explicit user action,
   * never automatic) and returns the new path.
   */
  static quarantine(dir: string = DEFAULT_STATE_DIR, now: Date = new Date()): string {
    const file = `${dir}/${STATE_FILE}`;
    return withLock(dir, () => {
      try {
        Deno.statSync(file);
      } catch (err) {
        if (err instanceof Deno.errors.NotFound) {
          throw new JournalError("io", file, `there is no state file at ${file} to move aside`);
        }
        throw ioError("inspect", file, err);
      }
      const base = `${file}.corrupt-${compactTimestamp(now)}`;
      let target = base;
      for (let n = 1; exists(target); n++) target = `${base}-${n}`;
      try {
        Deno.renameSync(file, target);
        fsyncDir(dir);
      } catch (err) {
        throw ioError("move aside", file, err);
      }
      return target;
    });
  }

  /**
   * The pid of the daemon holding `dir`, 0 if one holds it but its pid is unknown, null if none.
   */
  static daemonPid(dir: string = DEFAULT_STATE_DIR): number | null {
    const path = `${dir}/${DAEMON_LOCK_FILE}`;
    let f: Deno.FsFile;
    try {
      f = Deno.openSync(path, { read: true });
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return null;
      throw ioError("open", path, err);
    }
    try {
      if (f.tryLockSync(false)) return null;
      const pid = Number.parseInt(Deno.readTextFileSync(path).trim(), 10);
      return Number.isSafeInteger(pid) && pid > 0 ? pid : 0;
    } finally {
      f.close();
    }
  }

  /** The running daemon's pid, whose temp files a fold may be using (null: none or unknown). */
  static #runningDaemon(dir: string): number | null {
    try {
      return Journal.daemonPid(dir) || null;
    } catch {
      return null;
    }
  }

  /** Marks this process as the daemon for `dir` until `close()`; throws kind "busy" if taken. */
  claimDaemon(): void {
    if (this.#daemonLock) return;
    const path = `${this.dir}/${DAEMON_LOCK_FILE}`;
    let f: Deno.FsFile;
    try {
      f = Deno.openSync(path, { read: true, write: true, create: true, mode: 0o600 });
    } catch (err) {
      throw ioError("open", path, err);
    }
    try {
      if (!f.tryLockSync(true)) {
        const pid = Number.parseInt(Deno.readTextFileSync(path).trim(), 10);
        const who = Number.isSafeInteger(pid) && pid > 0 ? ` (pid ${pid})` : "";
        throw new JournalError(
          "busy",
          path,
          `another bpfpilot daemon${who} is already running with state directory ${this.dir}; ` +
            `stop it first (systemctl stop bpfpilot), or give this one another state directory`,
        );
      }
      f.truncateSync(0);
      f.writeSync(new TextEncoder().encode(`${Deno.pid}\n`));
    } catch (err) {
      f.close();
      throw ioError("lock", path, err);
    }
    this.#daemonLock = f;
    this.#keepLock = true;
  }

  /**
   * Folds the change log into state.json (so the file alone tells the whole story again) when
   * this instance wrote to it, and releases the daemon claim. A failure to fold is harmless:
   * the log stays valid and is read next time; it is fdatasync'ed instead, and a failure of that
   * is thrown (a JournalError) once everything is released.
   */
  close(): void {
    this.#closed = true; // a background fold in flight stops at its next step (see settled())
    if (this.#appended > 0) {
      try {
        this.#locked(() => {
          this.refresh();
          if (this.#logRecords > 0) this.#compact();
        });
      } catch { /* the log keeps every record */ }
      this.#appended = 0;
    }
    let unsynced: unknown = null;
    try {
      this.#log.sync(); // what no compaction made durable (see "Durability")
    } catch (err) {
      unsynced = err;
    }
    this.#log.close();
    this.#keepLock = false;
    try {
      this.#keptLock?.file.close();
    } catch { /* closed already */ }
    this.#keptLock = undefined;
    this.#daemonLock?.close();
    this.#daemonLock = undefined;
    if (unsynced !== null) throw ioError("flush", this.logFile, unsynced);
  }

  /**
   * close() for the daemon's stop: the same end (the log folded into state.json when this instance
   * wrote to it, every record of ours on disk, the locks released), with the disk work in the
   * runtime's blocking pool as a background fold's (the main thread only snapshots and renames):
   * a fold in flight is let finish, the records left are folded the same way, and the appends no
   * fold or sync covered are fdatasync'ed off the main thread. A fold that fails or gives up
   * (another writer folded) is not done again on the main thread: the log keeps every record,
   * synced. A failure of that sync is thrown as close() throws it, once everything is released.
   */
  async closeInBackground(): Promise<void> {
    if (this.#closed) return this.close();
    await this.settled();
    if (this.#appended > 0 && this.#foldInBackground) {
      try {
        this.#locked(() => {
          this.#catchUp();
          if (this.#logRecords > 0) this.#startFold();
        });
        await this.settled();
        this.#appended = 0; // close() folds no more: the log holds the rest, synced below
      } catch { /* close() folds at once instead */ }
    }
    try {
      await this.syncLogInBackground();
    } catch { /* close() syncs at once, and throws if that fails too */ }
    this.close();
  }

  /**
   * Resolves once no background fold runs (closeInBackground awaits it; close() would otherwise
   * fold again itself, on the main thread, and the fold in flight give up).
   */
  async settled(): Promise<void> {
    while (this.#fold) await this.#fold;
  }

  /** Whether records appended by this instance may not be on disk yet (see "Durability"). */
  hasUnsynced(): boolean {
    return this.#log.unsynced;
  }

  /** Folds this instance began, at once or in the background (the bench). */
  get folds(): number {
    return this.#folds;
  }

  /**
   * The longest step a background fold ran on the main thread, ms: the snapshot, a rename, the
   * log's replacement (the bench: how long a fold holds up the events).
   */
  get longestFoldStepMs(): number {
    return this.#longestFoldStep;
  }

  /** The longest of them that was a snapshot (the state serialised and encoded), ms. */
  get longestFoldSnapshotMs(): number {
    return this.#longestSnapshot;
  }

  #timedFoldStep<T>(fn: () => T): T {
    const t0 = performance.now();
    try {
      return fn();
    } finally {
      this.#longestFoldStep = Math.max(this.#longestFoldStep, performance.now() - t0);
    }
  }

  /** fdatasync calls this instance made on the log (tests, the bench). */
  get logSyncs(): number {
    return this.#log.syncs;
  }

  /** Makes the records appended by this instance durable now (one fdatasync, if any waits). */
  syncLog(): void {
    try {
      this.#syncing();
      this.#log.sync();
    } catch (err) {
      throw ioError("flush", this.logFile, err);
    }
  }

  /** syncLog() off the main thread (the daemon's tick: log_sync.ts). */
  async syncLogInBackground(): Promise<void> {
    try {
      this.#syncing();
      // With the directory fsync of a log a fold just replaced: its name durable too.
      await Promise.all([this.#log.syncInBackground(), this.#dirSync]);
    } catch (err) {
      throw ioError("flush", this.logFile, err);
    }
  }

  /**
   * Runs `fn` as one batch of changes (see the header): one lock and one catching up with the
   * files for all of them, and the records that need no sync appended with the next one that
   * does, or at the end. Nested batches join the outer one. Throws (after `fn`'s own outcome) a
   * JournalError when the last append fails: memory is then read again from the files.
   */
  batch<T>(fn: () => T): T {
    if (this.#batch) return fn();
    const b: BatchState = { held: false, fresh: false, looked: false, unsynced: "", owed: false };
    this.#batch = b;
    let result: T;
    try {
      result = fn();
    } catch (e) {
      this.#endBatch(b, false);
      throw e;
    }
    this.#endBatch(b, true);
    return result;
  }

  /** Appends the batch's waiting records and releases the lock; append errors thrown if `report`. */
  #endBatch(b: BatchState, report: boolean): void {
    this.#batch = null;
    ct ? ct.time("batch end", () => this.#closeBatch(b, report)) : this.#closeBatch(b, report);
  }

  #closeBatch(b: BatchState, report: boolean): void {
    try {
      if (b.unsynced !== "") this.#appendLog(b.unsynced, false);
      if (this.#foldDue && b.held) this.#startFold(); // every record of the batch in the log
    } catch (e) {
      if (report) throw e;
    } finally {
      this.#foldDue = false;
      if (b.held) this.#unlock();
    }
  }

  /** `fn` under `state.lock` (held already within a batch, which keeps it to its end). */
  #locked<T>(fn: () => T): T {
    const b = this.#batch;
    if (b?.held) return fn();
    if (b) {
      ct ? ct.time("journal lock", () => this.#lockBatch(b)) : this.#lockBatch(b);
      return fn();
    }
    this.#lockFile = this.#takeLock();
    try {
      return fn();
    } finally {
      this.#unlock();
    }
  }

  /** Takes `state.lock` for the rest of batch `b` and catches up with the files under it. */
  #lockBatch(b: BatchState): void {
    this.#lockFile = this.#takeLock();
    b.held = true; // released at the batch's end
    this.refresh();
    b.fresh = true;
  }

  #unlock(): void {
    this.#logSize = null; // others may append once the lock is dropped
    const f = this.#lockFile;
    this.#lockFile = undefined;
    if (f && f === this.#keptLock?.file) {
      try {
        return f.unlockSync();
      } catch {
        this.#keptLock = undefined; // closed below, which drops the flock
      }
    }
    f?.close(); // closing drops the flock
  }

  /** `state.lock`, locked: the kept one for the daemon (see #keptLock), else opened for this hold. */
  #takeLock(): Deno.FsFile {
    if (!this.#keepLock) return takeLock(this.dir);
    const kept = this.#keptLock;
    if (kept) {
      try {
        kept.file.lockSync(true);
        // Deleted or replaced meanwhile: others lock the file at the path, so must we.
        if (stampOf(`${this.dir}/${LOCK_FILE}`)?.ino === kept.ino) return kept.file;
      } catch { /* opened again below */ }
      try {
        kept.file.close();
      } catch { /* closed already */ }
      this.#keptLock = undefined;
    }
    const file = takeLock(this.dir);
    try {
      this.#keptLock = { file, ino: file.statSync().ino ?? -1 };
    } catch { /* not kept: closed by #unlock */ }
    return file;
  }

  /**
   * Catches up with the files: reads state.json again if it was replaced, else only the log
   * records added since the last look (a stat of each file when nothing changed).
   */
  refresh(): void {
    // Within a batch holding the lock nobody else changes the files: memory is up to date. Before
    // it takes the lock, the batch's reads (override checks of each event) look once: they are
    // as current as reads a moment earlier, and the lock's refresh catches up before any change.
    const b = this.#batch;
    if (b?.fresh || (b && !b.held && b.looked)) return;
    this.#catchUp();
    if (b && !b.held) b.looked = true;
  }

  #catchUp(): void {
    const snap = this.#stamp(this.file);
    if (!sameStamp(snap, this.#snap)) return this.#reload(snap);
    // The log as last read (or still missing): nothing to open.
    const log = this.#stamp(this.logFile);
    this.#logSize = log?.size ?? null;
    if (
      log === null ? this.#logIno === null : log.ino === this.#logIno && log.size === this.#logEnd
    ) {
      return;
    }
    const tail = this.#readLog(this.#logEnd);
    this.#logSize = tail?.size ?? null;
    if (tail === null) {
      if (this.#logIno !== null) this.#reload(snap);
      return;
    }
    if (tail.ino !== this.#logIno) {
      // A new log: from scratch, unless ours held nothing yet (then it is the same story).
      if (this.#logIno !== null || this.#logEnd !== 0) return this.#reload(snap);
      this.#logIno = tail.ino;
    }
    if (tail.size < this.#logEnd) return this.#reload(snap);
    this.#applyLog(tail);
  }

  #stamp(path: string): FileStamp | null {
    try {
      return stampOf(path);
    } catch (err) {
      throw ioError("read", path, err);
    }
  }

  #readLog(offset: number): ReturnType<typeof readTail> {
    try {
      return readTail(this.logFile, offset);
    } catch (err) {
      throw ioError("read", this.logFile, err);
    }
  }

  /** Reads state.json and the whole log; again if state.json was replaced meanwhile. */
  #reload(snap: FileStamp | null): void {
    for (let attempt = 0;; attempt++) {
      const text = snap === null ? null : readStateText(this.file);
      const state = text === null ? this.#emptyState() : parseState(text, this.file);
      const tail = this.#readLog(0);
      const after = this.#stamp(this.file);
      if (!sameStamp(after, snap) && attempt < 3) {
        snap = after; // a compaction ran between the two reads
        continue;
      }
      this.#state = state;
      this.#overridesVersion++;
      this.#snap = snap;
      this.#logIno = tail?.ino ?? null;
      this.#logSize = tail?.size ?? null;
      this.#logEnd = 0;
      this.#logRecords = 0;
      this.#entryJson = new Map(
        state.entries.map((e) => [entryKey(e.netns, e.sysctl), this.#noteJson(e)]),
      );
      if (tail) this.#applyLog(tail);
      return;
    }
  }

  #applyLog({ lines, end, holes, ino }: LogTail): void {
    this.#mayBeSynced = { ino, end }; // records of another writer's: synced, for all we know
    const empty = new Set<number>();
    const pastHole = new Set<number>();
    for (const h of holes) {
      (h.whole ? empty : pastHole).add(h.line);
      this.#warnHole(ino, h.start, h.end);
    }
    for (const [i, line] of lines.entries()) {
      const where = `line ${this.#logRecords + 1}`;
      let change: LogChange | null = null;
      if (pastHole.has(i)) {
        // A whole record after the NULs, or the tail of one the hole cut (journal_log.ts).
        try {
          change = applyLogLine(this.#state, line, where, this.logFile);
        } catch (e) {
          if (!(e instanceof JournalError)) throw e;
        }
      } else if (!empty.has(i)) change = applyLogLine(this.#state, line, where, this.logFile);
      this.#logRecords++;
      if (change && "put" in change) {
        this.#entryJson.set(
          entryKey(change.put.netns, change.put.sysctl),
          this.#noteJson(change.put),
        );
      } else if (change && "del" in change) {
        this.#entryJson.delete(entryKey(change.del.netns, change.del.sysctl));
      } else if (change) this.#overridesVersion++;
    }
    this.#logEnd = end;
  }

  #warnHole(ino: number, start: number, end: number): void {
    const id = `${ino}:${start}:${end}`;
    if (this.#holesWarned.has(id)) return;
    this.#holesWarned.add(id);
    this.#warn(
      `${this.logFile}: skipped ${end - start} NUL bytes at bytes ${start}-${end - 1}, a hole a ` +
        `power loss left where records never reached the disk; they could only be changes of ` +
        `the boot it ended, which it reset`,
    );
  }

  // --- originals and writes ------------------------------------------------------------------

  /**
   * Records `current` as the original of (netns, sysctl) unless one is already recorded, and
   * `next` (the value about to be written) as pending. Durable (fdatasync) before it returns: the
   * CLI's writers (`audit --apply`); call it before every write. Returns true when this call
   * recorded the original.
   */
  recordOriginal(
    netns: string,
    sysctl: string,
    tuner: string,
    current: SysctlValue,
    next?: SysctlValue,
  ): boolean {
    return this.#recordOriginal(true, netns, sysctl, tuner, current, next);
  }

  /**
   * recordOriginal for the daemon: appended (write(2), in the page cache) but not fdatasync'ed;
   * the daemon's tick syncs it later (see "Durability"). Within a batch the record waits for
   * appendAnnounced() (or a later append): the caller must not write `next` before that returns.
   */
  announce(
    netns: string,
    sysctl: string,
    tuner: string,
    current: SysctlValue,
    next: SysctlValue,
  ): boolean {
    return this.#recordOriginal("announce", netns, sysctl, tuner, current, next);
  }

  /**
   * Appends the batch's announced records (one write(2), no fdatasync: see "Durability"); nothing
   * to do when none waits. Throws a JournalError when they cannot be: then none of them may be
   * written.
   */
  appendAnnounced(): void {
    const b = this.#batch;
    if (!b?.owed) return;
    if (b.lost) {
      b.owed = b.lost = false;
      throw new JournalError(
        "io",
        this.logFile,
        `cannot write to ${this.logFile}: an earlier append failed, so the changes announced ` +
          `since were not recorded (check the disk and the state directory)`,
      );
    }
    this.#appendLog(b.unsynced, false);
  }

  #recordOriginal(
    durable: true | "announce",
    netns: string,
    sysctl: string,
    tuner: string,
    current: SysctlValue,
    next?: SysctlValue,
  ): boolean {
    const key = { netns: checkNetns(netns), sysctl: canonicalSysctlName(sysctl) };
    checkTuner(tuner);
    const original = copyValue(current, "original value");
    const pending = next === undefined ? undefined : copyValue(next, "next value");
    // Appended now: the sysctl write that follows must never be ahead of its record.
    return this.#mutate(durable, [entryKey(key.netns, key.sysctl)], (state) => {
      let entry = this.#find(state, key.netns, key.sysctl);
      // An earlier boot's entry is of a dead namespace: its original is no value of this one.
      const stale = entry !== undefined && this.isFromEarlierBoot(entry);
      let created = false;
      if (!entry || stale) {
        const old = entry;
        const ids = this.#netnsFields(key.netns, this.#entryNetnsCookie);
        // Not identified now: no record that may name a dead namespace, and so no write.
        if (ids === null) throw new NetnsGoneError(key.netns);
        entry = {
          ...key,
          tuner,
          original,
          lastWritten: null,
          pending: null,
          changes: 0,
          recordedAt: this.#now().toISOString(),
          changedAt: null,
          ...ids,
        };
        if (old) state.entries[state.entries.indexOf(old)] = entry;
        else this.#entryAt.set(entryKey(key.netns, key.sysctl), state.entries.push(entry) - 1);
        created = true;
      }
      if (pending !== undefined) entry.pending = pending;
      return created;
    });
  }

  /** Records a completed write. Throws if no original was recorded first. */
  recordWritten(netns: string, sysctl: string, values: SysctlValue): void {
    const name = canonicalSysctlName(sysctl);
    const written = copyValue(values, "written value");
    checkNetns(netns);
    // Not synced by itself: if lost, the write stays "pending", which rollback handles the same.
    this.#mutate(false, [entryKey(netns, name)], (state) => {
      const entry = this.#find(state, netns, name);
      if (!entry) {
        throw new Error(
          `no original value of ${name} (netns ${netns}) is recorded in ${this.file}; ` +
            `call recordOriginal before writing`,
        );
      }
      entry.lastWritten = written;
      entry.pending = null;
      entry.changes += 1;
      entry.changedAt = this.#now().toISOString();
    });
  }

  /**
   * The write announced by recordOriginal was refused before it was made (its namespace is gone):
   * the pending value goes, and so does the entry when nothing was ever written under it. Not
   * synced: if lost, the write stays "pending", which rollback finds "already at original".
   */
  recordNotWritten(netns: string, sysctl: string): void {
    const name = canonicalSysctlName(sysctl);
    checkNetns(netns);
    this.#mutate(false, [entryKey(netns, name)], (state) => {
      const entry = this.#find(state, netns, name);
      if (!entry) return;
      if (entry.lastWritten === null) state.entries.splice(state.entries.indexOf(entry), 1);
      else entry.pending = null;
    });
  }

  /** Every sysctl with a recorded original (including ones whose write may not have happened). */
  changedEntries(): JournalEntry[] {
    this.refresh();
    return structuredClone(this.#state.entries);
  }

  /**
   * Which (namespace, sysctl) pairs changedEntries() has, answered from the journal's own index
   * of its entries (keyed by the pair) instead of a copy: for a caller that tests many pairs (a
   * metrics scrape's filter, the rows a status shows). Caught up with the files once, here; the
   * view then follows this handle's memory (not the files) until asked for again.
   */
  changedKeys(): ChangedKeys {
    this.refresh();
    return {
      has: (netns, sysctl) => this.#entryJson.has(entryKey(netns, canonicalSysctlName(sysctl))),
      namespaces: () => new Set(this.#state.entries.map((e) => e.netns)),
    };
  }

  entry(netns: string, sysctl: string): JournalEntry | undefined {
    this.refresh();
    const found = this.#find(this.#state, netns, canonicalSysctlName(sysctl));
    return found && structuredClone(found);
  }

  /**
   * The cookie the entry of (netns, sysctl) records (undefined: none, or no entry), from memory:
   * for the daemon's write right after its announce (no refresh, no copy).
   */
  recordedCookie(netns: string, sysctl: string): string | undefined {
    return this.#find(this.#state, netns, canonicalSysctlName(sysctl))?.netnsCookie;
  }

  /** Drops an entry after a successful restore (or "already at original"). */
  forget(netns: string, sysctl: string): boolean {
    return this.forgetMany([{ netns, sysctl }]) > 0;
  }

  /** Forgets several entries in one durable write (a rollback of n entries: one, not n). */
  forgetMany(keys: readonly { netns: string; sysctl: string }[]): number {
    if (keys.length === 0) return 0;
    const gone = new Set(keys.map((k) => entryKey(k.netns, canonicalSysctlName(k.sysctl))));
    return this.#mutate(true, null, (state) => {
      const before = state.entries.length;
      state.entries = state.entries.filter((e) => !gone.has(entryKey(e.netns, e.sysctl)));
      return before - state.entries.length;
    });
  }

  /**
   * What a rollback has to do, given live values. Restores only sysctls still at a value we
   * wrote (or were about to write); leaves alone anything someone else changed since.
   */
  planRollback(readLive: ReadLive): RollbackPlan {
    this.refresh();
    const plan: RollbackPlan = { restore: [], skipped: [] };
    const entries = [...this.#state.entries].sort((a, b) =>
      (b.changedAt ?? b.recordedAt).localeCompare(a.changedAt ?? a.recordedAt)
    );
    for (const e of entries) {
      const id = { netns: e.netns, sysctl: e.sysctl, tuner: e.tuner };
      if (this.isFromEarlierBoot(e)) {
        // Not even read: a namespace of this boot may have its inode and cookie.
        plan.skipped.push({
          ...id,
          code: "unreadable",
          reason: "its namespace is gone (it was of an earlier boot: the machine restarted since)",
        });
        continue;
      }
      let live: SysctlValue | null;
      try {
        live = readLive(e.netns, e.sysctl);
      } catch (err) {
        const why = err instanceof Error ? err.message : String(err);
        plan.skipped.push({ ...id, code: "unreadable", reason: `cannot read it now: ${why}` });
        continue;
      }
      if (live === null) {
        plan.skipped.push({
          ...id,
          code: "unreadable",
          reason: "cannot read it now (the sysctl or its network namespace is gone)",
        });
      } else if (sameValue(live, e.original)) {
        plan.skipped.push({ ...id, code: "at-original", reason: "already at original" });
      } else if (sameValue(live, e.lastWritten) || sameValue(live, e.pending)) {
        plan.restore.push({ ...id, from: live, to: structuredClone(e.original) });
      } else {
        plan.skipped.push({
          ...id,
          code: "changed",
          reason: `changed since by someone else (now ${valueText(live)})`,
        });
      }
    }
    return plan;
  }

  // --- admin overrides -----------------------------------------------------------------------

  /**
   * Persists that an admin wrote `sysctl`, which `tuner` manages, in `netns`. When that namespace
   * cannot be identified now, the override holds in memory until it is (placePendingOverrides).
   */
  markOverride(
    o: { netns: string; sysctl: string; tuner: string; pid: number; comm: string },
  ): void {
    const record: OverrideRecord = {
      netns: checkNetns(o.netns),
      sysctl: canonicalSysctlName(o.sysctl),
      tuner: checkTuner(o.tuner),
      pid: Number.isSafeInteger(o.pid) && o.pid >= 0 ? o.pid : 0,
      comm: String(o.comm).slice(0, 256),
      at: this.#now().toISOString(),
    };
    const ids = this.#netnsFields(record.netns);
    if (ids === null) {
      const out = this.#pending.add(record, this.#now().getTime());
      if (out) this.#warnUnplaced(out, `more than ${this.#pending.cap} waited`);
      return;
    }
    this.#recordOverride({ ...record, ...ids });
  }

  #recordOverride(record: OverrideRecord): void {
    this.#pending.drop(record);
    this.#mutate(true, null, (state) => {
      state.overrides = state.overrides.filter((x) =>
        !(x.netns === record.netns && x.sysctl === record.sysctl && x.tuner === record.tuner)
      );
      state.overrides.push(record);
      capOverrides(state);
    });
  }

  /**
   * What a new record of `netns` says of which namespace it is: its cookie and this boot. Null
   * when the namespace cannot be identified now (see JournalOptions.netnsCookie).
   */
  #netnsFields(
    netns: string,
    cookieOf = this.#netnsCookie,
  ): (NetnsCookieField & NetnsBootField) | null {
    if (netns === GLOBAL_NETNS || netns === ANY_NETNS) return {};
    const cookie = liveCookie(cookieOf, netns);
    if (cookie === undefined) return null;
    return {
      ...(cookie === null ? {} : { netnsCookie: String(cookie) }),
      ...(this.#boot === null ? {} : { boot: this.#boot }),
    };
  }

  /**
   * Records the overrides noted while their namespace could not be identified, those whose
   * namespace is identified now (the daemon's tick); one that waited too long is dropped with a
   * warning. Returns how many were recorded.
   */
  placePendingOverrides(): number {
    if (this.#pending.size === 0) return 0;
    return this.#pending.retry(
      (record) => {
        const ids = this.#netnsFields(record.netns);
        if (ids === null) return false;
        this.#recordOverride({ ...record, ...ids });
        return true;
      },
      this.#now().getTime(),
      (record) => this.#warnUnplaced(record, `for ${this.#pending.maxAgeMs / 1000} s`),
    );
  }

  #warnUnplaced(o: OverrideRecord, why: string): void {
    this.#warn(
      `the administrator's write of ${o.sysctl} in network namespace ${o.netns} (pid ${o.pid}, ` +
        `${o.comm}) is not recorded as an override: the namespace could not be identified ` +
        `(${why}); it is gone, or no path bpfpilot knows leads to it`,
    );
  }

  /**
   * Whether record `r` is of a namespace of an earlier boot (see NetnsBootField): gone, never to
   * be written into or to hold. Never for the host's records.
   */
  isFromEarlierBoot(r: { netns: string } & NetnsBootField): boolean {
    if (r.netns === GLOBAL_NETNS || r.netns === ANY_NETNS) return false;
    return recordIsFromEarlierBoot(r.boot, this.#boot);
  }

  /**
   * Whether override `o` holds for namespace `netns`: everywhere for ANY_NETNS; else for its
   * namespace key, unless its cookie is another namespace's than the live one there (a dead
   * namespace's override must not silence a new one that took its inode before the next prune),
   * or it is of an earlier boot. A namespace that cannot be identified now (its live cookie
   * unknown) is held to it: nothing is written there until it is, and the daemon asks again (a
   * key muted for an override is rechecked every tick).
   */
  #overrideHolds(o: OverrideRecord, netns: string): boolean {
    if (o.netns === ANY_NETNS) return true;
    if (o.netns !== netns || this.isFromEarlierBoot(o)) return false;
    if (o.netnsCookie === undefined) return true;
    const live = liveCookie(this.#netnsCookie, netns);
    return live === undefined || !recordIsForReusedInode(o.netnsCookie, live);
  }

  /**
   * True if `sysctl` is overridden in `netns`, or everywhere (an ANY_NETNS override), or an
   * override of it there waits for its namespace to be identified (markOverride).
   */
  isOverridden(netns: string, sysctl: string): boolean {
    this.refresh();
    const name = canonicalSysctlName(sysctl);
    return this.#state.overrides.some((o) => o.sysctl === name && this.#overrideHolds(o, netns)) ||
      this.#pending.holds(netns, name);
  }

  /** True if an admin override switched `tuner` off in `netns` (ANY_NETNS: everywhere). */
  isTunerOverridden(netns: string, tuner: string): boolean {
    this.refresh();
    return this.#state.overrides.some((o) =>
      o.tuner === tuner && o.netns === netns && this.#overrideHolds(o, netns)
    ) || this.#pending.holdsTuner(netns, tuner);
  }

  overrides(): OverrideRecord[] {
    this.refresh();
    return structuredClone(this.#state.overrides);
  }

  /**
   * The admin overrides noted while their namespace could not be identified, which hold in memory
   * until it is (markOverride): not in overrides() (not recorded), shown by the control socket.
   */
  pendingOverrides(): OverrideRecord[] {
    return this.#pending.list();
  }

  /**
   * A number that moves whenever overrides() may answer differently (this process's changes,
   * another's read from the files, a reload): a caller that follows the overrides every second
   * compares it instead of copying the list. Catches up with the files first, as overrides() does.
   */
  overridesVersion(): number {
    this.refresh();
    return this.#overridesVersion;
  }

  /**
   * `bpfpilot enable <tuner|sysctl>`: drops the overrides of a tuner (a plain word such as
   * `tcp_buffer`) or of a sysctl (a name with `.` or `/`), in every namespace. Returns how many.
   */
  clearOverrides(match: string): number {
    const isSysctl = /[./]/.test(match);
    const key = isSysctl ? canonicalSysctlName(match) : match;
    // One waiting for its namespace (markOverride) ends too: it would be recorded after all.
    const waited = this.#pending.dropWhere((o) => (isSysctl ? o.sysctl : o.tuner) === key);
    return waited + this.#mutate(true, null, (state) => {
      const before = state.overrides.length;
      state.overrides = state.overrides.filter((o) => (isSysctl ? o.sysctl : o.tuner) !== key);
      return before - state.overrides.length;
    });
  }

  /**
   * Drops the overrides `which` selects (e.g. the admin writes, for `--overrides session`, which
   * forgets them as bpftune does when it stops). Returns how many.
   */
  dropOverrides(which: (o: OverrideRecord) => boolean): number {
    return this.#mutate(true, null, (state) => {
      const before = state.overrides.length;
      state.overrides = state.overrides.filter((o) => !which(structuredClone(o)));
      return before - state.overrides.length;
    });
  }

  // --- bounded state -------------------------------------------------------------------------

  /**
   * Forgets the entries and overrides of other namespaces that `gone` says no longer exist (their
   * values cannot be restored, and an inode number is reused by a later namespace), and those of
   * an earlier boot's namespaces (isFromEarlierBoot: `gone` is not asked). `gone` is asked once
   * per namespace key and recorded cookie (undefined: a record without one). Returns how many
   * records went.
   */
  pruneNetns(gone: (netns: string, cookie: string | undefined) => boolean): number {
    this.refresh();
    type Rec = { netns: string } & NetnsCookieField & NetnsBootField;
    const identity = (r: Rec) => `${r.netns}\0${r.netnsCookie ?? ""}\0${r.boot ?? ""}`;
    const asked = new Map<string, boolean>();
    const isDead = (r: Rec) => {
      if (r.netns === GLOBAL_NETNS || r.netns === ANY_NETNS) return false;
      if (this.isFromEarlierBoot(r)) return true;
      const ns = `${r.netns}\0${r.netnsCookie ?? ""}`;
      let dead = asked.get(ns);
      if (dead === undefined) asked.set(ns, dead = gone(r.netns, r.netnsCookie));
      return dead;
    };
    const records = [...this.#state.entries, ...this.#state.overrides];
    const dead = new Set(records.filter(isDead).map(identity));
    if (dead.size === 0) return 0;
    // Not synced at once: a prune lost with a power loss is done again at the next start.
    return this.#mutate(false, null, (state) => {
      const before = state.entries.length + state.overrides.length;
      state.entries = state.entries.filter((e) => !dead.has(identity(e)));
      state.overrides = state.overrides.filter((o) => !dead.has(identity(o)));
      return before - state.entries.length - state.overrides.length;
    });
  }

  // --- internals ------------------------------------------------------------------------------

  #emptyState(): JournalState {
    return {
      format: STATE_FORMAT,
      version: STATE_VERSION,
      productVersion: VERSION,
      updatedAt: new Date(0).toISOString(), // set on the first write
      logSeq: 0,
      entries: [],
      overrides: [],
    };
  }

  /**
   * Read-modify-write under the lock, from the files as they are now: what `change` altered is
   * appended to the log as one write, nothing when it altered nothing. `durable`: true, also
   * fdatasync'ed; "announce", appended now (within a batch: by appendAnnounced); false, within a
   * batch, appended with its next append or at its end. The log is folded into state.json when
   * it has grown long. `touches`: the only entries `change` can add or alter (compared alone: a
   * change stays O(1) in the entries); null compares them all.
   */
  #mutate<T>(
    durable: boolean | "announce",
    touches: string[] | null,
    change: (state: JournalState) => T,
  ): T {
    return this.#locked(() => {
      this.refresh();
      const state = this.#state;
      const overridesBefore = JSON.stringify(state.overrides);
      const result = change(state);
      let changes = touches ? this.#changesOf(state, touches) : null;
      const added = changes?.filter((c) =>
        "put" in c && !this.#entryJson.has(entryKey(c.put.netns, c.put.sysctl))
      ).length ?? 0;
      if (!changes || state.entries.length !== this.#entryJson.size + added) {
        changes = this.#allChanges(state); // `change` did more than it said: compare everything
      }
      if (JSON.stringify(state.overrides) !== overridesBefore) {
        // Before the append: memory has the new list even when the append fails.
        this.#overridesVersion++;
        changes.push({ overrides: state.overrides });
      }
      if (changes.length === 0) {
        return result;
      }
      let seq = state.logSeq;
      // An entry's JSON is the one it was compared by (#changesOf): serialised once.
      const json = (e: JournalEntry) =>
        this.#compared.get(e) ?? JSON.stringify(e);
      const text = changes.map((c) =>
        "put" in c
          ? `{"s":${++seq},"put":${json(c.put)}}\n`
          : `${JSON.stringify({ s: ++seq, ...c })}\n`
      ).join("");
      const b = this.#batch;
      if (b && durable !== true) {
        b.unsynced += text; // appended with the batch's next durable record, or at its end
        if (durable === "announce") b.owed = true;
      } else {
        this.#appendLog((b?.unsynced ?? "") + text, durable === true);
      }
      state.logSeq = seq;
      for (const c of changes) {
        if ("put" in c) {
          this.#entryJson.set(entryKey(c.put.netns, c.put.sysctl), json(c.put));
        } else if ("del" in c) this.#entryJson.delete(entryKey(c.del.netns, c.del.sysctl));
      }
      this.#logRecords += changes.length;
      this.#appended += changes.length;
      if (this.#logRecords >= Math.max(COMPACT_MIN_RECORDS, 2 * state.entries.length)) {
        if (!this.#foldInBackground) this.#compact();
        else if (this.#fold === null && this.#logRecords >= this.#foldAfter) {
          if (b) this.#foldDue = true; // at its end, its waiting records appended
          else this.#startFold();
        }
      }
      return result;
    });
  }

  /**
   * The entry of (netns, sysctl): through the index of where each entry was, checked (any change
   * of the list may have moved it); a miss, or a moved entry, scans and notes that one place. Not
   * a rebuild of the whole index: every first change of a new entry missed twice (before and
   * after its push), and the rebuild made that change O(entries) (474 µs at 1,000 entries, 1.8 ms
   * at 5,000; a scan alone is a few µs). Places of entries gone stay until looked up, or until the
   * index outgrows the list, when it starts afresh.
   */
  #find(state: JournalState, netns: string, sysctl: string): JournalEntry | undefined {
    const key = entryKey(netns, sysctl);
    const i = this.#entryAt.get(key);
    const e = i === undefined ? undefined : state.entries[i];
    if (e !== undefined && e.netns === netns && e.sysctl === sysctl) return e;
    const at = state.entries.findIndex((x) => x.netns === netns && x.sysctl === sysctl);
    if (this.#entryAt.size > 2 * state.entries.length + 64) this.#entryAt = new Map();
    if (at < 0) {
      this.#entryAt.delete(key);
      return undefined;
    }
    this.#entryAt.set(key, at);
    return state.entries[at];
  }

  /** Appends whole records to the log (and the batch's waiting ones before them). */
  #appendLog(text: string, durable: boolean): void {
    const b = this.#batch;
    try {
      const written = this.#log.append(
        text,
        durable,
        this.#logEnd,
        this.#logIno,
        this.#logSize,
      );
      this.#logIno = written.ino;
      this.#logEnd = this.#logSize = written.size;
      if (durable) {
        this.#mayBeSynced = { ino: written.ino, end: written.size };
        // A background fold replaced the log and its new name may not be on disk yet.
        if (this.#dirSync) fsyncDir(this.dir);
      }
      if (b) Object.assign(b, { unsynced: "", owed: false }); // every waiting record went
    } catch (err) {
      this.#snap = UNKNOWN; // memory is ahead of the files: read them again next time
      this.#logSize = null;
      if (b) dropWaiting(b);
      throw ioError("write", this.logFile, err);
    }
  }

  /** The entries among `keys` that differ from what was last recorded. */
  #changesOf(state: JournalState, keys: string[]): LogChange[] {
    const changes: LogChange[] = [];
    for (const key of keys) {
      const [netns, sysctl] = key.split("\0");
      const e = this.#find(state, netns, sysctl);
      if (e && this.#differs(key, e)) changes.push({ put: e });
    }
    return changes;
  }

  /** Whether entry `e` differs from what was last recorded under `key` (its JSON kept for it). */
  #differs(key: string, e: JournalEntry): boolean {
    const json = JSON.stringify(e);
    this.#compared.set(e, json);
    return this.#entryJson.get(key) !== json;
  }

  /** An entry read from the files: its JSON, noted as what the log says of it (#compared). */
  #noteJson(e: JournalEntry): string {
    const json = JSON.stringify(e);
    this.#compared.set(e, json);
    return json;
  }

  /**
   * What state.json is made of (serializeState, statePieces): each entry's JSON as recorded
   * (#compared) and the overrides' as last serialised; only what changed since is serialised
   * again (a fold's snapshot at 1,000 entries: ~0.6 ms for every entry, tens of µs this way).
   */
  #recordedParts(state: JournalState): SerializedParts {
    let o = this.#overridesJson;
    if (o === null || o.version !== this.#overridesVersion || o.list !== state.overrides) {
      const lines = serializedOverrides(state.overrides);
      o = this.#overridesJson = { version: this.#overridesVersion, list: state.overrides, lines };
    }
    return { entry: (e) => this.#compared.get(e) ?? JSON.stringify(e), overrides: o.lines };
  }

  /** Every entry added, altered or dropped since last recorded. */
  #allChanges(state: JournalState): LogChange[] {
    const changes: LogChange[] = [];
    const present = new Set<string>();
    for (const e of state.entries) {
      const key = entryKey(e.netns, e.sysctl);
      present.add(key);
      if (this.#differs(key, e)) changes.push({ put: e });
    }
    for (const key of this.#entryJson.keys()) {
      if (present.has(key)) continue;
      const [netns, sysctl] = key.split("\0");
      changes.push({ del: { netns, sysctl } });
    }
    return changes;
  }

  /** A sync of the log starts: it may cover every byte appended so far. */
  #syncing(): void {
    if (this.#logIno !== null) this.#mayBeSynced = { ino: this.#logIno, end: this.#logEnd };
  }

  /**
   * Under the lock, every record in the log: starts folding it into state.json in the background
   * (see "Folding in the background"). Never throws: a fold that cannot start is tried again
   * later, and the log keeps every record meanwhile.
   */
  #startFold(): void {
    if (this.#fold || this.#closed) return;
    const t0 = performance.now();
    let base: FoldBase;
    try {
      this.#catchUp(); // two stats: memory is the files' (a failed append made it read again)
      if (this.#logIno === null || this.#snap === UNKNOWN) return;
      const state = this.#state;
      state.productVersion = VERSION;
      state.updatedAt = this.#now().toISOString();
      base = {
        pieces: statePieces(state, this.#recordedParts(state)),
        seq: state.logSeq,
        snap: this.#snap,
        logIno: this.#logIno,
        logEnd: this.#logEnd,
      };
    } catch (err) {
      return this.#foldFailed(err);
    }
    const ms = performance.now() - t0;
    this.#longestFoldStep = Math.max(this.#longestFoldStep, ms);
    this.#longestSnapshot = Math.max(this.#longestSnapshot, ms);
    this.#folds++;
    this.#fold = this.#runFold(base)
      .catch((err) => this.#foldFailed(err))
      .finally(() => this.#fold = null);
  }

  #foldFailed(err: unknown): void {
    this.#snap = UNKNOWN; // memory read again from the files, whichever step failed
    this.#foldAfter = this.#logRecords + COMPACT_MIN_RECORDS;
    const why = err instanceof Error ? err.message : String(err);
    this.#warn(
      `folding ${this.logFile} into ${this.file} failed (${why}); the log keeps ` +
        `every record, and the fold is tried again ${COMPACT_MIN_RECORDS} records later`,
    );
  }

  /** `fn` under the lock, caught up with the files; null once closed (the fold gives up). */
  #foldLocked<T>(fn: () => T): T | null {
    if (this.#closed) return null;
    return this.#timedFoldStep(() =>
      this.#locked(() => {
        this.#catchUp();
        return fn();
      })
    );
  }

  /**
   * The steps of a background fold, each that changes what readers see under the lock and checking
   * that no other writer folded meanwhile (state.json and the log are still the ones `base`
   * extends), the rest in the blocking pool. A crash between any two leaves files that read the
   * same: state.json as of `base.seq` is renamed in only once on disk, and the log replaced only
   * once that rename is (records up to `base.seq` are skipped when read).
   */
  async #runFold(base: FoldBase): Promise<void> {
    const { path: temp, longestSliceMs } = await writeSyncedTemp(
      this.dir,
      TEMP_PREFIX,
      base.pieces,
    );
    this.#longestFoldStep = Math.max(this.#longestFoldStep, longestSliceMs);
    let renamed: { snap: FileStamp | null } | null = null;
    let kept: string | null = null;
    try {
      await this.#foldStep("state written");
      renamed = this.#foldLocked(() => {
        if (!this.#extends(base, base.snap)) return null;
        kept = keepBlocks(this.dir, TEMP_PREFIX, this.file);
        Deno.renameSync(temp, this.file);
        // Memory is as of the log's end: state.json and the records after `base.seq`.
        this.#snap = this.#stamp(this.file);
        this.#logRecords = Math.max(0, this.#state.logSeq - base.seq);
        return { snap: this.#snap };
      });
    } finally {
      if (renamed === null) await removeQuietly(temp);
      await removeQuietly(kept);
    }
    if (renamed === null || !await this.#at("state renamed")) return;
    await fsyncDirInBackground(this.dir);
    if (!await this.#at("state durable")) return;
    if (await this.#replaceLog(base, renamed.snap)) await this.#at("done");
  }

  /** A step reached (the tests' hook); false once closed: the fold stops there. */
  async #at(step: FoldStep): Promise<boolean> {
    await this.#foldStep(step);
    return !this.#closed;
  }

  /** Whether the files are still state.json `snap` and the log `base` started from. */
  #extends(base: FoldBase, snap: FileStamp | null): boolean {
    return sameStamp(this.#snap, snap) && this.#logIno === base.logIno &&
      this.#logEnd >= base.logEnd;
  }

  /**
   * The fold's last step: the log replaced by a copy of its records after `base.seq` (those after
   * `base.logEnd`). The copy is made and fsynced in the pool, again while the log gained records
   * that may be on disk (#mayBeSynced); the last records, our own appends no sync covered yet, are
   * copied under the lock without one: they stay owed (the appender syncs the new log later).
   * `snap`: the state.json this fold renamed in.
   */
  async #replaceLog(base: FoldBase, snap: FileStamp | null): Promise<boolean> {
    const path = tempName(this.dir, LOG_TEMP_PREFIX);
    const out = await Deno.open(path, { write: true, createNew: true, mode: 0o600 });
    let replaced = false;
    let kept: string | null = null;
    try {
      let from = base.logEnd; // copied and fsynced up to here
      for (let round = 1;; round++) {
        const copied = await copyLines(this.logFile, base.logIno, from, out);
        if (copied === null) return false; // replaced by another writer
        await out.syncData();
        from = copied;
        if (!await this.#at("log copied")) return false;
        const last = round >= FOLD_COPY_ROUNDS;
        const outcome = this.#foldLocked(() => {
          const end = this.#logEnd;
          if (!this.#extends(base, snap) || end < from) return "gone";
          const synced = this.#mayBeSynced.ino === base.logIno ? this.#mayBeSynced.end : 0;
          if (synced > from && !last) return "again";
          copyLinesSync(this.logFile, from, end, out);
          if (synced > from) out.syncDataSync(); // rounds ran out: the rest synced here
          kept = keepBlocks(this.dir, LOG_TEMP_PREFIX, this.logFile);
          Deno.renameSync(path, this.logFile);
          replaced = true;
          this.#log.close(true); // appends and syncs follow the path to the new log
          this.#logIno = out.statSync().ino ?? 0;
          this.#logEnd = this.#logSize = end - base.logEnd;
          this.#mayBeSynced = { ino: this.#logIno, end: Math.max(0, from - base.logEnd) };
          this.#dirSync = fsyncDirInBackground(this.dir);
          return "replaced";
        });
        if (outcome === "again") continue;
        if (outcome !== "replaced") return false;
        break;
      }
    } finally {
      out.close();
      if (!replaced) await Promise.all([removeQuietly(path), removeQuietly(kept)]);
    }
    const dirSync = this.#dirSync;
    try {
      await this.#foldStep("log replaced");
      await dirSync;
    } finally {
      if (this.#dirSync === dirSync) this.#dirSync = null;
      await removeQuietly(kept);
    }
    return true;
  }

  /**
   * Under the lock: writes the state (including every log record) as state.json, then replaces
   * the log by an empty one. A crash in between leaves records state.json already includes
   * (by their sequence number): they are skipped when read.
   */
  #compact(): void {
    this.#folds++;
    const state = this.#state;
    state.productVersion = VERSION;
    state.updatedAt = this.#now().toISOString();
    try {
      writeAtomically(this.dir, this.file, serializeState(state, this.#recordedParts(state)));
      replaceWithEmpty(this.dir, this.logFile, LOG_TEMP_PREFIX);
      fsyncDir(this.dir);
    } catch (err) {
      this.#snap = UNKNOWN;
      if (this.#batch) dropWaiting(this.#batch);
      throw ioError("compact", this.logFile, err);
    }
    // state.json holds them now, synced
    if (this.#batch) Object.assign(this.#batch, { unsynced: "", owed: false });
    this.#log.markSynced();
    this.#snap = this.#stamp(this.file);
    const log = this.#readLog(0);
    this.#logIno = log?.ino ?? null;
    this.#logSize = log?.size ?? null;
    this.#logEnd = 0;
    this.#logRecords = 0;
  }
}

/** A namespace's cookie by `cookieOf`; a throw (setns failed) is unknown too (undefined). */
function liveCookie(cookieOf: NetnsCookieOf, netns: string): bigint | null | undefined {
  try {
    return cookieOf(netns);
  } catch {
    return undefined;
  }
}
