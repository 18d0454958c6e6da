/** Sysctl value handling: whitespace normalisation and numeric vectors ("4096 131072 6291456"). */
import { sysctlWLine as kernelSysctlWLine } from "../kernel/sysctl.ts";

/** Collapses tabs and runs of spaces, as `sysctl -a` prints tcp_rmem with tabs. */
export function normaliseValue(raw: string): string {
  return raw.trim().split(/\s+/).filter((t) => t !== "").join(" ");
}

/** Parses a numeric sysctl value into its fields; null if any field is not a decimal integer. */
export function parseNumbers(raw: string): number[] | null {
  const norm = normaliseValue(raw);
  if (norm === "") return null;
  const out: number[] = [];
  for (const token of norm.split(" ")) {
    if (!/^-?\d+$/.test(token)) return null;
    const n = Number(token);
    if (!Number.isSafeInteger(n)) return null;
    out.push(n);
  }
  return out;
}

/** Sysctls the kernel parses as a hexadecimal CPU mask (bpftune wrote them in decimal, §5.3). */
const HEX_MASK_SYSCTLS = new Set(["net.core.flow_limit_cpu_bitmap"]);

/** Formats values the way the kernel reads them back for this sysctl. */
export function formatValues(values: readonly number[], name = ""): string {
  return HEX_MASK_SYSCTLS.has(name)
    ? values.map((v) => v.toString(16)).join(" ")
    : values.join(" ");
}

/** The `sysctl -w` line that applies a value (hex masks written in hex). */
export function sysctlWLine(name: string, values: readonly number[]): string {
  return kernelSysctlWLine(name, HEX_MASK_SYSCTLS.has(name) ? formatValues(values, name) : values);
}
