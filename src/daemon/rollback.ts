/**
 * Putting values back from the journal: on exit with --rollback, or by `bpfpilot rollback` after
 * a crash or kill -9. A value someone else changed since our last write is left alone and
 * reported; so is one that cannot be read any more (its namespace is gone), and one of a
 * namespace of an earlier boot (gone too, whatever has its inode and cookie now). A record whose
 * namespace cannot be identified now (its cookie unknown: no path leads there at the moment) is
 * neither restored nor forgotten: the next rollback looks again.
 */
import {
  describeNetns,
  inNetns,
  netnsCookieOf,
  NetnsGoneError,
  netnsRegistry,
  ownNetnsInum,
  parseNetnsKey,
} from "../kernel/netns.ts";
import { pruneReusedNetns, recordIsForReusedInode } from "./netns_reuse.ts";
import type {
  Journal,
  NetnsCookieOf,
  RollbackPlan,
  RollbackSkip,
  RollbackStep,
} from "./journal.ts";
import type { RestoreGuard } from "./restorable.ts";
import { valueText } from "./journal.ts";
import type { SysctlIO } from "./sysctl_io.ts";
import type { LogLike } from "../tuning/tuner.ts";

export interface RollbackResult {
  restored: RollbackStep[];
  skipped: RollbackSkip[];
  failed: { step: RollbackStep; reason: string }[];
}

/**
 * The current cookie of a namespace key: null without one (global, 5.10), undefined when it cannot
 * be identified now (kernel/netns.ts netnsCookieOf). The default is the registry's: `bpfpilot
 * rollback`'s registry is built as it starts, and its reads check each namespace's cookie on the
 * way (liveSysctls with kept files); the daemon's is older, and it passes visitEachOnce()'s.
 */
export type LiveNetnsCookie = NetnsCookieOf;

/**
 * Runs `fn` inside namespace `netns` once its cookie, read there, is the one the registry holds
 * (`result`); `cookie` is the one read (undefined: no path leads there now, and `fn` did not run;
 * another than the registry's: a new namespace took the inode, the registry takes its cookie, and
 * `fn` did not run either).
 */
export type NetnsVisit = <T>(
  netns: string,
  fn: () => T,
) => { cookie: bigint | null | undefined; ran: boolean; result?: T };

/** NetnsVisit by setns: the cookie checked inside (netnsCookieOf's `verify`, with `fn` run). */
export const visitVerified: NetnsVisit = (netns, fn) => {
  const inum = parseNetnsKey(netns);
  if (inum === null || inum === ownNetnsInum()) return { cookie: null, ran: true, result: fn() };
  let seen: bigint | null | undefined;
  try {
    const result = inNetns(netns, fn, {
      verifyCookie: true,
      lookAgainNow: true,
      onCookie: (c) => seen = c,
    });
    return { cookie: seen ?? netnsRegistry().entry(inum)?.cookie ?? null, ran: true, result };
  } catch (e) {
    // Read inside but another than the registry's: the new namespace's, taken by the registry.
    if (seen !== undefined) return { cookie: seen, ran: false };
    // An inode the registry does not know (a scan found it destroyed) is gone, as the daemon's
    // prune has it; one it knows but cannot reach now is not identified (kept for later).
    if (e instanceof NetnsGoneError) {
      return { cookie: netnsRegistry().knows(inum) ? undefined : null, ran: false };
    }
    throw e;
  }
};

/**
 * The daemon's exit rollback: each namespace entered once, at the first read of it (or of its
 * cookie), its cookie read inside (the registry's may be a dead namespace's until its next scan)
 * and every sysctl the journal has of it read in that same visit, through `io`, which keeps the
 * files it opens for the writes after (the daemon's). Before, the cookie was a visit of its own.
 * A namespace whose visit did not run (not identified now, or another one at its inode) reads as
 * absent.
 */
