/**
 * The neigh_table tuner's decisions as pure functions: live gc_thresh1..3 and observations in,
 * proposed changes (or "at its ceiling", or nothing) out. No I/O, no clock (times are passed in).
 *
 * Scenario names and descriptions, the ceiling from the device's address prefixes and the
 * "updated thresholds" / "reduced thresholds" / "can no longer update thresholds" lines keep
 * bpftune's meaning (bpftune-behaviour.md §2.4). Fixed: the thresholds are three sysctl writes,
 * each journalled and rolled back (bpftune wrote them over netlink and restored gc_thresh3 only);
 * growth has a memory-derived ceiling where the prefixes give none (any IPv6 /64); shrinking
 * waits until the table *stays* nearly empty and never goes below the values found at start
 * (bpftune shrank on every removal, down to the kernel defaults, over an administrator's
 * settings); thresh1 <= thresh2 <= thresh3 is kept.
 */
import { clampGrowth, clampShrink, INT_MAX, POSITIVE_INT_DOMAIN } from "../tuning/domain.ts";
import {
  grow,
  type LearningRate,
  nearlyEmpty,
  nearlyFull,
  shrink,
} from "../tuning/learning_rate.ts";
import type { ScenarioDecl, TunableDecl } from "../tuning/tuner.ts";
import type { AddrPrefix } from "../kernel/proc/addr_prefixes.ts";
import type { Decision } from "../tuning/proposal.ts";

export type { Decision };

export const NEIGH_TABLE_TUNER = "neigh_table";

export type NeighFamily = "ipv4" | "ipv6";

export interface FamilyInfo {
  family: NeighFamily;
  /** AF_INET / AF_INET6, as the BPF event carries it. */
  af: number;
  /** The kernel's table name (tbl->id), as bpftune logs it. */
  table: string;
  /** /proc/net/stat/<file>: the table's statistics (entries, table_fulls). */
  statFile: string;
  thresh: readonly [string, string, string];
}

function family(f: NeighFamily, af: number, table: string): FamilyInfo {
  const p = `net.${f}.neigh.default.`;
  return {
    family: f,
    af,
    table,
    statFile: `/proc/net/stat/${table}`,
    thresh: [`${p}gc_thresh1`, `${p}gc_thresh2`, `${p}gc_thresh3`],
  };
}

export const FAMILIES: Readonly<Record<NeighFamily, FamilyInfo>> = {
  ipv4: family("ipv4", 2, "arp_cache"),
  ipv6: family("ipv6", 10, "ndisc_cache"),
};

export function familyOfAf(af: number): FamilyInfo | null {
  return af === 2 ? FAMILIES.ipv4 : af === 10 ? FAMILIES.ipv6 : null;
}

/**
 * bpftune's ten tunables (§2.11: an admin write of any of them stops the tuner). gc_interval and
 * the thresholds exist only in the host namespace (the tables are global); gc_stale_time is per
 * namespace. IPv6's are optional: absent when IPv6 is disabled (bpftune #13 failed the tuner).
 */
export const NEIGH_TABLE_TUNABLES: TunableDecl[] = (["ipv4", "ipv6"] as const).flatMap((f) => {
  const p = `net.${f}.neigh.default.`;
  const optional = f === "ipv6" ? { optional: true } : {};
  return [
    { sysctl: `${p}gc_interval`, values: 1, scope: "global" as const, ...optional },
    { sysctl: `${p}gc_stale_time`, values: 1, scope: "netns" as const, ...optional },
    ...[1, 2, 3].map((i) => ({
      sysctl: `${p}gc_thresh${i}`,
      values: 1,
      scope: "global" as const,
      domain: POSITIVE_INT_DOMAIN, // 0 would refuse every entry (thresh3) or run gc constantly
      ...optional,
    })),
  ];
});

export const SCENARIO = { nearlyFull: 0, grownExcessively: 1, nearlyEmpty: 2 } as const;

/** bpftune's scenario table. */
export const NEIGH_TABLE_SCENARIOS: readonly ScenarioDecl[] = [
  {
    id: 0,
    name: "neighbour table nearly full",
    description: "neighbour table is nearly full, preventing new entries from being added.",
  },
  {
    id: 1,
    name: "neighbour table grown excessively",
    description: "neighbour table has grown beyond what the device's address prefixes justify.",
  },
  {
    id: 2,
    name: "neighbour table nearly empty",
    description: "neighbour table is nearly empty, consuming unnecessary memory.",
  },
];

