/**
 * Receive-path checks, grounded in bpftune's net_buffer tuner (bpftune-behaviour.md §2.6):
 * per-CPU backlog drops and NAPI budget squeezes from /proc/net/softnet_stat. The recommended
 * values are the net_buffer tuner's own decisions (net_buffer_rules.ts) on the counters seen, so
 * the audit and the daemon cannot disagree.
 */
import { softnetTotal } from "../../kernel/proc/softnet.ts";
import { DEFAULT_LEARNING_RATE } from "../../tuning/learning_rate.ts";
import type { Decision } from "../../tuning/proposal.ts";
import {
  backlogDecision,
  BUDGET_DOMAIN,
  budgetDecisions,
  highOrderAllocDecision,
  kernelAtLeast,
  MAX_BACKLOG_DOMAIN,
  NB_SYSCTL,
} from "../../tuners/net_buffer_rules.ts";
import {
  counterEvidence,
  currentEvidence,
  describeCounter,
  finding,
  noCounterReason,
  outcome,
  pass,
  readCounter,
  readNumeric,
  severityFor,
  skip,
} from "./helpers.ts";
import type { CheckDefinition } from "./input.ts";

export const NETDEV_MAX_BACKLOG_CEILING = MAX_BACKLOG_DOMAIN.max;
export const NETDEV_BUDGET_CEILING = BUDGET_DOMAIN.max;
/** Squeezes per processed packet above which a squeeze finding is a warning rather than info. */
export const SQUEEZE_WARNING_RATIO = 0.01;
/** Below this rate squeezes are routine (a busy softirq now and then), not worth a finding. */
export const SQUEEZE_MIN_RATIO = 0.001;

export const netdevBacklogDrops: CheckDefinition = {
  id: "BPFP-NETDEV-BACKLOG-DROPS",
  title: "Packets dropped at a full per-CPU input backlog",
  tunable: "net.core.netdev_max_backlog",
  rationale: "Column 2 of /proc/net/softnet_stat counts packets dropped because a CPU's input " +
    "backlog held netdev_max_backlog packets; recommends what the net_buffer tuner would grow " +
    "it to on those drops (up to twice, cap 262144).",
  offline: false,
  evaluate(input) {
    const v = readNumeric(input, this.tunable);
    if (!v.ok) return v.outcome;
    const backlog = v.value[0];
    const drops = readCounter(
      input,
      (s) => s.softnet === null ? undefined : softnetTotal(s.softnet, "dropped"),
    );
    if (drops === null) return skip(noCounterReason(input, "/proc/net/softnet_stat"));
    if (drops.sinceBoot === 0) return pass(`no backlog drops (netdev_max_backlog ${backlog})`);
    const decision = backlogDecision({
      maxBacklog: backlog,
      drops: drops.window ?? drops.sinceBoot,
      rate: DEFAULT_LEARNING_RATE,
    });
    const to = changedTo(decision);
    if (to === null) {
      return pass(
        `backlog drops ${
          describeCounter(drops, input.windowSeconds)
        } but netdev_max_backlog ${backlog} ` +
          "is at the audit's ceiling: spread the load with RPS/RSS instead",
      );
    }
    const evidence = counterEvidence(
      "packets dropped at a full CPU backlog (softnet_stat dropped)",
      drops,
    );
    const flow = readCounter(
      input,
      (s) => s.softnet === null ? undefined : softnetTotal(s.softnet, "flowLimitCount"),
    );
    if (flow !== null && flow.sinceBoot > 0) {
      evidence.push(
        ...counterEvidence("of which by the flow limit (softnet_stat flow_limit_count)", flow),
      );
    }
    evidence.push(currentEvidence(`netdev_max_backlog is ${backlog}`));
    return outcome(
      `backlog drops ${
        describeCounter(drops, input.windowSeconds)
      } with netdev_max_backlog ${backlog}`,
      finding(this, severityFor("warning", drops), [backlog], [to], evidence),
    );
  },
};

