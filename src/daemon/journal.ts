/**
 * Crash-safe record of what bpfpilot changed, so every change can be undone: the original value
 * of each sysctl before our first write, our last write, and the admin overrides that switched a
 * tuner off. It lives in `<dir>/state.json` (default /var/lib/bpfpilot) and survives restarts,
 * crashes and `kill -9`.
 *
 * Write protocol (the daemon, per sysctl write):
 *   1. `recordOriginal(netns, sysctl, tuner, current, next)`: stores `current` as the original
 *      the first time only, and `next` as the pending value; on disk (fsync) before it returns.
 *   2. write the sysctl.
 *   3. `recordWritten(netns, sysctl, next)`.
 * A crash between 1 and 3 is covered either way: the live value equals the original ("already
 * at original") or the pending value (restored like any other write).
 *
 * Values are stored as the caller gives them: integer sysctls as number arrays (`[4096, 131072,
 * 6291456]`), text sysctls (congestion control) as strings. Comparisons normalise both to the
 * space-separated text form, so a reader may return either.
 *
 * Files and locks (all in `dir`, which is created 0700):
 *   - `state.json` (0600): replaced atomically (temp file in `dir`, fsync, rename, fsync dir).
 *     When it is invalid it is never modified; every operation fails with a JournalError that
 *     says how to fix it, and `Journal.quarantine` moves it aside only when a user asks.
 *   - `state.lock`: exclusive flock held only around each read-modify-write, so the daemon and
 *     a concurrent `bpfpilot rollback`/`enable` never lose each other's updates. Every change
 *     re-reads the file under the lock; readers need no lock because the file is only ever
 *     replaced by rename, and they re-read it when its content changed.
 *   - `daemon.lock`: exclusive flock held for the daemon's lifetime (`claimDaemon`), with its pid
 *     inside. A second daemon fails with kind "busy"; the CLI can ask `Journal.daemonPid(dir)`
 *     before a rollback (rolling back under a running daemon races with its next write). The
 *     kernel drops both locks when the process dies, so `kill -9` leaves nothing stale.
 */

import { canonicalSysctlName } from "../kernel/sysctl.ts";
import { ANY_NETNS } from "../kernel/netns.ts";
import { VERSION } from "../version.ts";

export const DEFAULT_STATE_DIR = "/var/lib/bpfpilot";
export const STATE_FORMAT = "bpfpilot-state";
export const STATE_VERSION = 1;
const STATE_FILE = "state.json";
const LOCK_FILE = "state.lock";
const DAEMON_LOCK_FILE = "daemon.lock";
const TEMP_PREFIX = ".state.json.tmp-";

/** "busy": another daemon holds `daemon.lock`. */
export type JournalErrorKind = "corrupt" | "foreign" | "newer" | "io" | "busy";

