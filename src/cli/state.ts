/** `bpfpilot rollback` and `bpfpilot enable`: acting on the journal from the command line. */
import { Command } from "@commander-js/extra-typings";
import {
  DEFAULT_STATE_DIR,
  Journal,
  JournalError,
  type RollbackSkipCode,
  valueText,
} from "../daemon/journal.ts";
import {
  rollbackFromJournal,
  type RollbackResult,
  vettedRollbackPlan,
} from "../daemon/rollback.ts";
import { liveSysctls } from "../daemon/sysctl_io.ts";
import { tunableDomain, TUNERS } from "../tuners/registry.ts";
import { restoreGuard } from "../daemon/restorable.ts";
import { describeNetns, heldNetnsCookie } from "../kernel/netns.ts";
import { keptFilesWithin, openFilesLimit, SysctlFiles } from "../kernel/sysctl_files.ts";
import { sysctlWLine } from "../kernel/sysctl.ts";
import { createLogger } from "../log/logger.ts";
import { requireRoot, UserError } from "./errors.ts";

/** The journal of an existing state directory (rollback and enable never create one). */
function openJournal(dir: string): Journal {
  try {
    return Journal.open(dir, { create: false });
  } catch (e) {
    if (e instanceof JournalError) throw new UserError(e.message);
    throw e;
  }
}

export function rollbackCommand(setExit: (code: number) => void) {
  return new Command("rollback")
    .description(
      "restore every sysctl bpfpilot changed, from its journal (after a crash or kill -9); " +
        "values someone else changed since are left alone and reported",
    )
    .option("--state-dir <dir>", `state directory (default ${DEFAULT_STATE_DIR})`)
    .option("-n, --dry-run", "only print what would be restored, as sysctl -w lines")
    .addHelpText(
      "after",
      `
Exit status: 0 done (or nothing to do), 1 some value could not be restored, a daemon is running,
the state file is corrupt (it is left untouched), or not root.`,
    )
    .action((opts) => {
      const dir = opts.stateDir ?? DEFAULT_STATE_DIR;
      if (opts.dryRun) {
        requireRoot("bpfpilot rollback --dry-run", `it reads the journal in ${dir}, root's only`);
      } else requireRoot("bpfpilot rollback", "it writes sysctls");
      const journal = openJournal(dir);
      const pid = Journal.daemonPid(dir);
      if (pid !== null && !opts.dryRun) {
        throw new UserError(
          `a bpfpilot daemon${pid ? ` (pid ${pid})` : ""} is running with state directory ` +
            `${dir}; stop it first (with -R it rolls back on exit), or see the plan with ` +
            `'bpfpilot rollback --dry-run'`,
        );
      }
      if (opts.dryRun) {
        const plan = vettedRollbackPlan(journal, liveSysctls(tunableDomain), restoreGuard(TUNERS));
        for (const step of plan.restore) {
          const line = typeof step.to === "string"
            ? sysctlWLine(step.sysctl, step.to)
            : sysctlWLine(step.sysctl, step.to);
          console.log(
            `${line}   # ${describeNetns(step.netns)}, now (${valueText(step.from)})`,
          );
        }
        for (const s of plan.skipped) {
          console.log(`# ${s.sysctl} in ${describeNetns(s.netns)}: ${s.reason}`);
        }
        if (!plan.restore.length && !plan.skipped.length) console.log("# nothing to roll back");
        setExit(0);
        return;
      }
      const log = createLogger({ target: "stderr" });
      // The file each read opens stays open for the write and its read-back: one /proc/sys open
      // an entry instead of three (each open walks the same-named entries of every namespace).
      const files = new SysctlFiles({
        cookieNow: heldNetnsCookie,
        max: keptFilesFor(journal.changedEntries().length),
      });
      let r;
      try {
        r = rollbackFromJournal(
          journal,
          liveSysctls(tunableDomain, files),
          log,
          restoreGuard(TUNERS),
        );
      } finally {
        files.closeAll();
      }
      journal.close();
      console.log(rollbackSummary(r));
      setExit(r.failed.length || r.skipped.some((s) => s.code === "refused") ? 1 : 0);
    });
}

/**
 * `bpfpilot rollback`'s last line. Records of a namespace that cannot be identified now are kept
 * for the next rollback: counted apart, not as left alone (those are forgotten).
 */
export function rollbackSummary(r: RollbackResult): string {
  const count = (code: RollbackSkipCode) => r.skipped.filter((s) => s.code === code).length;
  const refused = count("refused"), kept = count("unidentified");
  const alone = r.skipped.length - count("at-original") - refused - kept;
  return `bpfpilot: restored ${r.restored.length} value(s)` +
    (alone ? `, left ${alone} alone` : "") +
    (kept ? `, kept ${kept} for a later rollback (namespace not identified now)` : "") +
    (refused ? `, refused ${refused} not bpfpilot's` : "") +
    (r.failed.length ? `, ${r.failed.length} failed` : "");
}

/** Fds held back for everything else while a rollback keeps its sysctl files open. */
const OTHER_FDS = 128;

/** One kept file per journal entry, as far as this process's open-files limit leaves room. */
function keptFilesFor(entries: number): number {
  return keptFilesWithin(entries, openFilesLimit(), OTHER_FDS);
}

export function enableCommand(setExit: (code: number) => void) {
  return new Command("enable")
    .description(
      "resume tuning a sysctl (or every sysctl of a tuner) that the administrator took over",
    )
    .argument("<target>", "a sysctl (net.ipv4.tcp_rmem) or a tuner (tcp_buffer)")
    .option("--state-dir <dir>", `state directory (default ${DEFAULT_STATE_DIR})`)
    .addHelpText(
      "after",
      `
A running daemon picks the change up at once. Exit status: 0 done or nothing to do, 1 error.`,
    )
    .action((target, opts) => {
      requireRoot("bpfpilot enable", "it writes the journal in the state directory");
      const journal = openJournal(opts.stateDir ?? DEFAULT_STATE_DIR);
      const n = journal.clearOverrides(target);
      console.log(
        n
          ? `bpfpilot: tuning of ${target} resumes (${n} admin override(s) cleared)`
          : `bpfpilot: nothing to enable: no admin override is recorded for ${target}`,
      );
      setExit(0);
    });
}
