/**
 * Turns the tuners' advise-mode proposals into findings and merges them with the static
 * findings, so that one (ID, netns) appears once however many sources reported it.
 */
import type { AdviceProposal } from "./advise.ts";
import type { SysctlSource } from "./sysctl_source.ts";
import { type Evidence, type Finding, SEVERITIES, type Severity } from "./types.ts";
import { parseNumbers, sysctlWLine } from "./values.ts";

/** Sysctl → the ID of the static check about the same limit, so both sources share one ID. */
const ADVICE_IDS: Readonly<Record<string, string>> = {
  "net.ipv4.tcp_rmem": "BPFP-TCP-RMEM-MAX",
  "net.ipv4.tcp_wmem": "BPFP-TCP-WMEM-MAX",
  "net.ipv4.tcp_mem": "BPFP-TCP-MEM-PRESSURE",
  "net.ipv4.tcp_moderate_rcvbuf": "BPFP-TCP-MODERATE-RCVBUF",
  "net.ipv4.tcp_syncookies": "BPFP-TCP-SYNCOOKIES",
  "net.core.somaxconn": "BPFP-TCP-LISTEN-OVERFLOW",
  "net.ipv4.tcp_max_syn_backlog": "BPFP-TCP-MAX-SYN-BACKLOG",
  "net.core.netdev_max_backlog": "BPFP-NETDEV-BACKLOG-DROPS",
  "net.core.netdev_budget": "BPFP-NETDEV-BUDGET-SQUEEZE",
  "net.core.netdev_budget_usecs": "BPFP-NETDEV-BUDGET-USECS",
  "net.core.flow_limit_cpu_bitmap": "BPFP-NETDEV-FLOW-LIMIT",
  "net.core.high_order_alloc_disable": "BPFP-NET-HIGH-ORDER-ALLOC",
  "net.core.rmem_max": "BPFP-UDP-RCVBUF-ERRORS",
  "net.core.rmem_default": "BPFP-UDP-RMEM-DEFAULT",
  "net.ipv4.udp_mem": "BPFP-UDP-MEM-PRESSURE",
  "net.ipv4.ipfrag_high_thresh": "BPFP-IPFRAG-REASM-FAILS",
  "net.ipv6.ip6frag_high_thresh": "BPFP-IP6FRAG-REASM-FAILS",
  "net.ipv4.neigh.default.gc_thresh3": "BPFP-NEIGH-TABLE-OVERFLOW",
  "net.ipv6.neigh.default.gc_thresh3": "BPFP-NEIGH6-TABLE-OVERFLOW",
  "net.ipv6.route.max_size": "BPFP-IPV6-ROUTE-MAX-SIZE",
};

/** The finding ID for a proposal's sysctl; sysctls without a named check get a derived, equally stable ID. */
export function adviceId(sysctl: string): string {
  return ADVICE_IDS[sysctl] ?? `BPFP-TUNER-${sysctl.toUpperCase().replace(/[^A-Z0-9]+/g, "-")}`;
}

/** One finding per (ID, netns, remote path): the key that identifies it in a report. */
export function findingKey(f: Pick<Finding, "id" | "netns" | "remote">): string {
  return `${f.id}\u0000${f.netns}\u0000${f.remote ?? ""}`;
}

function direction(from: readonly number[], to: readonly number[]): "raise" | "lower" | "none" {
  if (to.some((v, i) => v > (from[i] ?? -Infinity))) return "raise";
  if (to.some((v, i) => v < (from[i] ?? Infinity))) return "lower";
  return "none";
}

function elementwise(
  a: readonly number[],
  b: readonly number[],
  pick: (x: number, y: number) => number,
): number[] {
  return a.map((v, i) => (i < b.length ? pick(v, b[i]) : v));
}

export function maxSeverity(a: Severity, b: Severity): Severity {
  return SEVERITIES.indexOf(a) <= SEVERITIES.indexOf(b) ? a : b;
}

function proposalSeverity(p: AdviceProposal): Severity {
  return /exhaustion/i.test(p.scenario) ? "critical" : "warning";
}

/**
 * Groups proposals by (ID, netns). Repeated proposals (bpftune issue #155) collapse into one
 * finding whose evidence counts them. Raises keep the highest target; lowers the lowest; if a
 * tuner both raised and lowered (latency correlation), the last proposal wins.
 */
