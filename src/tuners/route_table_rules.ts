/**
 * The route_table tuner's decisions as pure functions: whether this kernel enforces
 * net.ipv6.route.max_size at all, and the growth of max_size when a namespace's IPv6 destination
 * cache nears it. No I/O.
 *
 * Scenario name, description and the "Due to dst table filling up" line keep bpftune's wording
 * (bpftune-behaviour.md §2.5). Fixed: growth has a memory-derived ceiling (bpftune had none);
 * on kernels that do not enforce max_size (6.3 and later) or where no hook attaches, the tuner
 * says so instead of failing to load (bpftune #81, #146) or loading and never firing.
 */
import { clampGrowth, INT_MAX, POSITIVE_INT_DOMAIN } from "../tuning/domain.ts";
import { grow, type LearningRate, nearlyFull } from "../tuning/learning_rate.ts";
import type { ScenarioDecl, TunableDecl } from "../tuning/tuner.ts";
import type { Decision } from "../tuning/proposal.ts";

export type { Decision };

export const ROUTE_TABLE_TUNER = "route_table";
export const MAX_SIZE = "net.ipv6.route.max_size";

/** Per namespace; absent when IPv6 is disabled. */
export const ROUTE_TABLE_TUNABLES: TunableDecl[] = [
  { sysctl: MAX_SIZE, values: 1, scope: "netns", optional: true, domain: POSITIVE_INT_DOMAIN },
];

export const ROUTE_TABLE_SCENARIOS: readonly ScenarioDecl[] = [
  {
    id: 0,
    name: "destination table nearly full",
    description: "destination table is nearly full, preventing new entries from being added.",
  },
];

/** Rough kernel memory per IPv6 destination cache entry (struct rt6_info and its slab slack). */
export const ROUTE_ENTRY_BYTES = 256;
/** The kernels that enforce max_size default it to 4096: the ceiling never goes below that. */
export const KERNEL_DEFAULT_MAX_SIZE = 4096;

/**
 * Why the tuner cannot do anything on this kernel, or null when it can. Linux 6.3 (commit
 * "ipv6: remove max_size check inline with ipv4") stopped limiting dst allocation by max_size;
 * stable kernels got it too (Debian's 5.10.0-32 and 6.1.0-56, say), where only the kernel's BTF
 * shows it: `dst_ops.gc` returns void, so dst_alloc() calls ip6_dst_gc but can no longer refuse an
 * entry. `gcCanRefuse` reads that (null: cannot tell, e.g. no BTF; the hooks decide then).
 */
export function unavailableReason(
  kernel: { major: number; minor: number },
  maxSizeExists: boolean,
  gcCanRefuse: () => boolean | null = () => null,
): string | null {
  if (kernel.major > 6 || (kernel.major === 6 && kernel.minor >= 3)) {
    return `${MAX_SIZE} is not enforced by this kernel (Linux 6.3 and later no longer limit ` +
      `the IPv6 destination cache by it), so there is nothing to tune`;
  }
  if (!maxSizeExists) return `${MAX_SIZE} does not exist (IPv6 is disabled on this kernel)`;
  if (gcCanRefuse() === false) {
    return `${MAX_SIZE} is not enforced by this kernel (its IPv6 dst garbage collector, ` +
      `dst_ops.gc, returns nothing, so no allocation is ever refused: Linux 6.3's removal of the ` +
      `max_size check was backported to it), so there is nothing to tune`;
  }
  return null;
}

/** 1/64 of the machine's memory at ROUTE_ENTRY_BYTES per entry, at least the kernel default. */
export function routeMemoryCeiling(memTotalBytes: number): number {
  if (!Number.isSafeInteger(memTotalBytes) || memTotalBytes <= 0) return KERNEL_DEFAULT_MAX_SIZE;
  const n = Math.floor(memTotalBytes / 64 / ROUTE_ENTRY_BYTES);
  return Math.min(INT_MAX, Math.max(KERNEL_DEFAULT_MAX_SIZE, n));
}

/**
 * The namespace's destination cache holds `entries` against the live max_size: grow it by the
 * learning rate (bpftune ROUTE_TABLE_FULL) within the ceiling, or report it at its ceiling.
 */
export function maxSizeDecision(input: {
  live: readonly number[];
  entries: number;
  rate: LearningRate;
  ceiling: number;
}): Decision | null {
  const max = input.live[0];
  if (input.live.length !== 1 || !Number.isSafeInteger(max) || max <= 0) return null;
  if (!Number.isSafeInteger(input.entries) || !nearlyFull(input.entries, max, input.rate)) {
    return null;
  }
  const ceiling = Math.min(input.ceiling, INT_MAX);
  if (max >= ceiling) return { kind: "at-ceiling", sysctl: MAX_SIZE, value: [max], ceiling };
  const to = clampGrowth(max, Math.max(grow(max, input.rate), max + 1), ceiling);
  return {
    kind: "change",
    proposal: {
      scenario: ROUTE_TABLE_SCENARIOS[0].name,
      sysctl: MAX_SIZE,
      from: [max],
      to: [to],
      reason: `Due to dst table filling up, change ${MAX_SIZE} from ${max} -> ${to}`,
    },
  };
}