export const netdevBudgetSqueeze: CheckDefinition = {
  id: "BPFP-NETDEV-BUDGET-SQUEEZE",
  title: "NAPI polls run out of budget (time_squeeze)",
  tunable: "net.core.netdev_budget",
  rationale: "Column 3 of /proc/net/softnet_stat counts softirq runs that stopped with work left " +
    "because netdev_budget packets or netdev_budget_usecs ran out. Warning at >= 1 squeeze per " +
    "100 packets, info from 1 per 1000, below that routine; recommends what the net_buffer " +
    "tuner would grow netdev_budget to on those squeezes (up to twice, cap 3000).",
  offline: false,
  evaluate(input) {
    const v = readNumeric(input, this.tunable);
    if (!v.ok) return v.outcome;
    const budget = v.value[0];
    const squeezes = readCounter(
      input,
      (s) => s.softnet === null ? undefined : softnetTotal(s.softnet, "timeSqueeze"),
    );
    const processed = readCounter(
      input,
      (s) => s.softnet === null ? undefined : softnetTotal(s.softnet, "processed"),
    );
    if (squeezes === null || processed === null) {
      return skip(noCounterReason(input, "/proc/net/softnet_stat"));
    }
    if (squeezes.sinceBoot === 0) return pass(`no budget squeezes (netdev_budget ${budget})`);
    const to = changedTo(
      budgetDecisions({
        budget,
        budgetUsecs: BUDGET_DOMAIN.max, // only the budget's own decision is used here
        squeezes: squeezes.window ?? squeezes.sinceBoot,
        waitCorrelates: false,
        rate: DEFAULT_LEARNING_RATE,
      }).find((d) => decisionSysctl(d) === NB_SYSCTL.budget) ?? null,
    );
    if (to === null) {
      return pass(
        `squeezes ${
          describeCounter(squeezes, input.windowSeconds)
        } but netdev_budget ${budget} is at ` +
          "the audit's ceiling",
      );
    }
    // Rate over the window when there is one, else since boot.
    const useWindow = squeezes.window !== null && processed.window !== null;
    const sq = useWindow ? squeezes.window! : squeezes.sinceBoot;
    const pk = useWindow ? processed.window! : processed.sinceBoot;
    const ratio = pk === 0 ? (sq > 0 ? 1 : 0) : sq / pk;
    const rate = `${(ratio * 100).toFixed(3)} % of packets`;
    if (ratio < SQUEEZE_MIN_RATIO) {
      return pass(
        `squeezes ${describeCounter(squeezes, input.windowSeconds)} (${rate}): too rare to matter`,
      );
    }
    const base = ratio >= SQUEEZE_WARNING_RATIO ? "warning" : "info";
    return outcome(
      `squeezes ${describeCounter(squeezes, input.windowSeconds)} (${
        (ratio * 100).toFixed(3)
      } % of packets)`,
      finding(this, severityFor(base, squeezes), [budget], [to], [
        ...counterEvidence("NAPI runs out of budget (softnet_stat time_squeeze)", squeezes),
        ...counterEvidence("packets processed (softnet_stat processed)", processed),
        currentEvidence(`netdev_budget is ${budget}`),
      ]),
    );
  },
};

/** The single value a rule decision changes to; null for none or "at its ceiling". */
function changedTo(d: Decision | null): number | null {
  return d?.kind === "change" ? d.proposal.to[0] : null;
}

function decisionSysctl(d: Decision): string {
  return d.kind === "change" ? d.proposal.sysctl : d.sysctl;
}

export const netHighOrderAlloc: CheckDefinition = {
  id: "BPFP-NET-HIGH-ORDER-ALLOC",
  title: "High-order page allocations for socket buffers are disabled",
  tunable: "net.core.high_order_alloc_disable",
  rationale: "Since Linux 5.14 high-order allocations for skb page frags no longer contend, so " +
    "high_order_alloc_disable=1 only costs performance (bpftune's net_buffer tuner resets it).",
  offline: true,
  evaluate(input) {
    const v = readNumeric(input, this.tunable);
    if (!v.ok) return v.outcome;
    if (v.value[0] === 0) return pass("high-order allocations are enabled");
    const recent = kernelAtLeast(input.kernelRelease, 5, 14);
    if (recent === null) return skip("kernel version unknown, so the 5.14 rule cannot be applied");
    const d = highOrderAllocDecision(v.value[0], input.kernelRelease);
    if (d?.kind !== "change") {
      return pass(`disabled, which can help on kernel ${input.kernelRelease} (< 5.14)`);
    }
    return outcome(
      `disabled on kernel ${input.kernelRelease} (>= 5.14)`,
      finding(this, "info", v.value, d.proposal.to, [
        currentEvidence(
          `high_order_alloc_disable is ${v.value[0]} on kernel ${input.kernelRelease}`,
        ),
      ]),
    );
  },
};
