/**
 * Value domains and clamping: the hard limits a proposal may never cross. Each tunable declares
 * its own domain next to its declaration (TunableDecl.domain); this module holds the shapes and
 * the checks.
 */

import { INT_MAX } from "../kernel/sysctl.ts";

/** Largest value an `int` sysctl holds; bpftune grew tcp_rmem past it (issues #36, #93). */
export { INT_MAX };

export interface ValueDomain {
  /** Smallest acceptable written value (values below it mean something else to the kernel). */
  min: number;
  max: number;
}

/** A plain non-negative `int`: the domain of a tunable that declares none. */
export const DEFAULT_DOMAIN: ValueDomain = { min: 0, max: INT_MAX };

/** 0 or 1. */
export const BOOLEAN_DOMAIN: ValueDomain = { min: 0, max: 1 };

/** An `int` where 0 means something other than "a small value" (rejected, off, or starved). */
export const POSITIVE_INT_DOMAIN: ValueDomain = { min: 1, max: INT_MAX };

/**
 * net.ipv4.tcp_syncookies: 0 off, 1 cookies when a listener's SYN queue overflows, 2 always
 * (every handshake loses its TCP options' negotiation). bpfpilot itself writes only 0 and 1.
 */
export const SYNCOOKIES_DOMAIN: ValueDomain = { min: 0, max: 2 };

/**
 * net.ipv4.tcp_max_syn_backlog: with syncookies off, SYNs from unproven peers are dropped once a
 * listener holds 3/4 of it half-open. 0 would drop them all (not "a small queue"). The kernel
 * caps no further; the tuner's growth stops where 3/4 of it covers the listener's own backlog
 * (listen() capped by somaxconn), past which the backlog, not this sysctl, is the limit.
 */
export const SYN_BACKLOG_DOMAIN: ValueDomain = POSITIVE_INT_DOMAIN;

/** True when every value is an integer the domain accepts with its plain meaning. */
export function withinDomain(domain: ValueDomain, values: readonly number[]): boolean {
  const { min, max } = domain;
  return values.length > 0 && values.every((v) => Number.isSafeInteger(v) && v >= min && v <= max);
}

/** sysctl -> declared domain, over every tunable of the given tuners (DEFAULT_DOMAIN otherwise). */
export function domainLookup(
  tuners: readonly { tunables: readonly { sysctl: string; domain?: ValueDomain }[] }[],
): (sysctl: string) => ValueDomain {
  const domains = new Map<string, ValueDomain>();
  for (const t of tuners) {
    for (const x of t.tunables) {
      if (x.domain && !domains.has(x.sysctl)) domains.set(x.sysctl, x.domain);
    }
  }
  return (sysctl) => domains.get(sysctl) ?? DEFAULT_DOMAIN;
}

/** Grow towards `proposed` but never past `ceiling`, and never below `current`. */
export function clampGrowth(current: number, proposed: number, ceiling: number): number {
  return Math.max(current, Math.min(proposed, ceiling));
}

/** Shrink towards `proposed` but never under `floor`, and never above `current`. */
export function clampShrink(current: number, proposed: number, floor: number): number {
  return Math.min(current, Math.max(proposed, floor));
}
