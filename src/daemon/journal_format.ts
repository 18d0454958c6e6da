/**
 * The journal's state as data: values and keys checked, the state file and the log's records
 * parsed (every field validated: a damaged file is reported, never trusted) and serialised, and
 * the few rules on the state itself (override cap, entry lookup). No I/O: journal.ts reads and
 * writes the files (journal_files.ts, journal_log.ts).
 */
import { canonicalSysctlName } from "../kernel/sysctl.ts";
import { ANY_NETNS, GLOBAL_NETNS } from "../kernel/netns.ts";
import { VERSION } from "../version.ts";
import {
  type JournalEntry,
  JournalError,
  type JournalState,
  type NetnsBootField,
  type NetnsCookieField,
  type OverrideRecord,
  STATE_FORMAT,
  STATE_VERSION,
  type SysctlValue,
} from "./journal_types.ts";

// ---------------------------------------------------------------------------------------------
// Values

/** The form values are compared in: fields separated by one space (the kernel prints tabs). */
export function valueText(value: SysctlValue): string {
  return typeof value === "string" ? value.trim().split(/\s+/).join(" ") : value.join(" ");
}

export function sameValue(a: SysctlValue | null, b: SysctlValue | null): boolean {
  return a !== null && b !== null && valueText(a) === valueText(b);
}

export function copyValue(value: SysctlValue, what: string): SysctlValue {
  if (typeof value === "string") return value;
  if (
    Array.isArray(value) && value.length > 0 && value.every((v) => Number.isSafeInteger(v))
  ) {
    return value.map((v) => (v === 0 ? 0 : v));
  }
  throw new TypeError(`${what} must be a string or a non-empty array of integers`);
}

export function checkNetns(netns: string): string {
  if (typeof netns !== "string" || !/^[\x21-\x7e]{1,128}$/.test(netns)) {
    throw new TypeError(`netns key ${JSON.stringify(netns)} must be "global" or a cookie string`);
  }
  return netns;
}

export function checkTuner(tuner: string): string {
  if (typeof tuner !== "string" || !/^[\x21-\x7e]{1,128}$/.test(tuner)) {
    throw new TypeError(`tuner name ${JSON.stringify(tuner)} must be a non-empty word`);
  }
  return tuner;
}

function corrupt(file: string, detail: string): JournalError {
  return new JournalError(
    "corrupt",
    file,
    `${file} is damaged: ${detail}. bpfpilot left it untouched and cannot record or roll back ` +
      `changes until it is fixed. Restore the original values it lists by hand (sysctl -w), ` +
      `then move it aside with \`mv ${file} ${file}.bad\``,
  );
}

// ---------------------------------------------------------------------------------------------
// Validation of the file

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function isTimestamp(v: unknown): v is string {
  return typeof v === "string" && !Number.isNaN(Date.parse(v));
}

function isValue(v: unknown): v is SysctlValue {
  return typeof v === "string" ||
    (Array.isArray(v) && v.length > 0 && v.every((x) => Number.isSafeInteger(x)));
}

function isKey(v: unknown): v is string {
  return typeof v === "string" && /^[\x21-\x7e]{1,128}$/.test(v);
}

function isCanonicalSysctl(v: unknown): v is string {
  if (typeof v !== "string") return false;
  try {
    return canonicalSysctlName(v) === v;
  } catch {
    return false;
  }
}

