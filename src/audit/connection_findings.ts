/**
 * Connection tuners' per-path advice (tcp_conn: which congestion control a path's connections
 * would get) as findings: one per path, its value a text (the algorithm), no `sysctl -w` line,
 * since no sysctl sets a choice per path. `--apply` leaves them: the daemon makes them.
 */
import type { ConnectionAdvice } from "../tuning/tuner.ts";
import type { Finding, Severity } from "./types.ts";

interface ConnectionFindingKind {
  id: string;
  severity: Severity;
  title: string;
  /** For --list-checks. */
  rationale: string;
}

/** Finding IDs per tcp_conn rule. Stable: add new ones, never rename or reuse. */
export const CONNECTION_FINDINGS: Readonly<Record<string, ConnectionFindingKind>> = {
  "lossy-path": {
    id: "BPFP-TCP-CONN-LOSSY-PATH",
    severity: "warning",
    title: "Connections on this path lose more than 1/64 of their segments; bbr copes better",
    rationale: "During the window the tcp_conn tuner (advise mode) saw connections to this " +
      "remote address retransmit more than 1/64 of the segments they sent, the path's sampled " +
      "connections taken together too: its loss rule would switch them to bbr. Shows the " +
      "path's current algorithm, retransmission ratio and the learned choice for new connections.",
  },
  "learned-choice": {
    id: "BPFP-TCP-CONN-LEARNED-CHOICE",
    severity: "info",
    title: "tcp_conn would choose another congestion control for this path",
    rationale: "The tcp_conn tuner's learner (bpftune's epsilon-greedy cost of RTT inflation " +
      "plus delivery-rate shortfall) prefers another algorithm than the one the path's " +
      "connections ran, after at least 4 connections. dctcp and other datacenter-only " +
      "algorithms are never recommended for a path not known to be ECN-clean.",
  },
};

/** At most this many path findings per report (the busiest paths): label cardinality stays bounded. */
export const MAX_PATH_FINDINGS = 32;

export const CONNECTION_APPLY_HINT =
  "a per-connection choice: no sysctl sets it per path, so --apply leaves it. Run the daemon " +
  "with the tcp_conn tuner (bpfpilot run --allow tcp_conn -c <cgroup>) to make it for new " +
  "connections; setting net.ipv4.tcp_congestion_control would change every path of the " +
  "namespace and take tcp_conn over there";

export interface ConnectionFindings {
  findings: Finding[];
  /** Paths with advice left out beyond MAX_PATH_FINDINGS. */
  omitted: number;
}

/** One finding per path, the busiest MAX_PATH_FINDINGS paths first. */
export function connectionFindings(advice: readonly ConnectionAdvice[]): ConnectionFindings {
  const known = advice.filter((a) => CONNECTION_FINDINGS[a.rule] !== undefined)
    .sort((a, b) => b.connections - a.connections);
  const kept = known.slice(0, MAX_PATH_FINDINGS);
  return {
    findings: kept.map((a) => {
      const kind = CONNECTION_FINDINGS[a.rule];
      return {
        id: kind.id,
        severity: kind.severity,
        title: kind.title,
        tunable: a.setting,
        netns: a.netns,
        remote: a.remote,
        current: a.current,
        recommended: a.recommended,
        evidence: [
          { observed: `tcp_conn: ${a.reason}`, count: null, period: "window" },
          ...a.observations.map((observed) => ({
            observed,
            count: null,
            period: "window" as const,
          })),
        ],
        sysctlW: null,
        applyHint: CONNECTION_APPLY_HINT,
        sources: ["observed"],
      };
    }),
    omitted: known.length - kept.length,
  };
}
