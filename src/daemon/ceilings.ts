/**
 * Explicit ceilings and floors for tuned values: the hard limits a proposal may never cross,
 * the memory-derived bounds bpftune uses (a quarter of the free-buffer pages for tcp_mem), and
 * the kernel's own boot-time defaults (the floor for any shrinking).
 */

import { readFileSync } from "node:fs";
import { INT_MAX } from "../kernel/sysctl.ts";

/** Largest value an `int` sysctl holds; bpftune grew tcp_rmem past it (issues #36, #93). */
export { INT_MAX };

interface ValueDomain {
  /** Smallest acceptable written value (values below it mean something else to the kernel). */
  min: number;
  max: number;
}

/**
 * What each tuned sysctl accepts. Minimums of 1 are where writing 0 would not mean "a small
 * value": tcp_rmem/tcp_wmem reject 0 (extra1 = 1), tcp_mem 0 starves TCP entirely, a 0 SYN
 * backlog is silently raised by the kernel.
 */
const DOMAINS: Readonly<Record<string, ValueDomain>> = {
  "net.ipv4.tcp_rmem": { min: 1, max: INT_MAX },
  "net.ipv4.tcp_wmem": { min: 1, max: INT_MAX },
  // An unsigned long vector in pages: safe-integer bound is ours, not the kernel's.
  "net.ipv4.tcp_mem": { min: 1, max: Number.MAX_SAFE_INTEGER },
  "net.ipv4.tcp_max_syn_backlog": { min: 1, max: INT_MAX },
  "net.ipv4.tcp_max_orphans": { min: 1, max: INT_MAX },
  "net.ipv4.tcp_moderate_rcvbuf": { min: 0, max: 1 },
  "net.ipv4.tcp_no_metrics_save": { min: 0, max: 1 },
  "net.ipv4.tcp_no_ssthresh_metrics_save": { min: 0, max: 1 },
  "net.core.high_order_alloc_disable": { min: 0, max: 1 },
  "net.ipv4.tcp_syncookies": { min: 0, max: 2 },
};

/** For sysctls not listed: a plain non-negative `int`. */
const DEFAULT_DOMAIN: ValueDomain = { min: 0, max: INT_MAX };

export function valueDomain(sysctl: string): ValueDomain {
  return DOMAINS[sysctl] ?? DEFAULT_DOMAIN;
}

/** True when every value is an integer the sysctl accepts with its plain meaning. */
export function withinDomain(sysctl: string, values: readonly number[]): boolean {
  const { min, max } = valueDomain(sysctl);
  return values.length > 0 && values.every((v) => Number.isSafeInteger(v) && v >= min && v <= max);
}

/** Grow towards `proposed` but never past `ceiling`, and never below `current`. */
export function clampGrowth(current: number, proposed: number, ceiling: number): number {
  return Math.max(current, Math.min(proposed, ceiling));
}

/** Shrink towards `proposed` but never under `floor`, and never above `current`. */
export function clampShrink(current: number, proposed: number, floor: number): number {
  return Math.min(current, Math.max(proposed, floor));
}

/** Bounds for growing tcp_mem, in pages (bpftune: min < 1/16, pressure < 1/8, max <= 1/4). */
export interface TcpMemCeilings {
  min: number;
  pressure: number;
  max: number;
}

export function tcpMemCeilings(freeBufferPages: number): TcpMemCeilings {
  return {
    min: Math.floor(freeBufferPages / 16),
    pressure: Math.floor(freeBufferPages / 8),
    max: Math.floor(freeBufferPages / 4),
  };
}

/** tcp_mem as the kernel sets it at boot (tcp_init_mem): ~4.69 %, 6.25 %, 9.38 % of nfbp. */
export function kernelDefaultTcpMem(freeBufferPages: number): [number, number, number] {
  const limit = Math.max(Math.floor(freeBufferPages / 16), 128);
  const min = Math.floor(limit / 4) * 3;
  return [min, limit, min * 2];
}

export interface KernelVersion {
  major: number;
  minor: number;
}

/**
 * tcp_wmem[2] / tcp_rmem[2] as the kernel sets them at boot (tcp_init): at most 1/128 of the
 * free-buffer pages in bytes, capped at 4 MiB (wmem) and 6 MiB (rmem; 32 MiB since Linux 6.16).
 * Without a version the newer, higher rmem default is assumed so shrinking stays conservative.
 */
