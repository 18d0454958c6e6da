/**
 * IP reassembly checks, grounded in bpftune's ip_frag tuner (bpftune-behaviour.md §2.3).
 * ReasmFails also counts reassembly timeouts (lost fragments), which more memory does not fix,
 * so only failures beyond ReasmTimeout count as evidence against high_thresh.
 */
import type { CounterSnapshot } from "../counters.ts";
// One rules source: audit recommends what the ip_frag tuner would set.
import { FRAG_SYSCTL, fragDecision, IP_FRAG_THRESH_CEILING } from "../../tuners/ip_frag_rules.ts";
import { DEFAULT_LEARNING_RATE } from "../../tuning/learning_rate.ts";
import { counter } from "../../kernel/proc/snmp.ts";
import {
  counterEvidence,
  type CounterGetter,
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
import type { CheckDefinition, CheckInput } from "./input.ts";

/** The ip_frag tuner's growth ceiling: audit recommends no more than the tuner would set. */
export const FRAG_THRESH_CEILING = IP_FRAG_THRESH_CEILING;
/** Memory failures per reassembly request above which the finding is a warning. */
export const REASM_WARNING_RATIO = 0.01;

interface FragCounters {
  sysctl: typeof FRAG_SYSCTL.v4 | typeof FRAG_SYSCTL.v6;
  low: string;
  fails: CounterGetter;
  timeouts: CounterGetter;
  reqds: CounterGetter;
  label: string;
}

function evaluateFrag(def: CheckDefinition, input: CheckInput, c: FragCounters) {
  const v = readNumeric(input, def.tunable);
  if (!v.ok) return v.outcome;
  const high = v.value[0];
  // Failures not explained by timeouts: fragments dropped because reassembly memory was full.
  const memFails = readCounter(input, (s: CounterSnapshot) => {
    const f = c.fails(s);
    return f === undefined ? undefined : Math.max(0, f - (c.timeouts(s) ?? 0));
  });
  const reqds = readCounter(input, c.reqds);
  if (memFails === null || reqds === null) {
    return skip(noCounterReason(input, `${c.label} ReasmFails`));
  }
  if (memFails.sinceBoot === 0) {
    return pass(`no reassembly failures beyond timeouts (high_thresh ${high})`);
  }
  const low = readNumeric(input, c.low);
  const decision = fragDecision({
    sysctl: c.sysctl,
    high,
    low: low.ok ? low.value[0] : null,
    memory: 0,
    refused: Math.max(1, memFails.window ?? memFails.sinceBoot),
    failuresCorrelate: false,
    rate: DEFAULT_LEARNING_RATE,
  });
  if (decision?.kind !== "change") {
    return pass(
      `reassembly failures ${
        describeCounter(memFails, input.windowSeconds)
      } but high_thresh is at the 64 MiB ceiling`,
    );
  }
  const useWindow = memFails.window !== null && reqds.window !== null;
  const f = useWindow ? memFails.window! : memFails.sinceBoot;
  const r = useWindow ? reqds.window! : reqds.sinceBoot;
  const ratio = r === 0 ? (f > 0 ? 1 : 0) : f / r;
  const base = ratio >= REASM_WARNING_RATIO ? "warning" : "info";
  return outcome(
    `reassembly failures ${describeCounter(memFails, input.windowSeconds)} (${
      (ratio * 100).toFixed(2)
    } % of requests)`,
    finding(def, severityFor(base, memFails), [high], decision.proposal.to, [
      ...counterEvidence(
        `${c.label} reassembly failures other than timeouts (ReasmFails - ReasmTimeout)`,
        memFails,
      ),
      ...counterEvidence(`${c.label} reassembly requests (ReasmReqds)`, reqds),
      currentEvidence(`${def.tunable} is ${high}`),
    ]),
  );
}

export const ipfragReasmFails: CheckDefinition = {
  id: "BPFP-IPFRAG-REASM-FAILS",
  title: "IPv4 fragment reassembly fails for lack of memory",
  tunable: "net.ipv4.ipfrag_high_thresh",
  rationale: "Ip ReasmFails minus ReasmTimeout (/proc/net/snmp) counts IPv4 fragments dropped " +
    "while reassembly memory was over ipfrag_high_thresh. Warning at >= 1 per 100 requests, else " +
    "info; recommends what the ip_frag tuner would set (a quarter more, cap 64 MiB).",
  offline: false,
  evaluate(input) {
    return evaluateFrag(this, input, {
      sysctl: FRAG_SYSCTL.v4,
      low: FRAG_SYSCTL.v4Low,
      fails: (s) => counter(s.snmp, "Ip", "ReasmFails"),
      timeouts: (s) => counter(s.snmp, "Ip", "ReasmTimeout"),
      reqds: (s) => counter(s.snmp, "Ip", "ReasmReqds"),
      label: "IPv4",
    });
  },
};

export const ip6fragReasmFails: CheckDefinition = {
  id: "BPFP-IP6FRAG-REASM-FAILS",
  title: "IPv6 fragment reassembly fails for lack of memory",
  tunable: "net.ipv6.ip6frag_high_thresh",
  rationale: "Ip6ReasmFails minus Ip6ReasmTimeout (/proc/net/snmp6), as for IPv4; skipped when " +
    "IPv6 is disabled.",
  offline: false,
  evaluate(input) {
    return evaluateFrag(this, input, {
      sysctl: FRAG_SYSCTL.v6,
      low: FRAG_SYSCTL.v6Low,
      fails: (s) => s.snmp6?.get("Ip6ReasmFails"),
      timeouts: (s) => s.snmp6?.get("Ip6ReasmTimeout"),
      reqds: (s) => s.snmp6?.get("Ip6ReasmReqds"),
      label: "IPv6",
    });
  },
};
