/**
 * Reading, writing, validating and formatting sysctls (`/proc/sys`).
 *
 * Names: accepted dotted (`net.ipv4.tcp_rmem`) or slashed (`net/ipv4/tcp_rmem`); the first
 * separator decides which, as in procps sysctl(8). The canonical form is dotted; a dot *inside*
 * one component (an interface such as `eth0.100`) is written `/` there, exactly as `sysctl -a`
 * prints it: `net.ipv4.conf.eth0/100.rp_filter` <=> `/proc/sys/net/ipv4/conf/eth0.100/rp_filter`.
 * So `net.ipv4.conf.eth0.100.rp_filter` means interface `eth0` and a key `100.rp_filter`;
 * pass `net/ipv4/conf/eth0.100/rp_filter` (or the canonical form) for such interfaces.
 *
 * Values: integer sysctls are `number[]` (one per whitespace-separated field). Anything outside
 * ±2^53 cannot be held exactly in a number and is refused as "malformed" (e.g. kernel.shmmax);
 * read those with `readSysctlText`. CPU-mask sysctls (net.core.flow_limit_cpu_bitmap) are
 * read and written in the kernel's hex mask form and held as 32-bit words (see cpumask.ts).
 *
 * All I/O is synchronous: one small read or one `write()` per call, which is how the kernel
 * wants sysctl writes (a split write is parsed as two). Deno must run with `-A` to touch /proc.
 */

import { formatCpuMask, isCpuMask, parseCpuMask } from "./cpumask.ts";

export const INT_MAX = 2147483647;
export const INT_MIN = -2147483648;
export const DEFAULT_PROC_ROOT = "/proc/sys";

export type SysctlErrorKind = "missing" | "permission" | "malformed" | "invalid" | "io";

