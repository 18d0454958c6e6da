/**
 * What a rollback may write: only a sysctl one of the given tuners manages, and only a value
 * inside its declared domain's range (as many integers as it holds, each 0..the domain's max; the
 * original may sit below the floor bpfpilot itself writes). The journal is a file; if it was
 * forged or belongs to something else, rollback must not become a way to set arbitrary sysctls
 * (net.ipv4.ip_forward, kernel.core_pattern) as root.
 */
import { DEFAULT_DOMAIN } from "../tuning/domain.ts";
import type { TunableDecl } from "../tuning/tuner.ts";
import { type SysctlValue, valueText } from "./journal.ts";

/** Why `value` must not be written back to `sysctl`: a reason, or null when it may. */
export type RestoreGuard = (sysctl: string, value: SysctlValue) => string | null;

/** The guard for the tunables of every tuner this build ships (the caller passes them). */
export function restoreGuard(
  tuners: readonly { tunables: readonly TunableDecl[] }[],
): RestoreGuard {
  const decls = new Map<string, TunableDecl>();
  for (const t of tuners) {
    for (const d of t.tunables) if (!decls.has(d.sysctl)) decls.set(d.sysctl, d);
  }
  return (sysctl, value) => {
    const decl = decls.get(sysctl);
    if (!decl) {
      return "no bpfpilot tuner manages it, so the entry is not bpfpilot's (forged or foreign?); " +
        "left alone";
    }
    const max = (decl.domain ?? DEFAULT_DOMAIN).max;
    const ok = typeof value !== "string" && value.length === decl.values &&
      value.every((v) => Number.isSafeInteger(v) && v >= 0 && v <= max);
    return ok ? null : `the recorded original (${valueText(value)}) is outside its domain ` +
      `(${decl.values} integer(s) 0..${max}), so it is not bpfpilot's; left alone`;
  };
}
