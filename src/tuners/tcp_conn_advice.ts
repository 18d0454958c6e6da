/**
 * What the tcp_conn tuner would do on one path, from its own rules, for `audit`: the loss rule
 * (a connection retransmitting more than 1/64 of the segments it sent is switched to bbr; the path
 * is called lossy when its sampled connections together do, and some were switched) and the
 * learner's choice (lowest learned cost among the path's candidates; datacenter-only algorithms
 * only on an ECN-clean path). Pure: a learner's path record in, advice (or nothing to say) out.
 */
import { LOSS_SHIFT, type PathRecord } from "./tcp_conn_learner.ts";

/** bpftune's name for the per-connection pseudo tunable (tcp_conn_tuner id 0). */
export const CONGESTION_SETTING = "net.persock.tcp.congestion_control";

export type PathRule = "lossy-path" | "learned-choice";

export interface PathAdvice {
  rule: PathRule;
  current: string;
  recommended: string;
  reason: string;
  observations: string[];
}

/** The algorithm most of the path's sampled connections ran (ties: first seen); null if none. */
export function mostRun(path: PathRecord): string | null {
  let best: string | null = null, most = 0;
  for (const [alg, n] of path.ran) {
    if (n > most) [best, most] = [alg, n];
  }
  return best;
}

/** Retransmissions per segment sent over the path's sampled connections (0 when none sent). */
export function retransRatio(path: PathRecord): number {
  return path.segsOut > 0 ? path.retrans / path.segsOut : 0;
}

function percent(ratio: number): string {
  return `${(ratio * 100).toFixed(2)} %`;
}

/**
 * The tuner's choice for the path's connections when it differs from what they ran; null when it
 * would leave them as they are (or has too few connections to choose). `usable` is the learner's
 * candidate list for the path (CongestionLearner.candidatesFor): a recommendation is always one
 * of them, so a path not known to be ECN-clean never gets dctcp.
 */
export function pathAdvice(path: PathRecord, usable: readonly string[]): PathAdvice | null {
  const current = mostRun(path);
  if (current === null) return null;
  const ran = [...path.ran].map(([alg, n]) => `${n} ${alg}`).join(", ");
  const observations = [
    `${path.instances} connections to ${path.addr}, ${path.samples} sampled (they ran ${ran})`,
    `retransmitted ${percent(retransRatio(path))} of the segments sent (${path.retrans} of ` +
    `${path.segsOut}); the loss rule switches a connection past 1/${2 ** LOSS_SHIFT} ` +
    `(${percent(2 ** -LOSS_SHIFT)}) once it has sent ${2 ** LOSS_SHIFT} segments`,
  ];
  const learned = path.choice !== null && usable.includes(path.choice) ? path.choice : null;
  // The path itself must lose more than the line: a "clean" path's few connections that met a
  // burst of drops (a full backlog queue under load) were switched, rightly, but the path is not
  // lossy (seen: 2 of 220 sampled, 0.11 % of its segments).
  const lossy = path.forced > 0 && retransRatio(path) > 2 ** -LOSS_SHIFT;
  if (lossy && current !== "bbr" && usable.includes("bbr")) {
    return {
      rule: "lossy-path",
      current,
      recommended: "bbr",
      reason: `${path.forced} of ${path.samples} sampled connections retransmitted more than ` +
        `1/${2 ** LOSS_SHIFT} of the segments they sent: would switch them to bbr` +
        (learned === null ? "" : `, and would choose ${learned} for new connections (learned)`),
      observations,
    };
  }
  if (learned === null || learned === current) return null;
  return {
    rule: "learned-choice",
    current,
    recommended: learned,
    reason: `would choose ${learned} after ${path.instances} connections: the lowest ` +
      `learned cost (RTT inflation plus delivery-rate shortfall) of ${usable.join(", ")}`,
    observations,
  };
}
