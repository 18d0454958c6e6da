/** The toy tuner's rule, pure: live somaxconn and an observed backlog in, a decision out. */
import { INT_MAX, POSITIVE_INT_DOMAIN, withinDomain } from "../../src/tuning/domain.ts";
import { grow, type LearningRate, nearlyFull } from "../../src/tuning/learning_rate.ts";
import type { Decision } from "../../src/tuning/proposal.ts";
import type { ScenarioDecl, TunableDecl } from "../../src/tuning/tuner.ts";

export const SOMAXCONN = "net.core.somaxconn";

export const TOY_TUNABLES: TunableDecl[] = [
  // 0 would refuse every connection: not "a small backlog".
  { sysctl: SOMAXCONN, values: 1, scope: "netns", domain: POSITIVE_INT_DOMAIN },
];

export const TOY_SCENARIOS: ScenarioDecl[] = [
  { id: 0, name: "need to increase somaxconn", description: "Listen backlogs are capped" },
];

export function somaxconnDecision(
  live: number,
  backlog: number,
  rate: LearningRate,
): Decision | null {
  if (!nearlyFull(backlog, live, rate)) return null;
  if (live >= INT_MAX) {
    return { kind: "at-ceiling", sysctl: SOMAXCONN, value: [live], ceiling: INT_MAX };
  }
  const to = [Math.min(grow(live, rate), INT_MAX)];
  if (!withinDomain(TOY_TUNABLES[0].domain!, to)) return null;
  return {
    kind: "change",
    proposal: {
      scenario: TOY_SCENARIOS[0].name,
      sysctl: SOMAXCONN,
      from: [live],
      to,
      reason:
        `Due to listen backlog ${backlog} near somaxconn change ${SOMAXCONN} from ${live} -> ${
          to[0]
        }`,
    },
  };
}
