import assert from "node:assert/strict";
import type { CounterSnapshot } from "../../src/audit/counters.ts";
import type { CheckDefinition, CheckInput } from "../../src/audit/checks/input.ts";
import { STATIC_CHECKS } from "../../src/audit/checks/registry.ts";
import type { SoftnetRow } from "../../src/kernel/proc/softnet.ts";
import { type SysctlSource } from "../../src/audit/sysctl_source.ts";
import type { CheckStatus, Severity } from "../../src/audit/types.ts";
import { tcpMemDecisions } from "../../src/tuners/tcp_buffer_rules.ts";
import { DEFAULT_LEARNING_RATE } from "../../src/tuning/learning_rate.ts";

// ---- builders -------------------------------------------------------------------------------

type Table = Record<string, Record<string, number>>;

interface SnapSpec {
  snmp?: Table;
  netstat?: Table;
  snmp6?: Record<string, number>;
  softnet?: Partial<SoftnetRow>[];
  arp?: Record<string, number>;
  ndisc?: Record<string, number>;
  sockstat?: Table;
  memTotalBytes?: number;
  freeBufferPages?: number | null;
}

function table(t: Table | undefined) {
  if (t === undefined) return null;
  return new Map(Object.entries(t).map(([k, v]) => [k, new Map(Object.entries(v))]));
}

function statTable(t: Record<string, number> | undefined) {
  if (t === undefined) return null;
  // Two CPU rows: counters split over them, gauges ("entries") repeated, as the kernel prints.
  const columns = Object.keys(t);
  const row = (half: number) =>
    new Map(
      columns.map((c) => [c, c === "entries" ? t[c] : half === 0 ? t[c] - (t[c] >> 1) : t[c] >> 1]),
    );
  return { columns, rows: [row(0), row(1)] };
}

function snap(s: SnapSpec): CounterSnapshot {
  return {
    snmp: table(s.snmp),
    netstat: table(s.netstat),
    snmp6: s.snmp6 === undefined ? null : new Map(Object.entries(s.snmp6)),
    softnet: s.softnet?.map((r, i) => ({
      cpu: i,
      processed: r.processed ?? 0,
      dropped: r.dropped,
      timeSqueeze: r.timeSqueeze,
      flowLimitCount: r.flowLimitCount,
    })) ?? null,
    arpCache: statTable(s.arp),
    ndiscCache: statTable(s.ndisc),
    sockstat: table(s.sockstat),
    memTotalBytes: s.memTotalBytes ?? 16 * 2 ** 30,
    freeBufferPages: s.freeBufferPages === undefined ? 4_000_000 : s.freeBufferPages,
    pageSize: 4096,
    missing: new Map(),
  };
}

function sysctls(
  values: Record<string, string>,
  denied: string[] = [],
  origin: "live" | "file" = "live",
): SysctlSource {
  return {
    origin,
    get(name) {
      if (denied.includes(name)) return { kind: "denied" };
      const v = values[name];
      return v === undefined ? { kind: "missing" } : { kind: "value", value: v };
    },
  };
}

interface Case {
  name: string;
  check: CheckDefinition;
  sysctls: Record<string, string>;
  denied?: string[];
  /** undefined: offline (no counters at all). */
  counters?: SnapSpec;
  baseline?: SnapSpec;
  kernel?: string | null;
  root?: boolean;
  expect: {
    status: CheckStatus;
    severity?: Severity;
    recommended?: number[];
    current?: number[];
    reason?: RegExp;
  };
}

function byId(id: string): CheckDefinition {
  const c = STATIC_CHECKS.find((c) => c.id === id);
  if (!c) throw new Error(`no check ${id}`);
  return c;
}

function run(c: Case) {
  const input: CheckInput = {
    sysctls: sysctls(c.sysctls, c.denied, c.counters === undefined ? "file" : "live"),
    counters: c.counters === undefined ? null : snap(c.counters),
    baseline: c.baseline === undefined ? null : snap(c.baseline),
    windowSeconds: c.baseline === undefined ? 0 : 60,
    kernelRelease: c.kernel === undefined ? "6.18.44" : c.kernel,
    isRoot: c.root ?? true,
  };
  return c.check.evaluate(input);
}

