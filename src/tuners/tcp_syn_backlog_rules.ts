/**
 * The SYN-backlog part of the tcp_buffer tuner (bpftune §2.1.7) as pure functions: a listener's
 * SYN queue overflowed in a namespace; its live tcp_max_syn_backlog and tcp_syncookies, TCP's
 * memory state and the namespace's counters in, a decision out.
 *
 * What the kernel does (net/ipv4/tcp_input.c tcp_conn_request): with tcp_syncookies=0, SYNs from
 * peers it has no metrics for are dropped once the listener holds 3/4 of tcp_max_syn_backlog
 * half-open requests, and every SYN once it holds the listen backlog. With syncookies on, neither
 * drop happens (a cookie answers instead) and tcp_max_syn_backlog has no effect.
 *
 * bpftune's bugs fixed: its "established" count compared the sockops op with BPF_TCP_ESTABLISHED
 * (1) where the kernel passes BPF_SOCK_OPS_{ACTIVE,PASSIVE}_ESTABLISHED_CB (4/5), so the count
 * stayed 0 and every flood looked like an attack after ten samples; here accepted connections are
 * Tcp PassiveOpens (incremented for each child socket a completed handshake creates, the same event
 * as PASSIVE_ESTABLISHED_CB) and the correlation decays. It grew the backlog with syncookies on
 * (where it does nothing) and past the listen backlog (ditto); it judged cookies ineffective on
 * counters summed since boot.
 */
import { clampGrowth, clampShrink, INT_MAX } from "../tuning/domain.ts";
import { grow, type LearningRate, shrink } from "../tuning/learning_rate.ts";
import type { CounterTable } from "../kernel/proc/snmp.ts";
import {
  change,
  type Decision,
  isCount,
  type MemoryState,
  SCENARIO,
  SYSCTL,
  TCP_SYN_BACKLOG_MIN,
} from "./tcp_buffer_rules.ts";

/** bpftune TCP_SYNCOOKIES_BAD_COUNT: this many failed cookies and no good one = ineffective. */
export const TCP_SYNCOOKIES_BAD_COUNT = 1024;
/** bpftune CORR_THRESHOLD, used for the SYN-flood / accepted-connections correlation. */
export const ACCEPT_CORRELATION_THRESHOLD = 0.75;

/** The namespace's counters that tell SYN-queue trouble (cumulative; null where unreadable). */
export interface SynCounters {
  /** TcpExt ListenDrops: every SYN or handshake-completing ACK a listener dropped. */
  listenDrops: number | null;
  /** TcpExt ListenOverflows: of those, at a full accept queue (not the SYN queue). */
  listenOverflows: number | null;
  /** TcpExt TCPReqQFullDrop: SYNs dropped at a full SYN queue with cookies off. */
  reqQFullDrop: number | null;
  /** TcpExt TCPReqQFullDoCookies: SYNs answered with a cookie at a full SYN queue. */
  reqQFullDoCookies: number | null;
  /** TcpExt SyncookiesRecv / SyncookiesFailed: cookie answers that validated / did not. */
  syncookiesRecv: number | null;
  syncookiesFailed: number | null;
  /** Tcp PassiveOpens: connections accepted (handshakes completed on a listener). */
  passiveOpens: number | null;
}

export const NO_SYN_COUNTERS: SynCounters = {
  listenDrops: null,
  listenOverflows: null,
  reqQFullDrop: null,
  reqQFullDoCookies: null,
  syncookiesRecv: null,
  syncookiesFailed: null,
  passiveOpens: null,
};

/** The SYN counters from a namespace's /proc/net/netstat and /proc/net/snmp tables. */
export function synCounters(netstat: CounterTable | null, snmp: CounterTable | null): SynCounters {
  const ext = netstat?.get("TcpExt");
  const get = (k: string) => ext?.get(k) ?? null;
  return {
    listenDrops: get("ListenDrops"),
    listenOverflows: get("ListenOverflows"),
    reqQFullDrop: get("TCPReqQFullDrop"),
    reqQFullDoCookies: get("TCPReqQFullDoCookies"),
    syncookiesRecv: get("SyncookiesRecv"),
    syncookiesFailed: get("SyncookiesFailed"),
    passiveOpens: snmp?.get("Tcp")?.get("PassiveOpens") ?? null,
  };
}

/** What each counter rose by from `before` to `after` (null where either is unknown). */
export function synCountersSince(before: SynCounters, after: SynCounters): SynCounters {
  const out = { ...NO_SYN_COUNTERS };
  for (const k of Object.keys(out) as (keyof SynCounters)[]) {
    const a = before[k], b = after[k];
    out[k] = a === null || b === null ? null : Math.max(0, b - a);
  }
  return out;
}

/**
 * SYNs dropped at the SYN queue: every listen drop that was not at a full accept queue (those
 * are ListenOverflows). Includes the drops of the 3/4-of-tcp_max_syn_backlog rule, which no
 * counter of their own tells.
 */
