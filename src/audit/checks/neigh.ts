/**
 * Neighbour table checks, grounded in bpftune's neigh_table tuner (bpftune-behaviour.md §2.4):
 * /proc/net/stat/{arp,ndisc}_cache count "table_fulls", neighbour creations refused because the
 * table held gc_thresh3 entries even after garbage collection. "Nearly full" and the ceiling are
 * the neigh_table tuner's own rules (src/tuners/neigh_table_rules.ts), so the audit and the
 * daemon never disagree about this table.
 */
import { memoryCeiling } from "../../tuners/neigh_table_rules.ts";
import type { StatTable } from "../../kernel/proc/stat_table.ts";
import { statGauge, statTotal } from "../../kernel/proc/stat_table.ts";
import type { CounterSnapshot } from "../counters.ts";
import {
  counterEvidence,
  currentEvidence,
  describeCounter,
  finding,
  noCounterReason,
  outcome,
  pass,
  raiseLimit,
  readCounter,
  readNumeric,
  severityFor,
  skip,
} from "./helpers.ts";
import type { CheckDefinition, CheckInput } from "./input.ts";
import { DEFAULT_LEARNING_RATE, nearlyFull } from "../../tuning/learning_rate.ts";

/** The tuner's growth ceiling on this machine (1/64 of memory at 512 bytes an entry). */
function gcThresh3Ceiling(input: CheckInput): number {
  return memoryCeiling(input.counters?.memTotalBytes ?? 0);
}

function evaluateNeigh(
  def: CheckDefinition,
  input: CheckInput,
  table: (s: CounterSnapshot) => StatTable | null,
  file: string,
) {
  const v = readNumeric(input, def.tunable);
  if (!v.ok) return v.outcome;
  const thresh3 = v.value[0];
  const ceiling = gcThresh3Ceiling(input);
  const fulls = readCounter(input, (s) => {
    const t = table(s);
    return t === null ? undefined : statTotal(t, "table_fulls");
  });
  if (fulls === null) return skip(noCounterReason(input, `${file} table_fulls`));
  const entries = statGauge(table(input.counters!)!, "entries");
  const entriesText = entries === undefined ? "" : `; ${entries} entries now`;
  if (thresh3 >= ceiling && fulls.sinceBoot > 0) {
    return pass(
      `table overflows ${
        describeCounter(fulls, input.windowSeconds)
      } but gc_thresh3 is at the audit's ceiling`,
    );
  }
  if (fulls.sinceBoot > 0) {
    const evidence = counterEvidence(
      `neighbour creations refused at a full table (${file} table_fulls)`,
      fulls,
    );
    evidence.push(currentEvidence(`gc_thresh3 is ${thresh3}${entriesText}`));
    return outcome(
      `table overflows ${describeCounter(fulls, input.windowSeconds)} with gc_thresh3 ${thresh3}`,
      finding(def, severityFor("warning", fulls), [thresh3], [
        raiseLimit(thresh3, ceiling),
      ], evidence),
    );
  }
  // The tuner's NEARLY_FULL at its default learning rate: within 25 % of the limit.
  if (
    entries !== undefined && nearlyFull(entries, thresh3, DEFAULT_LEARNING_RATE) &&
    thresh3 < ceiling
  ) {
    return outcome(
      `${entries} entries, within 25 % of gc_thresh3 ${thresh3}`,
      finding(def, "info", [thresh3], [raiseLimit(thresh3, ceiling)], [
        currentEvidence(`${entries} neighbour entries now; gc_thresh3 is ${thresh3}`),
      ]),
    );
  }
  return pass(`no table overflows (gc_thresh3 ${thresh3}${entriesText})`);
}

export const neighTableOverflow: CheckDefinition = {
  id: "BPFP-NEIGH-TABLE-OVERFLOW",
  title: "IPv4 neighbour (ARP) table overflows",
  tunable: "net.ipv4.neigh.default.gc_thresh3",
  rationale: "table_fulls in /proc/net/stat/arp_cache counts ARP entries refused at gc_thresh3 " +
    '(the kernel logs "neighbor table overflow"). Warning when it counted, info when the table ' +
    "is within 25 % of gc_thresh3 (the neigh_table tuner's rules); recommends doubling gc_thresh3, up " +
    "to the tuner's ceiling (1/64 of memory at 512 bytes an entry).",
  offline: false,
  evaluate(input) {
    return evaluateNeigh(this, input, (s) => s.arpCache, "arp_cache");
  },
};

export const neigh6TableOverflow: CheckDefinition = {
  id: "BPFP-NEIGH6-TABLE-OVERFLOW",
  title: "IPv6 neighbour (NDISC) table overflows",
  tunable: "net.ipv6.neigh.default.gc_thresh3",
  rationale: "As BPFP-NEIGH-TABLE-OVERFLOW for /proc/net/stat/ndisc_cache; skipped when IPv6 is " +
    "disabled.",
  offline: false,
  evaluate(input) {
    return evaluateNeigh(this, input, (s) => s.ndiscCache, "ndisc_cache");
  },
};
