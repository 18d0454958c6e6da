/**
 * Where the audit reads sysctls from: the live /proc/sys, or a saved `sysctl -a` dump (--from).
 * Both go through src/kernel/sysctl.ts; this module only adapts its errors to check outcomes.
 */
import { parseSysctlDump, readSysctlText, SysctlError } from "../kernel/sysctl.ts";
import { readRegularFile, SafeFileError } from "../kernel/safe_file.ts";
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

/** A `sysctl -a` of a busy host is a few MB at most; a bigger file is something else. */
export const MAX_DUMP_BYTES = 16 * 1024 * 1024;
/** Problem lines listed one by one; the rest are counted. */
const MAX_SKIPPED_LISTED = 20;
/** The top-level directories of /proc/sys: a name under none of them is no sysctl. */
const SYSCTL_ROOTS = new Set([
  "abi",
  "crypto",
  "debug",
  "dev",
  "fs",
  "kernel",
  "net",
  "sunrpc",
  "user",
  "vm",
]);

/**
 * Parses dump text. Fails when it is not `sysctl -a` output: binary, no sysctl of the kernel's
 * families, or more lines that are not sysctls than lines that are (os-release, random text).
 */
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
  const known = new Map<string, string>();
  for (const [name, value] of dump) {
    if (SYSCTL_ROOTS.has(name.split(".")[0])) known.set(name, value);
  }
  const strangers = dump.problems.length + dump.size - known.size;
  if (known.size === 0 || strangers > known.size) {
    throw new AuditError(
      `${label} is not \`sysctl -a\` output: ${known.size} of its lines name a sysctl ` +
        `(kernel.*, net.*, vm.*, ...) and ${strangers} do not; create one with ` +
        "`sysctl -a > FILE`",
    );
  }
  const lines = text.split("\n");
  const skipped: string[] = [];
  let more = 0;
  for (const p of dump.problems) {
    if (continuesMultiLineValue(lines, p.line)) continue;
    if (skipped.length < MAX_SKIPPED_LISTED) skipped.push(`${label}:${p.line}: ${p.reason}`);
    else more++;
  }
  if (more) skipped.push(`${label}: ${more} more lines skipped`);
  return { source: dumpSysctls(known), skipped };
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
    // A regular file only (a FIFO would hang, /dev/zero never ends), at most MAX_DUMP_BYTES.
    text = readRegularFile(path, MAX_DUMP_BYTES);
  } catch (e) {
    const why = e instanceof SafeFileError
      ? e.message.replace(/^it /, "")
      : `cannot be read (${String(e)})`;
    throw new AuditError(`--from ${path} ${why}; pass a file made with \`sysctl -a > FILE\``);
  }
  return loadSysctlDump(text, path);
}