// ---- cases ----------------------------------------------------------------------------------

const RMEM = byId("BPFP-TCP-RMEM-MAX");
const WMEM = byId("BPFP-TCP-WMEM-MAX");
const TCPMEM = byId("BPFP-TCP-MEM-PRESSURE");
const MODERATE = byId("BPFP-TCP-MODERATE-RCVBUF");
const COOKIES = byId("BPFP-TCP-SYNCOOKIES");
const LISTEN = byId("BPFP-TCP-LISTEN-OVERFLOW");
const SYNBACKLOG = byId("BPFP-TCP-MAX-SYN-BACKLOG");
const BACKLOG = byId("BPFP-NETDEV-BACKLOG-DROPS");
const SQUEEZE = byId("BPFP-NETDEV-BUDGET-SQUEEZE");
const HIGHORDER = byId("BPFP-NET-HIGH-ORDER-ALLOC");
const UDPRCV = byId("BPFP-UDP-RCVBUF-ERRORS");
const UDPMEM = byId("BPFP-UDP-MEM-PRESSURE");
const FRAG = byId("BPFP-IPFRAG-REASM-FAILS");
const FRAG6 = byId("BPFP-IP6FRAG-REASM-FAILS");
const NEIGH = byId("BPFP-NEIGH-TABLE-OVERFLOW");
const NEIGH6 = byId("BPFP-NEIGH6-TABLE-OVERFLOW");

const rmem = (max: number) => ({ "net.ipv4.tcp_rmem": `4096\t131072\t${max}` });
const tcpExt = (f: Record<string, number>) => ({ netstat: { TcpExt: f } });
const TCP_MEM = { "net.ipv4.tcp_mem": "100000 200000 300000" };

/** What the tcp_buffer tuner's rule sets tcp_mem to (the audit must agree with it). */
function tunerTcpMem(tcpMem: number[], allocatedPages: number, freeBufferPages: number) {
  const d = tcpMemDecisions({
    tcpMem,
    allocatedPages,
    underPressure: allocatedPages === 0 || allocatedPages < tcpMem[1],
    freeBufferPages,
    rate: DEFAULT_LEARNING_RATE,
  }).find((d) => d.kind === "change");
  if (d?.kind !== "change") throw new Error("the tuner would not change tcp_mem");
  return d.proposal.to;
}

