/**
 * What a rollback may write: only a sysctl some bpfpilot tuner manages, and only a value inside
 * its domain (as many integers as it holds, each 0..INT_MAX). The journal is a file; if it was
 * forged or belongs to something else, rollback must not become a way to set arbitrary sysctls
 * (net.ipv4.ip_forward, kernel.core_pattern) as root.
 */
import { INT_MAX } from "../kernel/sysctl.ts";
import { TUNERS } from "../tuners/registry.ts";
import { type SysctlValue, valueText } from "./journal.ts";

/** Why `value` must not be written back to `sysctl`, or null when it may. */
export function refuseRestore(sysctl: string, value: SysctlValue): string | null {
  const decl = TUNERS.flatMap((d) => d.tunables).find((t) => t.sysctl === sysctl);
  if (!decl) {
    return "no bpfpilot tuner manages it, so the entry is not bpfpilot's (forged or foreign?); " +
      "left alone";
  }
  const ok = typeof value !== "string" && value.length === decl.values &&
    value.every((v) => Number.isSafeInteger(v) && v >= 0 && v <= INT_MAX);
  return ok ? null : `the recorded original (${valueText(value)}) is outside its domain ` +
    `(${decl.values} integer(s) 0..${INT_MAX}), so it is not bpfpilot's; left alone`;
}