/** The kernel's defaults (neigh_table_init): thresh1 128, thresh2 512, thresh3 1024. */
export const KERNEL_DEFAULT_THRESH: readonly [number, number, number] = [128, 512, 1024];

/** Rough kernel memory per neighbour entry (struct neighbour, hash slot, cached header). */
export const NEIGH_ENTRY_BYTES = 512;

/** How long the table must stay nearly empty before thresholds shrink. */
export const NEARLY_EMPTY_SUSTAIN_MS = 30_000;

export type Thresholds = readonly [number, number, number];

function isCount(v: unknown): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
}

export function isThresholds(v: readonly number[] | null | undefined): v is Thresholds {
  return !!v && v.length === 3 && v.every(isCount) && v[2] > 0;
}

/**
 * bpftune's ceiling from the device's prefixes: each address with h host bits allows
 * max(2^h, 256) * 4 neighbours, h >= 64 (an IPv6 /64) allows any number; summed, capped at
 * INT_MAX. One /24 gives 1024. Null when the device has no address of the family.
 */
export function prefixCeiling(prefixes: readonly AddrPrefix[]): number | null {
  if (prefixes.length === 0) return null;
  let sum = 0;
  for (const p of prefixes) {
    const hostBits = p.addrLen - p.prefixLen;
    if (hostBits >= 64) return INT_MAX;
    sum += Math.max(2 ** Math.max(hostBits, 0), 256) * 4;
    if (sum >= INT_MAX) return INT_MAX;
  }
  return sum;
}

/**
 * The bound bpftune lacks: the table may not grow past what 1/64 of the machine's memory holds
 * at NEIGH_ENTRY_BYTES per entry (8 GiB: 262144), nor below the kernel's default.
 */
export function memoryCeiling(memTotalBytes: number): number {
  if (!isCount(memTotalBytes) || memTotalBytes === 0) return KERNEL_DEFAULT_THRESH[2];
  const n = Math.floor(memTotalBytes / 64 / NEIGH_ENTRY_BYTES);
  return Math.min(INT_MAX, Math.max(KERNEL_DEFAULT_THRESH[2], n));
}

function thresholdLines(from: Thresholds, to: Thresholds): string {
  return `thresh1: ${from[0]} to ${to[0]}, thresh2: ${from[1]} to ${to[1]}, ` +
    `thresh3: ${from[2]} to ${to[2]}`;
}

/** One change per threshold that moves; the last one carries bpftune's summary line. */
function changes(
  fam: FamilyInfo,
  scenario: number,
  why: string,
  from: Thresholds,
  to: Thresholds,
  summary: string,
): Decision[] {
  const out: Decision[] = [];
  const moving = [0, 1, 2].filter((i) => from[i] !== to[i]);
  for (const i of moving) {
    const sysctl = fam.thresh[i];
    const last = i === moving.at(-1);
    out.push({
      kind: "change",
      proposal: {
        scenario: NEIGH_TABLE_SCENARIOS[scenario].name,
        sysctl,
        from: [from[i]],
        to: [to[i]],
        reason: last ? summary : `Due to ${why} change ${sysctl} from (${from[i]}) -> (${to[i]})`,
      },
    });
  }
  return out;
}

export interface GrowInput {
  fam: FamilyInfo;
  /** Live gc_thresh1..3. */
  live: Thresholds;
  /** The table's entries that count towards gc_thresh3 (gc_entries), from the event. */
  entries: number;
  /** The kernel refused a new entry: the table is full whatever the numbers say. */
  allocFailed: boolean;
  rate: LearningRate;
  /** Device the pressure came from ('' when the hook cannot tell) and its ifindex. */
  dev: string;
  ifindex: number;
  /** The device's prefixes of this family (empty when unknown). */
  prefixes: readonly AddrPrefix[];
  /** memoryCeiling() of this machine. */
  memoryCeiling: number;
  /** Where the pressure came from, e.g. "non-global ns (inode 4026532)"; null: the host. */
  fromNetns: string | null;
}

export interface GrowResult {
  decisions: Decision[];
  /** bpftune's scenario-1 line when the thresholds cannot grow any further. */
  excessive: string | null;
  /** The ceiling applied (prefix- or memory-derived). */
  ceiling: number;
}

/**
 * The table is nearly full (bpftune NEIGH_TABLE_FULL): grow all three thresholds by the learning
 * rate, thresh3 within the ceiling and thresh1 <= thresh2 <= thresh3.
 */