export function adviceFindings(
  proposals: readonly AdviceProposal[],
  sysctls: SysctlSource | null,
): Finding[] {
  const groups = new Map<string, AdviceProposal[]>();
  for (const p of proposals) {
    if (direction(p.from, p.to) === "none" || p.to.length === 0) continue;
    const key = findingKey({ id: adviceId(p.sysctl), netns: p.netns });
    groups.set(key, [...(groups.get(key) ?? []), p]);
  }
  const out: Finding[] = [];
  for (const group of groups.values()) {
    const first = group[0];
    const last = group[group.length - 1];
    const dirs = new Set(group.map((p) => direction(p.from, p.to)));
    let recommended: number[];
    if (dirs.size > 1) recommended = [...last.to];
    else if (dirs.has("raise")) {
      recommended = group.reduce((acc, p) => elementwise(acc, p.to, Math.max), [...first.to]);
    } else recommended = group.reduce((acc, p) => elementwise(acc, p.to, Math.min), [...first.to]);
    const evidence = new Map<string, Evidence>();
    for (const p of group) {
      const observed = `${p.tuner}: ${p.reason}`;
      const seen = evidence.get(observed);
      evidence.set(observed, { observed, count: (seen?.count ?? 0) + p.count, period: "window" });
    }
    if (dirs.size > 1) {
      evidence.set("mixed", {
        observed:
          `${first.tuner} both raised and lowered ${first.sysctl}; the last proposal is recommended`,
        count: null,
        period: "window",
      });
    }
    out.push({
      id: adviceId(first.sysctl),
      severity: group.map(proposalSeverity).reduce(maxSeverity),
      title: `${first.tuner}: ${first.scenario}`,
      tunable: first.sysctl,
      netns: first.netns,
      current: liveValue(sysctls, first.sysctl, first.netns, first.from.length) ?? [...first.from],
      recommended,
      evidence: [...evidence.values()],
      sysctlW: inNetnsLine(first.netns, sysctlWLine(first.sysctl, recommended)),
      sources: ["observed"],
    });
  }
  return out;
}

/**
 * The command for a finding's namespace: as is on the host, through `ip netns exec` for a named
 * namespace, and for an unnamed one (only its inode is known) with a note saying where.
 */
export function inNetnsLine(netns: string, line: string): string {
  if (netns === "host") return line;
  if (/^ns:\d+$/.test(netns)) return `${line}   # inside network namespace inode ${netns.slice(3)}`;
  return `ip netns exec ${netns} ${line}`;
}

/** The value in the kernel now; only readable for the host namespace. */
function liveValue(
  sysctls: SysctlSource | null,
  name: string,
  netns: string,
  fields: number,
): number[] | null {
  if (sysctls === null || netns !== "host") return null;
  const got = sysctls.get(name);
  if (got.kind !== "value") return null;
  const values = parseNumbers(got.value, name);
  return values !== null && values.length === fields ? values : null;
}

/**
 * Merges static and observed findings with the same (ID, netns): raises keep the higher
 * recommendation, an observed lowering wins over a static raise (it is live evidence), severity
 * is the worse one, evidence is kept from both.
 */
export function mergeFindings(
  staticFindings: readonly Finding[],
  observed: readonly Finding[],
): Finding[] {
  const merged = new Map<string, Finding>();
  for (const f of staticFindings) merged.set(findingKey(f), f);
  for (const o of observed) {
    const key = findingKey(o);
    const s = merged.get(key);
    if (
      s === undefined || typeof s.recommended === "string" ||
      typeof o.recommended === "string" || typeof s.current === "string" ||
      s.recommended.length !== o.recommended.length
    ) {
      // Other shapes, or text (a per-connection choice: no order to merge by): the first finding
      // stands, with the evidence of both.
      merged.set(key, s === undefined ? o : { ...s, evidence: [...s.evidence, ...o.evidence] });
      continue;
    }
    const recommended = direction(s.current, o.recommended) === "lower"
      ? [...o.recommended]
      : elementwise(s.recommended, o.recommended, Math.max);
    merged.set(key, {
      ...s,
      severity: maxSeverity(s.severity, o.severity),
      recommended,
      evidence: [...s.evidence, ...o.evidence],
      sysctlW: sysctlWLine(s.tunable, recommended),
      sources: ["static", "observed"],
    });
  }
  return sortFindings([...merged.values()]);
}

/** Worst first, then by ID and netns: a stable order for every output format. */
export function sortFindings(findings: Finding[]): Finding[] {
  return findings.sort((a, b) =>
    SEVERITIES.indexOf(a.severity) - SEVERITIES.indexOf(b.severity) ||
    compareText(a.id, b.id) || compareText(a.netns, b.netns) ||
    compareText(a.remote ?? "", b.remote ?? "")
  );
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
