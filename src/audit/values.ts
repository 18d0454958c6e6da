/** Sysctl value handling: whitespace normalisation and numeric vectors ("4096 131072 6291456"). */
import {
  formatSysctlValues,
  isCpuMaskSysctl,
  sysctlWLine as kernelSysctlWLine,
} from "../kernel/sysctl.ts";
import { parseCpuMask } from "../kernel/cpumask.ts";
import type { AuditValue } from "./types.ts";

/** Collapses tabs and runs of spaces, as `sysctl -a` prints tcp_rmem with tabs. */
export function normaliseValue(raw: string): string {
  return raw.trim().split(/\s+/).filter((t) => t !== "").join(" ");
}

/**
 * Parses a numeric sysctl value into its fields; null if any field is not a decimal integer. A
 * CPU-mask sysctl (`name` given) is parsed as the kernel prints it, into 32-bit words.
 */
export function parseNumbers(raw: string, name = ""): number[] | null {
  if (isCpuMaskSysctl(name)) return parseCpuMask(normaliseValue(raw));
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

/** Formats values the way the kernel reads them back for this sysctl (CPU masks in hex). */
export function formatValues(values: readonly number[], name = ""): string {
  return formatSysctlValues(values, name);
}

/** The `sysctl -w` line that applies a value (CPU masks written in hex). */
export function sysctlWLine(name: string, values: readonly number[]): string {
  return kernelSysctlWLine(name, values);
}

/** A value as the report prints it: a sysctl's fields as the kernel reads them, text as is. */
export function formatAuditValue(value: AuditValue, name = ""): string {
  return typeof value === "string" ? value : formatValues(value, name);
}

/** The same type and the same content. */
export function sameAuditValue(a: AuditValue, b: AuditValue): boolean {
  if (typeof a === "string" || typeof b === "string") return a === b;
  return a.length === b.length && a.every((v, i) => v === b[i]);
}
