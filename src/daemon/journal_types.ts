/**
 * The journal's records, plans and options: the types journal.ts and its readers share, and the
 * state file's identity (format name, version).
 */

export const STATE_FORMAT = "bpfpilot-state";
/** 2: `logSeq` and the change log `state.log`; version 1 files (no log) are read as well. */
export const STATE_VERSION = 2;

/** "busy": another daemon holds `daemon.lock`. */
export type JournalErrorKind =
  | "corrupt"
  | "foreign"
  | "newer"
  | "io"
  | "busy"
  | "missing"
  | "untrusted";

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
  /** See NetnsCookieField. */
  netnsCookie?: string;
  /** See NetnsBootField. */
  boot?: string;
}

/**
 * The cookie (SO_NETNS_COOKIE, decimal) of the namespace a non-global record names, when the
 * kernel has cookies: the inode in `netns` is reused once a namespace dies, the cookie is not.
 * Optional and ignored by older readers, so version 2 files stay version 2 either way.
 */
export type NetnsCookieField = { netnsCookie?: string };

/**
 * The boot (/proc/sys/kernel/random/boot_id) in which the namespace a non-global record names
 * lived: read in another boot, the record is of a namespace that is gone, whatever its inode and
 * cookie (both restart at boot). See recordIsFromEarlierBoot for records without one. Optional,
 * as NetnsCookieField.
 */
export type NetnsBootField = { boot?: string };

export interface OverrideRecord {
  netns: string;
  sysctl: string;
  tuner: string;
  /** Writer process as seen by the override detector. */
  pid: number;
  comm: string;
  at: string;
  /** See NetnsCookieField. */
  netnsCookie?: string;
  /** See NetnsBootField. */
  boot?: string;
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
 * "unreadable": the sysctl or its namespace cannot be read now; "refused": not a sysctl or value
 * bpfpilot would ever have written (see restorable.ts); "unidentified": its namespace could not
 * be told from a new one with its inode now (kept for a later rollback). */
export type RollbackSkipCode =
  | "at-original"
  | "changed"
  | "unreadable"
  | "refused"
  | "unidentified";

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

/** A read-only view of the journal's (namespace, sysctl) pairs (Journal.changedKeys). */
export interface ChangedKeys {
  /** Whether the journal has an entry for `sysctl` in `netns`. */
  has(netns: string, sysctl: string): boolean;
  /** The namespaces with at least one entry. */
  namespaces(): Set<string>;
}

/** Reads a live value; null (or a throw) when it cannot be read now. */
export type ReadLive = (netns: string, sysctl: string) => SysctlValue | null;

/** A namespace key's cookie: null without one (global, 5.10), undefined when unknown now. */
export type NetnsCookieOf = (netns: string) => bigint | null | undefined;

export interface JournalOptions {
  /** Clock for timestamps (tests). */
  now?: () => Date;
  /** Create the state directory when absent (the daemon); false: it must exist (rollback). */
  create?: boolean;
  /**
   * The cookie of a namespace key (null: global, or no cookies on this kernel), stored with each
   * new record so a later reader can tell the namespace from a new one with its inode. Undefined
   * (or a throw): the namespace cannot be identified now; then no record of it is written (an
   * override waits in memory, an entry throws NetnsGoneError) and its overrides hold.
   */
  netnsCookie?: NetnsCookieOf;
  /**
   * The cookie a new entry (recordOriginal) stores, when it may differ from `netnsCookie`: the
   * daemon passes the registry's learnt one (no namespace visit) because the write that follows
   * checks that very cookie and refuses on a mismatch (recordNotWritten then drops the entry).
   * Default: `netnsCookie`.
   */
  entryNetnsCookie?: NetnsCookieOf;
  /** This boot's id, stored with each new non-global record (null: unknown). Tests fake it. */
  bootId?: () => string | null;
  /**
   * Where warnings go (the daemon's log); default: standard error. One so far: a hole a power
   * loss left in the log (journal_log.ts), once per hole and handle.
   */
  warn?: (message: string) => void;
  /**
   * Fold the log into state.json in the background (the daemon; journal.ts, "Folding in the
   * background"): its disk work off the main thread. Default false: at once, as the CLI does.
   */
  foldInBackground?: boolean;
  /** Called between a background fold's steps (tests: a crash or a reader at each). */
  foldStep?: (step: FoldStep) => void | Promise<void>;
}

/** Where a background fold is (JournalOptions.foldStep). */
export type FoldStep =
  | "state written"
  | "state renamed"
  | "state durable"
  | "log copied"
  | "log replaced"
  | "done";

export interface JournalState {
  format: typeof STATE_FORMAT;
  version: typeof STATE_VERSION;
  productVersion: string;
  updatedAt: string;
  /** The last log record this state includes. */
  logSeq: number;
  entries: JournalEntry[];
  overrides: OverrideRecord[];
}
