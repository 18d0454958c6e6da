/**
 * Boot-time values are the administrator's: a sysctl a sysctl.d file sets is not tuned (or, when
 * the operator allows it, only raised above the pinned value, never lowered below it). sysctl.d
 * is applied to the host's network namespace at boot, so per-namespace sysctls elsewhere are free.
 */
import { GLOBAL_NETNS } from "../kernel/netns.ts";
import {
  type BootSysctls,
  pinnedBy,
  pinnedNumbers,
  type PinnedValue,
  readBootSysctls,
} from "../kernel/sysctl_d.ts";
import type { Proposal } from "../tuning/proposal.ts";

export interface PinnedPolicyOptions {
  /** Let bpfpilot raise a pinned value (never below it). */
  tuneAbove: boolean;
  scopeOf: (sysctl: string) => "netns" | "global";
}

export class PinnedPolicy {
  #boot: BootSysctls;

  constructor(private readonly opts: PinnedPolicyOptions, readonly root = "") {
    this.#boot = readBootSysctls(root);
  }

  /** Re-reads the files (SIGHUP); returns the problems found. */
  reload(): string[] {
    this.#boot = readBootSysctls(this.root);
    return this.#boot.problems;
  }

  get problems(): string[] {
    return this.#boot.problems;
  }

  get files(): string[] {
    return this.#boot.files;
  }

  /** The file that pins `sysctl` in `netns`, or null. */
  pin(sysctl: string, netns: string): PinnedValue | null {
    if (netns !== GLOBAL_NETNS && this.opts.scopeOf(sysctl) !== "global") return null;
    return pinnedBy(this.#boot, sysctl);
  }

  /** Whether bpfpilot may change it at all (for `query tunables`). */
  frozen(sysctl: string, netns: string): boolean {
    return this.pin(sysctl, netns) !== null && !this.opts.tuneAbove;
  }

  /** Why `p` must not be applied, or null when it may. */
  refusal(p: Proposal): string | null {
    const pin = this.pin(p.sysctl, p.netns);
    if (!pin) return null;
    const where = `${pin.file}:${pin.line} (${pin.value})`;
    if (!this.opts.tuneAbove) {
      return `pinned at boot by ${where}; --tune-above-pinned lets bpfpilot raise it`;
    }
    const floor = pinnedNumbers(pin);
    if (floor && floor.length === p.to.length && p.to.every((v, i) => v >= floor[i])) return null;
    return `the change would go below the value pinned at boot by ${where}`;
  }
}