export function parseState(text: string, file: string): JournalState {
  if (text.trim() === "") {
    throw corrupt(file, "it is empty (a crash on a filesystem without ordered writes?)");
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw corrupt(file, `it is not valid JSON (${(err as Error).message})`);
  }
  if (!isObject(raw) || raw.format !== STATE_FORMAT) {
    const what = isObject(raw)
      ? `its "format" is ${JSON.stringify(raw.format) ?? "missing"}, not "${STATE_FORMAT}"`
      : "it holds no JSON object";
    throw new JournalError(
      "foreign",
      file,
      `${file} is not a bpfpilot state file (${what}); bpfpilot left it untouched. If another ` +
        `program owns it, give bpfpilot its own state directory; otherwise move it aside with ` +
        `\`mv ${file} ${file}.bad\``,
    );
  }
  const version = raw.version;
  if (!Number.isSafeInteger(version) || (version as number) < 1) {
    throw corrupt(file, `"version" is ${JSON.stringify(version) ?? "missing"}`);
  }
  if ((version as number) > STATE_VERSION) {
    const by = typeof raw.productVersion === "string" ? ` ${raw.productVersion}` : "";
    throw new JournalError(
      "newer",
      file,
      `${file} was written by a newer bpfpilot${by} (state version ${version}); this bpfpilot ` +
        `${VERSION} reads version ${STATE_VERSION} only and left it untouched. Upgrade bpfpilot, ` +
        `or roll back with the newer version first`,
    );
  }
  const fieldError = fieldErrorIn(file);
  if (typeof raw.productVersion !== "string") {
    throw fieldError("productVersion", "a string", raw.productVersion);
  }
  if (!isTimestamp(raw.updatedAt)) throw fieldError("updatedAt", "a timestamp", raw.updatedAt);
  const logSeq = version === 1 ? 0 : raw.logSeq;
  if (!Number.isSafeInteger(logSeq) || (logSeq as number) < 0) {
    throw fieldError("logSeq", "a count", raw.logSeq);
  }
  if (!Array.isArray(raw.entries)) throw fieldError("entries", "a list", raw.entries);
  if (!Array.isArray(raw.overrides)) throw fieldError("overrides", "a list", raw.overrides);

  const entries: JournalEntry[] = [];
  const seen = new Set<string>();
  raw.entries.forEach((e: unknown, i: number) => {
    const at = `entries[${i}]`;
    const entry = parseEntry(e, at, fieldError);
    const key = entryKey(entry.netns, entry.sysctl);
    if (seen.has(key)) throw corrupt(file, `${at} repeats ${entry.sysctl} in netns ${entry.netns}`);
    seen.add(key);
    entries.push(entry);
  });
  const overrides = parseOverrides(raw.overrides, "overrides", fieldError);

  return {
    format: STATE_FORMAT,
    version: STATE_VERSION,
    productVersion: raw.productVersion,
    updatedAt: raw.updatedAt,
    logSeq: logSeq as number,
    entries,
    overrides,
  };
}

type FieldError = (path: string, want: string, got: unknown) => JournalError;

function fieldErrorIn(file: string): FieldError {
  return (path, want, got) => {
    const shown = JSON.stringify(got) ?? "nothing";
    const found = shown.length > 80 ? `${shown.slice(0, 77)}...` : shown;
    return corrupt(file, `${path} should be ${want}, found ${found}`);
  };
}

function parseEntry(e: unknown, at: string, fieldError: FieldError): JournalEntry {
  if (!isObject(e)) throw fieldError(at, "an object", e);
  if (!isKey(e.netns)) throw fieldError(`${at}.netns`, "a netns key", e.netns);
  if (!isCanonicalSysctl(e.sysctl)) throw fieldError(`${at}.sysctl`, "a sysctl name", e.sysctl);
  if (!isKey(e.tuner)) throw fieldError(`${at}.tuner`, "a tuner name", e.tuner);
  if (!isValue(e.original)) throw fieldError(`${at}.original`, "a value", e.original);
  for (const f of ["lastWritten", "pending"] as const) {
    if (e[f] !== null && !isValue(e[f])) throw fieldError(`${at}.${f}`, "a value or null", e[f]);
  }
  if (!Number.isSafeInteger(e.changes) || (e.changes as number) < 0) {
    throw fieldError(`${at}.changes`, "a count", e.changes);
  }
  if (!isTimestamp(e.recordedAt)) {
    throw fieldError(`${at}.recordedAt`, "a timestamp", e.recordedAt);
  }
  if (e.changedAt !== null && !isTimestamp(e.changedAt)) {
    throw fieldError(`${at}.changedAt`, "a timestamp or null", e.changedAt);
  }
  return {
    netns: e.netns,
    sysctl: e.sysctl,
    tuner: e.tuner,
    original: e.original,
    lastWritten: e.lastWritten as SysctlValue | null,
    pending: e.pending as SysctlValue | null,
    changes: e.changes as number,
    recordedAt: e.recordedAt,
    changedAt: e.changedAt as string | null,
    ...parseNetnsCookie(e.netnsCookie, `${at}.netnsCookie`, fieldError),
    ...parseBoot(e.boot, `${at}.boot`, fieldError),
  };
}