export function visitEachOnce(
  journal: Journal,
  io: SysctlIO,
  visit: NetnsVisit = visitVerified,
): { io: SysctlIO; liveCookie: LiveNetnsCookie } {
  const sysctlsOf = new Map<string, string[]>();
  for (const e of journal.changedEntries()) {
    if (journal.isFromEarlierBoot(e)) continue; // not read (Journal.planRollback)
    const list = sysctlsOf.get(e.netns);
    if (list) list.push(e.sysctl);
    else sysctlsOf.set(e.netns, [e.sysctl]);
  }
  type Read = { value: number[] | null } | { error: unknown };
  const visits = new Map<
    string,
    { cookie: bigint | null | undefined; values: Map<string, Read> | null }
  >();
  const visited = (netns: string) => {
    let v = visits.get(netns);
    if (v) return v;
    const { cookie, ran, result } = visit(netns, () =>
      new Map(
        (sysctlsOf.get(netns) ?? []).map((s): [string, Read] => {
          try {
            return [s, { value: io.read(s, netns) }];
          } catch (error) {
            return [s, { error }];
          }
        }),
      ));
    visits.set(netns, v = { cookie, values: ran ? result ?? null : null });
    return v;
  };
  return {
    liveCookie: (netns) => visited(netns).cookie,
    io: {
      read: (sysctl, netns) => {
        const { values } = visited(netns);
        if (values === null) return null; // not entered: nothing of it can be read now
        const got = values.get(sysctl);
        if (got === undefined) return io.read(sysctl, netns);
        if ("error" in got) throw got.error;
        return got.value;
      },
      write: (sysctl, netns, values) => io.write(sysctl, netns, values),
    },
  };
}

/** `liveCookie` asked once per namespace key, however many records and steps name it. */
function askedOnce(liveCookie: LiveNetnsCookie): LiveNetnsCookie {
  const seen = new Map<string, bigint | null | undefined>();
  return (netns) => {
    if (!seen.has(netns)) seen.set(netns, liveCookie(netns));
    return seen.get(netns);
  };
}

/**
 * The journal's plan with every step restorable.ts refuses moved to the skipped ones, and so is
 * every step for a namespace whose inode now belongs to a new one (see netns_reuse.ts).
 */
export function vettedRollbackPlan(
  journal: Journal,
  io: SysctlIO,
  refuseRestore: RestoreGuard,
  liveCookie: LiveNetnsCookie = netnsCookieOf,
): RollbackPlan {
  return vetted(journal, io, refuseRestore, askedOnce(liveCookie)).plan;
}

/** vettedRollbackPlan, and which of its skips are a dead namespace's records (`reused`). */
function vetted(
  journal: Journal,
  io: SysctlIO,
  refuseRestore: RestoreGuard,
  liveCookie: LiveNetnsCookie,
): { plan: RollbackPlan; reused: Set<RollbackSkip> } {
  const plan = journal.planRollback((netns, sysctl) => io.read(sysctl, netns));
  const identity = identities(journal, liveCookie);
  const restore: RollbackStep[] = [];
  const reused = new Set<RollbackSkip>();
  const unidentified = (step: Omit<RollbackSkip, "code" | "reason">): RollbackSkip => ({
    netns: step.netns,
    sysctl: step.sysctl,
    tuner: step.tuner,
    code: "unidentified",
    reason: "its namespace cannot be identified now (no known path leads to it); kept for " +
      "the next rollback",
  });
  // A value that could not be read (or was, of a namespace not told from a new one now) is not
  // one to forget: its namespace may be reached later (the daemon's exit rollback, whose
  // registry may hold a stale path).
  plan.skipped = plan.skipped.map((step) => {
    const id = identity(step);
    if (id === "unknown") return unidentified(step);
    if (id === "reused") reused.add(step);
    return step;
  });
  for (const step of plan.restore) {
    const id = identity(step);
    if (id === "unknown") {
      plan.skipped.push(unidentified(step));
    } else if (id === "reused") {
      const skip: RollbackSkip = {
        ...step,
        code: "unreadable",
        reason: `its namespace is gone (inode ${
          parseNetnsKey(step.netns)
        } now belongs to a new namespace)`,
      };
      plan.skipped.push(skip);
      reused.add(skip);
    } else {
      const why = refuseRestore(step.sysctl, step.to);
      if (why === null) restore.push(step);
      else plan.skipped.push({ ...step, code: "refused", reason: why });
    }
  }
  return { plan: { restore, skipped: plan.skipped }, reused };
}

/**
 * Whether the journal's record of a step is for a dead namespace whose inode a new one took
 * ("reused"), for the live one ("same": or it has no cookie, then the inode decides), or cannot
 * be told now ("unknown": it has a cookie, the live namespace's is unknown).
 */
