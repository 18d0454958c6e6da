/** TunerContext.apply(): decisions of a tuner's pure rules become proposals of that tuner. */
import { type Decision, toProposal } from "./proposal.ts";
import type { TunerContext } from "./tuner.ts";

/**
 * Applies `decisions` in order through `ctx.propose`/`ctx.atCeiling`/`ctx.needsMore`; true if any
 * was written.
 */
export function applyDecisions(
  ctx: Pick<TunerContext, "propose" | "atCeiling" | "needsMore">,
  tuner: string,
  decisions: readonly (Decision | null)[],
  netns: string,
): boolean {
  let applied = false;
  for (const d of decisions) {
    if (!d) continue;
    if (d.kind === "at-ceiling") ctx.atCeiling(d.sysctl, netns, d.value, d.ceiling);
    else if (d.kind === "needs-more") ctx.needsMore(d.sysctl, netns, d.need);
    else applied = ctx.propose(toProposal(d.proposal, tuner, netns)) || applied;
  }
  return applied;
}

/**
 * Live values of one namespace, in one visit of it where `from` can (readMany), else one read
 * each: a namespace visit costs two setns and the /proc/sys lookups of every namespace's
 * same-named entries, so what one decision needs is read together.
 */
export function readTogether(
  from: {
    read(sysctl: string, netns: string): number[] | null;
    readMany?(sysctls: readonly string[], netns: string): (number[] | null)[];
  },
  sysctls: readonly string[],
  netns: string,
): (number[] | null)[] {
  return from.readMany?.(sysctls, netns) ?? sysctls.map((s) => from.read(s, netns));
}