export function growDecisions(input: GrowInput): GrowResult {
  const { fam, live, rate } = input;
  const byPrefix = prefixCeiling(input.prefixes);
  const ceiling = Math.min(byPrefix ?? INT_MAX, input.memoryCeiling, INT_MAX);
  const none = { decisions: [], excessive: null, ceiling };
  if (!isThresholds(live) || !isCount(input.entries)) return none;
  if (!input.allocFailed && !nearlyFull(input.entries, live[2], rate)) return none;
  const devText = input.dev ? `'${input.dev}' (ifindex ${input.ifindex})` : "(unknown)";
  if (live[2] >= ceiling) {
    const basis = byPrefix !== null && byPrefix <= input.memoryCeiling
      ? `based on the prefixlens of the ${input.prefixes.length} configured addresses`
      : `based on 1/64 of this machine's memory at ${NEIGH_ENTRY_BYTES} bytes per entry`;
    return {
      decisions: [{ kind: "at-ceiling", sysctl: fam.thresh[2], value: [live[2]], ceiling }],
      excessive: `can no longer update thresholds for gc_thresh[1-3] for table '${fam.table}' ` +
        `for device ${devText} due to excessive size of table (we computed a reasonable max ` +
        `of ${ceiling} ${basis}). Current thresh1: ${live[0]} , thresh2: ${live[1]} , ` +
        `thresh3: ${live[2]}.`,
      ceiling,
    };
  }
  const t3 = clampGrowth(live[2], Math.max(grow(live[2], rate), live[2] + 1), ceiling);
  const t2 = Math.min(clampGrowth(live[1], grow(live[1], rate), t3), t3);
  const t1 = Math.min(clampGrowth(live[0], grow(live[0], rate), t2), t2);
  const to: Thresholds = [t1, t2, t3];
  const origin = input.fromNetns
    ? `; the table is host-wide, the pressure came from ${input.fromNetns}`
    : "";
  return {
    decisions: changes(
      fam,
      SCENARIO.nearlyFull,
      "neighbour table nearly full",
      live,
      to,
      `updated thresholds for ${fam.table} table, dev ${devText} ${thresholdLines(live, to)}` +
        origin,
    ),
    excessive: null,
    ceiling,
  };
}

/**
 * The table stayed nearly empty (bpftune NEIGH_TABLE_EMPTY): shrink the thresholds by the
 * learning rate, never below `floor` (the values found at start), keeping their order. Nothing
 * when thresh3 is already at its floor or the table is not nearly empty any more.
 */
export function shrinkDecisions(input: {
  fam: FamilyInfo;
  live: Thresholds;
  /** Entries now (/proc/net/stat/<table> entries). */
  entries: number;
  floor: Thresholds;
  rate: LearningRate;
}): Decision[] {
  const { fam, live, floor, rate } = input;
  if (!isThresholds(live) || !isThresholds(floor) || !isCount(input.entries)) return [];
  if (live[2] <= floor[2] || !nearlyEmpty(input.entries, live[2], rate)) return [];
  const t3 = clampShrink(live[2], shrink(live[2], rate), floor[2]);
  const t2 = Math.min(clampShrink(live[1], shrink(live[1], rate), floor[1]), t3);
  const t1 = Math.min(clampShrink(live[0], shrink(live[0], rate), floor[0]), t2);
  const to: Thresholds = [t1, t2, t3];
  return changes(
    fam,
    SCENARIO.nearlyEmpty,
    "neighbour table nearly empty",
    live,
    to,
    `reduced thresholds for ${fam.table} table, ${thresholdLines(live, to)}`,
  );
}

/**
 * When a nearly-empty table has stayed so long enough to shrink: removal events start a streak,
 * a nearly-full event or a tick that finds the table fuller ends it.
 */
export class NearlyEmptyStreak {
  #since: number | null = null;
  constructor(private readonly sustainMs = NEARLY_EMPTY_SUSTAIN_MS) {}

  /** A removal found the table nearly empty. */
  empty(now: number): void {
    this.#since ??= now;
  }

  /** The table filled up (or is no longer nearly empty): start over. */
  reset(): void {
    this.#since = null;
  }

  get active(): boolean {
    return this.#since !== null;
  }

  /** True when the streak has lasted `sustainMs` and `entries` is still nearly empty. */
  due(now: number, entries: number, thresh3: number, rate: LearningRate): boolean {
    if (this.#since === null) return false;
    if (!isCount(entries) || !nearlyEmpty(entries, thresh3, rate)) {
      this.#since = null;
      return false;
    }
    return now - this.#since >= this.sustainMs;
  }
}
