/**
 * UDP checks, grounded in bpftune's udp_buffer tuner (bpftune-behaviour.md §2.9): receive
 * buffer overflows and the udp_mem pool.
 */
import { counter } from "../../kernel/proc/snmp.ts";
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
  recentCount,
  severityFor,
  skip,
  sumDefined,
} from "./helpers.ts";
import type { CheckDefinition } from "./input.ts";
// One rules source: audit recommends what the udp_buffer tuner would set.
import { grownPool } from "../../tuners/memory_pool.ts";
import {
  classifyUdpMemory,
  UDP_BUFFER_MAX,
  udpBufferTarget,
} from "../../tuners/udp_buffer_rules.ts";
import { DEFAULT_LEARNING_RATE } from "../../tuning/learning_rate.ts";

export const udpRcvbufErrors: CheckDefinition = {
  id: "BPFP-UDP-RCVBUF-ERRORS",
  title: "UDP datagrams dropped at a full socket receive buffer",
  tunable: "net.core.rmem_max",
  rationale: "Udp RcvbufErrors (and Udp6RcvbufErrors) count datagrams dropped because the " +
    "socket's receive buffer was full. rmem_max caps what applications may ask for with " +
    "SO_RCVBUF; recommends what the udp_buffer tuner grows a receive buffer to after drops (a " +
    "quarter more, up to twice as much the more drops; cap 256 MiB). Applications that never " +
    "set SO_RCVBUF get net.core.rmem_default instead, which the tuner grows the same way.",
  offline: false,
  evaluate(input) {
    const v = readNumeric(input, this.tunable);
    if (!v.ok) return v.outcome;
    const rmemMax = v.value[0];
    const errors = readCounter(
      input,
      (s) => sumDefined(counter(s.snmp, "Udp", "RcvbufErrors"), s.snmp6?.get("Udp6RcvbufErrors")),
    );
    if (errors === null) return skip(noCounterReason(input, "Udp RcvbufErrors"));
    if (errors.sinceBoot === 0) return pass(`no UDP receive-buffer drops (rmem_max ${rmemMax})`);
    if (rmemMax >= UDP_BUFFER_MAX) {
      return pass(
        `UDP receive-buffer drops ${
          describeCounter(errors, input.windowSeconds)
        } but rmem_max is at ` +
          "the 256 MiB ceiling: applications are reading too slowly",
      );
    }
    return outcome(
      `UDP receive-buffer drops ${
        describeCounter(errors, input.windowSeconds)
      } with rmem_max ${rmemMax}`,
      finding(this, severityFor("warning", errors), [rmemMax], [
        udpBufferTarget(rmemMax, Math.max(1, recentCount(errors)), DEFAULT_LEARNING_RATE),
      ], [
        ...counterEvidence(
          "UDP datagrams dropped at a full receive buffer (Udp/Udp6 RcvbufErrors)",
          errors,
        ),
        currentEvidence(`rmem_max is ${rmemMax}`),
      ]),
    );
  },
};

export const udpMemPressure: CheckDefinition = {
  id: "BPFP-UDP-MEM-PRESSURE",
  title: "UDP memory pool (udp_mem) exhausted",
  tunable: "net.ipv4.udp_mem",
  rationale: "Udp MemErrors (and Udp6MemErrors) count datagrams dropped because UDP as a whole " +
    "was over udp_mem; /proc/net/sockstat shows current use. Recommends what the udp_buffer tuner " +
    "would set: the pool grown by a quarter within 1/16, 1/8 and 1/4 of the free buffer pages " +
    "(/proc/zoneinfo), only the max when near exhaustion.",
  offline: false,
  evaluate(input) {
    const v = readNumeric(input, this.tunable, 3);
    if (!v.ok) return v.outcome;
    const errors = readCounter(
      input,
      (s) => sumDefined(counter(s.snmp, "Udp", "MemErrors"), s.snmp6?.get("Udp6MemErrors")),
    );
    const inUse = counter(input.counters?.sockstat ?? null, "UDP", "mem");
    if (errors === null && inUse === undefined) {
      return skip(noCounterReason(input, "Udp MemErrors"));
    }
    const [, pressure] = v.value;
    const evidence = [];
    const reasons: string[] = [];
    let severity: "info" | "warning" | "critical" | null = null;
    if (errors !== null && errors.sinceBoot > 0) {
      severity = severityFor("critical", errors);
      reasons.push(
        `datagrams dropped for lack of UDP memory ${describeCounter(errors, input.windowSeconds)}`,
      );
      evidence.push(
        ...counterEvidence("UDP datagrams dropped over udp_mem (Udp/Udp6 MemErrors)", errors),
      );
    }
    if (inUse !== undefined && inUse >= pressure) {
      severity = severity ?? "warning";
      reasons.push(`${inUse} pages in use now, pressure threshold ${pressure}`);
      evidence.push(
        currentEvidence(`UDP uses ${inUse} pages now (sockstat); udp_mem is ${v.value.join(" ")}`),
      );
    }
    if (severity === null) {
      return pass(
        "no UDP memory errors" +
          (inUse !== undefined ? `; ${inUse} of ${pressure} pages in use` : ""),
      );
    }
    const nfbp = input.counters!.freeBufferPages;
    const state = classifyUdpMemory({
      udpMem: v.value,
      allocatedPages: inUse ?? 0,
      underPressure: errors !== null && errors.sinceBoot > 0,
      rate: DEFAULT_LEARNING_RATE,
    });
    if (nfbp === null || state === null || state === "normal") {
      // The finding stands without a number: no ceiling to grow within (as the tuner, which
      // does not grow the pool then).
      if (nfbp === null) {
        evidence.push(currentEvidence("/proc/zoneinfo unreadable: no pool ceiling to grow within"));
      }
      return outcome(reasons.join("; "), finding(this, severity, v.value, v.value, evidence));
    }
    const rec = grownPool(v.value, state, nfbp, DEFAULT_LEARNING_RATE);
    if (rec.every((x, i) => x === v.value[i])) {
      return pass(`${reasons.join("; ")}; udp_mem is already at the tuner's ceilings`);
    }
    return outcome(reasons.join("; "), finding(this, severity, v.value, rec, evidence));
  },
};
