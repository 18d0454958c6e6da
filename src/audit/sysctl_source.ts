/**
 * Where the audit reads sysctls from: the live /proc/sys, or a saved `sysctl -a` dump (--from).
 * Both go through src/kernel/sysctl.ts; this module only adapts its errors to check outcomes.
 */
import { readFileSync } from "node:fs";
import { parseSysctlDump, readSysctlText, SysctlError } from "../kernel/sysctl.ts";
import { AuditError } from "./errors.ts";
import { normaliseValue } from "./values.ts";

export type SysctlLookup =
  | { kind: "value"; value: string }
  | { kind: "missing" }
  | { kind: "denied" }
  | { kind: "unreadable"; detail: string };

export interface SysctlSource {
  readonly origin: "live" | "file";
  get(name: string): SysctlLookup;
}

/** Reads /proc/sys (or a fake tree under `procRoot`, for tests); each name is read once. */
export function liveSysctls(procRoot = "/proc/sys"): SysctlSource {
  const cache = new Map<string, SysctlLookup>();
  return {
    origin: "live",
    get(name) {
      let hit = cache.get(name);
      if (hit === undefined) {
        hit = readOne(name, procRoot);
        cache.set(name, hit);
      }
      return hit;
    },
  };
}

function readOne(name: string, procRoot: string): SysctlLookup {
  try {
    return { kind: "value", value: normaliseValue(readSysctlText(name, { procRoot })) };
  } catch (e) {
    if (!(e instanceof SysctlError)) throw e;
    if (e.kind === "missing") return { kind: "missing" };
    if (e.kind === "permission") return { kind: "denied" };
    return { kind: "unreadable", detail: e.message };
  }
}

export interface LoadedDump {
  source: SysctlSource;
  /** Lines that were not sysctls, e.g. "sysctl: permission denied on key ..." captured with 2>&1. */
  skipped: string[];
}

export function dumpSysctls(values: ReadonlyMap<string, string>): SysctlSource {
  return {
    origin: "file",
    get(name) {
      const v = values.get(name);
      return v === undefined ? { kind: "missing" } : { kind: "value", value: normaliseValue(v) };
    },
  };
}

/** Parses dump text; fails only when nothing in it is a sysctl line. */
export function loadSysctlDump(text: string, label: string): LoadedDump {
  if (text.includes("\0")) {
    throw new AuditError(
      `${label} is a binary file, not \`sysctl -a\` output; create one with \`sysctl -a > FILE\``,
    );
  }
  const dump = parseSysctlDump(text);
  if (dump.size === 0) {
    throw new AuditError(
      `${label} holds no "name = value" lines, so it is not \`sysctl -a\` output; ` +
        "create one with `sysctl -a > FILE`",
    );
  }
  const lines = text.split("\n");
  const skipped = dump.problems
    .filter((p) => !continuesMultiLineValue(lines, p.line))
    .map((p) => `${label}:${p.line}: ${p.reason}`);
  return { source: dumpSysctls(dump), skipped };
}

/**
 * `sysctl -a` prints a multi-line value (kernel.core_modes: "file\npipe\nsocket") as one
 * "name = line" per line, so a name repeated on consecutive lines is not a problem worth a warning.
 */
function continuesMultiLineValue(lines: readonly string[], lineNo: number): boolean {
  const nameOf = (line: string | undefined) => line?.split("=")[0].trim();
  const name = nameOf(lines[lineNo - 1]);
  return name !== undefined && name !== "" && nameOf(lines[lineNo - 2]) === name;
}

/** Reads and parses a dump file, with errors that say what to do. */
export function readSysctlDumpFile(path: string): LoadedDump {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    const code = (e as { code?: string }).code;
    const why = code === "ENOENT"
      ? "does not exist"
      : code === "EACCES"
      ? "is not readable (permission denied)"
      : code === "EISDIR"
      ? "is a directory"
      : `cannot be read (${code ?? String(e)})`;
    throw new AuditError(`--from ${path} ${why}; pass a file made with \`sysctl -a > FILE\``);
  }
  return loadSysctlDump(text, path);
}
