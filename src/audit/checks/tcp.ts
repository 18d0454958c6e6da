/**
 * TCP checks, grounded in what bpftune's tcp_buffer tuner watches (bpftune-behaviour.md §2.1):
 * buffer maxima, the tcp_mem pool, receive-buffer auto-tuning, SYN/accept queues.
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
  raiseLimit,
  readCounter,
  readNumeric,
  severityFor,
  skip,
  sumDefined,
} from "./helpers.ts";
import type { CheckDefinition } from "./input.ts";
import { stockTcpBufferMax } from "../../tuners/tcp_buffer_limits.ts";
import {
  type Decision,
  moderateRcvbufDecision,
  SYSCTL,
  tcpMemDecisions,
} from "../../tuners/tcp_buffer_rules.ts";
import { tcpMemCeilings } from "../../tuners/tcp_buffer_limits.ts";
import { DEFAULT_LEARNING_RATE } from "../../tuning/learning_rate.ts";
import {
  synCounters,
  synFloodDecision,
  synQueueDrops,
} from "../../tuners/tcp_syn_backlog_rules.ts";

/** Kernel default (>= 5.4): below it a limit is smaller than a stock kernel's. */
export const SOMAXCONN_DEFAULT = 4096;
/** The audit never recommends a per-socket buffer above 256 MiB (bpftune issue #93: runaway growth). */
export const SOCKET_BUFFER_CEILING = 268435456;

export const tcpRmemMax: CheckDefinition = {
  id: "BPFP-TCP-RMEM-MAX",
  title: "TCP receive buffer maximum (tcp_rmem max) limits throughput",
  tunable: "net.ipv4.tcp_rmem",
  rationale: "Receive-queue drops (TcpExt RcvPruned, OfoPruned, TCPRcvQDrop) mean sockets hit " +
    "their receive buffer; recommends doubling the max (cap 256 MiB). A max below the kernel " +
    "default (the tcp_buffer tuner's: 6 MiB, 32 MiB since Linux 6.16) is reported as info.",
  offline: true,
  evaluate(input) {
    const rmem = readNumeric(input, this.tunable, 3);
    if (!rmem.ok) return rmem.outcome;
    const [min, def, max] = rmem.value;
    const rmemDefault = stockTcpBufferMax(input.kernelRelease).rmem;
    const drops = readCounter(input, (s) =>
      sumDefined(
        counter(s.netstat, "TcpExt", "RcvPruned"),
        counter(s.netstat, "TcpExt", "OfoPruned"),
        counter(s.netstat, "TcpExt", "TCPRcvQDrop"),
      ));
    if (drops !== null && drops.sinceBoot > 0) {
      const what =
        "TCP segments dropped at a full receive buffer (TcpExt RcvPruned + OfoPruned + " +
        "TCPRcvQDrop)";
      if (max >= SOCKET_BUFFER_CEILING) {
        return pass(
          `receive-buffer drops ${describeCounter(drops, input.windowSeconds)}, but max ${max} ` +
            "is already at the 256 MiB ceiling: applications are reading too slowly",
        );
      }
      const rec = raiseLimit(max, SOCKET_BUFFER_CEILING, rmemDefault);
      return outcome(
        `receive-buffer drops ${describeCounter(drops, input.windowSeconds)} with max ${max}`,
        finding(this, severityFor("warning", drops), [min, def, max], [min, def, rec], [
          ...counterEvidence(what, drops),
          currentEvidence(`tcp_rmem max is ${max}`),
        ]),
      );
    }
    if (max < rmemDefault) {
      return outcome(
        `max ${max} is below the kernel default ${rmemDefault}`,
        finding(this, "info", [min, def, max], [min, def, rmemDefault], [
          currentEvidence(
            `tcp_rmem max ${max} is below the kernel default ${rmemDefault}`,
          ),
        ]),
      );
    }
    return pass(
      `max ${max} >= ${rmemDefault}` +
        (drops === null
          ? ` (drop counters: ${noCounterReason(input, "TcpExt")})`
          : "; no receive-buffer drops"),
    );
  },
};