function identities(
  journal: Journal,
  liveCookie: LiveNetnsCookie,
): (step: { netns: string; sysctl: string }) => "reused" | "same" | "unknown" {
  // An earlier boot's record is gone for that reason (Journal.planRollback says so), whatever
  // has its inode now.
  const cookies = new Map(
    journal.changedEntries().filter((e) => !journal.isFromEarlierBoot(e))
      .map((e) => [`${e.netns}\0${e.sysctl}`, e.netnsCookie]),
  );
  return (step) => {
    const recorded = cookies.get(`${step.netns}\0${step.sysctl}`);
    if (recorded === undefined) return "same";
    const live = liveCookie(step.netns);
    if (live === undefined) return "unknown";
    return recordIsForReusedInode(recorded, live) ? "reused" : "same";
  };
}

export function rollbackFromJournal(
  journal: Journal,
  io: SysctlIO,
  log: LogLike,
  refuseRestore: RestoreGuard,
  liveCookie: LiveNetnsCookie = netnsCookieOf,
): RollbackResult {
  // One identity per namespace for the plan, its skips and the prune. The plan's reads visit
  // each namespace and learn its cookie on the way, so the prune after needs no visit of its own
  // (it was one visit more per namespace, a third of the time).
  const cookie = askedOnce(liveCookie);
  const { plan, reused } = vetted(journal, io, refuseRestore, cookie);
  // Records of a dead namespace whose inode a new one took: the plan never writes into it; they
  // are dropped (and logged) here, not reported again as left alone.
  pruneReusedNetns(journal, cookie, log);
  plan.skipped = plan.skipped.filter((s) => !reused.has(s));
  const result: RollbackResult = { restored: [], skipped: [], failed: [] };
  // Entries done with are forgotten in one durable write at the end, not one each (n writes of
  // an n-entry journal made 1,000 entries take seconds). A crash before it is harmless: a
  // restored entry is then found at its original value and forgotten by the next rollback.
  const done: { netns: string; sysctl: string }[] = [];
  try {
    restoreAll(plan, io, log, result, done);
  } finally {
    journal.forgetMany(done);
  }
  return result;
}

function restoreAll(
  plan: RollbackPlan,
  io: SysctlIO,
  log: LogLike,
  result: RollbackResult,
  done: { netns: string; sysctl: string }[],
): void {
  for (const step of plan.restore) {
    const where = describeNetns(step.netns);
    if (typeof step.to === "string") {
      result.failed.push({ step, reason: "text sysctls are restored by hand" });
      continue;
    }
    try {
      io.write(step.sysctl, step.netns, step.to);
      done.push(step);
      result.restored.push(step);
      log.info(
        `Rolling back sysctl values for '${step.sysctl}' from (${valueText(step.from)}) to ` +
          `original values (${valueText(step.to)}) in ${where}`,
        {
          event: "rolled_back",
          sysctl: step.sysctl,
          netns: step.netns,
          from: step.from,
          to: step.to,
        },
      );
    } catch (e) {
      result.failed.push({ step, reason: (e as Error).message });
      log.error(`could not roll back '${step.sysctl}' in ${where}: ${(e as Error).message}`, {
        event: "rollback_skipped",
        sysctl: step.sysctl,
        netns: step.netns,
      });
    }
  }
  for (const skip of plan.skipped) {
    result.skipped.push(skip);
    if (skip.code === "refused") {
      log.error(
        `refused to roll back '${skip.sysctl}' in ${describeNetns(skip.netns)}: ` +
          skip.reason,
        { event: "rollback_skipped", sysctl: skip.sysctl, netns: skip.netns, code: skip.code },
      );
      continue;
    }
    if (skip.code === "at-original") {
      done.push(skip);
      continue;
    }
    // Its namespace may be alive and reached later: the record stays for the next rollback.
    if (skip.code === "unidentified") {
      log.notice(`left '${skip.sysctl}' in ${describeNetns(skip.netns)} for now: ${skip.reason}`, {
        event: "rollback_skipped",
        sysctl: skip.sysctl,
        netns: skip.netns,
        code: skip.code,
      });
      continue;
    }
    // Someone else's value now stands; a namespace that is gone will not come back.
    if (skip.code === "changed" || skip.netns !== "global") done.push(skip);
    log.notice(
      `left '${skip.sysctl}' in ${describeNetns(skip.netns)} alone: ${skip.reason}`,
      { event: "rollback_skipped", sysctl: skip.sysctl, netns: skip.netns, code: skip.code },
    );
  }
}
