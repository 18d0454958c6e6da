/**
 * A proposed sysctl change: what a tuner wants to write, where, and why. Decision rules produce
 * the netns-free part (`RuleProposal`); the tuner adds its name and the event's netns.
 */

export interface Proposal {
  /** Tuner name, e.g. "tcp_buffer". */
  tuner: string;
  /** bpftune-compatible scenario name, e.g. "need to increase TCP buffer size(s)". */
  scenario: string;
  /** Dotted sysctl name, e.g. "net.ipv4.tcp_rmem". */
  sysctl: string;
  /** Network namespace the write goes to (an opaque id such as the netns cookie). */
  netns: string;
  /** Live values the decision was made against. */
  from: number[];
  /** Values to write (same length as `from`). */
  to: number[];
  /** The complete human "what and why" line, shaped like bpftune's log line for the change. */
  reason: string;
  /**
   * The evidence was seen with `from` in force (e.g. a socket ran into the live max itself, not
   * into one an earlier change replaced): growth that continues the previous change need not
   * wait for the rate gate's growth gap.
   */
  fresh?: boolean;
}

export type RuleProposal = Omit<Proposal, "tuner" | "netns">;

/**
 * What a tuner's pure rules return: a change to make, a growth that is impossible because the
 * value sits at its ceiling, or no change unless an event's evidence (its need, bytes) exceeds
 * `need` (> 0; the kernel then keeps what is no more). TunerContext.apply() turns a list of them
 * into proposals.
 */
export type Decision =
  | { kind: "change"; proposal: RuleProposal }
  | { kind: "at-ceiling"; sysctl: string; value: number[]; ceiling: number }
  | { kind: "needs-more"; sysctl: string; need: number };

/** A decision that changes something, from a rule proposal. */
export function changeDecision(proposal: RuleProposal): Decision {
  return { kind: "change", proposal };
}

export function toProposal(rule: RuleProposal, tuner: string, netns: string): Proposal {
  return { tuner, netns, ...rule, from: [...rule.from], to: [...rule.to] };
}

/** True when both proposals write the same values over the same values of the same sysctl. */
export function sameChange(
  a: Pick<Proposal, "sysctl" | "from" | "to">,
  b: Pick<Proposal, "sysctl" | "from" | "to">,
): boolean {
  return a.sysctl === b.sysctl && sameValues(a.from, b.from) && sameValues(a.to, b.to);
}

export function sameValues(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}
