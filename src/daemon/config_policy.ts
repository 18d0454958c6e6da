/**
 * The configuration file's per-tuner and per-sysctl policy, applied to every proposal: `disabled`
 * (never written), `advise-only` (logged as in advise mode, not written) and `ceiling` (growth
 * stops there, per field; a value already above it is not lowered). A sysctl's own rule and its
 * tuner's rule both apply; the stricter policy wins. Replaced as a whole on SIGHUP.
 */
import { basename } from "../path.ts";
import type { PolicyName, SysctlRule, TunerRule } from "../config/parse.ts";
import type { Proposal } from "../tuning/proposal.ts";

export interface PolicyRules {
  /** The file the rules come from, for messages. */
  path: string;
  tuners: ReadonlyMap<string, TunerRule>;
  sysctls: ReadonlyMap<string, SysctlRule>;
}

export interface Judgement {
  /** Why the proposal must not be written at all, or null. */
  refuse: string | null;
  /** Only log what would be written (the reason, for the log line), or null. */
  adviseOnly: string | null;
  /** The values to write: the proposal's, or capped at the ceiling. */
  to: number[];
  /** Set when `to` was capped: the ceiling as the log line names it. */
  cappedBy: string | null;
}

const STRICTNESS: Record<PolicyName, number> = { tune: 0, "advise-only": 1, disabled: 2 };

export class ConfigPolicy {
  #rules: PolicyRules | null;

  constructor(rules: PolicyRules | null = null) {
    this.#rules = rules;
  }

  replace(rules: PolicyRules | null): void {
    this.#rules = rules;
  }

  get empty(): boolean {
    return !this.#rules || (this.#rules.tuners.size === 0 && this.#rules.sysctls.size === 0);
  }

  /** The stricter of the tuner's and the sysctl's policy, with where it is set. */
  policyOf(tuner: string, sysctl: string): { policy: PolicyName; where: string } | null {
    const r = this.#rules;
    if (!r) return null;
    const candidates = [
      { rule: r.sysctls.get(sysctl), section: `[sysctl."${sysctl}"]` },
      { rule: r.tuners.get(tuner), section: `[tuner.${tuner}]` },
    ].filter((c) => c.rule && c.rule.policy !== "tune");
    if (!candidates.length) return null;
    const c = candidates.reduce((a, b) =>
      STRICTNESS[b.rule!.policy] > STRICTNESS[a.rule!.policy] ? b : a
    );
    return { policy: c.rule!.policy, where: this.#where(c.rule!.line, c.section) };
  }

  ceilingOf(sysctl: string): { ceiling: number[]; where: string; text: string } | null {
    const rule = this.#rules?.sysctls.get(sysctl);
    if (!rule?.ceiling) return null;
    const file = basename(this.#rules!.path);
    const at = rule.line === null ? `[sysctl."${sysctl}"]` : `line ${rule.line}`;
    return {
      ceiling: rule.ceiling,
      where: this.#where(rule.line, `[sysctl."${sysctl}"]`),
      // "capped by bpfpilot.conf ceiling (4096 131072 8388608, line 9)"
      text: `${file} ceiling (${rule.ceiling.join(" ")}, ${at})`,
    };
  }

  #where(line: number | null, section: string): string {
    const file = basename(this.#rules?.path ?? "bpfpilot.conf");
    return line === null ? `${file} ${section}` : `${file}:${line}`;
  }

  judge(p: Proposal): Judgement {
    const out: Judgement = { refuse: null, adviseOnly: null, to: p.to, cappedBy: null };
    const policy = this.policyOf(p.tuner, p.sysctl);
    if (policy?.policy === "disabled") {
      out.refuse = `disabled by ${policy.where}`;
      return out;
    }
    if (policy?.policy === "advise-only") out.adviseOnly = `advise-only by ${policy.where}`;
    const cap = this.ceilingOf(p.sysctl);
    if (cap && cap.ceiling.length === p.to.length) {
      const to = p.to.map((v, i) =>
        v > p.from[i] && v > cap.ceiling[i] ? Math.max(p.from[i], cap.ceiling[i]) : v
      );
      if (to.some((v, i) => v !== p.to[i])) {
        if (to.every((v, i) => v === p.from[i])) {
          out.refuse = `capped by ${cap.text}: it is there already`;
          return out;
        }
        out.to = to;
        out.cappedBy = cap.text;
      }
    }
    return out;
  }

  /** How `query tunables` shows the rule for this tunable, or null when there is none. */
  describe(tuner: string, sysctl: string): { text: string; disabled: boolean } | null {
    const policy = this.policyOf(tuner, sysctl);
    const cap = this.ceilingOf(sysctl);
    const parts: string[] = [];
    if (policy) parts.push(`${policy.policy} by ${policy.where}`);
    if (cap && policy?.policy !== "disabled") {
      parts.push(`ceiling ${cap.ceiling.join(" ")} by ${cap.where}`);
    }
    return parts.length
      ? { text: parts.join(", "), disabled: policy?.policy === "disabled" }
      : null;
  }
}

/**
 * Tuners that change no sysctl (tcp_conn sets each connection's congestion control) are not held
 * proposal by proposal: their policy acts at start, `disabled` as --disable and `advise-only` as
 * --advise for that tuner alone; a change needs a restart.
 */
export function startTimePolicy(
  rules: Pick<PolicyRules, "tuners"> | null,
  defs: readonly { name: string; tunesConnections?: boolean }[],
): { disabled: string[]; advising: string[] } {
  const of = (policy: PolicyName) =>
    defs.filter((d) => d.tunesConnections && rules?.tuners.get(d.name)?.policy === policy)
      .map((d) => d.name);
  return { disabled: of("disabled"), advising: of("advise-only") };
}