export const tcpWmemMax: CheckDefinition = {
  id: "BPFP-TCP-WMEM-MAX",
  title: "TCP send buffer maximum (tcp_wmem max) limits throughput",
  tunable: "net.ipv4.tcp_wmem",
  rationale: "No kernel counter shows send buffers hitting their max, so statically this only " +
    "flags a max below the kernel default 4 MiB; the tcp_buffer tuner sees the real pressure " +
    "during an observation window.",
  offline: true,
  evaluate(input) {
    const wmem = readNumeric(input, this.tunable, 3);
    if (!wmem.ok) return wmem.outcome;
    const [min, def, max] = wmem.value;
    const wmemDefault = stockTcpBufferMax(input.kernelRelease).wmem;
    if (max < wmemDefault) {
      return outcome(
        `max ${max} is below the kernel default ${wmemDefault}`,
        finding(this, "info", [min, def, max], [min, def, wmemDefault], [
          currentEvidence(
            `tcp_wmem max ${max} is below the kernel default ${wmemDefault}`,
          ),
        ]),
      );
    }
    return pass(`max ${max} >= ${wmemDefault}`);
  },
};

export const tcpMemPressure: CheckDefinition = {
  id: "BPFP-TCP-MEM-PRESSURE",
  title: "TCP memory pool (tcp_mem) reaches pressure",
  tunable: "net.ipv4.tcp_mem",
  rationale:
    "TcpExt TCPMemoryPressures counts entries into TCP memory pressure, TCPAbortOnMemory " +
    "connections killed for lack of memory; /proc/net/sockstat shows current use against " +
    "tcp_mem. Recommends what the tcp_buffer tuner would set (its own rule, tcpMemDecisions): " +
    "the pool grown toward the memory in use, within 1/16, 1/8 and 1/4 of the free buffer " +
    "pages (/proc/zoneinfo); an absurd max comes down to 1/4 of them.",
  offline: false,
  evaluate(input) {
    const mem = readNumeric(input, this.tunable, 3);
    if (!mem.ok) return mem.outcome;
    const pressures = readCounter(input, (s) => counter(s.netstat, "TcpExt", "TCPMemoryPressures"));
    const aborts = readCounter(input, (s) => counter(s.netstat, "TcpExt", "TCPAbortOnMemory"));
    const inUse = counter(input.counters?.sockstat ?? null, "TCP", "mem");
    if (pressures === null && aborts === null && inUse === undefined) {
      return skip(noCounterReason(input, "TcpExt TCPMemoryPressures"));
    }
    const [, pressure, max] = mem.value;
    const evidence = [];
    let severity: "warning" | "critical" | "info" | null = null;
    const reasons: string[] = [];
    const worst = (s: "info" | "warning" | "critical") => {
      const rank = { info: 0, warning: 1, critical: 2 };
      if (severity === null || rank[s] > rank[severity]) severity = s;
    };
    if (aborts !== null && aborts.sinceBoot > 0) {
      worst(severityFor("critical", aborts));
      reasons.push(
        `connections aborted for lack of memory ${describeCounter(aborts, input.windowSeconds)}`,
      );
      evidence.push(
        ...counterEvidence(
          "TCP connections aborted for lack of memory (TcpExt TCPAbortOnMemory)",
          aborts,
        ),
      );
    }
    if (pressures !== null && pressures.sinceBoot > 0) {
      worst(severityFor("warning", pressures));
      reasons.push(`entered memory pressure ${describeCounter(pressures, input.windowSeconds)}`);
      evidence.push(
        ...counterEvidence(
          "entries into TCP memory pressure (TcpExt TCPMemoryPressures)",
          pressures,
        ),
      );
    }
    if (inUse !== undefined && inUse >= pressure) {
      worst(inUse >= max ? "critical" : "warning");
      reasons.push(`${inUse} pages in use now, pressure threshold ${pressure}`);
      evidence.push(
        currentEvidence(
          `TCP uses ${inUse} pages now (sockstat); tcp_mem is ${mem.value.join(" ")}`,
        ),
      );
    }
    if (severity === null) {
      return pass(
        `no TCP memory pressure` +
          (inUse !== undefined ? `; ${inUse} of ${pressure} pages in use` : ""),
      );
    }
    const nfbp = input.counters!.freeBufferPages;
    if (nfbp === null) {
      // The finding stands without a number: no ceiling to grow within (the tuner, too, does
      // not grow tcp_mem then).
      evidence.push(currentEvidence("/proc/zoneinfo unreadable: no pool ceiling to grow within"));
      return outcome(reasons.join("; "), finding(this, severity, mem.value, mem.value, evidence));
    }
    // The tcp_buffer tuner's own rule decides, so audit and daemon cannot disagree. Counted
    // pressure or aborts stand for the kernel's pressure signal the tuner reacts to.
    const decisions = tcpMemDecisions({
      tcpMem: mem.value,
      allocatedPages: inUse ?? 0,
      underPressure: (pressures?.sinceBoot ?? 0) > 0 || (aborts?.sinceBoot ?? 0) > 0,
      freeBufferPages: nfbp,
      rate: DEFAULT_LEARNING_RATE,
    });
    const grown = tcpMemChange(decisions);
    if (grown === null) {
      return pass(
        `${reasons.join("; ")}; tcp_mem is already at the tuner's ceiling ` +
          `(max ${tcpMemCeilings(nfbp).max} pages, 1/4 of the free buffer pages): reduce memory ` +
          "use instead",
      );
    }
    evidence.push(currentEvidence(`tcp_buffer would log: ${grown.reason}`));
    return outcome(reasons.join("; "), finding(this, severity, mem.value, grown.to, evidence));
  },
};