/** Absent (records written before cookies, or on a kernel without them) or a decimal u64. */
function parseNetnsCookie(c: unknown, at: string, fieldError: FieldError): NetnsCookieField {
  if (c === undefined) return {};
  if (typeof c !== "string" || !/^\d{1,20}$/.test(c) || BigInt(c) >= 1n << 64n) {
    throw fieldError(at, "a netns cookie (decimal)", c);
  }
  return { netnsCookie: c };
}

/** Absent (records written before boots were recorded, or without /proc) or a boot_id. */
function parseBoot(b: unknown, at: string, fieldError: FieldError): NetnsBootField {
  if (b === undefined) return {};
  if (typeof b !== "string" || !/^[0-9A-Za-z-]{1,64}$/.test(b)) {
    throw fieldError(at, "a boot id", b);
  }
  return { boot: b };
}

function parseOverrides(
  list: unknown[],
  at: string,
  fieldError: FieldError,
): OverrideRecord[] {
  return list.map((o: unknown, i: number) => {
    const here = `${at}[${i}]`;
    if (!isObject(o)) throw fieldError(here, "an object", o);
    if (!isKey(o.netns)) throw fieldError(`${here}.netns`, "a netns key", o.netns);
    if (!isCanonicalSysctl(o.sysctl)) {
      throw fieldError(`${here}.sysctl`, "a sysctl name", o.sysctl);
    }
    if (!isKey(o.tuner)) throw fieldError(`${here}.tuner`, "a tuner name", o.tuner);
    if (!Number.isSafeInteger(o.pid) || (o.pid as number) < 0) {
      throw fieldError(`${here}.pid`, "a process id", o.pid);
    }
    if (typeof o.comm !== "string") throw fieldError(`${here}.comm`, "a string", o.comm);
    if (!isTimestamp(o.at)) throw fieldError(`${here}.at`, "a timestamp", o.at);
    return {
      netns: o.netns,
      sysctl: o.sysctl,
      tuner: o.tuner,
      pid: o.pid as number,
      comm: o.comm,
      at: o.at,
      ...parseNetnsCookie(o.netnsCookie, `${here}.netnsCookie`, fieldError),
      ...parseBoot(o.boot, `${here}.boot`, fieldError),
    };
  });
}

// ---------------------------------------------------------------------------------------------
// The change log: one record per line, `{"s": seq, <change>}` with <change> one of
// `"put": <entry>` (added or changed), `"del": {"netns", "sysctl"}` (forgotten) and
// `"overrides": [<override>...]` (the whole list, which stays small).

export type LogChange =
  | { put: JournalEntry }
  | { del: { netns: string; sysctl: string } }
  | { overrides: OverrideRecord[] };

export function entryKey(netns: string, sysctl: string): string {
  return `${netns}\0${sysctl}`;
}

/** Applies one log line to `state` (skipping records it already includes). */
export function applyLogLine(
  state: JournalState,
  line: string,
  where: string,
  file: string,
): LogChange | null {
  const fieldError = fieldErrorIn(file);
  let rec: unknown;
  try {
    rec = JSON.parse(line);
  } catch (err) {
    throw corrupt(file, `${where} is not valid JSON (${(err as Error).message})`);
  }
  if (!isObject(rec)) throw fieldError(where, "an object", rec);
  if (!Number.isSafeInteger(rec.s) || (rec.s as number) < 1) {
    throw fieldError(`${where}.s`, "a sequence number", rec.s);
  }
  if ((rec.s as number) <= state.logSeq) return null; // already folded into state.json
  let change: LogChange;
  if ("put" in rec) {
    const entry = parseEntry(rec.put, `${where}.put`, fieldError);
    const i = state.entries.findIndex((e) => e.netns === entry.netns && e.sysctl === entry.sysctl);
    if (i >= 0) state.entries[i] = entry;
    else state.entries.push(entry);
    change = { put: entry };
  } else if ("del" in rec) {
    const d = rec.del;
    if (!isObject(d) || !isKey(d.netns) || !isCanonicalSysctl(d.sysctl)) {
      throw fieldError(`${where}.del`, "a netns and sysctl", d);
    }
    state.entries = state.entries.filter((e) => !(e.netns === d.netns && e.sysctl === d.sysctl));
    change = { del: { netns: d.netns, sysctl: d.sysctl } };
  } else if ("overrides" in rec && Array.isArray(rec.overrides)) {
    state.overrides = parseOverrides(rec.overrides, `${where}.overrides`, fieldError);
    change = { overrides: state.overrides };
  } else {
    throw fieldError(where, "a put, del or overrides record", rec);
  }
  state.logSeq = rec.s as number;
  return change;
}

