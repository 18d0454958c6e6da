/**
 * `bpfpilot audit` as the main CLI mounts it: the audit command with the daemon behind it (the
 * advise-mode observation window and the journal for --apply), plus the two options that only
 * make sense with the daemon: --netns and --state-dir.
 */
import type { Command } from "@commander-js/extra-typings";
import { daemonAdviseRunner } from "../audit/daemon_runner.ts";
import { journalApplyHook, refuseUnderDaemon } from "../audit/journal_apply.ts";
import { REPORT_SCHEMA, REPORT_SCHEMA_VERSION } from "../audit/report.ts";
import { DEFAULT_STATE_DIR } from "../daemon/journal.ts";
import { auditCommand, type AuditDeps, defaultAuditDeps } from "./audit.ts";
import { UserError } from "./errors.ts";
import { resolveCgroup, resolveNetns } from "./run_paths.ts";

/** The cgroup the connection tuners observe; the audit changes nothing, so it mounts nothing. */
function auditCgroup(arg: string | undefined): string | null {
  if (arg === undefined) return null;
  const cgroup = resolveCgroup(arg);
  if (cgroup.mount) {
    throw new UserError(
      `--cgroup ${arg}: not a cgroup v2 directory, and the audit mounts nothing; give a ` +
        "directory of the cgroup2 hierarchy (e.g. /sys/fs/cgroup/system.slice)",
      2,
    );
  }
  return cgroup.path;
}

interface DaemonAuditFlags {
  netns?: string;
  cgroup?: string;
  stateDir?: string;
  apply?: boolean;
  json?: boolean;
}

/** Fails before the window when --apply could not work anyway (a daemon holds the journal). */
function earlyApplyCheck(flags: DaemonAuditFlags, dir: string, deps: AuditDeps): void {
  if (!flags.apply || !deps.isRoot()) return; // the audit itself explains a non-root --apply
  try {
    refuseUnderDaemon(dir);
  } catch (e) {
    const message = `--apply: ${(e as Error).message}`;
    if (flags.json) {
      deps.stdout.write(
        JSON.stringify(
          { schema: REPORT_SCHEMA, schemaVersion: REPORT_SCHEMA_VERSION, error: { message } },
          null,
          2,
        ) + "\n",
      );
    }
    throw new UserError(message, 2);
  }
}

export function daemonAuditDeps(flags: DaemonAuditFlags): AuditDeps {
  const deps = defaultAuditDeps();
  const onlyNetns = flags.netns === undefined ? null : resolveNetns(flags.netns);
  const cgroup = auditCgroup(flags.cgroup);
  const stateDir = flags.stateDir ?? DEFAULT_STATE_DIR;
  earlyApplyCheck(flags, stateDir, deps);
  return {
    ...deps,
    runner: daemonAdviseRunner({ onlyNetns, cgroup }),
    apply: journalApplyHook({ stateDir, onlyNetns }),
  };
}

/** The `audit` subcommand wired to the daemon. */
export function daemonAuditCommand(setExit: (code: number) => void): Command {
  const cmd: Command = auditCommand({
    setExit,
    deps: () => daemonAuditDeps(cmd.opts() as DaemonAuditFlags),
  }) as unknown as Command;
  return cmd
    .option(
      "--netns <name|path>",
      "observe only this network namespace (a name under /run/netns or a path such as " +
        "/proc/PID/ns/net); with --apply, change only it",
    )
    .option(
      "--cgroup <dir>",
      "cgroup v2 directory whose TCP connections tcp_conn observes (default: the root, every " +
        "connection); as `bpfpilot run -c`",
    )
    .option(
      "--state-dir <dir>",
      `journal that --apply records in, for 'bpfpilot rollback' (default ${DEFAULT_STATE_DIR})`,
    );
}