/** Every failure of this module: `kind` says what went wrong, the message says what to do. */
export class SysctlError extends Error {
  override name = "SysctlError";
  constructor(
    readonly kind: SysctlErrorKind,
    readonly sysctl: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export interface SysctlOptions {
  /** Where the sysctl tree lives; tests point this at a temp dir. */
  procRoot?: string;
}

export interface ReadOptions extends SysctlOptions {
  /** How many integers the sysctl must hold (tcp_rmem: 3); any other count is "malformed". */
  count?: number;
}

export interface ValueLimits {
  /** Exact number of values required. */
  count?: number;
  /** Inclusive bounds for every value; pass `max: INT_MAX` for `int` sysctls. */
  min?: number;
  max?: number;
}

export interface WriteOptions extends SysctlOptions, ValueLimits {
  /**
   * Read the sysctl back after the write and throw SysctlError("io") unless it holds the values
   * written: a write the kernel took without keeping it is never reported as made.
   */
  verify?: boolean;
}

// ---------------------------------------------------------------------------------------------
// Names

/** Splits a sysctl name into its /proc/sys path components (dots inside components restored). */
export function sysctlComponents(name: string): string[] {
  const raw = typeof name === "string" ? name.trim() : "";
  const shown = JSON.stringify(name);
  if (raw === "") throw new SysctlError("invalid", String(name), "empty sysctl name");
  if (raw.includes("\0") || /\s|=/.test(raw)) {
    throw new SysctlError(
      "invalid",
      raw,
      `${shown} is not a sysctl name (no spaces or "=" allowed; write e.g. net.ipv4.tcp_rmem)`,
    );
  }
  let body = raw;
  if (body.startsWith("/proc/sys/")) body = body.slice("/proc/sys/".length);
  const firstSep = body.search(/[./]/);
  const slashed = firstSep >= 0 && body[firstSep] === "/";
  const parts = slashed
    ? body.split("/")
    : body.split(".").map((part) => part.replaceAll("/", "."));
  for (const part of parts) {
    if (part === "" || part === "." || part === "..") {
      throw new SysctlError(
        "invalid",
        raw,
        `${shown} is not a sysctl name (empty or "."/".." component); ` +
          `write e.g. net.ipv4.tcp_rmem or net/ipv4/tcp_rmem`,
      );
    }
  }
  return parts;
}

/** Names already made canonical: the daemon asks for the same few on every event and change. */
const canonicalNames = new Map<string, string>();
/** Past this many names the memo starts over (names come from tuners, config and commands). */
const CANONICAL_MEMO_MAX = 1024;

/** Canonical dotted form (procps style): `net/ipv4/conf/eth0.100/rp_filter` → `net.ipv4.conf.eth0/100.rp_filter`. */
export function canonicalSysctlName(name: string): string {
  const known = canonicalNames.get(name);
  if (known !== undefined) return known;
  const canonical = sysctlComponents(name).map((part) => part.replaceAll(".", "/")).join(".");
  if (canonicalNames.size >= CANONICAL_MEMO_MAX) canonicalNames.clear();
  canonicalNames.set(name, canonical);
  return canonical;
}

/** Absolute file path of a sysctl under `procRoot`. */
export function sysctlPath(name: string, procRoot: string = DEFAULT_PROC_ROOT): string {
  const root = procRoot.endsWith("/") ? procRoot.slice(0, -1) : procRoot;
  return `${root}/${sysctlComponents(name).join("/")}`;
}

// ---------------------------------------------------------------------------------------------
// Values

/** True when `name` exists in the caller's network namespace (absent sysctls are not errors). */
export function sysctlExists(name: string, procRoot: string = DEFAULT_PROC_ROOT): boolean {
  try {
    Deno.statSync(sysctlPath(name, procRoot));
    return true;
  } catch {
    return false;
  }
}

/** Sysctls the kernel parses as a hexadecimal CPU mask (bitmap_parse), not as integers. */
const CPU_MASK_SYSCTLS = new Set(["net.core.flow_limit_cpu_bitmap"]);

/** True when the kernel reads and prints `name` as a hex CPU mask (values are 32-bit words). */
export function isCpuMaskSysctl(name: string): boolean {
  return CPU_MASK_SYSCTLS.has(name);
}

/**
 * The text the kernel takes for these values: space-separated integers, as `sysctl -w` takes
 * them, or for a CPU-mask sysctl (`name` given) the hex mask ("0,00000400").
 */
export function formatSysctlValues(values: readonly number[], name = ""): string {
  return isCpuMaskSysctl(name) && isCpuMask(values) ? formatCpuMask(values) : values.join(" ");
}

const INTEGER_TOKEN = /^[-+]?\d+$/;

/** Parses the whitespace/tab-separated integers of a sysctl; `name` only labels errors. */
export function parseSysctlValues(text: string, name: string, count?: number): number[] {
  const trimmed = text.trim();
  const tokens = trimmed === "" ? [] : trimmed.split(/\s+/);
  const want = count === undefined ? "integers" : `${count} integer${count === 1 ? "" : "s"}`;
  const bad = () =>
    new SysctlError(
      "malformed",
      name,
      `${name}: expected ${want}, read ${JSON.stringify(trimmed)}`,
    );
  if (tokens.length === 0) throw bad();
  const values: number[] = [];
  for (const token of tokens) {
    if (!INTEGER_TOKEN.test(token)) throw bad();
    const value = Number(token);
    if (!Number.isSafeInteger(value)) {
      throw new SysctlError(
        "malformed",
        name,
        `${name}: value ${token} is too large to handle exactly (beyond 2^53); read it as text`,
      );
    }
    values.push(value === 0 ? 0 : value); // no -0
  }
  if (count !== undefined && values.length !== count) throw bad();
  return values;
}

/** Throws SysctlError("invalid") unless `values` are integers within `limits`. */
export function validateSysctlValues(
  name: string,
  values: readonly number[],
  limits: ValueLimits = {},
): void {
  const invalid = (why: string) => new SysctlError("invalid", name, `${name}: ${why}; not written`);
  if (!Array.isArray(values) || values.length === 0) throw invalid("no values given");
  if (limits.count !== undefined && values.length !== limits.count) {
    throw invalid(
      `expected ${limits.count} integer${limits.count === 1 ? "" : "s"}, ` +
        `got ${values.length} (${values.join(" ")})`,
    );
  }
  for (const value of values) {
    if (typeof value !== "number" || !Number.isSafeInteger(value)) {
      throw invalid(`${String(value)} is not an integer`);
    }
    if (limits.max !== undefined && value > limits.max) {
      throw invalid(`${value} is above the maximum ${limits.max}`);
    }
    if (limits.min !== undefined && value < limits.min) {
      throw invalid(`${value} is below the minimum ${limits.min}`);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// I/O

function isRoot(): boolean | undefined {
  try {
    return Deno.uid() === 0;
  } catch {
    return undefined;
  }
}

function errorCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown })?.code;
  return typeof code === "string" ? code : undefined;
}

function missingMessage(name: string, path: string, procRoot: string): string {
  let msg = `this kernel has no sysctl ${name} (not built in, or a module is not loaded)`;
  if (procRoot !== DEFAULT_PROC_ROOT) msg += ` [looked for ${path}]`;
  // Interface names may contain dots; a dotted name cannot express that (see module comment).
  if (/^net\.(ipv4|ipv6|mpls)\.(conf|neigh)\./.test(name) && name.split(".").length > 5) {
    const slashed = sysctlComponents(name).join("/");
    msg += `; if an interface name contains a dot, write it slashed, e.g. ` +
      `${slashed.replace(/^(net\/\w+\/\w+\/)([^/]+)\/([^/]+)/, "$1$2.$3")}`;
  }
  return msg;
}

function denoCapabilityError(name: string, action: string, err: unknown): SysctlError {
  return new SysctlError(
    "permission",
    name,
    `${action} ${name} needs Deno's --allow-all (-A): Deno refuses path-scoped access to /proc`,
    { cause: err },
  );
}

function readFailure(name: string, path: string, procRoot: string, err: unknown): SysctlError {
  const code = errorCode(err);
  if (err instanceof Deno.errors.NotCapable) return denoCapabilityError(name, "reading", err);
  if (err instanceof Deno.errors.NotFound || code === "ENOENT" || code === "ENOTDIR") {
    return new SysctlError("missing", name, missingMessage(name, path, procRoot), { cause: err });
  }
  if (err instanceof Deno.errors.IsADirectory || code === "EISDIR") {
    return new SysctlError(
      "invalid",
      name,
      `${name} is a group of sysctls, not a single sysctl (list it with: sysctl ${name})`,
      { cause: err },
    );
  }
  if (err instanceof Deno.errors.PermissionDenied || code === "EACCES" || code === "EPERM") {
    const msg = isRoot() === false
      ? `reading ${name} needs root (run bpfpilot as root)`
      : `${name} cannot be read (the kernel makes it write-only)`;
    return new SysctlError("permission", name, msg, { cause: err });
  }
  return new SysctlError("io", name, `reading ${name} failed: ${describeError(err)}`, {
    cause: err,
  });
}

function describeError(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  // Deno appends "(os error N)" and the path; the sysctl name already says which file.
  return msg.replace(/\s*\(os error \d+\)/, "").replace(/:\s*\w+ '[^']*'$/, "");
}

function readRaw(name: string, opts: SysctlOptions): { canonical: string; text: string } {
  const procRoot = opts.procRoot ?? DEFAULT_PROC_ROOT;
  const canonical = canonicalSysctlName(name);
  const path = sysctlPath(canonical, procRoot);
  try {
    return { canonical, text: Deno.readTextFileSync(path) };
  } catch (err) {
    throw readFailure(canonical, path, procRoot, err);
  }
}

/** Reads an integer sysctl (one number per field). */
export function readSysctl(name: string, opts: ReadOptions = {}): number[] {
  const { canonical, text } = readRaw(name, opts);
  return sysctlValuesOf(text, canonical, opts.count);
}

/** The values in a sysctl's text as the kernel prints it (canonical name; CPU masks as words). */
export function sysctlValuesOf(text: string, canonical: string, count?: number): number[] {
  if (!isCpuMaskSysctl(canonical)) return parseSysctlValues(text, canonical, count);
  const words = parseCpuMask(text);
  if (words === null || (count !== undefined && words.length !== count)) {
    throw new SysctlError(
      "malformed",
      canonical,
      `${canonical}: expected a hex CPU mask, read ${JSON.stringify(text.trim())}`,
    );
  }
  return words;
}

/** Reads a sysctl as trimmed text (e.g. net.ipv4.tcp_congestion_control). */
export function readSysctlText(name: string, opts: SysctlOptions = {}): string {
  return readRaw(name, opts).text.trim();
}

function writeRaw(canonical: string, shownValue: string, data: string, opts: SysctlOptions): void {
  const procRoot = opts.procRoot ?? DEFAULT_PROC_ROOT;
  const path = sysctlPath(canonical, procRoot);
  let file: Deno.FsFile;
  try {
    // No create: a missing sysctl must stay "missing", not turn into EACCES on create. Truncate
    // is what a shell `>` does; the kernel ignores it and it keeps plain-file fakes honest.
    file = Deno.openSync(path, { write: true, truncate: true });
  } catch (err) {
    const code = errorCode(err);
    if (err instanceof Deno.errors.NotCapable) throw denoCapabilityError(canonical, "writing", err);
    if (err instanceof Deno.errors.PermissionDenied || code === "EACCES" || code === "EPERM") {
      const msg = isRoot() === false
        ? `writing ${canonical} needs root (run bpfpilot as root)`
        : `${canonical} is read-only here (the kernel does not allow writing it, ` +
          `or not from this network namespace)`;
      throw new SysctlError("permission", canonical, msg, { cause: err });
    }
    throw readFailure(canonical, path, procRoot, err);
  }
  try {
    const bytes = new TextEncoder().encode(data);
    const written = file.writeSync(bytes);
    if (written !== bytes.length) {
      throw new SysctlError(
        "io",
        canonical,
        `writing ${canonical} stopped after ${written} of ${bytes.length} bytes; ` +
          `check its value with: sysctl ${canonical}`,
      );
    }
  } catch (err) {
    if (err instanceof SysctlError) throw err;
    const code = errorCode(err);
    if (err instanceof Deno.errors.NotCapable) throw denoCapabilityError(canonical, "writing", err);
    if (code === "EPERM" || code === "EACCES" || err instanceof Deno.errors.PermissionDenied) {
      throw new SysctlError(
        "permission",
        canonical,
        `the kernel refused to let this process change ${canonical} ` +
          `(needs root in the initial user namespace)`,
        { cause: err },
      );
    }
    // EINVAL/ERANGE: out of range or wrong shape; ENOENT: e.g. unknown congestion control name.
    if (code === "EINVAL" || code === "ERANGE" || code === "ENOENT" || code === "EOVERFLOW") {
      throw new SysctlError(
        "invalid",
        canonical,
        `the kernel rejected value ${JSON.stringify(shownValue)} for ${canonical} ` +
          `(${describeError(err)}: out of range or not accepted by this kernel); nothing changed`,
        { cause: err },
      );
    }
    throw new SysctlError("io", canonical, `writing ${canonical} failed: ${describeError(err)}`, {
      cause: err,
    });
  } finally {
    file.close();
  }
}

/** Validates, then writes integers in one `write()`. */
export function writeSysctl(
  name: string,
  values: readonly number[],
  opts: WriteOptions = {},
): void {
  const canonical = canonicalSysctlName(name);
  validateSysctlValues(canonical, values, opts);
  const text = formatSysctlValues(values, canonical);
  writeRaw(canonical, text, `${text}\n`, opts);
  if (opts.verify) verifyWritten(canonical, values, opts);
}

/** CPU-mask words without the leading zero groups (the kernel prints nr_cpu_ids' worth). */
function significant(values: readonly number[], name: string): string {
  const start = isCpuMaskSysctl(name) ? values.findIndex((w) => w !== 0) : 0;
  return values.slice(start < 0 ? values.length : start).join(" ");
}

function verifyWritten(canonical: string, values: readonly number[], opts: SysctlOptions): void {
  verifyReadBack(canonical, values, readRaw(canonical, opts).text);
}

/**
 * Throws SysctlError("io") unless `backText` (the sysctl read back after writing `values`) holds
 * the values written: a write the kernel took without keeping it is never reported as made.
 */
export function verifyReadBack(
  canonical: string,
  values: readonly number[],
  backText: string,
): void {
  let back: number[] | null = null;
  try {
    back = sysctlValuesOf(backText, canonical);
  } catch (err) {
    if (!(err instanceof SysctlError) || err.kind !== "malformed") throw err;
  }
  if (back && significant(back, canonical) === significant(values, canonical)) return;
  const shown = back ? `(${formatSysctlValues(back, canonical)})` : JSON.stringify(backText.trim());
  throw new SysctlError(
    "io",
    canonical,
    `wrote (${
      formatSysctlValues(values, canonical)
    }) to ${canonical} but it reads back ${shown}: ` +
      `the kernel did not keep the value; check it with: sysctl ${canonical}`,
  );
}

/** Writes a text sysctl (one line). */
export function writeSysctlText(name: string, text: string, opts: SysctlOptions = {}): void {
  const canonical = canonicalSysctlName(name);
  if (typeof text !== "string" || /[\n\r\0]/.test(text)) {
    throw new SysctlError(
      "invalid",
      canonical,
      `${canonical}: value ${JSON.stringify(text)} must be a single line of text; not written`,
    );
  }
  writeRaw(canonical, text, `${text}\n`, opts);
}

// ---------------------------------------------------------------------------------------------
// Shell lines and dumps

const SHELL_SAFE = /^[A-Za-z0-9_.,:+@%/=-]+$/;

function shellQuote(text: string): string {
  if (text !== "" && SHELL_SAFE.test(text)) return text;
  if (/^[A-Za-z0-9_.,:+@%/=\t -]*$/.test(text)) return `"${text}"`;
  return `'${text.replaceAll("'", `'\\''`)}'`;
}

/**
 * The `sysctl -w` command that sets these values:
 * `sysctl -w net.ipv4.tcp_rmem="4096 131072 6291456"`, `sysctl -w net.core.rmem_max=212992`.
 */
export function sysctlWLine(name: string, values: readonly number[] | string): string {
  const canonical = canonicalSysctlName(name);
  const value = typeof values === "string" ? values : formatSysctlValues(values, canonical);
  const key = SHELL_SAFE.test(canonical) ? canonical : shellQuote(canonical);
  return `sysctl -w ${key}=${shellQuote(value)}`;
}

export interface DumpProblem {
  /** 1-based line number in the dump. */
  line: number;
  text: string;
  reason: string;
}

/** A parsed `sysctl -a` dump: canonical name → raw value (tabs kept), plus what was skipped. */
export class SysctlDump extends Map<string, string> {
  readonly problems: DumpProblem[] = [];
}

/**
 * Parses saved `sysctl -a` output (`name = value` lines; `name=value` also accepted). Blank
 * lines and `#`/`;` comments are skipped silently; anything else that is not a sysctl line
 * (e.g. "sysctl: permission denied on key ..." captured with 2>&1) lands in `problems` with its
 * line number. sysctl(8) prints each line of a multi-line value (kernel.core_modes,
 * dev.cdrom.info) as its own `name = line`, so consecutive lines with one name are joined with
 * "\n"; a name repeated elsewhere keeps the later value and is reported.
 */
export function parseSysctlDump(text: string): SysctlDump {
  const dump = new SysctlDump();
  const seenAt = new Map<string, number>();
  let previous: string | undefined; // name on the previous sysctl line
  const lines = text.replace(/^\uFEFF/, "").split("\n");
  lines.forEach((rawLine, index) => {
    const lineNo = index + 1;
    const line = rawLine.replace(/\r$/, "");
    const trimmed = line.trim();
    if (trimmed === "" || trimmed.startsWith("#") || trimmed.startsWith(";")) {
      previous = undefined;
      return;
    }
    const eq = line.indexOf("=");
    if (eq < 0) {
      previous = undefined;
      dump.problems.push({ line: lineNo, text: line, reason: 'not a "name = value" line' });
      return;
    }
    let name: string;
    try {
      name = canonicalSysctlName(line.slice(0, eq));
    } catch {
      previous = undefined;
      dump.problems.push({
        line: lineNo,
        text: line,
        reason: `${JSON.stringify(line.slice(0, eq).trim())} is not a sysctl name`,
      });
      return;
    }
    const value = line.slice(eq + 1).replace(/^ +/, "").replace(/\s+$/, "");
    if (name === previous) {
      dump.set(name, `${dump.get(name)}\n${value}`);
      return;
    }
    previous = name;
    const earlier = seenAt.get(name);
    if (earlier !== undefined) {
      dump.problems.push({
        line: lineNo,
        text: line,
        reason: `${name} already appeared on line ${earlier}; the later value is kept`,
      });
    }
    seenAt.set(name, lineNo);
    dump.set(name, value);
  });
  return dump;
}