/** Each record's JSON as the journal already holds it (journal.ts: a fold's snapshot). */
export interface SerializedParts {
  /** An entry's JSON (JSON.stringify of it, as recorded in the log). */
  entry?: (e: JournalEntry) => string;
  /** The overrides' JSON, one string each, in order. */
  overrides?: string[];
}

/**
 * One record per line: diffable, and readable by an admin restoring values by hand. `parts`: the
 * records' JSON where the caller has it already (a fold's snapshot re-serialises only what changed;
 * the text is the same either way).
 */
export function serializeState(state: JournalState, parts: SerializedParts = {}): string {
  return statePieces(state, parts).join("");
}

/**
 * serializeState's text as pieces (their concatenation is the same text), each record's JSON one
 * piece as the caller holds it: a fold's snapshot is this list of references, taken on the main
 * thread in tens of µs at 1,000 entries, and encoded and written a slice at a time
 * (journal_fold.ts writeSyncedTemp) instead of one 300 KB string and buffer at once.
 */
export function statePieces(state: JournalState, parts: SerializedParts = {}): string[] {
  const entry = parts.entry ?? ((e: JournalEntry) => JSON.stringify(e));
  const out = [
    [
      "{",
      `  "format": ${JSON.stringify(state.format)},`,
      `  "version": ${state.version},`,
      `  "productVersion": ${JSON.stringify(state.productVersion)},`,
      `  "updatedAt": ${JSON.stringify(state.updatedAt)},`,
      `  "logSeq": ${state.logSeq},`,
      `  "entries": `,
    ].join("\n"),
  ];
  const list = (lines: string[]) => {
    if (lines.length === 0) return void out.push("[]");
    out.push("[\n    ");
    for (let i = 0; i < lines.length; i++) {
      if (i > 0) out.push(",\n    ");
      out.push(lines[i]);
    }
    out.push("\n  ]");
  };
  list(state.entries.map(entry));
  out.push(`,\n  "overrides": `);
  list(parts.overrides ?? serializedOverrides(state.overrides));
  out.push("\n}\n");
  return out;
}

export function serializedOverrides(overrides: OverrideRecord[]): string[] {
  return overrides.map((o) => JSON.stringify(o));
}

const encoder = new TextEncoder();

/**
 * `text` as UTF-8, written into a buffer of its own size: TextEncoder.encode of a 300 KB state
 * (1,000 entries) took ~1 ms of the main thread, encodeInto ~10 µs (the text is almost all ASCII).
 */
export function utf8(text: string): Uint8Array {
  for (let size = text.length;; size = text.length * 3) {
    const buf = new Uint8Array(size);
    const { read, written } = encoder.encodeInto(text, buf);
    if (read === text.length) return buf.subarray(0, written);
  }
}

/** Override records kept at most; past it the oldest of other namespaces go first. */
export const MAX_OVERRIDES = 1024;

export function capOverrides(state: JournalState): void {
  let excess = state.overrides.length - MAX_OVERRIDES;
  if (excess <= 0) return;
  state.overrides = state.overrides.filter((o) => {
    if (excess > 0 && o.netns !== GLOBAL_NETNS && o.netns !== ANY_NETNS) {
      excess--;
      return false;
    }
    return true;
  });
}
