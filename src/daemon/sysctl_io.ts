/** Live sysctl access by namespace key, as the daemon and rollback use it. */
import { DEFAULT_DOMAIN, type ValueDomain } from "../tuning/domain.ts";
import { inNetns, NetnsGoneError } from "../kernel/netns.ts";
import { readSysctl, SysctlError, writeSysctl } from "../kernel/sysctl.ts";

export interface SysctlIO {
  /** Live values, or null when the sysctl or its namespace does not exist (any more). */
  read(sysctl: string, netns: string): number[] | null;
  /** Writes within the sysctl's value domain; throws SysctlError or NetnsGoneError. */
  write(sysctl: string, netns: string, values: readonly number[]): void;
}

/** The live sysctls; writes are checked against `domainOf` (the tunables' declared domains). */
export function liveSysctls(
  domainOf: (sysctl: string) => ValueDomain = () => DEFAULT_DOMAIN,
): SysctlIO {
  return {
    read(sysctl, netns) {
      try {
        return inNetns(netns, () => readSysctl(sysctl));
      } catch (e) {
        if (e instanceof NetnsGoneError) return null;
        if (e instanceof SysctlError && e.kind === "missing") return null;
        throw e;
      }
    },
    write(sysctl, netns, values) {
      const { min, max } = domainOf(sysctl);
      // Read back in the same visit: a change is reported only once the namespace holds it.
      inNetns(netns, () => writeSysctl(sysctl, values, { min, max, verify: true }), {
        verifyCookie: true,
      });
    },
  };
}