const CASES: Case[] = [
  // tcp_rmem max
  {
    name: "rmem: default max, no drops",
    check: RMEM,
    kernel: "6.15.0", // rmem max default 6 MiB before 6.16
    sysctls: rmem(6291456),
    counters: tcpExt({ RcvPruned: 0, OfoPruned: 0, TCPRcvQDrop: 0 }),
    expect: { status: "pass", reason: /no receive-buffer drops/ },
  },
  {
    name: "rmem: below default offline is info",
    check: RMEM,
    kernel: "6.15.0", // rmem max default 6 MiB before 6.16
    sysctls: rmem(1048576),
    expect: {
      status: "finding",
      severity: "info",
      current: [4096, 131072, 1048576],
      recommended: [4096, 131072, 6291456],
    },
  },
  {
    name: "rmem: drops double the max",
    check: RMEM,
    kernel: "6.15.0", // rmem max default 6 MiB before 6.16
    sysctls: rmem(6291456),
    counters: tcpExt({ RcvPruned: 5, TCPRcvQDrop: 7 }),
    expect: {
      status: "finding",
      severity: "warning",
      recommended: [4096, 131072, 12582912],
      reason: /12 since boot/,
    },
  },
  {
    name: "rmem: drops with a small max raise at least to the default",
    check: RMEM,
    kernel: "6.15.0", // rmem max default 6 MiB before 6.16
    sysctls: rmem(1000000),
    counters: tcpExt({ RcvPruned: 1 }),
    expect: { status: "finding", severity: "warning", recommended: [4096, 131072, 6291456] },
  },
  {
    name: "rmem: drops only before the window are info",
    check: RMEM,
    kernel: "6.15.0", // rmem max default 6 MiB before 6.16
    sysctls: rmem(6291456),
    counters: tcpExt({ RcvPruned: 9 }),
    baseline: tcpExt({ RcvPruned: 9 }),
    expect: { status: "finding", severity: "info", reason: /0 in the last 60 s/ },
  },
  {
    name: "rmem: drops at the 256 MiB ceiling pass",
    check: RMEM,
    kernel: "6.15.0", // rmem max default 6 MiB before 6.16
    sysctls: rmem(268435456),
    counters: tcpExt({ RcvPruned: 3 }),
    expect: { status: "pass", reason: /ceiling/ },
  },
  {
    name: "rmem: ceiling caps the doubling",
    check: RMEM,
    kernel: "6.15.0", // rmem max default 6 MiB before 6.16
    sysctls: rmem(200000000),
    counters: tcpExt({ RcvPruned: 3 }),
    expect: { status: "finding", recommended: [4096, 131072, 268435456] },
  },
  {
    name: "rmem: missing sysctl skips",
    check: RMEM,
    kernel: "6.15.0", // rmem max default 6 MiB before 6.16
    sysctls: {},
    counters: {},
    expect: { status: "skip", reason: /does not exist on this kernel/ },
  },
  {
    name: "rmem: missing from a dump skips",
    check: RMEM,
    kernel: "6.15.0", // rmem max default 6 MiB before 6.16
    sysctls: {},
    expect: { status: "skip", reason: /not in the dump/ },
  },
  {
    name: "rmem: unreadable without root",
    check: RMEM,
    kernel: "6.15.0", // rmem max default 6 MiB before 6.16
    sysctls: rmem(1),
    denied: ["net.ipv4.tcp_rmem"],
    counters: {},
    root: false,
    expect: { status: "needs-root", reason: /needs root/ },
  },
  {
    name: "rmem: unreadable as root skips",
    check: RMEM,
    kernel: "6.15.0", // rmem max default 6 MiB before 6.16
    sysctls: rmem(1),
    denied: ["net.ipv4.tcp_rmem"],
    counters: {},
    root: true,
    expect: { status: "skip" },
  },
  {
    name: "rmem: two fields is malformed",
    check: RMEM,
    kernel: "6.15.0", // rmem max default 6 MiB before 6.16
    sysctls: { "net.ipv4.tcp_rmem": "4096 87380" },
    counters: {},
    expect: { status: "skip", reason: /not 3 integer/ },
  },
  {
    name: "rmem: garbage value",
    check: RMEM,
    kernel: "6.15.0", // rmem max default 6 MiB before 6.16
    sysctls: { "net.ipv4.tcp_rmem": "a b c" },
    counters: {},
    expect: { status: "skip" },
  },
  {
    name: "rmem: wrapped counter has no window count",
    check: RMEM,
    kernel: "6.15.0", // rmem max default 6 MiB before 6.16
    sysctls: rmem(6291456),
    counters: tcpExt({ RcvPruned: 2 }),
    baseline: tcpExt({ RcvPruned: 50 }),
    expect: {
      status: "finding",
      severity: "warning",
      reason: /^receive-buffer drops 2 since boot with/,
    },
  },

  {
    name: "rmem: since 6.16 the default is the tuner's 32 MiB",
    check: RMEM,
    sysctls: rmem(6291456),
    expect: {
      status: "finding",
      severity: "info",
      recommended: [4096, 131072, 33554432],
      reason: /below the kernel default 33554432/,
    },
  },
  {
    name: "rmem: an unknown kernel gets the newer default",
    check: RMEM,
    kernel: null,
    sysctls: rmem(33554432),
    expect: { status: "pass" },
  },
  // tcp_wmem max
  {
    name: "wmem: default passes",
    check: WMEM,
    sysctls: { "net.ipv4.tcp_wmem": "4096 16384 4194304" },
    expect: { status: "pass" },
  },
  {
    name: "wmem: below default is info",
    check: WMEM,
    sysctls: { "net.ipv4.tcp_wmem": "4096 16384 65536" },
    expect: { status: "finding", severity: "info", recommended: [4096, 16384, 4194304] },
  },

  // tcp_mem
  {
    name: "tcp_mem: offline skips",
    check: TCPMEM,
    sysctls: TCP_MEM,
    expect: { status: "skip", reason: /--from/ },
  },
  {
    name: "tcp_mem: quiet passes",
    check: TCPMEM,
    sysctls: TCP_MEM,
    counters: {
      ...tcpExt({ TCPMemoryPressures: 0, TCPAbortOnMemory: 0 }),
      sockstat: { TCP: { mem: 10 } },
    },
    expect: { status: "pass", reason: /10 of 200000 pages/ },
  },
  {
    name: "tcp_mem: pressure grows the pool as the tcp_buffer tuner would",
    check: TCPMEM,
    sysctls: TCP_MEM,
    counters: tcpExt({ TCPMemoryPressures: 4 }),
    expect: {
      status: "finding",
      severity: "warning",
      recommended: tunerTcpMem([100000, 200000, 300000], 0, 4_000_000),
      reason: /entered memory pressure/,
    },
  },
  {
    name: "tcp_mem: aborts are critical",
    check: TCPMEM,
    sysctls: TCP_MEM,
    counters: tcpExt({ TCPMemoryPressures: 1, TCPAbortOnMemory: 2 }),
    expect: { status: "finding", severity: "critical" },
  },
  {
    name: "tcp_mem: in pressure now",
    check: TCPMEM,
    sysctls: TCP_MEM,
    counters: { sockstat: { TCP: { mem: 200001 } } },
    expect: {
      status: "finding",
      severity: "warning",
      reason: /200001 pages in use/,
      recommended: tunerTcpMem([100000, 200000, 300000], 200001, 4_000_000),
    },
  },
  {
    name: "tcp_mem: over max now is critical, grown toward twice the use",
    check: TCPMEM,
    sysctls: TCP_MEM,
    counters: { sockstat: { TCP: { mem: 300000 } } },
    expect: {
      status: "finding",
      severity: "critical",
      recommended: tunerTcpMem([100000, 200000, 300000], 300000, 4_000_000),
    },
  },
  // 262144 free buffer pages: the tuner's caps 16384, 32768, 65536.
  {
    name: "tcp_mem: the free buffer pages bound the growth",
    check: TCPMEM,
    sysctls: { "net.ipv4.tcp_mem": "10000 30000 60000" },
    counters: { ...tcpExt({ TCPMemoryPressures: 1 }), freeBufferPages: 262144 },
    expect: { status: "finding", recommended: [12500, 32768, 65536] },
  },
  {
    name: "tcp_mem: an absurd max comes down to 1/4 of the free buffer pages",
    check: TCPMEM,
    sysctls: { "net.ipv4.tcp_mem": "10000 20000 9000000000" },
    counters: { sockstat: { TCP: { mem: 21000 } }, freeBufferPages: 262144 },
    expect: { status: "finding", recommended: tunerTcpMem([10000, 20000, 9e9], 21000, 262144) },
  },
  {
    name: "tcp_mem: already at the tuner's ceiling passes",
    check: TCPMEM,
    sysctls: { "net.ipv4.tcp_mem": "16384 32768 65536" },
    counters: { ...tcpExt({ TCPMemoryPressures: 1 }), freeBufferPages: 262144 },
    expect: { status: "pass", reason: /ceiling \(max 65536 pages/ },
  },
  {
    name: "tcp_mem: no zoneinfo, a finding without a number",
    check: TCPMEM,
    sysctls: TCP_MEM,
    counters: { ...tcpExt({ TCPMemoryPressures: 1 }), freeBufferPages: null },
    expect: { status: "finding", recommended: [100000, 200000, 300000] },
  },
  {
    name: "tcp_mem: old pressure only is info",
    check: TCPMEM,
    sysctls: TCP_MEM,
    counters: tcpExt({ TCPMemoryPressures: 3 }),
    baseline: tcpExt({ TCPMemoryPressures: 3 }),
    expect: { status: "finding", severity: "info" },
  },

  // tcp_moderate_rcvbuf
  {
    name: "moderate: on passes",
    check: MODERATE,
    sysctls: { "net.ipv4.tcp_moderate_rcvbuf": "1" },
    expect: { status: "pass" },
  },
  {
    name: "moderate: off is a warning",
    check: MODERATE,
    sysctls: { "net.ipv4.tcp_moderate_rcvbuf": "0" },
    expect: { status: "finding", severity: "warning", recommended: [1] },
  },

  // tcp_syncookies
  {
    name: "syncookies: on passes",
    check: COOKIES,
    sysctls: { "net.ipv4.tcp_syncookies": "1" },
    counters: tcpExt({ TCPReqQFullDrop: 10 }),
    expect: { status: "pass" },
  },
  {
    name: "syncookies: off without drops is info",
    check: COOKIES,
    sysctls: { "net.ipv4.tcp_syncookies": "0" },
    counters: tcpExt({ TCPReqQFullDrop: 0 }),
    expect: { status: "finding", severity: "info", recommended: [1] },
  },
  {
    name: "syncookies: off with drops is a warning",
    check: COOKIES,
    sysctls: { "net.ipv4.tcp_syncookies": "0" },
    counters: tcpExt({ TCPReqQFullDrop: 10 }),
    expect: { status: "finding", severity: "warning", reason: /10 since boot/ },
  },

  // tcp_max_syn_backlog: the tuner's synFloodDecision decides
  {
    name: "syn backlog: SYN-queue drops with cookies off recommend the tuner's growth",
    check: SYNBACKLOG,
    sysctls: { "net.ipv4.tcp_max_syn_backlog": "512", "net.ipv4.tcp_syncookies": "0" },
    counters: tcpExt({ ListenDrops: 30, ListenOverflows: 10 }),
    expect: { status: "finding", severity: "warning", recommended: [640], reason: /20 since boot/ },
  },
  {
    name: "syn backlog: accept-queue overflows alone are not SYN-queue drops",
    check: SYNBACKLOG,
    sysctls: { "net.ipv4.tcp_max_syn_backlog": "512", "net.ipv4.tcp_syncookies": "0" },
    counters: tcpExt({ ListenDrops: 10, ListenOverflows: 10 }),
    expect: { status: "pass" },
  },
  {
    name: "syn backlog: with syncookies on it does not limit",
    check: SYNBACKLOG,
    sysctls: { "net.ipv4.tcp_max_syn_backlog": "512", "net.ipv4.tcp_syncookies": "1" },
    counters: tcpExt({ ListenDrops: 30, ListenOverflows: 0 }),
    expect: { status: "pass" },
  },
  {
    name: "syn backlog: offline (no counters) is skipped",
    check: SYNBACKLOG,
    sysctls: { "net.ipv4.tcp_max_syn_backlog": "512", "net.ipv4.tcp_syncookies": "0" },
    expect: { status: "skip" },
  },

  // somaxconn
  {
    name: "listen: default with overflows blames the application",
    check: LISTEN,
    sysctls: { "net.core.somaxconn": "4096" },
    counters: tcpExt({ ListenOverflows: 7 }),
    expect: { status: "pass", reason: /listen\(\) backlogs/ },
  },
  {
    name: "listen: 128 with overflows is a warning",
    check: LISTEN,
    sysctls: { "net.core.somaxconn": "128" },
    counters: tcpExt({ ListenOverflows: 7 }),
    expect: { status: "finding", severity: "warning", recommended: [4096] },
  },
  {
    name: "listen: 128 offline is info",
    check: LISTEN,
    sysctls: { "net.core.somaxconn": "128" },
    expect: { status: "finding", severity: "info", recommended: [4096] },
  },

  // netdev_max_backlog
  {
    name: "backlog: no softnet skips",
    check: BACKLOG,
    sysctls: { "net.core.netdev_max_backlog": "1000" },
    counters: {},
    expect: { status: "skip", reason: /softnet_stat/ },
  },
  {
    name: "backlog: no drops passes",
    check: BACKLOG,
    sysctls: { "net.core.netdev_max_backlog": "1000" },
    counters: { softnet: [{ dropped: 0 }, { dropped: 0 }] },
    expect: { status: "pass" },
  },
  {
    name: "backlog: drops on any CPU double it",
    check: BACKLOG,
    sysctls: { "net.core.netdev_max_backlog": "1000" },
    counters: { softnet: [{ dropped: 0 }, { dropped: 12, flowLimitCount: 2 }] },
    expect: {
      status: "finding",
      severity: "warning",
      recommended: [2000],
      reason: /12 since boot/,
    },
  },
  {
    name: "backlog: at the ceiling passes",
    check: BACKLOG,
    sysctls: { "net.core.netdev_max_backlog": "262144" },
    counters: { softnet: [{ dropped: 5 }] },
    expect: { status: "pass", reason: /RPS/ },
  },

  // netdev_budget
  {
    name: "squeeze: none passes",
    check: SQUEEZE,
    sysctls: { "net.core.netdev_budget": "300" },
    counters: { softnet: [{ processed: 1000, timeSqueeze: 0 }] },
    expect: { status: "pass" },
  },
  {
    name: "squeeze: routine rates (< 0.1 %) pass",
    check: SQUEEZE,
    sysctls: { "net.core.netdev_budget": "300" },
    counters: {
      softnet: [{ processed: 100000, timeSqueeze: 3 }, { processed: 100000, timeSqueeze: 2 }],
    },
    expect: { status: "pass", reason: /too rare to matter/ },
  },
  {
    name: "squeeze: 0.1 % to 1 % is info",
    check: SQUEEZE,
    sysctls: { "net.core.netdev_budget": "300" },
    counters: {
      softnet: [{ processed: 100000, timeSqueeze: 300 }, { processed: 100000, timeSqueeze: 200 }],
    },
    expect: { status: "finding", severity: "info", recommended: [600] },
  },
  {
    name: "squeeze: >= 1 % is a warning",
    check: SQUEEZE,
    sysctls: { "net.core.netdev_budget": "300" },
    counters: { softnet: [{ processed: 1000, timeSqueeze: 20 }] },
    expect: { status: "finding", severity: "warning" },
  },
  {
    name: "squeeze: the window's rate decides",
    check: SQUEEZE,
    sysctls: { "net.core.netdev_budget": "300" },
    counters: { softnet: [{ processed: 1000100, timeSqueeze: 25 }] },
    baseline: { softnet: [{ processed: 1000000, timeSqueeze: 5 }] },
    expect: { status: "finding", severity: "warning", reason: /20 in the last 60 s/ },
  },
  {
    name: "squeeze: capped at 3000",
    check: SQUEEZE,
    sysctls: { "net.core.netdev_budget": "2000" },
    counters: { softnet: [{ processed: 10, timeSqueeze: 5 }] },
    expect: { status: "finding", recommended: [3000] },
  },

  // high_order_alloc_disable
  {
    name: "high-order: enabled passes",
    check: HIGHORDER,
    sysctls: { "net.core.high_order_alloc_disable": "0" },
    expect: { status: "pass" },
  },
  {
    name: "high-order: disabled on 6.18 is info",
    check: HIGHORDER,
    sysctls: { "net.core.high_order_alloc_disable": "1" },
    expect: { status: "finding", severity: "info", recommended: [0] },
  },
  {
    name: "high-order: disabled on 5.10 passes",
    check: HIGHORDER,
    sysctls: { "net.core.high_order_alloc_disable": "1" },
    kernel: "5.10.0-21-amd64",
    expect: { status: "pass" },
  },
  {
    name: "high-order: unknown kernel skips",
    check: HIGHORDER,
    sysctls: { "net.core.high_order_alloc_disable": "1" },
    kernel: null,
    expect: { status: "skip" },
  },

  // UDP
  {
    name: "udp rcvbuf: v4 and v6 errors add up",
    check: UDPRCV,
    sysctls: { "net.core.rmem_max": "212992" },
    counters: { snmp: { Udp: { RcvbufErrors: 3 } }, snmp6: { Udp6RcvbufErrors: 4 } },
    expect: {
      status: "finding",
      severity: "warning",
      // the udp_buffer tuner's growth: 7 drops, three quarter-steps (udpBufferTarget)
      recommended: [372736],
      reason: /7 since boot/,
    },
  },
  {
    name: "udp rcvbuf: one drop, one quarter-step",
    check: UDPRCV,
    sysctls: { "net.core.rmem_max": "212992" },
    counters: { snmp: { Udp: { RcvbufErrors: 1 } } },
    expect: { status: "finding", recommended: [266240] },
  },
  {
    name: "udp rcvbuf: no IPv6 still works",
    check: UDPRCV,
    sysctls: { "net.core.rmem_max": "212992" },
    counters: { snmp: { Udp: { RcvbufErrors: 0 } } },
    expect: { status: "pass" },
  },
  {
    name: "udp rcvbuf: offline skips",
    check: UDPRCV,
    sysctls: { "net.core.rmem_max": "212992" },
    expect: { status: "skip" },
  },
  {
    name: "udp mem: MemErrors are critical",
    check: UDPMEM,
    sysctls: { "net.ipv4.udp_mem": "100 200 400" },
    counters: { snmp: { Udp: { MemErrors: 1 } } },
    expect: { status: "finding", severity: "critical", recommended: [125, 250, 500] },
  },
  {
    name: "udp mem: the tuner's ceilings come from the free buffer pages",
    check: UDPMEM,
    sysctls: { "net.ipv4.udp_mem": "100 200 400" },
    counters: { snmp: { Udp: { MemErrors: 1 } }, freeBufferPages: 1600 },
    expect: { status: "pass", reason: /at the tuner's ceilings/ },
  },
  {
    name: "udp mem: no zoneinfo, a finding without a number",
    check: UDPMEM,
    sysctls: { "net.ipv4.udp_mem": "100 200 400" },
    counters: { snmp: { Udp: { MemErrors: 1 } }, freeBufferPages: null },
    expect: { status: "finding", severity: "critical", recommended: [100, 200, 400] },
  },
  {
    name: "udp mem: in pressure now",
    check: UDPMEM,
    sysctls: { "net.ipv4.udp_mem": "100 200 400" },
    counters: { snmp: { Udp: { MemErrors: 0 } }, sockstat: { UDP: { mem: 250 } } },
    expect: { status: "finding", severity: "warning" },
  },
  {
    name: "udp mem: quiet passes",
    check: UDPMEM,
    sysctls: { "net.ipv4.udp_mem": "100 200 400" },
    counters: { snmp: { Udp: { MemErrors: 0 } }, sockstat: { UDP: { mem: 3 } } },
    expect: { status: "pass" },
  },

  // IP fragments
  {
    name: "frag: timeouts alone pass",
    check: FRAG,
    sysctls: { "net.ipv4.ipfrag_high_thresh": "4194304" },
    counters: { snmp: { Ip: { ReasmFails: 5, ReasmTimeout: 5, ReasmReqds: 100 } } },
    expect: { status: "pass", reason: /beyond timeouts/ },
  },
  {
    name: "frag: memory failures grow high_thresh as the ip_frag tuner would (a quarter)",
    check: FRAG,
    sysctls: { "net.ipv4.ipfrag_high_thresh": "4194304" },
    counters: { snmp: { Ip: { ReasmFails: 15, ReasmTimeout: 5, ReasmReqds: 100 } } },
    expect: { status: "finding", severity: "warning", recommended: [5242880], reason: /10\.00 %/ },
  },
  {
    name: "frag: near the 64 MiB ceiling, up to it",
    check: FRAG,
    sysctls: { "net.ipv4.ipfrag_high_thresh": "60000000" },
    counters: { snmp: { Ip: { ReasmFails: 15, ReasmTimeout: 5, ReasmReqds: 100 } } },
    expect: { status: "finding", recommended: [67108864] },
  },
  {
    name: "frag: rare failures are info",
    check: FRAG,
    sysctls: { "net.ipv4.ipfrag_high_thresh": "4194304" },
    counters: { snmp: { Ip: { ReasmFails: 1, ReasmTimeout: 0, ReasmReqds: 100000 } } },
    expect: { status: "finding", severity: "info" },
  },
  {
    name: "frag6: snmp6 counters",
    check: FRAG6,
    sysctls: { "net.ipv6.ip6frag_high_thresh": "4194304" },
    counters: { snmp6: { Ip6ReasmFails: 50, Ip6ReasmTimeout: 0, Ip6ReasmReqds: 100 } },
    expect: { status: "finding", severity: "warning", recommended: [5242880] },
  },
  {
    name: "frag6: IPv6 disabled skips",
    check: FRAG6,
    sysctls: {},
    counters: {},
    expect: { status: "skip", reason: /does not exist/ },
  },
  {
    name: "frag6: no snmp6 skips",
    check: FRAG6,
    sysctls: { "net.ipv6.ip6frag_high_thresh": "4194304" },
    counters: {},
    expect: { status: "skip", reason: /not available/ },
  },

  // neighbour tables
  {
    name: "neigh: overflows double gc_thresh3",
    check: NEIGH,
    sysctls: { "net.ipv4.neigh.default.gc_thresh3": "1024" },
    counters: { arp: { entries: 1024, table_fulls: 9 } },
    expect: { status: "finding", severity: "warning", recommended: [2048], reason: /9 since boot/ },
  },
  {
    name: "neigh: nearly full is info",
    check: NEIGH,
    sysctls: { "net.ipv4.neigh.default.gc_thresh3": "1024" },
    counters: { arp: { entries: 800, table_fulls: 0 } },
    expect: { status: "finding", severity: "info", recommended: [2048] },
  },
  {
    name: "neigh: roomy passes",
    check: NEIGH,
    sysctls: { "net.ipv4.neigh.default.gc_thresh3": "1024" },
    counters: { arp: { entries: 2, table_fulls: 0 } },
    expect: { status: "pass", reason: /2 entries now/ },
  },
  {
    name: "neigh6: ndisc_cache missing skips",
    check: NEIGH6,
    sysctls: { "net.ipv6.neigh.default.gc_thresh3": "1024" },
    counters: {},
    expect: { status: "skip" },
  },
  {
    name: "neigh6: overflows",
    check: NEIGH6,
    sysctls: { "net.ipv6.neigh.default.gc_thresh3": "1024" },
    counters: { ndisc: { entries: 1000, table_fulls: 2 } },
    expect: { status: "finding", severity: "warning" },
  },
];

for (const c of CASES) {
  Deno.test(`check ${c.check.id}: ${c.name}`, () => {
    const out = run(c);
    assert.equal(out.status, c.expect.status, out.reason);
    if (c.expect.reason) assert.match(out.reason, c.expect.reason);
    if (out.status !== "finding") return;
    const f = out.finding;
    assert.equal(f.id, c.check.id);
    assert.equal(f.tunable, c.check.tunable);
    assert.equal(f.netns, "host");
    assert.deepEqual(f.sources, ["static"]);
    assert.ok(f.evidence.length > 0, "a finding carries evidence");
    if (c.expect.severity) assert.equal(f.severity, c.expect.severity);
    if (c.expect.recommended) assert.deepEqual(f.recommended, c.expect.recommended);
    if (c.expect.current) assert.deepEqual(f.current, c.expect.current);
    assert.ok(Array.isArray(f.recommended), "a sysctl finding's value is numeric");
    const value = f.recommended.join(" ");
    assert.equal(
      f.sysctlW,
      f.recommended.length > 1
        ? `sysctl -w ${f.tunable}="${value}"`
        : `sysctl -w ${f.tunable}=${value}`,
    );
  });
}

Deno.test("every check has a unique stable ID, a tunable and a rationale", () => {
  const ids = STATIC_CHECKS.map((c) => c.id);
  assert.equal(new Set(ids).size, ids.length);
  for (const c of STATIC_CHECKS) {
    assert.match(c.id, /^BPFP-[A-Z0-9]+(-[A-Z0-9]+)+$/);
    assert.match(c.tunable, /^net\./);
    assert.ok(c.rationale.length > 40, c.id);
  }
  // Every check is exercised by the table above.
  const tested = new Set(CASES.map((c) => c.check.id));
  assert.deepEqual(ids.filter((id) => !tested.has(id)), []);
});

Deno.test("counter evidence records since-boot and window counts", () => {
  const out = run({
    name: "",
    check: BACKLOG,
    sysctls: { "net.core.netdev_max_backlog": "1000" },
    counters: { softnet: [{ dropped: 30 }] },
    baseline: { softnet: [{ dropped: 10 }] },
    expect: { status: "finding" },
  });
  assert.equal(out.status, "finding");
  if (out.status !== "finding") return;
  const counts = out.finding.evidence.filter((e) => e.count !== null).map((
    e,
  ) => [e.period, e.count]);
  assert.deepEqual(counts, [["since-boot", 30], ["window", 20]]);
});
