/** Live sysctl access by namespace key, as the daemon and rollback use it. */
import { DEFAULT_DOMAIN, type ValueDomain } from "../tuning/domain.ts";
import { inNetns, NetnsGoneError } from "../kernel/netns.ts";
import {
  canonicalSysctlName,
  formatSysctlValues,
  readSysctl,
  SysctlError,
  sysctlValuesOf,
  validateSysctlValues,
  verifyReadBack,
  writeSysctl,
} from "../kernel/sysctl.ts";
import type { SysctlFiles } from "../kernel/sysctl_files.ts";

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

export interface LiveSysctlsOptions {
  /**
   * False: a read uses a file already kept but keeps none it opens (answers to queries: one
   * metrics scrape at 100 namespaces would fill the bounded set with every tunable of every
   * namespace and push out the files the tuners change values through). Default true.
   */
  keepOpened?: boolean;
}

/**
 * The live sysctls; writes are checked against `domainOf` (the tunables' declared domains).
 * With `files` (the daemon), the files a visit opens stay open for the next reads and writes of
 * that namespace (kernel/sysctl_files.ts): a change then needs one visit, or none.
 */
export function liveSysctls(
  domainOf: (sysctl: string) => ValueDomain = () => DEFAULT_DOMAIN,
  files: SysctlFiles | null = null,
  { keepOpened = true }: LiveSysctlsOptions = {},
): SysctlIO {
  const keeps = keepOpened ? files : null;
  /** Inside the namespace: through a file kept from now on where possible, else by path. */
  const readHere = (netns: string, sysctl: string): number[] | null => {
    const text = keeps?.keepHere(netns, sysctl) ? keeps.read(netns, sysctl) : null;
    return text === null ? readOrNull(sysctl) : sysctlValuesOf(text, sysctl);
  };
  const readMany = (names: readonly string[], netns: string) => {
    const sysctls = names.map(canonicalSysctlName);
    const kept = sysctls.map((s) => files?.read(netns, s) ?? null);
    const fromKept = (i: number) => sysctlValuesOf(kept[i]!, sysctls[i]);
    if (files && kept.every((t) => t !== null)) return sysctls.map((_, i) => fromKept(i));
    try {
      // Files kept for later writes are opened only once the namespace's cookie is checked; what
      // a kept file already read is not read (and its file not reopened) again.
      return inNetns(
        netns,
        () => sysctls.map((s, i) => kept[i] !== null ? fromKept(i) : readHere(netns, s)),
        { verifyCookie: keeps !== null },
      );
    } catch (e) {
      if (e instanceof NetnsGoneError) return sysctls.map(() => null);
      throw e;
    }
  };
  return {
    read: (sysctl, netns) => readMany([sysctl], netns)[0],
    readMany,
    write(name, netns, values) {
      const sysctl = canonicalSysctlName(name);
      const { min, max } = domainOf(sysctl);
      if (files) {
        validateSysctlValues(sysctl, values, { min, max });
        const text = formatSysctlValues(values, sysctl);
        if (files.write(netns, sysctl, `${text}\n`)) {
          const back = files.read(netns, sysctl);
          if (back !== null) return verifyReadBack(sysctl, values, back);
        }
        // Not kept, or it failed: the checked visit writes (again) and reports what happened.
      }
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