export function synQueueDrops(c: SynCounters): number | null {
  if (c.listenDrops === null) return null;
  return Math.max(0, c.listenDrops - (c.listenOverflows ?? 0));
}

/**
 * Syncookies are ineffective when, counted since bpfpilot turned them on, at least
 * TCP_SYNCOOKIES_BAD_COUNT cookie answers failed validation (SyncookiesFailed) and not one
 * validated (SyncookiesRecv): the ACKs coming back are not answers to our cookies, so cookies
 * only cost the TCP options of legitimate handshakes.
 */
export function syncookiesIneffective(sinceOn: SynCounters): boolean {
  const { syncookiesFailed: failed, syncookiesRecv: recv } = sinceOn;
  return isCount(failed) && failed >= TCP_SYNCOOKIES_BAD_COUNT && recv === 0;
}

/**
 * Largest useful tcp_max_syn_backlog for a listener with `listenBacklog`: once 3/4 of it covers
 * the listen backlog, the listen backlog drops SYNs first and a larger sysctl changes nothing.
 */
export function synBacklogCeiling(listenBacklog: number | null): number {
  if (!isCount(listenBacklog) || listenBacklog === 0) return INT_MAX;
  return Math.min(INT_MAX, Math.ceil((listenBacklog * 4) / 3));
}

export interface SynFloodInput {
  /** Live tcp_max_syn_backlog of the listener's netns. */
  maxSynBacklog: number;
  /** Live tcp_syncookies (0 off, 1 on overflow, 2 always); null when the sysctl is absent. */
  syncookies: number | null;
  /** What the counters rose by since bpfpilot turned cookies on here; null if it did not. */
  cookiesSinceOn: SynCounters | null;
  memory: MemoryState;
  /** Correlation of SYN floods with accepted connections; null with too few samples. */
  acceptCorrelation: number | null;
  /** The overflowing listener's backlog (listen() capped by somaxconn); null when unknown. */
  listenBacklog?: number | null;
  rate: LearningRate;
  threshold?: number;
}

/**
 * A listener overflowed its SYN queue. In bpftune's order: turn off syncookies we enabled once
 * they prove ineffective; in low memory enable syncookies rather than grow the backlog (and never
 * grow it); with cookies on, the backlog does nothing: leave it; if floods do not go with accepted
 * connections (an attack) shrink the backlog, not below 128; else grow it, up to the listen
 * backlog's 4/3.
 */
export function synFloodDecision(input: SynFloodInput): Decision | null {
  const { maxSynBacklog: backlog, syncookies: cookies, rate } = input;
  if (!isCount(backlog) || backlog === 0) return null;

  const sinceOn = input.cookiesSinceOn;
  if (isCount(cookies) && cookies > 0 && sinceOn && syncookiesIneffective(sinceOn)) {
    return change(
      SCENARIO.syncookiesDisable,
      SYSCTL.syncookies,
      [cookies],
      [0],
      `Due to receiving ${sinceOn.syncookiesFailed} invalid syncookies and no valid ones, ` +
        `disable '${SYSCTL.syncookies}' as they are ineffective under current network conditions`,
    );
  }

  if (input.memory !== "normal") {
    if (cookies !== 0) return null;
    return change(
      SCENARIO.syncookiesEnable,
      SYSCTL.syncookies,
      [0],
      [1],
      `Due to low memory conditions under SYN flood, enable '${SYSCTL.syncookies}' rather ` +
        `than increasing max SYN backlog`,
    );
  }
  if (cookies !== null && cookies !== 0) return null;

  const threshold = input.threshold ?? ACCEPT_CORRELATION_THRESHOLD;
  if (input.acceptCorrelation !== null && input.acceptCorrelation < threshold) {
    const target = clampShrink(backlog, shrink(backlog, rate), TCP_SYN_BACKLOG_MIN);
    return change(
      SCENARIO.synBacklogDecrease,
      SYSCTL.maxSynBacklog,
      [backlog],
      [target],
      `Due to SYN flood not correlated with TCP connection acceptance - suggesting an attack - ` +
        `reduce '${SYSCTL.maxSynBacklog}' from ${backlog} -> ${target}`,
    );
  }

  const ceiling = synBacklogCeiling(input.listenBacklog ?? null);
  if (backlog >= ceiling) {
    return { kind: "at-ceiling", sysctl: SYSCTL.maxSynBacklog, value: [backlog], ceiling };
  }
  return change(
    SCENARIO.synBacklogIncrease,
    SYSCTL.maxSynBacklog,
    [backlog],
    [clampGrowth(backlog, grow(backlog, rate), ceiling)],
    `Due to SYN flood events on a system with TCP syncookies disabled and no low memory issues, ` +
      `increase '${SYSCTL.maxSynBacklog}'`,
  );
}