export class JournalError extends Error {
  override name = "JournalError";
  constructor(
    readonly kind: JournalErrorKind,
    /** The file the problem is about. */
    readonly file: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Integer sysctls as numbers, text sysctls as a string. */
export type SysctlValue = number[] | string;

export interface JournalEntry {
  /** "global" for the host namespace, else a netns cookie/inode string. */
  netns: string;
  /** Canonical dotted name. */
  sysctl: string;
  /** The tuner that first changed it. */
  tuner: string;
  /** The value before bpfpilot's first write: what rollback restores. */
  original: SysctlValue;
  /** Our last completed write; null until the first one completes. */
  lastWritten: SysctlValue | null;
  /** A write announced by recordOriginal and not yet confirmed by recordWritten. */
  pending: SysctlValue | null;
  /** Completed writes. */
  changes: number;
  /** ISO 8601: when the original was recorded. */
  recordedAt: string;
  /** ISO 8601: our last completed write. */
  changedAt: string | null;
}

export interface OverrideRecord {
  netns: string;
  sysctl: string;
  tuner: string;
  /** Writer process as seen by the override detector. */
  pid: number;
  comm: string;
  at: string;
}

export interface RollbackStep {
  netns: string;
  sysctl: string;
  tuner: string;
  /** The live value now. */
  from: SysctlValue;
  /** The original to write back. */
  to: SysctlValue;
}

/** "at-original": nothing to do (safe to forget); "changed": someone else wrote it since;
 * "unreadable": the sysctl or its namespace cannot be read now. */
export type RollbackSkipCode = "at-original" | "changed" | "unreadable";

export interface RollbackSkip {
  netns: string;
  sysctl: string;
  tuner: string;
  code: RollbackSkipCode;
  reason: string;
}

export interface RollbackPlan {
  /** Most recently changed first, so later changes that depend on earlier ones undo first. */
  restore: RollbackStep[];
  skipped: RollbackSkip[];
}

/** Reads a live value; null (or a throw) when it cannot be read now. */
export type ReadLive = (netns: string, sysctl: string) => SysctlValue | null;

export interface JournalOptions {
  /** Clock for timestamps (tests). */
  now?: () => Date;
}

interface State {
  format: typeof STATE_FORMAT;
  version: typeof STATE_VERSION;
  productVersion: string;
  updatedAt: string;
  entries: JournalEntry[];
  overrides: OverrideRecord[];
}

// ---------------------------------------------------------------------------------------------
// Values

/** The form values are compared in: fields separated by one space (the kernel prints tabs). */
export function valueText(value: SysctlValue): string {
  return typeof value === "string" ? value.trim().split(/\s+/).join(" ") : value.join(" ");
}

function sameValue(a: SysctlValue | null, b: SysctlValue | null): boolean {
  return a !== null && b !== null && valueText(a) === valueText(b);
}

function copyValue(value: SysctlValue, what: string): SysctlValue {
  if (typeof value === "string") return value;
  if (
    Array.isArray(value) && value.length > 0 && value.every((v) => Number.isSafeInteger(v))
  ) {
    return value.map((v) => (v === 0 ? 0 : v));
  }
  throw new TypeError(`${what} must be a string or a non-empty array of integers`);
}

function checkNetns(netns: string): string {
  if (typeof netns !== "string" || !/^[\x21-\x7e]{1,128}$/.test(netns)) {
    throw new TypeError(`netns key ${JSON.stringify(netns)} must be "global" or a cookie string`);
  }
  return netns;
}

function checkTuner(tuner: string): string {
  if (typeof tuner !== "string" || !/^[\x21-\x7e]{1,128}$/.test(tuner)) {
    throw new TypeError(`tuner name ${JSON.stringify(tuner)} must be a non-empty word`);
  }
  return tuner;
}

// ---------------------------------------------------------------------------------------------
// Errors

function describeFsError(err: unknown): string {
  const code = (err as { code?: unknown })?.code;
  if (err instanceof Deno.errors.NotCapable) return "Deno needs --allow-all (-A)";
  switch (code) {
    case "ENOSPC":
      return "the disk is full";
    case "EDQUOT":
      return "the disk quota is exhausted";
    case "EROFS":
      return "the filesystem is read-only";
    case "EACCES":
    case "EPERM":
      return "permission denied (bpfpilot must run as root to use its state directory)";
    case "ENOTDIR":
      return "a path component is not a directory";
    case "EISDIR":
      return "it is a directory";
    case "EIO":
      return "the disk reported an I/O error";
  }
  const msg = err instanceof Error ? err.message : String(err);
  return msg.replace(/\s*\(os error \d+\)/, "").replace(/:\s*\w+ '[^']*'$/, "");
}

function ioError(action: string, path: string, err: unknown): JournalError {
  if (err instanceof JournalError) return err;
  return new JournalError(
    "io",
    path,
    `cannot ${action} ${path}: ${describeFsError(err)}; ` +
      `fix that (root, free space, a writable directory) and retry`,
    { cause: err },
  );
}

function corrupt(file: string, detail: string): JournalError {
  return new JournalError(
    "corrupt",
    file,
    `${file} is damaged: ${detail}. bpfpilot left it untouched and cannot record or roll back ` +
      `changes until it is fixed. Restore the original values it lists by hand (sysctl -w), ` +
      `then move it aside with \`mv ${file} ${file}.bad\``,
  );
}

// ---------------------------------------------------------------------------------------------
// Validation of the file

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function isTimestamp(v: unknown): v is string {
  return typeof v === "string" && !Number.isNaN(Date.parse(v));
}

function isValue(v: unknown): v is SysctlValue {
  return typeof v === "string" ||
    (Array.isArray(v) && v.length > 0 && v.every((x) => Number.isSafeInteger(x)));
}

function isKey(v: unknown): v is string {
  return typeof v === "string" && /^[\x21-\x7e]{1,128}$/.test(v);
}

function isCanonicalSysctl(v: unknown): v is string {
  if (typeof v !== "string") return false;
  try {
    return canonicalSysctlName(v) === v;
  } catch {
    return false;
  }
}

function parseState(text: string, file: string): State {
  if (text.trim() === "") {
    throw corrupt(file, "it is empty (a crash on a filesystem without ordered writes?)");
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw corrupt(file, `it is not valid JSON (${(err as Error).message})`);
  }
  if (!isObject(raw) || raw.format !== STATE_FORMAT) {
    const what = isObject(raw)
      ? `its "format" is ${JSON.stringify(raw.format) ?? "missing"}, not "${STATE_FORMAT}"`
      : "it holds no JSON object";
    throw new JournalError(
      "foreign",
      file,
      `${file} is not a bpfpilot state file (${what}); bpfpilot left it untouched. If another ` +
        `program owns it, give bpfpilot its own state directory; otherwise move it aside with ` +
        `\`mv ${file} ${file}.bad\``,
    );
  }
  const version = raw.version;
  if (!Number.isSafeInteger(version) || (version as number) < 1) {
    throw corrupt(file, `"version" is ${JSON.stringify(version) ?? "missing"}`);
  }
  if ((version as number) > STATE_VERSION) {
    const by = typeof raw.productVersion === "string" ? ` ${raw.productVersion}` : "";
    throw new JournalError(
      "newer",
      file,
      `${file} was written by a newer bpfpilot${by} (state version ${version}); this bpfpilot ` +
        `${VERSION} reads version ${STATE_VERSION} only and left it untouched. Upgrade bpfpilot, ` +
        `or roll back with the newer version first`,
    );
  }
  const fieldError = (path: string, want: string, got: unknown) => {
    const shown = JSON.stringify(got) ?? "nothing";
    const found = shown.length > 80 ? `${shown.slice(0, 77)}...` : shown;
    return corrupt(file, `${path} should be ${want}, found ${found}`);
  };
  if (typeof raw.productVersion !== "string") {
    throw fieldError("productVersion", "a string", raw.productVersion);
  }
  if (!isTimestamp(raw.updatedAt)) throw fieldError("updatedAt", "a timestamp", raw.updatedAt);
  if (!Array.isArray(raw.entries)) throw fieldError("entries", "a list", raw.entries);
  if (!Array.isArray(raw.overrides)) throw fieldError("overrides", "a list", raw.overrides);

  const entries: JournalEntry[] = [];
  const seen = new Set<string>();
  raw.entries.forEach((e: unknown, i: number) => {
    const at = `entries[${i}]`;
    if (!isObject(e)) throw fieldError(at, "an object", e);
    if (!isKey(e.netns)) throw fieldError(`${at}.netns`, "a netns key", e.netns);
    if (!isCanonicalSysctl(e.sysctl)) throw fieldError(`${at}.sysctl`, "a sysctl name", e.sysctl);
    if (!isKey(e.tuner)) throw fieldError(`${at}.tuner`, "a tuner name", e.tuner);
    if (!isValue(e.original)) throw fieldError(`${at}.original`, "a value", e.original);
    for (const f of ["lastWritten", "pending"] as const) {
      if (e[f] !== null && !isValue(e[f])) throw fieldError(`${at}.${f}`, "a value or null", e[f]);
    }
    if (!Number.isSafeInteger(e.changes) || (e.changes as number) < 0) {
      throw fieldError(`${at}.changes`, "a count", e.changes);
    }
    if (!isTimestamp(e.recordedAt)) {
      throw fieldError(`${at}.recordedAt`, "a timestamp", e.recordedAt);
    }
    if (e.changedAt !== null && !isTimestamp(e.changedAt)) {
      throw fieldError(`${at}.changedAt`, "a timestamp or null", e.changedAt);
    }
    const key = `${e.netns}\0${e.sysctl}`;
    if (seen.has(key)) throw corrupt(file, `${at} repeats ${e.sysctl} in netns ${e.netns}`);
    seen.add(key);
    entries.push({
      netns: e.netns,
      sysctl: e.sysctl,
      tuner: e.tuner,
      original: e.original,
      lastWritten: e.lastWritten as SysctlValue | null,
      pending: e.pending as SysctlValue | null,
      changes: e.changes as number,
      recordedAt: e.recordedAt,
      changedAt: e.changedAt as string | null,
    });
  });

  const overrides: OverrideRecord[] = [];
  raw.overrides.forEach((o: unknown, i: number) => {
    const at = `overrides[${i}]`;
    if (!isObject(o)) throw fieldError(at, "an object", o);
    if (!isKey(o.netns)) throw fieldError(`${at}.netns`, "a netns key", o.netns);
    if (!isCanonicalSysctl(o.sysctl)) throw fieldError(`${at}.sysctl`, "a sysctl name", o.sysctl);
    if (!isKey(o.tuner)) throw fieldError(`${at}.tuner`, "a tuner name", o.tuner);
    if (!Number.isSafeInteger(o.pid) || (o.pid as number) < 0) {
      throw fieldError(`${at}.pid`, "a process id", o.pid);
    }
    if (typeof o.comm !== "string") throw fieldError(`${at}.comm`, "a string", o.comm);
    if (!isTimestamp(o.at)) throw fieldError(`${at}.at`, "a timestamp", o.at);
    overrides.push({
      netns: o.netns,
      sysctl: o.sysctl,
      tuner: o.tuner,
      pid: o.pid as number,
      comm: o.comm,
      at: o.at,
    });
  });

  return {
    format: STATE_FORMAT,
    version: STATE_VERSION,
    productVersion: raw.productVersion,
    updatedAt: raw.updatedAt,
    entries,
    overrides,
  };
}

/** One record per line: diffable, and readable by an admin restoring values by hand. */
function serializeState(state: State): string {
  const list = (items: unknown[]) =>
    items.length === 0
      ? "[]"
      : `[\n${items.map((x) => `    ${JSON.stringify(x)}`).join(",\n")}\n  ]`;
  return [
    "{",
    `  "format": ${JSON.stringify(state.format)},`,
    `  "version": ${state.version},`,
    `  "productVersion": ${JSON.stringify(state.productVersion)},`,
    `  "updatedAt": ${JSON.stringify(state.updatedAt)},`,
    `  "entries": ${list(state.entries)},`,
    `  "overrides": ${list(state.overrides)}`,
    "}",
    "",
  ].join("\n");
}

// ---------------------------------------------------------------------------------------------
// Files

function readStateText(file: string): string | null {
  try {
    return Deno.readTextFileSync(file);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return null;
    throw ioError("read", file, err);
  }
}

function fsyncDir(dir: string): void {
  const d = Deno.openSync(dir, { read: true });
  try {
    d.syncSync();
  } finally {
    d.close();
  }
}

function writeAtomically(dir: string, file: string, text: string): void {
  const temp = `${dir}/${TEMP_PREFIX}${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
  let out: Deno.FsFile | undefined;
  try {
    out = Deno.openSync(temp, { write: true, createNew: true, mode: 0o600 });
    const bytes = new TextEncoder().encode(text);
    for (let done = 0; done < bytes.length;) done += out.writeSync(bytes.subarray(done));
    out.syncSync();
    out.close();
    out = undefined;
    Deno.renameSync(temp, file);
  } catch (err) {
    try {
      out?.close();
    } catch { /* already failing */ }
    try {
      Deno.removeSync(temp);
    } catch { /* never created */ }
    throw ioError("write", file, err);
  }
  try {
    fsyncDir(dir);
  } catch (err) {
    throw ioError("flush the directory of", file, err);
  }
}

function ensureDir(dir: string): void {
  try {
    Deno.mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw ioError("create the state directory", dir, err);
  }
}

function withLock<T>(dir: string, fn: () => T): T {
  const path = `${dir}/${LOCK_FILE}`;
  let lock: Deno.FsFile;
  try {
    lock = Deno.openSync(path, { read: true, write: true, create: true, mode: 0o600 });
    lock.lockSync(true);
  } catch (err) {
    throw ioError("lock", path, err);
  }
  try {
    return fn();
  } finally {
    lock.close(); // closing drops the flock
  }
}

function removeStaleTemps(dir: string): void {
  for (const item of Deno.readDirSync(dir)) {
    if (item.isFile && item.name.startsWith(TEMP_PREFIX)) {
      try {
        Deno.removeSync(`${dir}/${item.name}`);
      } catch { /* another cleaner won */ }
    }
  }
}

function compactTimestamp(date: Date): string {
  return date.toISOString().replace(/\.\d+Z$/, "Z").replaceAll("-", "").replaceAll(":", "");
}

// ---------------------------------------------------------------------------------------------

export class Journal {
  readonly file: string;
  #state: State;
  #text: string | null;
  #now: () => Date;
  #daemonLock: Deno.FsFile | undefined;

  private constructor(readonly dir: string, text: string | null, now: () => Date) {
    this.file = `${dir}/${STATE_FILE}`;
    this.#now = now;
    this.#text = text;
    this.#state = text === null ? this.#emptyState() : parseState(text, this.file);
  }

  /** Opens (creating the directory 0700 if needed) and validates the state file. */
  static open(dir: string = DEFAULT_STATE_DIR, opts: JournalOptions = {}): Journal {
    ensureDir(dir);
    const file = `${dir}/${STATE_FILE}`;
    const journal = new Journal(dir, readStateText(file), opts.now ?? (() => new Date()));
    try {
      withLock(dir, () => removeStaleTemps(dir));
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
  }

  /** Releases the daemon claim. */
  close(): void {
    this.#daemonLock?.close();
    this.#daemonLock = undefined;
  }

  /** Re-reads the file if another process replaced it (cheap when unchanged). */
  refresh(): void {
    const text = readStateText(this.file);
    if (text === this.#text) return;
    this.#state = text === null ? this.#emptyState() : parseState(text, this.file);
    this.#text = text;
  }

  // --- originals and writes ------------------------------------------------------------------

  /**
   * Records `current` as the original of (netns, sysctl) unless one is already recorded, and
   * `next` (the value about to be written) as pending. Durable before it returns; call it before
   * every write. Returns true when this call recorded the original.
   */
  recordOriginal(
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
    return this.#mutate((state) => {
      let entry = findEntry(state, key.netns, key.sysctl);
      let created = false;
      if (!entry) {
        entry = {
          ...key,
          tuner,
          original,
          lastWritten: null,
          pending: null,
          changes: 0,
          recordedAt: this.#now().toISOString(),
          changedAt: null,
        };
        state.entries.push(entry);
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
    this.#mutate((state) => {
      const entry = findEntry(state, netns, name);
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

  /** Every sysctl with a recorded original (including ones whose write may not have happened). */
  changedEntries(): JournalEntry[] {
    this.refresh();
    return structuredClone(this.#state.entries);
  }

  entry(netns: string, sysctl: string): JournalEntry | undefined {
    this.refresh();
    const found = findEntry(this.#state, netns, canonicalSysctlName(sysctl));
    return found && structuredClone(found);
  }

  /** Drops an entry after a successful restore (or "already at original"). */
  forget(netns: string, sysctl: string): boolean {
    const name = canonicalSysctlName(sysctl);
    return this.#mutate((state) => {
      const before = state.entries.length;
      state.entries = state.entries.filter((e) => !(e.netns === netns && e.sysctl === name));
      return state.entries.length !== before;
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

  /** Persists that an admin wrote `sysctl`, which `tuner` manages, in `netns`. */
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
    this.#mutate((state) => {
      state.overrides = state.overrides.filter((x) =>
        !(x.netns === record.netns && x.sysctl === record.sysctl && x.tuner === record.tuner)
      );
      state.overrides.push(record);
    });
  }

  /** True if `sysctl` is overridden in `netns`, or everywhere (an ANY_NETNS override). */
  isOverridden(netns: string, sysctl: string): boolean {
    this.refresh();
    const name = canonicalSysctlName(sysctl);
    return this.#state.overrides.some((o) =>
      (o.netns === netns || o.netns === ANY_NETNS) && o.sysctl === name
    );
  }

  /** True if an admin override switched `tuner` off in `netns`. */
  isTunerOverridden(netns: string, tuner: string): boolean {
    this.refresh();
    return this.#state.overrides.some((o) => o.netns === netns && o.tuner === tuner);
  }

  overrides(): OverrideRecord[] {
    this.refresh();
    return structuredClone(this.#state.overrides);
  }

  /**
   * `bpfpilot enable <tuner|sysctl>`: drops the overrides of a tuner (a plain word such as
   * `tcp_buffer`) or of a sysctl (a name with `.` or `/`), in every namespace. Returns how many.
   */
  clearOverrides(match: string): number {
    const isSysctl = /[./]/.test(match);
    const key = isSysctl ? canonicalSysctlName(match) : match;
    return this.#mutate((state) => {
      const before = state.overrides.length;
      state.overrides = state.overrides.filter((o) => (isSysctl ? o.sysctl : o.tuner) !== key);
      return before - state.overrides.length;
    });
  }

  // --- internals ------------------------------------------------------------------------------

  #emptyState(): State {
    return {
      format: STATE_FORMAT,
      version: STATE_VERSION,
      productVersion: VERSION,
      updatedAt: new Date(0).toISOString(), // set on the first write
      entries: [],
      overrides: [],
    };
  }

  /** Read-modify-write under the lock, from the file as it is now; writes only if changed. */
  #mutate<T>(change: (state: State) => T): T {
    return withLock(this.dir, () => {
      const text = readStateText(this.file);
      const state = text === null ? this.#emptyState() : parseState(text, this.file);
      const before = JSON.stringify([state.entries, state.overrides]);
      const result = change(state);
      if (JSON.stringify([state.entries, state.overrides]) !== before) {
        state.productVersion = VERSION;
        state.updatedAt = this.#now().toISOString();
        const out = serializeState(state);
        writeAtomically(this.dir, this.file, out);
        this.#text = out;
      } else {
        this.#text = text;
      }
      this.#state = state;
      return result;
    });
  }
}

function findEntry(state: State, netns: string, sysctl: string): JournalEntry | undefined {
  return state.entries.find((e) => e.netns === netns && e.sysctl === sysctl);
}

function exists(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch {
    return false;
  }
}
