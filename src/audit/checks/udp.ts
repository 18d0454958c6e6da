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
  growPool,
  noCounterReason,
  outcome,
  pass,
  raiseLimit,
  readCounter,
  readNumeric,
  severityFor,
  skip,
  sumDefined,
} from "./helpers.ts";
import type { CheckDefinition } from "./input.ts";
// The udp_buffer tuner's ceiling: audit never recommends more than the tuner would set.
import { UDP_BUFFER_MAX } from "../../tuners/udp_buffer_rules.ts";

export const udpRcvbufErrors: CheckDefinition = {
  id: "BPFP-UDP-RCVBUF-ERRORS",
  title: "UDP datagrams dropped at a full socket receive buffer",
  tunable: "net.core.rmem_max",
  rationale: "Udp RcvbufErrors (and Udp6RcvbufErrors) count datagrams dropped because the " +
    "socket's receive buffer was full. rmem_max caps what applications may ask for with " +
    "SO_RCVBUF; recommends doubling it (cap 256 MiB). Applications that never set SO_RCVBUF get " +
    "net.core.rmem_default instead.",
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
        raiseLimit(rmemMax, UDP_BUFFER_MAX),
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
    "was over udp_mem; /proc/net/sockstat shows current use. Recommends growing the pool by 25 % " +
    "(caps 1/16, 1/8, 1/4 of RAM).",
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
    const c = input.counters!;
    const rec = growPool(v.value, c.memTotalBytes, c.pageSize);
    if (rec.every((x, i) => x === v.value[i])) {
      return pass(`${reasons.join("; ")}; udp_mem is already at the RAM-derived caps`);
    }
    return outcome(reasons.join("; "), finding(this, severity, v.value, rec, evidence));
  },
};