/** The tcp_mem change among the tuner's decisions (it may also shrink per-socket maxima). */
function tcpMemChange(decisions: readonly Decision[]): { to: number[]; reason: string } | null {
  for (const d of decisions) {
    if (d.kind === "change" && d.proposal.sysctl === SYSCTL.mem) {
      return { to: [...d.proposal.to], reason: d.proposal.reason };
    }
  }
  return null;
}

export const tcpModerateRcvbuf: CheckDefinition = {
  id: "BPFP-TCP-MODERATE-RCVBUF",
  title: "TCP receive buffer auto-tuning is off",
  tunable: "net.ipv4.tcp_moderate_rcvbuf",
  rationale: "With tcp_moderate_rcvbuf=0 the kernel never grows receive buffers towards tcp_rmem " +
    "max, so raising the max has no effect (bpftune enables it whenever it tunes tcp_rmem).",
  offline: true,
  evaluate(input) {
    const v = readNumeric(input, this.tunable);
    if (!v.ok) return v.outcome;
    // The tcp_buffer tuner's own rule decides, so audit and daemon cannot disagree.
    const decision = moderateRcvbufDecision(v.value[0]);
    if (decision?.kind !== "change") return pass("receive buffer auto-tuning is on");
    return outcome(
      "tcp_moderate_rcvbuf is 0",
      finding(this, "warning", v.value, decision.proposal.to, [
        currentEvidence("tcp_moderate_rcvbuf is 0 (auto-tuning off)"),
      ]),
    );
  },
};

export const tcpSyncookies: CheckDefinition = {
  id: "BPFP-TCP-SYNCOOKIES",
  title: "SYNs dropped at a full listen queue with syncookies off",
  tunable: "net.ipv4.tcp_syncookies",
  rationale: "TcpExt TCPReqQFullDrop counts SYNs dropped because a listen queue was full and " +
    "syncookies could not be used. tcp_syncookies=1 (the kernel default) answers them with " +
    "cookies only when the queue overflows.",
  offline: true,
  evaluate(input) {
    const v = readNumeric(input, this.tunable);
    if (!v.ok) return v.outcome;
    const drops = readCounter(input, (s) => counter(s.netstat, "TcpExt", "TCPReqQFullDrop"));
    if (v.value[0] !== 0) {
      return pass(`syncookies are ${v.value[0] === 1 ? "on for overflows" : "always on"}`);
    }
    if (drops !== null && drops.sinceBoot > 0) {
      return outcome(
        `syncookies off and SYNs dropped ${describeCounter(drops, input.windowSeconds)}`,
        finding(this, severityFor("warning", drops), [0], [1], [
          ...counterEvidence("SYNs dropped at a full listen queue (TcpExt TCPReqQFullDrop)", drops),
          currentEvidence("tcp_syncookies is 0"),
        ]),
      );
    }
    return outcome(
      "syncookies are off (kernel default is 1)",
      finding(this, "info", [0], [1], [
        currentEvidence("tcp_syncookies is 0; the kernel default is 1"),
      ]),
    );
  },
};

