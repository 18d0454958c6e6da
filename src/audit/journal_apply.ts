/**
 * `bpfpilot audit --apply`: writes each finding's recommendation the way the daemon writes a
 * change (original recorded durably first, then the write, then the written value), in the
 * daemon's journal, so `bpfpilot rollback` undoes audit changes exactly like tuner changes.
 * While a daemon holds the state directory it owns the journal, and it would also take these
 * writes for the administrator's: the hook refuses and says how to proceed.
 */
import { DEFAULT_STATE_DIR, Journal, JournalError, type NetnsCookieOf } from "../daemon/journal.ts";
import { sameValues } from "../tuning/proposal.ts";
import { liveSysctls, type SysctlIO } from "../daemon/sysctl_io.ts";
import { tunableDomain } from "../tuners/registry.ts";
import {
  GLOBAL_NETNS,
  netnsCookieOf,
  NetnsGoneError,
  netnsInumOf,
  netnsKey,
} from "../kernel/netns.ts";
import { type ApplyHook, type ApplyOutcome, notAppliable, sysctlValues } from "./apply.ts";
import type { Finding } from "./types.ts";
import { formatValues } from "./values.ts";

/** The tuner name audit writes carry in the journal (shown by `rollback --dry-run`). */
export const AUDIT_TUNER = "audit";

export interface JournalApplyOptions {
  /** State directory of the journal (default /var/lib/bpfpilot). */
  stateDir?: string;
  /** With `audit --netns`: only findings in this namespace (key) are applied. */
  onlyNetns?: string | null;
  io?: SysctlIO;
  /**
   * A namespace key's cookie, recorded as the daemon does (default: read inside the namespace;
   * undefined when it cannot be identified now: then nothing is recorded or written there).
   */
  netnsCookie?: NetnsCookieOf;
}

/** The namespace key of a finding's netns ("host", a /run/netns name or "ns:<inode>"). */
export function findingNetnsKey(netns: string): string | null {
  if (netns === "host") return GLOBAL_NETNS;
  if (/^ns:\d+$/.test(netns)) return netns;
  try {
    return netnsKey(netnsInumOf(netns.includes("/") ? netns : `/run/netns/${netns}`));
  } catch {
    return null;
  }
}

function rollbackHint(dir: string): string {
  return dir === DEFAULT_STATE_DIR ? "bpfpilot rollback" : `bpfpilot rollback --state-dir ${dir}`;
}

/** Refuses while a daemon holds `dir`; the message says what to do instead. */
export function refuseUnderDaemon(dir: string): void {
  const pid = Journal.daemonPid(dir);
  if (pid === null) return;
  throw new Error(
    `a bpfpilot daemon${pid ? ` (pid ${pid})` : ""} is running with state directory ${dir}: ` +
      `it owns the journal, and it would take the audit's writes for the administrator's and ` +
      `stop tuning those sysctls. Let the daemon tune (it acts on the same findings), or stop ` +
      `it (systemctl stop bpfpilot) and run the audit with --apply again, or apply the printed ` +
      `sysctl -w lines by hand`,
  );
}

function applyOne(
  f: Finding,
  journal: Journal,
  io: SysctlIO,
  opts: JournalApplyOptions,
  dir: string,
): ApplyOutcome {
  // The journal records sysctl values only: a text value (a per-connection choice) is no write.
  const values = sysctlValues(f);
  if (values === null) return notAppliable(f);
  const { current, recommended } = values;
  const outcome = (applied: boolean, message: string): ApplyOutcome => ({
    id: f.id,
    netns: f.netns,
    tunable: f.tunable,
    applied,
    appliable: true,
    message,
  });
  const key = findingNetnsKey(f.netns);
  if (key === null) {
    return outcome(false, `network namespace ${f.netns} no longer exists; nothing to apply`);
  }
  if (opts.onlyNetns && key !== opts.onlyNetns) {
    return outcome(
      false,
      "outside the namespace given with --netns, so not applied; run the audit without " +
        `--netns to apply it, or by hand: ${f.sysctlW}`,
    );
  }
  let live: number[] | null;
  try {
    live = io.read(f.tunable, key);
  } catch (e) {
    return outcome(false, `cannot read ${f.tunable} now: ${(e as Error).message}`);
  }
  if (live === null) {
    return outcome(false, `${f.tunable} cannot be read now (the sysctl or its namespace is gone)`);
  }
  if (sameValues(live, recommended)) return outcome(true, "already at the recommended value");
  if (!sameValues(live, current)) {
    return outcome(
      false,
      `it changed since the audit read it (now ${formatValues(live, f.tunable)}, the audit ` +
        `saw ${formatValues(current, f.tunable)}); run the audit again`,
    );
  }
  let recorded = false;
  try {
    // Throws NetnsGoneError when the namespace cannot be identified now: nothing recorded.
    recorded = journal.recordOriginal(key, f.tunable, AUDIT_TUNER, live, recommended);
    io.write(f.tunable, key, recommended);
    journal.recordWritten(key, f.tunable, recommended);
  } catch (e) {
    // Refused before writing (gone, or another namespace has its inode): the entry just made
    // would name a value never written.
    if (e instanceof NetnsGoneError && recorded) journal.recordNotWritten(key, f.tunable);
    return outcome(false, `could not write ${f.tunable}: ${(e as Error).message}`);
  }
  return outcome(
    true,
    `set to ${formatValues(recommended, f.tunable)} (was ${formatValues(live, f.tunable)}); ` +
      `'${rollbackHint(dir)}' ` +
      "restores it",
  );
}

function applyAll(findings: readonly Finding[], opts: JournalApplyOptions): ApplyOutcome[] {
  const dir = opts.stateDir ?? DEFAULT_STATE_DIR;
  refuseUnderDaemon(dir);
  // Records carry the namespace's cookie, as the daemon's do: rollback and pruning can then tell
  // it from a new namespace that takes its inode. Read inside it: the registry's may be a dead
  // namespace's (the audit ran a while), and the write that follows checks the one read.
  const journal = Journal.open(dir, {
    netnsCookie: opts.netnsCookie ?? ((k) => netnsCookieOf(k, { verify: true })),
  });
  try {
    // Held while applying, so no daemon can start on this journal halfway through.
    journal.claimDaemon();
  } catch (e) {
    journal.close();
    if (e instanceof JournalError && e.kind === "busy") refuseUnderDaemon(dir);
    throw e;
  }
  try {
    const io = opts.io ?? liveSysctls(tunableDomain);
    return findings.map((f) => applyOne(f, journal, io, opts, dir));
  } finally {
    journal.close();
  }
}

/** The ApplyHook for `audit --apply`. Rejects (changing nothing) when the journal is unusable. */
export function journalApplyHook(opts: JournalApplyOptions = {}): ApplyHook {
  return (findings) => {
    try {
      return Promise.resolve(applyAll(findings, opts));
    } catch (e) {
      return Promise.reject(e);
    }
  };
}
