/** The exit summary, per tuner: scenario counts and what changed, with the line to replicate it. */
import { describeNetns } from "../kernel/netns.ts";
import { formatSysctlValues, sysctlWLine } from "../kernel/sysctl.ts";
import type { DaemonStats } from "./stats.ts";

export function summaryLines(
  tuner: string,
  stats: DaemonStats,
  describe: (scenario: string) => string,
  advise: boolean,
): string[] {
  const out: string[] = [];
  for (const s of stats.scenarios.values()) {
    if (s.tuner !== tuner) continue;
    out.push(
      `# Summary: scenario '${s.scenario}' occurred ${s.count} times for tunable '${s.sysctl}' ` +
        `in ${describeNetns(s.netns)}. ${describe(s.scenario)}`,
    );
  }
  for (const c of stats.changes.values()) {
    if (c.tuner !== tuner) continue;
    out.push(
      `# sysctl '${c.sysctl}' changed from (${formatSysctlValues(c.first, c.sysctl)}) -> (${
        formatSysctlValues(c.last, c.sysctl)
      })` +
        (c.netns === "global" ? "" : ` in ${describeNetns(c.netns)}`),
    );
    out.push(
      "# To replicate this change on another system, run the following as a privileged user " +
        "in a terminal:",
    );
    out.push(sysctlWLine(c.sysctl, c.last));
  }
  for (const g of stats.gone.scenarios.values()) {
    if (g.tuner !== tuner) continue;
    out.push(
      `# Summary: scenario '${g.scenario}' occurred ${g.count} times for tunable '${g.sysctl}' ` +
        `in network namespaces that are gone. ${describe(g.scenario)}`,
    );
  }
  for (const g of stats.gone.changes.values()) {
    if (g.tuner !== tuner) continue;
    out.push(
      `# sysctl '${g.sysctl}' changed ${g.changes} time${g.changes === 1 ? "" : "s"} in ` +
        `${g.namespaces} network namespace${g.namespaces === 1 ? "" : "s"} that are gone ` +
        `(nothing left to undo there)`,
    );
  }
  if (advise && out.length) out.push("# (advise mode: nothing was changed)");
  return out;
}

/**
 * The exit summary's last word: how to undo what this run changed. With -R the daemon restores
 * the values itself; otherwise `bpfpilot rollback` (from the journal), or the `sysctl -w` lines
 * that put back the values from before this run (prefixed with `ip netns exec` elsewhere).
 */
export function undoLines(
  stats: DaemonStats,
  opts: {
    advise: boolean;
    rollbackOnExit: boolean;
    /** The --state-dir to name in the rollback command; null for the default. */
    stateDir: string | null;
    /** A namespace key as `ip netns exec` knows it, or undefined for the daemon's own. */
    netnsName: (key: string) => string | undefined;
  },
): string[] {
  const changes = [...stats.changes.values()];
  if (opts.advise || changes.length === 0) return [];
  if (opts.rollbackOnExit) {
    return ["# Undo: -R given, so every value changed is restored now, before exit"];
  }
  const rollback = "bpfpilot rollback" +
    (opts.stateDir === null ? "" : ` --state-dir ${shellWord(opts.stateDir)}`);
  const out = [
    `# Undo: these changes stay after bpfpilot stops. To undo them run '${rollback}', or ` +
    "restore the values from before this run by hand:",
  ];
  for (const c of changes) {
    const name = c.netns === "global" ? undefined : opts.netnsName(c.netns);
    const line = sysctlWLine(c.sysctl, c.first);
    if (c.netns !== "global" && name === undefined) {
      out.push(`# (in ${describeNetns(c.netns)}, now gone or unnamed) ${line}`);
    } else out.push(name === undefined ? line : `ip netns exec ${shellWord(name)} ${line}`);
  }
  return out;
}

function shellWord(word: string): string {
  return /^[A-Za-z0-9_.,:/=+-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}
