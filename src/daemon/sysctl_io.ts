/** Live sysctl access by namespace key, as the daemon and rollback use it. */
import { DEFAULT_DOMAIN, type ValueDomain } from "../tuning/domain.ts";
import { inNetns, NetnsGoneError } from "../kernel/netns.ts";
import { readSysctl, SysctlError, writeSysctl } from "../kernel/sysctl.ts";

export interface SysctlIO {
  /** Live values, or null when the sysctl or its namespace does not exist (any more). */
  read(sysctl: string, netns: string): number[] | null;
  /**
   * Several live values of one namespace, read in a single visit of it (each null when absent;
   * all null when the namespace is gone). Optional: readTogether() falls back to read().
   */
  readMany?(sysctls: readonly string[], netns: string): (number[] | null)[];
  /** Writes within the sysctl's value domain; throws SysctlError or NetnsGoneError. */
  write(sysctl: string, netns: string, values: readonly number[]): void;
}

/** The live sysctls; writes are checked against `domainOf` (the tunables' declared domains). */
export function liveSysctls(
  domainOf: (sysctl: string) => ValueDomain = () => DEFAULT_DOMAIN,
): SysctlIO {
  const readMany = (sysctls: readonly string[], netns: string) => {
    try {
      return inNetns(netns, () => sysctls.map(readOrNull));
    } catch (e) {
      if (e instanceof NetnsGoneError) return sysctls.map(() => null);
      throw e;
    }
  };
  return {
    read: (sysctl, netns) => readMany([sysctl], netns)[0],
    readMany,
    write(sysctl, netns, values) {
      const { min, max } = domainOf(sysctl);
      // Read back in the same visit: a change is reported only once the namespace holds it.
      inNetns(netns, () => writeSysctl(sysctl, values, { min, max, verify: true }), {
        verifyCookie: true,
      });
    },
  };
}

/** A live value, null when the sysctl does not exist (here). */
function readOrNull(sysctl: string): number[] | null {
  try {
    return readSysctl(sysctl);
  } catch (e) {
    if (e instanceof SysctlError && e.kind === "missing") return null;
    throw e;
  }
}
