/** The exit summary, per tuner: scenario counts and what changed, with the line to replicate it. */
import { describeNetns } from "../kernel/netns.ts";
import { sysctlWLine } from "../kernel/sysctl.ts";
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
      `# sysctl '${c.sysctl}' changed from (${c.first.join(" ")}) -> (${c.last.join(" ")})` +
        (c.netns === "global" ? "" : ` in ${describeNetns(c.netns)}`),
    );
    out.push(
      "# To replicate this change on another system, run the following as a privileged user " +
        "in a terminal:",
    );
    out.push(sysctlWLine(c.sysctl, c.last));
  }
  if (advise && out.length) out.push("# (advise mode: nothing was changed)");
  return out;
}