export function kernelDefaultTcpBufferMax(
  freeBufferPages: number,
  pageSize: number,
  kernel?: KernelVersion,
): { wmem: number; rmem: number } {
  const limit = Math.floor((freeBufferPages * pageSize) / 128);
  const newRmem = !kernel || kernel.major > 6 || (kernel.major === 6 && kernel.minor >= 16);
  const rmemCap = (newRmem ? 32 : 6) * 1024 * 1024;
  return {
    wmem: Math.max(64 * 1024, Math.min(4 * 1024 * 1024, limit)),
    rmem: Math.max(131072, Math.min(rmemCap, limit)),
  };
}

/**
 * A per-socket ceiling for tcp_rmem[2]/tcp_wmem[2]: one socket may use at most an eighth of
 * TCP's hard memory limit (tcp_mem[2], pages), and never more than INT_MAX. bpftune had only
 * INT_MAX, so a busy link drove the max to 2 GiB (issue #93).
 */
export function socketBufferCeiling(tcpMemMaxPages: number, pageSize: number): number {
  return Math.min(INT_MAX, Math.floor((tcpMemMaxPages * pageSize) / 8));
}

/** One zone of /proc/zoneinfo, the fields the free-buffer estimate needs. */
export interface Zone {
  node: number;
  name: string;
  managed: number;
  high: number;
}

/** Zones at or below ZONE_NORMAL: the ones the kernel's nr_free_buffer_pages() counts. */
const BUFFER_ZONES = new Set(["DMA", "DMA32", "Normal"]);

/**
 * The kernel's nr_free_buffer_pages(): per zone up to Normal, managed pages above the high
 * watermark. tcp_mem's boot defaults derive from it. bpftune counts only "Normal" zones (or
 * "DMA32" when there are none), which ignores the up-to-4 GiB DMA32 zone on larger machines;
 * we count what the kernel counts.
 */
export function freeBufferPages(zones: readonly Zone[]): number {
  let pages = 0;
  for (const zone of zones) {
    if (BUFFER_ZONES.has(zone.name) && zone.managed > zone.high) pages += zone.managed - zone.high;
  }
  return pages;
}

export class ZoneinfoError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ZoneinfoError";
  }
}

/**
 * Parses /proc/zoneinfo. Only the zone-level "high" and "managed" lines count; the per-CPU
 * "high:" lines under "pagesets" have a colon and are skipped.
 */
export function parseZoneinfo(text: string): Zone[] {
  const zones: Zone[] = [];
  let current: { node: number; name: string; managed?: number; high?: number } | undefined;
  const finish = () => {
    if (current?.managed !== undefined && current.high !== undefined) {
      zones.push({
        node: current.node,
        name: current.name,
        managed: current.managed,
        high: current.high,
      });
    }
  };
  for (const line of text.split("\n")) {
    const header = /^Node\s+(\d+),\s+zone\s+(\S+)\s*$/.exec(line);
    if (header) {
      finish();
      current = { node: Number(header[1]), name: header[2] };
      continue;
    }
    if (!current) continue;
    const field = /^\s+(managed|high)\s+(\d+)\s*$/.exec(line);
    if (field) current[field[1] as "managed" | "high"] = Number(field[2]);
  }
  finish();
  return zones;
}

/**
 * Reads the free-buffer page count from /proc/zoneinfo. Throws ZoneinfoError (cause and fix in
 * the message) when the file is unreadable or holds no usable zone; callers then leave tcp_mem
 * alone rather than guess a ceiling.
 */
export function readFreeBufferPages(path = "/proc/zoneinfo"): number {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    const code = (e as { code?: string }).code;
    throw new ZoneinfoError(
      `cannot read ${path} (${code ?? "unknown error"}) to size the tcp_mem ceiling: ` +
        `mount procfs at /proc (in a container, do not mask ${path}); tcp_mem will not be grown`,
    );
  }
  const pages = freeBufferPages(parseZoneinfo(text));
  if (pages <= 0) {
    throw new ZoneinfoError(
      `${path} lists no DMA, DMA32 or Normal zone with managed pages above the high watermark, ` +
        `so the tcp_mem ceiling cannot be computed: check that ${path} is the kernel's ` +
        `(not an emulated procfs); tcp_mem will not be grown`,
    );
  }
  return pages;
}