export const tcpMaxSynBacklog: CheckDefinition = {
  id: "BPFP-TCP-MAX-SYN-BACKLOG",
  title: "SYNs dropped at the SYN queue while tcp_max_syn_backlog limits it (syncookies off)",
  tunable: "net.ipv4.tcp_max_syn_backlog",
  rationale: "With tcp_syncookies=0 the kernel drops SYNs from unknown peers once a listener " +
    "holds 3/4 of tcp_max_syn_backlog half-open. SYN-queue drops are TcpExt ListenDrops minus " +
    "ListenOverflows (the accept queue's). The tcp_buffer tuner's rule decides the new value " +
    "(memory assumed normal; the daemon also weighs memory and accepted connections).",
  offline: true,
  evaluate(input) {
    const v = readNumeric(input, this.tunable);
    if (!v.ok) return v.outcome;
    const cookies = readNumeric(input, "net.ipv4.tcp_syncookies");
    const syncookies = cookies.ok ? cookies.value[0] : null;
    if (syncookies !== null && syncookies !== 0) {
      return pass("syncookies are on: tcp_max_syn_backlog does not limit the SYN queue");
    }
    const drops = readCounter(
      input,
      (s) => synQueueDrops(synCounters(s.netstat, null)) ?? undefined,
    );
    if (drops === null) return skip(noCounterReason(input, "TcpExt ListenDrops"));
    if (drops.sinceBoot === 0) return pass("no SYNs dropped at the SYN queue");
    // The tuner's own rule decides, so audit and daemon cannot disagree.
    const decision = synFloodDecision({
      maxSynBacklog: v.value[0],
      syncookies,
      cookiesSinceOn: null,
      memory: "normal",
      acceptCorrelation: null,
      rate: 4,
    });
    if (decision?.kind !== "change") {
      return pass(`SYN-queue drops ${describeCounter(drops, input.windowSeconds)}, at the limit`);
    }
    return outcome(
      `syncookies off and SYNs dropped at the SYN queue ` +
        describeCounter(drops, input.windowSeconds),
      finding(this, severityFor("warning", drops), v.value, decision.proposal.to, [
        ...counterEvidence(
          "SYNs dropped at the SYN queue (TcpExt ListenDrops - ListenOverflows)",
          drops,
        ),
        currentEvidence(`tcp_max_syn_backlog is ${v.value[0]}, tcp_syncookies is 0`),
      ]),
    );
  },
};

export const tcpListenOverflow: CheckDefinition = {
  id: "BPFP-TCP-LISTEN-OVERFLOW",
  title: "Accept queues overflow while somaxconn caps listen() backlogs",
  tunable: "net.core.somaxconn",
  rationale:
    "TcpExt ListenOverflows counts connections dropped at a full accept queue. The queue " +
    "is min(listen() backlog, somaxconn); below the kernel default 4096 somaxconn is the likely cap.",
  offline: true,
  evaluate(input) {
    const v = readNumeric(input, this.tunable);
    if (!v.ok) return v.outcome;
    const somaxconn = v.value[0];
    const overflows = readCounter(input, (s) => counter(s.netstat, "TcpExt", "ListenOverflows"));
    const overflowed = overflows !== null && overflows.sinceBoot > 0;
    if (somaxconn >= SOMAXCONN_DEFAULT) {
      return pass(
        `somaxconn ${somaxconn} >= ${SOMAXCONN_DEFAULT}` +
          (overflowed
            ? `; accept-queue overflows ${
              describeCounter(overflows, input.windowSeconds)
            } come from ` +
              "applications' small listen() backlogs"
            : ""),
      );
    }
    if (overflowed) {
      return outcome(
        `accept-queue overflows ${
          describeCounter(overflows, input.windowSeconds)
        } with somaxconn ${somaxconn}`,
        finding(this, severityFor("warning", overflows), [somaxconn], [SOMAXCONN_DEFAULT], [
          ...counterEvidence(
            "connections dropped at a full accept queue (TcpExt ListenOverflows)",
            overflows,
          ),
          currentEvidence(`somaxconn is ${somaxconn}`),
        ]),
      );
    }
    return outcome(
      `somaxconn ${somaxconn} is below the kernel default ${SOMAXCONN_DEFAULT}`,
      finding(this, "info", [somaxconn], [SOMAXCONN_DEFAULT], [
        currentEvidence(`somaxconn ${somaxconn} is below the kernel default ${SOMAXCONN_DEFAULT}`),
      ]),
    );
  },
};
