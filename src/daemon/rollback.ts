/**
 * Putting values back from the journal: on exit with --rollback, or by `bpfpilot rollback` after
 * a crash or kill -9. A value someone else changed since our last write is left alone and
 * reported; so is one that cannot be read any more (its namespace is gone), and one of a
 * namespace of an earlier boot (gone too, whatever has its inode and cookie now).
 */
import { describeNetns, netnsCookieOf, parseNetnsKey } from "../kernel/netns.ts";
import { pruneReusedNetns, recordIsForReusedInode } from "./netns_reuse.ts";
import type { Journal, RollbackPlan, RollbackSkip, RollbackStep } from "./journal.ts";
import type { RestoreGuard } from "./restorable.ts";
import { valueText } from "./journal.ts";
import type { SysctlIO } from "./sysctl_io.ts";
import type { LogLike } from "../tuning/tuner.ts";

export interface RollbackResult {
  restored: RollbackStep[];
  skipped: RollbackSkip[];
  failed: { step: RollbackStep; reason: string }[];
}

/** The current cookie of a namespace key, null when unknown (kernel/netns.ts netnsCookieOf). */
export type LiveNetnsCookie = (netns: string) => bigint | null;

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
  const plan = journal.planRollback((netns, sysctl) => io.read(sysctl, netns));
  const reused = reusedInodeRecords(journal, liveCookie);
  const restore: RollbackStep[] = [];
  for (const step of plan.restore) {
    const why = refuseRestore(step.sysctl, step.to);
    if (reused(step)) {
      plan.skipped.push({
        ...step,
        code: "unreadable",
        reason: `its namespace is gone (inode ${
          parseNetnsKey(step.netns)
        } now belongs to a new namespace)`,
      });
    } else if (why === null) restore.push(step);
    else plan.skipped.push({ ...step, code: "refused", reason: why });
  }
  return { restore, skipped: plan.skipped };
}

/** Whether the journal's record of a step is for a dead namespace whose inode a new one took. */
function reusedInodeRecords(
  journal: Journal,
  liveCookie: LiveNetnsCookie,
): (step: { netns: string; sysctl: string }) => boolean {
  // An earlier boot's record is gone for that reason (Journal.planRollback says so), whatever
  // has its inode now.
  const cookies = new Map(
    journal.changedEntries().filter((e) => !journal.isFromEarlierBoot(e))
      .map((e) => [`${e.netns}\0${e.sysctl}`, e.netnsCookie]),
  );
  return (step) =>
    recordIsForReusedInode(cookies.get(`${step.netns}\0${step.sysctl}`), liveCookie(step.netns));
}

export function rollbackFromJournal(
  journal: Journal,
  io: SysctlIO,
  log: LogLike,
  refuseRestore: RestoreGuard,
  liveCookie: LiveNetnsCookie = netnsCookieOf,
): RollbackResult {
  // The plan's reads visit each namespace and learn its cookie on the way, so the prune after
  // needs no visit of its own (it was one visit more per namespace, a third of the time).
  const reused = reusedInodeRecords(journal, liveCookie);
  const plan = vettedRollbackPlan(journal, io, refuseRestore, liveCookie);
  // Records of a dead namespace whose inode a new one took: the plan never writes into it; they
  // are dropped (and logged) here, not reported again as left alone.
  pruneReusedNetns(journal, liveCookie, log);
  plan.skipped = plan.skipped.filter((s) => !reused(s));
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
    // Someone else's value now stands; a namespace that is gone will not come back.
    if (skip.code === "changed" || skip.netns !== "global") done.push(skip);
    log.notice(
      `left '${skip.sysctl}' in ${describeNetns(skip.netns)} alone: ${skip.reason}`,
      { event: "rollback_skipped", sysctl: skip.sysctl, netns: skip.netns, code: skip.code },
    );
  }
}
